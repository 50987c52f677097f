//! When each connection last took bytes off the socket: the server-side
//! arrival time of a request's last byte, which the racers' evidence
//! reports (`x-condwrite-received-us`).
//!
//! The time is taken where the bytes are read, not where the handler runs:
//! the handler of one of sixteen racers may start a millisecond after its
//! body arrived, behind the signature checks of the others.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The time of a connection's latest read that brought bytes, in
/// microseconds since the server started; put in each request's extensions.
#[derive(Debug, Clone)]
pub(super) struct LastRead(Arc<AtomicU64>);

impl LastRead {
    pub(super) fn micros(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// A connection that keeps its [`LastRead`].
pub(super) struct Clocked<S> {
    inner: S,
    started: Instant,
    last: LastRead,
}

impl<S> Clocked<S> {
    pub(super) fn new(inner: S, started: Instant) -> Self {
        Self {
            inner,
            started,
            last: LastRead(Arc::default()),
        }
    }

    pub(super) fn last_read(&self) -> LastRead {
        self.last.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Clocked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.last.0.store(us, Ordering::Release);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Clocked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
