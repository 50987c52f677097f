//! The report as one self-contained HTML file: no script, no network. The
//! matrix is coloured by verdict; each cell opens (a `<details>` element)
//! its reason, its evidence, and a repro: the same requests as curl
//! commands, with placeholders for the credentials.

use super::{escape_markup as esc, CellResult, Report, TargetInfo, Verdict};
use crate::model::{Operation, Outcome};

/// A word quoted for a POSIX shell.
fn sh(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The exchange as a curl command that sends the same request: SigV4 by
/// curl itself, the credentials left as shell variables.
pub fn curl(o: &Outcome, target: &TargetInfo) -> String {
    let endpoint = target.endpoint.as_deref().unwrap_or("$S3_ENDPOINT");
    let region = target.region.as_deref().unwrap_or("us-east-1");
    let mut parts = vec!["curl -sS -i".to_owned()];
    match o.operation {
        Operation::HeadObject => parts.push("-I".into()),
        Operation::GetObject => {}
        _ => parts.push(format!("-X {}", o.method)),
    }
    parts.push(format!(
        "--aws-sigv4 {}",
        sh(&format!("aws:amz:{region}:s3"))
    ));
    parts.push("--user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\"".into());
    let pre = &o.precondition;
    for (name, value) in [
        ("If-Match", &pre.if_match),
        ("If-None-Match", &pre.if_none_match),
        ("If-Modified-Since", &pre.if_modified_since),
        ("If-Unmodified-Since", &pre.if_unmodified_since),
        ("Range", &pre.range),
        ("x-amz-copy-source", &o.copy_source),
    ] {
        if let Some(v) = value {
            parts.push(format!("-H {}", sh(&format!("{name}: {v}"))));
        }
    }
    if let Some(body) = &o.sent {
        parts.push(format!("--data-binary {}", sh(body)));
    }
    parts.push(sh(&format!("{}{}", endpoint.trim_end_matches('/'), o.path)));
    parts.join(" \\\n  ")
}

/// One evidence exchange as a table row.
fn exchange_row(o: &Outcome) -> String {
    let answer = match &o.code {
        Some(code) => format!("{} {code}", o.status),
        None => o.status.to_string(),
    };
    let mut body = String::new();
    if let Some(s) = &o.sent {
        body.push_str(&format!("sent {s:?}"));
    }
    if let Some(r) = &o.received {
        if !body.is_empty() {
            body.push_str("; ");
        }
        body.push_str(&format!("received {r:?}"));
    }
    for item in &o.items {
        if !body.is_empty() {
            body.push_str("; ");
        }
        body.push_str(&format!(
            "{}: {}",
            item.key,
            item.error.as_deref().unwrap_or("deleted")
        ));
    }
    format!(
        "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&o.method),
        esc(&o.path),
        esc(&o.precondition.to_string()),
        esc(&answer),
        esc(o.etag.as_ref().map(|e| e.as_str()).unwrap_or("")),
        esc(&body)
    )
}

fn cell_html(c: &CellResult, target: &TargetInfo) -> String {
    let mut out = format!(
        "<td class=\"v-{v}\"><details><summary>{v}</summary><div class=\"detail\"><p class=\"reason\">{}</p><p class=\"meta\">{} ms</p>",
        esc(&c.judgement.reason),
        c.judgement.duration_ms,
        v = c.judgement.verdict.name()
    );
    if !c.judgement.evidence.is_empty() {
        out.push_str("<table class=\"evidence\"><tr><th>request</th><th>conditions</th><th>answer</th><th>ETag</th><th>body</th></tr>");
        for o in &c.judgement.evidence {
            out.push_str(&exchange_row(o));
        }
        out.push_str("</table><p class=\"meta\">Repro (the run's bucket and keys are gone: create the bucket first; the requests run in this order):</p><pre>");
        let cmds: Vec<String> = c
            .judgement
            .evidence
            .iter()
            .map(|o| curl(o, target))
            .collect();
        out.push_str(&esc(&cmds.join("\n\n")));
        out.push_str("</pre>");
    }
    out.push_str("</div></details></td>");
    out
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #c8c8cc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f4; }
td.id code { font-size: 13px; }
td.name, #summary td { white-space: nowrap; }
details > summary { cursor: pointer; font-weight: 600; }
.detail { max-width: 60em; font-weight: normal; }
.detail pre { white-space: pre-wrap; background: #fafafa; border: 1px solid #ddd; padding: 6px; font-size: 12px; }
.meta { color: #555; font-size: 12px; }
table.evidence td, table.evidence th { font-size: 12px; }
.v-pass { background: #c8f0c8; }
.v-info { background: #cfe3ff; }
.v-deviates { background: #ffe9a8; }
.v-unsupported { background: #dcdcdc; }
.v-error { background: #e6c8f0; }
.v-unsafe { background: #ff9c9c; }
.v-none { background: #fff; color: #999; }
table.releases td.changed { outline: 3px solid #1d1d1f; outline-offset: -3px; font-weight: 600; }
.fit-safe { background: #c8f0c8; }
.fit-caveats { background: #e4f5c0; }
.fit-unknown { background: #e6c8f0; }
.fit-broken { background: #dcdcdc; }
.fit-unsafe { background: #ff9c9c; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; border: 1px solid #c8c8cc; padding: 6px; }
.plots figcaption { font-weight: 600; }
";

impl Report {
    /// The whole report as one self-contained HTML page.
    pub fn to_html(&self) -> String {
        let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>condwrite conformance matrix</title><style>");
        out.push_str(STYLE);
        out.push_str("</style></head><body>\n<h1>condwrite conformance matrix</h1>\n");
        out.push_str(&format!(
            "<p>condwrite {}{}: {} scenarios on {} target(s), {} cells. Click a cell for its reason, evidence and a curl repro.</p>\n",
            esc(&self.tool_version),
            self.run_at
                .as_deref()
                .map(|t| format!(", run {}", esc(t)))
                .unwrap_or_default(),
            self.scenarios.len(),
            self.targets.len(),
            self.results.len()
        ));
        // Summary.
        let groups = self.groups();
        out.push_str("<h2>Summary</h2>\n<table id=\"summary\"><tr><th>target</th><th>kind</th><th>version</th>");
        for g in &groups {
            out.push_str(&format!("<th>{}</th>", esc(g)));
        }
        out.push_str("<th>all</th></tr>\n");
        for t in &self.targets {
            // The target's colour is its worst cell; a recorded property
            // (info) is no blemish.
            let worst = self
                .results
                .iter()
                .filter(|c| c.target == t.name)
                .map(|c| match c.judgement.verdict {
                    Verdict::Info => Verdict::Pass,
                    v => v,
                })
                .max();
            out.push_str(&format!(
                "<tr><td class=\"name v-{}\" title=\"{}\">{}</td><td>{}</td><td>{}</td>",
                worst.map_or("none", Verdict::name),
                esc(
                    [t.description.as_str(), t.endpoint.as_deref().unwrap_or("")]
                        .join(" ")
                        .trim()
                ),
                esc(&t.name),
                esc(&t.kind),
                esc(t.version.as_deref().unwrap_or(""))
            ));
            for g in &groups {
                out.push_str(&format!(
                    "<td>{}</td>",
                    esc(&self.counts_text(&t.name, Some(g)))
                ));
            }
            out.push_str(&format!(
                "<td>{}</td></tr>\n",
                esc(&self.counts_text(&t.name, None))
            ));
        }
        out.push_str("</table>\n");
        out.push_str(&self.html_releases());
        out.push_str(&self.html_applications());
        out.push_str(&self.html_bench());
        out.push_str("<h2>Legend</h2>\n<table id=\"legend\">");
        for v in Verdict::ALL {
            out.push_str(&format!(
                "<tr><td class=\"v-{v}\">{v}</td><td>{}</td></tr>",
                esc(v.meaning())
            ));
        }
        out.push_str("</table>\n<h2>Matrix</h2>\n<table id=\"matrix\"><tr><th>scenario</th><th>operation</th>");
        for t in &self.targets {
            out.push_str(&format!("<th>{}</th>", esc(&t.name)));
        }
        out.push_str("</tr>\n");
        for s in &self.scenarios {
            if !self.results.iter().any(|c| c.scenario == s.id) {
                continue;
            }
            out.push_str(&format!(
                "<tr><td class=\"id\"><a href=\"{}\" title=\"{}\"><code>{}</code></a><br><span class=\"meta\">{}</span></td><td>{}</td>",
                esc(&s.aws_doc),
                esc(&s.title),
                esc(&s.id),
                esc(&s.title),
                esc(&s.operation)
            ));
            for t in &self.targets {
                match self.cell(&t.name, &s.id) {
                    Some(c) => out.push_str(&cell_html(c, t)),
                    None => out.push_str("<td class=\"v-none\">-</td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n</body></html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CellResult, ScenarioInfo};

    #[test]
    fn shell_words_survive_quotes() {
        assert_eq!(sh("plain"), "'plain'");
        assert_eq!(sh("it's"), "'it'\\''s'");
    }

    #[test]
    fn a_target_is_coloured_by_its_worst_cell_and_info_is_no_blemish() {
        let cell = |t: &str, v| CellResult {
            target: t.into(),
            scenario: "s".into(),
            judgement: crate::model::Judgement {
                verdict: v,
                reason: "r".into(),
                duration_ms: 1,
                evidence: vec![],
                answers: vec![],
            },
        };
        let report = Report {
            tool_version: "0".into(),
            run_at: None,
            scenarios: vec![ScenarioInfo {
                id: "s".into(),
                title: "t".into(),
                operation: "PutObject".into(),
                aws_doc: "https://docs.aws.amazon.com/".into(),
                informational: true,
            }],
            targets: vec![TargetInfo::named("a"), TargetInfo::named("b")],
            results: vec![cell("a", Verdict::Info), cell("b", Verdict::Deviates)],
            bench: Vec::new(),
            observed: Vec::new(),
            applications: Vec::new(),
        };
        let html = report.to_html();
        assert!(
            html.contains("<td class=\"name v-pass\" title=\"\">a</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"name v-deviates\" title=\"\">b</td>"),
            "{html}"
        );
    }
}
