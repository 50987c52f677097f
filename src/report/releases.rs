//! Release tables: one store's releases side by side (a family of
//! targets.toml, `NAME@RELEASE`), a row per scenario, a column per release
//! ordered as versions (not as names), and for each scenario the releases
//! where its verdict changed: what a release matrix is run for.

use super::{escape_markup as esc, markdown_text, Report, TargetInfo};
use crate::model::{compare_versions, Verdict};

/// One family's releases and their verdicts.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseTable {
    /// The family (the entry's plain name in targets.toml).
    pub family: String,
    /// Its releases in the report, oldest first, each with the target that
    /// ran it.
    pub releases: Vec<(String, String)>,
    /// A row per scenario that ran on any of them, in catalog order.
    pub rows: Vec<ReleaseRow>,
}

/// One scenario across the releases.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseRow {
    /// The scenario id.
    pub scenario: String,
    /// The verdict on each release (`None`: the cell did not run).
    pub verdicts: Vec<Option<Verdict>>,
    /// Every change: the index of the release whose verdict differs from
    /// the last release before it that ran, and the verdicts before and
    /// after. The first is where the verdict first changed.
    pub changes: Vec<(usize, Verdict, Verdict)>,
}

impl ReleaseTable {
    /// The rows whose verdict changed somewhere.
    pub fn changed(&self) -> impl Iterator<Item = &ReleaseRow> {
        self.rows.iter().filter(|r| !r.changes.is_empty())
    }

