//! The renderers, merging and the baseline, from fixed result models
//! (tests/fixtures/*.json), and the HTML opened in headless Chromium.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use condwrite::model::Verdict;
use condwrite::report::Report;

fn fixture(name: &str) -> Report {
    Report::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn markdown_has_the_summary_the_matrix_a_legend_and_the_reasons() {
    let md = fixture("run-a.json").to_markdown();
    assert!(md.starts_with("# condwrite conformance matrix\n"), "{md}");
    assert!(
        md.contains(
            "condwrite 0.1.0, run 2026-11-29T12:00:00Z: 3 scenarios on 2 target(s), 6 cells."
        ),
        "{md}"
    );
    // Summary: a row per target, a column per operation, counts per verdict.
    assert!(
        md.contains("| target | kind | version | PutObject | DeleteObject | all |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| good | embedded | condwrite 0.1.0 | 1 pass, 1 info | 1 pass | 2 pass, 1 info |"
        ),
        "{md}"
    );
    assert!(md.contains("| lossy | process | lossy 1.0 | 1 info, 1 unsafe | 1 deviates | 1 info, 1 deviates, 1 unsafe |"), "{md}");
    // The matrix links each scenario to its AWS page and marks each cell.
    let row = md
        .lines()
        .find(|l| l.starts_with("| [`put-if-none-match-existing-key`]"))
        .expect("matrix row");
    assert!(
        row.contains(
            "(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html"
        ),
        "{row}"
    );
    assert!(
        row.ends_with("| PutObject | ✅ pass | ❌ unsafe |"),
        "{row}"
    );
    for v in Verdict::ALL {
        assert!(
            md.contains(&format!("| {} `{v}` | {} |", v.mark(), v.meaning())),
            "legend lacks {v}"
        );
    }
    assert!(
        md.contains("- **lossy / `put-if-none-match-existing-key`** — ❌ unsafe: step 2: PUT"),
        "{md}"
    );
    assert!(
        !md.contains("- **good / `put-if-none-match-existing-key`**"),
        "pass cells have no reason line"
    );
}

#[test]
fn html_is_self_contained_coloured_and_carries_evidence_and_a_curl_repro() {
    let html = fixture("run-a.json").to_html();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    for external in ["<script", "<link", " src=", "@import", "url("] {
        assert!(!html.contains(external), "not self-contained: {external}");
    }
    assert!(
        html.contains("<td class=\"v-unsafe\"><details><summary>unsafe</summary>"),
        "{html}"
    );
    assert!(html.contains("<td class=\"v-deviates\">"), "{html}");
    assert!(
        html.contains(".v-unsafe { background: #ff9c9c; }"),
        "{html}"
    );
    // The reason is escaped, not markup.
    assert!(
        html.contains("from body &quot;&lt;the original&gt;&quot;"),
        "{html}"
    );
    // Evidence rows and the repro: the requests in order, SigV4 by curl, the
    // credentials as shell variables, bodies and headers shell-quoted.
    assert!(
        html.contains("<td>PUT /bucket-1/run/put/object</td><td>If-None-Match: *</td><td>200</td>"),
        "{html}"
    );
    assert!(
        html.contains("--aws-sigv4 &#39;aws:amz:us-east-1:s3&#39;"),
        "{html}"
    );
    assert!(
        html.contains("--user &quot;$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY&quot;"),
        "{html}"
    );
    assert!(html.contains("-H &#39;If-None-Match: *&#39;"), "{html}");
    assert!(
        html.contains("--data-binary &#39;it&#39;\\&#39;&#39;s overwritten&#39;"),
        "{html}"
    );
    assert!(
        html.contains("&#39;http://127.0.0.1:9001/bucket-1/run/put/object&#39;"),
        "{html}"
    );
    assert!(html.contains("-X DELETE"), "{html}");
}

#[test]
fn curl_repro_of_a_copy_names_its_source_and_a_missing_endpoint_is_a_placeholder() {
    let r = fixture("run-b.json");
    let cell = r.cell("lossy", "copy-if-none-match-existing").unwrap();
    let mut target = r
        .targets
        .iter()
        .find(|t| t.name == "lossy")
        .unwrap()
        .clone();
    target.endpoint = None;
    let cmd = condwrite::report::curl(&cell.judgement.evidence[0], &target);
    assert!(cmd.contains("-X PUT"), "{cmd}");
    assert!(
        cmd.contains("-H 'x-amz-copy-source: bucket-2/run/copy/source'"),
        "{cmd}"
    );
    assert!(
        cmd.ends_with("'$S3_ENDPOINT/bucket-2/run/copy/destination'"),
        "{cmd}"
    );
}

#[test]
fn junit_is_accepted_by_a_junit_parser_with_unsafe_and_error_as_failures() {
    let merged = Report::merge(vec![fixture("run-a.json"), fixture("run-b.json")]);
    let xml = merged.to_junit();
    let suites = junit_parser::from_reader(BufReader::new(xml.as_bytes()))
        .unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(suites.tests, merged.results.len() as u64);
    let failing = merged
        .results
        .iter()
        .filter(|c| matches!(c.judgement.verdict, Verdict::Unsafe | Verdict::Error))
        .count();
    assert_eq!(suites.failures, failing as u64);
    let names: Vec<&str> = suites.suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["good", "lossy", "down"]);
    let lossy = &suites.suites[1];
    let copy = lossy
        .cases
        .iter()
        .find(|c| c.original_name == "copy-if-none-match-existing")
        .unwrap_or_else(|| {
            panic!(
                "{:?}",
                lossy.cases.iter().map(|c| &c.name).collect::<Vec<_>>()
            )
        });
    assert!(copy.status.is_failure(), "{copy:?}");
    assert_eq!(copy.status.failure_as_ref().failure_type, "unsafe");
    assert!(copy
        .status
        .failure_as_ref()
        .text
        .contains("PUT /bucket-2/run/copy/destination"));
    assert_eq!(copy.classname.as_deref(), Some("condwrite.lossy"));
    let deviates = lossy
        .cases
        .iter()
        .find(|c| c.original_name == "delete-if-match-stale")
        .unwrap();
    assert!(deviates.status.is_success(), "deviates is not a failure");
    assert!(deviates
        .system_out
        .as_deref()
        .unwrap()
        .starts_with("deviates: "));
    let down = &suites.suites[2];
    assert!(down.cases.iter().all(|c| c.status.is_failure()));
}

