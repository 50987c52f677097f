//! Process targets: started, waited for, and stopped — or a clear error,
//! never a hang.

use std::path::Path;
use std::time::{Duration, Instant};

use condwrite::catalog::Catalog;
use condwrite::engine;
use condwrite::target::{LiveTarget, Targets};

fn spec(entry: &str) -> condwrite::target::TargetSpec {
    let text = format!("[[target]]\nname = \"t\"\nkind = \"process\"\naccess_key = \"condwrite\"\nsecret_key = \"condwrite-local-secret\"\n{entry}\n");
    Targets::parse("test.toml", &text, Path::new("."))
        .unwrap()
        .targets
        .remove(0)
}

#[tokio::test]
async fn a_missing_program_says_how_to_install_it() {
    let s = spec("command = [\"/nonexistent/bin/server\", \"{port}\"]\ninstall = \"scripts/install-servers t\"");
    let err = LiveTarget::start(&s).await.unwrap_err();
    assert!(err.contains("not installed"), "{err}");
    assert!(err.contains("scripts/install-servers t"), "{err}");
}

#[tokio::test]
async fn a_server_that_exits_early_is_reported_with_its_last_log_lines() {
    let s =
        spec("command = [\"sh\", \"-c\", \"echo starting; echo boom: bad config >&2; exit 3\"]");
    let err = LiveTarget::start(&s).await.unwrap_err();
    assert!(err.contains("exited early"), "{err}");
    assert!(err.contains("boom: bad config"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_gets_ready_times_out() {
    let s = spec("command = [\"sleep\", \"30\"]\nstart_timeout_s = 1");
    let started = Instant::now();
    let err = LiveTarget::start(&s).await.unwrap_err();
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
    let live = LiveTarget::start(&s)
        .await
        .expect("serve starts as a process");
    let url = live.settings.endpoint_url.clone();
    let catalog = Catalog::builtin().unwrap();
    for scenario in &catalog.scenarios {
        let prefix = format!("{}p/{}/", live.prefix(), scenario.id);
        let j = engine::run(&live.site(), scenario, &prefix).await;
        assert_eq!(
            j.verdict,
            scenario.baseline(),
            "{}: {}",
            scenario.id,
            j.reason
        );
    }
    live.stop().await.unwrap();
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
