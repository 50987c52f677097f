//! The harness checked against its own reference server.
//!
//! Layer 1: against `embedded` every scenario passes. Layer 2: against each
//! `embedded-<fault>` target exactly the scenarios that fault breaks turn
//! unsafe (deviates for `missing-if-match-412`) and every other cell stays
//! pass. One function runs the whole catalog on a target; each test names the
//! exact cells it expects.

use std::collections::BTreeMap;

use condwrite::catalog::Catalog;
use condwrite::engine;
use condwrite::model::Verdict;
use condwrite::targets::{LiveTarget, Targets};

struct Cell {
    verdict: Verdict,
    reason: String,
    /// What the scenario gets on AWS-faithful servers: `info` for an
    /// informational one, else `pass`.
    baseline: Verdict,
}

/// Runs every scenario of the built-in catalog on `target`, checks that the
/// run left nothing behind, and returns the cells by scenario id.
async fn run_catalog(target: &str) -> BTreeMap<String, Cell> {
    let catalog = Catalog::builtin().expect("the built-in catalog parses");
    let spec = Targets::builtin()
        .select(&[target.to_owned()])
        .expect("target exists")
        .remove(0);
    let live = LiveTarget::start(&spec).await.expect("target starts");
    let mut cells = BTreeMap::new();
    for scenario in &catalog.scenarios {
        let prefix = format!("{}test/{}/", live.prefix(), scenario.id);
        let j = engine::run(&live.site(), scenario, &prefix).await;
        assert!(
            !j.evidence.is_empty(),
            "{}: no evidence recorded",
            scenario.id
        );
        cells.insert(
            scenario.id.clone(),
            Cell {
                verdict: j.verdict,
                reason: j.reason,
                baseline: scenario.baseline(),
            },
        );
    }
    let left = live.store().list("").await.expect("list after the run");
    assert!(
        left.is_empty(),
        "{target}: the run left objects behind: {left:?}"
    );
    live.stop()
        .await
        .expect("bucket removed and server stopped");
    cells
}

/// Asserts every cell: the listed scenarios have the listed verdicts, every
/// other scenario of the catalog gets its baseline (pass, or info for an
/// informational scenario).
fn assert_cells(target: &str, cells: &BTreeMap<String, Cell>, expected: &[(&str, Verdict)]) {
    for (id, _) in expected {
        assert!(
            cells.contains_key(*id),
            "{target}: no scenario `{id}` in the catalog"
        );
    }
    for (id, cell) in cells {
        let want = expected
            .iter()
            .find(|(e, _)| e == id)
            .map_or(cell.baseline, |(_, v)| *v);
        assert_eq!(
            cell.verdict, want,
            "{target} / {id}: expected {want}, got {} ({})",
            cell.verdict, cell.reason
        );
        assert!(!cell.reason.is_empty(), "{target} / {id}: empty reason");
    }
}

use Verdict::{Deviates, Error, Unsafe, Unsupported};