#[test]
fn merging_two_runs_unions_targets_and_scenarios_and_takes_the_later_cell() {
    let merged = Report::merge(vec![fixture("run-a.json"), fixture("run-b.json")]);
    assert_eq!(merged.target_names(), vec!["good", "lossy", "down"]);
    let ids: Vec<&str> = merged.scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "put-if-none-match-existing-key",
            "put-aba",
            "delete-if-match-stale",
            "copy-if-none-match-existing"
        ]
    );
    assert_eq!(merged.results.len(), 6 + 4 - 1, "one cell ran in both");
    let cell = merged
        .cell("lossy", "put-if-none-match-existing-key")
        .unwrap();
    assert_eq!(cell.judgement.verdict, Verdict::Pass);
    assert_eq!(cell.judgement.reason, "fixed in 1.1");
    // The later run's description wins; an old-style name-only entry counts.
    let lossy = merged.targets.iter().find(|t| t.name == "lossy").unwrap();
    assert_eq!(lossy.version.as_deref(), Some("lossy 1.1"));
    assert_eq!(merged.targets[2].kind, "");
    assert_eq!(merged.run_at.as_deref(), Some("2026-11-29T13:00:00Z"));
    // Cells come out grouped by target, in scenario order.
    let order: Vec<(&str, &str)> = merged
        .results
        .iter()
        .map(|c| (c.target.as_str(), c.scenario.as_str()))
        .collect();
    assert_eq!(order[0], ("good", "put-if-none-match-existing-key"));
    assert_eq!(order[3], ("lossy", "put-if-none-match-existing-key"));
    assert_eq!(order[6], ("lossy", "copy-if-none-match-existing"));
}

