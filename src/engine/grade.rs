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
use crate::model::{ETag, Outcome, Precondition};

use super::state::{Expected, Settled, State};

/// One graded step.
#[derive(Debug)]
pub(crate) struct Graded {
    pub verdict: Verdict,
    pub reason: String,
}

impl Graded {
    pub(crate) fn new(verdict: Verdict, reason: impl Into<String>) -> Self {
        Self {
            verdict,
            reason: reason.into(),
        }
    }
}

/// What a step found: the worst verdict, and a note for every finding.
#[derive(Debug)]
pub(crate) struct Findings {
    pub verdict: Verdict,
    pub notes: Vec<String>,
}

impl Default for Findings {
    fn default() -> Self {
        Self {
            verdict: Verdict::Pass,
            notes: Vec::new(),
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
        Graded::new(findings.verdict, text)
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
    pub(crate) fn of(answer: &'a Result<Outcome, String>) -> Self {
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
    match action {
        Action::Put => "PUT",
        Action::Get => "GET",
        Action::Head => "HEAD",
        Action::Delete => "DELETE",
        Action::Race => "race",
        Action::CasCounter => "cas_counter",
        Action::Copy => "COPY",
        Action::CreateUpload => "CreateMultipartUpload",
        Action::UploadPart => "UploadPart",
        Action::CompleteUpload => "CompleteMultipartUpload",
        Action::DeleteObjects => "DeleteObjects",
        Action::Aba => "aba",
    }
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
    pub answer: &'a Result<Outcome, String>,
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
                f.add(
                    Verdict::Deviates,
                    format!(
                        "read-after-write is not strong: the write appeared after {} ms",
                        ms(d)
                    ),
                );
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
    answer: &Result<Outcome, String>,
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
        // A server error for this object: its outcome is unknown.
        let unknown_entry = listed_results && SERVER_ERRORS.contains(&listed.as_str());
        match &o.error {
            Some(code) => {
                if state != "kept" {
                    f.add(
                        Verdict::Unsafe,
                        format!("{}: deleted although its ETag condition fails", o.key),
                    );
                } else if unknown_entry {
                    f.add(
                        Verdict::Error,
                        format!("{}: listed as {listed}: its outcome is unknown", o.key),
                    );
                } else if listed_results && listed != *code {
                    f.add(
                        Verdict::Deviates,
                        format!("{}: listed as {listed}, expected {code}", o.key),
                    );
                }
            }
            None => {
                if !listed_results {
                    // The request as a whole was refused or went unanswered:
                    // there is no per-object result to judge.
                } else if unknown_entry {
                    f.add(
                        Verdict::Error,
                        format!("{}: listed as {listed}: its outcome is unknown", o.key),
                    );
                } else if state != "gone" && listed == "deleted" {
                    f.add(
                        Verdict::Unsafe,
                        format!("{}: listed as deleted, yet it is still there", o.key),
                    );
                } else if state != "gone" {
                    f.add(
                        Verdict::Deviates,
                        format!(
                            "{}: not deleted ({listed}) although its ETag is current",
                            o.key
                        ),
                    );
                } else if listed != "deleted" {
                    let said = if item.is_none() {
                        "the answer does not list it".to_owned()
                    } else {
                        format!("the answer lists it under <Error> as {listed}")
                    };
                    f.add(Verdict::Deviates, format!("{}: deleted, but {said}", o.key));
                }
            }
        }
        if let (Some(d), true) = (after[i].late, state == "gone") {
            f.add(
                Verdict::Deviates,
                format!(
                    "read-after-write is not strong: {} disappeared after {} ms",
                    o.key,
                    ms(d)
                ),
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BatchItem, Operation};
    use bytes::Bytes;

    fn out(status: u16, code: Option<&str>, etag: Option<&str>) -> Outcome {
        Outcome {
            operation: Operation::PutObject,
            method: "PUT".into(),
            path: "/b/k".into(),
            copy_source: None,
            sent: None,
            received: None,
            key: "k".into(),
            precondition: Precondition::create_only(),
            status,
            code: code.map(Into::into),
            etag: etag.map(ETag::new),
            last_modified: None,
            body: None,
            body_error: None,
            upload_id: None,
            items: Vec::new(),
        }
    }

    fn present(body: &str, etag: &str) -> State {
        State::Present {
            body: Bytes::from(body.to_owned()),
            etag: Some(ETag::new(etag)),
            last_modified: None,
        }
    }

    fn body(b: &str) -> Expected {
        Expected::Body(Bytes::from(b.to_owned()))
    }

    /// Grades `action` with AWS expecting `expect`, answered `answer`, read
    /// back `before` → `after`.
    fn grade(
        action: Action,
        new: Option<&Expected>,
        expect: &Expect,
        answer: Result<Outcome, String>,
        before: &State,
        after: After,
    ) -> Graded {
        grade_request(&RequestCheck {
            action,
            new,
            pre: &Precondition::create_only(),
            expect,
            want_etag: None,
            answer: &answer,
            before,
            after: &after,
        })
    }

    fn ok200() -> Expect {
        Expect::new(200, None)
    }

    fn refused412() -> Expect {
        Expect::new(412, Some("PreconditionFailed"))
    }

    fn late(state: State, ms: u64) -> After {
        After {
            read: Settled {
                state,
                agreed: true,
                late: Some(Duration::from_millis(ms)),
            },
            changed_later: None,
        }
    }

    fn assert_graded(g: &Graded, verdict: Verdict, text: &str) {
        assert_eq!(g.verdict, verdict, "{}", g.reason);
        assert!(g.reason.contains(text), "{:?} not in {}", text, g.reason);
    }

    // --- AWS accepts the write ---

    #[test]
    fn an_acknowledged_write_that_landed_with_its_etag_passes() {
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(200, None, Some("\"b\""))),
            &State::Absent,
            After::at_once(present("new", "\"b\"")),
        );
        assert_graded(
            &g,
            Verdict::Pass,
            "Expected: 200, object holds the new body; Actual: 200",
        );
    }

    #[test]
    fn an_acknowledged_write_that_is_not_there_is_unsafe() {
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(200, None, Some("\"b\""))),
            &State::Absent,
            After::at_once(State::Absent),
        );
        assert_graded(&g, Verdict::Unsafe, "acknowledged but is not there");
    }

