//! The applications roll-up of a report: for every application profile and
//! every target with cells of it, whether the application is safe there
//! (computed from the cells and the profile's tolerances by whoever makes
//! the report, with the profiles it loaded, and carried in it), as a
//! terminal table, Markdown and HTML.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell as TableCell, ContentArrangement, Table};

use super::markdown_text;
use super::{escape_markup, Report};
use crate::profiles::{judge, AppVerdict, CellView, Fitness, Profile};

impl Report {
    /// The roll-up of `profiles` on every target that ran at least one of
    /// a profile's scenarios, in profile and target order.
    pub fn roll_up(&self, profiles: &[&Profile]) -> Vec<AppVerdict> {
        let mut out = Vec::new();
        for &p in profiles {
            for t in &self.targets {
                let ran = p
                    .requirements
                    .iter()
                    .any(|r| self.cell(&t.name, &r.scenario).is_some());
                if !ran {
                    continue;
                }
                let view = |s: &str| {
                    self.cell(&t.name, s).map(|c| CellView {
                        verdict: c.judgement.verdict,
                        reason: &c.judgement.reason,
                        answers: &c.judgement.answers,
                    })
                };
                let mut verdict = judge(p, &t.name, view);
                verdict.observed = self
                    .observed
                    .iter()
                    .find(|o| o.profile == p.id && o.target == t.name)
                    .cloned();
                if verdict.observed.is_some() && !p.check_covers.is_empty() {
                    let mut covered = p.clone();
                    covered
                        .requirements
                        .retain(|r| p.check_covers.contains(&r.scenario));
                    let checked = judge(&covered, &t.name, view);
                    verdict.inferred_for_check = Some(checked.fitness);
                }
                out.push(verdict);
            }
        }
        out
    }

    /// The report with its applications roll-up (of `profiles`), which the
    /// JSON, Markdown and HTML carry.
    pub fn with_applications(mut self, profiles: &[&Profile]) -> Self {
        self.applications = self.roll_up(profiles);
        self
    }

    /// The applications × targets table for a terminal.
    pub fn applications_table(apps: &[AppVerdict], width: Option<u16>) -> String {
        let (profiles, targets) = axes(apps);
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED);
        if let Some(w) = width {
            table.set_width(w);
            table.set_content_arrangement(ContentArrangement::Dynamic);
        }
        let mut header = vec![TableCell::new("application")];
        header.extend(targets.iter().map(TableCell::new));
        table.set_header(header);
        for p in &profiles {
            let mut row = vec![TableCell::new(p)];
            for t in &targets {
                let text = find(apps, p, t).map_or("-".to_owned(), AppVerdict::cell_text);
                row.push(TableCell::new(text));
            }
            table.add_row(row);
        }
        table.to_string()
    }

    /// The applications section of the Markdown page ("" when none ran).
    pub(super) fn markdown_applications(&self) -> String {
        let apps = &self.applications;
        if apps.is_empty() {
            return String::new();
        }
        let (profiles, targets) = axes(apps);
        let mut out = String::from(
            "\n## Applications\n\nWhether each application is safe on each store, rolled up from the cells it relies on and the answers it tolerates (`condwrite doctor`; the profiles are in `profiles/`).\n\n| application |",
        );
        let mut rule = String::from("|---|");
        for t in &targets {
            out.push_str(&format!(" {} |", markdown_text(t).replace('|', "\\|")));
            rule.push_str("---|");
        }
        out.push_str(&format!("\n{rule}\n"));
        for p in &profiles {
            out.push_str(&format!("| {p} |"));
            for t in &targets {
                let text = find(apps, p, t).map_or("-".to_owned(), |a| {
                    format!("{} {}", mark(a.fitness), a.cell_text())
                });
                out.push_str(&format!(" {text} |"));
            }
            out.push('\n');
        }
        let why: Vec<&AppVerdict> = apps
            .iter()
            .filter(|a| !a.findings.is_empty() || a.observed.is_some())
            .collect();
        if !why.is_empty() {
            out.push_str("\n### Why\n\n");
            for a in why {
                let mut lines = a.findings.clone();
                lines.extend(a.observed_line());
                out.push_str(&format!(
                    "- **{} on {}** — {}: {}\n",
                    a.profile,
                    markdown_text(&a.target),
                    a.fitness,
                    markdown_text(&lines.join("; "))
                ));
            }
        }
        out
    }

    /// The applications section of the HTML page ("" when none ran).
    pub(super) fn html_applications(&self) -> String {
        let apps = &self.applications;
        if apps.is_empty() {
            return String::new();
        }
        let (profiles, targets) = axes(apps);
        let mut out = String::from(
            "<h2>Applications</h2>\n<p>Whether each application is safe on each store, rolled up from the cells it relies on and the answers it tolerates.</p>\n<table class=\"apps\"><tr><th>application</th>",
        );
        for t in &targets {
            out.push_str(&format!("<th>{}</th>", escape_markup(t)));
        }
        out.push_str("</tr>\n");
        for p in &profiles {
            out.push_str(&format!("<tr><th>{}</th>", escape_markup(p)));
            for t in &targets {
                match find(apps, p, t) {
                    None => out.push_str("<td>-</td>"),
                    Some(a) if a.findings.is_empty() && a.observed.is_none() => out.push_str(
                        &format!("<td class=\"fit-{}\">{}</td>", class(a.fitness), a.fitness),
                    ),
                    Some(a) => {
                        out.push_str(&format!(
                            "<td class=\"fit-{}\"><details><summary>{}</summary><ul>",
                            class(a.fitness),
                            escape_markup(&a.cell_text())
                        ));
                        for f in a.findings.iter().cloned().chain(a.observed_line()) {
                            out.push_str(&format!("<li>{}</li>", escape_markup(&f)));
                        }
                        out.push_str("</ul></details></td>");
                    }
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        out
    }
}

/// The profiles and targets of a roll-up, in first-seen order.
fn axes(apps: &[AppVerdict]) -> (Vec<String>, Vec<String>) {
    let mut profiles: Vec<String> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for a in apps {
        if !profiles.contains(&a.profile) {
            profiles.push(a.profile.clone());
        }
        if !targets.contains(&a.target) {
            targets.push(a.target.clone());
        }
    }
    (profiles, targets)
}

fn find<'a>(apps: &'a [AppVerdict], profile: &str, target: &str) -> Option<&'a AppVerdict> {
    apps.iter()
        .find(|a| a.profile == profile && a.target == target)
}

fn mark(f: Fitness) -> &'static str {
    match f {
        Fitness::Safe => "✅",
        Fitness::SafeWithCaveats => "☑️",
        Fitness::Unknown => "❔",
        Fitness::DoesNotWork => "⛔",
        Fitness::Unsafe => "❌",
    }
}

/// The CSS class of a fitness.
fn class(f: Fitness) -> &'static str {
    match f {
        Fitness::Safe => "safe",
        Fitness::SafeWithCaveats => "caveats",
        Fitness::Unknown => "unknown",
        Fitness::DoesNotWork => "broken",
        Fitness::Unsafe => "unsafe",
    }
}
