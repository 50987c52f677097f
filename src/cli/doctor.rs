//! `condwrite doctor`: can I run these applications on these stores? Runs
//! only the scenarios the chosen application profiles need, through the
//! library runner, and prints the applications × targets roll-up with the
//! reason for every application that is not plainly safe.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::catalog::Catalog;
use crate::model::Verdict;
use crate::profiles::{scenarios_needed, Profiles};
use crate::report::Report;
use crate::runner::{self, Event};

use super::check::{handle_signals, say};
use super::{load_catalog, select_targets, usage_error, EXIT_FAILED, EXIT_USAGE};

/// What `condwrite doctor` was asked.
pub(super) struct Doctor<'a> {
    pub targets: &'a [String],
    pub profiles: &'a [String],
    pub json: Option<&'a PathBuf>,
    pub targets_file: Option<&'a std::path::Path>,
    pub request_timeout: Option<u64>,
}

/// Runs the doctor: exit 0 when every chosen application is safe (with or
/// without caveats) on every chosen target, 101 when one is unsafe, does
/// not work or cannot be told, 2 for bad input, 1 when only a clean-up
/// failed.
pub(super) fn doctor(runtime: &tokio::runtime::Runtime, d: Doctor<'_>) -> ExitCode {
    let catalog = match load_catalog(None) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let profiles = match Profiles::builtin(&catalog) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let chosen = match profiles.select(d.profiles) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let specs = match select_targets(d.targets_file, d.targets, d.request_timeout) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let needed = scenarios_needed(&chosen);
    let sub = Catalog {
        scenarios: catalog
            .scenarios
            .iter()
            .filter(|s| needed.contains(&s.id))
            .cloned()
            .collect(),
    };
    eprintln!(
        "    Checking {} application(s) on {} target(s): {} scenario(s)",
        chosen.len(),
        specs.len(),
        sub.scenarios.len()
    );
    handle_signals(runtime);
    let concurrency = super::check::DEFAULT_CONCURRENCY;
    let ran = runtime.block_on(runner::run(specs, &sub, concurrency, &|e| match e {
        Event::CellDone {
            target,
            scenario,
            verdict,
        } => {
            let word = if verdict == Verdict::Pass {
                "ok"
            } else {
                verdict.name()
            };
            eprintln!("test [{target}] {scenario} ... {word}");
        }
        e => say(e, false),
    }));
    let apps = ran.report.applications(Some(&chosen));
    println!();
    println!("{}", Report::applications_table(&apps, None));
    let why: Vec<_> = apps.iter().filter(|a| !a.findings.is_empty()).collect();
    if !why.is_empty() {
        println!("\nwhy:");
        for a in &why {
            println!("  {} on {}: {}", a.profile, a.target, a.fitness);
            for f in &a.findings {
                println!("    - {f}");
            }
        }
    }
    let failing = apps.iter().filter(|a| a.fitness.fails()).count();
    println!(
        "\n{} application × target pair(s): {} safe, {} not safe",
        apps.len(),
        apps.len() - failing,
        failing
    );
    if let Some(path) = d.json {
        if let Err(e) = std::fs::write(path, ran.report.to_json() + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if failing > 0 {
        ExitCode::from(EXIT_FAILED)
    } else if ran.cleanup_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
