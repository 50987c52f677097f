//! The result model and its renderers.
//!
//! Every output — the terminal matrix, the reasons list, the JSON file —
//! reads the same [`Report`]. This module runs nothing; it only shapes
//! results.

use std::collections::BTreeMap;
use std::fmt;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell as TableCell, ContentArrangement, Table};
use serde::{Deserialize, Serialize};

use crate::store::Outcome;

/// How a target answered one scenario, graded as the Autobahn testsuite
/// grades: what a user of conditional writes fears most is silent loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Behaves as AWS S3 documents.
    Pass,
    /// An informational scenario recorded a property (the reason says
    /// which); never a failure.
    Info,
    /// Safe (nothing overwritten, at most one winner) but answers differently.
    Deviates,
    /// Refuses the conditional request explicitly and changes nothing.
    Unsupported,
    /// The harness could not judge (target down, setup failed, timeout).
    Error,
    /// The condition was ignored or violated: data overwritten, created or
    /// lost, more than one racer won.
    Unsafe,
}

impl Verdict {
    /// Every verdict, best first.
    pub const ALL: [Verdict; 6] = [
        Verdict::Pass,
        Verdict::Info,
        Verdict::Deviates,
        Verdict::Unsupported,
        Verdict::Error,
        Verdict::Unsafe,
    ];

    /// The lowercase name used in every output.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Info => "info",
            Verdict::Deviates => "deviates",
            Verdict::Unsupported => "unsupported",
            Verdict::Error => "error",
            Verdict::Unsafe => "unsafe",
        }
    }

    /// Whether the cell fails a run (always for unsafe and error; with
    /// `strict` also for deviates and unsupported).
    pub fn fails(self, strict: bool) -> bool {
        match self {
            Verdict::Pass | Verdict::Info => false,
            Verdict::Deviates | Verdict::Unsupported => strict,
            Verdict::Error | Verdict::Unsafe => true,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The verdict of one target × scenario cell, with what decided it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// Target name, as in targets.toml.
    pub target: String,
    /// Scenario id.
    pub scenario: String,
    /// The verdict.
    pub verdict: Verdict,
    /// One line: `Expected: … Actual: …`.
    pub reason: String,
    /// Wall time of the cell, including read-backs and clean-up.
    pub duration_ms: u64,
    /// The exchanges that decided the verdict.
    #[serde(default)]
    pub evidence: Vec<Outcome>,
}

/// One run over some targets and scenarios.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// condwrite's version.
    pub tool_version: String,
    /// Scenario ids with their titles, in catalog order.
    pub scenarios: Vec<ScenarioInfo>,
    /// Target names, in the order they were asked for.
    pub targets: Vec<String>,
    /// One entry per cell that ran.
    pub results: Vec<CellResult>,
}

/// A scenario as the report names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub id: String,
    pub title: String,
    pub operation: String,
    pub aws_doc: String,
}

impl Report {
    /// The cell of `target` × `scenario`, if it ran.
    pub fn cell(&self, target: &str, scenario: &str) -> Option<&CellResult> {
        self.results
            .iter()
            .find(|c| c.target == target && c.scenario == scenario)
    }

    /// How many cells have each verdict.
    pub fn counts(&self) -> BTreeMap<Verdict, usize> {
        let mut counts = BTreeMap::new();
        for c in &self.results {
            *counts.entry(c.verdict).or_insert(0) += 1;
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
        header.extend(self.targets.iter().map(TableCell::new));
        table.set_header(header);
        for s in &self.scenarios {
            if !self.results.iter().any(|c| c.scenario == s.id) {
                continue;
            }
            let mut row = vec![TableCell::new(&s.id)];
            for t in &self.targets {
                let text = self.cell(t, &s.id).map_or("-", |c| c.verdict.name());
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
        for t in &self.targets {
            let cells: Vec<&CellResult> = self
                .scenarios
                .iter()
                .filter_map(|s| self.cell(t, &s.id))
                .collect();
            let same = cells.len() > 1
                && cells
                    .iter()
                    .all(|c| c.verdict == cells[0].verdict && c.reason == cells[0].reason)
                && cells[0].verdict != Verdict::Pass;
            if same {
                let (v, r) = (cells[0].verdict, cells[0].reason.as_str());
                match uniform
                    .iter_mut()
                    .find(|u| u.0 == v && u.1 == r && u.3 == cells.len())
                {
                    Some(u) => u.2.push(t),
                    None => uniform.push((v, r, vec![t], cells.len())),
                }
                continue;
            }
            for c in cells {
                if c.verdict != Verdict::Pass {
                    out.push(format!("{t} / {}: {}: {}", c.scenario, c.verdict, c.reason));
                }
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
mod tests {
    use super::*;

    fn report() -> Report {
        let cell = |t: &str, s: &str, v| CellResult {
            target: t.into(),
            scenario: s.into(),
            verdict: v,
            reason: format!("because {v}"),
            duration_ms: 3,
            evidence: vec![],
        };
        Report {
            tool_version: "0.0.0".into(),
            scenarios: ["a", "b"]
                .map(|id| ScenarioInfo {
                    id: id.into(),
                    title: id.into(),
                    operation: "PutObject".into(),
                    aws_doc: "https://docs.aws.amazon.com/".into(),
                })
                .to_vec(),
            targets: vec!["x".into(), "y".into()],
            results: vec![
                cell("x", "a", Verdict::Pass),
                cell("x", "b", Verdict::Unsafe),
                cell("y", "a", Verdict::Deviates),
            ],
        }
    }

    #[test]
    fn verdict_failure_follows_strictness() {
        assert!(!Verdict::Pass.fails(true));
        assert!(!Verdict::Deviates.fails(false));
        assert!(Verdict::Deviates.fails(true));
        assert!(Verdict::Unsupported.fails(true));
        assert!(Verdict::Unsafe.fails(false));
        assert!(Verdict::Error.fails(false));
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
        r.targets.push("z".into());
        r.targets.push("w".into());
        for t in ["z", "w"] {
            for s in ["a", "b"] {
                r.results.push(CellResult {
                    target: t.into(),
                    scenario: s.into(),
                    verdict: Verdict::Error,
                    reason: "no Docker".into(),
                    duration_ms: 0,
                    evidence: vec![],
                });
            }
        }
        let lines = r.reasons();
        assert_eq!(lines.last().unwrap(), "z, w: all 2 cells error: no Docker");
        assert_eq!(lines.len(), 3, "{lines:?}");
    }

    #[test]
    fn json_round_trips_with_lowercase_verdicts() {
        let r = report();
        let json = r.to_json();
        assert!(json.contains("\"verdict\": \"unsafe\""), "{json}");
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
