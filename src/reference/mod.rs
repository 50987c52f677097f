//! The embedded reference S3 server.
//!
//! A real S3 HTTP server (the `s3s` crate does routing, SigV4 and XML) on
//! 127.0.0.1, in memory, with AWS's conditional-write semantics: the
//! precondition is checked and the write applied under one lock, so a
//! conditional write is atomic per key. It is the default target, the oracle
//! the catalog is tested against, and — with [`Fault`]s switched on — the
//! mutant that proves each scenario can fail. `condwrite serve` runs it on
//! its own for people who want a strict local S3 to develop against.
//!
//! The engine never calls into this module directly; it only talks to the
//! server over HTTP, like to any other target.
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod checks;
mod clock;
mod faults;
mod object;
mod s3;
mod store;
#[cfg(test)]
mod tests;

pub use faults::Fault;
use store::{Reference, State};

/// Settings of one reference server.
#[derive(Clone)]
pub struct Options {
    /// The faults switched on (none: AWS semantics).
    pub faults: Vec<Fault>,
    /// The access key requests must be signed with.
    pub access_key: String,
    /// The secret key requests must be signed with; never printed.
    pub secret_key: String,
    /// How many nodes (listening ports) serve the one shared store, like
    /// the endpoints of a clustered store (at least 1).
    pub nodes: usize,
    /// Accept unsigned requests only (no signature is checked, and a signed
    /// one is refused): for tests whose gateways rewrite requests.
    pub anonymous: bool,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("faults", &self.faults)
            .field("access_key", &self.access_key)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// A server running on the current tokio runtime.
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT` of the first node.
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// The URL of every node, the first node's first.
    pub fn urls(&self) -> Vec<String> {
        self.addrs.iter().map(|a| format!("http://{a}")).collect()
    }

    /// Stops accepting connections and drops the store.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Binds `addr` (port 0 picks a free one; further nodes always pick a free
/// port) and serves until stopped.
pub async fn start(options: Options, addr: SocketAddr) -> std::io::Result<RunningServer> {
    start_at(options, addr.ip(), &[addr.port()]).await
}

/// Serves on 127.0.0.1: node `i` on `ports[i]` (0, or no entry, picks a
/// free port).
pub async fn start_on(options: Options, ports: &[u16]) -> std::io::Result<RunningServer> {
    start_at(options, std::net::IpAddr::from([127, 0, 0, 1]), ports).await
}

async fn start_at(
    options: Options,
    ip: std::net::IpAddr,
    ports: &[u16],
) -> std::io::Result<RunningServer> {
    let state: Arc<Mutex<State>> = Arc::default();
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    let started = std::time::Instant::now();
    for node in 0..options.nodes.max(1) {
        let bind = SocketAddr::new(ip, ports.get(node).copied().unwrap_or(0));
        let listener = TcpListener::bind(bind).await?;
        addrs.push(listener.local_addr()?);
        let reference = Reference {
            state: state.clone(),
            faults: options.faults.clone(),
            node_lock: Arc::default(),
            started,
        };
        let mut builder = S3ServiceBuilder::new(reference);
        if !options.anonymous {
            builder.set_auth(SimpleAuth::from_single(
                options.access_key.clone(),
                options.secret_key.clone(),
            ));
        }
        let service = builder.build();
        tasks.push(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                let stream = clock::Clocked::new(stream, started);
                let last_read = stream.last_read();
                // Each request carries its connection's clock to the handler.
                let service = hyper::service::service_fn(move |mut req| {
                    req.extensions_mut().insert(last_read.clone());
                    let condition = condition_of(req.headers());
                    let answer = hyper::service::Service::call(&service, req);
                    async move {
                        Ok::<_, s3s::HttpError>(name_the_condition(answer.await?, condition).await)
                    }
                });
                connections.spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        }));
    }
    Ok(RunningServer { addrs, tasks })
}

/// The conditional header a 412 answer names in its `<Condition>` element,
/// as AWS's does (clients read it: s3fs raises FileExistsError only for a
/// 412 whose body says `<Condition>If-None-Match</Condition>`).
fn condition_of(headers: &http::HeaderMap) -> Option<&'static str> {
    [
        "If-Match",
        "If-None-Match",
        "If-Unmodified-Since",
        "x-amz-copy-source-if-match",
        "x-amz-copy-source-if-unmodified-since",
    ]
    .into_iter()
    .find(|h| headers.contains_key(*h))
}

/// Adds `<Condition>` to a 412 error body (s3s writes Code and Message
/// only).
async fn name_the_condition(
    answer: s3s::HttpResponse,
    condition: Option<&'static str>,
) -> s3s::HttpResponse {
    use http_body_util::BodyExt;
    let Some(condition) = condition else {
        return answer;
    };
    if answer.status() != http::StatusCode::PRECONDITION_FAILED {
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    let Ok(collected) = body.collect().await else {
        return s3s::HttpResponse::from_parts(parts, s3s::Body::empty());
    };
    let text = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
    let text = match text.rfind("</Error>") {
        Some(at) if !text.contains("<Condition>") => format!(
            "{}<Condition>{condition}</Condition>{}",
            &text[..at],
            &text[at..]
        ),
        _ => text,
    };
    parts
        .headers
        .insert(http::header::CONTENT_LENGTH, text.len().into());
    s3s::HttpResponse::from_parts(parts, s3s::Body::from(text))
}
