//! The library runner: starts the targets, runs cells with the engine, stops
//! the targets, and returns the result model.
//!
//! The command line drives it one cell at a time (each cell a libtest
//! trial); the tests, and later `doctor` and `bench`, call [`run`] for a
//! whole catalog. It prints nothing: what a user should hear of (a target
//! starting, one that did not, a clean-up note) is handed to the caller as
//! an [`Event`].

use std::sync::Arc;

use tokio::sync::SetOnce;

use futures::StreamExt;

use crate::catalog::{Catalog, Scenario};
use crate::engine;
use crate::model::Verdict;
use crate::report::{strip_userinfo, CellResult, Report, ScenarioInfo, TargetInfo};
use crate::store::{Failure, Health, RequestError};
use crate::targets::{self, fresh_name, Kind, LiveTarget, TargetError, TargetSpec};

/// Something a caller may want to say while a run goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// No Docker engine answers: these container targets do not start.
    NoDocker {
        /// The container targets that do not start.
        targets: Vec<String>,
        /// What the engine check found, and how to fix it.
        why: String,
    },
    /// A target is being started.
    Starting {
        /// The target.
        target: String,
        /// Its kind.
        kind: Kind,
    },
    /// A target did not start; its cells are `error`.
    NotStarted {
        /// The target.
        target: String,
        /// Why, with what to do next.
        why: String,
    },
    /// Cleaning up a target left something (in storage thrown away with
    /// it): a note, not a failure.
    CleanupNote {
        /// The target.
        target: String,
        /// What was left.
        note: String,
    },
    /// Cleaning up a target failed.
    CleanupFailed {
        /// The target.
        target: String,
        /// What could not be removed.
        why: String,
    },
    /// A cell of a whole-catalog run finished (for progress).
    CellDone {
        /// The cell's target.
        target: String,
        /// The cell's scenario.
        scenario: String,
        /// Its verdict.
        verdict: Verdict,
    },
}

/// The targets of a run, each started (or not, with the reason) or still
/// starting, and the prefix the run's keys live under.
pub struct Session {
    specs: Vec<TargetSpec>,
    /// The targets the run needs; each slot is set when its start ends.
    live: Vec<(String, SetOnce<Result<Started, TargetError>>)>,
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

/// A target as the runner holds it once started: the target, and how far
/// its reads lag its writes (measured as it starts, raised whenever a
/// scenario sees a longer lag). The runner is where targets and the engine
/// meet: it gives the engine its view of the target.
pub struct Started {
    /// The target.
    pub live: LiveTarget,
    read_lag: engine::ReadLag,
}

impl Started {
    /// Starts the target and measures how far its reads lag.
    pub async fn start(spec: &TargetSpec) -> Result<Self, TargetError> {
        let live = LiveTarget::start(spec).await?;
        let read_lag = engine::ReadLag::default();
        engine::measure_read_lag(live.store(), live.prefix(), &read_lag).await;
        Ok(Started { live, read_lag })
    }

    /// What the engine runs a scenario on: the run's bucket through every
    /// endpoint, whether scenarios may make buckets of their own, the lag.
    pub fn site(&self) -> engine::Site<'_> {
        engine::Site {
            store: self.live.store(),
            peers: self.live.peers(),
            may_create_buckets: self.live.owns_bucket(),
            read_lag: &self.read_lag,
        }
    }

    /// The longest the target's reads were seen to lag its writes, so far.
    pub fn read_lag(&self) -> std::time::Duration {
        self.read_lag.get()
    }

    /// Stops the target (see [`LiveTarget::stop`]).
    pub async fn stop(self) -> Result<Option<String>, TargetError> {
        self.live.stop().await
    }
}

/// A target as a report describes it; `endpoint` is the URL the run talked
/// to, when it started (credentials in a URL are dropped).
pub fn target_info(spec: &TargetSpec, endpoint: Option<&str>) -> TargetInfo {
    let version = match spec.kind {
        Kind::Embedded => Some(format!("condwrite {}", env!("CARGO_PKG_VERSION"))),
        Kind::Container => spec
            .container
            .as_ref()
            .map(|c| format!("{}:{}", c.image, c.tag)),
        _ => None,
    };
    let configured = spec.endpoint.as_ref().and_then(|e| e.url.clone());
    TargetInfo {
        name: spec.name.clone(),
        kind: spec.kind.to_string(),
        description: spec.description.clone(),
        version: spec.version.clone().or(version),
        endpoint: endpoint
            .map(str::to_owned)
            .or(configured)
            .map(|u| strip_userinfo(&u)),
        region: Some(spec.client.region.clone()),
        family: spec.family.clone(),
        release: spec.release.clone(),
    }
}

