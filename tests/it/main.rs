//! The integration tests, one binary: each module is one concern (a file
//! of its own, as the separate binaries were), all sharing `common`. One
//! binary links the crate and its dependencies once instead of once per
//! file (see docs/testing.md for the build and test times measured).
//!
//! Run one concern with its module path: `cargo test --test it gateways::`.

// Tests say what they measured and why they skip.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

mod apps;
mod backends;
mod cli;
mod conformance;
mod containers;
mod docs;
mod endpoint;
mod foreign;
mod fuzz;
mod gateways;
mod hostile;
mod process;
mod releases;
mod report;
mod tls;
