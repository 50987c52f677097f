//! Hostile S3 "servers" for the tests (and `examples/hostile.rs`): on
//! loopback, each misbehaving in one way a user's store might, each stopped
//! when dropped. condwrite must end every run against them in bounded time
//! and memory, without a panic, with a readable reason.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a hostile server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// Reads the request and never answers.
    Hang,
    /// Answers with bytes that are not HTTP, then closes.
    Garbage,
    /// Closes every connection at once.
    Close,
    /// 500 InternalError to everything.
    Error500,
    /// 200, with a header of 1 MiB.
    HugeHeader,
    /// 200 with a fixed ETag to every write; a GET's body never ends (it
    /// stops at 8 GiB, or when the client goes).
    EndlessBody,
    /// 200 with one fixed ETag and an empty body to everything; stores
    /// nothing.
    Yes,
}

impl Hostile {
    // Read by examples/hostile.rs, which names its modes by these.
    #[allow(dead_code)]
    pub const ALL: [Hostile; 7] = [
        Hostile::Hang,
        Hostile::Garbage,
        Hostile::Close,
        Hostile::Error500,
        Hostile::HugeHeader,
        Hostile::EndlessBody,
        Hostile::Yes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hostile::Hang => "hang",
            Hostile::Garbage => "garbage",
            Hostile::Close => "close",
            Hostile::Error500 => "error-500",
            Hostile::HugeHeader => "huge-header",
            Hostile::EndlessBody => "endless-body",
            Hostile::Yes => "yes",
        }
    }
}

/// A body of zeros that goes on until `left` is spent.
struct Endless {
    left: u64,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        const CHUNK: usize = 64 << 10;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = CHUNK.min(self.left as usize);
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![0u8; n])))))
    }
}

const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";

type Answer = Response<Either<Full<Bytes>, Endless>>;

fn answer(h: Hostile, req: &Request<Incoming>) -> Answer {
    let full = |b: &'static str| Either::Left(Full::new(Bytes::from(b)));
    let mut res = match h {
        Hostile::Error500 => {
            let mut r = Response::new(full(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
            ));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            return r;
        }
        Hostile::HugeHeader => {
            let mut r = Response::new(full(""));
            r.headers_mut()
                .insert("x-huge", "a".repeat(1 << 20).parse().unwrap());
            r
        }
        Hostile::EndlessBody if req.method() == "GET" => {
            let mut r = Response::new(Either::Right(Endless { left: 8 << 30 }));
            r.headers_mut()
                .insert("content-type", "application/octet-stream".parse().unwrap());
            r
        }
        _ => Response::new(full("")),
    };
    res.headers_mut().insert("etag", ETAG.parse().unwrap());
    res
}

/// A running hostile server; stops when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts `h` on a free loopback port.
pub async fn start(h: Hostile) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = tokio::task::JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            match h {
                Hostile::Close => drop(stream),
                Hostile::Garbage => {
                    held.spawn(async move {
                        let mut buf = [0u8; 4096];
                        let _ = stream.read(&mut buf).await;
                        let _ = stream
                            .write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff\xfe garbage \x01\x02")
                            .await;
                    });
                }
                Hostile::Hang => {
                    // Read what comes, answer nothing, keep the connection
                    // open until the server is dropped.
                    held.spawn(async move {
                        let mut buf = [0u8; 4096];
                        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                        std::future::pending::<()>().await;
                    });
                }
                _ => {
                    held.spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| async move {
                            Ok::<_, Infallible>(answer(h, &req))
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
            while held.try_join_next().is_some() {}
        }
    });
    Server { url, task }
}
