//! The object requests a scenario checks: PUT, GET, HEAD, DELETE, COPY and
//! DeleteObjects, each taking the conditions to send and returning the
//! [`Outcome`] (or a [`StoreError`] when no answer came).

use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::primitives::ByteStream;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::gate::{HoldLastByte, Racer};

use super::{cut, http_date, urlencoding_path, xml_text, Store, StoreError};
use crate::model::{BatchItem, ETag, Operation, Outcome, Precondition};

impl Store {
    /// PutObject with the given body and conditional headers.
    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        pre: &Precondition,
    ) -> Result<Outcome, StoreError> {
        self.put_held(key, body, pre, None).await
    }

    /// PutObject as one racer of a round: the request is the one [`put`]
    /// sends, but its last byte waits at the racer's gate (see [`gate`]).
    ///
    /// [`put`]: Store::put
    /// [`gate`]: super::gate
    pub async fn race_put(
        &self,
        key: &str,
        body: Bytes,
        pre: &Precondition,
        racer: &Arc<Racer>,
    ) -> Result<Outcome, StoreError> {
        let out = self.put_held(key, body, pre, Some(racer)).await;
        // A request that ended without its body reaching the gate (no
        // connection, an early answer) must not keep the others waiting.
        racer.arrive();
        out
    }

    async fn put_held(
        &self,
        key: &str,
        body: Bytes,
        pre: &Precondition,
        racer: Option<&Arc<Racer>>,
    ) -> Result<Outcome, StoreError> {
        let mut outcome = self.outcome(Operation::PutObject, key, pre);
        outcome.sent = Some(cut(&body));
        self.written.put(body.len());
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .customize();
        let request = match racer {
            // The SDK's stalled-upload check would take a racer whose
            // server reads its body late (after a lock, say) for a stalled
            // upload; the request's timeout still bounds it.
            Some(racer) => request
                .interceptor(HoldLastByte {
                    racer: Arc::clone(racer),
                })
                .config_override(
                    aws_sdk_s3::config::Builder::new()
                        .stalled_stream_protection(StalledStreamProtectionConfig::disabled()),
                ),
            None => request,
        };
        let (mut outcome, out) = self.call(outcome, request.send()).await?;
        if let Some(out) = out {
            outcome.etag = out.e_tag().and_then(ETag::from_header);
        }
        Ok(outcome)
    }

    /// GetObject with the given conditional headers. The body is read up to
    /// a little more than any object the run wrote can hold: a longer one is
    /// judged from its first bytes and its length.
    pub async fn get(&self, key: &str, pre: &Precondition) -> Result<Outcome, StoreError> {
        let outcome = self.outcome(Operation::GetObject, key, pre);
        let (since, unmodified) = self.dates(Operation::GetObject, key, pre)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .set_if_modified_since(since)
            .set_if_unmodified_since(unmodified)
            .set_range(pre.range.clone())
            .send();
        let (mut outcome, out) = self.call(outcome, request).await?;
        let Some(out) = out else {
            return Ok(outcome);
        };
        outcome.etag = out.e_tag().and_then(ETag::from_header);
        outcome.last_modified = http_date(out.last_modified());
        let length = out.content_length();
        // The headers came; a body that then cannot be read whole (shorter
        // than its Content-Length, say), or that is longer than anything
        // written, is part of the answer, not a missing one.
        let cap = self.written.read_cap();
        let mut body = out.body;
        let mut data = BytesMut::new();
        loop {
            match body.next().await {
                None => break,
                Some(Ok(chunk)) => {
                    data.extend_from_slice(&chunk);
                    if data.len() > cap {
                        data.truncate(cap);
                        outcome.received = Some(cut(&data));
                        outcome.body_error = Some(format!(
                            "a body longer than any object this run wrote: more than {} bytes{}",
                            cap - 1,
                            length
                                .map(|l| format!(" (Content-Length {l})"))
                                .unwrap_or_default()
                        ));
                        return Ok(outcome);
                    }
                }
                Some(Err(err)) => {
                    outcome.body_error = Some(super::describe(&err));
                    return Ok(outcome);
                }
            }
        }
        let data = data.freeze();
        outcome.received = Some(cut(&data));
        outcome.body = Some(data);
        Ok(outcome)
    }

    /// HeadObject with the given conditional headers.
    pub async fn head(&self, key: &str, pre: &Precondition) -> Result<Outcome, StoreError> {
        let outcome = self.outcome(Operation::HeadObject, key, pre);
        let (since, unmodified) = self.dates(Operation::HeadObject, key, pre)?;
        let request = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .set_if_modified_since(since)
            .set_if_unmodified_since(unmodified)
            .send();
        let (mut outcome, out) = self.call(outcome, request).await?;
        if let Some(out) = out {
            outcome.etag = out.e_tag().and_then(ETag::from_header);
            outcome.last_modified = http_date(out.last_modified());
        }
        Ok(outcome)
    }

    /// DeleteObject with the given conditional headers (only If-Match exists
    /// for deletes; an If-None-Match is not sent).
    pub async fn delete(&self, key: &str, pre: &Precondition) -> Result<Outcome, StoreError> {
        let outcome = self.outcome(Operation::DeleteObject, key, pre);
        let request = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(pre.if_match.clone())
            .send();
        let (outcome, _) = self.call(outcome, request).await?;
        Ok(outcome)
    }

    /// CopyObject from `source` (a key in the same bucket) to `key`, with the
    /// destination's conditional headers.
    pub async fn copy(
        &self,
        source: &str,
        key: &str,
        pre: &Precondition,
    ) -> Result<Outcome, StoreError> {
        let mut outcome = self.outcome(Operation::CopyObject, key, pre);
        let copy_source = format!("{}/{}", self.bucket, urlencoding_path(source));
        outcome.copy_source = Some(copy_source.clone());
        let request = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(copy_source)
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .send();
        let (mut outcome, out) = self.call(outcome, request).await?;
        if let Some(out) = out {
            outcome.etag = out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .and_then(ETag::from_header);
        }
        Ok(outcome)
    }

    /// DeleteObjects of `(key, ETag condition)` pairs in one request. The
    /// outcome's `items` hold each key's result; `key` names the first.
    pub async fn delete_objects(
        &self,
        objects: &[(String, Option<String>)],
    ) -> Result<Outcome, StoreError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let first = objects.first().map(|(k, _)| k.as_str()).unwrap_or_default();
        let mut outcome = self.outcome(Operation::DeleteObjects, first, &Precondition::none());
        let xml: String = objects
            .iter()
            .map(|(k, e)| {
                let etag = e
                    .as_deref()
                    .map(|e| format!("<ETag>{}</ETag>", xml_text(e)))
                    .unwrap_or_default();
                format!("<Object><Key>{}</Key>{etag}</Object>", xml_text(k))
            })
            .collect();
        outcome.sent = Some(format!("<Delete>{xml}</Delete>"));
        let ids: Result<Vec<ObjectIdentifier>, _> = objects
            .iter()
            .map(|(k, e)| {
                ObjectIdentifier::builder()
                    .key(k)
                    .set_e_tag(e.clone())
                    .build()
            })
            .collect();
        let delete = ids
            .and_then(|ids| Delete::builder().set_objects(Some(ids)).build())
            .map_err(|e| StoreError {
                operation: Operation::DeleteObjects,
                key: first.to_owned(),
                message: e.to_string(),
                failure: crate::store::Failure::NotBuilt,
            })?;
        let request = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send();
        let (mut outcome, out) = self.call(outcome, request).await?;
        if let Some(out) = out {
            let sent = |key: &str| {
                objects
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, e)| e.clone())
            };
            for d in out.deleted() {
                let key = d.key().unwrap_or_default().to_owned();
                outcome.items.push(BatchItem {
                    if_match: sent(&key),
                    key,
                    error: None,
                });
            }
            for e in out.errors() {
                let key = e.key().unwrap_or_default().to_owned();
                outcome.items.push(BatchItem {
                    if_match: sent(&key),
                    key,
                    error: Some(e.code().unwrap_or("(no code)").to_owned()),
                });
            }
        }
        Ok(outcome)
    }
}
