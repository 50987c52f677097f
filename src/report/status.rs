//! How a run ended, from its report: the one rule for the exit status of
//! a run, a `report`, `doctor` and `bench`, so that every command fails a
//! CI job for the same reasons.

use super::{Comparison, Report};
use crate::profiles::{Agreement, AppVerdict};

/// How a run ended, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunStatus {
    /// Everything the command checks holds.
    Passed,
    /// Everything holds, but cleaning up some target failed: what the run
    /// wrote may be left there.
    CleanupFailed,
    /// Something the command checks does not hold: a failing cell, a
    /// regression against the baseline, an application that is not safe
    /// or whose real run contradicts the cells, a target not measured.
    Failed,
}

impl RunStatus {
    /// `Failed` when `failed`, else `CleanupFailed` when the clean-up
    /// failed, else `Passed`.
    pub fn of(failed: bool, cleanup_failed: bool) -> Self {
        if failed {
            RunStatus::Failed
        } else if cleanup_failed {
            RunStatus::CleanupFailed
        } else {
            RunStatus::Passed
        }
    }

    /// The process exit status: 0, 1 when only the clean-up failed, 101 as
    /// a failed `cargo test`.
    pub fn exit_code(self) -> u8 {
        match self {
            RunStatus::Passed => 0,
            RunStatus::CleanupFailed => 1,
            RunStatus::Failed => 101,
        }
    }
}

impl Report {
    /// A catalog run: failed when a cell fails (unsafe or error; with
    /// `strict` also deviates and unsupported), or, compared with a
    /// baseline, only when a cell got worse.
    pub fn run_status(
        &self,
        strict: bool,
        against: Option<&Comparison>,
        cleanup_failed: bool,
    ) -> RunStatus {
        let failed = match against {
            Some(cmp) => !cmp.regressions.is_empty(),
            None => self
                .results
                .iter()
                .any(|c| c.judgement.verdict.fails(strict)),
        };
        RunStatus::of(failed, cleanup_failed)
    }

    /// A bench: failed when a target has no figures (it did not start).
    pub fn bench_status(&self, cleanup_failed: bool) -> RunStatus {
        let unmeasured = self
            .targets
            .iter()
            .any(|t| !self.bench.iter().any(|b| b.target == t.name));
        RunStatus::of(unmeasured, cleanup_failed)
    }
}

/// A doctor: failed when an application is not safe on a target (unsafe,
/// does not work, or cannot be told), or when its real run contradicts
/// the cells.
pub fn doctor_status(apps: &[AppVerdict], cleanup_failed: bool) -> RunStatus {
    let failed = apps
        .iter()
        .any(|a| a.fitness.fails() || a.agreement() == Some(Agreement::Disagrees));
    RunStatus::of(failed, cleanup_failed)
}
