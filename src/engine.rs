//! Runs scenarios against a store and grades what it saw.
//!
//! The engine executes a scenario's steps under a key prefix of the run's
//! own, reads the object back after every checked step, and classifies the
//! result into a [`Verdict`] with a one-line reason in `Expected: … Actual: …`
//! form. A status code alone never decides a verdict: a refused write that
//! changed the bytes is unsafe, and so is an accepted one whose bytes are not
//! there. The engine prints nothing; it returns a [`Judgement`].

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Barrier;

use crate::catalog::{Action, BatchObject, Conditions, Expect, RaceStart, Scenario, Step};
use crate::report::Verdict;
use crate::store::{ETag, Outcome, Precondition, Store};

/// What the engine concluded about one scenario on one target.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reason: String,
    pub evidence: Vec<Outcome>,
    pub duration_ms: u64,
}

/// What is stored under a key, as read back with an unconditional GET.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Absent,
    Present {
        body: Bytes,
        etag: Option<ETag>,
        last_modified: Option<String>,
    },
    /// GET answered 200 but its body could not be read whole: the store
    /// serves bytes that disagree with its own headers.
    Unreadable {
        etag: Option<ETag>,
        why: String,
    },
}

impl State {
    fn same_as(&self, other: &State) -> bool {
        match (self, other) {
            (State::Absent, State::Absent) => true,
            (
                State::Present {
                    body: a, etag: ea, ..
                },
                State::Present {
                    body: b, etag: eb, ..
                },
            ) => {
                a == b
                    && match (ea, eb) {
                        (Some(x), Some(y)) => x.same_version(y),
                        _ => true,
                    }
            }
            // Unreadable twice alike: nothing seen to change in between.
            (State::Unreadable { etag: ea, why: a }, State::Unreadable { etag: eb, why: b }) => {
                ea == eb && a == b
            }
            _ => false,
        }
    }

    /// The ETag it was read back with, if any.
    fn etag(&self) -> Option<&ETag> {
        match self {
            State::Present { etag, .. } | State::Unreadable { etag, .. } => etag.as_ref(),
            State::Absent => None,
        }
    }

    fn holds(&self, body: &[u8]) -> bool {
        matches!(self, State::Present { body: b, .. } if b.as_ref() == body)
    }

    fn describe(&self) -> String {
        match self {
            State::Absent => "absent".into(),
            State::Unreadable { etag, why } => {
                let etag = etag
                    .as_ref()
                    .map_or("no ETag".into(), |e| format!("ETag {e}"));
                format!("a body GET cannot read whole ({why}), {etag}")
            }
            State::Present { body, etag, .. } => {
                let etag = etag
                    .as_ref()
                    .map_or("no ETag".into(), |e| format!("ETag {e}"));
                format!("body {}, {etag}", preview(body))
            }
        }
    }
}

/// A short, printable view of a body.
fn preview(body: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{text:?}")
    }
}

/// One graded step.
struct Graded {
    verdict: Verdict,
    reason: String,
}

impl Graded {
    fn new(verdict: Verdict, reason: impl Into<String>) -> Self {
        Self {
            verdict,
            reason: reason.into(),
        }
    }
}

/// A step that stopped the scenario before it could be graded.
struct Abort(String);

