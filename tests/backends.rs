//! The catalog against real third-party S3 servers, pinned.
//!
//! For every backend in pins/ the whole catalog runs on its target (a local
//! process, or a container on the Docker engine `scripts/test` starts), and
//! every verdict must equal its pin. A backend that is not installed (or no
//! Docker engine, or a missing image) fails the test under CI=true;
//! elsewhere the test says why it skips and which install command to run.

use std::path::Path;

use condwrite::catalog::Catalog;
use condwrite::engine;
use condwrite::model::Verdict;
use condwrite::targets::{LiveTarget, Targets};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinFile {
    target: String,
    version: String,
    /// Why objects can stay behind after a run: the store keeps them though
    /// it acknowledges every DELETE of them (what was seen, how confirmed).
    undeletable: Option<String>,
    pin: Vec<Pin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pin {
    scenario: String,
    /// The verdict that tells the truth about the backend (the worst seen).
    verdict: Verdict,
    /// Other verdicts some runs get, for a race that only shows under load:
    /// a run that happens not to hit it is no evidence that it is gone.
    #[serde(default)]
    also_seen: Vec<Verdict>,
    observed: Option<String>,
    confirmed: Option<String>,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load_pins(backend: &str) -> PinFile {
    let path = root().join("pins").join(format!("{backend}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let pins: PinFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(pins.target, backend);
    assert!(!pins.version.is_empty());
    for p in &pins.pin {
        if p.verdict != Verdict::Pass || !p.also_seen.is_empty() {
            assert!(
                p.observed.as_deref().is_some_and(|s| !s.is_empty())
                    && p.confirmed.as_deref().is_some_and(|s| !s.is_empty()),
                "{backend} / {}: a non-pass pin needs `observed` and `confirmed`",
                p.scenario
            );
        }
    }
    pins
}

/// Runs the catalog on `backend` and compares every cell with its pin.
async fn check_backend(backend: &str) {
    let pins = load_pins(backend);
    let catalog = Catalog::builtin().unwrap();
    for s in &catalog.scenarios {
        assert!(
            pins.pin.iter().any(|p| p.scenario == s.id),
            "{backend}: scenario `{}` has no pin in pins/{backend}.toml",
            s.id
        );
    }
    let targets = Targets::load(&root().join("targets.toml")).unwrap();
    let spec = targets.select(&[backend.to_owned()]).unwrap().remove(0);
    let live = match LiveTarget::start(&spec).await {
        Ok(live) => live,
        Err(e)
            if std::env::var("CI").as_deref() != Ok("true")
                && ["not installed", "Docker engine", "scripts/build-images"]
                    .iter()
                    .any(|w| e.contains(w)) =>
        {
            eprintln!("skipping {backend}: {e}");
            return;
        }
        Err(e) => panic!("{backend} did not start: {e}"),
    };
    let mut mismatches = Vec::new();
    for scenario in &catalog.scenarios {
        let prefix = format!("{}pins/{}/", live.prefix(), scenario.id);
        let j = engine::run(&live.site(), scenario, &prefix).await;
        let pin = pins.pin.iter().find(|p| p.scenario == scenario.id).unwrap();
        if j.verdict != pin.verdict && !pin.also_seen.contains(&j.verdict) {
            mismatches.push(format!(
                "{} pinned {} but got {}: {}",
                scenario.id, pin.verdict, j.verdict, j.reason
            ));
        }
    }
    let left = live.store().list(live.prefix()).await.expect("a listing");
    // What is left must be what the store will not delete: a DELETE of it
    // is acknowledged and it stays. Anything else is the run's own leftover.
    let mut kept = Vec::new();
    for key in &left {
        let deleted = live
            .store()
            .delete(key, &condwrite::model::Precondition::none())
            .await
            .is_ok_and(|o| o.is_success());
        let still = live.store().list(key).await.is_ok_and(|l| l.contains(key));
        assert!(
            deleted && still,
            "{backend}: the run left {key} behind (deleted now: {deleted})"
        );
        kept.push(key.clone());
    }
    if let Some(note) = live.stop().await.expect("clean-up") {
        eprintln!("{backend}: {note}");
    }
    assert!(
        mismatches.is_empty(),
        "{backend}:\n  {}",
        mismatches.join("\n  ")
    );
    assert!(
        kept.is_empty() || pins.undeletable.is_some(),
        "{backend}: objects stay after acknowledged DELETEs, and pins/{backend}.toml does not say why (`undeletable`): {kept:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_matches_its_pins() {
    check_backend("moto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn localstack_matches_its_pins() {
    check_backend("localstack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ceph_rgw_matches_its_pins() {
    check_backend("ceph-rgw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3s_fs_matches_its_pins() {
    check_backend("s3s-fs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3rver_matches_its_pins() {
    check_backend("s3rver").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seaweedfs_matches_its_pins() {
    check_backend("seaweedfs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seaweedfs_cluster_matches_its_pins() {
    check_backend("seaweedfs-cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn juicefs_matches_its_pins() {
    check_backend("juicefs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn juicefs_cluster_matches_its_pins() {
    check_backend("juicefs-cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rclone_matches_its_pins() {
    check_backend("rclone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garage_matches_its_pins() {
    check_backend("garage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seaweedfs_in_a_container_matches_its_pins() {
    check_backend("seaweedfs-container").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rclone_in_a_container_matches_its_pins() {
    check_backend("rclone-container").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn juicefs_through_the_minio_preset_matches_its_pins() {
    check_backend("juicefs-as-minio").await;
}

#[test]
fn every_pin_file_names_a_known_target_and_known_scenarios() {
    let catalog = Catalog::builtin().unwrap();
    let targets = Targets::load(&root().join("targets.toml")).unwrap();
    for entry in std::fs::read_dir(root().join("pins")).unwrap() {
        let path = entry.unwrap().path();
        let backend = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let pins = load_pins(&backend);
        assert!(
            targets.select(std::slice::from_ref(&backend)).is_ok(),
            "{backend}: no such target"
        );
        for p in &pins.pin {
            assert!(
                catalog.scenarios.iter().any(|s| s.id == p.scenario),
                "{backend}: pin for unknown scenario `{}`",
                p.scenario
            );
        }
    }
}
