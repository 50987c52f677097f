//! The bench figures of a report: a terminal table, a Markdown table, and
//! HTML with inline SVG plots (latency percentiles per kind of PUT; the
//! counter's throughput and conflict rate against workers), no script.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell as TableCell, ContentArrangement, Table};

use super::markdown_text;
use super::{escape_markup, Report};
use crate::bench::BenchResult;

/// `p50 / p99` of one kind of PUT, or `-`.
fn pair(b: &BenchResult, kind: &str) -> String {
    b.latency
        .iter()
        .find(|l| l.kind == kind && l.count > 0)
        .map_or("-".to_owned(), |l| {
            format!("{:.1} / {:.1}", l.p50_ms, l.p99_ms)
        })
}

/// `ops/s (conflicts %)` of the counter at `workers`, or `-`.
fn cas_at(b: &BenchResult, workers: u32) -> String {
    b.cas
        .iter()
        .find(|c| c.workers == workers)
        .map_or("-".to_owned(), |c| {
            format!("{:.1}/s ({:.0}%)", c.per_second, c.conflict_rate * 100.0)
        })
}

const KINDS: [&str; 3] = ["PUT", "PUT If-None-Match: *", "PUT If-Match"];

fn header() -> Vec<String> {
    let mut h = vec!["target".to_owned()];
    h.extend(KINDS.iter().map(|k| format!("{k} p50 / p99 ms")));
    h.extend(
        [
            "CAS 1 worker",
            "CAS 8 workers",
            "CAS 32 workers",
            "race winner / loser p50 ms",
            "racers' last bytes sent / read within (p50 µs)",
        ]
        .map(String::from),
    );
    h
}

fn row(b: &BenchResult) -> Vec<String> {
    let mut r = vec![b.target.clone()];
    r.extend(KINDS.iter().map(|k| pair(b, k)));
    r.extend([1, 8, 32].map(|w| cas_at(b, w)));
    match &b.race {
        Some(race) => {
            r.push(format!(
                "{:.1} / {:.1}",
                race.winner_p50_ms, race.loser_p50_ms
            ));
            r.push(match race.read_spread_p50_us {
                Some(read) => format!("{} / {read}", race.sent_spread_p50_us),
                None => format!("{} / -", race.sent_spread_p50_us),
            });
        }
        None => r.extend(["-".to_owned(), "-".to_owned()]),
    }
    r
}

