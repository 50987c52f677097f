//! Last-byte synchronisation: racers whose requests reach the server
//! together.
//!
//! Each racer's PUT is built, signed and sent by the SDK as usual; just
//! before it goes on the wire (after signing, so the request is the same
//! bytes a plain PUT sends) its body is swapped for one that sends all but
//! the last byte and then waits at a shared [`Gate`]. When every racer of
//! the round is waiting there (or has finished without reaching it, or the
//! gate's patience runs out), the gate opens and each sends its last byte:
//! the server sees the requests complete within the time it takes to write
//! one byte per racer, instead of the time it takes to build, sign and send
//! each request whole.
//!
//! Each racer keeps its [`Timing`]: when its last byte left, and, from a
//! server that says so (the reference server's `x-condwrite-received-us`
//! answer header), when the server had its whole body.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::{Store, StoreError};
use crate::model::{Outcome, Precondition};

pub use crate::model::RECEIVED_HEADER;

/// Where the racers of one round wait before their last byte.
#[derive(Debug)]
pub struct Gate {
    racers: usize,
    patience: Duration,
    state: Mutex<GateState>,
    open: AtomicBool,
}

#[derive(Debug, Default)]
struct GateState {
    /// Racers waiting at the gate or done without reaching it.
    arrived: usize,
    waiting: Vec<Waker>,
    /// Set when the gate opened because its patience ran out.
    gave_up: bool,
    first_arrival: Option<Instant>,
}

impl Gate {
    /// A gate for `racers` racers that opens at the latest `patience` after
    /// the first one reaches it.
    pub fn new(racers: usize, patience: Duration) -> Arc<Self> {
        Arc::new(Self {
            racers,
            patience,
            state: Mutex::new(GateState::default()),
            open: AtomicBool::new(false),
        })
    }

    /// A gate for `racers` racers whose requests each have `timeout`: it
    /// waits for one that does not come long enough for a slow server to
    /// take every request's head, and short enough that the waiting racers
    /// do not run into their own timeout.
    pub fn for_racers(racers: usize, timeout: Duration) -> Arc<Self> {
        Self::new(racers, (timeout / 4).min(Duration::from_secs(2)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one racer as arrived; opens the gate when all have.
    fn arrive(self: &Arc<Self>) {
        let mut s = self.lock();
        s.arrived += 1;
        let first = s.first_arrival.is_none();
        if first {
            s.first_arrival = Some(Instant::now());
        }
        if s.arrived >= self.racers {
            self.open_now(&mut s);
        } else if first {
            // The gate does not wait for ever on a racer that never comes
            // (a server that answered before reading the body, a lost
            // connection): it opens after its patience.
            let gate = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(gate.patience).await;
                let mut s = gate.lock();
                if !gate.open.load(Ordering::Acquire) {
                    s.gave_up = true;
                    gate.open_now(&mut s);
                }
            });
        }
    }

    fn open_now(&self, s: &mut GateState) {
        self.open.store(true, Ordering::Release);
        for w in s.waiting.drain(..) {
            w.wake();
        }
    }

    /// Whether the gate opened only because its patience ran out (some
    /// racer never reached it).
    pub fn gave_up(&self) -> bool {
        self.lock().gave_up
    }

    /// Polls for the gate to open.
    fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.open.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut s = self.lock();
        if self.open.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        s.waiting.push(cx.waker().clone());
        Poll::Pending
    }
}

/// When one racer's request completed, as far as is known.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    /// When the racer's last byte was handed to the connection.
    pub last_byte: Option<Instant>,
    /// When the server had the whole body (microseconds on the server's
    /// own clock), if it says.
    pub received_us: Option<u64>,
}

/// One racer's place at a gate: what it arrives with and what it records.
#[derive(Debug)]
pub struct Racer {
    gate: Arc<Gate>,
    timing: Mutex<Timing>,
    arrived: AtomicBool,
}

impl Racer {
    /// A racer that will wait at `gate`.
    pub fn new(gate: &Arc<Gate>) -> Arc<Self> {
        Arc::new(Self {
            gate: Arc::clone(gate),
            timing: Mutex::new(Timing::default()),
            arrived: AtomicBool::new(false),
        })
    }

