//! A hostile S3 server on loopback, for `scripts/bench-reliability`: serves
//! until killed, after printing its URL on the first line.
//!
//!     cargo run --example hostile -- MODE
//!
//! MODE: hang, garbage, close, error-500, huge-header, endless-body, yes (a
//! server of its own), or hang-conditional (a gateway in front of
//! condwrite's reference server that never answers a conditional request).

// An example is a program of its own: it speaks.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/it/common/gateway.rs"]
#[allow(dead_code)]
mod gateway;
#[path = "../tests/it/common/hostile.rs"]
#[allow(dead_code)]
mod hostile;

use std::io::Write;
use std::net::SocketAddr;

use condwrite::reference;
use condwrite::targets::{EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY};

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut keep = Vec::new();
    let url = if mode == "hang-conditional" {
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
        .expect("the reference server starts");
        let gw = gateway::Gateway::start(&server.url(), gateway::Mode::HangConditional).await;
        let url = gw.url.clone();
        keep.push(Box::new((server, gw)) as Box<dyn std::any::Any>);
        url
    } else {
        let Some(h) = hostile::Hostile::ALL.into_iter().find(|h| h.name() == mode) else {
            let known: Vec<&str> = hostile::Hostile::ALL.iter().map(|h| h.name()).collect();
            eprintln!(
                "usage: hostile MODE; MODE is one of {}, hang-conditional",
                known.join(", ")
            );
            std::process::exit(2);
        };
        let server = hostile::start(h).await;
        let url = server.url.clone();
        keep.push(Box::new(server));
        url
    };
    println!("{url}");
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
}
