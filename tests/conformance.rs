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
use condwrite::report::Verdict;
use condwrite::target::{LiveTarget, Targets};

struct Cell {
    verdict: Verdict,
    reason: String,
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
        let j = engine::run(live.store(), scenario, &prefix).await;
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
/// other scenario of the catalog passes.
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
            .map_or(Verdict::Pass, |(_, v)| *v);
        assert_eq!(
            cell.verdict, want,
            "{target} / {id}: expected {want}, got {} ({})",
            cell.verdict, cell.reason
        );
        assert!(!cell.reason.is_empty(), "{target} / {id}: empty reason");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_scenario_passes_on_the_reference_server() {
    let cells = run_catalog("embedded").await;
    assert!(cells.len() >= 7);
    assert_cells("embedded", &cells, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ignoring_if_none_match_makes_create_only_unsafe() {
    let cells = run_catalog("embedded-ignore-if-none-match").await;
    assert_cells(
        "embedded-ignore-if-none-match",
        &cells,
        &[
            ("put-if-none-match-existing-key", Verdict::Unsafe),
            ("race-if-none-match", Verdict::Unsafe),
        ],
    );
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
    let cells = run_catalog("embedded-ignore-if-match").await;
    assert_cells(
        "embedded-ignore-if-match",
        &cells,
        &[
            ("put-if-match-stale", Verdict::Unsafe),
            ("put-if-match-missing-key", Verdict::Unsafe),
            ("race-if-match", Verdict::Unsafe),
        ],
    );
    let reason = &cells["put-if-match-missing-key"].reason;
    assert!(reason.contains("changed from absent"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_racy_server_lets_several_racers_win() {
    let cells = run_catalog("embedded-racy").await;
    assert_cells(
        "embedded-racy",
        &cells,
        &[
            ("race-if-none-match", Verdict::Unsafe),
            ("race-if-match", Verdict::Unsafe),
        ],
    );
    let reason = &cells["race-if-none-match"].reason;
    assert!(reason.contains("more than 1 winner"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_412_for_a_missing_key_deviates() {
    let cells = run_catalog("embedded-missing-if-match-412").await;
    assert_cells(
        "embedded-missing-if-match-412",
        &cells,
        &[("put-if-match-missing-key", Verdict::Deviates)],
    );
    let reason = &cells["put-if-match-missing-key"].reason;
    assert!(reason.contains("Expected: 404 NoSuchKey"), "{reason}");
    assert!(
        reason.contains("Actual: 412 PreconditionFailed"),
        "{reason}"
    );
    assert!(reason.contains("object unchanged (absent)"), "{reason}");
}