    /// Arrives at the gate, once: when the body waits there, or when the
    /// request ended without its body reaching it.
    pub(super) fn arrive(&self) {
        if !self.arrived.swap(true, Ordering::AcqRel) {
            self.gate.arrive();
        }
    }

    /// When its bytes went, and when the server read them.
    pub fn timing(&self) -> Timing {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, f: impl FnOnce(&mut Timing)) {
        f(&mut self.timing.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A body that sends all but its last byte, waits at the gate, then sends
/// the last byte.
struct HeldBody {
    head: Option<Bytes>,
    last: Option<Bytes>,
    racer: Arc<Racer>,
    len: u64,
}

impl Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if self.last.is_none() {
            return Poll::Ready(None);
        }
        // The head has been handed over (and is flushed while this waits).
        self.racer.arrive();
        if self.racer.gate.poll_open(cx).is_pending() {
            return Poll::Pending;
        }
        let last = self.last.take();
        self.racer.record(|t| t.last_byte = Some(Instant::now()));
        Poll::Ready(last.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.last.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// Swaps a signed request's body for a [`HeldBody`], and reads the server's
/// received-time header from the answer.
#[derive(Debug)]
pub(super) struct HoldLastByte {
    pub racer: Arc<Racer>,
}

impl Intercept for HoldLastByte {
    fn name(&self) -> &'static str {
        "HoldLastByte"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request_mut().body_mut();
        let Some(bytes) = body.bytes().map(Bytes::copy_from_slice) else {
            // A streaming body (never one of ours): sent as it is.
            return Ok(());
        };
        if bytes.is_empty() {
            return Ok(());
        }
        let cut = bytes.len() - 1;
        *body = SdkBody::from_body_1_x(HeldBody {
            len: bytes.len() as u64,
            head: (cut > 0).then(|| bytes.slice(..cut)),
            last: Some(bytes.slice(cut..)),
            racer: Arc::clone(&self.racer),
        });
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let received = context
            .response()
            .headers()
            .get(RECEIVED_HEADER)
            .and_then(|v| v.parse::<u64>().ok());
        self.racer.record(|t| t.received_us = received);
        Ok(())
    }
}

/// How close together one round's requests completed: the spread of the
/// times their last bytes left (the client's clock) and, from a server that
/// says, of the times it read them (the server's clock, which also counts
/// the server getting round to each connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread {
    /// Between the first and the last racer's last byte leaving, in µs.
    pub sent_us: Option<u64>,
    /// Between the server reading the first and the last, in µs (from a server that says).
    pub read_us: Option<u64>,
}

impl Spread {
    /// The spreads of the racers' timings; each needs at least two racers
    /// timed, and the server's every answered racer.
    pub fn of(timings: &[Timing]) -> Self {
        let sent: Vec<Instant> = timings.iter().filter_map(|t| t.last_byte).collect();
        let read: Vec<u64> = timings.iter().filter_map(|t| t.received_us).collect();
        let sent_us = match (sent.iter().min(), sent.iter().max()) {
            (Some(first), Some(last)) if sent.len() >= 2 => {
                Some(u64::try_from((*last - *first).as_micros()).unwrap_or(u64::MAX))
            }
            _ => None,
        };
        let read_us = match (read.iter().min(), read.iter().max()) {
            (Some(first), Some(last)) if read.len() >= 2 && read.len() == timings.len() => {
                Some(last - first)
            }
            _ => None,
        };
        Self { sent_us, read_us }
    }
}

/// One racer of a round: what it sent, what it got, how long its PUT took
/// from the moment all racers were ready, and when its bytes went.
#[derive(Debug)]
pub struct Raced {
    /// The body it sent.
    pub body: Bytes,
    /// Its answer, or why none came.
    pub answer: Result<Outcome, StoreError>,
    /// From all racers ready to its answer.
    pub took: Duration,
    /// When its bytes went.
    pub timing: Timing,
}

/// What one round of racers got.
#[derive(Debug)]
pub struct Round {
    /// Each racer, in order.
    pub racers: Vec<Raced>,
    /// How close together their requests completed.
    pub spread: Spread,
    /// Whether the gate opened before every racer reached it.
    pub gave_up: bool,
}

/// Races one round: a PUT of each of `bodies` on `key` with `pre`, racer
/// `i` through `stores[i % stores.len()]`. Each racer first opens (and
/// keeps in the pool) a connection, so that the writes leave together
/// instead of queueing on connects; all wait for each other; then each
/// holds its last byte at one gate until all are there. `Err` when a racer
/// task failed (it panicked or was cancelled): the panic's words, which the
/// race only reports as its `error`.
pub async fn race_round(
    stores: &[Store],
    key: &str,
    bodies: Vec<Bytes>,
    pre: &Precondition,
) -> Result<Round, String> {
    let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let gate = Gate::for_racers(bodies.len(), stores[0].timeout());
    let tasks: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let store = stores[i % stores.len()].clone();
            let (key, pre, barrier) = (key.to_owned(), pre.clone(), barrier.clone());
            let place = Racer::new(&gate);
            tokio::spawn(async move {
                let _ = store.head(&key, &Precondition::none()).await;
                barrier.wait().await;
                let began = Instant::now();
                let answer = store.race_put(&key, body.clone(), &pre, &place).await;
                Raced {
                    body,
                    answer,
                    took: began.elapsed(),
                    timing: place.timing(),
                }
            })
        })
        .collect();
    let mut racers = Vec::new();
    for task in tasks {
        racers.push(
            task.await
                .map_err(|e| format!("a racer task failed: {e}"))?,
        );
    }
    let timings: Vec<Timing> = racers.iter().map(|r| r.timing).collect();
    Ok(Round {
        spread: Spread::of(&timings),
        gave_up: gate.gave_up(),
        racers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_opens_when_every_racer_has_arrived() {
        let gate = Gate::new(3, Duration::from_secs(60));
        let racers: Vec<_> = (0..3).map(|_| Racer::new(&gate)).collect();
        racers[0].arrive();
        racers[0].arrive(); // once per racer, however often it says so
        racers[1].arrive();
        assert!(!gate.open.load(Ordering::Acquire));
        racers[2].arrive();
        assert!(gate.open.load(Ordering::Acquire));
        assert!(!gate.gave_up());
    }

    #[tokio::test]
    async fn a_gate_whose_racer_never_comes_opens_after_its_patience() {
        let gate = Gate::new(2, Duration::from_millis(20));
        let racer = Racer::new(&gate);
        racer.arrive();
        let opened = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| gate.poll_open(cx)),
        )
        .await;
        assert!(opened.is_ok(), "the gate never opened");
        assert!(gate.gave_up());
    }

