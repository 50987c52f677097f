//! Grading one request and one DeleteObjects from what was sent, what came
//! back, and what was read back: pure functions, tested branch by branch.
//!
//! The rules, in the order they bind:
//! - An answer is *acknowledged* (2xx), *refused* (4xx: the store says it
//!   did not do it), or *unknown* (no answer — a timeout, a dropped
//!   connection — or a 5xx, after which the write may or may not have been
//!   applied). An unknown answer is never taken as a verdict about the
//!   store; only what was read back can prove something.
//! - A write AWS refuses that changed the object is `unsafe`, however it was
//!   answered; one that was acknowledged is `unsafe` even if nothing changed
//!   (the client believes a write that AWS would have refused).
//! - A write any operation acknowledged whose effect never appears is
//!   `unsafe`, whatever else is wrong in the answer.
//! - A write that appears only after a bounded re-read is `deviates`:
//!   read-after-write is not strong.
//! - When one step shows several faults, the worst verdict wins.

use std::time::Duration;

use crate::catalog::{Action, BatchObject, Expect};
use crate::model::Verdict;
use crate::model::{Answered, ETag, Outcome, Precondition};

use super::state::{preview, Expected, Settled, State};

/// One graded step.
#[derive(Debug)]
pub(crate) struct Graded {
    pub verdict: Verdict,
    pub reason: String,
    /// The answers the verdict rests on (the graded request's, a round's
    /// losers'), for the application roll-up to compare with what each
    /// application handles.
    pub answers: Vec<Answered>,
    /// Whether the reason already says that read-after-write is not strong
    /// (a read-back agreed only late), so that the scenario does not say
    /// it twice.
    pub late_read: bool,
}

impl Graded {
    pub(crate) fn new(verdict: Verdict, reason: impl Into<String>) -> Self {
        Self {
            verdict,
            reason: reason.into(),
            answers: Vec::new(),
            late_read: false,
        }
    }
}

/// What a step found: the worst verdict, and a note for every finding.
#[derive(Debug)]
pub(crate) struct Findings {
    pub verdict: Verdict,
    pub notes: Vec<String>,
    /// The answers the findings rest on, without repeats.
    pub answers: Vec<Answered>,
    /// Whether a note says a read-back agreed only late ([`Findings::late`]).
    pub late_read: bool,
}

impl Default for Findings {
    fn default() -> Self {
        Self {
            verdict: Verdict::Pass,
            notes: Vec::new(),
            answers: Vec::new(),
            late_read: false,
        }
    }
}

impl Findings {
    /// Records a finding; the worst verdict wins.
    pub(crate) fn add(&mut self, verdict: Verdict, note: impl Into<String>) {
        self.verdict = self.verdict.max(verdict);
        let note = note.into();
        if !note.is_empty() && !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Records that a read-back agreed only late: read-after-write is not
    /// strong (`deviates`), said in `note`.
    pub(crate) fn late(&mut self, note: impl Into<String>) {
        self.add(Verdict::Deviates, note);
        self.late_read = true;
    }

    /// Records answers a finding rests on.
    pub(crate) fn answered<'o>(&mut self, outcomes: impl IntoIterator<Item = &'o Outcome>) {
        for a in outcomes.into_iter().map(Answered::of) {
            if !self.answers.contains(&a) {
                self.answers.push(a);
            }
        }
    }
}

/// A reason in the one shape every grader uses: `SUBJECT: Expected: …;
/// Actual: …; note; note`.
pub(crate) struct Reason {
    pub subject: Option<String>,
    pub expected: String,
    pub actual: String,
}

impl Reason {
    pub(crate) fn graded(&self, findings: Findings) -> Graded {
        let mut text = match &self.subject {
            Some(s) => format!("{s}: "),
            None => String::new(),
        };
        text.push_str(&format!(
            "Expected: {}; Actual: {}",
            self.expected, self.actual
        ));
        for n in &findings.notes {
            text.push_str("; ");
            text.push_str(n);
        }
        Graded {
            verdict: findings.verdict,
            reason: text,
            answers: findings.answers,
            late_read: findings.late_read,
        }
    }
}

