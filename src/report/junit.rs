//! The report as JUnit XML: a test suite per target, a test case per cell.
//! `unsafe` and `error` cells are failures, so CI systems show them; the
//! reason of every other cell that is not `pass` goes to its system-out.

use super::{escape_markup as esc, Report, Verdict};

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

impl Report {
    /// The whole report as a JUnit XML document.
    pub fn to_junit(&self) -> String {
        let fails = |v: Verdict| matches!(v, Verdict::Unsafe | Verdict::Error);
        let total_ms: u64 = self.results.iter().map(|c| c.judgement.duration_ms).sum();
        let failures = self
            .results
            .iter()
            .filter(|c| fails(c.judgement.verdict))
            .count();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuites name=\"condwrite\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{}\">\n",
            self.results.len(),
            secs(total_ms)
        ));
        for t in &self.targets {
            let cells: Vec<_> = self.results.iter().filter(|c| c.target == t.name).collect();
            let ms: u64 = cells.iter().map(|c| c.judgement.duration_ms).sum();
            out.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{}\"{}>\n",
                esc(&t.name),
                cells.len(),
                cells.iter().filter(|c| fails(c.judgement.verdict)).count(),
                secs(ms),
                self.run_at
                    .as_deref()
                    .map(|r| format!(" timestamp=\"{}\"", esc(r.trim_end_matches('Z'))))
                    .unwrap_or_default()
            ));
            out.push_str("    <properties>\n");
            for (name, value) in [
                ("kind", Some(t.kind.as_str())),
                ("version", t.version.as_deref()),
                ("endpoint", t.endpoint.as_deref()),
                ("condwrite", Some(self.tool_version.as_str())),
            ] {
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    out.push_str(&format!(
                        "      <property name=\"{name}\" value=\"{}\"/>\n",
                        esc(v)
                    ));
                }
            }
            out.push_str("    </properties>\n");
            for c in cells {
                out.push_str(&format!(
                    "    <testcase name=\"{}\" classname=\"condwrite.{}\" time=\"{}\"",
                    esc(&c.scenario),
                    esc(&t.name),
                    secs(c.judgement.duration_ms)
                ));
                if c.judgement.verdict == Verdict::Pass {
                    out.push_str("/>\n");
                    continue;
                }
                out.push_str(">\n");
                if fails(c.judgement.verdict) {
                    let evidence: Vec<String> = c
                        .judgement
                        .evidence
                        .iter()
                        .map(|o| {
                            format!(
                                "{} {} [{}] -> {}{}",
                                o.method,
                                o.path,
                                o.precondition,
                                o.status_line(),
                                o.etag
                                    .as_ref()
                                    .map(|e| format!(" ETag {e}"))
                                    .unwrap_or_default()
                            )
                        })
                        .collect();
                    out.push_str(&format!(
                        "      <failure type=\"{}\" message=\"{}\">{}\n{}</failure>\n",
                        c.judgement.verdict,
                        esc(&format!("{}: {}", c.judgement.verdict, c.judgement.reason)),
                        esc(&c.judgement.reason),
                        esc(&evidence.join("\n"))
                    ));
                } else {
                    out.push_str(&format!(
                        "      <system-out>{}: {}</system-out>\n",
                        c.judgement.verdict,
                        esc(&c.judgement.reason)
                    ));
                }
                out.push_str("    </testcase>\n");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}
