//! Whether a target still answers: the stall rule.
//!
//! A target that stops answering (a hung server, a gateway that holds
//! conditional writes) would otherwise cost one request timeout per request
//! for the rest of the catalog. Once [`STALL_AFTER`] requests of one kind —
//! conditional, or plain — have timed out in a row (an answer of that kind
//! resets the count), every further request of that kind (every request at
//! all, when plain ones stall) fails at once with one reason. A run that is
//! ending (Ctrl-C, SIGTERM) shuts every target's health, so that the
//! scenarios still running send nothing more while the clean-up runs.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::{Failure, RequestError};

/// Timeouts in a row after which a kind of request is given up on.
pub const STALL_AFTER: u32 = 3;

/// One target's answering health, shared by all its clients.
#[derive(Debug, Default)]
pub struct Health {
    /// Conditional requests that timed out in a row.
    conditional: AtomicU32,
    /// Plain (unconditional) requests that timed out in a row.
    plain: AtomicU32,
    /// Why conditional requests are given up on, once they are.
    conditional_stalled: Mutex<Option<String>>,
    /// Why every request is given up on, once it is.
    all_stalled: Mutex<Option<String>>,
    /// The run is ending: nothing more is sent.
    shut: AtomicBool,
    /// Requests sent and not yet answered (or given up on).
    in_flight: AtomicUsize,
}

/// A request in flight: counted until it is dropped.
pub(super) struct Flight<'a>(&'a Health);

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock(m: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Health {
    /// Why requests are given up on, if they are (the first reason given).
    pub fn stalled(&self) -> Option<String> {
        lock(&self.all_stalled)
            .clone()
            .or_else(|| lock(&self.conditional_stalled).clone())
    }

    /// Refuses every further request: the run is ending.
    pub fn shut_down(&self) {
        self.shut.store(true, Ordering::SeqCst);
    }

    /// Counts a request as in flight until the guard is dropped.
    pub(super) fn flying(&self) -> Flight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Flight(self)
    }

    /// Waits (at most `max`) until no request is in flight: once shut, what
    /// a clean-up lists afterwards includes everything the run wrote (an
    /// upload created by a request already on its way, say).
    pub async fn settled(&self, max: Duration) -> bool {
        let until = tokio::time::Instant::now() + max;
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Whether a request of this kind may be sent; the error says why not.
    pub(super) fn admit(&self, conditional: bool) -> Result<(), RequestError> {
        let refused = |failure, message| Err(RequestError { failure, message });
        if self.shut.load(Ordering::SeqCst) {
            return refused(Failure::NotSent, "not sent: the run is ending".into());
        }
        if let Some(why) = lock(&self.all_stalled).clone() {
            return refused(Failure::Stalled, why);
        }
        if conditional {
            if let Some(why) = lock(&self.conditional_stalled).clone() {
                return refused(Failure::Stalled, why);
            }
        }
        Ok(())
    }

    /// An answer came: the count of its kind starts again.
    pub(super) fn answered(&self, conditional: bool) {
        let count = if conditional {
            &self.conditional
        } else {
            &self.plain
        };
        count.store(0, Ordering::SeqCst);
    }

    /// A request got no answer within `timeout`.
    pub(super) fn timed_out(&self, conditional: bool, timeout: Duration) {
        let (count, stalled, what) = if conditional {
            (
                &self.conditional,
                &self.conditional_stalled,
                "conditional requests",
            )
        } else {
            (&self.plain, &self.all_stalled, "requests")
        };
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= STALL_AFTER {
            let mut s = lock(stalled);
            if s.is_none() {
                *s = Some(format!(
                    "the target stopped answering {what}: {n} in a row got no answer within {} s, so no more are sent (set a longer timeout with request_timeout_s or --request-timeout if it is only slow)",
                    timeout.as_secs()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn timeouts_in_a_row_stall_their_kind_and_an_answer_resets_the_count() {
        let h = Health::default();
        h.timed_out(true, T);
        h.timed_out(true, T);
        h.answered(true);
        h.timed_out(true, T);
        h.timed_out(true, T);
        assert!(h.admit(true).is_ok());
        // Plain answers do not reset the conditional count.
        h.answered(false);
        h.timed_out(true, T);
        let why = h.admit(true).unwrap_err().message;
        assert!(
            why.contains("stopped answering conditional requests: 3 in a row"),
            "{why}"
        );
        assert!(why.contains("within 5 s"), "{why}");
        assert!(h.admit(false).is_ok(), "plain requests still go");
        assert_eq!(h.stalled(), Some(why));
    }

    #[test]
    fn plain_requests_that_stall_stop_everything() {
        let h = Health::default();
        for _ in 0..STALL_AFTER {
            h.timed_out(false, T);
        }
        let refused = h.admit(false).unwrap_err();
        assert_eq!(refused.failure, Failure::Stalled);
        assert!(refused.message.contains("stopped answering requests"));
        assert!(h.admit(true).is_err());
    }

    #[test]
    fn a_shut_health_sends_nothing() {
        let h = Health::default();
        h.shut_down();
        let refused = h.admit(false).unwrap_err();
        assert_eq!(refused.failure, Failure::NotSent);
        assert!(refused.message.contains("the run is ending"));
    }
}
