//! Container targets on a real Docker engine, through testcontainers: start,
//! a port published on loopback only, readiness, a run, removal — after a
//! run, a failed run, a SIGINT and a SIGTERM — and a missing image.
//!
//! The images are local ones `scripts/build-images` builds from real servers'
//! static binaries (`scripts/install-servers docker`); `scripts/test` starts
//! the engine. Without an engine these tests fail under `CI=true` and say
//! why they skip elsewhere. The catalog's verdicts on the container targets
//! are pinned in tests/backends.rs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use testcontainers_modules::testcontainers::bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder,
};
use testcontainers_modules::testcontainers::core::client::docker_client_instance;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether a Docker engine answers and has the local images; under CI=true
/// a missing engine or image fails the test, elsewhere it is skipped with
/// the reason.
fn docker_ready(images: &[&str]) -> bool {
    let missing = runtime().block_on(async {
        let docker = docker_client_instance().await.map_err(|e| e.to_string())?;
        docker.ping().await.map_err(|e| e.to_string())?;
        for image in images {
            if docker.inspect_image(image).await.is_err() {
                return Err(format!("image {image} is missing (scripts/build-images)"));
            }
        }
        Ok::<_, String>(())
    });
    match missing {
        Ok(()) => true,
        Err(e) => {
            let why = format!(
                "no usable Docker engine ({e}): run scripts/install-servers docker and scripts/docker-engine start"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}");
            }
            eprintln!("skipping: {why}");
            false
        }
    }
}

/// Ids of the containers (running or not) labelled with this condwrite pid.
fn containers_of(pid: u32) -> Vec<String> {
    runtime().block_on(async {
        let docker = docker_client_instance().await.unwrap();
        let filters = HashMap::from([("label", vec![format!("condwrite.pid={pid}")])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        docker
            .list_containers(Some(options))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| c.id)
            .collect()
    })
}

/// The host addresses a container's ports are published on.
fn published_on(id: &str) -> Vec<String> {
    runtime().block_on(async {
        let docker = docker_client_instance().await.unwrap();
        let info = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        info.network_settings
            .and_then(|n| n.ports)
            .unwrap_or_default()
            .into_values()
            .flatten()
            .flatten()
            .filter_map(|b| b.host_ip)
            .collect()
    })
}

/// A fresh folder, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str, targets: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("condwrite-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("targets.toml"), targets).unwrap();
    Scratch(dir)
}

fn spawn(dir: &std::path::Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("condwrite runs")
}

