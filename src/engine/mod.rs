//! Runs scenarios against a store and grades what it saw.
//!
//! The engine executes a scenario's steps under a key prefix of the run's
//! own, reads the object back after every checked step, and classifies the
//! result into a [`Verdict`] with a one-line reason in `Expected: … Actual: …`
//! form. A status code alone never decides a verdict: a refused write that
//! changed the bytes is unsafe, and so is an acknowledged one whose bytes are
//! not there. A lost answer is not a lost write, and a late read is not a
//! lost write either: the engine keeps what the scenario's acknowledged
//! writes must have left under each key, reads until the store agrees (for a
//! bounded while), and takes an unanswered request as an unknown outcome.
//! The engine prints nothing; it returns a [`Judgement`].
//!
//! - `state`: read-back states, expectations, the target's read lag;
//! - `grade`: the graders of one request and of a DeleteObjects;
//! - `request`: the single-request steps, DeleteObjects and the ABA step;
//! - `race`: concurrent conditional writers, and their grader;
//! - `counter`: the CAS counter, and its grader.

mod counter;
mod grade;
mod race;
mod request;
mod state;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::catalog::{Conditions, Scenario};
use crate::model::Verdict;
use crate::model::{ETag, Outcome, Precondition};
use crate::store::Store;

use grade::Graded;
pub use state::ReadLag;
use state::{Expected, Settled, State};

pub use crate::model::Judgement;

/// A step that stopped the scenario before it could be graded: an `error`
/// (the harness could not go on), or `unsafe` when what stopped it is a
/// write the store acknowledged and lost.
struct Abort {
    verdict: Verdict,
    why: String,
    /// The target as a whole was given up on (it stopped answering, or
    /// the run is ending), rather than anything about this step: the
    /// scenario ends with `why`, word for word, so that every cell it
    /// ended reads the same.
    target_gone: bool,
}

fn abort(why: impl Into<String>) -> Abort {
    Abort {
        verdict: Verdict::Error,
        why: why.into(),
        target_gone: false,
    }
}

/// The scenario cannot go on because the target was given up on.
fn gone(why: impl Into<String>) -> Abort {
    Abort {
        target_gone: true,
        ..abort(why)
    }
}

/// A step that stopped the scenario, weighed against the worst verdict of
/// the steps before it. An earlier step that already answered differently
/// from AWS (a refused CreateMultipartUpload, say) made this one
/// impossible: the earlier verdict stands, its reason says where the
/// scenario stopped, and `None` is returned. But a stop that is worse
/// than the earlier verdict and not an `error` (a lost acknowledged write,
/// `unsafe`) overrides it: it is returned as this step's verdict.
fn after_earlier(earlier: Option<&mut Graded>, index: usize, stopped: Abort) -> Option<Graded> {
    let Abort { verdict, why, .. } = stopped;
    match earlier {
        Some(w)
            if w.verdict > Verdict::Info && (verdict == Verdict::Error || w.verdict >= verdict) =>
        {
            w.reason.push_str(&format!(
                "; the scenario stopped at step {}: {why}",
                index + 1
            ));
            None
        }
        _ => Some(Graded::new(verdict, why)),
    }
}

/// Where a scenario runs: the run's bucket through each endpoint of the
/// target, whether the target lets scenarios make buckets of their own
/// (versioning scenarios need one), and how far its reads lag its writes.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    /// The bucket through the target's (first) endpoint.
    pub store: &'a Store,
    /// The same bucket through the target's other endpoints, if any.
    pub peers: &'a [Store],
    /// False for a target that names a bucket to work in.
    pub may_create_buckets: bool,
    /// The target's read-after-write lag, shared by its scenarios.
    pub read_lag: &'a ReadLag,
}

