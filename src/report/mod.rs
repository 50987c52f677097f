//! The result model and its renderers.
//!
//! Every output — the terminal matrix, the reasons list, JSON, Markdown,
//! HTML, JUnit — reads the same [`Report`]; runs made separately are merged
//! into one, and a run is compared with a baseline here too. This module
//! runs nothing; it only shapes results.

mod apps;
mod bench;
mod html;
mod junit;
mod markdown;
mod releases;
mod status;

use markdown::text as markdown_text;

pub use html::curl;
pub use releases::{ReleaseRow, ReleaseTable};
pub use status::{doctor_status, RunStatus};

/// Text escaped for HTML and XML, element text and attribute values alike;
/// characters XML cannot carry (controls but tab and line breaks, U+FFFE,
/// U+FFFF) are dropped.
fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

use std::collections::BTreeMap;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell as TableCell, ContentArrangement, Table};
use serde::{Deserialize, Serialize};

use crate::model::{FileError, Judgement, Verdict};

/// The verdict of one target × scenario cell, with what decided it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// Target name, as in targets.toml.
    pub target: String,
    /// Scenario id.
    pub scenario: String,
    /// What the engine concluded (in the JSON, its fields beside these).
    #[serde(flatten)]
    pub judgement: Judgement,
}

/// One run over some targets and scenarios (or several runs merged).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// condwrite's version.
    pub tool_version: String,
    /// When the run started (RFC 3339, UTC); the latest start of a merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    /// Scenario ids with their titles, in catalog order.
    pub scenarios: Vec<ScenarioInfo>,
    /// The targets, in the order they were asked for.
    #[serde(deserialize_with = "targets_compat")]
    pub targets: Vec<TargetInfo>,
    /// One entry per cell that ran.
    pub results: Vec<CellResult>,
    /// `condwrite bench` figures, one entry per target measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bench: Vec<crate::bench::BenchResult>,
    /// What running applications' real clients showed (`doctor
    /// --confirm`), one entry per application and target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<crate::profiles::Observed>,
    /// The applications roll-up of the cells ([`Report::with_applications`]);
    /// a merge drops it, as it no longer matches the merged cells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<crate::profiles::AppVerdict>,
}

/// A scenario as the report names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// The scenario id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The S3 operation it checks.
    pub operation: String,
    /// The AWS page it follows.
    pub aws_doc: String,
    /// Records a property (`info`) rather than checking a rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub informational: bool,
}

/// A target as the report names it: what it is, never its credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Name in targets.toml.
    pub name: String,
    /// `embedded`, `process`, `container` or `endpoint`.
    #[serde(default)]
    pub kind: String,
    /// The one-line description from targets.toml.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Server version, or image and tag, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The URL the run talked to (without any user information).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The signing region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The store whose release this target is (`releases` in targets.toml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Which release of `family`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// Reads `targets`: objects, or the bare names reports written before
/// targets were described held.
fn targets_compat<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TargetInfo>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Name(String),
        Full(TargetInfo),
    }
    let entries = Vec::<Entry>::deserialize(d)?;
    Ok(entries
        .into_iter()
        .map(|e| match e {
            Entry::Name(name) => TargetInfo::named(name),
            Entry::Full(t) => t,
        })
        .collect())
}

impl TargetInfo {
    /// A target known only by name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// A URL without `user:password@`, so that no credential ends up in a report.
pub fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// One cell whose verdict differs from the baseline's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The target.
    pub target: String,
    /// The scenario.
    pub scenario: String,
    /// The baseline's verdict.
    pub before: Verdict,
    /// This run's verdict.
    pub after: Verdict,
    /// The reason of the current cell.
    pub reason: String,
}

/// A run compared with a baseline, cell by cell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Cells that got better.
    pub improvements: Vec<Change>,
    /// Cells that got worse: what fails a run with `--baseline`.
    pub regressions: Vec<Change>,
    /// Cells the baseline does not have (new scenarios or targets).
    pub new: Vec<(String, String, Verdict)>,
    /// Cells of the baseline that did not run now.
    pub missing: Vec<(String, String)>,
}

impl Comparison {
    /// The comparison as lines for a terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "baseline: {} regression(s), {} improvement(s), {} new cell(s), {} cell(s) not run",
            self.regressions.len(),
            self.improvements.len(),
            self.new.len(),
            self.missing.len()
        )];
        for c in &self.regressions {
            out.push(format!(
                "  regression  {} / {}: {} -> {}: {}",
                c.target, c.scenario, c.before, c.after, c.reason
            ));
        }
        for c in &self.improvements {
            out.push(format!(
                "  improvement {} / {}: {} -> {}",
                c.target, c.scenario, c.before, c.after
            ));
        }
        for (t, s, v) in &self.new {
            out.push(format!("  new         {t} / {s}: {v}"));
        }
        for (t, s) in &self.missing {
            out.push(format!("  not run     {t} / {s}"));
        }
        out
    }
}

