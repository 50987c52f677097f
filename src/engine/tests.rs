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
    let (v, r) = with_late_writes(Verdict::Pass, "ok".into(), &late);
    assert_eq!(v, Verdict::Deviates);
    assert_eq!(
        r,
        "ok; read-after-write is not strong: the write before this step (j) appeared only after 300 ms"
    );
    let (v, r) = with_late_writes(Verdict::Info, "x".into(), &late);
    assert_eq!(v, Verdict::Deviates, "{r}");
    // A worse verdict stands; a reason that says it already is kept.
    let said = "bad; read-after-write is not strong: the write appeared after 9 ms";
    let (v, r) = with_late_writes(Verdict::Unsafe, said.into(), &late);
    assert_eq!((v, r.as_str()), (Verdict::Unsafe, said));
    let (v, r) = with_late_writes(Verdict::Pass, "ok".into(), &[]);
    assert_eq!((v, r.as_str()), (Verdict::Pass, "ok"));
}

#[test]
fn the_worst_step_decides_and_is_named() {
    let (v, r, _) = conclude(Some((2, Graded::new(Verdict::Unsafe, "lost"))), 4);
    assert_eq!((v, r.as_str()), (Verdict::Unsafe, "step 3: lost"));
    let (v, r, _) = conclude(Some((0, Graded::new(Verdict::Pass, "fine"))), 1);
    assert_eq!((v, r.as_str()), (Verdict::Pass, "fine"));
    let (v, _, _) = conclude(None, 2);
    assert_eq!(v, Verdict::Error);
}
