//! HTTPS endpoints with a private CA: `ca_file` in the target, or
//! `--ca-file`, makes condwrite trust it; without it, the certificate error
//! is one clear line that says what to do, at once, not a hang.
//!
//! The server is condwrite's reference server behind a TLS terminator on
//! loopback, with the test-only certificates of tests/fixtures/tls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

use condwrite::reference;
use condwrite::targets::{EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

/// The reference server behind TLS on loopback: `https://127.0.0.1:PORT`.
async fn https_reference() -> (
    String,
    reference::RunningServer,
    tokio::task::JoinHandle<()>,
) {
    let server = reference::start(
        reference::Options {
            faults: Vec::new(),
            access_key: EMBEDDED_ACCESS_KEY.into(),
            secret_key: EMBEDDED_SECRET_KEY.into(),
            nodes: 1,
            anonymous: false,
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    let upstream: SocketAddr = server.url().trim_start_matches("http://").parse().unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixtures().join("server.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(fixtures().join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (url, server, task)
}

fn run(dir: &Path, url: &str, ca_in_target: bool, extra: &[&str]) -> Output {
    let ca = fixtures().join("ca.pem");
    let ca_line = if ca_in_target {
        format!("ca_file = \"{}\"\n", ca.display())
    } else {
        String::new()
    };
    std::fs::write(
        dir.join("targets.toml"),
        format!(
            "[[target]]\nname = \"tls\"\nkind = \"endpoint\"\nurl = \"{url}\"\n{ca_line}\
             access_key_env = \"TLS_AK\"\nsecret_key_env = \"TLS_SK\"\n"
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args(["--target", "tls", "--request-timeout", "10"])
        .args(extra)
        .current_dir(dir)
        .env("TLS_AK", EMBEDDED_ACCESS_KEY)
        .env("TLS_SK", EMBEDDED_SECRET_KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("condwrite-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_through_ca_file_or_the_flag() {
    let (url, _server, task) = https_reference().await;
    let dir = scratch("tls-ok");
    let ca = fixtures().join("ca.pem").display().to_string();
    for (in_target, extra) in [(true, vec![]), (false, vec!["--ca-file", ca.as_str()])] {
        let (url, dir, extra) = (url.clone(), dir.clone(), extra.clone());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let mut args = extra.clone();
            args.push("put-if-none-match-new-key");
            run(&dir, &url, in_target, &args)
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
    }
    task.abort();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_one_clear_line_at_once() {
    let (url, _server, task) = https_reference().await;
    let dir = scratch("tls-untrusted");
    let started = Instant::now();
    let d = dir.clone();
    let out = tokio::task::spawn_blocking(move || run(&d, &url, false, &[]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: target tls did not start"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("certificate"), "{stderr}");
    assert!(lines[0].contains("ca_file"), "{stderr}");
    // Well inside one request timeout (10 s): a handshake error, no wait.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    task.abort();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_ca_file_that_is_not_there_is_bad_input() {
    let dir = scratch("tls-missing");
    let out = run(
        &dir,
        "https://127.0.0.1:9",
        false,
        &["--ca-file", "/nonexistent/ca.pem"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ca-file /nonexistent/ca.pem"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
