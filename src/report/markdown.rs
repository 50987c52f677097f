//! The report as Markdown for a docs page: a summary (targets × scenario
//! groups, counts per verdict), the full matrix with a legend, and the
//! reasons of every cell that is not `pass`.

use super::{Report, Verdict};

/// Text a store may control, for a Markdown page: no markup (a renderer
/// may pass HTML through), no control characters, no line breaks.
pub(super) fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Text for a Markdown table cell: as [`text`], and no pipes.
fn cell(value: &str) -> String {
    text(value).replace('|', "\\|")
}

impl Report {
    /// The whole report as one Markdown page.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# condwrite conformance matrix\n\n");
        out.push_str(&format!(
            "condwrite {}{}: {} scenarios on {} target(s), {} cells.\n",
            self.tool_version,
            self.run_at
                .as_deref()
                .map(|t| format!(", run {t}"))
                .unwrap_or_default(),
            self.scenarios.len(),
            self.targets.len(),
            self.results.len()
        ));
        out.push_str("\n## Summary\n\n");
        out.push_str(&self.markdown_summary());
        out.push_str(&self.markdown_releases());
        out.push_str(&self.markdown_applications());
        out.push_str(&self.markdown_bench());
        out.push_str("\n## Matrix\n\n");
        let mut header = String::from("| scenario | operation |");
        let mut rule = String::from("|---|---|");
        for t in &self.targets {
            header.push_str(&format!(" {} |", cell(&t.name)));
            rule.push_str("---|");
        }
        out.push_str(&format!("{header}\n{rule}\n"));
        for s in &self.scenarios {
            if !self.results.iter().any(|c| c.scenario == s.id) {
                continue;
            }
            out.push_str(&format!(
                "| [`{}`]({} \"{}\") | {} |",
                s.id,
                s.aws_doc,
                cell(&s.title).replace('"', "'"),
                cell(&s.operation)
            ));
            for t in &self.targets {
                let text = self.cell(&t.name, &s.id).map_or("-".to_owned(), |c| {
                    format!("{} {}", c.judgement.verdict.mark(), c.judgement.verdict)
                });
                out.push_str(&format!(" {text} |"));
            }
            out.push('\n');
        }
        out.push_str("\n### Legend\n\n| verdict | meaning |\n|---|---|\n");
        for v in Verdict::ALL {
            out.push_str(&format!("| {} `{v}` | {} |\n", v.mark(), v.meaning()));
        }
        let reasons: Vec<_> = self
            .results
            .iter()
            .filter(|c| c.judgement.verdict != Verdict::Pass)
            .collect();
        if !reasons.is_empty() {
            out.push_str("\n## Reasons\n\nEvery cell that is not `pass`, with what AWS does and what the target did.\n\n");
            for c in reasons {
                out.push_str(&format!(
                    "- **{} / `{}`** — {} {}: {}\n",
                    c.target,
                    c.scenario,
                    c.judgement.verdict.mark(),
                    c.judgement.verdict,
                    text(&c.judgement.reason)
                ));
            }
        }
        out
    }

    /// The summary table alone: a row per target, a column per scenario
    /// group, the count of each verdict in each.
    pub fn markdown_summary(&self) -> String {
        let groups = self.groups();
        let mut out = String::from("| target | kind | version |");
        let mut rule = String::from("|---|---|---|");
        for g in &groups {
            out.push_str(&format!(" {} |", cell(g)));
            rule.push_str("---|");
        }
        out.push_str(" all |\n");
        rule.push_str("---|\n");
        out.push_str(&rule);
        for t in &self.targets {
            out.push_str(&format!(
                "| {} | {} | {} |",
                cell(&t.name),
                cell(&t.kind),
                cell(t.version.as_deref().unwrap_or("")),
            ));
            for g in &groups {
                out.push_str(&format!(" {} |", self.counts_text(&t.name, Some(g))));
            }
            out.push_str(&format!(" {} |\n", self.counts_text(&t.name, None)));
        }
        out
    }
}
