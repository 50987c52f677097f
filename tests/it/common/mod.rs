//! Helpers shared by the integration tests (each test file uses some).

pub mod gateway;
pub mod hostile;
pub mod pins;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

/// `condwrite serve --port 0`, running until dropped.
pub struct Served {
    child: Child,
    /// Kept open: the server prints more lines, and a closed pipe would
    /// end it.
    _stdout: BufReader<ChildStdout>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Served {
    /// Starts the reference server on a free port and reads its URL.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`Served::start`], with more `serve` arguments (`--fault F`).
    pub fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_condwrite"))
            .args(["serve", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        Self {
            child,
            _stdout: stdout,
            url,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
