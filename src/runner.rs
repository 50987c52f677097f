//! The library runner: starts the targets, runs cells with the engine, stops
//! the targets, and returns the result model.
//!
//! The command line drives it one cell at a time (each cell a libtest
//! trial); the tests, and later `doctor` and `bench`, call [`run`] for a
//! whole catalog. It prints nothing: what a user should hear of (a target
//! starting, one that did not, a clean-up note) is handed to the caller as
//! an [`Event`].

use std::sync::Arc;

use futures::StreamExt;

use crate::catalog::{Catalog, Scenario};
use crate::engine;
use crate::model::Verdict;
use crate::report::{CellResult, Report, ScenarioInfo};
use crate::store::Health;
use crate::targets::{self, fresh_name, Kind, LiveTarget, TargetSpec};

/// Something a caller may want to say while a run goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// No Docker engine answers: these container targets do not start.
    NoDocker { targets: Vec<String>, why: String },
    /// A target is being started.
    Starting { target: String, kind: Kind },
    /// A target did not start; its cells are `error`.
    NotStarted { target: String, why: String },
    /// Cleaning up a target left something (in storage thrown away with
    /// it): a note, not a failure.
    CleanupNote { target: String, note: String },
    /// Cleaning up a target failed.
    CleanupFailed { target: String, why: String },
    /// A cell of a whole-catalog run finished (for progress).
    CellDone {
        target: String,
        scenario: String,
        verdict: Verdict,
    },
}

/// The targets of a run, started (or not, with the reason), and the prefix
/// the run's keys live under.
pub struct Session {
    specs: Vec<TargetSpec>,
    live: Vec<(String, Result<LiveTarget, String>)>,
    /// Targets whose scenarios may only run so many at a time.
    limits: Vec<(String, Arc<tokio::sync::Semaphore>)>,
    prefix: String,
    run_at: Option<String>,
}

/// A run whose targets are stopped: what the report needs of them.
pub struct Finished {
    specs: Vec<TargetSpec>,
    endpoints: Vec<(String, String)>,
    run_at: Option<String>,
    /// Whether cleaning up some target failed.
    pub cleanup_failed: bool,
}

