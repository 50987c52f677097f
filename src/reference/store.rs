//! The in-memory store: buckets, object versions, multipart uploads, and
//! the `s3s` handler type shared by every node, plus the S3 errors it answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use super::checks::{check_if_match, check_read, check_write};
use super::clock::LastRead;
use super::faults::RACY_WINDOW;
pub(super) use super::object::{no_such_key, precondition_failed, Object};
use super::Fault;
use crate::model::RECEIVED_HEADER;
use bytes::Bytes;
use s3s::dto::Timestamp;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

/// One entry of a versioned key's history.
#[derive(Clone)]
pub(super) struct Version {
    pub(super) id: String,
    /// `None`: a delete marker.
    pub(super) object: Option<Object>,
    pub(super) last_modified: SystemTime,
}

/// A multipart upload in progress.
pub(super) struct Upload {
    pub(super) key: String,
    pub(super) parts: BTreeMap<i32, (Bytes, String)>,
    pub(super) initiated: SystemTime,
}

#[derive(Default)]
pub(super) struct Bucket {
    /// The current version of every key that has one.
    pub(super) objects: BTreeMap<String, Object>,
    /// Every version and delete marker, oldest first (versioned buckets).
    pub(super) versions: BTreeMap<String, Vec<Version>>,
    pub(super) versioning: bool,
    pub(super) next_version: u64,
    pub(super) uploads: BTreeMap<String, Upload>,
    /// Keys whose first conditional write was answered 500 (the
    /// `answer-500-after-write` fault).
    pub(super) answered_500: std::collections::BTreeSet<String>,
    /// The body each key held before its last write (the
    /// `stale-ranged-read` fault serves ranges from it).
    pub(super) previous: BTreeMap<String, Bytes>,
}

impl Bucket {
    /// Makes `object` the current version of `key` (`None`: deletes it, or
    /// in a versioned bucket puts a delete marker on top).
    pub(super) fn write(&mut self, key: &str, object: Option<Object>) {
        if self.versioning {
            self.next_version += 1;
            self.versions
                .entry(key.to_owned())
                .or_default()
                .push(Version {
                    id: format!("v{:08}", self.next_version),
                    last_modified: object
                        .as_ref()
                        .map_or_else(SystemTime::now, |o| o.last_modified),
                    object: object.clone(),
                });
        }
        match object {
            Some(o) => {
                if let Some(old) = self.objects.insert(key.to_owned(), o) {
                    self.previous.insert(key.to_owned(), old.body);
                }
            }
            None => {
                self.objects.remove(key);
            }
        }
    }

    /// Removes one version of `key`; the newest remaining one becomes
    /// current. `null` names the unversioned object.
    pub(super) fn remove_version(&mut self, key: &str, id: &str) {
        let Some(history) = self.versions.get_mut(key) else {
            if id == "null" {
                self.objects.remove(key);
            }
            return;
        };
        history.retain(|v| v.id != id);
        match history.last().and_then(|v| v.object.clone()) {
            Some(o) => {
                self.objects.insert(key.to_owned(), o);
            }
            None => {
                self.objects.remove(key);
            }
        }
        if history.is_empty() {
            self.versions.remove(key);
        }
    }

    /// The current object as a write's conditions see it. With
    /// `marker_counts`, a delete marker on top is an object without ETag.
    pub(super) fn current(&self, key: &str, marker_counts: bool) -> Option<Object> {
        if let Some(o) = self.objects.get(key) {
            return Some(o.clone());
        }
        let top = self.versions.get(key)?.last()?;
        (marker_counts && top.object.is_none()).then(|| Object {
            body: Bytes::new(),
            etag: String::new(),
            last_modified: top.last_modified,
        })
    }
}

#[derive(Default)]
pub(super) struct State {
    pub(super) buckets: BTreeMap<String, Bucket>,
    pub(super) next_upload: u64,
}

/// The `s3s` implementation: one per node, all nodes sharing one state.
pub(super) struct Reference {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) faults: Vec<Fault>,
    /// The node's own lock (used by the `node-local-lock` fault).
    pub(super) node_lock: Arc<tokio::sync::Mutex<()>>,
    /// When the server started: one clock for all its nodes.
    pub(super) started: Instant,
}

impl Reference {
    /// The `x-condwrite-received-us` answer header: when the connection
    /// last read bytes (its request's last byte), else now, in microseconds
    /// since the server started.
    pub(super) fn received_header(&self, last_read: Option<&LastRead>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        let us = last_read.map_or_else(
            || u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            LastRead::micros,
        );
        h.insert(RECEIVED_HEADER, http::HeaderValue::from(us));
        h
    }

