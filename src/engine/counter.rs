//! The CAS counter: workers increment one counter by read-modify-write under
//! If-Match, retrying on 412/409, and its grader.
//!
//! An increment the store acknowledged must be in the final value; one it
//! refused must not. An increment whose answer was lost (no answer, or a
//! 5xx) may or may not have landed: the final value must lie in
//! [acknowledged, acknowledged + unanswered], and only a value outside it
//! is `unsafe`.

use crate::catalog::CounterStep;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::model::{Outcome, Precondition, Verdict};
use crate::store::Store;

use super::grade::{is_unsupported_answer, ms, tally, Findings, Graded, Reason};
use super::state::{preview, Expected, State};
use super::{abort, Abort, Run};

/// What the workers of a CAS counter saw.
#[derive(Default, Debug)]
pub(crate) struct WorkerSeen {
    /// Increments the store acknowledged (2xx).
    pub acknowledged: u64,
    /// 412/409 answers: another worker got there first.
    pub conflicts: u64,
    /// Increments whose answer was lost (no answer, or a 5xx): they may or
    /// may not have landed.
    pub unknown: u64,
    /// Any other answer: to a conditional PUT, or a failed GET.
    pub odd: Vec<Outcome>,
    /// Reads that got no answer (they change nothing).
    pub lost_reads: Vec<String>,
    /// Why a worker stopped early, if it did.
    pub stopped: Vec<String>,
}

impl WorkerSeen {
    fn merge(&mut self, other: WorkerSeen) {
        self.acknowledged += other.acknowledged;
        self.conflicts += other.conflicts;
        self.unknown += other.unknown;
        self.odd.extend(other.odd);
        self.lost_reads.extend(other.lost_reads);
        self.stopped.extend(other.stopped);
    }
}

/// The counter's value, read back.
fn value(state: &State) -> Option<u64> {
    match state {
        State::Present { body, .. } => String::from_utf8_lossy(body).trim().parse().ok(),
        _ => None,
    }
}

impl Run<'_> {
    /// `workers` read-modify-write loops on one counter under If-Match, until
    /// `increments` increments were acknowledged (bounded in attempts and
    /// time); the counter must then hold what the answers allow.
    pub(super) async fn cas_counter(&mut self, step: &CounterStep) -> Result<Graded, Abort> {
        let key = &self.key(&step.key);
        let (workers, increments) = (step.workers, step.increments);
        if let Some(why) = self.store().health().stalled() {
            return Err(super::gone(why));
        }
        let setup = self
            .store()
            .put(key, Bytes::from("0"), &Precondition::none())
            .await
            .map_err(|e| abort(format!("set-up PUT {key} got no answer: {}", e.message)))?;
        if !setup.is_success() {
            return Err(abort(format!(
                "set-up PUT {key} answered {}",
                setup.status_line()
            )));
        }
        self.evidence.push(setup);
        self.expected
            .insert(key.to_owned(), Expected::Body(Bytes::from("0")));
        self.read_expected(key).await?;
        let bounds = Arc::new(Bounds {
            done: AtomicU32::new(0),
            attempts: AtomicU32::new(0),
            increments,
            max_attempts: increments * 10 + workers * 4,
            deadline: Instant::now() + Duration::from_secs(60),
        });
        let mut tasks = Vec::new();
        for worker in 0..workers {
            let store = self.stores[worker as usize % self.stores.len()].clone();
            tasks.push(tokio::spawn(count(store, key.to_owned(), bounds.clone())));
        }
        let mut all = WorkerSeen::default();
        for task in tasks {
            all.merge(
                task.await
                    .map_err(|e| abort(format!("a counter worker failed: {e}")))?,
            );
        }
        if let Some(first) = all.odd.first() {
            self.evidence.push(first.clone());
        }
        // Read until the value is one the answers allow (a lagging read
        // shows an older value first).
        let (low, high) = (all.acknowledged, all.acknowledged + all.unknown);
        let mut last = self
            .read_until(key, |s| value(s).is_some_and(|v| (low..=high).contains(&v)))
            .await?;
        // On a lagging store, look again once the lag has passed: a refused
        // increment that lands late must not hide behind an older value.
        if let Some((later, _)) = self.confirm_unchanged(key, &last.state).await? {
            last.state = later;
        }
        let final_value = value(&last.state);
        let mut graded = grade_counter(
            &all,
            final_value,
            workers,
            increments,
            bounds
                .attempts
                .load(Ordering::SeqCst)
                .min(bounds.max_attempts),
        );
        if let (Some(d), true) = (last.late, graded.verdict <= Verdict::Deviates) {
            graded.verdict = graded.verdict.max(Verdict::Deviates);
            graded.reason.push_str(&format!(
                "; read-after-write is not strong: the last increment showed after {} ms",
                ms(d)
            ));
            graded.late_read = true;
        }
        Ok(graded)
    }
}