/// The run's start, as RFC 3339 UTC to the second.
fn now_rfc3339() -> Option<String> {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

impl Session {
    /// Starts each of `specs` that `wanted` keeps (those with a cell to
    /// run), all at once; container targets after one check that a Docker
    /// engine answers. Must run on a tokio runtime that outlives it.
    pub async fn start(
        specs: Vec<TargetSpec>,
        wanted: impl Fn(&TargetSpec) -> bool,
        on: &(dyn Fn(Event) + Sync),
    ) -> Session {
        let run_at = now_rfc3339();
        let needed: Vec<&TargetSpec> = specs.iter().filter(|s| wanted(s)).collect();
        let containers: Vec<String> = needed
            .iter()
            .filter(|t| t.kind == Kind::Container)
            .map(|t| t.name.clone())
            .collect();
        let docker = if containers.is_empty() {
            Ok(())
        } else {
            targets::container::docker_preflight().await
        };
        if let Err(why) = &docker {
            on(Event::NoDocker {
                targets: containers,
                why: why.clone(),
            });
        }
        // Every target starts at once: a matrix of local servers waits for
        // the slowest, not for the sum of them.
        let live = futures::future::join_all(needed.into_iter().map(|spec| {
            let docker = &docker;
            async move {
                if let (Kind::Container, Err(e)) = (spec.kind, docker) {
                    return (spec.name.clone(), Err(e.clone()));
                }
                on(Event::Starting {
                    target: spec.name.clone(),
                    kind: spec.kind,
                });
                let started = LiveTarget::start(spec).await;
                if let Err(why) = &started {
                    on(Event::NotStarted {
                        target: spec.name.clone(),
                        why: why.clone(),
                    });
                }
                (spec.name.clone(), started)
            }
        }))
        .await;
        let limits = specs
            .iter()
            .filter_map(|s| {
                s.max_concurrency
                    .map(|n| (s.name.clone(), Arc::new(tokio::sync::Semaphore::new(n))))
            })
            .collect();
        Session {
            specs,
            live,
            limits,
            prefix: format!("{}/", fresh_name("run")),
            run_at,
        }
    }

    /// The health of every target that started, to watch for stalls.
    pub fn healths(&self) -> Vec<(String, Arc<Health>)> {
        self.live
            .iter()
            .filter_map(|(n, l)| {
                l.as_ref()
                    .ok()
                    .map(|l| (n.clone(), l.store().health().clone()))
            })
            .collect()
    }

    /// Whether `target` was started (or tried).
    pub fn has(&self, target: &str) -> bool {
        self.live.iter().any(|(n, _)| n == target)
    }

    /// Why `target` did not start, if it did not.
    pub fn not_started(&self, target: &str) -> Option<&str> {
        self.live
            .iter()
            .find(|(n, _)| n == target)
            .and_then(|(_, l)| l.as_ref().err().map(String::as_str))
    }

    /// Runs `scenario` on `target`: its cell, `None` if the target was not
    /// started at all (no cell of it was wanted).
    pub async fn cell(&self, target: &str, scenario: &Scenario) -> Option<CellResult> {
        let (_, live) = self.live.iter().find(|(n, _)| n == target)?;
        let _permit = match self.limits.iter().find(|(n, _)| n == target) {
            Some((_, limit)) => limit.clone().acquire_owned().await.ok(),
            None => None,
        };
        Some(match live {
            Ok(live) => {
                let prefix = format!("{}{}{}/", live.prefix(), self.prefix, scenario.id);
                let j = engine::run(&live.site(), scenario, &prefix).await;
                CellResult {
                    target: target.to_owned(),
                    scenario: scenario.id.clone(),
                    verdict: j.verdict,
                    reason: j.reason,
                    duration_ms: j.duration_ms,
                    evidence: j.evidence,
                }
            }
            Err(e) => CellResult {
                target: target.to_owned(),
                scenario: scenario.id.clone(),
                verdict: Verdict::Error,
                reason: format!("the target did not start: {e}"),
                duration_ms: 0,
                evidence: Vec::new(),
            },
        })
    }

    /// What the run's scenarios left on `target` (they clean up after
    /// themselves; the stop then sweeps the run's prefix).
    pub async fn leftovers(&self, target: &str) -> Result<Vec<String>, String> {
        match self.live.iter().find(|(n, _)| n == target) {
            Some((_, Ok(live))) => live.store().list(live.prefix()).await,
            _ => Err(format!("target {target} is not running")),
        }
    }

    /// The started target `target`, for tests that look inside.
    pub fn live(&self, target: &str) -> Option<&LiveTarget> {
        self.live
            .iter()
            .find(|(n, _)| n == target)
            .and_then(|(_, l)| l.as_ref().ok())
    }

    /// Stops every target at once (removing what the run left); notes and
    /// failures are reported as events.
    pub async fn stop(self, on: &(dyn Fn(Event) + Sync)) -> Finished {
        let endpoints = self
            .live
            .iter()
            .filter_map(|(n, l)| {
                l.as_ref()
                    .ok()
                    .map(|l| (n.clone(), l.settings.endpoint_url.clone()))
            })
            .collect();
        // Every target stops at once, as they started.
        let stopped = futures::future::join_all(
            self.live
                .into_iter()
                .filter_map(|(target, live)| live.ok().map(|live| (target, live)))
                .map(|(target, live)| async move { (target, live.stop().await) }),
        )
        .await;
        let mut cleanup_failed = false;
        for (target, result) in stopped {
            match result {
                Ok(None) => {}
                Ok(Some(note)) => on(Event::CleanupNote { target, note }),
                Err(why) => {
                    cleanup_failed = true;
                    on(Event::CleanupFailed { target, why });
                }
            }
        }
        Finished {
            specs: self.specs,
            endpoints,
            run_at: self.run_at,
            cleanup_failed,
        }
    }
}

impl Finished {
    /// The result model of the run: `results` in target and catalog order.
    pub fn report(&self, catalog: &Catalog, mut results: Vec<CellResult>) -> Report {
        results.sort_by_key(|c| {
            (
                self.specs.iter().position(|t| t.name == c.target),
                catalog.scenarios.iter().position(|s| s.id == c.scenario),
            )
        });
        Report {
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            run_at: self.run_at.clone(),
            scenarios: catalog
                .scenarios
                .iter()
                .map(|s| ScenarioInfo {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    operation: s.operation.clone(),
                    aws_doc: s.aws_doc.clone(),
                    informational: s.informational,
                })
                .collect(),
            targets: self
                .specs
                .iter()
                .map(|t| {
                    let url = self.endpoints.iter().find(|(n, _)| *n == t.name);
                    t.info(url.map(|(_, u)| u.as_str()))
                })
                .collect(),
            results,
            bench: Vec::new(),
        }
    }
}

/// What [`run`] returns: the report, and what it left behind.
pub struct Ran {
    pub report: Report,
    /// Whether cleaning up some target failed.
    pub cleanup_failed: bool,
    /// Per started target, what its scenarios left under the run's prefix
    /// before the stop swept it (a scenario cleans up after itself, so
    /// this is empty on a store that deletes what it is told to), or why
    /// it could not be listed.
    pub leftovers: Vec<(String, Result<Vec<String>, String>)>,
}

/// Runs `catalog` on `specs`: starts them, runs every cell (`concurrency`
/// at a time, across targets), lists what each target kept, stops them.
pub async fn run(
    specs: Vec<TargetSpec>,
    catalog: &Catalog,
    concurrency: usize,
    on: &(dyn Fn(Event) + Sync),
) -> Ran {
    let session = Session::start(specs, |_| true, on).await;
    let results = session.cells_reporting(catalog, concurrency, on).await;
    let mut leftovers = Vec::new();
    for spec in &session.specs {
        if session.live(&spec.name).is_some() {
            leftovers.push((spec.name.clone(), session.leftovers(&spec.name).await));
        }
    }
    let finished = session.stop(on).await;
    Ran {
        report: finished.report(catalog, results),
        cleanup_failed: finished.cleanup_failed,
        leftovers,
    }
}

impl Session {
    /// Runs every scenario of `catalog` on every started (or failed) target,
    /// `concurrency` cells at a time, across targets.
    pub async fn cells(&self, catalog: &Catalog, concurrency: usize) -> Vec<CellResult> {
        self.cells_reporting(catalog, concurrency, &|_| {}).await
    }

    /// As [`Session::cells`], saying each cell as it finishes.
    pub async fn cells_reporting(
        &self,
        catalog: &Catalog,
        concurrency: usize,
        on: &(dyn Fn(Event) + Sync),
    ) -> Vec<CellResult> {
        let cells: Vec<(String, &Scenario)> = self
            .live
            .iter()
            .flat_map(|(t, _)| catalog.scenarios.iter().map(|s| (t.clone(), s)))
            .collect();
        futures::stream::iter(cells)
            .map(|(t, s)| async move { self.cell(&t, s).await })
            .buffer_unordered(concurrency.max(1))
            .filter_map(|c| async move {
                if let Some(c) = &c {
                    on(Event::CellDone {
                        target: c.target.clone(),
                        scenario: c.scenario.clone(),
                        verdict: c.verdict,
                    });
                }
                c
            })
            .collect()
            .await
    }
}