/// Waits for the child, killing it after `limit` (a hang is a failure).
fn finish(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("condwrite still ran after {limit:?}: {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

const SEAWEEDFS: &str = "condwrite.local/seaweedfs:4.48";
const RCLONE: &str = "condwrite.local/rclone:1.75.2";
const MINIO_JUICEFS: &str = "condwrite.local/minio-juicefs:1.4.2";
const BUSYBOX: &str = "condwrite.local/busybox:bookworm";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn real_servers_run_in_containers_and_are_gone_after_the_run() {
    if !docker_ready(&[SEAWEEDFS, RCLONE, MINIO_JUICEFS]) {
        return;
    }
    let json = std::env::temp_dir().join(format!(
        "condwrite-test-{}-containers.json",
        std::process::id()
    ));
    let child = spawn(
        &repo(),
        &[
            "--target",
            "seaweedfs-container,rclone-container,juicefs-as-minio",
            "--json",
            json.to_str().unwrap(),
            "put-if-none-match-",
        ],
    );
    let pid = child.id();
    let out = finish(child, Duration::from_secs(300));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let cell = |target: &str, scenario: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["target"] == target && c["scenario"] == scenario)
            .unwrap_or_else(|| panic!("no cell {target} / {scenario}: {stderr}"))["verdict"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Each container started, was reached through its loopback port, and
    // answered like the same server as a process: SeaweedFS refuses the
    // create-only PUT on an existing key; rclone and the JuiceFS gateway
    // (run through the MinIO preset) overwrite it.
    assert_eq!(
        cell("seaweedfs-container", "put-if-none-match-existing-key"),
        "pass"
    );
    assert_eq!(
        cell("seaweedfs-container", "put-if-none-match-new-key"),
        "pass"
    );
    assert_eq!(
        cell("rclone-container", "put-if-none-match-existing-key"),
        "unsafe"
    );
    assert_eq!(
        cell("juicefs-as-minio", "put-if-none-match-existing-key"),
        "unsafe"
    );
    assert_eq!(
        cell("juicefs-as-minio", "put-if-none-match-new-key"),
        "pass"
    );
    for t in report["targets"].as_array().unwrap() {
        let endpoint = t["endpoint"].as_str().unwrap_or_default();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{t}");
        assert_eq!(t["kind"], "container", "{t}");
    }
    let minio = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "juicefs-as-minio")
        .unwrap();
    assert!(
        minio["description"]
            .as_str()
            .unwrap()
            .starts_with("NOT MinIO"),
        "{minio}"
    );
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert_eq!(
        containers_of(pid),
        Vec::<String>::new(),
        "containers left after the run"
    );
}

#[test]
fn a_container_that_never_gets_ready_is_an_error_and_is_removed() {
    if !docker_ready(&[BUSYBOX]) {
        return;
    }
    let dir = scratch(
        "never-ready",
        &format!(
            "[[target]]\nname = \"sleeper\"\nkind = \"container\"\nimage = \"{}\"\ntag = \"{}\"\n\
             container_port = 9000\ncontainer_args = [\"sleep\", \"600\"]\nready_path = \"/\"\n\
             start_timeout_s = 3\naccess_key = \"a\"\nsecret_key = \"b\"\n",
            BUSYBOX.split(':').next().unwrap(),
            BUSYBOX.split(':').nth(1).unwrap()
        ),
    );
    let child = spawn(
        &dir.0,
        &["--target", "sleeper", "put-if-none-match-new-key"],
    );
    let pid = child.id();
    let out = finish(child, Duration::from_secs(120));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("did not start"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("was not ready (/ did not answer) after 3 s"),
        "{stderr}"
    );
    assert_eq!(
        containers_of(pid),
        Vec::<String>::new(),
        "a container outlived the failed start"
    );
}

/// Starts a run on seaweedfs-container, waits until its container runs,
/// sends `signal` and checks the exit code and that the container is gone.
fn interrupted_run_removes_its_container(signal: i32, code: i32, word: &str) {
    if !docker_ready(&[SEAWEEDFS]) {
        return;
    }
    let child = spawn(&repo(), &["--target", "seaweedfs-container"]);
    let pid = child.id();
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.is_empty() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
        seen = containers_of(pid);
    }
    assert_eq!(seen.len(), 1, "the container never started");
    assert!(
        published_on(&seen[0]).iter().all(|ip| ip == "127.0.0.1"),
        "published on {:?}",
        published_on(&seen[0])
    );
    // Let it get ready and run a little.
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: signals the child we spawned.
    unsafe {
        libc::kill(pid as i32, signal);
    }
    let out = finish(child, Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{word}: stopped the servers and removed the containers"
        )),
        "{stderr}"
    );
    assert_eq!(
        containers_of(pid),
        Vec::<String>::new(),
        "a container outlived the run"
    );
}

#[test]
fn ctrl_c_removes_the_containers_the_run_started() {
    interrupted_run_removes_its_container(libc::SIGINT, 130, "interrupted");
}

#[test]
fn sigterm_removes_the_containers_the_run_started() {
    interrupted_run_removes_its_container(libc::SIGTERM, 143, "terminated");
}

#[test]
fn a_missing_image_is_one_clear_line_per_target() {
    if !docker_ready(&[]) {
        return;
    }
    let entry = |name: &str, tag: &str| {
        format!(
            "[[target]]\nname = \"{name}\"\nkind = \"container\"\nimage = \"condwrite.local/no-such-image\"\n\
             tag = \"{tag}\"\ncontainer_port = 9000\naccess_key = \"a\"\nsecret_key = \"b\"\n"
        )
    };
    let dir = scratch(
        "missing-image",
        &format!("{}\n{}", entry("gone-1", "1"), entry("gone-2", "2")),
    );
    let child = spawn(&dir.0, &["--target", "gone-1,gone-2"]);
    let pid = child.id();
    let out = finish(child, Duration::from_secs(120));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for (name, tag) in [("gone-1", "1"), ("gone-2", "2")] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("warning: target {name} did not start")))
            .collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].contains(&format!(
                "image condwrite.local/no-such-image:{tag} is not on the Docker engine and could not be pulled"
            )),
            "{stderr}"
        );
        assert!(lines[0].contains("scripts/build-images"), "{stderr}");
    }
    assert_eq!(containers_of(pid), Vec::<String>::new());
}