/// The shared bounds of a counter's workers: they stop once `increments`
/// were acknowledged, after `max_attempts` attempts, or at the deadline.
struct Bounds {
    done: AtomicU32,
    attempts: AtomicU32,
    increments: u32,
    max_attempts: u32,
    deadline: Instant,
}

impl Bounds {
    fn go_on(&self) -> bool {
        self.done.load(Ordering::SeqCst) < self.increments
            && self.attempts.fetch_add(1, Ordering::SeqCst) < self.max_attempts
            && Instant::now() < self.deadline
    }
}

/// One worker's read-modify-write loop on the counter under If-Match.
async fn count(store: Store, key: String, bounds: Arc<Bounds>) -> WorkerSeen {
    let mut seen = WorkerSeen::default();
    while bounds.go_on() {
        let got = match store.get(&key, &Precondition::none()).await {
            Ok(o) if o.is_success() => o,
            Ok(o) => {
                // A store hiccup (a 500 under load): try again, within the
                // bounds, and report it.
                seen.odd.push(o);
                continue;
            }
            Err(e) => {
                seen.lost_reads.push(e.message);
                continue;
            }
        };
        let text = String::from_utf8_lossy(got.body.as_deref().unwrap_or_default()).into_owned();
        let (Ok(value), Some(etag)) = (text.trim().parse::<u64>(), got.etag.clone()) else {
            seen.stopped.push(format!(
                "the counter read back as {} with ETag {:?}",
                preview(text.as_bytes()),
                got.etag
            ));
            break;
        };
        let next = Bytes::from((value + 1).to_string());
        match store.put(&key, next, &Precondition::if_match(&etag)).await {
            Ok(o) if o.is_success() => {
                seen.acknowledged += 1;
                bounds.done.fetch_add(1, Ordering::SeqCst);
            }
            Ok(o) if o.status == 412 || o.status == 409 => seen.conflicts += 1,
            Ok(o) if o.status >= 500 && o.status != 501 => {
                seen.unknown += 1;
                seen.odd.push(o);
            }
            Ok(o) => {
                let refused = is_unsupported_answer(&o);
                seen.odd.push(o);
                if refused {
                    break;
                }
            }
            Err(_) => seen.unknown += 1,
        }
    }
    seen
}