/// Every cell that is not `pass`, per fault profile: exactly the scenarios
/// the fault breaks, with the verdict each must get.
const EXPECTED: &[(&str, &[(&str, Verdict)])] = &[
    ("embedded", &[]),
    // Two nodes sharing one store under one lock: as correct as one node.
    ("embedded-cluster", &[]),
    (
        "embedded-ignore-if-none-match",
        &[
            ("put-if-none-match-existing-key", Unsafe),
            ("race-if-none-match", Unsafe),
            ("mpu-if-none-match-existed", Unsafe),
            ("mpu-if-none-match-created-during", Unsafe),
            ("copy-if-none-match-existing", Unsafe),
        ],
    ),
    (
        "embedded-ignore-if-match",
        &[
            ("put-if-match-stale", Unsafe),
            ("put-if-match-missing-key", Unsafe),
            ("put-if-match-weak-stale", Unsafe),
            ("put-if-match-list-stale", Unsafe),
            ("put-if-match-star-missing-key", Unsafe),
            ("race-if-match", Unsafe),
            ("delete-if-match-stale", Unsafe),
            ("delete-objects-etags", Unsafe),
            ("cas-counter", Unsafe),
            ("mpu-if-match-stale", Unsafe),
            ("copy-if-match-stale", Unsafe),
            ("versioning-if-match-delete-marker", Unsafe),
            // Nothing was there to delete: acknowledged, but nothing lost.
            ("delete-if-match-missing-key", Deviates),
        ],
    ),
    (
        "embedded-racy",
        &[
            ("race-if-none-match", Unsafe),
            ("race-if-match", Unsafe),
            ("cas-counter", Unsafe),
        ],
    ),
    (
        "embedded-missing-if-match-412",
        &[
            ("put-if-match-missing-key", Deviates),
            ("put-if-match-star-missing-key", Deviates),
            ("delete-if-match-missing-key", Deviates),
            ("versioning-if-match-delete-marker", Deviates),
        ],
    ),
    (
        "embedded-unquoted-if-match",
        &[
            ("put-if-match-current", Deviates),
            ("race-if-match", Deviates),
            ("delete-if-match-current", Deviates),
            ("delete-objects-etags", Deviates),
            ("get-if-match-current", Deviates),
            ("cas-counter", Deviates),
            ("put-read-after-write", Deviates),
            ("get-if-match-true-unmodified-since-false", Deviates),
            ("mpu-if-match-current", Deviates),
            ("mpu-etag-if-match", Deviates),
            ("copy-if-match-current", Deviates),
            ("put-aba", Deviates),
        ],
    ),
    (
        "embedded-no-etag-on-write",
        &[
            ("put-if-none-match-new-key", Deviates),
            ("put-if-match-current", Deviates),
            ("put-if-match-unquoted", Deviates),
            ("put-read-after-write", Deviates),
            ("put-aba", Deviates),
            ("mpu-etag-if-match", Deviates),
            ("mpu-if-none-match-new-key", Deviates),
            ("mpu-if-match-current", Deviates),
            ("mpu-create-conditions-ignored", Deviates),
            ("copy-if-none-match-new-key", Deviates),
            ("copy-if-match-current", Deviates),
            ("versioning-if-none-match-over-delete-marker", Deviates),
        ],
    ),
    (
        "embedded-ignore-read-conditions",
        &[
            ("get-if-match-stale", Deviates),
            ("get-if-none-match-current", Deviates),
            ("head-if-match-stale", Deviates),
            ("head-if-none-match-current", Deviates),
            ("get-if-modified-since-unchanged", Deviates),
            ("get-if-unmodified-since-past", Deviates),
            ("get-if-none-match-false-modified-since-true", Deviates),
        ],
    ),
    (
        "embedded-rfc-if-none-match",
        &[
            ("put-if-none-match-etag", Deviates),
            ("put-both-headers", Deviates),
        ],
    ),
    (
        "embedded-no-conditional-delete",
        &[
            ("delete-if-match-current", Unsupported),
            ("delete-if-match-stale", Unsupported),
            ("delete-if-match-star", Unsupported),
            ("delete-if-match-missing-key", Unsupported),
        ],
    ),
    (
        "embedded-if-none-match-as-star",
        &[
            ("get-if-none-match-stale", Deviates),
            ("put-if-none-match-etag", Deviates),
        ],
    ),
    (
        "embedded-quoted-if-match-only",
        &[("put-if-match-unquoted", Deviates)],
    ),
    (
        "embedded-ignore-unparsed-if-match",
        &[
            ("put-if-match-weak-stale", Unsafe),
            ("put-if-match-list-stale", Unsafe),
            ("put-if-match-star-missing-key", Unsafe),
        ],
    ),
    (
        "embedded-multipart-checks-at-create",
        &[
            ("mpu-if-none-match-existed", Unsafe),
            ("mpu-if-none-match-created-during", Unsafe),
            ("mpu-if-match-stale", Unsafe),
            ("mpu-create-conditions-ignored", Deviates),
        ],
    ),
    (
        "embedded-ignore-copy-conditions",
        &[
            ("copy-if-none-match-existing", Unsafe),
            ("copy-if-match-stale", Unsafe),
        ],
    ),
    (
        "embedded-copy-writes-before-check",
        &[
            ("copy-if-none-match-existing", Unsafe),
            ("copy-if-match-stale", Unsafe),
        ],
    ),
    (
        "embedded-delete-objects-ignores-etag",
        &[("delete-objects-etags", Unsafe)],
    ),
    (
        "embedded-delete-marker-counts-as-object",
        &[
            ("versioning-if-none-match-over-delete-marker", Deviates),
            ("versioning-if-match-delete-marker", Deviates),
        ],
    ),
    (
        "embedded-node-local-lock",
        &[
            ("race-if-none-match", Unsafe),
            ("race-if-match", Unsafe),
            ("cas-counter", Unsafe),
        ],
    ),
    (
        // Every acknowledged conditional write that is not there.
        "embedded-ack-without-write",
        &[
            ("copy-if-none-match-new-key", Unsafe),
            ("copy-if-match-current", Unsafe),
            ("delete-if-match-current", Unsafe),
            ("delete-if-match-star", Unsafe),
            ("delete-objects-etags", Unsafe),
            ("mpu-if-none-match-new-key", Unsafe),
            ("mpu-if-match-current", Unsafe),
            ("mpu-etag-if-match", Unsafe),
            ("put-if-none-match-new-key", Unsafe),
            ("put-if-match-current", Unsafe),
            ("put-read-after-write", Unsafe),
            ("put-if-match-unquoted", Unsafe),
            ("put-aba", Unsafe),
            ("race-if-none-match", Unsafe),
            ("race-if-match", Unsafe),
            ("cas-counter", Unsafe),
            ("versioning-if-none-match-over-delete-marker", Unsafe),
        ],
    ),
    (
        // Every refused conditional write that changed the object.
        "embedded-refuse-and-write",
        &[
            ("copy-if-none-match-existing", Unsafe),
            ("copy-if-match-stale", Unsafe),
            ("delete-if-match-stale", Unsafe),
            ("delete-objects-etags", Unsafe),
            ("mpu-if-none-match-existed", Unsafe),
            ("mpu-if-none-match-created-during", Unsafe),
            ("mpu-if-match-stale", Unsafe),
            ("put-if-none-match-existing-key", Unsafe),
            ("put-if-match-stale", Unsafe),
            ("put-if-match-weak-stale", Unsafe),
            ("put-if-match-list-stale", Unsafe),
            ("race-if-none-match", Unsafe),
            ("race-if-match", Unsafe),
            ("cas-counter", Unsafe),
        ],
    ),
    (
        // A correct store whose first answer per key is lost to a 500:
        // unknown outcomes, never unsafe; the races and the counter, which
        // allow for unknown answers, pass.
        "embedded-answer-500-after-write",
        &[
            ("copy-if-none-match-new-key", Error),
            ("copy-if-match-current", Error),
            ("delete-if-match-current", Error),
            ("delete-if-match-star", Error),
            ("delete-objects-etags", Error),
            ("mpu-if-none-match-new-key", Error),
            ("mpu-if-match-current", Error),
            ("mpu-etag-if-match", Error),
            ("put-if-none-match-new-key", Error),
            ("put-if-match-current", Error),
            ("put-read-after-write", Error),
            ("put-if-match-unquoted", Error),
            ("put-aba", Error),
            ("versioning-if-none-match-over-delete-marker", Error),
        ],
    ),
];

