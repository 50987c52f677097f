//! condwrite: a conformance harness for S3 conditional writes.
//!
//! The pipeline, one module per concern:
//!
//! ```text
//! targets.toml ──► target ──► store ──► engine ──► Verdict ──► report
//! suites/*.toml ──► catalog ──► Scenario ──┘
//! ```
//!
//! `reference` is the embedded reference S3 server (the default target),
//! `apps` runs applications' real clients against a started target (what
//! `doctor --confirm` sets beside the roll-up), and `cli` wires it all to
//! the command line.

pub mod apps;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod engine;
pub mod model;
pub mod profiles;
pub mod reference;
pub mod report;
pub mod runner;
pub mod store;
pub mod targets;
