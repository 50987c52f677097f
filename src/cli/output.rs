//! What the command line says and writes: runner events on stderr as cargo
//! says its own, the matrix and its reasons, files written or a one-line
//! error, the exit status, and the signals that end a run early. Every
//! command prints through here.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::report::{Comparison, Report, RunStatus};
use crate::runner::Event;
use crate::targets;

/// Exit status for bad input (a malformed file, an unknown target).
pub(super) const EXIT_USAGE: u8 = 2;

/// The exit code of the signal being handled (130 SIGINT, 143 SIGTERM), or 0.
pub(super) static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// Set when a write to the output failed because it was closed
/// (`condwrite … | head`): the handler below then stops the run.
static OUTPUT_CLOSED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Ctrl-C or SIGTERM (what CI sends when it cancels a job), or the output
/// closed (`condwrite … | head`): nothing more is sent, what the run wrote
/// to endpoint targets is removed, every server it started is stopped and
/// every container removed, then it leaves as a shell would (130 for
/// SIGINT, 143 for SIGTERM, 141 for a closed output, as SIGPIPE's). The
/// handlers are in place before this returns. SIGPIPE itself is ignored
/// while servers run, as Rust programs do by default: a write to a closed
/// socket or pipe fails instead of killing the process with its servers
/// still running; a failed write to the output is how a closed one is
/// seen.
pub(super) fn handle_signals(runtime: &tokio::runtime::Runtime) {
    use tokio::signal::unix::{signal, SignalKind};
    // SAFETY: setting a signal disposition; SIG_IGN is what the Rust
    // runtime itself installs at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let _context = runtime.enter();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    leave_closed_output_to_the_handler();
    runtime.spawn(async move {
        let (name, code) = tokio::select! {
            _ = int.recv() => ("interrupted", 130),
            _ = term.recv() => ("terminated", 143),
            _ = OUTPUT_CLOSED.notified() => ("the output was closed", 141),
        };
        SIGNALLED.store(code, Ordering::SeqCst);
        let done = targets::interrupt().await;
        // Stderr may be the closed pipe itself: a failed write says nothing.
        let mut err = std::io::stderr();
        for w in &done.warnings {
            let _ = writeln!(err, "\nwarning: {w}");
        }
        let _ = writeln!(err, "\n{name}: {}", done.done);
        std::process::exit(code);
    });
}

/// A print to a closed pipe panics (Rust's `println!`, libtest-mimic's
/// printer): the thread that panicked tells the handler, which stops the
/// servers and ends the process, and waits, instead of unwinding past the
/// servers and leaving them running. Should the handler not end it within
/// 30 s, the servers are killed here and the process ends.
fn leave_closed_output_to_the_handler() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's println! says "failed printing to stdout: Broken pipe";
        // libtest-mimic's printer unwraps the io::Error (kind BrokenPipe).
        if !(text.starts_with("failed printing to") || text.contains("BrokenPipe")) {
            return default(info);
        }
        OUTPUT_CLOSED.notify_one();
        for _ in 0..300 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        targets::process::stop_all();
        std::process::exit(141);
    }));
}

/// Says a runner event on stderr, as cargo says its own.
pub(super) fn say(e: Event, quiet_start: bool) {
    match e {
        Event::NoDocker { targets, why } => eprintln!(
            "error: {why} (target{} {} marked error)",
            if targets.len() == 1 { "" } else { "s" },
            targets.join(", ")
        ),
        Event::Starting { target, kind } if !quiet_start => {
            eprintln!("    Starting target {target} ({kind})")
        }
        Event::Starting { .. } | Event::CellDone { .. } => {}
        Event::NotStarted { target, why } => {
            eprintln!("warning: target {target} did not start: {why}")
        }
        Event::CleanupNote { target, note } => {
            eprintln!("note: cleaning up target {target}: {note}")
        }
        Event::CleanupFailed { target, why } => {
            eprintln!("warning: cleaning up target {target} failed: {why}")
        }
    }
}

pub(super) fn print_report(report: &Report, to_stderr: bool) {
    if report.results.is_empty() {
        return;
    }
    let mut text = String::new();
    text.push('\n');
    text.push_str(&report.matrix(None));
    text.push('\n');
    for (heading, lines) in [
        ("reasons", report.reasons()),
        ("releases", report.release_lines()),
    ] {
        if !lines.is_empty() {
            text.push_str(&format!("\n{heading}:\n"));
            for line in lines {
                text.push_str("  ");
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    text.push('\n');
    text.push_str(&report.summary());
    text.push('\n');
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// Prints the comparison with a baseline.
pub(super) fn print_comparison(cmp: &Comparison) {
    println!();
    for line in cmp.lines() {
        println!("{line}");
    }
}

/// Writes `text` to `path`; the error is one line for the user.
pub(super) fn write_file(path: &Path, text: &str) -> Result<(), Usage> {
    std::fs::write(path, text).map_err(|e| Usage(format!("cannot write {}: {e}", path.display())))
}

/// Writes the report as JSON to `path`, when one was asked for.
pub(super) fn write_json(path: Option<&Path>, report: &Report) -> Result<(), Usage> {
    match path {
        Some(path) => write_file(path, &(report.to_json() + "\n")),
        None => Ok(()),
    }
}

/// Bad input (a malformed file, an unknown target, a path that cannot be
/// written): one line for the user, and exit 2. Every command returns it
/// with `?`; [`or_usage`] says it.
#[derive(Debug)]
pub(super) struct Usage(pub String);

impl<E: std::fmt::Display> From<E> for Usage {
    fn from(e: E) -> Self {
        Usage(e.to_string())
    }
}

/// The exit status of a command, its bad input said in one line.
pub(super) fn or_usage(command: Result<ExitCode, Usage>) -> ExitCode {
    command.unwrap_or_else(|Usage(message)| usage_error(message))
}

/// Says a bad input in one line; the exit status for it.
pub(super) fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// The exit status of a command that ran.
pub(super) fn exit(status: RunStatus) -> ExitCode {
    ExitCode::from(status.exit_code())
}
