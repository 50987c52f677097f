//! Nothing touched that is not the run's own, nothing of it left behind.
//!
//! A bucket that holds someone else's data — objects, some named like
//! condwrite's own prefixes and probes, and an open multipart upload — with
//! versioning on, given to an `endpoint` target with `bucket =`. After a
//! full run, a failing run, a Ctrl-C and a SIGTERM, every foreign object is
//! byte-identical (same ETag, one version), the foreign upload is still
//! open, and no object, version, delete marker or upload of condwrite's is
//! left. The store is condwrite's own reference server (`condwrite serve`).

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Served;
use condwrite::model::{ETag, Precondition};
use condwrite::store::{ClientSettings, Store};
use condwrite::targets::{EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY};

const BUCKET: &str = "someone-elses-data";

/// Keys of the foreign objects: plain data, and names that look like
/// condwrite's run prefixes, scenario prefixes and read-lag probes.
const FOREIGN: [&str; 6] = [
    "precious.txt",
    "condwrite-1700000000-1-1/looks-like-a-run",
    "run-1700000000-1-1/put-if-match-stale/object",
    "condwrite-read-lag-probe-0",
    "put-if-none-match-existing-key/object",
    "nested/deep/data.bin",
];

/// What the bucket held before the run.
struct Seeded {
    objects: Vec<(String, Bytes, ETag)>,
    upload: (String, String),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn store(url: &str) -> Store {
    Store::new(
        &ClientSettings::local(url.to_owned(), EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY),
        BUCKET,
    )
}

async fn seed(store: &Store) -> Seeded {
    store.create_bucket().await.unwrap();
    store.enable_versioning().await.unwrap();
    let mut objects = Vec::new();
    for (i, key) in FOREIGN.iter().enumerate() {
        let body = Bytes::from(format!("foreign data {i}: {}", "x".repeat(i * 7)));
        let out = store
            .put(key, body.clone(), &Precondition::none())
            .await
            .unwrap();
        objects.push((key.to_string(), body, out.etag.unwrap()));
    }
    let key = "condwrite-1700000000-2-2/someone-elses-upload".to_owned();
    let created = store
        .create_upload(&key, &Precondition::none())
        .await
        .unwrap();
    let id = created.upload_id.unwrap();
    store
        .upload_part(&key, &id, 1, Bytes::from("half of a big file"))
        .await
        .unwrap();
    Seeded {
        objects,
        upload: (key, id),
    }
}

/// Everything is as seeded: the same objects, one version each, no delete
/// marker, and only the foreign upload open.
async fn assert_untouched(store: &Store, seeded: &Seeded, how: &str) {
    for (key, body, etag) in &seeded.objects {
        let got = store.get(key, &Precondition::none()).await.unwrap();
        assert_eq!(got.status, 200, "{how}: {key} is gone");
        assert_eq!(got.body.as_ref(), Some(body), "{how}: {key} changed");
        assert!(
            got.etag.as_ref().unwrap().same_version(etag),
            "{how}: {key}'s ETag changed"
        );
    }
    let mut versions = store.list_versions("").await.unwrap();
    versions.sort();
    let keys: Vec<&str> = versions.iter().map(|(k, _, _)| k.as_str()).collect();
    let mut want: Vec<&str> = FOREIGN.to_vec();
    want.sort();
    assert_eq!(keys, want, "{how}: versions left or lost: {versions:?}");
    assert!(
        versions.iter().all(|(_, _, marker)| !marker),
        "{how}: a delete marker: {versions:?}"
    );
    let uploads = store.list_uploads("").await.unwrap().unwrap();
    assert_eq!(uploads, vec![seeded.upload.clone()], "{how}: uploads");
}

fn targets_file(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("targets.toml");
    std::fs::write(
        &path,
        format!(
            "[[target]]\nname = \"shared\"\nkind = \"endpoint\"\nurl = \"{url}\"\nbucket = \"{BUCKET}\"\n\
             access_key_env = \"SHARED_AK\"\nsecret_key_env = \"SHARED_SK\"\n"
        ),
    )
    .unwrap();
    path
}

fn spawn(dir: &Path, url: &str) -> Child {
    let targets = targets_file(dir, url);
    Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args([
            "--targets-file",
            targets.to_str().unwrap(),
            "--target",
            "shared",
        ])
        .current_dir(dir)
        .env("SHARED_AK", EMBEDDED_ACCESS_KEY)
        .env("SHARED_SK", EMBEDDED_SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("condwrite-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits for the child, failing after `limit`; its exit code and stderr.
fn finish(child: Child, limit: Duration) -> (Option<i32>, String) {
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + limit;
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // SAFETY: kills the child we spawned.
            unsafe {
                libc::kill(id as i32, libc::SIGKILL);
            }
            panic!("condwrite still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = waiter.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), stderr)
}

/// A whole run on a served store (`serve_args` for a faulty one), then the
/// check.
fn whole_run(name: &str, serve_args: &[&str], want_code: i32) {
    let served = Served::start_with(serve_args);
    let rt = runtime();
    let store = store(&served.url);
    let seeded = rt.block_on(seed(&store));
    let dir = scratch(name);
    let (code, stderr) = finish(spawn(&dir, &served.url), Duration::from_secs(180));
    assert_eq!(code, Some(want_code), "{stderr}");
    rt.block_on(assert_untouched(&store, &seeded, name));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_full_run_touches_nothing_foreign_and_leaves_nothing() {
    whole_run("foreign-full", &[], 0);
}

#[test]
fn a_failing_run_touches_nothing_foreign_and_leaves_nothing() {
    whole_run("foreign-failing", &["--fault", "ignore-if-none-match"], 101);
}

/// A run stopped by `signal` once its scenarios are writing.
fn interrupted_run(name: &str, signal: i32, want_code: i32) {
    let served = Served::start();
    let rt = runtime();
    let store = store(&served.url);
    let seeded = rt.block_on(seed(&store));
    let dir = scratch(name);
    let child = spawn(&dir, &served.url);
    // Wait until the run has written something of its own.
    let started = Instant::now();
    loop {
        let versions = rt.block_on(store.list_versions("")).unwrap();
        // Past the read-lag probes (six versions): scenarios are writing.
        if versions.len() > FOREIGN.len() + 15 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never wrote"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let (code, stderr) = finish(child, Duration::from_secs(60));
    assert_eq!(code, Some(want_code), "{stderr}");
    assert!(
        stderr.contains("removed what it wrote to 1 endpoint target(s)"),
        "{stderr}"
    );
    rt.block_on(assert_untouched(&store, &seeded, name));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ctrl_c_touches_nothing_foreign_and_leaves_nothing() {
    interrupted_run("foreign-sigint", libc::SIGINT, 130);
}

#[test]
fn sigterm_touches_nothing_foreign_and_leaves_nothing() {
    interrupted_run("foreign-sigterm", libc::SIGTERM, 143);
}
