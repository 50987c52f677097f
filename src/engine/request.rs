//! The single-request steps (PUT, GET, HEAD, DELETE, COPY and the multipart
//! steps), one DeleteObjects, and the ABA property: sent, read back until
//! the store agrees with what was acknowledged, and graded.

use super::grade::NoAnswer;
use std::collections::HashMap;

use bytes::Bytes;

use crate::catalog::{Action, BatchObject, Expect, Step};
use crate::model::Verdict;
use crate::model::{ETag, Outcome, Precondition};

use super::grade::{
    action_name, grade_delete_objects, grade_request, After, Answer, Graded, RequestCheck,
};
use super::state::{Expected, Settled, State};
use super::{abort, Abort, OpenUpload, Run};

impl Run<'_> {
    /// Sends one request of a `Step::Request`; `Ok(Err(why))` when no
    /// answer came. `source` is the full key a copy reads from.
    async fn send(
        &mut self,
        action: Action,
        key: &str,
        body: Option<&str>,
        source: Option<&str>,
        pre: &Precondition,
    ) -> Result<Result<Outcome, NoAnswer>, Abort> {
        let upload_id = || {
            self.uploads
                .get(key)
                .map(|u| u.id.clone())
                .ok_or_else(|| abort(format!("no multipart upload of {key} is open")))
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
        let out = match res {
            Ok(out) => out,
            Err(e) if e.failure.target_gone() => return Err(super::gone(e.message)),
            Err(e) => {
                if action == Action::CreateUpload {
                    // It may have started an upload: found by listing.
                    self.unreadable_upload = true;
                }
                return Ok(Err(NoAnswer(e.message)));
            }
        };
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
                    return Err(abort(format!(
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
        Ok(Ok(out))
    }

    /// What a successful write of this step leaves under the key: the PUT
    /// body, the copy source's body (as the scenario wrote it, not as the
    /// store reads it back), the upload's parts joined, absent for a
    /// delete; `None` for reads.
    async fn new_state(
        &mut self,
        action: Action,
        key: &str,
        body: Option<&str>,
        source: Option<&str>,
    ) -> Result<Option<Expected>, Abort> {
        Ok(match action {
            Action::Put => Some(Expected::Body(Bytes::from(
                body.unwrap_or_default().to_owned(),
            ))),
            Action::Delete => Some(Expected::Absent),
            Action::Copy => {
                let source = source.unwrap_or_default();
                match self.model(source) {
                    Expected::Body(b) => Some(Expected::Body(b)),
                    _ => match self.read_expected(source).await? {
                        State::Present { body, .. } => Some(Expected::Body(body)),
                        other => {
                            return Err(abort(format!(
                                "the copy source {source} cannot be read: {}",
                                other.describe()
                            )))
                        }
                    },
                }
            }
            Action::CompleteUpload => {
                let mut all = Vec::new();
                for (_, _, data) in self.uploads.get(key).map_or(&[][..], |u| &u.parts[..]) {
                    all.extend_from_slice(data);
                }
                Some(Expected::Body(Bytes::from(all)))
            }
            _ => None,
        })
    }

    /// The ETag a write answered with; without one, the ETag the object
    /// reads back with (read only then, once it shows what was written).
    async fn written_etag(&mut self, out: &Outcome, key: &str) -> Result<Option<ETag>, Abort> {
        if let Some(e) = &out.etag {
            return Ok(Some(e.clone()));
        }
        Ok(self.read_expected(key).await?.etag().cloned())
    }

    /// Reads `key` back after a write answered `answer`: until it holds
    /// `new` when the write was acknowledged; otherwise once, and again
    /// after the target's read lag when it looked unchanged.
    async fn after_write(
        &mut self,
        key: &str,
        answer: &Result<Outcome, NoAnswer>,
        new: Option<&Expected>,
        before: &State,
    ) -> Result<After, Abort> {
        if let (Answer::Acknowledged(_), Some(new)) = (Answer::of(answer), new) {
            let settled = self.read_until(key, |s| new.matches(s)).await?;
            return Ok(After {
                read: settled,
                changed_later: None,
            });
        }
        let state = self.read(key).await?;
        if new.is_some() && state.same_as(before) {
            if let Some((later, wait)) = self.confirm_unchanged(key, &state).await? {
                return Ok(After {
                    read: Settled::at_once(later),
                    changed_later: Some(wait),
                });
            }
        }
        Ok(After::at_once(state))
    }

    pub(super) async fn step(&mut self, step: &Step) -> Result<Option<Graded>, Abort> {
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
                let request = Request {
                    action: *action,
                    key: &key,
                    body: body.as_deref(),
                    source: source.as_deref(),
                    expect,
                };
                let (out, graded) = if *checked {
                    let (out, graded) = self
                        .checked(&request, |run, before| {
                            run.precondition(conditions, &HashMap::new(), before)
                        })
                        .await?;
                    (out, Some(graded))
                } else {
                    let pre = self.precondition(conditions, &HashMap::new(), None)?;
                    (self.set_up(&request, &pre).await?, None)
                };
                if let Some(name) = save_as {
                    let out = out.map_err(|e| {
                        abort(format!(
                            "{} {key} went unanswered, so its outcome is unknown and there is no ETag to save as `{name}`: {e}",
                            action_name(*action)
                        ))
                    })?;
                    let etag = self.written_etag(&out, &key).await?.ok_or_else(|| {
                        abort(format!(
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
            Step::CasCounter(counter) => Ok(Some(self.cas_counter(counter).await?)),
            Step::Race(race) => Ok(Some(self.race(race).await?)),
        }
    }

    /// A set-up request: it must be answered as expected; a write it makes
    /// becomes what its key must hold.
    async fn set_up(
        &mut self,
        r: &Request<'_>,
        pre: &Precondition,
    ) -> Result<Result<Outcome, NoAnswer>, Abort> {
        let new = self.new_state(r.action, r.key, r.body, r.source).await?;
        let out = self.send(r.action, r.key, r.body, r.source, pre).await?;
        match &out {
            Ok(o) if o.status == r.expect.status => {
                if let (true, Some(new)) = (o.is_success(), new) {
                    self.expected.insert(r.key.to_owned(), new);
                }
            }
            Ok(o) => {
                return Err(abort(format!(
                    "set-up {} {} answered {}, expected {}",
                    action_name(r.action),
                    r.key,
                    o.status_line(),
                    r.expect.status
                )))
            }
            Err(e) => {
                return Err(abort(format!(
                    "set-up {} {} got no answer: {e}",
                    action_name(r.action),
                    r.key
                )))
            }
        }
        Ok(out)
    }

    /// A checked request: the key read until it holds what the earlier
    /// writes left, the request sent, the key read back, the step graded;
    /// what was read back becomes what the key holds.
    async fn checked(
        &mut self,
        r: &Request<'_>,
        precondition: impl FnOnce(&Self, Option<&State>) -> Result<Precondition, Abort>,
    ) -> Result<(Result<Outcome, NoAnswer>, Graded), Abort> {
        let before = self.read_expected(r.key).await?;
        let new = self.new_state(r.action, r.key, r.body, r.source).await?;
        let pre = precondition(self, Some(&before))?;
        let out = self.send(r.action, r.key, r.body, r.source, &pre).await?;
        let after = self.after_write(r.key, &out, new.as_ref(), &before).await?;
        let want_etag = match &r.expect.etag {
            Some(t) => {
                Some(ETag::new(t.render(|n| self.lookup(n)).map_err(|e| {
                    abort(format!("could not fill in `expect.etag`: {e}"))
                })?))
            }
            None => None,
        };
        let graded = grade_request(&RequestCheck {
            action: r.action,
            new: new.as_ref(),
            pre: &pre,
            expect: r.expect,
            want_etag: want_etag.as_ref(),
            answer: &out,
            before: &before,
            after: &after,
        });
        self.expected
            .insert(r.key.to_owned(), Expected::of(&after.read.state));
        Ok((out, graded))
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
                .map_err(|e| abort(format!("could not fill in an ETag: {e}")))?;
            before.push(self.read_expected(&key).await?);
            sent.push((key, etag));
        }
        let answer = match self.store().delete_objects(&sent).await {
            Ok(out) => {
                self.evidence.push(out.clone());
                Ok(out)
            }
            Err(e) => Err(NoAnswer(e.message)),
        };
        let mut after = Vec::new();
        for (key, _) in &sent {
            // Read until it shows what the answer says: gone if listed as
            // deleted, else as it was.
            let deleted = answer.as_ref().is_ok_and(|o| {
                o.is_success()
                    && o.items
                        .iter()
                        .any(|it| it.key == *key && it.error.is_none())
            });
            let settled = if deleted {
                self.read_until(key, |s| *s == State::Absent).await?
            } else {
                let state = self.read(key).await?;
                match self.confirm_unchanged(key, &state).await? {
                    Some((later, _)) => Settled::at_once(later),
                    None => Settled::at_once(state),
                }
            };
            self.expected
                .insert(key.clone(), Expected::of(&settled.state));
            after.push(settled);
        }
        Ok(grade_delete_objects(
            objects, &sent, &answer, &before, &after,
        ))
    }

    /// The ABA property: the same bytes written twice; does the ETag stay?
    /// Then a PUT with the first ETag must agree with the answer: accepted
    /// if the ETag stayed, refused if it changed.
    async fn aba(&mut self, key: &str, body: &str) -> Result<Graded, Abort> {
        let mut etags = Vec::new();
        let setup = Expect::new(200, None);
        for _ in 0..2 {
            let r = Request {
                action: Action::Put,
                key,
                body: Some(body),
                source: None,
                expect: &setup,
            };
            let out = match self.set_up(&r, &Precondition::none()).await? {
                Ok(out) => out,
                Err(e) => return Err(abort(format!("set-up PUT {key} got no answer: {e}"))),
            };
            let etag = self
                .written_etag(&out, key)
                .await?
                .ok_or_else(|| abort(format!("PUT {key} returned no ETag")))?;
            etags.push(etag);
        }
        let kept = etags[0].same_version(&etags[1]);
        let next = format!("{body} (then changed)");
        let expect = if kept {
            Expect::new(200, None)
        } else {
            Expect::new(412, Some("PreconditionFailed"))
        };
        let r = Request {
            action: Action::Put,
            key,
            body: Some(&next),
            source: None,
            expect: &expect,
        };
        let first = etags[0].clone();
        let (_, g) = self
            .checked(&r, |_, _| Ok(Precondition::if_match(&first)))
            .await?;
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
}

/// One request of a step, as the scenario names it.
struct Request<'a> {
    action: Action,
    key: &'a str,
    body: Option<&'a str>,
    source: Option<&'a str>,
    expect: &'a Expect,
}
