//! What is stored under a key, what a scenario expects there, and reading
//! it back until the two agree.
//!
//! A store whose reads lag its writes (an eventually consistent read path, a
//! caching tier) shows an acknowledged write late, not never: a read-back
//! that disagrees with what the scenario expects is read again, with a short
//! bounded back-off, before anything is graded. A read-back that agrees at
//! once costs nothing extra.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::model::ETag;

/// What is stored under a key, as read back with an unconditional GET.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    Absent,
    Present {
        body: Bytes,
        etag: Option<ETag>,
        last_modified: Option<String>,
    },
    /// GET answered 200 but its body could not be read whole: the store
    /// serves bytes that disagree with its own headers.
    Unreadable {
        etag: Option<ETag>,
        why: String,
    },
}

impl State {
    /// Whether nothing is seen to have changed between two reads.
    pub(crate) fn same_as(&self, other: &State) -> bool {
        match (self, other) {
            (State::Absent, State::Absent) => true,
            (
                State::Present {
                    body: a, etag: ea, ..
                },
                State::Present {
                    body: b, etag: eb, ..
                },
            ) => {
                a == b
                    && match (ea, eb) {
                        (Some(x), Some(y)) => x.same_version(y),
                        _ => true,
                    }
            }
            // Unreadable twice alike: nothing seen to change in between.
            (State::Unreadable { etag: ea, why: a }, State::Unreadable { etag: eb, why: b }) => {
                ea == eb && a == b
            }
            _ => false,
        }
    }

    /// The ETag it was read back with, if any.
    pub(crate) fn etag(&self) -> Option<&ETag> {
        match self {
            State::Present { etag, .. } | State::Unreadable { etag, .. } => etag.as_ref(),
            State::Absent => None,
        }
    }

    /// Whether it holds exactly `body`.
    pub(crate) fn holds(&self, body: &[u8]) -> bool {
        matches!(self, State::Present { body: b, .. } if b.as_ref() == body)
    }

    /// One line for a reason.
    pub(crate) fn describe(&self) -> String {
        let etag = |e: &Option<ETag>| e.as_ref().map_or("no ETag".into(), |e| format!("ETag {e}"));
        match self {
            State::Absent => "absent".into(),
            State::Unreadable { etag: e, why } => {
                format!("a body GET cannot read whole ({why}), {}", etag(e))
            }
            State::Present { body, etag: e, .. } => format!("body {}, {}", preview(body), etag(e)),
        }
    }
}

/// What a scenario knows must be under a key: what its acknowledged writes
/// left there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expected {
    Absent,
    Body(Bytes),
    /// Nothing is known (an unanswered write may or may not have landed).
    Any,
}

impl Expected {
    /// The expectation a read-back state satisfies exactly.
    pub(crate) fn of(state: &State) -> Self {
        match state {
            State::Absent => Expected::Absent,
            State::Present { body, .. } => Expected::Body(body.clone()),
            State::Unreadable { .. } => Expected::Any,
        }
    }

    pub(crate) fn matches(&self, state: &State) -> bool {
        match self {
            Expected::Absent => *state == State::Absent,
            Expected::Body(b) => state.holds(b),
            Expected::Any => true,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Expected::Absent => "absent".into(),
            Expected::Body(b) => format!("body {}", preview(b)),
            Expected::Any => "anything".into(),
        }
    }
}

/// A read-back, and how long it took to agree with the expectation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settled {
    pub state: State,
    /// Whether it agreed with what was expected.
    pub agreed: bool,
    /// `Some(d)`: it agreed only after `d` (the first read disagreed).
    pub late: Option<Duration>,
}

impl Settled {
    /// A read that agreed at once.
    pub(crate) fn at_once(state: State) -> Self {
        Self {
            state,
            agreed: true,
            late: None,
        }
    }
}

/// The longest a target's reads have been seen to lag its writes: measured
/// when the target starts, raised whenever a scenario sees a longer one.
/// Refused writes are read again after this long, so that a refused write
/// that lands late is not missed behind a lagging read path.
#[derive(Debug, Default)]
pub struct ReadLag(AtomicU64);

impl ReadLag {
    /// The lag seen so far (zero: reads have always agreed at once).
    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::SeqCst))
    }

    /// Records a read that agreed only after `lag`.
    pub fn observe(&self, lag: Duration) {
        self.0.fetch_max(lag.as_millis() as u64, Ordering::SeqCst);
    }

    /// How long a read-back keeps trying to agree: at least 3 s, four
    /// times the lag seen, at most 15 s.
    pub fn budget(&self) -> Duration {
        (self.get() * 4).clamp(Duration::from_secs(3), Duration::from_secs(15))
    }

    /// How long after a refused write to look again: twice the lag seen,
    /// plus a little (zero on a store whose reads never lagged).
    pub fn confirm_after(&self) -> Option<Duration> {
        let lag = self.get();
        (!lag.is_zero()).then(|| (lag * 2 + Duration::from_millis(50)).min(self.budget()))
    }
}

/// A short, printable view of a body.
pub(crate) fn preview(body: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(body: &str, etag: &str) -> State {
        State::Present {
            body: Bytes::from(body.to_owned()),
            etag: Some(ETag::new(etag)),
            last_modified: None,
        }
    }

    #[test]
    fn same_as_compares_bodies_and_etags_by_version() {
        assert!(present("a", "\"x\"").same_as(&present("a", "x")));
        assert!(!present("a", "\"x\"").same_as(&present("a", "\"y\"")));
        assert!(!present("a", "\"x\"").same_as(&present("b", "\"x\"")));
        assert!(!present("a", "\"x\"").same_as(&State::Absent));
        let torn = State::Unreadable {
            etag: None,
            why: "short".into(),
        };
        assert!(torn.same_as(&torn.clone()));
        assert!(!torn.same_as(&State::Absent));
    }

    #[test]
    fn expectations_match_what_they_name() {
        assert!(Expected::Absent.matches(&State::Absent));
        assert!(!Expected::Absent.matches(&present("a", "\"x\"")));
        assert!(Expected::Body(Bytes::from("a")).matches(&present("a", "\"x\"")));
        assert!(!Expected::Body(Bytes::from("a")).matches(&present("b", "\"x\"")));
        assert!(Expected::Any.matches(&State::Absent));
        assert_eq!(
            Expected::of(&present("a", "\"x\"")),
            Expected::Body(Bytes::from("a"))
        );
    }

    #[test]
    fn the_read_lag_sets_the_budget_and_the_confirmation_delay() {
        let lag = ReadLag::default();
        assert_eq!(lag.confirm_after(), None);
        assert_eq!(lag.budget(), Duration::from_secs(3));
        lag.observe(Duration::from_millis(300));
        lag.observe(Duration::from_millis(100));
        assert_eq!(lag.get(), Duration::from_millis(300));
        assert_eq!(lag.confirm_after(), Some(Duration::from_millis(650)));
        lag.observe(Duration::from_secs(10));
        assert_eq!(lag.budget(), Duration::from_secs(15));
        assert_eq!(lag.confirm_after(), Some(Duration::from_secs(15)));
    }
}
