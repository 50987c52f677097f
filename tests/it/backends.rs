//! The catalog against real third-party S3 servers, pinned.
//!
//! For every backend in pins/ the whole catalog runs on its target (a local
//! process, or a container on the Docker engine `scripts/test` starts), and
//! every verdict must equal its pin. A backend that is not installed (or no
//! Docker engine, or a missing image) fails the test under CI=true;
//! elsewhere the test says why it skips and which install command to run.

use crate::common;

use common::pins;
use condwrite::catalog::Catalog;
use condwrite::model::Precondition;
use condwrite::runner::Session;
use condwrite::targets::Targets;

/// Runs the catalog on `backend` through the library runner and compares
/// every cell with its pin; what the run left must be what the store will
/// not delete (and its pin file must say why).
async fn check_backend(backend: &str) {
    let pins = pins::load(backend);
    let catalog = Catalog::builtin().unwrap();
    let targets = Targets::load(&pins::root().join("targets.toml")).unwrap();
    let spec = targets.select(&[backend.to_owned()]).unwrap();
    let session = Session::start(spec, |_| true, &|_| {}).await;
    if let Some(e) = session.not_started(backend) {
        let e = e.clone();
        session.stop(&|_| {}).await;
        // Outside CI, a server this machine lacks (its program, a Docker
        // engine, its image) is skipped; one that is there and fails is not.
        if std::env::var("CI").as_deref() != Ok("true") && e.is_missing_here() {
            eprintln!("skipping {backend}: {e}");
            return;
        }
        panic!("{backend} did not start: {e}");
    }
    // One cell at a time: some of these servers cannot take parallel
    // scenarios (s3rver's 500s, moto's single thread).
    let cells = session.cells(&catalog, 1).await;
    let mismatches = pins.mismatches(&cells);
    let left = session.leftovers(backend).await.expect("a listing");
    let live = session.live(backend).expect("started");
    // What is left must be what the store will not delete: a DELETE of it
    // is acknowledged and it stays. Anything else is the run's own leftover.
    let mut kept = Vec::new();
    for key in &left {
        let deleted = live
            .store()
            .delete(key, &Precondition::none())
            .await
            .is_ok_and(|o| o.is_success());
        let still = live.store().list(key).await.is_ok_and(|l| l.contains(key));
        assert!(
            deleted && still,
            "{backend}: the run left {key} behind (deleted now: {deleted})"
        );
        kept.push(key.clone());
    }
    let finished = session.stop(&|e| eprintln!("{backend}: {e:?}")).await;
    assert!(!finished.cleanup_failed, "{backend}: the clean-up failed");
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
async fn ceph_rgw_20_matches_its_pins() {
    check_backend("ceph-rgw-20").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ceph_rgw_18_matches_its_pins() {
    check_backend("ceph-rgw-18").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swift_matches_its_pins() {
    check_backend("swift").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swift_2_35_1_the_last_release_before_conditional_puts_matches_its_pins() {
    check_backend("swift@2.35.1").await;
}

/// The adjacent pair of releases the tests run (the sweep over every
/// release is scripts/reports'): 2.35.5, the newest of the 2.35 line, and
/// 2.36.0, the first with conditional PUTs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swift_2_35_5_matches_its_pins() {
    check_backend("swift@2.35.5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swift_2_36_0_matches_its_pins() {
    check_backend("swift@2.36.0").await;
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
    let targets = Targets::load(&pins::root().join("targets.toml")).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(pins::root().join("pins")).unwrap() {
        let path = entry.unwrap().path();
        let backend = path.file_stem().unwrap().to_str().unwrap().to_owned();
        // Loading checks every pin against the catalog.
        pins::load(&backend);
        assert!(
            targets.select(std::slice::from_ref(&backend)).is_ok(),
            "{backend}: no such target"
        );
        n += 1;
    }
    assert!(n > 20, "only {n} pin files");
}
