//! Process targets: started, waited for, and stopped — or a clear error,
//! never a hang.

use condwrite::runner::Started;
use std::path::Path;
use std::time::{Duration, Instant};

use condwrite::catalog::Catalog;
use condwrite::engine;
use condwrite::runner;
use condwrite::targets::{LiveTarget, Targets};

fn spec(entry: &str) -> condwrite::targets::TargetSpec {
    let text = format!("[[target]]\nname = \"t\"\nkind = \"process\"\naccess_key = \"condwrite\"\nsecret_key = \"condwrite-local-secret\"\n{entry}\n");
    Targets::parse("test.toml", &text, Path::new("."))
        .unwrap()
        .targets
        .remove(0)
}

/// Every cell got its scenario's verdict on a correct store.
fn assert_baselines(catalog: &Catalog, cells: &[condwrite::report::CellResult]) {
    for cell in cells {
        let scenario = catalog
            .scenarios
            .iter()
            .find(|s| s.id == cell.scenario)
            .unwrap();
        assert_eq!(
            cell.judgement.verdict,
            scenario.baseline(),
            "{} on {}: {}",
            cell.scenario,
            cell.target,
            cell.judgement.reason
        );
    }
}

#[tokio::test]
async fn a_missing_program_says_how_to_install_it() {
    let s = spec("command = [\"/nonexistent/bin/server\", \"{port}\"]\ninstall = \"scripts/install-servers t\"");
    let err = LiveTarget::start(&s).await.unwrap_err();
    assert!(
        matches!(err, condwrite::targets::TargetError::NotInstalled(_)),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("not installed"), "{err}");
    assert!(err.contains("scripts/install-servers t"), "{err}");
}