    #[test]
    fn an_acknowledged_copy_whose_destination_never_changed_is_unsafe_etag_or_not() {
        // The yes-to-everything server: every GET is 200 with one body; the
        // copy is acknowledged without an ETag and the destination keeps it.
        let g = grade(
            Action::Copy,
            Some(&body("the source's bytes")),
            &ok200(),
            Ok(out(200, None, None)),
            &present("", "\"same\""),
            After::at_once(present("", "\"same\"")),
        );
        assert_graded(&g, Verdict::Unsafe, "acknowledged but is not there");
    }

    #[test]
    fn an_acknowledged_delete_that_left_the_object_is_unsafe() {
        let g = grade(
            Action::Delete,
            Some(&Expected::Absent),
            &Expect::new(204, None),
            Ok(out(204, None, None)),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(&g, Verdict::Unsafe, "acknowledged but is not there");
        let g = grade(
            Action::Delete,
            Some(&Expected::Absent),
            &Expect::new(204, None),
            Ok(out(204, None, None)),
            &present("old", "\"a\""),
            After::at_once(State::Absent),
        );
        assert_graded(&g, Verdict::Pass, "object deleted");
    }

    #[test]
    fn a_missing_or_foreign_etag_on_success_deviates() {
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(200, None, None)),
            &State::Absent,
            After::at_once(present("new", "\"b\"")),
        );
        assert_graded(&g, Verdict::Deviates, "no ETag in the answer");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(200, None, Some("\"zzz\""))),
            &State::Absent,
            After::at_once(present("new", "\"b\"")),
        );
        assert_graded(
            &g,
            Verdict::Deviates,
            "the answer's ETag \"zzz\" is not the stored object's",
        );
    }

    #[test]
    fn a_write_that_shows_late_deviates() {
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(200, None, Some("\"b\""))),
            &State::Absent,
            late(present("new", "\"b\""), 310),
        );
        assert_graded(
            &g,
            Verdict::Deviates,
            "read-after-write is not strong: the write appeared after 310 ms",
        );
    }

    #[test]
    fn a_refused_write_aws_accepts_deviates_or_is_unsupported_unless_it_changed_the_object() {
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(412, Some("PreconditionFailed"), None)),
            &State::Absent,
            After::at_once(State::Absent),
        );
        assert_graded(&g, Verdict::Deviates, "a write AWS accepts was refused");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(501, Some("NotImplemented"), None)),
            &State::Absent,
            After::at_once(State::Absent),
        );
        assert_graded(&g, Verdict::Unsupported, "Actual: 501 NotImplemented");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(412, Some("PreconditionFailed"), None)),
            &State::Absent,
            After::at_once(present("new", "\"b\"")),
        );
        assert_graded(&g, Verdict::Unsafe, "refused, yet the object changed");
    }

    #[test]
    fn an_unanswered_write_aws_accepts_is_an_error_whether_it_landed_or_not() {
        for (after, outcome) in [
            (present("new", "\"b\""), "the write landed"),
            (State::Absent, "the write did not land"),
        ] {
            let g = grade(
                Action::Put,
                Some(&body("new")),
                &ok200(),
                Err("timeout".into()),
                &State::Absent,
                After::at_once(after),
            );
            assert_graded(&g, Verdict::Error, outcome);
            assert!(g.reason.contains("Actual: no answer"), "{}", g.reason);
        }
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Ok(out(503, Some("SlowDown"), None)),
            &State::Absent,
            After::at_once(State::Absent),
        );
        assert_graded(
            &g,
            Verdict::Error,
            "answered 503 SlowDown: the outcome is unknown",
        );
        // Changed, but not to what was written: that is proof, answer or not.
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &ok200(),
            Err("reset".into()),
            &State::Absent,
            After::at_once(present("garbage", "\"g\"")),
        );
        assert_graded(&g, Verdict::Unsafe, "not to what was written");
    }

    // --- AWS refuses the write ---

    #[test]
    fn an_acknowledged_write_aws_refuses_is_unsafe_changed_or_not() {
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(200, None, Some("\"b\""))),
            &present("old", "\"a\""),
            After::at_once(present("new", "\"b\"")),
        );
        assert_graded(&g, Verdict::Unsafe, "the condition was ignored");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(200, None, Some("\"b\""))),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(&g, Verdict::Unsafe, "acknowledged although AWS refuses it");
    }

    #[test]
    fn an_acknowledged_delete_of_a_missing_key_only_deviates() {
        let g = grade(
            Action::Delete,
            Some(&Expected::Absent),
            &Expect::new(404, Some("NoSuchKey")),
            Ok(out(204, None, None)),
            &State::Absent,
            After::at_once(State::Absent),
        );
        assert_graded(
            &g,
            Verdict::Deviates,
            "a delete of a missing key was acknowledged",
        );
    }

    #[test]
    fn a_refusal_as_aws_passes_and_another_status_deviates() {
        let pass = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(412, Some("PreconditionFailed"), None)),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(
            &pass,
            Verdict::Pass,
            "Actual: 412 PreconditionFailed, object unchanged",
        );
        let mut or_409 = refused412();
        or_409.or_status = vec![409];
        let conflict = grade(
            Action::CompleteUpload,
            Some(&body("parts")),
            &or_409,
            Ok(out(409, Some("ConditionalRequestConflict"), None)),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(
            &conflict,
            Verdict::Pass,
            "Expected: 412 PreconditionFailed or 409",
        );
        // 409 where AWS documents only 412.
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(409, Some("ConditionalRequestConflict"), None)),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(&g, Verdict::Deviates, "Actual: 409");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &Expect::new(404, Some("NoSuchKey")),
            Ok(out(412, Some("PreconditionFailed"), None)),
            &State::Absent,
            After::at_once(State::Absent),
        );
        assert_graded(&g, Verdict::Deviates, "Expected: 404 NoSuchKey");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(501, Some("NotImplemented"), None)),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(&g, Verdict::Unsupported, "501 NotImplemented");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(400, Some("InvalidArgument"), None)),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(&g, Verdict::Unsupported, "400 InvalidArgument");
    }

    #[test]
    fn a_refusal_that_changed_the_bytes_is_unsafe_also_when_seen_later() {
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(412, Some("PreconditionFailed"), None)),
            &present("old", "\"a\""),
            After::at_once(present("new", "\"b\"")),
        );
        assert_graded(&g, Verdict::Unsafe, "refused, yet the object changed");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(412, Some("PreconditionFailed"), None)),
            &present("old", "\"a\""),
            After {
                read: Settled::at_once(present("new", "\"b\"")),
                changed_later: Some(Duration::from_millis(650)),
            },
        );
        assert_graded(&g, Verdict::Unsafe, "(seen 650 ms after the answer)");
        // A torn body after a refused copy is a change too.
        let g = grade(
            Action::Copy,
            Some(&body("source")),
            &refused412(),
            Ok(out(412, Some("PreconditionFailed"), None)),
            &present("old", "\"a\""),
            After::at_once(State::Unreadable {
                etag: Some(ETag::new("\"a\"")),
                why: "streaming error".into(),
            }),
        );
        assert_graded(&g, Verdict::Unsafe, "cannot read whole");
    }

    #[test]
    fn an_unanswered_write_aws_refuses_is_unsafe_only_if_it_changed_the_object() {
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Err("connection closed before message completed".into()),
            &present("old", "\"a\""),
            After::at_once(present("new", "\"b\"")),
        );
        assert_graded(&g, Verdict::Unsafe, "a write AWS refuses was applied");
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Err("connection closed before message completed".into()),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(
            &g,
            Verdict::Error,
            "the outcome is unknown (the object is unchanged)",
        );
        let g = grade(
            Action::Put,
            Some(&body("new")),
            &refused412(),
            Ok(out(500, Some("InternalError"), None)),
            &present("old", "\"a\""),
            After::at_once(present("old", "\"a\"")),
        );
        assert_graded(&g, Verdict::Error, "answered 500 InternalError");
    }

    // --- reads ---

    #[test]
    fn reads_are_graded_on_status_etag_and_nothing_changed() {
        let mut expect = Expect::new(304, None);
        expect.etag = Some(crate::catalog::Template("${v}".into()));
        let want = ETag::new("\"a\"");
        let read = |answer: Result<Outcome, String>, after: State| {
            grade_request(&RequestCheck {
                action: Action::Get,
                new: None,
                pre: &Precondition::none(),
                expect: &expect,
                want_etag: Some(&want),
                answer: &answer,
                before: &present("x", "\"a\""),
                after: &After::at_once(after),
            })
        };
        let x = || present("x", "\"a\"");
        assert_graded(
            &read(Ok(out(304, None, Some("\"a\""))), x()),
            Verdict::Pass,
            "Actual: 304",
        );
        assert_graded(
            &read(Ok(out(304, None, Some("\"b\""))), x()),
            Verdict::Deviates,
            "the answer's ETag is \"b\", expected \"a\"",
        );
        assert_graded(
            &read(Ok(out(304, None, None)), x()),
            Verdict::Deviates,
            "carries no ETag",
        );
        assert_graded(
            &read(Ok(out(200, None, None)), x()),
            Verdict::Deviates,
            "Actual: 200",
        );
        assert_graded(
            &read(Ok(out(501, None, None)), x()),
            Verdict::Unsupported,
            "501",
        );
        assert_graded(
            &read(Ok(out(500, None, None)), x()),
            Verdict::Error,
            "server error",
        );
        assert_graded(
            &read(Err("timeout".into()), x()),
            Verdict::Error,
            "no answer: timeout",
        );
        assert_graded(
            &read(Ok(out(304, None, Some("\"a\""))), State::Absent),
            Verdict::Unsafe,
            "a read changed the object",
        );
    }

    // --- DeleteObjects ---

    fn batch() -> (Vec<BatchObject>, Vec<(String, Option<String>)>) {
        use crate::catalog::Template;
        (
            vec![
                BatchObject {
                    key: "cur".into(),
                    if_match: Some(Template("${c}".into())),
                    error: None,
                },
                BatchObject {
                    key: "stale".into(),
                    if_match: Some(Template("${s}".into())),
                    error: Some("PreconditionFailed".into()),
                },
            ],
            vec![
                ("p/cur".to_owned(), Some("\"c\"".to_owned())),
                ("p/stale".to_owned(), Some("\"s\"".to_owned())),
            ],
        )
    }

    fn item(key: &str, error: Option<&str>) -> BatchItem {
        BatchItem {
            key: key.into(),
            if_match: None,
            error: error.map(Into::into),
        }
    }

    fn listed(items: Vec<BatchItem>) -> Result<Outcome, String> {
        let mut o = out(200, None, None);
        o.items = items;
        Ok(o)
    }

    #[test]
    fn delete_objects_is_graded_per_object_from_the_read_back() {
        let (objects, sent) = batch();
        let before = [present("c", "\"c\""), present("s2", "\"s2\"")];
        let settled = |s: &[State]| s.iter().cloned().map(Settled::at_once).collect::<Vec<_>>();
        let good = listed(vec![
            item("p/cur", None),
            item("p/stale", Some("PreconditionFailed")),
        ]);
        let g = grade_delete_objects(
            &objects,
            &sent,
            &good,
            &before,
            &settled(&[State::Absent, before[1].clone()]),
        );
        assert_graded(
            &g,
            Verdict::Pass,
            "cur deleted (gone), stale PreconditionFailed (kept)",
        );
        // The stale object gone: unsafe, whatever the answer said.
        let g = grade_delete_objects(
            &objects,
            &sent,
            &good,
            &before,
            &settled(&[State::Absent, State::Absent]),
        );
        assert_graded(
            &g,
            Verdict::Unsafe,
            "stale: deleted although its ETag condition fails",
        );
        // Listed as deleted, still there: an acknowledged delete that is lost.
        let g = grade_delete_objects(&objects, &sent, &good, &before, &settled(&before));
        assert_graded(
            &g,
            Verdict::Unsafe,
            "cur: listed as deleted, yet it is still there",
        );
        // Nothing deleted, both under <Error>: safe, but the current one
        // should have gone.
        let both = listed(vec![
            item("p/cur", Some("PreconditionFailed")),
            item("p/stale", Some("PreconditionFailed")),
        ]);
        let g = grade_delete_objects(&objects, &sent, &both, &before, &settled(&before));
        assert_graded(
            &g,
            Verdict::Deviates,
            "cur: not deleted (PreconditionFailed) although its ETag is current",
        );
        // Deleted, but the answer does not list it; the stale one listed
        // with another code.
        let odd = listed(vec![item("p/stale", Some("AccessDenied"))]);
        let g = grade_delete_objects(
            &objects,
            &sent,
            &odd,
            &before,
            &settled(&[State::Absent, before[1].clone()]),
        );
        assert_graded(
            &g,
            Verdict::Deviates,
            "cur: deleted, but the answer does not list it",
        );
        assert!(
            g.reason
                .contains("stale: listed as AccessDenied, expected PreconditionFailed"),
            "{}",
            g.reason
        );
        // A server error for one object: its outcome is unknown.
        let busy = listed(vec![
            item("p/cur", Some("InternalError")),
            item("p/stale", Some("PreconditionFailed")),
        ]);
        let g = grade_delete_objects(
            &objects,
            &sent,
            &busy,
            &before,
            &settled(&[State::Absent, before[1].clone()]),
        );
        assert_graded(
            &g,
            Verdict::Error,
            "cur: listed as InternalError: its outcome is unknown",
        );
        // Gone only on a later read: read-after-write is not strong.
        let mut slow = settled(&[State::Absent, before[1].clone()]);
        slow[0].late = Some(Duration::from_millis(300));
        let g = grade_delete_objects(&objects, &sent, &good, &before, &slow);
        assert_graded(&g, Verdict::Deviates, "cur disappeared after 300 ms");
    }

    #[test]
    fn a_delete_objects_refused_or_unanswered_is_judged_by_the_objects_alone() {
        let (objects, sent) = batch();
        let before = [present("c", "\"c\""), present("s2", "\"s2\"")];
        let kept: Vec<Settled> = before.iter().cloned().map(Settled::at_once).collect();
        let refused = Ok(out(400, Some("MissingContentMD5"), None));
        let g = grade_delete_objects(&objects, &sent, &refused, &before, &kept);
        assert_graded(&g, Verdict::Unsupported, "Actual: 400 MissingContentMD5");
        assert!(!g.reason.contains("listed as"), "{}", g.reason);
        let lost: Result<Outcome, String> = Err("timeout".into());
        let g = grade_delete_objects(&objects, &sent, &lost, &before, &kept);
        assert_graded(
            &g,
            Verdict::Error,
            "no answer: timeout: the outcome is unknown",
        );
        let gone = vec![
            Settled::at_once(State::Absent),
            Settled::at_once(State::Absent),
        ];
        let g = grade_delete_objects(&objects, &sent, &lost, &before, &gone);
        assert_graded(
            &g,
            Verdict::Unsafe,
            "stale: deleted although its ETag condition fails",
        );
    }

    #[test]
    fn answers_are_acknowledged_refused_or_unknown() {
        assert!(matches!(
            Answer::of(&Ok(out(204, None, None))),
            Answer::Acknowledged(_)
        ));
        assert!(matches!(
            Answer::of(&Ok(out(412, None, None))),
            Answer::Refused(_)
        ));
        assert!(matches!(
            Answer::of(&Ok(out(501, None, None))),
            Answer::Refused(_)
        ));
        assert!(matches!(
            Answer::of(&Ok(out(500, None, None))),
            Answer::Unknown(_)
        ));
        assert!(matches!(
            Answer::of(&Ok(out(503, None, None))),
            Answer::Unknown(_)
        ));
        assert!(matches!(Answer::of(&Err("x".into())), Answer::Unknown(_)));
    }

    #[test]
    fn findings_keep_the_worst_verdict_and_every_note_once() {
        let mut f = Findings::default();
        f.add(Verdict::Deviates, "a");
        f.add(Verdict::Unsafe, "b");
        f.add(Verdict::Deviates, "a");
        f.add(Verdict::Error, "");
        assert_eq!(f.verdict, Verdict::Unsafe);
        assert_eq!(f.notes, vec!["a".to_owned(), "b".to_owned()]);
    }
}