#[test]
fn a_baseline_comparison_finds_regressions_and_improvements() {
    let before = fixture("run-a.json");
    let after = Report::merge(vec![fixture("run-a.json"), fixture("run-b.json")]);
    let cmp = after.compare(&before);
    // lossy / put-if-none-match-existing-key went unsafe -> pass.
    assert_eq!(cmp.improvements.len(), 1, "{cmp:?}");
    assert_eq!(cmp.improvements[0].before, Verdict::Unsafe);
    assert!(cmp.regressions.is_empty(), "{cmp:?}");
    assert_eq!(cmp.new.len(), 3, "{cmp:?}");
    assert!(cmp.missing.is_empty());
    // The other way round the same cell is a regression.
    let back = before.compare(&after);
    assert_eq!(back.regressions.len(), 1, "{back:?}");
    let r = &back.regressions[0];
    assert_eq!(
        (r.target.as_str(), r.scenario.as_str()),
        ("lossy", "put-if-none-match-existing-key")
    );
    assert_eq!((r.before, r.after), (Verdict::Pass, Verdict::Unsafe));
    assert_eq!(back.missing.len(), 3);
    let lines = back.lines();
    assert!(
        lines[0].starts_with("baseline: 1 regression(s), 0 improvement(s)"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("regression  lossy / put-if-none-match-existing-key: pass -> unsafe"),
        "{lines:?}"
    );
    // Same verdicts: nothing to say.
    let same = before.compare(&before);
    assert!(same.regressions.is_empty() && same.improvements.is_empty());
}

/// The Chromium binary Debian installs, if any.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// RGB pixels of a PNG.
fn pixels(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Chromium is not installed: run scripts/install-servers chromium"
        );
        eprintln!("skipping: Chromium is not installed (scripts/install-servers chromium)");
        return;
    };
    let dir = scratch("html-report");
    let html = dir.join("report.html");
    let merged = Report::merge(vec![fixture("run-a.json"), fixture("run-b.json")]);
    std::fs::write(&html, merged.to_html()).unwrap();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", dir.join("profile").display()),
            &format!("--screenshot={}", shot.display()),
        ])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success() && shot.is_file(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (w, h, px) = pixels(&shot);
    assert_eq!((w, h), (1280, 900));
    // The verdict colours of the stylesheet are on screen: the matrix and
    // the summary rendered with their cells coloured.
    let count = |rgb: [u8; 3]| px.iter().filter(|p| **p == rgb).count();
    let unsafe_red = count([0xff, 0x9c, 0x9c]);
    let pass_green = count([0xc8, 0xf0, 0xc8]);
    let error_purple = count([0xe6, 0xc8, 0xf0]);
    println!(
        "screenshot {}: {unsafe_red} unsafe-red, {pass_green} pass-green, {error_purple} error-purple pixels",
        shot.display()
    );
    assert!(unsafe_red > 1000, "no unsafe cell visible");
    assert!(pass_green > 1000, "no pass cell visible");
    assert!(error_purple > 500, "no error cell visible");
}

/// The committed reports (scripts/reports) load, lead with the stores, keep
/// the fault profiles to the self-test, and carry no credential of any
/// target in targets.toml.
#[test]
fn the_committed_reports_lead_with_stores_and_hold_no_secret() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stores = Report::load(&root.join("reports/results.json")).unwrap();
    let names = stores.target_names();
    assert!(names.len() >= 9, "{names:?}");
    assert!(
        names.iter().all(|n| !n.starts_with("embedded-")),
        "fault profiles among the stores: {names:?}"
    );
    // The reference server, if there, comes after every store.
    if let Some(i) = names.iter().position(|n| *n == "embedded") {
        assert_eq!(i, names.len() - 1, "{names:?}");
    }
    let self_test = Report::load(&root.join("reports/self-test.json")).unwrap();
    assert!(
        self_test
            .target_names()
            .iter()
            .all(|n| n.starts_with("embedded")),
        "{:?}",
        self_test.target_names()
    );
    let targets = std::fs::read_to_string(root.join("targets.toml")).unwrap();
    let secrets: Vec<String> = targets
        .lines()
        .filter_map(|l| l.trim().strip_prefix("secret_key = \""))
        .map(|v| v.trim_end_matches('"').to_owned())
        // moto's and LocalStack's `test` and s3rver's `S3RVER` are their
        // fixed public defaults, and words of any text.
        .filter(|v| v.len() >= 12)
        .collect();
    assert!(secrets.len() >= 8, "{secrets:?}");
    for entry in std::fs::read_dir(root.join("reports")).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // the PNG
        };
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{} holds a secret key",
                path.display()
            );
        }
    }
}