impl Report {
    /// The bench figures for a terminal ("" when there are none).
    pub fn bench_table(&self, width: Option<u16>) -> String {
        if self.bench.is_empty() {
            return String::new();
        }
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED);
        table.set_content_arrangement(ContentArrangement::Dynamic);
        if let Some(w) = width {
            table.set_width(w);
        }
        table.set_header(header().into_iter().map(TableCell::new).collect::<Vec<_>>());
        for b in &self.bench {
            table.add_row(row(b).into_iter().map(TableCell::new).collect::<Vec<_>>());
        }
        table.to_string()
    }

    /// The bench section of the Markdown page ("" when none).
    pub(super) fn markdown_bench(&self) -> String {
        if self.bench.is_empty() {
            return String::new();
        }
        let h = header();
        let mut out = String::from(
            "\n## Bench\n\nWhat conditional writes cost on each store (`condwrite bench`, loopback, one target at a time): latency of each kind of PUT, the compare-and-swap counter's acknowledged increments per second and conflict rate, and a race of 16 create-only writers.\n\n",
        );
        out.push_str(&format!("| {} |\n", h.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(h.len())));
        for b in &self.bench {
            let cells: Vec<String> = row(b)
                .iter()
                .map(|c| markdown_text(c).replace('|', "\\|"))
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }

    /// The bench section of the HTML page, with its plots ("" when none).
    pub(super) fn html_bench(&self) -> String {
        if self.bench.is_empty() {
            return String::new();
        }
        let mut out = String::from("<h2>Bench</h2>\n<p>What conditional writes cost on each store (<code>condwrite bench</code>, loopback, one target at a time).</p>\n<table id=\"bench\"><tr>");
        for h in header() {
            out.push_str(&format!("<th>{}</th>", escape_markup(&h)));
        }
        out.push_str("</tr>\n");
        for b in &self.bench {
            out.push_str("<tr>");
            for c in row(b) {
                out.push_str(&format!("<td>{}</td>", escape_markup(&c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n<div class=\"plots\">\n");
        for b in &self.bench {
            out.push_str(&format!(
                "<figure><figcaption>{}</figcaption>{}{}</figure>\n",
                escape_markup(&b.target),
                latency_svg(b),
                cas_svg(b)
            ));
        }
        out.push_str("</div>\n");
        out
    }
}

/// Grouped bars: p50, p90, p99 of each kind of PUT, on one scale.
pub(super) fn latency_svg(b: &BenchResult) -> String {
    let (w, h, left, bottom) = (360.0, 180.0, 40.0, 40.0);
    let max = b
        .latency
        .iter()
        .map(|l| l.p99_ms)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let plot_h = h - bottom - 10.0;
    let group = (w - left - 10.0) / KINDS.len() as f64;
    let colours = ["#7fb3ff", "#3d7be0", "#16407f"];
    let mut svg = format!(
        "<svg class=\"latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>latency p50/p90/p99 (ms)</title>"
    );
    svg.push_str(&format!(
        "<text x=\"2\" y=\"12\" font-size=\"10\">{max:.1} ms</text><line x1=\"{left}\" y1=\"10\" x2=\"{left}\" y2=\"{}\" stroke=\"#888\"/>",
        h - bottom
    ));
    for (i, kind) in KINDS.iter().enumerate() {
        let Some(l) = b.latency.iter().find(|l| l.kind == *kind) else {
            continue;
        };
        for (j, v) in [l.p50_ms, l.p90_ms, l.p99_ms].into_iter().enumerate() {
            let bh = v / max * plot_h;
            let x = left + i as f64 * group + 8.0 + j as f64 * (group - 16.0) / 3.0;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} p{}: {v:.2} ms</title></rect>",
                h - bottom - bh,
                (group - 16.0) / 3.0 - 2.0,
                colours[j],
                escape_markup(kind),
                [50, 90, 99][j]
            ));
        }
        let label = match *kind {
            "PUT" => "PUT",
            "PUT If-None-Match: *" => "If-None-Match",
            _ => "If-Match",
        };
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{label}</text>",
            left + i as f64 * group + group / 2.0,
            h - bottom + 14.0
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{left}\" y=\"{:.1}\" font-size=\"10\">bars: p50, p90, p99</text></svg>",
        h - 8.0
    ));
    svg
}

/// Throughput (line, left scale) and conflict rate (dashed, right scale,
/// 0–100 %) against workers (log scale).
pub(super) fn cas_svg(b: &BenchResult) -> String {
    let (w, h, left, right, bottom) = (360.0, 180.0, 44.0, 34.0, 40.0);
    let max = b
        .cas
        .iter()
        .map(|c| c.per_second)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let plot_w = w - left - right;
    let plot_h = h - bottom - 10.0;
    let most = b.cas.iter().map(|c| c.workers).max().unwrap_or(1).max(2);
    let x = |workers: u32| left + (f64::from(workers).ln() / f64::from(most).ln()) * plot_w;
    let mut svg = format!(
        "<svg class=\"cas\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>CAS counter: increments per second and conflict rate against workers</title>"
    );
    svg.push_str(&format!(
        "<text x=\"2\" y=\"12\" font-size=\"10\">{max:.0}/s</text><text x=\"{:.1}\" y=\"12\" font-size=\"10\">100%</text><line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>",
        w - right + 4.0,
        h - bottom,
        w - right,
        h - bottom
    ));
    let mut ops = Vec::new();
    let mut conflicts = Vec::new();
    for c in &b.cas {
        let px = x(c.workers);
        ops.push(format!(
            "{px:.1},{:.1}",
            h - bottom - c.per_second / max * plot_h
        ));
        conflicts.push(format!(
            "{px:.1},{:.1}",
            h - bottom - c.conflict_rate * plot_h
        ));
        svg.push_str(&format!(
            "<text x=\"{px:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text><circle cx=\"{px:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#1f6f3f\"><title>{} workers: {:.1} increments/s, {:.0}% conflicts</title></circle>",
            h - bottom + 14.0,
            c.workers,
            h - bottom - c.per_second / max * plot_h,
            c.workers,
            c.per_second,
            c.conflict_rate * 100.0
        ));
    }
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#1f6f3f\" stroke-width=\"2\" points=\"{}\"/><polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\" points=\"{}\"/>",
        ops.join(" "),
        conflicts.join(" ")
    ));
    svg.push_str(&format!(
        "<text x=\"{left}\" y=\"{:.1}\" font-size=\"10\">workers; solid: increments/s, dashed: conflicts</text></svg>",
        h - 8.0
    ));
    svg
}
