//! The `condwrite` binary as a user runs it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use bytes::Bytes;
use condwrite::store::{ClientSettings, Precondition, Store};
use condwrite::target::{EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY};

fn condwrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args(args)
        // Run outside the repository so the built-in targets file is used.
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("condwrite runs")
}

/// How many scenarios the built-in catalog has.
fn scenarios() -> usize {
    condwrite::catalog::Catalog::builtin()
        .unwrap()
        .scenarios
        .len()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh folder under the system temp dir, removed when dropped (also
/// when an assertion fails).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("condwrite-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// The matrix row of scenario `id`.
fn matrix_row<'a>(stdout: &'a str, id: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with('│') && l.contains(&format!(" {id} ")))
        .unwrap_or_else(|| panic!("no matrix row for {id}:\n{stdout}"))
}

fn assert_no_panic(out: &Output) {
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn the_default_run_prints_an_all_pass_matrix() {
    let out = condwrite(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let n = scenarios();
    assert!(
        stdout.contains(&format!("test result: ok. {n} passed; 0 failed")),
        "{stdout}"
    );
    let catalog = condwrite::catalog::Catalog::builtin().unwrap();
    let info = catalog.scenarios.iter().filter(|s| s.informational).count();
    assert!(info >= 1, "the catalog has an informational scenario");
    for s in &catalog.scenarios {
        let row = matrix_row(&stdout, &s.id);
        let want = if s.informational { "info" } else { "pass" };
        assert!(row.contains(want), "{row}");
        if s.informational {
            // The property is said in the reasons, never as a failure.
            assert!(
                stdout.contains(&format!("embedded / {}: info: ", s.id)),
                "{stdout}"
            );
        }
    }
    assert!(
        stdout.contains(&format!(
            "{n} cells over 1 target(s): {} pass, {info} info, 0 deviates",
            n - info
        )),
        "{stdout}"
    );
}

#[test]
fn a_racy_target_fails_the_run_and_the_json_says_why() {
    let dir = scratch("json");
    let json = dir.join("result.json");
    let out = condwrite(&[
        "--target",
        "embedded,embedded-racy",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(101), "{stdout}");
    assert_no_panic(&out);
    assert!(
        stdout.contains(&format!(
            "test result: FAILED. {} passed; 3 failed",
            2 * scenarios() - 3
        )),
        "{stdout}"
    );
    let row = matrix_row(&stdout, "race-if-none-match");
    assert!(row.contains("pass") && row.contains("unsafe"), "{row}");
    assert!(
        stdout.contains("embedded-racy / race-if-match: unsafe:"),
        "{stdout}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2 * scenarios());
    for r in results {
        // The races and the counter are what a racy server gets wrong.
        let id = r["scenario"].as_str().unwrap();
        let racy_race =
            r["target"] == "embedded-racy" && (id.starts_with("race-") || id == "cas-counter");
        let want = if racy_race {
            "unsafe"
        } else if id == "put-aba" {
            "info"
        } else {
            "pass"
        };
        assert_eq!(r["verdict"], want, "{r}");
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        assert!(r["duration_ms"].is_u64(), "{r}");
    }
    assert_eq!(report["tool_version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn strict_fails_on_a_deviation_and_default_does_not() {
    let args = [
        "--target",
        "embedded-missing-if-match-412",
        "put-if-match-missing-key",
    ];
    let out = condwrite(&args);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("deviates"));
    let mut strict = args.to_vec();
    strict.push("--strict");
    let out = condwrite(&strict);
    assert_eq!(out.status.code(), Some(101), "{}", text(&out.stdout));
}

#[test]
fn an_unknown_target_is_an_error_naming_the_known_ones() {
    let out = condwrite(&["--target", "embedded,nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert_no_panic(&out);
    let err = text(&out.stderr);
    assert!(err.contains("error: unknown target `nosuch`"), "{err}");
    for known in ["embedded", "embedded-racy", "embedded-ignore-if-match"] {
        assert!(err.contains(known), "{err}");
    }
    assert!(
        out.stdout.is_empty(),
        "nothing should run: {}",
        text(&out.stdout)
    );
}

#[test]
fn a_malformed_suite_file_is_reported_with_file_line_and_column() {
    let dir = scratch("suites");
    std::fs::write(
        dir.join("bad.toml"),
        "[[scenario]]\nid = \"x\"\ntitle = \"t\"\noperation = \"PutObject\"\n\
         aws_doc = \"d\"\naws_says = \"s\"\n\n[[scenario.steps]]\ndo = \"put\"\nkey = \"k\"\n\
         body = \"b\"\nif_none_match = \"*\"\nexpekt = { status = 200 }\n",
    )
    .unwrap();
    let out = condwrite(&["--suites", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_no_panic(&out);
    let err = text(&out.stderr);
    let place = format!(
        "{}:13:1: unknown field `expekt`",
        dir.join("bad.toml").display()
    );
    assert!(err.contains(&place), "{err}");
    assert!(err.contains("expected one of"), "{err}");

    std::fs::write(dir.join("bad.toml"), "[[scenario]]\nid = \"x\"\ntitle = \n").unwrap();
    let out = condwrite(&["--suites", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml:3:"), "{err}");
}

#[test]
fn list_names_every_trial_without_running_any() {
    let out = condwrite(&["--list", "--target", "embedded,embedded-racy"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("[embedded] put-if-match-stale: test"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[embedded-racy] race-if-match: test"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with(": test")).count(),
        2 * scenarios(),
        "{stdout}"
    );
    assert!(!stdout.contains("cells over"), "{stdout}");
}

#[test]
fn serve_runs_a_reference_server_that_an_sdk_client_can_use() {
    let served = common::Served::start();
    let url = served.url.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(async {
        let settings = ClientSettings::local(url, EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY);
        let store = Store::new(&settings, "dev");
        store.create_bucket().await.unwrap();
        let first = store
            .put(
                "k",
                Bytes::from_static(b"one"),
                &Precondition::create_only(),
            )
            .await
            .unwrap();
        let second = store
            .put(
                "k",
                Bytes::from_static(b"two"),
                &Precondition::create_only(),
            )
            .await
            .unwrap();
        let read = store.get("k", &Precondition::none()).await.unwrap();
        (first, second, read)
    });
    drop(served);
    let (first, second, read) = result;
    assert_eq!(first.status, 200);
    // MD5 of "one", quoted, as AWS makes a single-part ETag.
    assert_eq!(
        first.etag.as_ref().map(|e| e.as_str()),
        Some("\"f97c5d29941bfb1b2fdab0874906ab82\"")
    );
    assert_eq!(second.status_line(), "412 PreconditionFailed");
    assert_eq!(read.body.as_deref(), Some(&b"one"[..]));
}

#[test]
fn serve_on_a_busy_port_says_what_to_do() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = condwrite(&["serve", "--port", &port]);
    assert_eq!(out.status.code(), Some(2));
    assert_no_panic(&out);
    assert!(
        text(&out.stderr).contains("pick another port with --port"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn minio_without_a_docker_engine_fails_cleanly_in_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args(["--target", "minio*"])
        .current_dir(std::env::temp_dir())
        // No engine at this address, whatever the machine has.
        .env("DOCKER_HOST", "unix:///nonexistent/condwrite/docker.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(101));
    assert_no_panic(&out);
    let stderr = text(&out.stderr);
    let docker_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: no Docker engine answers"))
        .collect();
    assert_eq!(docker_lines.len(), 1, "{stderr}");
    assert!(docker_lines[0].contains("start Docker"), "{stderr}");
    for t in [
        "minio",
        "minio-2025-07",
        "minio-2024-08",
        "minio-2024-01",
        "minio-2022-10",
    ] {
        assert!(docker_lines[0].contains(t), "{stderr}");
    }
    let stdout = text(&out.stdout);
    let n = scenarios();
    assert!(stdout.contains(&format!("{} error", 5 * n)), "{stdout}");
    assert!(stdout.contains(&format!("all {n} cells error")), "{stdout}");
}

#[test]
fn list_prints_the_catalog_for_terminals_and_docs() {
    let out = condwrite(&["list"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.ends_with(&format!("{} scenarios\n", scenarios())),
        "{stdout}"
    );
    assert!(stdout.contains("delete-if-match-stale"), "{stdout}");
    let out = condwrite(&["list", "--format", "markdown"]);
    assert!(out.status.success());
    let md = text(&out.stdout);
    assert!(md.starts_with("# The condwrite catalog"), "{md}");
    assert!(
        md.contains("## DeleteObject") && md.contains("## HeadObject"),
        "{md}"
    );
    let out = condwrite(&["list", "--format", "html"]);
    assert_eq!(out.status.code(), Some(2));
    assert_no_panic(&out);
}