/// Why a request brought no answer to grade, in words (the store's
/// [`crate::store::StoreError`] message): a graded request is its outcome
/// or this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAnswer(pub String);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a write was answered.
#[derive(Debug)]
pub(crate) enum Answer<'a> {
    /// 2xx: the store says it did it.
    Acknowledged(&'a Outcome),
    /// 4xx: the store says it did not.
    Refused(&'a Outcome),
    /// No answer, or a 5xx other than 501 (which says the request as such
    /// is not implemented): it may or may not have been applied.
    Unknown(String),
}

impl<'a> Answer<'a> {
    pub(crate) fn of(answer: &'a Result<Outcome, NoAnswer>) -> Self {
        match answer {
            Ok(o) if o.is_success() => Answer::Acknowledged(o),
            Ok(o) if o.status >= 500 && o.status != 501 => {
                Answer::Unknown(format!("answered {}", o.status_line()))
            }
            Ok(o) => Answer::Refused(o),
            Err(e) => Answer::Unknown(format!("no answer: {e}")),
        }
    }
}

/// `PUT`, `COPY`, … for reasons.
pub(crate) fn action_name(action: Action) -> &'static str {
    crate::catalog::kind(action).name
}

fn expected_text(expect: &Expect) -> String {
    let mut text = match &expect.code {
        Some(code) => format!("{} {code}", expect.status),
        None => expect.status.to_string(),
    };
    for s in &expect.or_status {
        text.push_str(&format!(" or {s}"));
    }
    text
}

/// Whether the answer is an explicit refusal of the request as such (the
/// feature is not there), rather than a verdict on the condition.
pub(crate) fn is_unsupported_answer(out: &Outcome) -> bool {
    out.status == 501
        || (out.status == 400
            && !matches!(
                out.code.as_deref(),
                Some("PreconditionFailed") | Some("NoSuchKey")
            ))
}