    pub(super) fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    /// DeleteObject's rule, also for each object of a DeleteObjects:
    /// `If-Match` checked against the current version, then the named
    /// version removed, or the object deleted (a delete marker put on top in
    /// a versioned bucket).
    pub(super) fn delete_one(
        &self,
        b: &mut Bucket,
        key: &str,
        version: Option<&str>,
        if_match: Option<&str>,
    ) -> S3Result<()> {
        let delete = |b: &mut Bucket| match version {
            Some(v) => b.remove_version(key, v),
            None => b.write(key, None),
        };
        if let Some(im) = if_match {
            let current = b.current(key, self.has(Fault::DeleteMarkerCountsAsObject));
            if let Err(e) = check_if_match(&self.faults, im, current.as_ref()) {
                if self.has(Fault::RefuseAndWrite) && *e.code() == S3ErrorCode::PreconditionFailed {
                    delete(b);
                }
                return Err(e);
            }
            if self.has(Fault::AckWithoutWrite) {
                return Ok(());
            }
        }
        delete(b);
        if if_match.is_some() {
            self.answer_500_once(b, key)?;
        }
        Ok(())
    }

    /// The `answer-500-after-write` fault: 500 to the first conditional
    /// write of `key` (already applied).
    pub(super) fn answer_500_once(&self, b: &mut Bucket, key: &str) -> S3Result<()> {
        if self.has(Fault::Answer500AfterWrite) && b.answered_500.insert(key.to_owned()) {
            return Err(s3_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            ));
        }
        Ok(())
    }

    /// Checks a write's conditional headers against the current object and
    /// stores `new` under `key`, atomically — unless a fault says otherwise.
    /// `check: false` writes unconditionally.
    pub(super) async fn write_checked(
        &self,
        bucket: &str,
        key: &str,
        headers: &http::HeaderMap,
        new: Object,
        check: bool,
    ) -> S3Result<()> {
        let node_local = self.has(Fault::NodeLocalLock);
        let racy = self.has(Fault::Racy) || node_local;
        // Held across the check and the write: writers on this node take
        // turns, writers on other nodes do not wait for it.
        let _node = if node_local {
            Some(self.node_lock.lock().await)
        } else {
            None
        };
        let conditional =
            check && (headers.contains_key("if-match") || headers.contains_key("if-none-match"));
        {
            let mut state = self.lock();
            let b = bucket_mut(&mut state, bucket)?;
            if check
                && b.versioning
                && self.has(Fault::VersionedCreateNeedsObject)
                && headers.get("if-none-match").is_some_and(|v| v == "*")
                && !b.versions.contains_key(key)
            {
                return Err(no_such_key());
            }
            if check {
                let current = b.current(key, self.has(Fault::DeleteMarkerCountsAsObject));
                if let Err(e) = check_write(&self.faults, headers, current.as_ref()) {
                    if self.has(Fault::RefuseAndWrite)
                        && *e.code() == S3ErrorCode::PreconditionFailed
                    {
                        b.write(key, Some(new));
                    }
                    return Err(e);
                }
            }
            if conditional && self.has(Fault::AckWithoutWrite) {
                return Ok(());
            }
            if !racy {
                b.write(key, Some(new));
                if conditional {
                    self.answer_500_once(b, key)?;
                }
                return Ok(());
            }
        }
        // The check above has passed; give concurrent writers the time to
        // pass it too, then write without checking again.
        tokio::time::sleep(RACY_WINDOW).await;
        let mut state = self.lock();
        bucket_mut(&mut state, bucket)?.write(key, Some(new));
        Ok(())
    }

    /// The object a GetObject or HeadObject answers with, after AWS's checks
    /// of its conditional headers.
    pub(super) fn read(
        &self,
        bucket: &str,
        key: &str,
        headers: &http::HeaderMap,
        if_modified_since: Option<&Timestamp>,
        if_unmodified_since: Option<&Timestamp>,
    ) -> S3Result<Object> {
        let obj = {
            let mut state = self.lock();
            let bucket = bucket_mut(&mut state, bucket)?;
            bucket.objects.get(key).cloned()
        };
        let conditioned = headers.contains_key("if-match") || if_unmodified_since.is_some();
        let Some(obj) = obj else {
            // SeaweedFS up to 4.44 (seaweedfs#10984): the missing object
            // fails the condition.
            if conditioned && self.has(Fault::MissingIfMatch412) {
                return Err(precondition_failed());
            }
            return Err(no_such_key());
        };
        if !self.has(Fault::IgnoreReadConditions) {
            check_read(
                &self.faults,
                headers,
                if_modified_since,
                if_unmodified_since,
                &obj,
            )?;
        }
        Ok(obj)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written object
        // (every mutation is one map insert), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) fn bucket_mut<'a>(state: &'a mut State, name: &str) -> S3Result<&'a mut Bucket> {
    state
        .buckets
        .get_mut(name)
        .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))
}

pub(super) fn no_such_upload() -> S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified multipart upload does not exist."
    )
}

pub(super) fn invalid_part() -> S3Error {
    s3_error!(
        InvalidPart,
        "One or more of the specified parts could not be found or its ETag did not match."
    )
}
