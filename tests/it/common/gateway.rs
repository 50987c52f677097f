//! Gateways in front of an S3 server, for the tests: on loopback, bounded,
//! and imperfect in ways that are not data loss — the answers a real network
//! loses, the stale reads a caching tier serves. A correct store behind them
//! must never be graded `unsafe`; a faulty one must still be caught.
//!
//! Requests are forwarded verbatim (the SigV4 signature covers the Host
//! header, which is passed on unchanged), one upstream connection per
//! request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// How the gateway misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Forwards everything; one in `every` conditional writes (a PUT, POST
    /// or DELETE with If-Match or If-None-Match), chosen by [`picked`], is
    /// forwarded, its answer awaited, and then the connection is dropped
    /// without an answer, as a load balancer's idle timeout or a reset does.
    DropAnswers { every: u32 },
    /// For `window` after a write to an object, an unconditional GET or
    /// HEAD of it is answered with what the gateway cached for it before the
    /// write, as an eventually consistent read path does.
    StaleReads { window: Duration },
    /// Forwards everything but a request that carries If-Match or
    /// If-None-Match: that one is never answered.
    HangConditional,
    /// Forwards everything with If-Match, If-None-Match and the signature
    /// removed (the upstream must take unsigned requests): a proxy that
    /// drops the headers it does not know.
    StripConditions,
    /// Answers one in `every` conditional writes, chosen by [`picked`], 409
    /// ConditionalRequestConflict without forwarding it, as AWS may when it
    /// sees a conflicting operation; forwards everything else.
    Conflict409 { every: u32 },
    /// Forwards everything as it is (to count what is in flight).
    Forward,
    /// Answers every DELETE, and every DeleteObjects (`POST ?delete`), 403
    /// AccessDenied without forwarding it: a key that may write and read
    /// but not delete.
    RefuseDeletes,
}

