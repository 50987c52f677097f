//! Unit tests of the report: matrix, reasons, summary, JSON, baseline.

use super::*;

fn report() -> Report {
    let cell = |t: &str, s: &str, v| CellResult {
        target: t.into(),
        scenario: s.into(),
        judgement: crate::model::Judgement {
            verdict: v,
            reason: format!("because {v}"),
            duration_ms: 3,
            evidence: vec![],
            answers: vec![],
        },
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
        applications: Vec::new(),
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
                judgement: crate::model::Judgement {
                    verdict: Verdict::Error,
                    reason: "no Docker".into(),
                    duration_ms: 0,
                    evidence: vec![],
                    answers: vec![],
                },
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
        judgement: crate::model::Judgement {
            verdict: Verdict::Error,
            reason: "stopped answering".into(),
            duration_ms: 1,
            evidence: vec![],
            answers: vec![],
        },
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

/// Text a store controls (a reason, an error code, a version string) that
/// carries markup and line breaks.
const HOSTILE: &str =
    "<b>bold</b> & \"quoted\"\n- injected item\n| injected | row |\r\n## injected heading";

fn hostile_report() -> Report {
    let mut r = report();
    r.targets[0].version = Some(HOSTILE.into());
    r.targets[0].description = HOSTILE.into();
    r.results = [
        ("a", Verdict::Deviates),
        ("b", Verdict::Unsupported),
        ("a", Verdict::Info),
        ("b", Verdict::Unsafe),
        ("a", Verdict::Error),
    ]
    .iter()
    .enumerate()
    .map(|(i, (s, v))| CellResult {
        target: if i < 3 { "x".into() } else { "y".into() },
        scenario: (*s).into(),
        judgement: crate::model::Judgement {
            verdict: *v,
            reason: format!("{v}: {HOSTILE}"),
            duration_ms: 1,
            evidence: vec![],
            answers: vec![],
        },
    })
    .collect();
    r
}

/// Every cell's reason reaches JUnit escaped, whichever element carries it
/// (`<failure>` for unsafe and error, `<system-out>` for the others).
#[test]
fn junit_escapes_every_reason_it_carries() {
    let xml = hostile_report().to_junit();
    assert!(!xml.contains("<b>"), "{xml}");
    for v in ["deviates", "unsupported", "info", "unsafe", "error"] {
        assert!(
            xml.contains(&format!(
                "{v}: &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"
            )),
            "{v}: {xml}"
        );
    }
    assert_eq!(xml.matches("<system-out>").count(), 3, "{xml}");
}

/// Store-controlled text never breaks out of its Markdown list item or
/// table row: no line of the page starts what the text tried to start.
#[test]
fn markdown_keeps_store_text_on_its_line() {
    let md = hostile_report().to_markdown();
    for line in md.lines() {
        let line = line.trim_start();
        assert!(
            !(line.starts_with("- injected")
                || line.starts_with("| injected")
                || line.starts_with("## injected")),
            "{line:?} in\n{md}"
        );
        assert!(!line.contains("<b>"), "{line:?}");
    }
    // The reasons are there, on one line each.
    assert!(
        md.lines()
            .any(|l| l.starts_with("- ") && l.contains("- injected item | injected")),
        "{md}"
    );
}

/// The exit status of a doctor: 0 only when every application is safe
/// (with or without caveats) and no real run contradicts the cells; any
/// other roll-up fails it; a failed clean-up alone is 1.
#[test]
fn a_doctor_passes_only_when_every_application_is_safe() {
    use crate::profiles::{AppVerdict, Fitness, Observed};
    let app = |fitness, observed: Option<Fitness>| AppVerdict {
        profile: "p".into(),
        target: "t".into(),
        fitness,
        findings: Vec::new(),
        observed: observed.map(|fitness| Observed {
            profile: "p".into(),
            target: "t".into(),
            fitness,
            client: None,
            summary: String::new(),
            facts: serde_json::Value::Null,
            duration_ms: 0,
        }),
        inferred_for_check: None,
    };
    for (fitness, want) in [
        (Fitness::Safe, RunStatus::Passed),
        (Fitness::SafeWithCaveats, RunStatus::Passed),
        (Fitness::Unknown, RunStatus::Failed),
        (Fitness::DoesNotWork, RunStatus::Failed),
        (Fitness::Unsafe, RunStatus::Failed),
    ] {
        let apps = [app(Fitness::Safe, None), app(fitness, None)];
        assert_eq!(doctor_status(&apps, false), want, "{fitness}");
        let cleanup = if want == RunStatus::Passed {
            RunStatus::CleanupFailed
        } else {
            want
        };
        assert_eq!(doctor_status(&apps, true), cleanup, "{fitness}");
    }
    // The cells say safe; the application lost data when it ran.
    let contradicted = [app(Fitness::Safe, Some(Fitness::Unsafe))];
    assert_eq!(doctor_status(&contradicted, false), RunStatus::Failed);
    // A run that could not tell, or that agrees, changes nothing.
    let unsure = [app(Fitness::Safe, Some(Fitness::Unknown))];
    assert_eq!(doctor_status(&unsure, false), RunStatus::Passed);
    assert_eq!(doctor_status(&[], false), RunStatus::Passed);
    let codes: Vec<u8> = [
        RunStatus::Passed,
        RunStatus::CleanupFailed,
        RunStatus::Failed,
    ]
    .iter()
    .map(|s| s.exit_code())
    .collect();
    assert_eq!(codes, [0, 1, 101]);
}

/// A run fails on a failing cell (strict or not), or against a baseline
/// only on a regression; a bench fails when a target was not measured.
#[test]
fn a_run_and_a_bench_fail_for_their_own_reasons() {
    let r = report();
    // x/b is unsafe.
    assert_eq!(r.run_status(false, None, false), RunStatus::Failed);
    let mut fine = report();
    fine.results
        .retain(|c| c.judgement.verdict != Verdict::Unsafe);
    assert_eq!(fine.run_status(false, None, false), RunStatus::Passed);
    assert_eq!(fine.run_status(false, None, true), RunStatus::CleanupFailed);
    // y/a deviates: only strict fails on it.
    assert_eq!(fine.run_status(true, None, false), RunStatus::Failed);
    // Against itself nothing got worse, unsafe cell or not.
    let same = r.compare(&r);
    assert_eq!(r.run_status(false, Some(&same), false), RunStatus::Passed);
    let mut was_pass = report();
    was_pass.results[1].judgement.verdict = Verdict::Pass;
    let worse = r.compare(&was_pass);
    assert_eq!(worse.regressions.len(), 1);
    assert_eq!(r.run_status(false, Some(&worse), false), RunStatus::Failed);
    // Two targets, no figures for `y`.
    let mut bench = report();
    assert_eq!(bench.bench_status(false), RunStatus::Failed);
    bench.targets.truncate(0);
    assert_eq!(bench.bench_status(false), RunStatus::Passed);
}
