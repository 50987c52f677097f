//! The run itself: the plan (catalog, targets, baseline), the signal
//! handling, one libtest trial per target × scenario driving the library
//! [`runner`](crate::runner), then the matrix, the reasons and the exit
//! status.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Failed, FormatSetting, Trial};

use super::commands::print_comparison;
use super::{load_catalog, select_targets, usage_error, Cli, EXIT_FAILED, EXIT_USAGE};
use crate::catalog::Scenario;
use crate::report::{CellResult, Report};
use crate::runner::{Event, Session};
use crate::targets::{self, TargetSpec};

/// The exit code of the signal being handled (130 SIGINT, 143 SIGTERM), or 0.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// What a run will do, from its arguments: the catalog, the targets chosen
/// (with the command line's overrides), the ones with a trial the filter
/// keeps, and the baseline to compare with.
struct Plan {
    catalog: crate::catalog::Catalog,
    selected: Vec<TargetSpec>,
    needed: Vec<String>,
    baseline: Option<Report>,
}

/// Reads and checks the run's input; bad input is exit 2 with one line.
fn plan(cli: &Cli) -> Result<Plan, ExitCode> {
    let catalog = load_catalog(cli.suites.as_deref()).map_err(usage_error)?;
    // Read the baseline before anything starts: a bad path is bad input.
    let baseline = cli
        .baseline
        .as_deref()
        .map(Report::load)
        .transpose()
        .map_err(usage_error)?;
    let mut selected = select_targets(
        cli.targets_file.as_deref(),
        &cli.targets,
        cli.request_timeout,
    )
    .map_err(usage_error)?;
    if let Some(ca) = &cli.ca_file {
        std::fs::metadata(ca)
            .map_err(|e| usage_error(format!("--ca-file {}: {e}", ca.display())))?;
    }
    if let Some(ca) = &cli.ca_file {
        for spec in &mut selected {
            spec.client.ca_file = Some(ca.clone());
        }
    }
    // Start only targets with at least one trial the filter keeps.
    let needed = if cli.test.list {
        Vec::new()
    } else {
        selected
            .iter()
            .filter(|t| {
                catalog.scenarios.iter().any(|s| {
                    let probe = Trial::test(trial_name(s), || Ok(())).with_kind(&t.name);
                    !cli.test.is_filtered_out(&probe)
                })
            })
            .map(|t| t.name.clone())
            .collect()
    };
    Ok(Plan {
        catalog,
        selected,
        needed,
        baseline,
    })
}

fn trial_name(s: &Scenario) -> String {
    s.id.clone()
}

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
        let _ = writeln!(std::io::stderr(), "\n{name}: {done}");
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

/// One libtest trial per target × scenario, each running its cell through
/// the session and keeping it in `results`.
fn trials(
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    session: &Arc<Session>,
    results: &Arc<Mutex<Vec<CellResult>>>,
    strict: bool,
) -> Vec<Trial> {
    let mut trials = Vec::new();
    for spec in &plan.selected {
        for scenario in &plan.catalog.scenarios {
            let (scenario, results, session) = (scenario.clone(), results.clone(), session.clone());
            let handle = runtime.handle().clone();
            let target = spec.name.clone();
            trials.push(
                Trial::test(trial_name(&scenario), move || {
                    let Some(cell) = handle.block_on(session.cell(&target, &scenario)) else {
                        return Err(Failed::from("the target was not started"));
                    };
                    let outcome = if cell.verdict.fails(strict) {
                        let reason = match session.not_started(&target) {
                            Some(_) => {
                                "the target did not start (the reason is printed after the matrix)"
                            }
                            None => cell.reason.as_str(),
                        };
                        Err(Failed::from(format!(
                            "{} on {}: {reason}",
                            cell.verdict, cell.target
                        )))
                    } else {
                        Ok(())
                    };
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(cell);
                    outcome
                })
                .with_kind(&spec.name),
            );
        }
    }
    trials
}