/// The order of verdicts, worst last, as the README and DESIGN state it.
const ORDER: [&str; 6] = ["pass", "info", "deviates", "unsupported", "error", "unsafe"];

/// A one-cell report of `verdict`.
fn one_cell(verdict: Verdict) -> Report {
    let mut r = fixture("run-a.json");
    let target = r.targets[0].name.clone();
    let scenario = r.scenarios[0].id.clone();
    r.results
        .retain(|c| c.target == target && c.scenario == scenario);
    r.results[0].judgement.verdict = verdict;
    r
}

#[test]
fn a_change_is_a_regression_exactly_when_the_verdict_got_worse() {
    assert_eq!(
        Verdict::ALL.iter().map(|v| v.name()).collect::<Vec<_>>(),
        ORDER.to_vec()
    );
    for (i, before) in Verdict::ALL.iter().enumerate() {
        for (j, after) in Verdict::ALL.iter().enumerate() {
            let cmp = one_cell(*after).compare(&one_cell(*before));
            let pair = format!("{before} -> {after}");
            assert_eq!(cmp.regressions.len(), usize::from(j > i), "{pair}");
            assert_eq!(cmp.improvements.len(), usize::from(j < i), "{pair}");
            assert!(cmp.new.is_empty() && cmp.missing.is_empty(), "{pair}");
        }
    }
}

/// Text a store controls, made hostile: markup, quotes, an ampersand, and
/// control characters XML cannot carry.
const HOSTILE: &str = "<script>alert('x')</script> & \"q\" \u{1}\u{1b}[31m \u{fffe}";

#[test]
fn every_field_a_store_controls_is_escaped_in_html_junit_and_markdown() {
    use condwrite::model::{BatchItem, ETag};
    let mut r = fixture("run-a.json");
    for t in &mut r.targets {
        t.description = HOSTILE.into();
        t.version = Some(HOSTILE.into());
        t.endpoint = Some(format!("http://h/{HOSTILE}"));
    }
    for c in &mut r.results {
        c.judgement.verdict = Verdict::Unsafe;
        c.judgement.reason = HOSTILE.into();
        for o in &mut c.judgement.evidence {
            o.path = format!("/b/{HOSTILE}");
            o.key = HOSTILE.into();
            o.code = Some(HOSTILE.into());
            o.etag = Some(ETag::new(HOSTILE));
            o.sent = Some(HOSTILE.into());
            o.received = Some(HOSTILE.into());
            o.copy_source = Some(HOSTILE.into());
            o.precondition.if_match = Some(HOSTILE.into());
            o.items = vec![BatchItem {
                key: HOSTILE.into(),
                if_match: Some(HOSTILE.into()),
                error: Some(HOSTILE.into()),
            }];
        }
    }
    assert!(r.results.iter().any(|c| !c.judgement.evidence.is_empty()));
    let html = r.to_html();
    assert!(!html.contains("<script>"), "raw markup in the HTML");
    assert!(
        html.contains("&lt;script&gt;"),
        "the payload is gone from the HTML"
    );
    assert!(!html.contains('\u{1}') && !html.contains('\u{1b}') && !html.contains('\u{fffe}'));
    let junit = r.to_junit();
    assert!(!junit.contains("<script>"));
    assert!(!junit.contains('\u{1}') && !junit.contains('\u{fffe}'));
    let dir = scratch("hostile-junit");
    let path = dir.join("junit.xml");
    std::fs::write(&path, &junit).unwrap();
    let suites = junit_parser::from_reader(BufReader::new(std::fs::File::open(&path).unwrap()))
        .expect("the JUnit parses");
    let failure = suites.suites[0].cases[0]
        .status
        .failure_as_ref()
        .message
        .clone();
    assert!(
        failure.contains("<script>alert('x')</script> & \"q\""),
        "{failure}"
    );
    let md = r.to_markdown();
    assert!(!md.contains("<script>"), "raw markup in the Markdown");
    assert!(!md.contains('\u{1}') && !md.contains('\u{1b}'));
    assert!(
        md.contains("&lt;script&gt;"),
        "the payload is gone from the Markdown"
    );
}
