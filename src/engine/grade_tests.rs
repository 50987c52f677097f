//! Unit tests of the graders: every branch of every grader, each with the
//! reason it gives.

use super::NoAnswer;
use super::*;
use crate::model::BatchItem;
use bytes::Bytes;

fn out(status: u16, code: Option<&str>, etag: Option<&str>) -> Outcome {
    crate::engine::made_up_put(status, code, etag, Precondition::create_only())
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
    answer: Result<Outcome, NoAnswer>,
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
            Err(NoAnswer("timeout".into())),
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
        Err(NoAnswer("reset".into())),
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
        Err(NoAnswer(
            "connection closed before message completed".into(),
        )),
        &present("old", "\"a\""),
        After::at_once(present("new", "\"b\"")),
    );
    assert_graded(&g, Verdict::Unsafe, "a write AWS refuses was applied");
    let g = grade(
        Action::Put,
        Some(&body("new")),
        &refused412(),
        Err(NoAnswer(
            "connection closed before message completed".into(),
        )),
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
    let read = |answer: Result<Outcome, NoAnswer>, after: State| {
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
        &read(Err(NoAnswer("timeout".into())), x()),
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

fn listed(items: Vec<BatchItem>) -> Result<Outcome, NoAnswer> {
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
    let lost: Result<Outcome, NoAnswer> = Err(NoAnswer("timeout".into()));
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
    assert!(matches!(
        Answer::of(&Err(NoAnswer("x".into()))),
        Answer::Unknown(_)
    ));
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
