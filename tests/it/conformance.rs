//! The harness checked against its own reference server.
//!
//! Every embedded target (the reference server, its two-node cluster, and
//! one target per fault profile) runs the whole catalog once, through the
//! library runner, and each is compared with its pins
//! (`pins/embedded*.toml`) by the same code as the real servers: on
//! `embedded` every scenario gets its baseline; under each fault exactly the
//! scenarios that fault breaks change, with the verdict each must get. The
//! same run gives the mutation score: every scenario can fail, every fault
//! is caught.

use crate::common;

use std::collections::BTreeMap;

use common::pins;
use condwrite::catalog::Catalog;
use condwrite::engine;
use condwrite::model::Verdict;
use condwrite::profiles::{Fitness, Profiles};
use condwrite::report::CellResult;
use condwrite::runner;
use condwrite::targets::Targets;

/// The reason of one cell, for the checks of what a reason says.
fn reason<'a>(cells: &'a [CellResult], target: &str, scenario: &str) -> &'a str {
    &cells
        .iter()
        .find(|c| c.target == target && c.scenario == scenario)
        .unwrap_or_else(|| panic!("no cell {target} / {scenario}"))
        .judgement
        .reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_profile_matches_its_pins_and_every_fault_is_caught() {
    let catalog = Catalog::builtin().unwrap();
    let targets = Targets::builtin();
    let embedded: Vec<_> = targets
        .targets
        .iter()
        .filter(|t| t.name.starts_with("embedded"))
        .cloned()
        .collect();
    // Every fault has its target, and every embedded target its pins.
    for fault in condwrite::reference::Fault::ALL {
        let name = format!("embedded-{fault}");
        let spec = embedded
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("targets.toml has no {name}"));
        assert_eq!(spec.faults, vec![fault], "{name}");
    }
    let files: Vec<pins::PinFile> = embedded.iter().map(|t| pins::load(&t.name)).collect();
    let ran = runner::run(embedded.clone(), &catalog, 8, &|_| {}).await;
    assert!(!ran.cleanup_failed, "a clean-up failed");
    for (target, left) in &ran.leftovers {
        let left = left.as_ref().expect("a listing after the run");
        assert!(left.is_empty(), "{target}: the run left {left:?} behind");
    }
    let cells = &ran.report.results;
    let mut mismatches = Vec::new();
    for file in &files {
        let own: Vec<CellResult> = cells
            .iter()
            .filter(|c| c.target == file.target)
            .cloned()
            .collect();
        for m in file.mismatches(&own) {
            mismatches.push(format!("{}: {m}", file.target));
        }
    }
    assert!(mismatches.is_empty(), "\n  {}", mismatches.join("\n  "));

    // The application profiles: safe on the correct servers; on every
    // fault target, unsafe exactly when a cell a profile needs is unsafe,
    // or deviates where the profile says that loses its data (naming it),
    // and each profile is made unsafe by some fault.
    let profiles = Profiles::builtin(&catalog).unwrap();
    let apps = ran.report.roll_up(&profiles.all());
    for p in &profiles.profiles {
        for t in &embedded {
            let a = apps
                .iter()
                .find(|a| a.profile == p.id && a.target == t.name)
                .unwrap_or_else(|| panic!("no roll-up of {} on {}", p.id, t.name));
            let broken: Vec<&str> = p
                .requirements
                .iter()
                .filter(|r| {
                    cells.iter().any(|c| {
                        c.target == t.name
                            && c.scenario == r.scenario
                            && (c.judgement.verdict == Verdict::Unsafe
                                || r.unsafe_when.contains(&c.judgement.verdict))
                    })
                })
                .map(|r| r.scenario.as_str())
                .collect();
            if t.faults.is_empty() {
                assert_eq!(
                    a.fitness,
                    Fitness::Safe,
                    "{} on {}: {:?}",
                    p.id,
                    t.name,
                    a.findings
                );
            } else if !broken.is_empty() {
                assert_eq!(a.fitness, Fitness::Unsafe, "{} on {}", p.id, t.name);
                for b in broken {
                    assert!(
                        a.findings
                            .iter()
                            .any(|f| f.starts_with(&format!("{b} is unsafe: "))
                                || f.starts_with(&format!(
                                    "{b} deviates, which for this application is data loss: "
                                ))),
                        "{} on {}: {b} not named in {:?}",
                        p.id,
                        t.name,
                        a.findings
                    );
                }
            } else {
                assert_ne!(a.fitness, Fitness::Unsafe, "{} on {}", p.id, t.name);
            }
        }
        assert!(
            apps.iter()
                .any(|a| a.profile == p.id && a.fitness == Fitness::Unsafe),
            "no fault makes {} unsafe",
            p.id
        );
    }

    // What the reasons say, for a few faults.
    let r = reason(
        cells,
        "embedded-ignore-if-none-match",
        "put-if-none-match-existing-key",
    );
    assert!(r.contains("Expected: 412 PreconditionFailed"), "{r}");
    assert!(r.contains("Actual: 200"), "{r}");
    assert!(r.contains("the condition was ignored"), "{r}");
    let r = reason(
        cells,
        "embedded-ignore-if-match",
        "put-if-match-missing-key",
    );
    assert!(r.contains("changed from absent"), "{r}");
    let r = reason(cells, "embedded-racy", "race-if-none-match");
    assert!(r.contains("more than 1 winner"), "{r}");
    let r = reason(
        cells,
        "embedded-missing-if-match-412",
        "put-if-match-missing-key",
    );
    assert!(r.contains("Expected: 404 NoSuchKey"), "{r}");
    assert!(r.contains("Actual: 412 PreconditionFailed"), "{r}");
    assert!(r.contains("object unchanged (absent)"), "{r}");
    let r = reason(
        cells,
        "embedded-copy-writes-before-check",
        "copy-if-none-match-existing",
    );
    assert!(r.contains("Actual: 412 PreconditionFailed"), "{r}");
    assert!(r.contains("refused, yet the object changed"), "{r}");
    let r = reason(cells, "embedded-node-local-lock", "race-if-none-match");
    assert!(r.contains("racers spread over 2 endpoints"), "{r}");

    // The mutation score: every scenario can fail (some fault turns it from
    // its baseline) and every fault is caught (some scenario changes).
    let mut caught: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut faults_caught: BTreeMap<String, usize> = BTreeMap::new();
    for fault in condwrite::reference::Fault::ALL {
        let target = format!("embedded-{fault}");
        let mut n = 0;
        for s in &catalog.scenarios {
            let cell = cells
                .iter()
                .find(|c| c.target == target && c.scenario == s.id)
                .expect("every cell ran");
            if cell.judgement.verdict != s.baseline() {
                caught.entry(&s.id).or_default().push(fault.to_string());
                n += 1;
            }
        }
        faults_caught.insert(fault.to_string(), n);
    }
    println!("\nscenario -> faults that turn it from its baseline");
    for s in &catalog.scenarios {
        let list = caught
            .get(s.id.as_str())
            .map(|v| v.join(", "))
            .unwrap_or_default();
        println!(
            "  {:32} {}",
            s.id,
            if list.is_empty() { "NONE" } else { &list }
        );
    }
    println!("fault -> scenarios it changes");
    for (fault, n) in &faults_caught {
        println!("  {fault:24} {n}");
    }
    let never: Vec<&str> = catalog
        .scenarios
        .iter()
        .filter(|s| !caught.contains_key(s.id.as_str()))
        .map(|s| s.id.as_str())
        .collect();
    assert!(never.is_empty(), "scenarios no fault can fail: {never:?}");
    let uncaught: Vec<&String> = faults_caught
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(f, _)| f)
        .collect();
    assert!(
        uncaught.is_empty(),
        "faults no scenario catches: {uncaught:?}"
    );
}

/// `embedded-node-local-lock` races across its two nodes and is caught (its
/// pins); the same fault on one node serialises every writer, so the races
/// pass: it is the spreading that catches the fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_with_a_node_local_lock_is_not_caught_so_spreading_is_what_catches_it() {
    let one_node = Targets::parse(
        "test.toml",
        "[[target]]\nname = \"one\"\nkind = \"embedded\"\nfaults = [\"node-local-lock\"]\n",
        std::path::Path::new("."),
    )
    .unwrap()
    .targets
    .remove(0);
    let live = condwrite::runner::Started::start(&one_node).await.unwrap();
    let catalog = Catalog::builtin().unwrap();
    let race = catalog
        .scenarios
        .iter()
        .find(|s| s.id == "race-if-none-match")
        .unwrap();
    let j = engine::run(&live.site(), race, "race/").await;
    live.stop().await.unwrap();
    assert_eq!(j.verdict, Verdict::Pass, "{}", j.reason);
    assert!(!j.reason.contains("spread"), "{}", j.reason);
}