#[tokio::test]
async fn a_server_that_exits_early_is_reported_with_its_last_log_lines() {
    let s =
        spec("command = [\"sh\", \"-c\", \"echo starting; echo boom: bad config >&2; exit 3\"]");
    let err = LiveTarget::start(&s).await.unwrap_err();
    assert!(
        matches!(err, condwrite::targets::TargetError::ExitedEarly(_)),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("exited early"), "{err}");
    assert!(err.contains("boom: bad config"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_gets_ready_times_out() {
    let s = spec("command = [\"sleep\", \"30\"]\nstart_timeout_s = 1");
    let started = Instant::now();
    let err = LiveTarget::start(&s).await.unwrap_err();
    assert!(
        matches!(err, condwrite::targets::TargetError::NeverReady(_)),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("not ready after 1 s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// condwrite's own `serve`, started as a process target: the whole path of
/// a local server (free port, readiness, bucket, clean-up, stop by pid).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_target_runs_the_catalog_and_is_stopped() {
    let exe = env!("CARGO_BIN_EXE_condwrite");
    let s = spec(&format!(
        "command = [\"{exe}\", \"serve\", \"--port\", \"{{port}}\"]\nready_path = \"/\""
    ));
    let catalog = Catalog::builtin().unwrap();
    let ran = runner::run(vec![s], &catalog, 4, &|e| {
        assert!(
            matches!(
                e,
                runner::Event::Starting { .. } | runner::Event::CellDone { .. }
            ),
            "{e:?}"
        )
    })
    .await;
    assert!(!ran.cleanup_failed);
    assert_eq!(ran.leftovers, vec![("t".to_owned(), Ok(vec![]))]);
    assert_eq!(ran.report.results.len(), catalog.scenarios.len());
    assert_baselines(&catalog, &ran.report.results);
    let url = ran.report.targets[0]
        .endpoint
        .clone()
        .expect("the URL it used");
    let addr = url.trim_start_matches("http://").to_owned();
    let refused = std::net::TcpStream::connect(addr).is_err();
    assert!(refused, "the server still accepts connections after stop");
}

/// Ctrl-C while a server starts: condwrite stops it, removes its folder and
/// exits 130, as a shell does.
#[test]
fn ctrl_c_stops_the_servers_the_run_started() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("condwrite-test-{}-sigint", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = format!("{}.{}", 40 + std::process::id() % 50, std::process::id());
    std::fs::write(
        dir.join("targets.toml"),
        format!(
            "[[target]]\nname = \"slow\"\nkind = \"process\"\ncommand = [\"sleep\", \"{marker}\"]\n\
             ready_path = \"/\"\nstart_timeout_s = 60\naccess_key = \"a\"\nsecret_key = \"b\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args(["--target", "slow"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = || {
        Command::new("pgrep")
            .args(["-f", &format!("sleep {marker}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let started = Instant::now();
    while !running() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running(), "the server never started");
    // SAFETY: sends SIGINT to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: stopped the servers"),
        "{stderr}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!running(), "the server outlived condwrite");
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("condwrite-slow-{}-", child.id()))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs one scenario of the built-in catalog on a started target.
async fn run_scenario(live: &Started, id: &str) -> engine::Judgement {
    let catalog = Catalog::builtin().unwrap();
    let scenario = catalog.scenarios.iter().find(|s| s.id == id).unwrap();
    engine::run(
        &live.site(),
        scenario,
        &format!("{}{id}/", live.live.prefix()),
    )
    .await
}

/// `condwrite serve --nodes 2` as a process target with two endpoints:
/// both must be ready, and the racers are spread over both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_cluster_spreads_its_racers_over_every_endpoint() {
    let exe = env!("CARGO_BIN_EXE_condwrite");
    let cluster = |fault: &str| {
        spec(&format!(
            "command = [\"{exe}\", \"serve\", \"--nodes\", \"2\", \"--port\", \"{{port}},{{port1}}\"{fault}]\n\
             ports = 2\nendpoints = [\"http://127.0.0.1:{{port}}\", \"http://127.0.0.1:{{port1}}\"]\n\
             ready_path = \"/\""
        ))
    };
    let live = Started::start(&cluster(""))
        .await
        .expect("the cluster starts");
    let j = run_scenario(&live, "race-if-none-match").await;
    live.stop().await.unwrap();
    assert_eq!(j.verdict, condwrite::model::Verdict::Pass, "{}", j.reason);
    assert!(
        j.reason.contains("racers spread over 2 endpoints"),
        "{}",
        j.reason
    );
    // Nodes that each lock on their own race across the two endpoints: only
    // spreading the racers over both catches it.
    let live = Started::start(&cluster(", \"--fault\", \"node-local-lock\""))
        .await
        .expect("the cluster starts");
    let j = run_scenario(&live, "race-if-none-match").await;
    live.stop().await.unwrap();
    assert_eq!(j.verdict, condwrite::model::Verdict::Unsafe, "{}", j.reason);
}

/// `ready_file`: a server that listens but has not written its file is not
/// ready; once the file is there, it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ready_file_is_waited_for() {
    let exe = env!("CARGO_BIN_EXE_condwrite");
    let never = spec(&format!(
        "command = [\"{exe}\", \"serve\", \"--port\", \"{{port}}\"]\nready_path = \"/\"\n\
         ready_file = \"{{dir}}/ready\"\nstart_timeout_s = 1"
    ));
    let err = LiveTarget::start(&never).await.unwrap_err().to_string();
    assert!(err.contains("not ready after 1 s"), "{err}");
    let later = spec(&format!(
        "command = [\"sh\", \"-c\", \"(sleep 1; touch {{dir}}/ready) & exec {exe} serve --port {{port}}\"]\n\
         ready_path = \"/\"\nready_file = \"{{dir}}/ready\"\nstart_timeout_s = 20"
    ));
    let started = Instant::now();
    let live = LiveTarget::start(&later)
        .await
        .expect("ready once the file is written");
    // It listened at once, but was not taken as ready before the file.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    live.stop().await.unwrap();
}

/// A target that is up runs its cells while another is still starting: the
/// slow target's server only starts once the fast target has finished a
/// cell, so a runner that waited for every target first would never see it
/// start (it would time out, and its cells would be errors).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_s_cells_start_as_soon_as_it_is_up() {
    let exe = env!("CARGO_BIN_EXE_condwrite");
    let dir = std::env::temp_dir().join(format!("condwrite-test-{}-ready", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let go = dir.join("go");
    let text = format!(
        "[[target]]\nname = \"fast\"\nkind = \"embedded\"\n\n\
         [[target]]\nname = \"slow\"\nkind = \"process\"\n\
         access_key = \"condwrite\"\nsecret_key = \"condwrite-local-secret\"\n\
         command = [\"sh\", \"-c\", \"while [ ! -e {go} ]; do sleep 0.05; done; exec {exe} serve --port {{port}}\"]\n\
         ready_path = \"/\"\nstart_timeout_s = 20\n",
        go = go.display()
    );
    let specs = Targets::parse("test.toml", &text, Path::new("."))
        .unwrap()
        .targets;
    let catalog = Catalog::builtin().unwrap();
    let one = Catalog {
        scenarios: catalog
            .scenarios
            .iter()
            .filter(|s| s.id.starts_with("put-if-none-match"))
            .cloned()
            .collect(),
    };
    let fast_done_first = std::sync::atomic::AtomicBool::new(false);
    let ran = runner::run(specs, &one, 4, &|e| {
        if let runner::Event::CellDone { target, .. } = &e {
            if target == "fast" && !go.exists() {
                fast_done_first.store(true, std::sync::atomic::Ordering::SeqCst);
                std::fs::write(&go, b"").unwrap();
            }
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(fast_done_first.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(ran.report.results.len(), 2 * one.scenarios.len());
    assert_baselines(&one, &ran.report.results);
}
