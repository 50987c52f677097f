//! Pinned verdicts (`pins/TARGET.toml`) and the one check of a run against
//! them, shared by the real servers (tests/backends.rs) and the reference
//! server's fault profiles (tests/conformance.rs).
//!
//! A real server's file pins every scenario, and every non-pass pin says
//! what was observed and how it was confirmed by hand with another client.
//! A fault profile's file (`others = "baseline"`, only for `embedded*`
//! targets) lists the cells its fault must break; every other scenario must
//! get its baseline.

use std::path::Path;

use condwrite::catalog::Catalog;
use condwrite::model::Verdict;
use condwrite::report::CellResult;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinFile {
    pub target: String,
    pub version: String,
    /// Why objects can stay behind after a run: the store keeps them though
    /// it acknowledges every DELETE of them (what was seen, how confirmed).
    pub undeletable: Option<String>,
    /// `"baseline"`: a scenario without a pin must get its baseline (pass,
    /// or info for an informational one). Only for the reference server.
    pub others: Option<Others>,
    #[serde(default)]
    pub pin: Vec<Pin>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Others {
    Baseline,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub scenario: String,
    /// The verdict that tells the truth about the backend (the worst seen).
    pub verdict: Verdict,
    /// Other verdicts some runs get, for a race that only shows under load:
    /// a run that happens not to hit it is no evidence that it is gone.
    #[serde(default)]
    pub also_seen: Vec<Verdict>,
    pub observed: Option<String>,
    pub confirmed: Option<String>,
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Loads and checks `pins/TARGET.toml` against the built-in catalog: every
/// pin names a scenario, a real server pins every scenario, and its
/// non-pass pins say what was observed and how it was confirmed.
pub fn load(target: &str) -> PinFile {
    let path = root().join("pins").join(format!("{target}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pins: PinFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(pins.target, target, "{}", path.display());
    assert!(!pins.version.is_empty(), "{target}: empty version");
    let fault_profile = pins.others == Some(Others::Baseline);
    assert!(
        !fault_profile || target.starts_with("embedded"),
        "{target}: only the reference server's profiles may leave scenarios unpinned"
    );
    let catalog = Catalog::builtin().expect("the built-in catalog parses");
    for p in &pins.pin {
        assert!(
            catalog.scenarios.iter().any(|s| s.id == p.scenario),
            "{target}: pin for unknown scenario `{}`",
            p.scenario
        );
        assert_eq!(
            pins.pin.iter().filter(|q| q.scenario == p.scenario).count(),
            1,
            "{target}: `{}` is pinned twice",
            p.scenario
        );
        if !fault_profile && (p.verdict != Verdict::Pass || !p.also_seen.is_empty()) {
            assert!(
                p.observed.as_deref().is_some_and(|s| !s.is_empty())
                    && p.confirmed.as_deref().is_some_and(|s| !s.is_empty()),
                "{target} / {}: a non-pass pin needs `observed` and `confirmed`",
                p.scenario
            );
        }
    }
    if !fault_profile {
        for s in &catalog.scenarios {
            assert!(
                pins.pin.iter().any(|p| p.scenario == s.id),
                "{target}: scenario `{}` has no pin in pins/{target}.toml",
                s.id
            );
        }
    }
    pins
}

impl PinFile {
    /// Every cell of `cells` (this target's) that its pin does not allow,
    /// one line each; and every scenario of the catalog with no cell.
    pub fn mismatches(&self, cells: &[CellResult]) -> Vec<String> {
        let catalog = Catalog::builtin().expect("the built-in catalog parses");
        let mut out = Vec::new();
        for s in &catalog.scenarios {
            let Some(cell) = cells.iter().find(|c| c.scenario == s.id) else {
                out.push(format!("{}: no cell in the run", s.id));
                continue;
            };
            let (want, also): (Verdict, &[Verdict]) =
                match self.pin.iter().find(|p| p.scenario == s.id) {
                    Some(p) => (p.verdict, &p.also_seen),
                    None => (s.baseline(), &[]),
                };
            if cell.judgement.verdict != want && !also.contains(&cell.judgement.verdict) {
                out.push(format!(
                    "{} pinned {want} but got {}: {}",
                    s.id, cell.judgement.verdict, cell.judgement.reason
                ));
            }
            if cell.judgement.reason.is_empty() {
                out.push(format!("{}: empty reason", s.id));
            }
            // The reference server answers every request a scenario sends
            // (a real server may refuse the set-up, such as a versioned
            // bucket, before any exchange is recorded).
            if self.others.is_some() && cell.judgement.evidence.is_empty() {
                out.push(format!("{}: no evidence recorded", s.id));
            }
        }
        out
    }
}
