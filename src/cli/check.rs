//! The run itself: the plan (catalog, targets, baseline), the signal
//! handling, one libtest trial per target × scenario driving the library
//! [`runner`](crate::runner), then the matrix, the reasons and the exit
//! status.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Failed, FormatSetting, Trial};

use super::output::{
    exit, handle_signals, print_comparison, print_report, say, write_json, Usage, SIGNALLED,
};
use super::{load_catalog, select_targets, Cli};
use crate::catalog::Scenario;
use crate::profiles::Profiles;
use crate::report::{CellResult, Report, RunStatus};
use crate::runner::{Event, Session};
use crate::targets::TargetSpec;

/// What a run will do, from its arguments: the catalog, the targets chosen
/// (with the command line's overrides), the ones with a trial the filter
/// keeps, and the baseline to compare with.
struct Plan {
    catalog: crate::catalog::Catalog,
    selected: Vec<TargetSpec>,
    needed: Vec<String>,
    baseline: Option<Report>,
    /// The application profiles the report rolls the cells up into.
    profiles: Profiles,
}

/// Reads and checks the run's input; bad input is exit 2 with one line.
fn plan(cli: &Cli) -> Result<Plan, Usage> {
    let catalog = load_catalog(cli.suites.as_deref())?;
    let profiles = Profiles::shipped()?;
    // Read the baseline before anything starts: a bad path is bad input.
    let baseline = cli.baseline.as_deref().map(Report::load).transpose()?;
    let mut selected = select_targets(
        cli.targets_file.as_deref(),
        &cli.targets,
        cli.request_timeout,
    )?;
    if let Some(ca) = &cli.ca_file {
        std::fs::metadata(ca).map_err(|e| Usage(format!("--ca-file {}: {e}", ca.display())))?;
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
        profiles,
    })
}

fn trial_name(s: &Scenario) -> String {
    s.id.clone()
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
                    let outcome = if cell.judgement.verdict.fails(strict) {
                        let reason = match session.not_started(&target) {
                            Some(_) => {
                                "the target did not start (the reason is printed after the matrix)"
                            }
                            None => cell.judgement.reason.as_str(),
                        };
                        Err(Failed::from(format!(
                            "{} on {}: {reason}",
                            cell.judgement.verdict, cell.target
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

pub(super) fn check(runtime: &tokio::runtime::Runtime, mut cli: Cli) -> Result<ExitCode, Usage> {
    if cli.test.test_threads.is_none() {
        cli.test.test_threads = Some(DEFAULT_CONCURRENCY);
    }
    let plan = plan(&cli)?;
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
        return Ok(conclusion.exit_code());
    }
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let report = finished
        .report(&plan.catalog, results)
        .with_applications(&plan.profiles.all());
    print_report(&report, matrix_to_stderr);
    write_json(cli.json.as_deref(), &report)?;
    let cmp = plan.baseline.as_ref().map(|b| report.compare(b));
    if let Some(cmp) = &cmp {
        print_comparison(cmp);
    }
    let status = report.run_status(cli.strict, cmp.as_ref(), finished.cleanup_failed);
    // A trial libtest saw fail fails the run too (none should that the
    // report does not show; this keeps the two from ever disagreeing).
    if cmp.is_none() && conclusion.has_failed() {
        return Ok(exit(RunStatus::Failed));
    }
    Ok(exit(status))
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