/// A cached answer.
#[derive(Clone)]
struct Cached {
    status: hyper::StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Cache {
    /// The last answer to an unconditional GET/HEAD, by method and path.
    fresh: HashMap<(String, String), Cached>,
    /// The answers frozen at a write, with the write's time.
    frozen: HashMap<(String, String), (Instant, Cached)>,
    /// How often each conditional write was seen, by its hash ([`picked`]).
    seen: HashMap<u64, u32>,
}

/// A running gateway; stops when dropped.
pub struct Gateway {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Requests answered by dropping the connection.
    pub dropped: Arc<AtomicU32>,
    /// Reads answered from the stale cache.
    pub stale: Arc<AtomicU32>,
    /// Requests answered 409 without being forwarded.
    pub conflicts: Arc<AtomicU32>,
    /// The most requests that were in flight at once since the last
    /// [`Gateway::reset_in_flight`].
    pub most_in_flight: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Starts counting the most requests in flight at once again.
    pub fn reset_in_flight(&self) {
        self.most_in_flight.store(0, Ordering::SeqCst);
    }
}

/// Counts a request in flight until dropped.
struct Flying(Arc<AtomicU32>);

impl Flying {
    fn new(now: &Arc<AtomicU32>, most: &AtomicU32) -> Self {
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(n, Ordering::SeqCst);
        Flying(now.clone())
    }
}

impl Drop for Flying {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_conditional_write(req: &Request<Incoming>) -> bool {
    matches!(req.method().as_str(), "PUT" | "POST" | "DELETE")
        && (req.headers().contains_key("if-match") || req.headers().contains_key("if-none-match"))
}

fn is_conditional(headers: &hyper::HeaderMap) -> bool {
    [
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "range",
    ]
    .iter()
    .any(|h| headers.contains_key(*h))
}

/// Whether the gateway picks this request (one in `every`): by what the
/// request is, not by when it arrives, so that concurrent cells interleaving
/// differently from run to run lose the same answers every run. The choice
/// hashes (FNV-1a) the method, the path without its first segment (the
/// bucket, whose name is fresh per run), the query's parameter names (an
/// upload id is fresh too), the conditional headers and the body: the same
/// scenario step, or the same racer of the same round, is picked or not
/// every time. A request sent again the same (a CAS worker's retry after a
/// 409) counts its repeats: the `n`-th copy is picked or not, the same way
/// every run, so that a retry can get through.
pub fn picked(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    every: u32,
    seen: &mut HashMap<u64, u32>,
) -> bool {
    fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
        for b in bytes.iter().chain([0xffu8].iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| h = fnv(h, bytes);
    eat(parts.method.as_str().as_bytes());
    let path = parts.uri.path().trim_start_matches('/');
    eat(path.split_once('/').map_or("", |(_, key)| key).as_bytes());
    for pair in parts.uri.query().unwrap_or("").split('&') {
        eat(pair.split('=').next().unwrap_or("").as_bytes());
    }
    for name in ["if-match", "if-none-match"] {
        eat(parts.headers.get(name).map_or(&b""[..], |v| v.as_bytes()));
    }
    eat(body);
    let n = seen.entry(h).or_default();
    *n += 1;
    fnv(h, &n.to_le_bytes()).is_multiple_of(u64::from(every.max(1)))
}

/// Sends one request upstream on a connection of its own.
async fn forward(
    upstream: SocketAddr,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Cached, String> {
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    for (k, v) in &parts.headers {
        req = req.header(k, v);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Cached {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

fn respond(c: Cached) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(c.body));
    *res.status_mut() = c.status;
    for (k, v) in &c.headers {
        if k != "transfer-encoding" && k != "connection" {
            res.headers_mut().insert(k, v.clone());
        }
    }
    res
}

impl Gateway {
    /// Starts a gateway on a free loopback port in front of `upstream`
    /// (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str, mode: Mode) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("an http://127.0.0.1:PORT upstream");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let dropped = Arc::new(AtomicU32::new(0));
        let stale = Arc::new(AtomicU32::new(0));
        let conflicts = Arc::new(AtomicU32::new(0));
        let cache: Arc<Mutex<Cache>> = Arc::default();
        let (d, s, c) = (dropped.clone(), stale.clone(), conflicts.clone());
        let most_in_flight = Arc::new(AtomicU32::new(0));
        let now_in_flight = Arc::new(AtomicU32::new(0));
        let (most, now) = (most_in_flight.clone(), now_in_flight.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (dropped, stale, conflicts, cache) =
                    (d.clone(), s.clone(), c.clone(), cache.clone());
                let (most, now) = (most.clone(), now.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (dropped, stale, conflicts, cache) = (
                            dropped.clone(),
                            stale.clone(),
                            conflicts.clone(),
                            cache.clone(),
                        );
                        let flying = Flying::new(&now, &most);
                        async move {
                            let _flying = flying;
                            if matches!(mode, Mode::RefuseDeletes)
                                && (req.method() == "DELETE"
                                    || (req.method() == "POST"
                                        && req.uri().query().is_some_and(|q| {
                                            q.split('&').any(|p| p == "delete" || p == "delete=")
                                        })))
                            {
                                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
                                let mut res = Response::new(Full::new(Bytes::from(body)));
                                *res.status_mut() = hyper::StatusCode::FORBIDDEN;
                                res.headers_mut()
                                    .insert("content-type", "application/xml".parse().unwrap());
                                return Ok(res);
                            }
                            let conditional = req.headers().contains_key("if-match")
                                || req.headers().contains_key("if-none-match");
                            if matches!(mode, Mode::HangConditional) && conditional {
                                std::future::pending::<()>().await;
                            }
                            let write = is_conditional_write(&req);
                            let (mut parts, body) = req.into_parts();
                            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                            let drop_it = match mode {
                                Mode::DropAnswers { every } => {
                                    write
                                        && picked(
                                            &parts,
                                            &body,
                                            every,
                                            &mut cache.lock().unwrap().seen,
                                        )
                                }
                                _ => false,
                            };
                            if let Mode::Conflict409 { every } = mode {
                                if write
                                    && picked(&parts, &body, every, &mut cache.lock().unwrap().seen)
                                {
                                    conflicts.fetch_add(1, Ordering::SeqCst);
                                    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource.</Message></Error>";
                                    let mut res = Response::new(Full::new(Bytes::from(body)));
                                    *res.status_mut() = hyper::StatusCode::CONFLICT;
                                    res.headers_mut()
                                        .insert("content-type", "application/xml".parse().unwrap());
                                    return Ok(res);
                                }
                            }
                            if matches!(mode, Mode::StripConditions) {
                                for h in ["if-match", "if-none-match", "authorization"] {
                                    parts.headers.remove(h);
                                }
                            }
                            let key = (parts.method.to_string(), parts.uri.path().to_owned());
                            // An object read: no query but the SDK's `x-id`.
                            let read = matches!(parts.method.as_str(), "GET" | "HEAD")
                                && !is_conditional(&parts.headers)
                                && parts
                                    .uri
                                    .query()
                                    .is_none_or(|q| q.starts_with("x-id=") && !q.contains('&'));
                            if let Mode::StaleReads { window } = mode {
                                if read {
                                    let now = Instant::now();
                                    let served = {
                                        let c = cache.lock().unwrap();
                                        c.frozen
                                            .get(&key)
                                            .filter(|(at, _)| now.duration_since(*at) < window)
                                            .map(|(_, c)| c.clone())
                                    };
                                    if let Some(old) = served {
                                        stale.fetch_add(1, Ordering::SeqCst);
                                        return Ok::<_, String>(respond(old));
                                    }
                                } else if matches!(parts.method.as_str(), "PUT" | "POST" | "DELETE")
                                {
                                    // Freeze what readers saw before this write.
                                    let mut c = cache.lock().unwrap();
                                    let now = Instant::now();
                                    for m in ["GET", "HEAD"] {
                                        let k = (m.to_owned(), parts.uri.path().to_owned());
                                        if let Some(old) = c.fresh.get(&k).cloned() {
                                            c.frozen.insert(k, (now, old));
                                        }
                                    }
                                }
                            }
                            let answer = forward(upstream, &parts, body).await?;
                            if drop_it {
                                // The write went through; its answer is lost.
                                dropped.fetch_add(1, Ordering::SeqCst);
                                return Err("dropped on purpose".to_owned());
                            }
                            if read && matches!(mode, Mode::StaleReads { .. }) {
                                cache.lock().unwrap().fresh.insert(key, answer.clone());
                            }
                            Ok(respond(answer))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            dropped,
            stale,
            conflicts,
            most_in_flight,
            task,
        }
    }
}
