//! Unit tests of the report: matrix, reasons, summary, JSON, baseline.

use super::*;

fn report() -> Report {
    let cell = |t: &str, s: &str, v| CellResult {
        target: t.into(),
        scenario: s.into(),
        verdict: v,
        reason: format!("because {v}"),
        duration_ms: 3,
        evidence: vec![],
        answers: vec![],
    };
    Report {
        tool_version: "0.0.0".into(),
        run_at: None,
        scenarios: ["a", "b"]
            .map(|id| ScenarioInfo {
                id: id.into(),
                title: id.into(),
                operation: "PutObject".into(),
                aws_doc: "https://docs.aws.amazon.com/".into(),
                informational: false,
            })
            .to_vec(),
        targets: vec![TargetInfo::named("x"), TargetInfo::named("y")],
        results: vec![
            cell("x", "a", Verdict::Pass),
            cell("x", "b", Verdict::Unsafe),
            cell("y", "a", Verdict::Deviates),
        ],
        bench: Vec::new(),
        observed: Vec::new(),
    }
}

#[test]
fn verdict_failure_follows_strictness() {
    // (verdict, fails by default, fails with --strict): docs/verdicts.md
    // exit-status rule, for every verdict.
    let table = [
        (Verdict::Pass, false, false),
        (Verdict::Info, false, false),
        (Verdict::Deviates, false, true),
        (Verdict::Unsupported, false, true),
        (Verdict::Error, true, true),
        (Verdict::Unsafe, true, true),
    ];
    assert_eq!(table.len(), Verdict::ALL.len());
    for (v, default, strict) in table {
        assert_eq!(v.fails(false), default, "{v}");
        assert_eq!(v.fails(true), strict, "{v} --strict");
    }
}

#[test]
fn matrix_has_a_row_per_scenario_and_a_dash_for_cells_not_run() {
    let m = report().matrix(Some(120));
    let row_b = m.lines().find(|l| l.contains(" b ")).expect(&m);
    assert!(row_b.contains("unsafe") && row_b.contains('-'), "{m}");
    let row_a = m.lines().find(|l| l.contains(" a ")).expect(&m);
    assert!(row_a.contains("pass") && row_a.contains("deviates"), "{m}");
}

#[test]
fn reasons_list_only_non_pass_cells() {
    let r = report().reasons();
    assert_eq!(
        r,
        vec![
            "x / b: unsafe: because unsafe".to_string(),
            "y / a: deviates: because deviates".to_string()
        ]
    );
}

#[test]
fn targets_whose_cells_all_failed_alike_share_one_line() {
    let mut r = report();
    r.targets.push(TargetInfo::named("z"));
    r.targets.push(TargetInfo::named("w"));
    for t in ["z", "w"] {
        for s in ["a", "b"] {
            r.results.push(CellResult {
                target: t.into(),
                scenario: s.into(),
                verdict: Verdict::Error,
                reason: "no Docker".into(),
                duration_ms: 0,
                evidence: vec![],
                answers: vec![],
            });
        }
    }
    let lines = r.reasons();
    assert_eq!(lines.last().unwrap(), "z, w: all 2 cells error: no Docker");
    assert_eq!(lines.len(), 3, "{lines:?}");
}

#[test]
fn cells_of_a_target_that_failed_alike_share_a_line() {
    let mut r = report();
    r.scenarios.push(ScenarioInfo {
        id: "c".into(),
        title: "c".into(),
        operation: "PutObject".into(),
        aws_doc: "https://docs.aws.amazon.com/".into(),
        informational: false,
    });
    let cell = |s: &str| CellResult {
        target: "y".into(),
        scenario: s.into(),
        verdict: Verdict::Error,
        reason: "stopped answering".into(),
        duration_ms: 1,
        evidence: vec![],
        answers: vec![],
    };
    r.results.push(cell("b"));
    r.results.push(cell("c"));
    let lines = r.reasons();
    assert!(
        lines.contains(&"y / 2 cells (b, c): error: stopped answering".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"y / a: deviates: because deviates".to_owned()),
        "{lines:?}"
    );
}

#[test]
fn credentials_in_an_endpoint_url_are_dropped() {
    assert_eq!(
        strip_userinfo("https://AKIA:secret@s3.example.com:9000/path"),
        "https://s3.example.com:9000/path"
    );
    assert_eq!(
        strip_userinfo("http://127.0.0.1:9000"),
        "http://127.0.0.1:9000"
    );
}

#[test]
fn json_round_trips_with_lowercase_verdicts() {
    let r = report();
    let json = r.to_json();
    assert!(json.contains("\"verdict\": \"unsafe\""), "{json}");
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}