/// Runs `work`; a panic in it becomes an error that says `what` panicked
/// and with what message (the words of the target's or cell's `error`).
async fn caught<T>(what: &str, work: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            format!("{what} panicked: {text}")
        })
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
    /// The session of each of `specs` that `wanted` keeps (those with a
    /// cell to run); none is started yet: [`Session::start_all`] starts
    /// them, and each target's cells wait for its own start only.
    pub fn new(specs: Vec<TargetSpec>, wanted: impl Fn(&TargetSpec) -> bool) -> Session {
        let live = specs
            .iter()
            .filter(|s| wanted(s))
            .map(|s| (s.name.clone(), SetOnce::new()))
            .collect();
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
            run_at: now_rfc3339(),
        }
    }

    /// Starts each of `specs` that `wanted` keeps, all at once, and returns
    /// when every start has ended (see [`Session::start_all`]).
    pub async fn start(
        specs: Vec<TargetSpec>,
        wanted: impl Fn(&TargetSpec) -> bool,
        on: &(dyn Fn(Event) + Sync),
    ) -> Session {
        let session = Session::new(specs, wanted);
        session.start_all(on).await;
        session
    }

    /// Starts every target of the session at once (container targets after
    /// one check that a Docker engine answers); each is ready for its cells
    /// as soon as it has started. Must run on a tokio runtime that outlives
    /// the session, and only once.
    pub async fn start_all(&self, on: &(dyn Fn(Event) + Sync)) {
        self.start_all_with(on, |spec| Box::pin(Started::start(spec)))
            .await;
    }

    /// As [`Session::start_all`], each target started by `start`. A start
    /// that panics ends as that target's error, with the panic's message:
    /// its cells are `error` and the run goes on, instead of waiting for
    /// ever for a start that will not end.
    async fn start_all_with<'s>(
        &'s self,
        on: &(dyn Fn(Event) + Sync),
        start: impl Fn(&'s TargetSpec) -> futures::future::BoxFuture<'s, Result<Started, TargetError>>,
    ) {
        let needed: Vec<(&TargetSpec, &SetOnce<_>)> = self
            .live
            .iter()
            .filter_map(|(name, slot)| {
                self.specs
                    .iter()
                    .find(|s| &s.name == name)
                    .map(|spec| (spec, slot))
            })
            .collect();
        let containers: Vec<String> = needed
            .iter()
            .filter(|(t, _)| t.kind == Kind::Container)
            .map(|(t, _)| t.name.clone())
            .collect();
        let docker = if containers.is_empty() {
            Ok(())
        } else {
            targets::container::docker_preflight().await
        };
        if let Err(why) = &docker {
            on(Event::NoDocker {
                targets: containers,
                why: why.to_string(),
            });
        }
        // Every target starts at once: a matrix of local servers waits for
        // the slowest, not for the sum of them, and the cells of a target
        // that is up do not wait for the others.
        let start = &start;
        futures::future::join_all(needed.into_iter().map(|(spec, slot)| {
            let docker = &docker;
            async move {
                let started = match (spec.kind, docker) {
                    (Kind::Container, Err(e)) => Err(e.clone()),
                    _ => {
                        on(Event::Starting {
                            target: spec.name.clone(),
                            kind: spec.kind,
                        });
                        let started = caught("its start", start(spec))
                            .await
                            .map_err(TargetError::Panicked)
                            .and_then(|r| r);
                        if let Err(why) = &started {
                            on(Event::NotStarted {
                                target: spec.name.clone(),
                                why: why.to_string(),
                            });
                        }
                        started
                    }
                };
                // Set once: a second start_all finds it set and drops its own.
                let _ = slot.set(started);
            }
        }))
        .await;
    }

    /// The target's slot, if the session has it.
    fn slot(&self, target: &str) -> Option<&SetOnce<Result<Started, TargetError>>> {
        self.live
            .iter()
            .find(|(n, _)| n == target)
            .map(|(_, slot)| slot)
    }

    /// The health of every target that has started, to watch for stalls.
    pub fn healths(&self) -> Vec<(String, Arc<Health>)> {
        self.live
            .iter()
            .filter_map(|(n, slot)| {
                slot.get()?
                    .as_ref()
                    .ok()
                    .map(|l| (n.clone(), l.live.store().health().clone()))
            })
            .collect()
    }

    /// Whether `target` was started (or tried).
    pub fn has(&self, target: &str) -> bool {
        self.live.iter().any(|(n, _)| n == target)
    }

    /// Why `target` did not start, if its start ended and it did not.
    pub fn not_started(&self, target: &str) -> Option<&TargetError> {
        self.slot(target)?.get()?.as_ref().err()
    }

    /// Runs `scenario` on `target` once the target's start has ended: its
    /// cell, `None` if the session does not have the target (no cell of it
    /// was wanted).
    pub async fn cell(&self, target: &str, scenario: &Scenario) -> Option<CellResult> {
        self.cell_in(target, scenario, None).await
    }

    /// As [`Session::cell`]; with a `window`, the cell takes one of its
    /// permits once its target is up and its own limit lets it run, so
    /// that cells waiting for a target to start hold no place in it.
    async fn cell_in(
        &self,
        target: &str,
        scenario: &Scenario,
        window: Option<&tokio::sync::Semaphore>,
    ) -> Option<CellResult> {
        let live = self.slot(target)?.wait().await;
        let _limit = match self.limits.iter().find(|(n, _)| n == target) {
            Some((_, limit)) => limit.clone().acquire_owned().await.ok(),
            None => None,
        };
        let _place = match window {
            Some(w) => w.acquire().await.ok(),
            None => None,
        };
        Some(match live {
            Ok(started) => {
                let prefix = format!("{}{}{}/", started.live.prefix(), self.prefix, scenario.id);
                let j = match caught(
                    "the scenario",
                    engine::run(&started.site(), scenario, &prefix),
                )
                .await
                {
                    Ok(j) => j,
                    Err(why) => engine::Judgement {
                        verdict: Verdict::Error,
                        reason: why,
                        evidence: Vec::new(),
                        answers: Vec::new(),
                        duration_ms: 0,
                    },
                };
                CellResult {
                    target: target.to_owned(),
                    scenario: scenario.id.clone(),
                    judgement: j,
                }
            }
            Err(e) => CellResult {
                target: target.to_owned(),
                scenario: scenario.id.clone(),
                judgement: engine::Judgement {
                    verdict: Verdict::Error,
                    reason: format!("the target did not start: {e}"),
                    duration_ms: 0,
                    evidence: Vec::new(),
                    answers: Vec::new(),
                },
            },
        })
    }

    /// What the run's scenarios left on `target` (they clean up after
    /// themselves; the stop then sweeps the run's prefix).
    pub async fn leftovers(&self, target: &str) -> Result<Vec<String>, RequestError> {
        match self.live(target) {
            Some(live) => live.store().list(live.prefix()).await,
            None => Err(RequestError {
                failure: Failure::NotSent,
                message: format!("target {target} is not running"),
            }),
        }
    }

    /// The started target `target`, for tests that look inside.
    pub fn live(&self, target: &str) -> Option<&LiveTarget> {
        self.slot(target)?.get()?.as_ref().ok().map(|s| &s.live)
    }

    /// Every target of the session that started, in order.
    pub fn started(&self) -> Vec<&LiveTarget> {
        self.live
            .iter()
            .filter_map(|(_, slot)| slot.get()?.as_ref().ok().map(|s| &s.live))
            .collect()
    }

    /// Stops every target at once (removing what the run left); notes and
    /// failures are reported as events.
    pub async fn stop(self, on: &(dyn Fn(Event) + Sync)) -> Finished {
        let endpoints = self
            .live
            .iter()
            .filter_map(|(n, slot)| {
                slot.get()?
                    .as_ref()
                    .ok()
                    .map(|l| (n.clone(), l.live.settings.endpoint_url.clone()))
            })
            .collect();
        // Every target stops at once, as they started.
        let stopped = futures::future::join_all(
            self.live
                .into_iter()
                .filter_map(|(target, slot)| slot.into_inner()?.ok().map(|live| (target, live)))
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
                    on(Event::CleanupFailed {
                        target,
                        why: why.to_string(),
                    });
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
                    target_info(t, url.map(|(_, u)| u.as_str()))
                })
                .collect(),
            results,
            bench: Vec::new(),
            observed: Vec::new(),
            applications: Vec::new(),
        }
    }
}