    /// `2.36.0 (unsupported → pass)`, and any later changes after it.
    fn changes_text(&self, row: &ReleaseRow) -> String {
        row.changes
            .iter()
            .map(|(i, from, to)| format!("{} ({from} → {to})", self.releases[*i].0))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Report {
    /// A table per family with two or more releases in the report. A
    /// release run under both its plain name and `NAME@RELEASE` counts once
    /// (the `@` target).
    pub fn release_tables(&self) -> Vec<ReleaseTable> {
        let mut families: Vec<&str> = Vec::new();
        for t in &self.targets {
            if let Some(f) = t.family.as_deref() {
                if !families.contains(&f) {
                    families.push(f);
                }
            }
        }
        let mut out = Vec::new();
        for family in families {
            let mut members: Vec<&TargetInfo> = Vec::new();
            for t in self
                .targets
                .iter()
                .filter(|t| t.family.as_deref() == Some(family) && t.release.is_some())
            {
                match members.iter_mut().find(|m| m.release == t.release) {
                    Some(m) if !m.name.contains('@') => *m = t,
                    Some(_) => {}
                    None => members.push(t),
                }
            }
            if members.len() < 2 {
                continue;
            }
            members.sort_by(|a, b| {
                compare_versions(
                    a.release.as_deref().unwrap_or(""),
                    b.release.as_deref().unwrap_or(""),
                )
            });
            let releases: Vec<(String, String)> = members
                .iter()
                .map(|m| (m.release.clone().unwrap_or_default(), m.name.clone()))
                .collect();
            let rows = self
                .scenarios
                .iter()
                .filter_map(|s| {
                    let verdicts: Vec<Option<Verdict>> = releases
                        .iter()
                        .map(|(_, name)| self.cell(name, &s.id).map(|c| c.judgement.verdict))
                        .collect();
                    if verdicts.iter().all(Option::is_none) {
                        return None;
                    }
                    let mut changes = Vec::new();
                    let mut last: Option<Verdict> = None;
                    for (i, v) in verdicts.iter().enumerate() {
                        let Some(v) = *v else { continue };
                        if let Some(before) = last.filter(|b| *b != v) {
                            changes.push((i, before, v));
                        }
                        last = Some(v);
                    }
                    Some(ReleaseRow {
                        scenario: s.id.clone(),
                        verdicts,
                        changes,
                    })
                })
                .collect();
            out.push(ReleaseTable {
                family: family.to_owned(),
                releases,
                rows,
            });
        }
        out
    }

    /// One line per scenario whose verdict changed between releases, for a
    /// terminal: `swift / put-if-none-match-existing-key: changed in 2.36.0
    /// (unsupported → pass)`.
    pub fn release_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.release_tables() {
            let first = &t.releases[0].0;
            let last = &t.releases[t.releases.len() - 1].0;
            let changed: Vec<&ReleaseRow> = t.changed().collect();
            if changed.is_empty() {
                out.push(format!(
                    "{}: {} releases ({first} … {last}), no verdict changed",
                    t.family,
                    t.releases.len()
                ));
            }
            for row in changed {
                out.push(format!(
                    "{} / {}: changed in {}",
                    t.family,
                    row.scenario,
                    t.changes_text(row)
                ));
            }
        }
        out
    }

    /// The release tables as Markdown sections (empty without any).
    pub fn markdown_releases(&self) -> String {
        let mut out = String::new();
        for t in self.release_tables() {
            let names: Vec<String> = t.releases.iter().map(|(r, _)| r.clone()).collect();
            out.push_str(&format!(
                "\n## Releases of {}\n\n{} releases, oldest first (ordered as versions): {}. **Bold** marks the first release with a new verdict; the last column lists every change.\n\n",
                markdown_text(&t.family),
                names.len(),
                markdown_text(&names.join(", "))
            ));
            let changed: Vec<&ReleaseRow> = t.changed().collect();
            if changed.is_empty() {
                out.push_str("No verdict changed between these releases.\n\n");
            } else {
                out.push_str("Verdicts that changed:\n\n");
                for row in &changed {
                    out.push_str(&format!(
                        "- `{}`: {}\n",
                        row.scenario,
                        markdown_text(&t.changes_text(row))
                    ));
                }
                out.push('\n');
            }
            out.push_str("| scenario |");
            for r in &names {
                out.push_str(&format!(" {} |", markdown_text(r)));
            }
            out.push_str(" changed in |\n|---|");
            out.push_str(&"---|".repeat(names.len() + 1));
            out.push('\n');
            for row in &t.rows {
                out.push_str(&format!("| `{}` |", row.scenario));
                for (i, v) in row.verdicts.iter().enumerate() {
                    let text = v.map_or("-".to_owned(), |v| format!("{} {v}", v.mark()));
                    if row.changes.iter().any(|(at, _, _)| *at == i) {
                        out.push_str(&format!(" **{text}** |"));
                    } else {
                        out.push_str(&format!(" {text} |"));
                    }
                }
                let first = row
                    .changes
                    .iter()
                    .map(|(i, _, _)| markdown_text(&t.releases[*i].0))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push_str(&format!(" {first} |\n"));
            }
        }
        out
    }

    /// The release tables as HTML sections (empty without any).
    pub(super) fn html_releases(&self) -> String {
        let mut out = String::new();
        for t in self.release_tables() {
            out.push_str(&format!(
                "<h2>Releases of {}</h2>\n<p>Oldest first, ordered as versions. A cell with a thick border is the first release with a new verdict.</p>\n",
                esc(&t.family)
            ));
            let changed: Vec<&ReleaseRow> = t.changed().collect();
            if changed.is_empty() {
                out.push_str("<p>No verdict changed between these releases.</p>\n");
            } else {
                out.push_str("<ul>");
                for row in &changed {
                    out.push_str(&format!(
                        "<li><code>{}</code>: {}</li>",
                        esc(&row.scenario),
                        esc(&t.changes_text(row))
                    ));
                }
                out.push_str("</ul>\n");
            }
            out.push_str(&format!(
                "<table class=\"releases\" id=\"releases-{}\"><tr><th>scenario</th>",
                esc(&t.family)
            ));
            for (r, name) in &t.releases {
                out.push_str(&format!("<th title=\"{}\">{}</th>", esc(name), esc(r)));
            }
            out.push_str("<th>changed in</th></tr>\n");
            for row in &t.rows {
                out.push_str(&format!("<tr><td><code>{}</code></td>", esc(&row.scenario)));
                for (i, v) in row.verdicts.iter().enumerate() {
                    let class = v.map_or("none", Verdict::name);
                    let changed = if row.changes.iter().any(|(at, _, _)| *at == i) {
                        " changed"
                    } else {
                        ""
                    };
                    out.push_str(&format!(
                        "<td class=\"v-{class}{changed}\">{}</td>",
                        v.map_or("-", Verdict::name)
                    ));
                }
                let at = row
                    .changes
                    .iter()
                    .map(|(i, _, _)| esc(&t.releases[*i].0))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push_str(&format!("<td>{at}</td></tr>\n"));
            }
            out.push_str("</table>\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CellResult, ScenarioInfo};

    fn release(name: &str, family: &str, release: &str) -> TargetInfo {
        TargetInfo {
            family: Some(family.into()),
            release: Some(release.into()),
            ..TargetInfo::named(name)
        }
    }

    fn report(targets: Vec<TargetInfo>, cells: &[(&str, &str, Verdict)]) -> Report {
        Report {
            tool_version: "0".into(),
            run_at: None,
            scenarios: ["a", "b", "c"]
                .iter()
                .map(|id| ScenarioInfo {
                    id: (*id).into(),
                    title: "t".into(),
                    operation: "PutObject".into(),
                    aws_doc: "https://docs.aws.amazon.com/".into(),
                    informational: false,
                })
                .collect(),
            targets,
            results: cells
                .iter()
                .map(|(t, s, v)| CellResult {
                    target: (*t).into(),
                    scenario: (*s).into(),
                    judgement: crate::model::Judgement {
                        verdict: *v,
                        reason: "r".into(),
                        duration_ms: 1,
                        evidence: vec![],
                        answers: vec![],
                    },
                })
                .collect(),
            bench: Vec::new(),
            observed: Vec::new(),
            applications: Vec::new(),
        }
    }

    #[test]
    fn releases_are_ordered_as_versions_and_every_change_is_found() {
        use Verdict::{Deviates, Pass, Unsafe, Unsupported};
        // Given out of order, and 2.10.0 sorts after 2.9.0 only as a version.
        let r = report(
            vec![
                release("s@2.10.0", "s", "2.10.0"),
                release("s@2.9.0", "s", "2.9.0"),
                release("s@2.35.1", "s", "2.35.1"),
                TargetInfo::named("other"),
            ],
            &[
                ("s@2.9.0", "a", Unsupported),
                ("s@2.10.0", "a", Unsupported),
                ("s@2.35.1", "a", Pass),
                ("s@2.9.0", "b", Pass),
                ("s@2.10.0", "b", Unsafe),
                ("s@2.35.1", "b", Pass),
                ("s@2.9.0", "c", Deviates),
                ("s@2.35.1", "c", Deviates),
                ("other", "c", Pass),
            ],
        );
        let tables = r.release_tables();
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        let order: Vec<&str> = t.releases.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(order, ["2.9.0", "2.10.0", "2.35.1"]);
        assert_eq!(t.rows[0].changes, vec![(2, Unsupported, Pass)]);
        assert_eq!(
            t.rows[1].changes,
            vec![(1, Pass, Unsafe), (2, Unsafe, Pass)]
        );
        // A release that did not run the scenario is skipped, not a change.
        assert_eq!(
            t.rows[2].verdicts,
            vec![Some(Deviates), None, Some(Deviates)]
        );
        assert!(t.rows[2].changes.is_empty());
        let lines = r.release_lines();
        assert_eq!(
            lines,
            [
                "s / a: changed in 2.35.1 (unsupported → pass)",
                "s / b: changed in 2.10.0 (pass → unsafe), 2.35.1 (unsafe → pass)"
            ]
        );
        let md = r.markdown_releases();
        assert!(md.contains("## Releases of s"), "{md}");
        assert!(
            md.contains("| `a` | ⛔ unsupported | ⛔ unsupported | **✅ pass** | 2.35.1 |"),
            "{md}"
        );
        let html = r.html_releases();
        assert!(
            html.contains("<td class=\"v-pass changed\">pass</td>"),
            "{html}"
        );
    }

    #[test]
    fn one_release_or_its_plain_name_twice_makes_no_table() {
        let r = report(
            vec![release("s", "s", "4.48"), release("s@4.48", "s", "4.48")],
            &[("s", "a", Verdict::Pass), ("s@4.48", "a", Verdict::Pass)],
        );
        assert!(r.release_tables().is_empty());
        assert!(r.release_lines().is_empty());
        assert_eq!(r.markdown_releases(), "");
        // With a second release, the `@` target stands for 4.48.
        let mut r = r;
        r.targets.push(release("s@4.44", "s", "4.44"));
        r.results[1].judgement.verdict = Verdict::Unsafe;
        r.results.push(CellResult {
            target: "s@4.44".into(),
            ..r.results[0].clone()
        });
        let t = &r.release_tables()[0];
        assert_eq!(t.releases[1], ("4.48".to_owned(), "s@4.48".to_owned()));
        assert_eq!(t.rows[0].changes, vec![(1, Verdict::Pass, Verdict::Unsafe)]);
    }
}