/// `12× PUT 412 PreconditionFailed, 3× PUT 409 ConditionalRequestConflict`.
pub(crate) fn tally(outcomes: &[&Outcome]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for o in outcomes {
        let line = format!("{} {}", o.operation.method(), o.status_line());
        match counts.iter_mut().find(|(l, _)| *l == line) {
            Some((_, n)) => *n += 1,
            None => counts.push((line, 1)),
        }
    }
    counts
        .iter()
        .map(|(l, n)| format!("{n}× {l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// What was read back after a write: the settled state, and whether it
/// changed only later (a refused write seen to land on a second look).
#[derive(Debug, Clone)]
pub(crate) struct After {
    pub read: Settled,
    /// `Some(d)`: the first read-back showed the object unchanged; a read
    /// `d` later showed it changed.
    pub changed_later: Option<Duration>,
}

impl After {
    pub(crate) fn at_once(state: State) -> Self {
        Self {
            read: Settled::at_once(state),
            changed_later: None,
        }
    }
}

/// One checked request: what was asked, answered and read back.
pub(crate) struct RequestCheck<'a> {
    pub action: Action,
    /// What a successful write leaves under the key (`None` for reads).
    pub new: Option<&'a Expected>,
    pub pre: &'a Precondition,
    pub expect: &'a Expect,
    /// The version the answer's ETag must name.
    pub want_etag: Option<&'a ETag>,
    pub answer: &'a Result<Outcome, NoAnswer>,
    pub before: &'a State,
    pub after: &'a After,
}

/// Grades one checked request from what was sent, answered, and read back.
pub(crate) fn grade_request(c: &RequestCheck<'_>) -> Graded {
    let after = &c.after.read.state;
    let changed = !c.before.same_as(after);
    let writes = matches!(
        c.action,
        Action::Put | Action::Delete | Action::Copy | Action::CompleteUpload
    );
    let aws_accepts = (200..300).contains(&c.expect.status);
    let effect = match c.action {
        Action::Delete => "object deleted",
        Action::Copy => "object holds the source's body",
        Action::CompleteUpload => "object holds the uploaded parts",
        _ => "object holds the new body",
    };
    let expected = if writes && aws_accepts {
        format!("{}, {effect}", expected_text(c.expect))
    } else {
        format!("{}, object unchanged", expected_text(c.expect))
    };
    let status = match c.answer {
        Ok(o) => o.status_line(),
        Err(_) => "no answer".into(),
    };
    let state = if changed {
        format!(
            "object changed from {} to {}",
            c.before.describe(),
            after.describe()
        )
    } else {
        format!("object unchanged ({})", c.before.describe())
    };
    let reason = Reason {
        subject: Some(format!("{} {}", action_name(c.action), c.pre)),
        expected,
        actual: format!("{status}, {state}"),
    };
    let mut f = Findings::default();
    match c.answer {
        Ok(o) => f.answered([o]),
        Err(_) => f.answers.push(Answered::none()),
    }
    if writes {
        grade_write(c, changed, aws_accepts, &mut f);
    } else {
        grade_read(c, changed, &mut f);
    }
    reason.graded(f)
}

fn later(c: &RequestCheck<'_>) -> String {
    c.after
        .changed_later
        .map(|d| format!(" (seen {} ms after the answer)", ms(d)))
        .unwrap_or_default()
}

fn grade_write(c: &RequestCheck<'_>, changed: bool, aws_accepts: bool, f: &mut Findings) {
    let after = &c.after.read.state;
    let landed = c
        .new
        .is_some_and(|n| *n != Expected::Any && n.matches(after));
    match (aws_accepts, Answer::of(c.answer)) {
        (true, Answer::Acknowledged(o)) => {
            if !landed {
                f.add(
                    Verdict::Unsafe,
                    "the write was acknowledged but is not there (read again for a few seconds)",
                );
                return;
            }
            if c.action != Action::Delete {
                match (&o.etag, after.etag()) {
                    (None, _) => f.add(Verdict::Deviates, "no ETag in the answer"),
                    (Some(sent), Some(stored)) if !sent.same_version(stored) => f.add(
                        Verdict::Deviates,
                        format!("the answer's ETag {sent} is not the stored object's"),
                    ),
                    _ => {}
                }
            }
            if let Some(d) = c.after.read.late {
                f.late(format!(
                    "read-after-write is not strong: the write appeared after {} ms",
                    ms(d)
                ));
            }
        }
        (true, Answer::Refused(o)) => {
            if changed {
                f.add(
                    Verdict::Unsafe,
                    format!("refused, yet the object changed{}", later(c)),
                );
            } else if is_unsupported_answer(o) {
                f.add(Verdict::Unsupported, "");
            } else {
                f.add(Verdict::Deviates, "a write AWS accepts was refused");
            }
        }
        (true, Answer::Unknown(why)) => {
            if changed && !landed {
                f.add(
                    Verdict::Unsafe,
                    format!("{why}; the object changed, but not to what was written"),
                );
            } else {
                let outcome = if landed { "landed" } else { "did not land" };
                f.add(
                    Verdict::Error,
                    format!("{why}: the outcome is unknown (the write {outcome}), so the answer cannot be judged"),
                );
            }
        }
        (false, Answer::Acknowledged(_)) => {
            if c.action == Action::Delete && *c.before == State::Absent && !changed {
                // Nothing was there to delete: a wrong answer, but nothing lost.
                f.add(
                    Verdict::Deviates,
                    "a delete of a missing key was acknowledged",
                );
            } else if changed {
                f.add(Verdict::Unsafe, "the condition was ignored");
            } else {
                f.add(
                    Verdict::Unsafe,
                    "the write was acknowledged although AWS refuses it",
                );
            }
        }
        (false, Answer::Refused(o)) => {
            if changed {
                f.add(
                    Verdict::Unsafe,
                    format!("refused, yet the object changed{}", later(c)),
                );
                return;
            }
            let code_ok = c.expect.code.is_none() || o.code.is_none() || o.code == c.expect.code;
            if (o.status == c.expect.status && code_ok) || c.expect.or_status.contains(&o.status) {
                return;
            }
            if is_unsupported_answer(o) {
                f.add(Verdict::Unsupported, "");
            } else {
                f.add(Verdict::Deviates, "");
            }
        }
        (false, Answer::Unknown(why)) => {
            if changed {
                f.add(
                    Verdict::Unsafe,
                    format!(
                        "{why}, but the object changed{}: a write AWS refuses was applied",
                        later(c)
                    ),
                );
            } else {
                f.add(
                    Verdict::Error,
                    format!("{why}: the outcome is unknown (the object is unchanged), so the answer cannot be judged"),
                );
            }
        }
    }
}

fn grade_read(c: &RequestCheck<'_>, changed: bool, f: &mut Findings) {
    // A read must never change anything.
    if changed {
        f.add(Verdict::Unsafe, "a read changed the object");
        return;
    }
    let o = match c.answer {
        Ok(o) => o,
        Err(e) => {
            f.add(Verdict::Error, format!("no answer: {e}"));
            return;
        }
    };
    let code_ok = c.expect.code.is_none() || o.code.is_none() || o.code == c.expect.code;
    if o.status == c.expect.status && code_ok {
        if let Some(range) = &c.pre.range {
            grade_range(range, c.before, o, f);
        }
        if let Some(want) = c.want_etag {
            match &o.etag {
                Some(got) if got.same_version(want) => {}
                Some(got) => f.add(
                    Verdict::Deviates,
                    format!("the answer's ETag is {got}, expected {want}"),
                ),
                None => f.add(
                    Verdict::Deviates,
                    format!("the answer carries no ETag (expected {want})"),
                ),
            }
        }
        return;
    }
    if is_unsupported_answer(o) {
        f.add(Verdict::Unsupported, "");
    } else if o.status >= 500 {
        f.add(Verdict::Error, "server error");
    } else {
        f.add(Verdict::Deviates, "");
    }
}

/// A ranged GET must serve exactly those bytes of the object as it is
/// (read back before and after): other bytes are a stale or corrupt read.
fn grade_range(range: &str, current: &State, o: &Outcome, f: &mut Findings) {
    let State::Present { body, .. } = current else {
        return;
    };
    let want = range
        .strip_prefix("bytes=")
        .and_then(|b| b.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .map(|(first, last)| {
            let end = (last + 1).min(body.len());
            body.slice(first.min(end)..end)
        });
    let Some(want) = want else { return };
    match &o.body {
        Some(got) if *got == want => {}
        Some(got) => f.add(
            Verdict::Deviates,
            format!(
                "{range} served {}, but the object holds {} there: the range was read from another version",
                preview(got),
                preview(&want)
            ),
        ),
        None => f.add(
            Verdict::Deviates,
            format!("{range} served no readable body"),
        ),
    }
}

/// The `<Error>` codes of a DeleteObjects entry that mean a server error (a
/// 5xx): that object's outcome is unknown.
const SERVER_ERRORS: [&str; 3] = ["InternalError", "ServiceUnavailable", "SlowDown"];

/// Grades a DeleteObjects: every object must end as AWS says, read back —
/// deleted, or untouched and listed under `<Error>` with the expected code.
/// `sent` pairs each object's full key with its ETag condition; `after`
/// holds each object's settled read-back.
pub(crate) fn grade_delete_objects(
    objects: &[BatchObject],
    sent: &[(String, Option<String>)],
    answer: &Result<Outcome, NoAnswer>,
    before: &[State],
    after: &[Settled],
) -> Graded {
    let expected: Vec<String> = objects
        .iter()
        .map(|o| format!("{} {}", o.key, o.error.as_deref().unwrap_or("deleted")))
        .collect();
    let mut f = Findings::default();
    let mut actual = Vec::new();
    // Only a 2xx answer lists per-object results to judge.
    let listed_results = matches!(Answer::of(answer), Answer::Acknowledged(_));
    let (status, items, unknown) = match Answer::of(answer) {
        Answer::Unknown(why) => (
            match answer {
                Ok(o) => o.status_line(),
                Err(_) => "no answer".into(),
            },
            &[][..],
            Some(why),
        ),
        Answer::Acknowledged(o) | Answer::Refused(o) => (o.status_line(), &o.items[..], None),
    };
    for (i, o) in objects.iter().enumerate() {
        let key = &sent[i].0;
        let item = items.iter().find(|it| &it.key == key);
        let listed = match item {
            None => "not listed".to_owned(),
            Some(it) => it.error.clone().unwrap_or_else(|| "deleted".into()),
        };
        let (b, a) = (&before[i], &after[i].state);
        let state = if b.same_as(a) {
            "kept"
        } else if *a == State::Absent {
            "gone"
        } else {
            "changed"
        };
        actual.push(format!("{} {listed} ({state})", o.key));
        judge_batch_entry(
            &mut f,
            &o.key,
            o.error.as_deref(),
            Listed {
                as_: &listed,
                missing: item.is_none(),
                results: listed_results,
            },
            state,
        );
        if let (Some(d), true) = (after[i].late, state == "gone") {
            f.late(format!(
                "read-after-write is not strong: {} disappeared after {} ms",
                o.key,
                ms(d)
            ));
        }
    }
    if let Some(why) = unknown {
        f.add(
            Verdict::Error,
            format!("{why}: the outcome is unknown, so the answer cannot be judged"),
        );
    } else if let Ok(out) = answer {
        if !out.is_success() && f.verdict < Verdict::Unsafe {
            f.add(
                if is_unsupported_answer(out) {
                    Verdict::Unsupported
                } else {
                    Verdict::Deviates
                },
                "",
            );
        }
    }
    Reason {
        subject: Some("DeleteObjects with per-object ETags".into()),
        expected: format!("200, {}", expected.join(", ")),
        actual: format!("{status}, {}", actual.join(", ")),
    }
    .graded(f)
}

/// How a DeleteObjects answer listed one object.
struct Listed<'a> {
    /// `deleted`, the error code, or `not listed`.
    as_: &'a str,
    /// The answer does not list the object at all.
    missing: bool,
    /// The answer was a 2xx whose per-object results can be judged.
    results: bool,
}

/// Judges one object of a DeleteObjects batch: what the answer listed for
/// it against what happened to it (`kept`, `gone` or `changed`).
fn judge_batch_entry(
    f: &mut Findings,
    key: &str,
    expected_error: Option<&str>,
    listed: Listed<'_>,
    state: &str,
) {
    let shown = listed.as_;
    // A server error for this object: its outcome is unknown.
    let unknown_entry = listed.results && SERVER_ERRORS.contains(&shown);
    match expected_error {
        Some(_) if state != "kept" => f.add(
            Verdict::Unsafe,
            format!("{key}: deleted although its ETag condition fails"),
        ),
        Some(_) if unknown_entry => f.add(
            Verdict::Error,
            format!("{key}: listed as {shown}: its outcome is unknown"),
        ),
        Some(code) if listed.results && shown != code => f.add(
            Verdict::Deviates,
            format!("{key}: listed as {shown}, expected {code}"),
        ),
        Some(_) => {}
        // The request as a whole was refused or went unanswered: there is no
        // per-object result to judge.
        None if !listed.results => {}
        None if unknown_entry => f.add(
            Verdict::Error,
            format!("{key}: listed as {shown}: its outcome is unknown"),
        ),
        None if state != "gone" && shown == "deleted" => f.add(
            Verdict::Unsafe,
            format!("{key}: listed as deleted, yet it is still there"),
        ),
        None if state != "gone" => f.add(
            Verdict::Deviates,
            format!("{key}: not deleted ({shown}) although its ETag is current"),
        ),
        None if shown != "deleted" => {
            let said = if listed.missing {
                "the answer does not list it".to_owned()
            } else {
                format!("the answer lists it under <Error> as {shown}")
            };
            f.add(Verdict::Deviates, format!("{key}: deleted, but {said}"));
        }
        None => {}
    }
}

#[cfg(test)]
#[path = "grade_tests.rs"]
mod tests;