/// Measures how far `store`'s reads lag its writes, with a few probe
/// objects under `prefix` (deleted again): each is read (absent), written,
/// read until it shows, deleted, read until it is gone. Records the longest
/// wait in `lag`; a probe that never shows is left to the scenarios to
/// grade. Cheap on a store whose reads agree at once (a few requests).
pub async fn measure_read_lag(store: &Store, prefix: &str, lag: &ReadLag) {
    for n in 0..3 {
        let key = format!("{prefix}condwrite-read-lag-probe-{n}");
        let body = bytes::Bytes::from(format!("read-lag probe {n}"));
        let _ = store.get(&key, &Precondition::none()).await;
        if !store
            .put(&key, body.clone(), &Precondition::none())
            .await
            .is_ok_and(|o| o.is_success())
        {
            return;
        }
        for want in [Expected::Body(body), Expected::Absent] {
            if want == Expected::Absent && store.delete(&key, &Precondition::none()).await.is_err()
            {
                return;
            }
            let started = Instant::now();
            let mut pause = Duration::from_millis(10);
            let mut retried = false;
            loop {
                let seen = match store.get(&key, &Precondition::none()).await {
                    Ok(o) if o.is_success() => State::Present {
                        body: o.body.unwrap_or_default(),
                        etag: None,
                        last_modified: None,
                    },
                    Ok(o) if o.status == 404 => State::Absent,
                    _ => State::Unreadable {
                        etag: None,
                        why: String::new(),
                    },
                };
                if want.matches(&seen) {
                    if retried {
                        lag.observe(started.elapsed());
                    }
                    break;
                }
                if started.elapsed() > Duration::from_secs(3) {
                    let _ = store.delete(&key, &Precondition::none()).await;
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
                retried = true;
            }
        }
    }
}

/// Runs `scenario` on `site` under `prefix` (which must end in `/` and be
/// unused), then deletes everything under the prefix — and a bucket it
/// made for a versioning scenario.
pub async fn run(site: &Site<'_>, scenario: &Scenario, prefix: &str) -> Judgement {
    let started = Instant::now();
    if !scenario.versioning {
        let stores: Vec<Store> = std::iter::once(site.store.clone())
            .chain(site.peers.iter().cloned())
            .collect();
        return run_in(&stores, site, scenario, prefix, started, false).await;
    }
    let judged = |verdict, reason: String| Judgement {
        verdict,
        reason,
        evidence: Vec::new(),
        answers: Vec::new(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    if !site.may_create_buckets {
        return judged(
            Verdict::Unsupported,
            "needs a bucket of its own with versioning enabled; this target names a bucket to work in".into(),
        );
    }
    let store = site.store.scenario_bucket();
    let bucket = store.bucket().to_owned();
    if let Err(e) = store.create_bucket().await {
        return judged(
            Verdict::Error,
            format!("making a versioned bucket failed: {e}"),
        );
    }
    // PutBucketVersioning accepted and GetBucketVersioning saying
    // "Enabled" is what a client can check; an answer the SDK cannot read
    // is said in the reason, and the scenario still runs.
    let ready = match store.enable_versioning().await {
        Err(e) => Err((Verdict::Unsupported, format!("versioning cannot be enabled: {e}"))),
        Ok(()) => match store.versioning_enabled().await {
            Ok(true) => Ok(None),
            Ok(false) => Err((
                Verdict::Unsupported,
                "PutBucketVersioning was accepted, but GetBucketVersioning does not report it enabled".into(),
            )),
            Err(e) => Ok(Some(format!(
                "versioning enabled by PutBucketVersioning; reading it back failed: {e}"
            ))),
        },
    };
    let mut judgement = match ready {
        Ok(note) => {
            let stores: Vec<Store> = std::iter::once(store.clone())
                .chain(site.peers.iter().map(|p| p.for_bucket(bucket.clone())))
                .collect();
            let mut j = run_in(&stores, site, scenario, prefix, started, true).await;
            if let Some(note) = note {
                j.reason = format!("{} ({note})", j.reason);
            }
            j
        }
        Err((verdict, reason)) => judged(verdict, reason),
    };
    let removed = store.delete_scenario_bucket().await;
    if let Err(e) = removed {
        judgement
            .reason
            .push_str(&format!(" (removing the versioned bucket failed: {e})"));
        if judgement.verdict <= Verdict::Info {
            judgement.verdict = Verdict::Error;
        }
    }
    judgement.duration_ms = started.elapsed().as_millis() as u64;
    judgement
}

/// The worst graded step so far, and where the scenario stopped.
fn conclude(worst: Option<(usize, Graded)>, steps: usize) -> Graded {
    match worst {
        Some((index, mut g)) => {
            if steps > 1 {
                g.reason = format!("step {}: {}", index + 1, g.reason);
            }
            g
        }
        None => Graded::new(Verdict::Error, "the scenario has no checked step"),
    }
}

/// Writes that showed only late (set-up writes included): read-after-write
/// is not strong, which AWS's is — `deviates` at least, said once (not
/// again when the graded step's reason already says it, `said`).
fn with_late_writes(
    mut verdict: Verdict,
    mut reason: String,
    said: bool,
    late: &[(String, Duration)],
) -> (Verdict, String) {
    if let Some((what, lag)) = late.iter().max_by_key(|(_, d)| *d) {
        if !said {
            reason.push_str(&format!(
                "; read-after-write is not strong: {what} appeared only after {} ms",
                lag.as_millis()
            ));
        }
        verdict = verdict.max(Verdict::Deviates);
    }
    (verdict, reason)
}

async fn run_in(
    stores: &[Store],
    site: &Site<'_>,
    scenario: &Scenario,
    prefix: &str,
    started: Instant,
    versioned: bool,
) -> Judgement {
    let store = &stores[0];
    let mut run = Run {
        stores,
        read_lag: site.read_lag,
        prefix,
        saved: HashMap::new(),
        uploads: HashMap::new(),
        evidence: Vec::new(),
        informational: scenario.informational,
        unreadable_upload: false,
        touched: BTreeSet::new(),
        expected: HashMap::new(),
        late: Vec::new(),
    };
    let mut worst: Option<(usize, Graded)> = None;
    // The reason is about the target as a whole, not a step.
    let mut whole = false;
    if let Some(why) = store.health().stalled() {
        worst = Some((0, Graded::new(Verdict::Error, why)));
        whole = true;
    }
    for (index, step) in scenario.steps.iter().enumerate() {
        if whole {
            break;
        }
        let graded = match run.step(step).await {
            Ok(Some(g)) => g,
            Ok(None) => continue,
            Err(Abort {
                why,
                target_gone: true,
                ..
            }) => {
                worst = Some((0, Graded::new(Verdict::Error, why)));
                whole = true;
                break;
            }
            Err(stopped) => match after_earlier(worst.as_mut().map(|(_, w)| w), index, stopped) {
                Some(graded) => graded,
                None => break,
            },
        };
        let stop = matches!(graded.verdict, Verdict::Unsafe | Verdict::Error);
        if worst
            .as_ref()
            .is_none_or(|(_, w)| graded.verdict > w.verdict)
        {
            worst = Some((index, graded));
        }
        if stop {
            break;
        }
    }
    let graded = conclude(worst, if whole { 1 } else { scenario.steps.len() });
    let answers = graded.answers;
    let (mut verdict, mut reason) =
        with_late_writes(graded.verdict, graded.reason, graded.late_read, &run.late);
    let mut problems = Vec::new();
    for (key, upload) in &run.uploads {
        if let Err(e) = store.abort_upload(key, &upload.id).await {
            problems.push(e);
        }
    }
    if run.unreadable_upload {
        if let Err(e) = store.abort_uploads(prefix).await {
            problems.push(e);
        }
    }
    let cleaned = if versioned {
        store.delete_versions(prefix).await
    } else {
        // The keys it named first, then whatever else the listing shows.
        match store.delete_keys(&run.touched).await {
            Ok(()) => store.delete_prefix(prefix).await,
            Err(e) => Err(e),
        }
    };
    if let Err(e) = cleaned {
        problems.push(e);
    }
    if !problems.is_empty() {
        let e = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if verdict <= Verdict::Info {
            verdict = Verdict::Error;
            reason = format!("{reason}; but cleaning up failed: {e}");
        } else {
            reason.push_str(&format!(" (cleaning up failed: {e})"));
        }
    }
    Judgement {
        verdict,
        reason,
        evidence: run.evidence,
        answers,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// A multipart upload a scenario started.
struct OpenUpload {
    id: String,
    /// Parts uploaded so far: number, ETag, bytes.
    parts: Vec<(i32, ETag, bytes::Bytes)>,
}

/// One scenario's run: its stores, what it saved, and what it knows must be
/// under each of its keys.
struct Run<'a> {
    /// The bucket through every endpoint, the target's first one first;
    /// racers and workers take turns.
    stores: &'a [Store],
    read_lag: &'a ReadLag,
    prefix: &'a str,
    saved: HashMap<String, ETag>,
    /// Uploads by full key; aborted at the end (completed ones are gone).
    uploads: HashMap<String, OpenUpload>,
    evidence: Vec<Outcome>,
    informational: bool,
    /// A CreateMultipartUpload succeeded without an id the SDK could read.
    unreadable_upload: bool,
    /// Every key the scenario named: deleted at the end whatever a listing
    /// shows (some stores list stale, and would hide an object).
    touched: BTreeSet<String>,
    /// What each key must hold after the scenario's acknowledged writes (a
    /// key not here is absent: every scenario starts under a fresh prefix).
    expected: HashMap<String, Expected>,
    /// Writes that showed only after a wait: what, and how long.
    late: Vec<(String, Duration)>,
}

impl Run<'_> {
    /// The bucket through the target's first endpoint.
    fn store(&self) -> &Store {
        &self.stores[0]
    }

    /// The full key of `name`, remembered for the clean-up.
    fn key(&mut self, name: &str) -> String {
        let key = format!("{}{name}", self.prefix);
        self.touched.insert(key.clone());
        key
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.saved.get(name).map(|e| e.as_str().to_owned())
    }

    /// What `key` must hold now.
    fn model(&self, key: &str) -> Expected {
        self.expected.get(key).cloned().unwrap_or(Expected::Absent)
    }

    fn precondition(
        &self,
        conditions: &Conditions,
        extra: &HashMap<&str, ETag>,
        before: Option<&State>,
    ) -> Result<Precondition, Abort> {
        let date = |v: &Option<String>| -> Result<Option<String>, Abort> {
            match v.as_deref() {
                None => Ok(None),
                Some("last-modified") => match before {
                    Some(State::Present {
                        last_modified: Some(d),
                        ..
                    }) => Ok(Some(d.clone())),
                    _ => Err(abort(
                        "`last-modified`: the object read back before the step had no Last-Modified",
                    )),
                },
                Some(d) => Ok(Some(d.to_owned())),
            }
        };
        let lookup = |name: &str| {
            extra
                .get(name)
                .map(|e| e.as_str().to_owned())
                .or_else(|| self.lookup(name))
        };
        let render = |t: &Option<crate::catalog::Template>| {
            t.as_ref()
                .map(|t| t.render(lookup))
                .transpose()
                .map_err(|e| abort(format!("could not fill in a condition: {e}")))
        };
        Ok(Precondition {
            if_match: render(&conditions.if_match)?,
            if_none_match: render(&conditions.if_none_match)?,
            if_modified_since: date(&conditions.if_modified_since)?,
            if_unmodified_since: date(&conditions.if_unmodified_since)?,
            range: conditions.range.clone(),
        })
    }

    /// Reads the current state of `key` back. An unconditional GET changes
    /// nothing, so a 5xx (a store hiccup under load) is tried again, twice.
    async fn read(&mut self, key: &str) -> Result<State, Abort> {
        let mut tries = 0;
        let out = loop {
            let out = self
                .store()
                .get(key, &Precondition::none())
                .await
                .map_err(|e| {
                    if e.failure.target_gone() {
                        gone(e.message)
                    } else {
                        abort(format!("reading the object back failed: {e}"))
                    }
                })?;
            tries += 1;
            if out.status < 500 || tries == 3 {
                break out;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        match out.status {
            200..=299 if out.body_error.is_some() => Ok(State::Unreadable {
                etag: out.etag.clone(),
                why: out.body_error.clone().unwrap_or_default(),
            }),
            200..=299 => Ok(State::Present {
                body: out.body.clone().unwrap_or_default(),
                etag: out.etag.clone(),
                last_modified: out.last_modified.clone(),
            }),
            404 => Ok(State::Absent),
            _ => Err(abort(format!(
                "reading the object back answered {}",
                out.status_line()
            ))),
        }
    }

    /// Reads `key` until `ok` holds, with a bounded back-off (the target's
    /// read budget); records a wait as the target's read lag.
    async fn read_until(
        &mut self,
        key: &str,
        ok: impl Fn(&State) -> bool,
    ) -> Result<Settled, Abort> {
        let first = self.read(key).await?;
        if ok(&first) {
            return Ok(Settled::at_once(first));
        }
        let started = Instant::now();
        let budget = self.read_lag.budget();
        let mut pause = Duration::from_millis(25);
        let mut state = first;
        while started.elapsed() < budget {
            tokio::time::sleep(pause.min(budget.saturating_sub(started.elapsed()))).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            state = self.read(key).await?;
            if ok(&state) {
                let waited = started.elapsed();
                self.read_lag.observe(waited);
                return Ok(Settled {
                    state,
                    agreed: true,
                    late: Some(waited),
                });
            }
        }
        Ok(Settled {
            state,
            agreed: false,
            late: None,
        })
    }

    /// Reads `key` until it holds what the scenario's acknowledged writes
    /// left there. One that never shows is a lost write (`unsafe`); one
    /// that shows late is noted (read-after-write is not strong).
    async fn read_expected(&mut self, key: &str) -> Result<State, Abort> {
        let want = self.model(key);
        let settled = self.read_until(key, |s| want.matches(s)).await?;
        if !settled.agreed {
            return Err(Abort {
                target_gone: false,
                verdict: Verdict::Unsafe,
                why: format!(
                    "an acknowledged write is lost: {key} must be {} after the writes before this step, but reads back as {} (read for {} s)",
                    want.describe(),
                    settled.state.describe(),
                    self.read_lag.budget().as_secs()
                ),
            });
        }
        if let Some(d) = settled.late {
            self.late
                .push((format!("the write before this step ({key})"), d));
        }
        Ok(settled.state)
    }

    /// After a refused (or unanswered) write read back unchanged: on a
    /// target whose reads lag, looks again once the lag has passed, so that
    /// a refused write landing late is seen. Returns the later state and
    /// when, if it changed.
    async fn confirm_unchanged(
        &mut self,
        key: &str,
        state: &State,
    ) -> Result<Option<(State, Duration)>, Abort> {
        let Some(wait) = self.read_lag.confirm_after() else {
            return Ok(None);
        };
        tokio::time::sleep(wait).await;
        let later = self.read(key).await?;
        Ok((!later.same_as(state)).then_some((later, wait)))
    }
}

/// A PUT answer made up for the graders' unit tests.
#[cfg(test)]
pub(crate) fn made_up_put(
    status: u16,
    code: Option<&str>,
    etag: Option<&str>,
    precondition: Precondition,
) -> Outcome {
    Outcome {
        operation: crate::model::Operation::PutObject,
        method: "PUT".into(),
        path: "/b/k".into(),
        copy_source: None,
        sent: None,
        received: None,
        key: "k".into(),
        precondition,
        status,
        code: code.map(Into::into),
        etag: etag.map(crate::model::ETag::new),
        last_modified: None,
        body: None,
        body_error: None,
        upload_id: None,
        items: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