/// What [`run`] returns: the report, and what it left behind.
pub struct Ran {
    /// The result model of the run.
    pub report: Report,
    /// Whether cleaning up some target failed.
    pub cleanup_failed: bool,
    /// Per started target, what its scenarios left under the run's prefix
    /// before the stop swept it (a scenario cleans up after itself, so
    /// this is empty on a store that deletes what it is told to), or why
    /// it could not be listed.
    pub leftovers: Vec<(String, Result<Vec<String>, RequestError>)>,
}

/// Runs `catalog` on `specs`: starts them, runs every cell (`concurrency`
/// at a time, across targets), lists what each target kept, stops them.
pub async fn run(
    specs: Vec<TargetSpec>,
    catalog: &Catalog,
    concurrency: usize,
    on: &(dyn Fn(Event) + Sync),
) -> Ran {
    let session = Session::new(specs, |_| true);
    // The cells of each target start as soon as it is up.
    let ((), results) = futures::join!(
        session.start_all(on),
        session.cells_reporting(catalog, concurrency, on)
    );
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
        // Every cell waits for its target; `concurrency` of those whose
        // target is up run at a time, in target order.
        let window = tokio::sync::Semaphore::new(concurrency.max(1));
        let all = cells.len().max(1);
        futures::stream::iter(cells)
            .map(|(t, s)| {
                let window = &window;
                async move { self.cell_in(&t, s, Some(window)).await }
            })
            .buffer_unordered(all)
            .filter_map(|c| async move {
                if let Some(c) = &c {
                    on(Event::CellDone {
                        target: c.target.clone(),
                        scenario: c.scenario.clone(),
                        verdict: c.judgement.verdict,
                    });
                }
                c
            })
            .collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A start that panics is that target's error, with the message, and
    /// its cells are `error` at once: the run does not wait for it.
    #[tokio::test]
    async fn a_start_that_panics_is_the_targets_error_not_a_hang() {
        let targets = targets::Targets::parse(
            "targets.toml",
            "[[target]]\nname = \"boom\"\nkind = \"endpoint\"\nurl = \"http://127.0.0.1:9\"\nbucket = \"b\"\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let session = Session::new(targets.targets, |_| true);
        let catalog = Catalog::builtin().unwrap();
        let events = std::sync::Mutex::new(Vec::new());
        let on = |e: Event| events.lock().unwrap().push(e);
        let run = async {
            let ((), cell) = futures::join!(
                session.start_all_with(&on, |_| Box::pin(async { panic!("no such thing") })),
                session.cell("boom", &catalog.scenarios[0])
            );
            cell
        };
        let cell = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("a panicking start must not hang the run")
            .expect("the session has the target");
        assert_eq!(cell.judgement.verdict, Verdict::Error);
        assert_eq!(
            cell.judgement.reason,
            "the target did not start: its start panicked: no such thing"
        );
        assert!(events.lock().unwrap().contains(&Event::NotStarted {
            target: "boom".into(),
            why: "its start panicked: no such thing".into()
        }));
    }

    /// Credentials written into an endpoint URL (`https://KEY:SECRET@host`)
    /// reach no report: not the JSON, the HTML, the JUnit or the Markdown.
    #[test]
    fn credentials_in_an_endpoint_url_reach_no_report() {
        let targets = targets::Targets::parse(
            "targets.toml",
            "[[target]]\nname = \"ep\"\nkind = \"endpoint\"\nurl = \"https://AKID:sekrit@s3.example.com\"\nbucket = \"b\"\n\n[[target]]\nname = \"other\"\nkind = \"endpoint\"\nurl = \"https://AKID:sekrit@s3.example.com\"\nbucket = \"b\"\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let finished = Finished {
            specs: targets.targets,
            // `ep` started and talked to this URL; `other` did not start.
            endpoints: vec![("ep".into(), "http://AKID:sekrit@127.0.0.1:9/".into())],
            run_at: None,
            cleanup_failed: false,
        };
        let catalog = Catalog::builtin().unwrap();
        let report = finished.report(&catalog, Vec::new());
        assert_eq!(
            report.targets[0].endpoint.as_deref(),
            Some("http://127.0.0.1:9/")
        );
        assert_eq!(
            report.targets[1].endpoint.as_deref(),
            Some("https://s3.example.com")
        );
        for (what, text) in [
            ("json", report.to_json()),
            ("html", report.to_html()),
            ("junit", report.to_junit()),
            ("markdown", report.to_markdown()),
        ] {
            assert!(!text.contains("sekrit"), "{what}: {text}");
        }
    }
}