impl Report {
    /// Reads a report written by `--json`; the error names the file.
    pub fn load(path: &std::path::Path) -> Result<Self, FileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| FileError::whole(&file, format!("cannot read: {e}")))?;
        serde_json::from_str(&text).map_err(|e| FileError {
            file,
            line: e.line(),
            col: e.column(),
            message: format!(
                "not a condwrite result: {e} (expected the JSON `condwrite --json` writes)"
            ),
        })
    }

    /// The target names, in order.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    /// Runs made separately (one CI job per target) as one report: the
    /// scenarios and targets of all, in first-seen order. A cell that
    /// several runs have is taken from the last of them.
    pub fn merge(reports: Vec<Report>) -> Report {
        let mut out = Report::default();
        for r in reports {
            if out.tool_version.is_empty() {
                out.tool_version = r.tool_version.clone();
            } else if !out.tool_version.split(", ").any(|v| v == r.tool_version) {
                out.tool_version = format!("{}, {}", out.tool_version, r.tool_version);
            }
            if r.run_at > out.run_at {
                out.run_at = r.run_at.clone();
            }
            for s in r.scenarios {
                if !out.scenarios.iter().any(|x| x.id == s.id) {
                    out.scenarios.push(s);
                }
            }
            for t in r.targets {
                match out.targets.iter_mut().find(|x| x.name == t.name) {
                    // A later run describes the target better, unless it
                    // only names it.
                    Some(x) if !t.kind.is_empty() => *x = t,
                    Some(_) => {}
                    None => out.targets.push(t),
                }
            }
            for c in r.results {
                out.results
                    .retain(|x| !(x.target == c.target && x.scenario == c.scenario));
                out.results.push(c);
            }
            for b in r.bench {
                out.bench.retain(|x| x.target != b.target);
                out.bench.push(b);
            }
            for o in r.observed {
                out.observed
                    .retain(|x| !(x.target == o.target && x.profile == o.profile));
                out.observed.push(o);
            }
        }
        let order = |c: &CellResult| {
            (
                out.targets.iter().position(|t| t.name == c.target),
                out.scenarios.iter().position(|s| s.id == c.scenario),
            )
        };
        let mut results = std::mem::take(&mut out.results);
        results.sort_by_key(order);
        out.results = results;
        out
    }

    /// Compares this run with `baseline`, cell by cell: a cell whose verdict
    /// is worse than before (in the order pass, info, deviates, unsupported,
    /// error, unsafe) is a regression.
    pub fn compare(&self, baseline: &Report) -> Comparison {
        let mut cmp = Comparison::default();
        for c in &self.results {
            match baseline.cell(&c.target, &c.scenario) {
                None => cmp
                    .new
                    .push((c.target.clone(), c.scenario.clone(), c.judgement.verdict)),
                Some(b) if c.judgement.verdict == b.judgement.verdict => {}
                Some(b) => {
                    let change = Change {
                        target: c.target.clone(),
                        scenario: c.scenario.clone(),
                        before: b.judgement.verdict,
                        after: c.judgement.verdict,
                        reason: c.judgement.reason.clone(),
                    };
                    if c.judgement.verdict > b.judgement.verdict {
                        cmp.regressions.push(change);
                    } else {
                        cmp.improvements.push(change);
                    }
                }
            }
        }
        for b in &baseline.results {
            if self.cell(&b.target, &b.scenario).is_none() {
                cmp.missing.push((b.target.clone(), b.scenario.clone()));
            }
        }
        cmp
    }

    /// The cell of `target` × `scenario`, if it ran.
    pub fn cell(&self, target: &str, scenario: &str) -> Option<&CellResult> {
        self.results
            .iter()
            .find(|c| c.target == target && c.scenario == scenario)
    }

    /// The scenario groups (operations), in first-seen order.
    pub fn groups(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.scenarios {
            if !out.contains(&s.operation.as_str()) {
                out.push(&s.operation);
            }
        }
        out
    }

    /// `12 pass, 1 info, 2 unsafe`: the verdicts of `target`'s cells whose
    /// scenario is in `group` (all groups with `None`), worst last.
    pub fn counts_text(&self, target: &str, group: Option<&str>) -> String {
        let mut counts: BTreeMap<Verdict, usize> = BTreeMap::new();
        for c in self.results.iter().filter(|c| c.target == target) {
            let in_group = group.is_none_or(|g| {
                self.scenarios
                    .iter()
                    .any(|s| s.id == c.scenario && s.operation == g)
            });
            if in_group {
                *counts.entry(c.judgement.verdict).or_insert(0) += 1;
            }
        }
        if counts.is_empty() {
            return "-".into();
        }
        counts
            .iter()
            .map(|(v, n)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How many cells have each verdict.
    pub fn counts(&self) -> BTreeMap<Verdict, usize> {
        let mut counts = BTreeMap::new();
        for c in &self.results {
            *counts.entry(c.judgement.verdict).or_insert(0) += 1;
        }
        counts
    }

    /// The run as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report model always serializes")
    }

    /// The scenarios × targets matrix, a verdict per cell (`-` for a cell
    /// that did not run), for a terminal `width` columns wide if known.
    pub fn matrix(&self, width: Option<u16>) -> String {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED);
        table.set_content_arrangement(ContentArrangement::Dynamic);
        if let Some(w) = width {
            table.set_width(w);
        }
        let mut header = vec![TableCell::new("scenario")];
        header.extend(self.targets.iter().map(|t| TableCell::new(&t.name)));
        table.set_header(header);
        for s in &self.scenarios {
            if !self.results.iter().any(|c| c.scenario == s.id) {
                continue;
            }
            let mut row = vec![TableCell::new(&s.id)];
            for t in self.target_names() {
                let text = self
                    .cell(t, &s.id)
                    .map_or("-", |c| c.judgement.verdict.name());
                row.push(TableCell::new(text));
            }
            table.add_row(row);
        }
        table.to_string()
    }

    /// One line per cell that is not `pass`: `target / scenario: verdict:
    /// reason`. Targets whose every cell has the same verdict and reason
    /// (a target that did not start) share one line.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut uniform: Vec<(Verdict, &str, Vec<&str>, usize)> = Vec::new();
        for t in self.target_names() {
            let cells: Vec<&CellResult> = self
                .scenarios
                .iter()
                .filter_map(|s| self.cell(t, &s.id))
                .collect();
            let same = cells.len() > 1
                && cells.iter().all(|c| {
                    c.judgement.verdict == cells[0].judgement.verdict
                        && c.judgement.reason == cells[0].judgement.reason
                })
                && cells[0].judgement.verdict != Verdict::Pass;
            if same {
                let (v, r) = (
                    cells[0].judgement.verdict,
                    cells[0].judgement.reason.as_str(),
                );
                match uniform
                    .iter_mut()
                    .find(|u| u.0 == v && u.1 == r && u.3 == cells.len())
                {
                    Some(u) => u.2.push(t),
                    None => uniform.push((v, r, vec![t], cells.len())),
                }
                continue;
            }
            // Cells of one target that failed alike (a target that stopped
            // answering, say) share one line.
            let mut groups: Vec<(Verdict, &str, Vec<&str>)> = Vec::new();
            for c in cells
                .iter()
                .filter(|c| c.judgement.verdict != Verdict::Pass)
            {
                match groups
                    .iter_mut()
                    .find(|g| g.0 == c.judgement.verdict && g.1 == c.judgement.reason)
                {
                    Some(g) => g.2.push(&c.scenario),
                    None => {
                        groups.push((c.judgement.verdict, &c.judgement.reason, vec![&c.scenario]))
                    }
                }
            }
            for (verdict, reason, scenarios) in groups {
                let which = match scenarios.as_slice() {
                    [one] => (*one).to_owned(),
                    many => format!("{} cells ({})", many.len(), many.join(", ")),
                };
                out.push(format!("{t} / {which}: {verdict}: {reason}"));
            }
        }
        for (verdict, reason, targets, n) in uniform {
            out.push(format!(
                "{}: all {n} cells {verdict}: {reason}",
                targets.join(", ")
            ));
        }
        out
    }

    /// One line with the count of each verdict.
    pub fn summary(&self) -> String {
        let counts = self.counts();
        let parts: Vec<String> = Verdict::ALL
            .iter()
            .map(|v| format!("{} {v}", counts.get(v).copied().unwrap_or(0)))
            .collect();
        format!(
            "{} cells over {} target(s): {}",
            self.results.len(),
            self.targets.len(),
            parts.join(", ")
        )
    }
}

#[cfg(test)]
mod tests;
