//! Unit tests of the scenario loop's helpers.

use super::*;

#[test]
fn a_late_write_makes_a_passing_scenario_deviate_and_is_said_once() {
    let late = vec![
        (
            "the write before this step (k)".to_owned(),
            Duration::from_millis(120),
        ),
        (
            "the write before this step (j)".to_owned(),
            Duration::from_millis(300),
        ),
    ];
    let (v, r) = with_late_writes(Verdict::Pass, "ok".into(), false, &late);
    assert_eq!(v, Verdict::Deviates);
    assert_eq!(
        r,
        "ok; read-after-write is not strong: the write before this step (j) appeared only after 300 ms"
    );
    let (v, r) = with_late_writes(Verdict::Info, "x".into(), false, &late);
    assert_eq!(v, Verdict::Deviates, "{r}");
    // A worse verdict stands; a reason that says it already is kept.
    let said = "bad; read-after-write is not strong: the write appeared after 9 ms";
    let (v, r) = with_late_writes(Verdict::Unsafe, said.into(), true, &late);
    assert_eq!((v, r.as_str()), (Verdict::Unsafe, said));
    let (v, r) = with_late_writes(Verdict::Pass, "ok".into(), false, &[]);
    assert_eq!((v, r.as_str()), (Verdict::Pass, "ok"));
}

#[test]
fn the_worst_step_decides_and_is_named() {
    let g = conclude(Some((2, Graded::new(Verdict::Unsafe, "lost"))), 4);
    assert_eq!(
        (g.verdict, g.reason.as_str()),
        (Verdict::Unsafe, "step 3: lost")
    );
    let g = conclude(Some((0, Graded::new(Verdict::Pass, "fine"))), 1);
    assert_eq!((g.verdict, g.reason.as_str()), (Verdict::Pass, "fine"));
    assert_eq!(conclude(None, 2).verdict, Verdict::Error);
}

/// A step that stops the scenario: an `error` after an earlier step that
/// deviated keeps the earlier verdict (the deviation made the step
/// impossible); a lost write (`unsafe`) overrides any lesser verdict; after
/// a pass or an info the stop is the verdict.
#[test]
fn a_lost_write_that_stops_a_later_step_overrides_a_lesser_earlier_verdict() {
    let stop = |verdict| Abort {
        verdict,
        why: "stopped".into(),
        target_gone: false,
    };
    for earlier in [Verdict::Deviates, Verdict::Unsupported] {
        let mut w = Graded::new(earlier, "first");
        let got = after_earlier(Some(&mut w), 2, stop(Verdict::Unsafe));
        assert_eq!(
            got.map(|g| g.verdict),
            Some(Verdict::Unsafe),
            "after {earlier}"
        );
        assert_eq!(w.reason, "first");
        let mut w = Graded::new(earlier, "first");
        assert!(after_earlier(Some(&mut w), 2, stop(Verdict::Error)).is_none());
        assert_eq!(w.verdict, earlier);
        assert_eq!(w.reason, "first; the scenario stopped at step 3: stopped");
    }
    // An earlier unsafe stands over a later unsafe or error.
    for later in [Verdict::Unsafe, Verdict::Error] {
        let mut w = Graded::new(Verdict::Unsafe, "first");
        assert!(after_earlier(Some(&mut w), 0, stop(later)).is_none());
        assert_eq!(w.verdict, Verdict::Unsafe);
    }
    for earlier in [Verdict::Pass, Verdict::Info] {
        let mut w = Graded::new(earlier, "first");
        let got = after_earlier(Some(&mut w), 1, stop(Verdict::Error)).unwrap();
        assert_eq!(
            (got.verdict, got.reason.as_str()),
            (Verdict::Error, "stopped")
        );
    }
    let got = after_earlier(None, 0, stop(Verdict::Unsafe)).unwrap();
    assert_eq!(got.verdict, Verdict::Unsafe);
}