/// The run: the targets started through the library runner, a trial per
/// cell, the targets stopped, the matrix and the reasons printed, the JSON
/// written, the exit status.
/// How many cells run at once unless `--test-threads` says otherwise: a
/// run waits on the network, not on the CPU, so the number of CPUs is the
/// wrong bound (a target's `max_concurrency` still limits its own cells).
pub const DEFAULT_CONCURRENCY: usize = 32;

pub(super) fn check(runtime: &tokio::runtime::Runtime, mut cli: Cli) -> ExitCode {
    if cli.test.test_threads.is_none() {
        cli.test.test_threads = Some(DEFAULT_CONCURRENCY);
    }
    let plan = match plan(&cli) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let matrix_to_stderr = cli.test.format == Some(FormatSetting::Json);
    handle_signals(runtime);
    let say = move |e: Event| say(e, matrix_to_stderr);
    let session = Arc::new(Session::new(plan.selected.clone(), |t| {
        plan.needed.contains(&t.name)
    }));
    // The targets start in the background; each target's cells wait for
    // its own start only.
    let starting = runtime.spawn({
        let session = session.clone();
        async move { session.start_all(&say).await }
    });
    let stalls = StallWatch::new(session.clone());
    let watcher = stalls.watch(runtime);
    let results: Arc<Mutex<Vec<CellResult>>> = Arc::default();
    let trials = trials(runtime, &plan, &session, &results, cli.strict);
    let conclusion = libtest_mimic::run(&cli.test, trials);
    // A stall in the last quarter second before the end is said here.
    stalls.say_new();
    if SIGNALLED.load(Ordering::SeqCst) != 0 {
        // The signal handler is cleaning up and ends the process with the
        // signal's exit code; the trials that ended early prove nothing.
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // Every start has ended (a trial waits for its target's), unless no
    // trial ran (`--list`): then wait for them here, to stop what started.
    let _ = runtime.block_on(starting);
    watcher.abort();
    let _ = runtime.block_on(watcher);
    drop(stalls);
    let session = Arc::into_inner(session).expect("every trial and start has finished");
    let finished = runtime.block_on(session.stop(&say));
    if cli.test.list {
        return conclusion.exit_code();
    }
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let report = finished.report(&plan.catalog, results);
    print_report(&report, matrix_to_stderr);
    if let Some(path) = &cli.json {
        if let Err(e) = std::fs::write(path, report.to_json() + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    }
    exit_status(
        &report,
        plan.baseline.as_ref(),
        &conclusion,
        finished.cleanup_failed,
    )
}

/// The exit status of a run: with a baseline, 101 only when a cell got
/// worse; without, libtest's (101 when a cell fails); 1 when only the
/// clean-up failed.
fn exit_status(
    report: &Report,
    baseline: Option<&Report>,
    conclusion: &libtest_mimic::Conclusion,
    cleanup_failed: bool,
) -> ExitCode {
    if let Some(baseline) = baseline {
        if print_comparison(report, baseline) {
            return ExitCode::from(EXIT_FAILED);
        }
        return if cleanup_failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    if cleanup_failed && !conclusion.has_failed() {
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
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

/// Says once, when it happens, that a target stopped answering.
#[derive(Clone)]
struct StallWatch {
    session: Arc<Session>,
    /// The targets whose stall was said.
    said: Arc<Mutex<Vec<String>>>,
}

impl StallWatch {
    fn new(session: Arc<Session>) -> Self {
        StallWatch {
            session,
            said: Arc::default(),
        }
    }

    /// Looks every quarter second while the run goes on.
    fn watch(&self, runtime: &tokio::runtime::Runtime) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                this.say_new();
            }
        })
    }

    /// Says every stall not said yet.
    fn say_new(&self) {
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        for (name, health) in self.session.healths() {
            if let (false, Some(why)) = (said.contains(&name), health.stalled()) {
                eprintln!("warning: target {name}: {why}; its remaining cells end as error");
                said.push(name);
            }
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
