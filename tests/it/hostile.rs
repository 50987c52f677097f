//! condwrite against hostile servers, as a user runs it: servers that hang,
//! answer garbage, close, answer 500 to everything, send a 1 MiB header or
//! a body that never ends, say yes to everything; gateways that hold only
//! conditional writes, drop the conditional headers, or answer 409 to some
//! of them. Every run completes in bounded time, without a panic, with the
//! documented exit code, the right verdicts, and one readable reason per
//! target.

use crate::common::gateway;
use crate::common::hostile;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use condwrite::model::Verdict;
use condwrite::reference::{self, RunningServer};
use condwrite::report::Report;
use condwrite::targets::{EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY};
use gateway::{Gateway, Mode};
use hostile::Hostile;

/// What one run of the CLI gave.
struct Run {
    code: Option<i32>,
    stderr: String,
    stdout: String,
    cells: BTreeMap<String, (Verdict, String)>,
    took: Duration,
}

/// Runs the catalog with the CLI on an endpoint target at `url` (its own
/// bucket, made and removed by the run), each request given
/// `timeout_s`, killed (and failed) after `limit`.
async fn run_cli(url: &str, timeout_s: u64, limit: Duration, extra: &[&str]) -> Run {
    let dir = std::env::temp_dir().join(format!(
        "condwrite-test-{}-hostile-{}",
        std::process::id(),
        url.rsplit(':').next().unwrap_or("x")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let targets = dir.join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\nname = \"hostile\"\nkind = \"endpoint\"\nurl = \"{url}\"\n\
             access_key_env = \"HOSTILE_AK\"\nsecret_key_env = \"HOSTILE_SK\"\n"
        ),
    )
    .unwrap();
    let json = dir.join("out.json");
    let mut args: Vec<String> = vec![
        "--targets-file".into(),
        targets.display().to_string(),
        "--target".into(),
        "hostile".into(),
        "--request-timeout".into(),
        timeout_s.to_string(),
        "--json".into(),
        json.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args(&args)
        .current_dir(&dir)
        .env("HOSTILE_AK", EMBEDDED_ACCESS_KEY)
        .env("HOSTILE_SK", EMBEDDED_SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let id = child.id();
        let waiter = std::thread::spawn(move || child.wait_with_output());
        let deadline = Instant::now() + limit;
        while !waiter.is_finished() {
            if Instant::now() > deadline {
                // SAFETY: kills the child we spawned.
                unsafe {
                    libc::kill(id as i32, libc::SIGKILL);
                }
                let out = waiter.join().unwrap().unwrap();
                panic!(
                    "condwrite still ran after {limit:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        waiter.join().unwrap().unwrap()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let cells = Report::load(&json)
        .map(|r| {
            r.results
                .into_iter()
                .map(|c| (c.scenario, (c.judgement.verdict, c.judgement.reason)))
                .collect()
        })
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    Run {
        code: out.status.code(),
        stderr,
        stdout,
        cells,
        took,
    }
}

fn scenarios() -> usize {
    condwrite::catalog::Catalog::builtin()
        .unwrap()
        .scenarios
        .len()
}

/// The "reasons:" lines of the target after the matrix.
fn reason_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| *l != "reasons:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect()
}

async fn reference(anonymous: bool) -> RunningServer {
    reference::start(
        reference::Options {
            faults: Vec::new(),
            access_key: EMBEDDED_ACCESS_KEY.into(),
            secret_key: EMBEDDED_SECRET_KEY.into(),
            nodes: 1,
            anonymous,
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap()
}

/// Servers that never let a run start: every cell is `error`, said once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_that_do_not_answer_s3_fail_the_run_in_one_line() {
    for h in [
        Hostile::Hang,
        Hostile::Garbage,
        Hostile::Close,
        Hostile::Error500,
        Hostile::HugeHeader,
    ] {
        let server = hostile::start(h).await;
        let run = run_cli(&server.url, 2, Duration::from_secs(90), &[]).await;
        let name = h.name();
        assert_eq!(run.code, Some(101), "{name}: {}", run.stderr);
        let started: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("warning: target hostile did not start"))
            .collect();
        assert_eq!(started.len(), 1, "{name}: {}", run.stderr);
        let n = scenarios();
        assert_eq!(run.cells.len(), n, "{name}");
        assert!(
            run.cells.values().all(|(v, _)| *v == Verdict::Error),
            "{name}: {:?}",
            run.cells
        );
        let lines = reason_lines(&run.stdout);
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        assert!(
            lines[0].contains(&format!("all {n} cells error: the target did not start")),
            "{name}: {lines:?}"
        );
        assert!(run.took < Duration::from_secs(60), "{name}: {:?}", run.took);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_says_yes_to_everything_passes_nothing() {
    let server = hostile::start(Hostile::Yes).await;
    let run = run_cli(&server.url, 5, Duration::from_secs(240), &[]).await;
    assert_eq!(run.code, Some(101), "{}", run.stderr);
    assert_eq!(run.cells.len(), scenarios());
    let passed: Vec<&String> = run
        .cells
        .iter()
        .filter(|(_, (v, _))| *v == Verdict::Pass)
        .map(|(id, _)| id)
        .collect();
    assert!(passed.is_empty(), "passed on a yes-server: {passed:?}");
    assert!(
        run.cells.values().any(|(v, _)| *v == Verdict::Unsafe),
        "{:?}",
        run.cells
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_never_ends_is_read_no_further_than_anything_written() {
    let server = hostile::start(Hostile::EndlessBody).await;
    let run = run_cli(&server.url, 5, Duration::from_secs(240), &[]).await;
    assert_eq!(run.code, Some(101), "{}", run.stderr);
    assert_eq!(run.cells.len(), scenarios());
    assert!(
        run.cells
            .values()
            .all(|(v, _)| matches!(v, Verdict::Unsafe | Verdict::Error | Verdict::Deviates)),
        "{:?}",
        run.cells
    );
    assert!(
        run.cells
            .values()
            .any(|(_, r)| r.contains("a body longer than any object this run wrote")),
        "{:?}",
        run.cells
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_holds_conditional_writes_is_given_up_on_after_a_few_timeouts() {
    let upstream = reference(false).await;
    let gw = Gateway::start(&upstream.url(), Mode::HangConditional).await;
    let run = run_cli(&gw.url, 2, Duration::from_secs(120), &[]).await;
    assert_eq!(run.code, Some(101), "{}", run.stderr);
    // A catalog's worth of timeouts would be minutes; a few are seconds.
    assert!(run.took < Duration::from_secs(60), "{:?}", run.took);
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("stopped answering conditional requests"))
        .collect();
    assert_eq!(said.len(), 1, "{}", run.stderr);
    assert!(
        said[0].starts_with("warning: target hostile:"),
        "{}",
        said[0]
    );
    let stalled = run
        .cells
        .values()
        .filter(|(v, r)| *v == Verdict::Error && r.contains("stopped answering"))
        .count();
    // Cells already in flight when the stall rule trips time out on their
    // own (error, the outcome unknown); the later ones are not sent.
    assert!(stalled >= 2, "{:?}", run.cells);
    assert!(
        run.cells
            .values()
            .all(|(v, _)| matches!(v, Verdict::Error | Verdict::Pass)),
        "{:?}",
        run.cells
    );
    assert!(
        run.cells
            .values()
            .filter(|(v, _)| *v == Verdict::Error)
            .count()
            > scenarios() / 2,
        "{:?}",
        run.cells
    );
    assert!(
        run.cells.values().all(|(v, _)| *v != Verdict::Unsafe),
        "{:?}",
        run.cells
    );
    // The cells the stall ended share one line.
    assert!(
        reason_lines(&run.stdout)
            .iter()
            .any(|l| l.contains(" cells (") && l.contains("stopped answering")),
        "{}",
        run.stdout
    );
}

/// The scenarios whose conditions must refuse a write that would change the
/// object: with the headers gone, each of these writes lands. (A DELETE of a
/// missing key changes nothing, and only deviates; DeleteObjects carries its
/// ETags in the body, which the gateway leaves alone.)
const MUST_REFUSE: [&str; 18] = [
    "copy-if-none-match-existing",
    "copy-if-match-stale",
    "delete-if-match-stale",
    "mpu-if-none-match-existed",
    "mpu-if-none-match-created-during",
    "mpu-if-match-stale",
    "put-if-none-match-existing-key",
    "put-if-match-stale",
    "put-if-match-missing-key",
    "put-if-none-match-etag",
    "put-both-headers",
    "put-if-match-weak-stale",
    "put-if-match-list-stale",
    "put-if-match-star-missing-key",
    "race-if-none-match",
    "race-if-match",
    "cas-counter",
    "versioning-if-match-delete-marker",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_that_drops_the_conditional_headers_is_unsafe_exactly_where_a_condition_must_refuse(
) {
    let upstream = reference(true).await;
    let gw = Gateway::start(&upstream.url(), Mode::StripConditions).await;
    let run = run_cli(&gw.url, 10, Duration::from_secs(240), &[]).await;
    assert_eq!(run.code, Some(101), "{}", run.stderr);
    let unsafe_: Vec<&str> = run
        .cells
        .iter()
        .filter(|(_, (v, _))| *v == Verdict::Unsafe)
        .map(|(id, _)| id.as_str())
        .collect();
    let mut want: Vec<&str> = MUST_REFUSE.to_vec();
    want.sort();
    assert_eq!(unsafe_, want, "{:#?}", run.cells);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_that_answers_409_to_some_conditional_writes_leaves_the_races_and_the_counter_passing(
) {
    let upstream = reference(false).await;
    let gw = Gateway::start(&upstream.url(), Mode::Conflict409 { every: 3 }).await;
    let run = run_cli(&gw.url, 10, Duration::from_secs(240), &[]).await;
    assert!(
        gw.conflicts.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the gateway refused nothing"
    );
    for id in ["race-if-none-match", "race-if-match", "cas-counter"] {
        let (v, r) = &run.cells[id];
        assert_eq!(*v, Verdict::Pass, "{id}: {r}");
    }
    // Elsewhere a 409 is only an answer that differs from AWS's.
    for (id, (v, r)) in &run.cells {
        assert!(
            matches!(v, Verdict::Pass | Verdict::Info | Verdict::Deviates),
            "{id}: {v}: {r}"
        );
    }
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}