/// Where a scenario runs: the run's bucket through each endpoint of the
/// target, and whether the target lets scenarios make buckets of their own
/// (versioning scenarios need one).
#[derive(Clone, Copy)]
pub struct Site<'a> {
    /// The bucket through the target's (first) endpoint.
    pub store: &'a Store,
    /// The same bucket through the target's other endpoints, if any.
    pub peers: &'a [Store],
    /// False for a target that names a bucket to work in.
    pub may_create_buckets: bool,
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
        return run_in(&stores, scenario, prefix, started, false).await;
    }
    let judged = |verdict, reason: String| Judgement {
        verdict,
        reason,
        evidence: Vec::new(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    if !site.may_create_buckets {
        return judged(
            Verdict::Unsupported,
            "needs a bucket of its own with versioning enabled; this target names a bucket to work in".into(),
        );
    }
    static VERSIONED: AtomicU32 = AtomicU32::new(0);
    let n = VERSIONED.fetch_add(1, Ordering::SeqCst);
    let bucket = format!("{}-v{n}", site.store.bucket());
    let store = site.store.for_bucket(bucket.clone());
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
            let mut j = run_in(&stores, scenario, prefix, started, true).await;
            if let Some(note) = note {
                j.reason = format!("{} ({note})", j.reason);
            }
            j
        }
        Err((verdict, reason)) => judged(verdict, reason),
    };
    if let Err(e) = store.delete_bucket().await {
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

async fn run_in(
    stores: &[Store],
    scenario: &Scenario,
    prefix: &str,
    started: Instant,
    versioned: bool,
) -> Judgement {
    let store = &stores[0];
    let mut run = Run {
        stores,
        prefix,
        saved: HashMap::new(),
        uploads: HashMap::new(),
        evidence: Vec::new(),
        informational: scenario.informational,
        unreadable_upload: false,
        touched: BTreeSet::new(),
    };
    let mut worst: Option<(usize, Graded)> = None;
    for (index, step) in scenario.steps.iter().enumerate() {
        let graded = match run.step(step).await {
            Ok(Some(g)) => g,
            Ok(None) => continue,
            Err(Abort(why)) => match worst.as_mut() {
                // An earlier step already answered differently from AWS (a
                // refused CreateMultipartUpload, say); that is what made this
                // one impossible, so the earlier verdict stands.
                Some((_, w)) if w.verdict > Verdict::Info => {
                    w.reason.push_str(&format!(
                        "; the scenario stopped at step {}: {why}",
                        index + 1
                    ));
                    break;
                }
                _ => Graded::new(Verdict::Error, why),
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
    let (verdict, mut reason) = match worst {
        Some((index, g)) => {
            let many = scenario.steps.len() > 1;
            let reason = if many {
                format!("step {}: {}", index + 1, g.reason)
            } else {
                g.reason
            };
            (g.verdict, reason)
        }
        None => (
            Verdict::Error,
            "the scenario has no checked step".to_owned(),
        ),
    };
    let mut verdict = verdict;
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
        let e = problems.join("; ");
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
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// A multipart upload a scenario started.
struct OpenUpload {
    id: String,
    /// Parts uploaded so far: number, ETag, bytes.
    parts: Vec<(i32, ETag, Bytes)>,
}

struct Run<'a> {
    /// The bucket through every endpoint, the target's first one first;
    /// racers and workers take turns.
    stores: &'a [Store],
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
                    _ => Err(Abort(
                        "`last-modified`: the object read back before the step had no Last-Modified"
                            .into(),
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
                .map_err(|e| Abort(format!("could not fill in a condition: {e}")))
        };
        Ok(Precondition {
            if_match: render(&conditions.if_match)?,
            if_none_match: render(&conditions.if_none_match)?,
            if_modified_since: date(&conditions.if_modified_since)?,
            if_unmodified_since: date(&conditions.if_unmodified_since)?,
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
                .map_err(|e| Abort(format!("reading the object back failed: {e}")))?;
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
            _ => Err(Abort(format!(
                "reading the object back answered {}",
                out.status_line()
            ))),
        }
    }

    /// The ETag a write answered with; without one, the ETag the object
    /// reads back with (read only then).
    async fn written_etag(&mut self, out: &Outcome, key: &str) -> Result<Option<ETag>, Abort> {
        if let Some(e) = &out.etag {
            return Ok(Some(e.clone()));
        }
        Ok(self.read(key).await?.etag().cloned())
    }

    /// Sends one request of a `Step::Request`. `source` is the full key a
    /// copy reads from.
    async fn send(
        &mut self,
        action: Action,
        key: &str,
        body: Option<&str>,
        source: Option<&str>,
        pre: &Precondition,
    ) -> Result<Outcome, Abort> {
        let upload_id = || {
            self.uploads
                .get(key)
                .map(|u| u.id.clone())
                .ok_or_else(|| Abort(format!("no multipart upload of {key} is open")))
        };
        let res = match action {
            Action::Put => {
                let body = Bytes::from(body.unwrap_or_default().to_owned());
                self.store().put(key, body, pre).await
            }
            Action::Get => self.store().get(key, pre).await,
            Action::Head => self.store().head(key, pre).await,
            Action::Delete => self.store().delete(key, pre).await,
            Action::Copy => {
                self.store()
                    .copy(source.unwrap_or_default(), key, pre)
                    .await
            }
            Action::CreateUpload => self.store().create_upload(key, pre).await,
            Action::UploadPart => {
                let id = upload_id()?;
                let number = self.uploads.get(key).map_or(0, |u| u.parts.len()) as i32 + 1;
                let data = Bytes::from(body.unwrap_or_default().to_owned());
                let out = self
                    .store()
                    .upload_part(key, &id, number, data.clone())
                    .await;
                if let Ok(o) = &out {
                    if let (true, Some(etag), Some(u)) =
                        (o.is_success(), o.etag.clone(), self.uploads.get_mut(key))
                    {
                        u.parts.push((number, etag, data));
                    }
                }
                out
            }
            Action::CompleteUpload => {
                let id = upload_id()?;
                let parts: Vec<(i32, ETag)> = self.uploads[key]
                    .parts
                    .iter()
                    .map(|(n, e, _)| (*n, e.clone()))
                    .collect();
                self.store().complete_upload(key, &id, &parts, pre).await
            }
            Action::Race | Action::CasCounter | Action::DeleteObjects | Action::Aba => {
                unreachable!("not a single-request step")
            }
        };
        let out = res.map_err(|e| Abort(format!("no answer: {}", e.message)))?;
        if action == Action::CreateUpload && out.is_success() {
            match &out.upload_id {
                Some(id) => {
                    self.uploads.insert(
                        key.to_owned(),
                        OpenUpload {
                            id: id.clone(),
                            parts: Vec::new(),
                        },
                    );
                }
                None => {
                    // Started, but its id cannot be read: found and aborted
                    // by listing at the end.
                    self.unreadable_upload = true;
                    self.evidence.push(out.clone());
                    return Err(Abort(format!(
                        "CreateMultipartUpload {key} answered {} without an UploadId the S3 SDK can read (AWS answers <InitiateMultipartUploadResult> with <UploadId>): multipart cannot be tested",
                        out.status_line()
                    )));
                }
            }
        }
        if action == Action::CompleteUpload && out.is_success() {
            self.uploads.remove(key);
        }
        self.evidence.push(out.clone());
        Ok(out)
    }

    /// The bytes a successful write of this step must leave under the key:
    /// the PUT body, the copy source's body, the upload's parts joined.
    async fn new_body(
        &mut self,
        action: Action,
        key: &str,
        body: Option<&str>,
        source: Option<&str>,
    ) -> Result<Option<Bytes>, Abort> {
        Ok(match action {
            Action::Put => Some(Bytes::from(body.unwrap_or_default().to_owned())),
            Action::Copy => match self.read(source.unwrap_or_default()).await? {
                State::Present { body, .. } => Some(body),
                other => {
                    return Err(Abort(format!(
                        "the copy source {} cannot be read: {}",
                        source.unwrap_or_default(),
                        other.describe()
                    )))
                }
            },
            Action::CompleteUpload => {
                let mut all = Vec::new();
                for (_, _, data) in self.uploads.get(key).map_or(&[][..], |u| &u.parts[..]) {
                    all.extend_from_slice(data);
                }
                Some(Bytes::from(all))
            }
            _ => None,
        })
    }

    async fn step(&mut self, step: &Step) -> Result<Option<Graded>, Abort> {
        match step {
            Step::Request {
                action,
                key,
                body,
                conditions,
                save_as,
                expect,
                checked,
                source,
                upload: _,
            } => {
                let key = self.key(key);
                let source = source.as_deref().map(|s| self.key(s));
                let before = if *checked {
                    Some(self.read(&key).await?)
                } else {
                    None
                };
                let new_body = self
                    .new_body(*action, &key, body.as_deref(), source.as_deref())
                    .await?;
                let pre = self.precondition(conditions, &HashMap::new(), before.as_ref())?;
                let out = self
                    .send(*action, &key, body.as_deref(), source.as_deref(), &pre)
                    .await?;
                let graded = match before {
                    None => {
                        if out.status != expect.status {
                            return Err(Abort(format!(
                                "set-up {} {} answered {}, expected {}",
                                action_name(*action),
                                key,
                                out.status_line(),
                                expect.status
                            )));
                        }
                        None
                    }
                    Some(before) => {
                        let after = self.read(&key).await?;
                        let want_etag = match &expect.etag {
                            Some(t) => {
                                Some(ETag::new(t.render(|n| self.lookup(n)).map_err(|e| {
                                    Abort(format!("could not fill in `expect.etag`: {e}"))
                                })?))
                            }
                            None => None,
                        };
                        Some(grade_request(
                            *action,
                            new_body.as_deref(),
                            &pre,
                            expect,
                            want_etag.as_ref(),
                            &out,
                            &before,
                            &after,
                        ))
                    }
                };
                if let Some(name) = save_as {
                    let etag = self.written_etag(&out, &key).await?.ok_or_else(|| {
                        Abort(format!(
                            "{} {key} returned no ETag to save as `{name}`",
                            action_name(*action)
                        ))
                    })?;
                    self.saved.insert(name.clone(), etag);
                }
                Ok(graded)
            }
            Step::DeleteObjects { objects } => Ok(Some(self.delete_objects(objects).await?)),
            Step::Aba { key, body } => {
                let key = self.key(key);
                Ok(Some(self.aba(&key, body).await?))
            }
            Step::CasCounter {
                key,
                workers,
                increments,
            } => {
                let key = self.key(key);
                Ok(Some(self.cas_counter(&key, *workers, *increments).await?))
            }
            Step::Race {
                key,
                racers,
                rounds,
                start,
                conditions,
                winners,
                loser_status,
            } => {
                let mut rounds_seen = Vec::new();
                for round in 1..=*rounds {
                    let key = self.key(&format!("{key}-round-{round}"));
                    rounds_seen.push(
                        self.race_round(&key, round, *racers, *start, conditions)
                            .await?,
                    );
                }
                let mut graded = grade_race(&rounds_seen, *winners, loser_status);
                if self.stores.len() > 1 {
                    graded.reason = format!(
                        "racers spread over {} endpoints: {}",
                        self.stores.len(),
                        graded.reason
                    );
                }
                Ok(Some(graded))
            }
        }
    }

    /// One DeleteObjects with a condition per object: each object must end
    /// as AWS says (deleted, or untouched with the error code), read back.
    async fn delete_objects(&mut self, objects: &[BatchObject]) -> Result<Graded, Abort> {
        let mut sent = Vec::new();
        let mut before = Vec::new();
        for o in objects {
            let key = self.key(&o.key);
            let etag = o
                .if_match
                .as_ref()
                .map(|t| t.render(|n| self.lookup(n)))
                .transpose()
                .map_err(|e| Abort(format!("could not fill in an ETag: {e}")))?;
            before.push(self.read(&key).await?);
            sent.push((key, etag));
        }
        let out = self
            .store()
            .delete_objects(&sent)
            .await
            .map_err(|e| Abort(format!("no answer: {}", e.message)))?;
        self.evidence.push(out.clone());
        let mut after = Vec::new();
        for (key, _) in &sent {
            after.push(self.read(key).await?);
        }
        Ok(grade_delete_objects(objects, &sent, &out, &before, &after))
    }

    /// The ABA property: the same bytes written twice; does the ETag stay?
    /// Then a PUT with the first ETag must agree with the answer: accepted
    /// if the ETag stayed, refused if it changed.
    async fn aba(&mut self, key: &str, body: &str) -> Result<Graded, Abort> {
        let mut etags = Vec::new();
        for _ in 0..2 {
            let out = self
                .send(Action::Put, key, Some(body), None, &Precondition::none())
                .await?;
            if !out.is_success() {
                return Err(Abort(format!(
                    "set-up PUT {key} answered {}",
                    out.status_line()
                )));
            }
            let etag = self
                .written_etag(&out, key)
                .await?
                .ok_or_else(|| Abort(format!("PUT {key} returned no ETag")))?;
            etags.push(etag);
        }
        let kept = etags[0].same_version(&etags[1]);
        let before = self.read(key).await?;
        let pre = Precondition::if_match(&etags[0]);
        let next = format!("{body} (then changed)");
        let out = self.send(Action::Put, key, Some(&next), None, &pre).await?;
        let after = self.read(key).await?;
        let expect = if kept {
            Expect::new(200, None)
        } else {
            Expect::new(412, Some("PreconditionFailed"))
        };
        let g = grade_request(
            Action::Put,
            Some(next.as_bytes()),
            &pre,
            &expect,
            None,
            &out,
            &before,
            &after,
        );
        let property = if kept {
            format!(
                "rewriting identical bytes keeps the ETag ({} both times): a writer holding the ETag from before the rewrite still wins its If-Match (ABA)",
                etags[0]
            )
        } else {
            format!(
                "rewriting identical bytes changes the ETag ({} then {}): an If-Match from before the rewrite is refused",
                etags[0], etags[1]
            )
        };
        Ok(if g.verdict == Verdict::Pass {
            let verdict = if self.informational {
                Verdict::Info
            } else {
                Verdict::Pass
            };
            Graded::new(verdict, property)
        } else {
            Graded::new(g.verdict, format!("{property}; but {}", g.reason))
        })
    }

    /// `workers` read-modify-write loops on one counter under If-Match, until
    /// `increments` increments were acknowledged (bounded in attempts and
    /// time); the counter must then equal the acknowledged increments.
    async fn cas_counter(
        &mut self,
        key: &str,
        workers: u32,
        increments: u32,
    ) -> Result<Graded, Abort> {
        let setup = self
            .send(Action::Put, key, Some("0"), None, &Precondition::none())
            .await?;
        if !setup.is_success() {
            return Err(Abort(format!(
                "set-up PUT {key} answered {}",
                setup.status_line()
            )));
        }
        let done = Arc::new(AtomicU32::new(0));
        let attempts = Arc::new(AtomicU32::new(0));
        let max_attempts = increments * 10 + workers * 4;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut tasks = Vec::new();
        for worker in 0..workers {
            let store = self.stores[worker as usize % self.stores.len()].clone();
            let key = key.to_owned();
            let (done, attempts) = (done.clone(), attempts.clone());
            tasks.push(tokio::spawn(async move {
                let mut seen = WorkerSeen::default();
                while done.load(Ordering::SeqCst) < increments
                    && attempts.fetch_add(1, Ordering::SeqCst) < max_attempts
                    && Instant::now() < deadline
                {
                    let got = match store.get(&key, &Precondition::none()).await {
                        Ok(o) if o.is_success() => o,
                        Ok(o) => {
                            // A store hiccup (a 500 under load): try again,
                            // within the bounds, and report it.
                            seen.odd.push(o);
                            continue;
                        }
                        Err(e) => {
                            seen.errors.push(e.message);
                            break;
                        }
                    };
                    let text = String::from_utf8_lossy(got.body.as_deref().unwrap_or_default())
                        .into_owned();
                    let (Ok(value), Some(etag)) = (text.trim().parse::<u64>(), got.etag.clone())
                    else {
                        seen.errors.push(format!(
                            "the counter read back as {} with ETag {:?}",
                            preview(text.as_bytes()),
                            got.etag
                        ));
                        break;
                    };
                    let next = Bytes::from((value + 1).to_string());
                    match store.put(&key, next, &Precondition::if_match(&etag)).await {
                        Ok(o) if o.is_success() => {
                            seen.acknowledged += 1;
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(o) if o.status == 412 || o.status == 409 => seen.conflicts += 1,
                        Ok(o) => {
                            let refused = is_unsupported_answer(&o);
                            seen.odd.push(o);
                            if refused {
                                break;
                            }
                        }
                        Err(e) => {
                            seen.errors.push(e.message);
                            break;
                        }
                    }
                }
                seen
            }));
        }
        let mut all = WorkerSeen::default();
        for task in tasks {
            let seen = task
                .await
                .map_err(|e| Abort(format!("a counter worker failed: {e}")))?;
            all.acknowledged += seen.acknowledged;
            all.conflicts += seen.conflicts;
            all.odd.extend(seen.odd);
            all.errors.extend(seen.errors);
        }
        if let Some(first) = all.odd.first() {
            self.evidence.push(first.clone());
        }
        let final_value = match self.read(key).await? {
            State::Present { body, .. } => {
                String::from_utf8_lossy(&body).trim().parse::<u64>().ok()
            }
            State::Absent | State::Unreadable { .. } => None,
        };
        Ok(grade_counter(
            &all,
            final_value,
            workers,
            increments,
            attempts.load(Ordering::SeqCst).min(max_attempts),
        ))
    }

    async fn race_round(
        &mut self,
        key: &str,
        round: u32,
        racers: u32,
        start: RaceStart,
        conditions: &Conditions,
    ) -> Result<RoundSeen, Abort> {
        let mut extra = HashMap::new();
        let base = match start {
            RaceStart::Absent => State::Absent,
            RaceStart::Existing => {
                let body = format!("base of round {round}");
                let out = self
                    .send(Action::Put, key, Some(&body), None, &Precondition::none())
                    .await?;
                if !out.is_success() {
                    return Err(Abort(format!(
                        "set-up PUT {key} answered {}",
                        out.status_line()
                    )));
                }
                let state = self.read(key).await?;
                let etag = out
                    .etag
                    .clone()
                    .or_else(|| state.etag().cloned())
                    .ok_or_else(|| Abort(format!("set-up PUT {key} returned no ETag")))?;
                extra.insert("base", etag);
                state
            }
        };
        let pre = self.precondition(conditions, &extra, None)?;
        let barrier = Arc::new(Barrier::new(racers as usize));
        let mut tasks = Vec::new();
        for racer in 0..racers {
            let store = self.stores[racer as usize % self.stores.len()].clone();
            let key = key.to_owned();
            let pre = pre.clone();
            let barrier = barrier.clone();
            let body = format!("racer {racer} of round {round}");
            tasks.push(tokio::spawn(async move {
                // Open (and keep in the pool) a connection before the barrier,
                // so the writes leave together instead of queueing on connects.
                let _ = store.head(&key, &Precondition::none()).await;
                barrier.wait().await;
                let res = store.put(&key, Bytes::from(body.clone()), &pre).await;
                (body, res)
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            let (body, res) = task
                .await
                .map_err(|e| Abort(format!("a racer task failed: {e}")))?;
            results.push((body, res.map_err(|e| e.message)));
        }
        let after = self.read(key).await?;
        for (_, res) in results.iter().take(1) {
            if let Ok(out) = res {
                self.evidence.push(out.clone());
            }
        }
        Ok(RoundSeen {
            round,
            base,
            results,
            after,
        })
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Put => "PUT",
        Action::Get => "GET",
        Action::Head => "HEAD",
        Action::Delete => "DELETE",
        Action::Race => "race",
        Action::CasCounter => "cas_counter",
        Action::Copy => "COPY",
        Action::CreateUpload => "CreateMultipartUpload",
        Action::UploadPart => "UploadPart",
        Action::CompleteUpload => "CompleteMultipartUpload",
        Action::DeleteObjects => "DeleteObjects",
        Action::Aba => "aba",
    }
}

fn expected_text(expect: &Expect) -> String {
    let mut text = match &expect.code {
        Some(code) => format!("{} {code}", expect.status),
        None => expect.status.to_string(),
    };
    for s in &expect.or_status {
        text.push_str(&format!(" or {s}"));
    }
    text
}

/// Whether the answer is an explicit refusal of the request as such (the
/// feature is not there), rather than a verdict on the condition.
fn is_unsupported_answer(out: &Outcome) -> bool {
    out.status == 501
        || (out.status == 400
            && !matches!(
                out.code.as_deref(),
                Some("PreconditionFailed") | Some("NoSuchKey")
            ))
}

/// Grades one checked request from what was sent, answered, and read back.
#[allow(clippy::too_many_arguments)]
fn grade_request(
    action: Action,
    new_body: Option<&[u8]>,
    pre: &Precondition,
    expect: &Expect,
    want_etag: Option<&ETag>,
    out: &Outcome,
    before: &State,
    after: &State,
) -> Graded {
    let request = format!("{} {pre}", action_name(action));
    let changed = !before.same_as(after);
    let expected_applied = (200..300).contains(&expect.status);
    let writes = matches!(
        action,
        Action::Put | Action::Delete | Action::Copy | Action::CompleteUpload
    );
    let expected = if !writes {
        format!("{}, object unchanged", expected_text(expect))
    } else if expected_applied {
        let effect = match action {
            Action::Delete => "object deleted",
            Action::Copy => "object holds the source's body",
            Action::CompleteUpload => "object holds the uploaded parts",
            _ => "object holds the new body",
        };
        format!("{}, {effect}", expected_text(expect))
    } else {
        format!("{}, object unchanged", expected_text(expect))
    };
    let actual_state = if changed {
        format!(
            "object changed from {} to {}",
            before.describe(),
            after.describe()
        )
    } else {
        format!("object unchanged ({})", before.describe())
    };
    let line = |what: &str| {
        format!(
            "{request}: Expected: {expected}; Actual: {}, {actual_state}{what}",
            out.status_line()
        )
    };

    // A read must never change anything.
    if !writes {
        if changed {
            return Graded::new(Verdict::Unsafe, line(""));
        }
        if out.status == expect.status
            && (expect.code.is_none() || out.code.is_none() || out.code == expect.code)
        {
            if let Some(want) = want_etag {
                match &out.etag {
                    Some(got) if got.same_version(want) => {}
                    Some(got) => {
                        return Graded::new(
                            Verdict::Deviates,
                            line(&format!(": the answer's ETag is {got}, expected {want}")),
                        )
                    }
                    None => {
                        return Graded::new(
                            Verdict::Deviates,
                            line(&format!(": the answer carries no ETag (expected {want})")),
                        )
                    }
                }
            }
            return Graded::new(Verdict::Pass, line(""));
        }
        if is_unsupported_answer(out) {
            return Graded::new(Verdict::Unsupported, line(""));
        }
        return Graded::new(Verdict::Deviates, line(""));
    }

    let landed = match action {
        Action::Delete => *after == State::Absent,
        _ => after.holds(new_body.unwrap_or_default()),
    };
    if expected_applied {
        if out.is_success() {
            if !landed {
                return Graded::new(
                    Verdict::Unsafe,
                    line(": the write was acknowledged but is not there"),
                );
            }
            if action != Action::Delete {
                let stored = after.etag();
                match (&out.etag, stored) {
                    (None, _) => {
                        return Graded::new(Verdict::Deviates, line(": no ETag in the answer"))
                    }
                    (Some(sent), Some(stored)) if !sent.same_version(stored) => {
                        return Graded::new(
                            Verdict::Deviates,
                            line(&format!(
                                ": the answer's ETag {sent} is not the stored object's"
                            )),
                        )
                    }
                    _ => {}
                }
            }
            return Graded::new(Verdict::Pass, line(""));
        }
        if changed {
            return Graded::new(Verdict::Unsafe, line(": refused, yet the object changed"));
        }
        if is_unsupported_answer(out) {
            return Graded::new(Verdict::Unsupported, line(""));
        }
        if out.status >= 500 {
            return Graded::new(Verdict::Error, line(": server error"));
        }
        return Graded::new(Verdict::Deviates, line(": a write AWS accepts was refused"));
    }

    // AWS refuses this write.
    if out.is_success() && action == Action::Delete && *before == State::Absent && !changed {
        // Nothing was there to delete: a wrong answer, but nothing lost.
        return Graded::new(
            Verdict::Deviates,
            line(": a delete of a missing key was acknowledged"),
        );
    }
    if out.is_success() {
        let what = if changed {
            ": the condition was ignored"
        } else {
            ": the write was acknowledged although AWS refuses it"
        };
        return Graded::new(Verdict::Unsafe, line(what));
    }
    if changed {
        return Graded::new(Verdict::Unsafe, line(": refused, yet the object changed"));
    }
    let code_ok = expect.code.is_none() || out.code.is_none() || out.code == expect.code;
    if (out.status == expect.status && code_ok) || expect.or_status.contains(&out.status) {
        return Graded::new(Verdict::Pass, line(""));
    }
    if is_unsupported_answer(out) {
        return Graded::new(Verdict::Unsupported, line(""));
    }
    if out.status >= 500 {
        return Graded::new(Verdict::Error, line(": server error"));
    }
    Graded::new(Verdict::Deviates, line(""))
}

/// Grades a DeleteObjects: every object must end as AWS says, read back —
/// deleted, or untouched and listed under `<Error>` with the expected code.
fn grade_delete_objects(
    objects: &[BatchObject],
    sent: &[(String, Option<String>)],
    out: &Outcome,
    before: &[State],
    after: &[State],
) -> Graded {
    let expected: Vec<String> = objects
        .iter()
        .map(|o| format!("{} {}", o.key, o.error.as_deref().unwrap_or("deleted")))
        .collect();
    let mut verdict = Verdict::Pass;
    let mut actual = Vec::new();
    let mut notes = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let key = &sent[i].0;
        let item = out.items.iter().find(|it| &it.key == key);
        let listed = match item {
            None => "not listed".to_owned(),
            Some(it) => it.error.clone().unwrap_or_else(|| "deleted".into()),
        };
        let (b, a) = (&before[i], &after[i]);
        let state = if b.same_as(a) {
            "kept"
        } else if *a == State::Absent {
            "gone"
        } else {
            "changed"
        };
        actual.push(format!("{} {listed} ({state})", o.key));
        let mut note = |v: Verdict, text: String| {
            verdict = verdict.max(v);
            notes.push(text);
        };
        match &o.error {
            Some(code) => {
                if state != "kept" {
                    note(
                        Verdict::Unsafe,
                        format!("{}: deleted although its ETag condition fails", o.key),
                    );
                } else if listed != *code {
                    note(
                        Verdict::Deviates,
                        format!("{}: listed as {listed}, expected {code}", o.key),
                    );
                }
            }
            None => {
                if state != "gone" && listed == "deleted" {
                    note(
                        Verdict::Unsafe,
                        format!("{}: listed as deleted, yet it is still there", o.key),
                    );
                } else if state != "gone" {
                    note(
                        Verdict::Deviates,
                        format!(
                            "{}: not deleted ({listed}) although its ETag is current",
                            o.key
                        ),
                    );
                } else if listed != "deleted" {
                    let said = if item.is_none() {
                        "the answer does not list it".to_owned()
                    } else {
                        format!("the answer lists it under <Error> as {listed}")
                    };
                    note(Verdict::Deviates, format!("{}: deleted, but {said}", o.key));
                }
            }
        }
    }
    if !out.is_success() && verdict < Verdict::Unsafe {
        verdict = if is_unsupported_answer(out) {
            Verdict::Unsupported
        } else if out.status >= 500 {
            Verdict::Error
        } else {
            Verdict::Deviates
        };
    }
    let mut reason = format!(
        "DeleteObjects with per-object ETags: Expected: 200, {}; Actual: {}, {}",
        expected.join(", "),
        out.status_line(),
        actual.join(", ")
    );
    for n in notes {
        reason.push_str("; ");
        reason.push_str(&n);
    }
    Graded::new(verdict, reason)
}

/// What the workers of a CAS counter saw.
#[derive(Default)]
struct WorkerSeen {
    /// Increments the store acknowledged (2xx).
    acknowledged: u64,
    /// 412/409 answers: another worker got there first.
    conflicts: u64,
    /// Any other answer: to a conditional PUT, or a failed GET.
    odd: Vec<Outcome>,
    /// Requests that got no usable answer.
    errors: Vec<String>,
}

/// Grades a CAS counter: the final value must equal the increments the
/// store acknowledged, or updates were lost.
fn grade_counter(
    seen: &WorkerSeen,
    final_value: Option<u64>,
    workers: u32,
    increments: u32,
    attempts: u32,
) -> Graded {
    let expected = format!(
        "{increments} increments by {workers} workers (If-Match, retry on 412/409), final value = increments acknowledged"
    );
    let actual = format!(
        "{} acknowledged, {} conflicts in {attempts} attempts, final value {}",
        seen.acknowledged,
        seen.conflicts,
        final_value.map_or("unreadable".to_owned(), |v| v.to_string())
    );
    let line = |what: &str| format!("Expected: {expected}; Actual: {actual}{what}");
    match final_value {
        Some(v) if v < seen.acknowledged => {
            return Graded::new(
                Verdict::Unsafe,
                line(&format!(
                    ": {} acknowledged updates lost",
                    seen.acknowledged - v
                )),
            )
        }
        Some(v) if v > seen.acknowledged => {
            return Graded::new(
                Verdict::Unsafe,
                line(&format!(
                    ": {} refused updates landed",
                    v - seen.acknowledged
                )),
            )
        }
        None if seen.errors.is_empty() => {
            return Graded::new(
                Verdict::Unsafe,
                line(": the counter is gone or not a number"),
            )
        }
        _ => {}
    }
    if let Some(first) = seen.errors.first() {
        return Graded::new(
            Verdict::Error,
            line(&format!(
                ": {} requests got no usable answer ({first})",
                seen.errors.len()
            )),
        );
    }
    let odd: Vec<&Outcome> = seen.odd.iter().collect();
    if seen.acknowledged == 0 {
        if !odd.is_empty() && odd.iter().all(|o| is_unsupported_answer(o)) {
            return Graded::new(Verdict::Unsupported, line(&format!(": {}", tally(&odd))));
        }
        return Graded::new(Verdict::Deviates, line(": no increment succeeded"));
    }
    if !odd.is_empty() {
        return Graded::new(
            Verdict::Deviates,
            line(&format!(": other answers {}", tally(&odd))),
        );
    }
    if seen.acknowledged < u64::from(increments) {
        return Graded::new(
            Verdict::Deviates,
            line(": the workers gave up before every increment succeeded"),
        );
    }
    Graded::new(Verdict::Pass, line(""))
}

/// What one race round saw.
struct RoundSeen {
    round: u32,
    base: State,
    /// Each racer's body and answer (or transport error).
    results: Vec<(String, Result<Outcome, String>)>,
    after: State,
}

/// Grades a race from its rounds.
fn grade_race(rounds: &[RoundSeen], allowed_winners: u32, loser_status: &[u16]) -> Graded {
    let racers = rounds.first().map_or(0, |r| r.results.len());
    let statuses: Vec<String> = loser_status.iter().map(u16::to_string).collect();
    let expected = format!(
        "{allowed_winners} winner per round of {racers}, losers {}, object holds the winner's body",
        statuses.join("/")
    );
    let mut verdict = Verdict::Pass;
    let mut notes: Vec<(u32, String)> = Vec::new();
    let mut per_round = Vec::new();
    let mut overrun = 0;
    for r in rounds {
        let winners: Vec<&str> = r
            .results
            .iter()
            .filter(|(_, res)| res.as_ref().is_ok_and(Outcome::is_success))
            .map(|(body, _)| body.as_str())
            .collect();
        per_round.push(winners.len().to_string());
        let mut round_verdict = Verdict::Pass;
        if winners.len() > allowed_winners as usize {
            // The per-round winner counts in the reason already say how many.
            round_verdict = Verdict::Unsafe;
            overrun += 1;
        }
        let mut note = |v: Verdict, text: String| {
            round_verdict = round_verdict.max(v);
            notes.push((r.round, text));
        };
        let holder = r
            .results
            .iter()
            .find(|(body, _)| r.after.holds(body.as_bytes()));
        match (winners.len(), holder) {
            (0, Some((body, _))) => note(
                Verdict::Unsafe,
                format!(
                    "no racer won, yet the object holds {}",
                    preview(body.as_bytes())
                ),
            ),
            (0, None) if !r.after.same_as(&r.base) => note(
                Verdict::Unsafe,
                format!(
                    "no racer won, yet the object changed to {}",
                    r.after.describe()
                ),
            ),
            (n, Some((body, _))) if n > 0 && !winners.contains(&body.as_str()) => note(
                Verdict::Unsafe,
                format!(
                    "the object holds a loser's body {}",
                    preview(body.as_bytes())
                ),
            ),
            (n, None) if n > 0 => note(
                Verdict::Unsafe,
                format!("no winner's body is stored: {}", r.after.describe()),
            ),
            _ => {}
        }
        let errors: Vec<&String> = r
            .results
            .iter()
            .filter_map(|(_, res)| res.as_ref().err())
            .collect();
        if let Some(first) = errors.first() {
            note(
                Verdict::Error,
                format!("{} racers got no answer ({first})", errors.len()),
            );
        }
        let losers: Vec<&Outcome> = r
            .results
            .iter()
            .filter_map(|(_, res)| res.as_ref().ok())
            .filter(|o| !o.is_success())
            .collect();
        if winners.is_empty() && errors.is_empty() {
            if losers.iter().all(|o| is_unsupported_answer(o)) {
                note(
                    Verdict::Unsupported,
                    format!("every racer was refused: {}", tally(&losers)),
                );
            } else {
                note(
                    Verdict::Deviates,
                    format!("no racer won: {}", tally(&losers)),
                );
            }
        } else {
            let odd: Vec<&Outcome> = losers
                .iter()
                .copied()
                .filter(|o| !loser_status.contains(&o.status))
                .collect();
            if !odd.is_empty() {
                note(
                    Verdict::Deviates,
                    format!("losers answered {}", tally(&odd)),
                );
            }
        }
        verdict = verdict.max(round_verdict);
    }
    let mut reason = format!(
        "Expected: {expected}; Actual: winners per round [{}]",
        per_round.join(", ")
    );
    if overrun > 0 {
        reason.push_str(&format!(
            "; more than {allowed_winners} winner in {overrun} of {} rounds",
            rounds.len()
        ));
    }
    // The same observation in several rounds is said once, with its rounds.
    let mut grouped: Vec<(Vec<u32>, &str)> = Vec::new();
    for (round, text) in &notes {
        match grouped.iter_mut().find(|(_, t)| t == text) {
            Some((rounds, _)) => rounds.push(*round),
            None => grouped.push((vec![*round], text)),
        }
    }
    for (seen_in, text) in grouped {
        let which = if seen_in.len() == rounds.len() && rounds.len() > 1 {
            "every round".to_owned()
        } else if seen_in.len() == 1 {
            format!("round {}", seen_in[0])
        } else {
            let list: Vec<String> = seen_in.iter().map(u32::to_string).collect();
            format!("rounds {}", list.join(", "))
        };
        reason.push_str(&format!("; {which}: {text}"));
    }
    Graded::new(verdict, reason)
}

/// `12× PUT 412 PreconditionFailed, 3× PUT 409 ConditionalRequestConflict`.
fn tally(outcomes: &[&Outcome]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for o in outcomes {
        let line = format!("{} {}", o.operation.method(), o.status_line());
        match counts.iter_mut().find(|(l, _)| *l == line) {
            Some((_, n)) => *n += 1,
            None => counts.push((line, 1)),
        }
    }
    counts
        .iter()
        .map(|(l, n)| format!("{n}× {l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Operation;

    fn out(status: u16, code: Option<&str>, etag: Option<&str>) -> Outcome {
        Outcome {
            operation: Operation::PutObject,
            method: "PUT".into(),
            path: "/b/k".into(),
            copy_source: None,
            sent: None,
            received: None,
            key: "k".into(),
            precondition: Precondition::create_only(),
            status,
            code: code.map(Into::into),
            etag: etag.map(ETag::new),
            last_modified: None,
            body: None,
            body_error: None,
            upload_id: None,
            items: Vec::new(),
        }
    }

    fn present(body: &str, etag: &str) -> State {
        State::Present {
            body: Bytes::from(body.to_owned()),
            etag: Some(ETag::new(etag)),
            last_modified: None,
        }
    }

    fn refused_412() -> Expect {
        Expect::new(412, Some("PreconditionFailed"))
    }

    #[test]
    fn a_refusal_that_changed_the_bytes_is_unsafe() {
        let g = grade_request(
            Action::Put,
            Some(b"new".as_slice()),
            &Precondition::create_only(),
            &refused_412(),
            None,
            &out(412, Some("PreconditionFailed"), None),
            &present("old", "\"a\""),
            &present("new", "\"b\""),
        );
        assert_eq!(g.verdict, Verdict::Unsafe, "{}", g.reason);
        assert!(
            g.reason.contains("refused, yet the object changed"),
            "{}",
            g.reason
        );
    }

    #[test]
    fn an_acknowledged_write_that_is_not_there_is_unsafe() {
        let g = grade_request(
            Action::Put,
            Some(b"new".as_slice()),
            &Precondition::create_only(),
            &Expect::new(200, None),
            None,
            &out(200, None, Some("\"b\"")),
            &State::Absent,
            &State::Absent,
        );
        assert_eq!(g.verdict, Verdict::Unsafe, "{}", g.reason);
    }

    #[test]
    fn another_refusal_status_with_nothing_changed_deviates() {
        let g = grade_request(
            Action::Put,
            Some(b"new".as_slice()),
            &Precondition::create_only(),
            &Expect::new(404, Some("NoSuchKey")),
            None,
            &out(412, Some("PreconditionFailed"), None),
            &State::Absent,
            &State::Absent,
        );
        assert_eq!(g.verdict, Verdict::Deviates, "{}", g.reason);
        assert!(g.reason.contains("Expected: 404 NoSuchKey"), "{}", g.reason);
        assert!(
            g.reason.contains("Actual: 412 PreconditionFailed"),
            "{}",
            g.reason
        );
    }

    #[test]
    fn not_implemented_with_nothing_changed_is_unsupported() {
        let g = grade_request(
            Action::Put,
            Some(b"new".as_slice()),
            &Precondition::create_only(),
            &refused_412(),
            None,
            &out(501, Some("NotImplemented"), None),
            &present("old", "\"a\""),
            &present("old", "\"a\""),
        );
        assert_eq!(g.verdict, Verdict::Unsupported, "{}", g.reason);
    }

    #[test]
    fn a_missing_etag_on_success_deviates() {
        let g = grade_request(
            Action::Put,
            Some(b"new".as_slice()),
            &Precondition::create_only(),
            &Expect::new(200, None),
            None,
            &out(200, None, None),
            &State::Absent,
            &present("new", "\"b\""),
        );
        assert_eq!(g.verdict, Verdict::Deviates, "{}", g.reason);
    }

    #[test]
    fn a_refusal_that_left_an_unreadable_body_is_unsafe() {
        let before = present("old", "\"a\"");
        let after = State::Unreadable {
            etag: Some(ETag::new("\"a\"")),
            why: "streaming error".into(),
        };
        let g = grade_request(
            Action::Copy,
            Some(b"source".as_slice()),
            &Precondition::create_only(),
            &refused_412(),
            None,
            &out(412, Some("PreconditionFailed"), None),
            &before,
            &after,
        );
        assert_eq!(g.verdict, Verdict::Unsafe, "{}", g.reason);
        assert!(g.reason.contains("cannot read whole"), "{}", g.reason);
        // Read twice alike, an unreadable object has not changed.
        assert!(after.same_as(&after.clone()));
    }

    #[test]
    fn delete_objects_is_graded_per_object_from_the_read_back() {
        use crate::catalog::{BatchObject, Template};
        use crate::store::BatchItem;
        let objects = vec![
            BatchObject {
                key: "cur".into(),
                if_match: Some(Template("${c}".into())),
                error: None,
            },
            BatchObject {
                key: "stale".into(),
                if_match: Some(Template("${s}".into())),
                error: Some("PreconditionFailed".into()),
            },
        ];
        let sent = vec![
            ("p/cur".to_owned(), Some("\"c\"".to_owned())),
            ("p/stale".to_owned(), Some("\"s\"".to_owned())),
        ];
        let item = |key: &str, error: Option<&str>| BatchItem {
            key: key.into(),
            if_match: None,
            error: error.map(Into::into),
        };
        let mut answer = out(200, None, None);
        answer.items = vec![
            item("p/cur", None),
            item("p/stale", Some("PreconditionFailed")),
        ];
        let before = [present("c", "\"c\""), present("s2", "\"s2\"")];
        let good = [State::Absent, present("s2", "\"s2\"")];
        let g = grade_delete_objects(&objects, &sent, &answer, &before, &good);
        assert_eq!(g.verdict, Verdict::Pass, "{}", g.reason);
        // The stale object gone: unsafe, whatever the answer said.
        let lost = [State::Absent, State::Absent];
        let g = grade_delete_objects(&objects, &sent, &answer, &before, &lost);
        assert_eq!(g.verdict, Verdict::Unsafe, "{}", g.reason);
        assert!(g.reason.contains("stale: deleted although"), "{}", g.reason);
        // Nothing deleted and both under <Error>: safe, but the current one
        // should have gone.
        answer.items = vec![
            item("p/cur", Some("PreconditionFailed")),
            item("p/stale", Some("PreconditionFailed")),
        ];
        let g = grade_delete_objects(&objects, &sent, &answer, &before, &before);
        assert_eq!(g.verdict, Verdict::Deviates, "{}", g.reason);
    }

    fn round(winners: &[usize], holder: Option<usize>, loser: u16) -> RoundSeen {
        let results = (0..4)
            .map(|i| {
                let body = format!("racer {i}");
                let o = if winners.contains(&i) {
                    out(200, None, Some("\"e\""))
                } else {
                    out(loser, None, None)
                };
                (body, Ok(o))
            })
            .collect();
        let after = holder.map_or(State::Absent, |i| present(&format!("racer {i}"), "\"e\""));
        RoundSeen {
            round: 1,
            base: State::Absent,
            results,
            after,
        }
    }

    #[test]
    fn races_are_graded_on_winners_and_the_stored_body() {
        let g = grade_race(&[round(&[2], Some(2), 412)], 1, &[412, 409]);
        assert_eq!(g.verdict, Verdict::Pass, "{}", g.reason);
        let g = grade_race(&[round(&[1, 2], Some(2), 412)], 1, &[412, 409]);
        assert_eq!(g.verdict, Verdict::Unsafe, "{}", g.reason);
        assert!(g.reason.contains("winners per round [2]"), "{}", g.reason);
        assert!(
            g.reason.contains("more than 1 winner in 1 of 1 rounds"),
            "{}",
            g.reason
        );
        let g = grade_race(&[round(&[1], Some(3), 412)], 1, &[412, 409]);
        assert_eq!(g.verdict, Verdict::Unsafe, "{}", g.reason);
        assert!(g.reason.contains("loser's body"), "{}", g.reason);
        let g = grade_race(&[round(&[1], Some(1), 500)], 1, &[412, 409]);
        assert_eq!(g.verdict, Verdict::Deviates, "{}", g.reason);
        let g = grade_race(&[round(&[], None, 501)], 1, &[412, 409]);
        assert_eq!(g.verdict, Verdict::Unsupported, "{}", g.reason);
        let g = grade_race(
            &[round(&[], None, 412), round(&[], None, 412)],
            1,
            &[412, 409],
        );
        assert_eq!(g.verdict, Verdict::Deviates, "{}", g.reason);
        assert!(
            g.reason
                .ends_with("; every round: no racer won: 4× PUT 412"),
            "{}",
            g.reason
        );
    }
}
