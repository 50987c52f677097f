//! `condwrite doctor`: can I run these applications on these stores? Runs
//! only the scenarios the chosen application profiles need, through the
//! library runner, and prints the applications × targets roll-up with the
//! reason for every application that is not plainly safe.

use std::path::Path;
use std::process::ExitCode;

use crate::apps;
use crate::catalog::Catalog;
use crate::model::Verdict;
use crate::profiles::{scenarios_needed, Agreement, Observed, Profile, Profiles};
use crate::report::{doctor_status, Report};
use crate::runner::{Event, Session};

use super::output::{exit, handle_signals, say, write_json, Usage};
use super::{load_catalog, select_targets, DoctorArgs};

/// Runs the doctor: exit 0 when every chosen application is safe (with or
/// without caveats) on every chosen target, 101 when one is unsafe, does
/// not work or cannot be told, 2 for bad input, 1 when only a clean-up
/// failed.
pub(super) fn doctor(
    runtime: &tokio::runtime::Runtime,
    d: &DoctorArgs,
    targets_file: Option<&Path>,
) -> Result<ExitCode, Usage> {
    let catalog = load_catalog(None)?;
    let profiles = Profiles::builtin(&catalog)?;
    let chosen = profiles.select(&d.profiles)?;
    let specs = select_targets(targets_file, &d.targets, d.request_timeout)?;
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
    let on = |e: Event| match e {
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
    };
    let (report, cleanup_failed) = runtime.block_on(async {
        let session = Session::new(specs, |_| true);
        let ((), results) = futures::join!(
            session.start_all(&on),
            session.cells_reporting(&sub, concurrency, &on)
        );
        let mut observed = if d.confirm {
            confirm_all(&session, &chosen).await
        } else {
            Vec::new()
        };
        // In target and profile order, however the checks interleaved.
        observed.sort_by(|a, b| (&a.target, &a.profile).cmp(&(&b.target, &b.profile)));
        let finished = session.stop(&on).await;
        let mut report = finished.report(&sub, results);
        report.observed = observed;
        (report, finished.cleanup_failed)
    });
    let report = report.with_applications(&profiles.all());
    let apps = report.roll_up(&chosen);
    println!();
    println!("{}", Report::applications_table(&apps, None));
    let why: Vec<_> = apps
        .iter()
        .filter(|a| !a.findings.is_empty() || a.observed.is_some())
        .collect();
    if !why.is_empty() {
        println!("\nwhy:");
        for a in &why {
            println!("  {} on {}: {}", a.profile, a.target, a.fitness);
            for f in a.findings.iter().cloned().chain(a.observed_line()) {
                println!("    - {f}");
            }
        }
    }
    let failing = apps.iter().filter(|a| a.fitness.fails()).count();
    let count = |w: Agreement| apps.iter().filter(|a| a.agreement() == Some(w)).count();
    let disagree = count(Agreement::Disagrees);
    if d.confirm {
        let confirmed = count(Agreement::Agrees);
        let missed = count(Agreement::NotReproduced);
        let ran = apps.iter().filter(|a| a.observed.is_some()).count();
        println!(
            "\nrun for real: {ran} application × target pair(s) (the others have no check): {confirmed} agree, {disagree} disagree, {missed} did not reproduce a loss the cells show, {} could not tell",
            ran - confirmed - disagree - missed
        );
    }
    println!(
        "\n{} application × target pair(s): {} safe, {} not safe",
        apps.len(),
        apps.len() - failing,
        failing
    );
    write_json(d.json.as_deref(), &report)?;
    Ok(exit(doctor_status(&apps, cleanup_failed)))
}

/// How many targets run their application checks at the same time.
const CHECKS_AT_ONCE: usize = 2;

/// Runs the real client of every chosen application that has a check on
/// every started target: two targets side by side, one check at a time on
/// each (a check is itself concurrent), each under a prefix of its own.
async fn confirm_all(session: &Session, chosen: &[&Profile]) -> Vec<Observed> {
    use futures::StreamExt;
    let targets: Vec<&crate::targets::LiveTarget> = session.started();
    if let Some(live) = targets.first() {
        let root = apps::root(&live.spec.root);
        if !root.join("apps").is_dir() {
            eprintln!(
                "warning: --confirm found no apps/ folder (looked beside the targets file and in {}): no application's client runs",
                root.display()
            );
        }
    }
    let per_target = targets.into_iter().map(|live| async move {
        let root = apps::root(&live.spec.root);
        let mut out = Vec::new();
        for (n, p) in chosen.iter().enumerate() {
            if !apps::has_check(&root, &p.id) {
                continue;
            }
            eprintln!(
                "    Running {} on {} (its real client)",
                p.id, live.spec.name
            );
            let prefix = format!("{}confirm-{n}-{}/", live.prefix(), p.id);
            let o = apps::confirm(
                &root,
                &p.id,
                &live.spec.name,
                &live.settings,
                live.store(),
                &prefix,
            )
            .await;
            eprintln!(
                "app [{}] {} ... {} ({:.1} s)",
                live.spec.name,
                p.id,
                o.fitness,
                o.duration_ms as f64 / 1000.0
            );
            out.push(o);
        }
        out
    });
    // Two targets at a time: each check runs several writers of its own,
    // and a dozen at once on a small machine would time out.
    futures::stream::iter(per_target)
        .buffer_unordered(CHECKS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}