fn expected(target: &str) -> &'static [(&'static str, Verdict)] {
    EXPECTED
        .iter()
        .find(|(t, _)| *t == target)
        .unwrap_or_else(|| panic!("no expected cells for {target}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_scenario_passes_on_the_reference_server() {
    let cells = run_catalog("embedded").await;
    assert!(cells.len() >= 19);
    assert_cells("embedded", &cells, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ignoring_if_none_match_makes_create_only_unsafe() {
    let target = "embedded-ignore-if-none-match";
    let cells = run_catalog(target).await;
    assert_cells(target, &cells, expected(target));
    let reason = &cells["put-if-none-match-existing-key"].reason;
    assert!(
        reason.contains("Expected: 412 PreconditionFailed"),
        "{reason}"
    );
    assert!(reason.contains("Actual: 200"), "{reason}");
    assert!(reason.contains("the condition was ignored"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ignoring_if_match_makes_compare_and_swap_unsafe() {
    let target = "embedded-ignore-if-match";
    let cells = run_catalog(target).await;
    assert_cells(target, &cells, expected(target));
    let reason = &cells["put-if-match-missing-key"].reason;
    assert!(reason.contains("changed from absent"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_racy_server_lets_several_racers_win() {
    let target = "embedded-racy";
    let cells = run_catalog(target).await;
    assert_cells(target, &cells, expected(target));
    let reason = &cells["race-if-none-match"].reason;
    assert!(reason.contains("more than 1 winner"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_412_for_a_missing_key_deviates() {
    let target = "embedded-missing-if-match-412";
    let cells = run_catalog(target).await;
    assert_cells(target, &cells, expected(target));
    let reason = &cells["put-if-match-missing-key"].reason;
    assert!(reason.contains("Expected: 404 NoSuchKey"), "{reason}");
    assert!(
        reason.contains("Actual: 412 PreconditionFailed"),
        "{reason}"
    );
    assert!(reason.contains("object unchanged (absent)"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_refused_after_replacing_the_bytes_is_unsafe() {
    let target = "embedded-copy-writes-before-check";
    let cells = run_catalog(target).await;
    assert_cells(target, &cells, expected(target));
    let reason = &cells["copy-if-none-match-existing"].reason;
    assert!(
        reason.contains("Actual: 412 PreconditionFailed"),
        "{reason}"
    );
    assert!(
        reason.contains("refused, yet the object changed"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racers_spread_over_nodes_catch_a_node_local_lock() {
    let target = "embedded-node-local-lock";
    let cells = run_catalog(target).await;
    assert_cells(target, &cells, expected(target));
    let reason = &cells["race-if-none-match"].reason;
    assert!(
        reason.contains("racers spread over 2 endpoints"),
        "{reason}"
    );
    // The same server with one node serialises every writer: the races pass,
    // so it is the spreading that catches the fault.
    let one_node = Targets::parse(
        "test.toml",
        "[[target]]\nname = \"one\"\nkind = \"embedded\"\nfaults = [\"node-local-lock\"]\n",
        std::path::Path::new("."),
    )
    .unwrap()
    .targets
    .remove(0);
    let live = LiveTarget::start(&one_node).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_other_fault_profiles_break_exactly_their_scenarios() {
    for target in [
        "embedded-cluster",
        "embedded-unquoted-if-match",
        "embedded-no-etag-on-write",
        "embedded-ignore-read-conditions",
        "embedded-rfc-if-none-match",
        "embedded-no-conditional-delete",
        "embedded-if-none-match-as-star",
        "embedded-quoted-if-match-only",
        "embedded-ignore-unparsed-if-match",
        "embedded-multipart-checks-at-create",
        "embedded-ignore-copy-conditions",
        "embedded-delete-objects-ignores-etag",
        "embedded-delete-marker-counts-as-object",
        "embedded-ack-without-write",
        "embedded-refuse-and-write",
        "embedded-answer-500-after-write",
    ] {
        let cells = run_catalog(target).await;
        assert_cells(target, &cells, expected(target));
    }
}

/// The mutation score: every scenario can fail (some fault turns it
/// non-pass) and every fault is caught (some scenario turns non-pass under
/// it). Prints the table of which fault each scenario catches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalog_can_fail_and_every_fault_is_caught() {
    let targets = Targets::builtin();
    let catalog = Catalog::builtin().unwrap();
    let mut caught: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut faults_caught: BTreeMap<String, usize> = BTreeMap::new();
    for fault in condwrite::reference::Fault::ALL {
        let target = format!("embedded-{fault}");
        let spec = targets
            .select(std::slice::from_ref(&target))
            .unwrap_or_else(|_| panic!("targets.toml has no {target}"))
            .remove(0);
        assert_eq!(spec.faults, vec![fault], "{target}");
        let cells = run_catalog(&target).await;
        let mut n = 0;
        for (id, cell) in &cells {
            if cell.verdict != cell.baseline {
                caught
                    .entry(id.clone())
                    .or_default()
                    .push(fault.to_string());
                n += 1;
            }
        }
        faults_caught.insert(fault.to_string(), n);
    }
    println!("\nscenario -> faults that turn it non-pass");
    for s in &catalog.scenarios {
        let list = caught.get(&s.id).map(|v| v.join(", ")).unwrap_or_default();
        println!(
            "  {:32} {}",
            s.id,
            if list.is_empty() { "NONE" } else { &list }
        );
    }
    println!("fault -> scenarios it turns non-pass");
    for (fault, n) in &faults_caught {
        println!("  {fault:24} {n}");
    }
    let never: Vec<&str> = catalog
        .scenarios
        .iter()
        .filter(|s| !caught.contains_key(&s.id))
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
