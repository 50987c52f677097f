//! `condwrite bench`: what conditional writes cost on each chosen target,
//! measured one target at a time through the library runner's targets (so
//! that one store's load does not blur another's figures).

use std::path::Path;
use std::process::ExitCode;

use crate::bench::{bench, Limits};
use crate::catalog::Catalog;
use crate::runner::Session;
use crate::targets::fresh_name;

use super::output::{exit, handle_signals, say, write_json, Usage};
use super::{select_targets, BenchArgs};

/// Runs the bench: prints the table, writes the JSON; exit 0, 101 when a
/// target did not start, 2 for bad input, 1 when only a clean-up failed.
pub(super) fn run(
    runtime: &tokio::runtime::Runtime,
    b: &BenchArgs,
    targets_file: Option<&Path>,
) -> Result<ExitCode, Usage> {
    let specs = select_targets(targets_file, &b.targets, None)?;
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let limits = Limits {
        samples: b.samples as usize,
        ..Limits::default()
    };
    handle_signals(runtime);
    let say = |e| say(e, false);
    let (report, cleanup_failed) = runtime.block_on(async {
        let session = Session::start(specs, |_| true, &say).await;
        let mut results = Vec::new();
        for name in &names {
            let Some(live) = session.live(name) else {
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
        (report, finished.cleanup_failed)
    });
    println!("\n{}", report.bench_table(None));
    for b in &report.bench {
        for n in &b.notes {
            println!("note: {}: {n}", b.target);
        }
    }
    write_json(b.json.as_deref(), &report)?;
    Ok(exit(report.bench_status(cleanup_failed)))
}