    #[tokio::test]
    async fn a_held_body_sends_its_last_byte_only_after_the_gate_opens() {
        use http_body_util::BodyExt;
        let gate = Gate::new(2, Duration::from_secs(60));
        let (a, b) = (Racer::new(&gate), Racer::new(&gate));
        let mut body = HeldBody {
            head: Some(Bytes::from_static(b"racer")),
            last: Some(Bytes::from_static(b"!")),
            racer: a.clone(),
            len: 6,
        };
        let head = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&head[..], b"racer");
        let held = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(held.is_err(), "the last byte left before the gate opened");
        assert!(a.timing().last_byte.is_none());
        b.arrive();
        let last = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&last[..], b"!");
        assert!(body.frame().await.is_none());
        assert!(a.timing().last_byte.is_some());
    }

    #[test]
    fn spreads_need_two_timed_racers_and_the_server_s_needs_all() {
        let now = Instant::now();
        let t = |us: Option<u64>, after: u64| Timing {
            last_byte: Some(now + Duration::from_micros(after)),
            received_us: us,
        };
        assert_eq!(
            Spread::of(&[t(Some(100), 0), t(Some(130), 500)]),
            Spread {
                sent_us: Some(500),
                read_us: Some(30)
            }
        );
        assert_eq!(
            Spread::of(&[t(Some(100), 0), t(None, 500)]),
            Spread {
                sent_us: Some(500),
                read_us: None
            }
        );
        assert_eq!(Spread::of(&[t(Some(1), 0)]), Spread::default());
    }
}
