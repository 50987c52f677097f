//! `condwrite bench`: what conditional writes cost on each chosen target,
//! measured one target at a time through the library runner's targets (so
//! that one store's load does not blur another's figures).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::bench::{bench, Limits};
use crate::catalog::Catalog;
use crate::runner::Session;
use crate::targets::fresh_name;

use super::check::{handle_signals, say};
use super::{select_targets, usage_error, EXIT_FAILED, EXIT_USAGE};

/// What `condwrite bench` was asked.
pub(super) struct Bench<'a> {
    pub targets: &'a [String],
    pub json: Option<&'a PathBuf>,
    pub samples: usize,
    pub targets_file: Option<&'a Path>,
}

/// Runs the bench: prints the table, writes the JSON; exit 0, 101 when a
/// target did not start, 2 for bad input, 1 when only a clean-up failed.
pub(super) fn run(runtime: &tokio::runtime::Runtime, b: Bench<'_>) -> ExitCode {
    let specs = match select_targets(b.targets_file, b.targets, None) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let limits = Limits {
        samples: b.samples,
        ..Limits::default()
    };
    handle_signals(runtime);
    let say = |e| say(e, false);
    let (report, failed_start, cleanup_failed) = runtime.block_on(async {
        let session = Session::start(specs, |_| true, &say).await;
        let mut results = Vec::new();
        let mut failed_start = false;
        for name in &names {
            let Some(live) = session.live(name) else {
                failed_start = true;
                continue;
            };
            eprintln!("     Benching {name}");
            let prefix = format!("{}{}/", live.prefix(), fresh_name("bench"));
            results.push(bench(name, live.store(), &prefix, &limits).await);
        }
        let finished = session.stop(&say).await;
        let mut report = finished.report(
            &Catalog {
                scenarios: Vec::new(),
            },
            Vec::new(),
        );
        report.bench = results;
        (report, failed_start, finished.cleanup_failed)
    });
    println!("\n{}", report.bench_table(None));
    for b in &report.bench {
        for n in &b.notes {
            println!("note: {}: {n}", b.target);
        }
    }
    if let Some(path) = b.json {
        if let Err(e) = std::fs::write(path, report.to_json() + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if failed_start {
        ExitCode::from(EXIT_FAILED)
    } else if cleanup_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