/// Grades a CAS counter: the final value must lie in [acknowledged,
/// acknowledged + unanswered], or updates were lost (or refused ones landed).
pub(crate) fn grade_counter(
    seen: &WorkerSeen,
    final_value: Option<u64>,
    workers: u32,
    increments: u32,
    attempts: u32,
) -> Graded {
    let expected = format!(
        "{increments} increments by {workers} workers (If-Match, retry on 412/409), final value = increments acknowledged"
    );
    let unanswered = if seen.unknown > 0 {
        format!(", {} unanswered", seen.unknown)
    } else {
        String::new()
    };
    let actual = format!(
        "{} acknowledged, {} conflicts{unanswered} in {attempts} attempts, final value {}",
        seen.acknowledged,
        seen.conflicts,
        final_value.map_or("unreadable".to_owned(), |v| v.to_string())
    );
    let reason = Reason {
        subject: None,
        expected,
        actual,
    };
    let mut f = Findings::default();
    let (low, high) = (seen.acknowledged, seen.acknowledged + seen.unknown);
    match final_value {
        None => f.add(Verdict::Unsafe, "the counter is gone or not a number"),
        Some(v) if v < low => f.add(
            Verdict::Unsafe,
            format!("{} acknowledged updates lost", low - v),
        ),
        Some(v) if v > high => f.add(
            Verdict::Unsafe,
            format!("{} refused updates landed", v - high),
        ),
        Some(v) if seen.unknown > 0 => f.add(
            Verdict::Pass,
            format!(
                "{} increments went unanswered; the final value {v} lies within [{low}, {high}], which they allow",
                seen.unknown
            ),
        ),
        Some(_) => {}
    }
    if f.verdict == Verdict::Unsafe {
        return reason.graded(f);
    }
    if let Some(why) = seen.stopped.first() {
        f.add(Verdict::Error, format!("a worker stopped: {why}"));
    }
    // 5xx answers to the PUTs are counted as unanswered, not as answers.
    let odd: Vec<&Outcome> = seen
        .odd
        .iter()
        .filter(|o| o.status < 500 || o.status == 501 || o.operation.method() == "GET")
        .collect();
    f.answered(odd.iter().copied());
    if seen.acknowledged == 0 {
        if !odd.is_empty() && odd.iter().all(|o| is_unsupported_answer(o)) {
            f.add(Verdict::Unsupported, tally(&odd));
        } else if seen.unknown > 0 || !seen.lost_reads.is_empty() {
            f.add(
                Verdict::Error,
                "no increment is known to have succeeded, and answers were lost: the counter cannot be judged",
            );
        } else {
            f.add(Verdict::Deviates, "no increment succeeded");
        }
        return reason.graded(f);
    }
    if !odd.is_empty() {
        f.add(Verdict::Deviates, format!("other answers {}", tally(&odd)));
    }
    if seen.acknowledged < u64::from(increments) {
        if seen.unknown > 0 || !seen.lost_reads.is_empty() {
            f.add(
                Verdict::Error,
                format!(
                    "the workers ran out of attempts with {} answers lost: the counter cannot be judged",
                    seen.unknown + seen.lost_reads.len() as u64
                ),
            );
        } else {
            f.add(
                Verdict::Deviates,
                "the workers gave up before every increment succeeded",
            );
        }
    }
    reason.graded(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(status: u16) -> Outcome {
        crate::engine::made_up_put(status, None, None, Precondition::none())
    }

    fn seen(acknowledged: u64, unknown: u64) -> WorkerSeen {
        WorkerSeen {
            acknowledged,
            conflicts: 7,
            unknown,
            ..WorkerSeen::default()
        }
    }

    fn grade(s: &WorkerSeen, v: Option<u64>) -> Graded {
        grade_counter(s, v, 8, 40, 60)
    }

    fn assert_graded(g: &Graded, verdict: Verdict, text: &str) {
        assert_eq!(g.verdict, verdict, "{}", g.reason);
        assert!(g.reason.contains(text), "{:?} not in {}", text, g.reason);
    }

    #[test]
    fn a_final_value_equal_to_the_acknowledged_increments_passes() {
        let g = grade(&seen(40, 0), Some(40));
        assert_graded(
            &g,
            Verdict::Pass,
            "40 acknowledged, 7 conflicts in 60 attempts, final value 40",
        );
    }

    #[test]
    fn lost_updates_and_refused_updates_that_landed_are_unsafe() {
        assert_graded(
            &grade(&seen(40, 0), Some(12)),
            Verdict::Unsafe,
            "28 acknowledged updates lost",
        );
        assert_graded(
            &grade(&seen(40, 0), Some(43)),
            Verdict::Unsafe,
            "3 refused updates landed",
        );
        assert_graded(
            &grade(&seen(40, 0), None),
            Verdict::Unsafe,
            "the counter is gone or not a number",
        );
    }

    #[test]
    fn unanswered_increments_widen_what_the_final_value_may_be() {
        for v in [40, 41, 43] {
            let g = grade(&seen(40, 3), Some(v));
            assert_graded(&g, Verdict::Pass, "3 increments went unanswered");
            assert!(g.reason.contains("within [40, 43]"), "{}", g.reason);
        }
        assert_graded(
            &grade(&seen(40, 3), Some(44)),
            Verdict::Unsafe,
            "1 refused updates landed",
        );
        assert_graded(
            &grade(&seen(40, 3), Some(39)),
            Verdict::Unsafe,
            "1 acknowledged updates lost",
        );
    }

    #[test]
    fn a_counter_no_increment_of_which_is_known_is_unsupported_an_error_or_deviates() {
        let mut refused = seen(0, 0);
        refused.odd = vec![put(501), put(501)];
        assert_graded(
            &grade(&refused, Some(0)),
            Verdict::Unsupported,
            "2× PUT 501",
        );
        assert_graded(
            &grade(&seen(0, 5), Some(2)),
            Verdict::Error,
            "cannot be judged",
        );
        assert_graded(
            &grade(&seen(0, 0), Some(0)),
            Verdict::Deviates,
            "no increment succeeded",
        );
    }

    /// Lost reads count as lost answers as much as unanswered increments:
    /// a counter that cannot be judged is an `error`, never `deviates`.
    #[test]
    fn reads_that_went_unanswered_leave_a_counter_unjudged() {
        let mut none = seen(0, 0);
        none.lost_reads = vec!["GET c got no answer".into()];
        assert_graded(&grade(&none, Some(0)), Verdict::Error, "cannot be judged");
        let mut some = seen(30, 0);
        some.lost_reads = vec!["GET c got no answer".into(); 2];
        assert_graded(
            &grade(&some, Some(30)),
            Verdict::Error,
            "ran out of attempts with 2 answers lost",
        );
    }

    #[test]
    fn other_answers_and_giving_up_deviate_unless_answers_were_lost() {
        let mut odd = seen(40, 0);
        odd.odd = vec![put(403)];
        assert_graded(
            &grade(&odd, Some(40)),
            Verdict::Deviates,
            "other answers 1× PUT 403",
        );
        // A 5xx counts as unanswered, not as another answer.
        let mut busy = seen(40, 1);
        busy.odd = vec![put(503)];
        assert_graded(
            &grade(&busy, Some(40)),
            Verdict::Pass,
            "1 increments went unanswered",
        );
        assert_graded(
            &grade(&seen(30, 0), Some(30)),
            Verdict::Deviates,
            "gave up before every increment",
        );
        assert_graded(
            &grade(&seen(30, 4), Some(31)),
            Verdict::Error,
            "ran out of attempts with 4 answers lost",
        );
        let mut stopped = seen(40, 0);
        stopped.stopped = vec!["the counter read back as \"x\"".into()];
        assert_graded(
            &grade(&stopped, Some(40)),
            Verdict::Error,
            "a worker stopped",
        );
    }
}
