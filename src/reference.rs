//! The embedded reference S3 server.
//!
//! A real S3 HTTP server (the `s3s` crate does routing, SigV4 and XML) on
//! 127.0.0.1, in memory, with AWS's conditional-write semantics: the
//! precondition is checked and the write applied under one lock, so a
//! conditional write is atomic per key. It is the default target, the oracle
//! the catalog is tested against, and — with [`Fault`]s switched on — the
//! mutant that proves each scenario can fail. `condwrite serve` runs it on
//! its own for people who want a strict local S3 to develop against.
//!
//! The engine never calls into this module directly; it only talks to the
//! server over HTTP, like to any other target.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use md5::{Digest, Md5};
use s3s::auth::SimpleAuth;
use s3s::dto::{self, ETag as DtoETag, StreamingBlob, Timestamp};
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One rule of AWS's semantics that a fault profile breaks on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// `If-None-Match` is ignored on writes: create-only PUTs overwrite.
    IgnoreIfNoneMatch,
    /// `If-Match` is ignored on writes: stale or missing-key writes go through.
    IgnoreIfMatch,
    /// The precondition is checked, then the server yields before writing,
    /// without a lock, so concurrent writers can all pass the check.
    Racy,
    /// `If-Match` on a missing key answers 412 instead of AWS's 404 NoSuchKey.
    MissingIfMatch412,
    /// `If-Match` is compared verbatim with the unquoted ETag, so the quoted
    /// ETag the server itself returned never matches (Ceph RGW 16 does this
    /// on PutObject).
    UnquotedIfMatch,
    /// PutObject, CopyObject and CompleteMultipartUpload answers carry no
    /// ETag.
    NoEtagOnWrite,
    /// GetObject and HeadObject ignore every conditional header.
    IgnoreReadConditions,
    /// PutObject evaluates `If-None-Match: <etag>` and both headers together
    /// as RFC 9110 does, where AWS answers 501 NotImplemented.
    RfcIfNoneMatch,
    /// DeleteObject refuses `If-Match` with 501 NotImplemented.
    NoConditionalDelete,
    /// Any `If-None-Match` value is taken as `*`: "matches whatever exists".
    IfNoneMatchAsStar,
    /// `If-Match` is compared verbatim with the quoted ETag, so an unquoted
    /// ETag never matches.
    QuotedIfMatchOnly,
    /// An `If-Match` that is not one plain ETag (a weak tag, a list, `*`)
    /// is not understood and the write goes through unconditionally.
    IgnoreUnparsedIfMatch,
    /// Multipart conditions are checked at CreateMultipartUpload, the one
    /// place AWS ignores them, and not at CompleteMultipartUpload.
    MultipartChecksAtCreate,
    /// CopyObject ignores the destination's `If-Match` / `If-None-Match`.
    IgnoreCopyConditions,
    /// CopyObject writes the destination first and checks its conditions
    /// afterwards: a refused copy has already replaced the bytes.
    CopyWritesBeforeCheck,
    /// DeleteObjects ignores the per-object `ETag` conditions.
    DeleteObjectsIgnoresEtag,
    /// In a versioned bucket, a key whose current version is a delete
    /// marker counts as existing (an object without ETag).
    DeleteMarkerCountsAsObject,
    /// Each node of a cluster checks and writes under a lock of its own:
    /// writers on one node are serialised, writers on two nodes race.
    NodeLocalLock,
    /// A conditional write (PUT, COPY, CompleteMultipartUpload, DELETE)
    /// whose condition holds is acknowledged, but not applied.
    AckWithoutWrite,
    /// A conditional write whose condition fails is answered 412, and
    /// applied all the same.
    RefuseAndWrite,
    /// The first conditional write to each key whose condition holds is
    /// applied, then answered 500 InternalError (a correct store behind a
    /// flaky answer path: the outcome is unknown, nothing is lost).
    Answer500AfterWrite,
}

impl Fault {
    /// Every fault, in the order documentation lists them.
    pub const ALL: [Fault; 21] = [
        Fault::IgnoreIfNoneMatch,
        Fault::IgnoreIfMatch,
        Fault::Racy,
        Fault::MissingIfMatch412,
        Fault::UnquotedIfMatch,
        Fault::NoEtagOnWrite,
        Fault::IgnoreReadConditions,
        Fault::RfcIfNoneMatch,
        Fault::NoConditionalDelete,
        Fault::IfNoneMatchAsStar,
        Fault::QuotedIfMatchOnly,
        Fault::IgnoreUnparsedIfMatch,
        Fault::MultipartChecksAtCreate,
        Fault::IgnoreCopyConditions,
        Fault::CopyWritesBeforeCheck,
        Fault::DeleteObjectsIgnoresEtag,
        Fault::DeleteMarkerCountsAsObject,
        Fault::NodeLocalLock,
        Fault::AckWithoutWrite,
        Fault::RefuseAndWrite,
        Fault::Answer500AfterWrite,
    ];

    /// The name used in targets.toml.
    pub fn name(self) -> &'static str {
        match self {
            Fault::IgnoreIfNoneMatch => "ignore-if-none-match",
            Fault::IgnoreIfMatch => "ignore-if-match",
            Fault::Racy => "racy",
            Fault::MissingIfMatch412 => "missing-if-match-412",
            Fault::UnquotedIfMatch => "unquoted-if-match",
            Fault::NoEtagOnWrite => "no-etag-on-write",
            Fault::IgnoreReadConditions => "ignore-read-conditions",
            Fault::RfcIfNoneMatch => "rfc-if-none-match",
            Fault::NoConditionalDelete => "no-conditional-delete",
            Fault::IfNoneMatchAsStar => "if-none-match-as-star",
            Fault::QuotedIfMatchOnly => "quoted-if-match-only",
            Fault::IgnoreUnparsedIfMatch => "ignore-unparsed-if-match",
            Fault::MultipartChecksAtCreate => "multipart-checks-at-create",
            Fault::IgnoreCopyConditions => "ignore-copy-conditions",
            Fault::CopyWritesBeforeCheck => "copy-writes-before-check",
            Fault::DeleteObjectsIgnoresEtag => "delete-objects-ignores-etag",
            Fault::DeleteMarkerCountsAsObject => "delete-marker-counts-as-object",
            Fault::NodeLocalLock => "node-local-lock",
            Fault::AckWithoutWrite => "ack-without-write",
            Fault::RefuseAndWrite => "refuse-and-write",
            Fault::Answer500AfterWrite => "answer-500-after-write",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fault `{s}`; known faults: {}", known.join(", "))
            })
    }
}

/// How long a `racy` server sleeps between its check and its write.
const RACY_WINDOW: Duration = Duration::from_millis(30);

/// Settings of one reference server.
#[derive(Clone)]
pub struct Options {
    /// The faults switched on (none: AWS semantics).
    pub faults: Vec<Fault>,
    /// The access key requests must be signed with.
    pub access_key: String,
    /// The secret key requests must be signed with; never printed.
    pub secret_key: String,
    /// How many nodes (listening ports) serve the one shared store, like
    /// the endpoints of a clustered store (at least 1).
    pub nodes: usize,
    /// Accept unsigned requests only (no signature is checked, and a signed
    /// one is refused): for tests whose gateways rewrite requests.
    pub anonymous: bool,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("faults", &self.faults)
            .field("access_key", &self.access_key)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// A server running on the current tokio runtime.
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT` of the first node.
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// The URL of every node, the first node's first.
    pub fn urls(&self) -> Vec<String> {
        self.addrs.iter().map(|a| format!("http://{a}")).collect()
    }

    /// Stops accepting connections and drops the store.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Binds `addr` (port 0 picks a free one; further nodes always pick a free
/// port) and serves until stopped.
pub async fn start(options: Options, addr: SocketAddr) -> std::io::Result<RunningServer> {
    start_at(options, addr.ip(), &[addr.port()]).await
}

/// Serves on 127.0.0.1: node `i` on `ports[i]` (0, or no entry, picks a
/// free port).
pub async fn start_on(options: Options, ports: &[u16]) -> std::io::Result<RunningServer> {
    start_at(options, std::net::IpAddr::from([127, 0, 0, 1]), ports).await
}

async fn start_at(
    options: Options,
    ip: std::net::IpAddr,
    ports: &[u16],
) -> std::io::Result<RunningServer> {
    let state: Arc<Mutex<State>> = Arc::default();
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for node in 0..options.nodes.max(1) {
        let bind = SocketAddr::new(ip, ports.get(node).copied().unwrap_or(0));
        let listener = TcpListener::bind(bind).await?;
        addrs.push(listener.local_addr()?);
        let reference = Reference {
            state: state.clone(),
            faults: options.faults.clone(),
            node_lock: Arc::default(),
        };
        let mut builder = S3ServiceBuilder::new(reference);
        if !options.anonymous {
            builder.set_auth(SimpleAuth::from_single(
                options.access_key.clone(),
                options.secret_key.clone(),
            ));
        }
        let service = builder.build();
        tasks.push(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                connections.spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        }));
    }
    Ok(RunningServer { addrs, tasks })
}

/// One stored object version.
#[derive(Clone)]
struct Object {
    body: Bytes,
    /// MD5 hex (or multipart `md5-N`), unquoted.
    etag: String,
    last_modified: SystemTime,
}

/// One entry of a versioned key's history.
#[derive(Clone)]
struct Version {
    id: String,
    /// `None`: a delete marker.
    object: Option<Object>,
    last_modified: SystemTime,
}

/// A multipart upload in progress.
struct Upload {
    key: String,
    parts: BTreeMap<i32, (Bytes, String)>,
    initiated: SystemTime,
}

#[derive(Default)]
struct Bucket {
    /// The current version of every key that has one.
    objects: BTreeMap<String, Object>,
    /// Every version and delete marker, oldest first (versioned buckets).
    versions: BTreeMap<String, Vec<Version>>,
    versioning: bool,
    next_version: u64,
    uploads: BTreeMap<String, Upload>,
    /// Keys whose first conditional write was answered 500 (the
    /// `answer-500-after-write` fault).
    answered_500: std::collections::BTreeSet<String>,
}

impl Bucket {
    /// Makes `object` the current version of `key` (`None`: deletes it, or
    /// in a versioned bucket puts a delete marker on top).
    fn write(&mut self, key: &str, object: Option<Object>) {
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
                self.objects.insert(key.to_owned(), o);
            }
            None => {
                self.objects.remove(key);
            }
        }
    }

    /// Removes one version of `key`; the newest remaining one becomes
    /// current. `null` names the unversioned object.
    fn remove_version(&mut self, key: &str, id: &str) {
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
    fn current(&self, key: &str, marker_counts: bool) -> Option<Object> {
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
struct State {
    buckets: BTreeMap<String, Bucket>,
    next_upload: u64,
}

/// The `s3s` implementation: one per node, all nodes sharing one state.
struct Reference {
    state: Arc<Mutex<State>>,
    faults: Vec<Fault>,
    /// The node's own lock (used by the `node-local-lock` fault).
    node_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Reference {
    fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    /// DeleteObject's rule, also for each object of a DeleteObjects:
    /// `If-Match` checked against the current version, then the named
    /// version removed, or the object deleted (a delete marker put on top in
    /// a versioned bucket).
    fn delete_one(
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
    fn answer_500_once(&self, b: &mut Bucket, key: &str) -> S3Result<()> {
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
    async fn write_checked(
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
    fn read(
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
            bucket.objects.get(key).cloned().ok_or_else(no_such_key)?
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

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written object
        // (every mutation is one map insert), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn bucket_mut<'a>(state: &'a mut State, name: &str) -> S3Result<&'a mut Bucket> {
    state
        .buckets
        .get_mut(name)
        .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))
}

fn no_such_key() -> S3Error {
    s3_error!(NoSuchKey, "The specified key does not exist.")
}

fn no_such_upload() -> S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified multipart upload does not exist."
    )
}

fn invalid_part() -> S3Error {
    s3_error!(
        InvalidPart,
        "One or more of the specified parts could not be found or its ETag did not match."
    )
}

fn precondition_failed() -> S3Error {
    s3_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    )
}

/// The raw value of a header, if present and text.
fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether an `If-Match`-style list (`*`, or comma-separated tags, quoted or
/// not, weak or strong) names the stored tag. AWS compares the opaque value.
fn list_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|item| {
        item == "*" || {
            let item = item.strip_prefix("W/").unwrap_or(item);
            item.trim_matches('"') == etag
        }
    })
}

fn not_implemented() -> S3Error {
    s3_error!(
        NotImplemented,
        "A header you provided implies functionality that is not implemented"
    )
}

/// Whether `If-Match` names the stored version, as the server's faults say.
fn if_match_holds(faults: &[Fault], list: &str, etag: &str) -> bool {
    if faults.contains(&Fault::QuotedIfMatchOnly) {
        let quoted = format!("\"{etag}\"");
        list.split(',')
            .map(str::trim)
            .any(|i| i == "*" || i == quoted)
    } else if faults.contains(&Fault::UnquotedIfMatch) {
        list.split(',')
            .map(str::trim)
            .any(|i| i == "*" || i == etag)
    } else {
        list_matches(list, etag)
    }
}

/// AWS's checks of `If-Match` on a write (PutObject, DeleteObject) against
/// the current object: 404 NoSuchKey when there is none, 412 when it is
/// another version.
fn check_if_match(faults: &[Fault], if_match: &str, current: Option<&Object>) -> S3Result<()> {
    if faults.contains(&Fault::IgnoreIfMatch) {
        return Ok(());
    }
    let v = if_match.trim();
    let plain = v != "*" && !v.starts_with("W/") && !v.contains(',');
    if !plain && faults.contains(&Fault::IgnoreUnparsedIfMatch) {
        return Ok(());
    }
    match current {
        None if faults.contains(&Fault::MissingIfMatch412) => Err(precondition_failed()),
        None => Err(no_such_key()),
        Some(obj) if !if_match_holds(faults, if_match, &obj.etag) => Err(precondition_failed()),
        Some(_) => Ok(()),
    }
}

/// AWS's checks for a write (PutObject) against the current object.
fn check_write(
    faults: &[Fault],
    headers: &http::HeaderMap,
    current: Option<&Object>,
) -> S3Result<()> {
    let if_match = header(headers, "if-match");
    let if_none_match = header(headers, "if-none-match");
    let rfc = faults.contains(&Fault::RfcIfNoneMatch);
    if if_match.is_some() && if_none_match.is_some() && !rfc {
        return Err(not_implemented());
    }
    if let Some(im) = if_match {
        check_if_match(faults, im, current)?;
    }
    if let Some(inm) = if_none_match {
        let as_star = faults.contains(&Fault::IfNoneMatchAsStar);
        if inm.trim() != "*" && !rfc && !as_star {
            return Err(not_implemented());
        }
        let matches = current.is_some_and(|obj| as_star || list_matches(inm, &obj.etag));
        if matches && !faults.contains(&Fault::IgnoreIfNoneMatch) {
            return Err(precondition_failed());
        }
    }
    Ok(())
}

/// Seconds since the epoch, the resolution of HTTP dates.
fn secs(t: SystemTime) -> i64 {
    time::OffsetDateTime::from(t).unix_timestamp()
}

fn ts_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// AWS's (RFC 7232's) checks for a read (GetObject / HeadObject).
fn check_read(
    faults: &[Fault],
    headers: &http::HeaderMap,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
    obj: &Object,
) -> S3Result<()> {
    let modified = secs(obj.last_modified);
    if let Some(im) = header(headers, "if-match") {
        if !if_match_holds(faults, im, &obj.etag) {
            return Err(precondition_failed());
        }
    } else if let Some(ius) = if_unmodified_since {
        if modified > ts_secs(ius) {
            return Err(precondition_failed());
        }
    }
    let not_modified = if let Some(inm) = header(headers, "if-none-match") {
        faults.contains(&Fault::IfNoneMatchAsStar) || list_matches(inm, &obj.etag)
    } else if let Some(ims) = if_modified_since {
        modified <= ts_secs(ims)
    } else {
        false
    };
    if not_modified {
        let mut err = S3Error::new(S3ErrorCode::NotModified);
        let mut h = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", obj.etag)) {
            h.insert(http::header::ETAG, v);
        }
        err.set_headers(h);
        return Err(err);
    }
    Ok(())
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

async fn read_body(body: Option<StreamingBlob>) -> S3Result<Bytes> {
    let Some(mut body) = body else {
        return Ok(Bytes::new());
    };
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| s3_error!(IncompleteBody, "reading the request body failed: {e}"))?;
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn strong(etag: &str) -> DtoETag {
    DtoETag::Strong(etag.to_owned())
}

#[async_trait::async_trait]
impl S3 for Reference {
    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        let name = req.input.bucket;
        let mut state = self.lock();
        if state.buckets.contains_key(&name) {
            return Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            ));
        }
        state.buckets.insert(name.clone(), Bucket::default());
        Ok(S3Response::new(dto::CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        let mut state = self.lock();
        let bucket = bucket_mut(&mut state, &req.input.bucket)?;
        if !bucket.objects.is_empty() || !bucket.versions.is_empty() {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ));
        }
        state.buckets.remove(&req.input.bucket);
        Ok(S3Response::new(dto::DeleteBucketOutput::default()))
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        let mut state = self.lock();
        bucket_mut(&mut state, &req.input.bucket)?;
        Ok(S3Response::new(dto::HeadBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        let state = self.lock();
        let buckets = state
            .buckets
            .keys()
            .map(|name| dto::Bucket {
                name: Some(name.clone()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(dto::ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let after = input
            .continuation_token
            .clone()
            .or_else(|| input.start_after.clone())
            .unwrap_or_default();
        let mut state = self.lock();
        let bucket = bucket_mut(&mut state, &input.bucket)?;
        let mut matching = bucket
            .objects
            .range::<String, _>((
                std::ops::Bound::Excluded(&after),
                std::ops::Bound::Unbounded,
            ))
            .filter(|(k, _)| k.starts_with(&prefix));
        let page: Vec<_> = matching.by_ref().take(max_keys).collect();
        let truncated = matching.next().is_some();
        let next = if truncated {
            page.last().map(|(k, _)| (*k).clone())
        } else {
            None
        };
        let contents: Vec<dto::Object> = page
            .iter()
            .map(|(key, obj)| dto::Object {
                key: Some((*key).clone()),
                e_tag: Some(strong(&obj.etag)),
                size: Some(obj.body.len() as i64),
                last_modified: Some(Timestamp::from(obj.last_modified)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(dto::ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(prefix),
            max_keys: Some(max_keys as i32),
            key_count: Some(contents.len() as i32),
            contents: Some(contents),
            is_truncated: Some(truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        let S3Request { input, headers, .. } = req;
        let body = read_body(input.body).await?;
        let new = Object {
            etag: md5_hex(&body),
            body,
            last_modified: SystemTime::now(),
        };
        let etag = new.etag.clone();
        self.write_checked(&input.bucket, &input.key, &headers, new, true)
            .await?;
        Ok(S3Response::new(dto::PutObjectOutput {
            e_tag: (!self.has(Fault::NoEtagOnWrite)).then(|| strong(&etag)),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        let S3Request { input, headers, .. } = req;
        let dto::CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "Only bucket copy sources are supported"
            ));
        };
        let source = {
            let mut state = self.lock();
            let b = bucket_mut(&mut state, src_bucket)?;
            b.objects.get(&**src_key).cloned().ok_or_else(no_such_key)?
        };
        let new = Object {
            body: source.body,
            etag: source.etag,
            last_modified: SystemTime::now(),
        };
        let etag = new.etag.clone();
        let last_modified = new.last_modified;
        if self.has(Fault::CopyWritesBeforeCheck) {
            let mut state = self.lock();
            let b = bucket_mut(&mut state, &input.bucket)?;
            let before = b.current(&input.key, false);
            b.write(&input.key, Some(new));
            check_write(&self.faults, &headers, before.as_ref())?;
        } else {
            let check = !self.has(Fault::IgnoreCopyConditions);
            self.write_checked(&input.bucket, &input.key, &headers, new, check)
                .await?;
        }
        Ok(S3Response::new(dto::CopyObjectOutput {
            copy_object_result: Some(dto::CopyObjectResult {
                e_tag: (!self.has(Fault::NoEtagOnWrite)).then(|| strong(&etag)),
                last_modified: Some(Timestamp::from(last_modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        let S3Request { input, headers, .. } = req;
        let mut state = self.lock();
        state.next_upload += 1;
        let id = format!("upload-{:08}", state.next_upload);
        let b = bucket_mut(&mut state, &input.bucket)?;
        if self.has(Fault::MultipartChecksAtCreate) {
            check_write(
                &self.faults,
                &headers,
                b.current(&input.key, false).as_ref(),
            )?;
        }
        b.uploads.insert(
            id.clone(),
            Upload {
                key: input.key.clone(),
                parts: BTreeMap::new(),
                initiated: SystemTime::now(),
            },
        );
        Ok(S3Response::new(dto::CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        let input = req.input;
        let body = read_body(input.body).await?;
        let etag = md5_hex(&body);
        let mut state = self.lock();
        let b = bucket_mut(&mut state, &input.bucket)?;
        let upload = b
            .uploads
            .get_mut(&input.upload_id)
            .filter(|u| u.key == input.key)
            .ok_or_else(no_such_upload)?;
        upload.parts.insert(input.part_number, (body, etag.clone()));
        Ok(S3Response::new(dto::UploadPartOutput {
            e_tag: Some(strong(&etag)),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        let S3Request { input, headers, .. } = req;
        let listed = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        let (body, etag) = {
            let mut state = self.lock();
            let b = bucket_mut(&mut state, &input.bucket)?;
            let upload = b
                .uploads
                .get(&input.upload_id)
                .filter(|u| u.key == input.key)
                .ok_or_else(no_such_upload)?;
            if listed.is_empty() {
                return Err(s3_error!(
                    MalformedXML,
                    "You must specify at least one part"
                ));
            }
            let mut body = BytesMut::new();
            let mut digests = Vec::new();
            for part in &listed {
                let n = part.part_number.unwrap_or_default();
                let (data, etag) = upload.parts.get(&n).ok_or_else(invalid_part)?;
                let named = part.e_tag.as_ref().map(|e| e.value().to_owned());
                if named.as_deref() != Some(etag.as_str()) {
                    return Err(invalid_part());
                }
                body.extend_from_slice(data);
                digests.extend(hex::decode(etag).unwrap_or_default());
            }
            let etag = format!("{}-{}", md5_hex(&digests), listed.len());
            (body.freeze(), etag)
        };
        let new = Object {
            body,
            etag: etag.clone(),
            last_modified: SystemTime::now(),
        };
        let check = !self.has(Fault::MultipartChecksAtCreate);
        self.write_checked(&input.bucket, &input.key, &headers, new, check)
            .await?;
        let mut state = self.lock();
        bucket_mut(&mut state, &input.bucket)?
            .uploads
            .remove(&input.upload_id);
        Ok(S3Response::new(dto::CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: (!self.has(Fault::NoEtagOnWrite)).then(|| strong(&etag)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        let input = req.input;
        let mut state = self.lock();
        let b = bucket_mut(&mut state, &input.bucket)?;
        b.uploads
            .remove(&input.upload_id)
            .ok_or_else(no_such_upload)?;
        Ok(S3Response::new(dto::AbortMultipartUploadOutput::default()))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
        let mut state = self.lock();
        let b = bucket_mut(&mut state, &input.bucket)?;
        // By key, then upload id; after the markers.
        let mut all: Vec<(&String, &Upload)> = b
            .uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(&prefix))
            .filter(
                |(id, u)| match (&input.key_marker, &input.upload_id_marker) {
                    (None, _) => true,
                    (Some(k), None) => u.key > *k,
                    (Some(k), Some(i)) => u.key > *k || (u.key == *k && *id > i),
                },
            )
            .collect();
        all.sort_by(|(ia, a), (ib, b)| (&a.key, ia).cmp(&(&b.key, ib)));
        let truncated = all.len() > max;
        all.truncate(max);
        let last = all.last().map(|(id, u)| (u.key.clone(), (*id).clone()));
        let uploads = all
            .into_iter()
            .map(|(id, u)| dto::MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(id.clone()),
                initiated: Some(Timestamp::from(u.initiated)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(dto::ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated.then(|| last.clone().map(|l| l.0)).flatten(),
            next_upload_id_marker: truncated.then(|| last.map(|l| l.1)).flatten(),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<dto::PutBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::PutBucketVersioningOutput>> {
        let input = req.input;
        let enabled = input
            .versioning_configuration
            .status
            .as_ref()
            .is_some_and(|s| s.as_str() == "Enabled");
        let mut state = self.lock();
        let b = bucket_mut(&mut state, &input.bucket)?;
        if !enabled {
            return Err(s3_error!(
                NotImplemented,
                "The reference server only turns versioning on"
            ));
        }
        if !b.versioning {
            // Objects written before versioning was enabled are version "null".
            for (key, o) in &b.objects {
                b.versions.insert(
                    key.clone(),
                    vec![Version {
                        id: "null".into(),
                        object: Some(o.clone()),
                        last_modified: o.last_modified,
                    }],
                );
            }
            b.versioning = true;
        }
        Ok(S3Response::new(dto::PutBucketVersioningOutput::default()))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<dto::GetBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
        let mut state = self.lock();
        let b = bucket_mut(&mut state, &req.input.bucket)?;
        Ok(S3Response::new(dto::GetBucketVersioningOutput {
            status: b
                .versioning
                .then(|| dto::BucketVersioningStatus::from_static("Enabled")),
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<dto::ListObjectVersionsInput>,
    ) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut state = self.lock();
        let b = bucket_mut(&mut state, &input.bucket)?;
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut push =
            |key: &str, id: &str, latest: bool, o: Option<&Object>, at: SystemTime| match o {
                Some(o) => versions.push(dto::ObjectVersion {
                    key: Some(key.to_owned()),
                    version_id: Some(id.to_owned()),
                    is_latest: Some(latest),
                    e_tag: Some(strong(&o.etag)),
                    size: Some(o.body.len() as i64),
                    last_modified: Some(Timestamp::from(at)),
                    ..Default::default()
                }),
                None => markers.push(dto::DeleteMarkerEntry {
                    key: Some(key.to_owned()),
                    version_id: Some(id.to_owned()),
                    is_latest: Some(latest),
                    last_modified: Some(Timestamp::from(at)),
                    ..Default::default()
                }),
            };
        if b.versioning {
            for (key, history) in b.versions.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                for (i, v) in history.iter().enumerate().rev() {
                    push(
                        key,
                        &v.id,
                        i + 1 == history.len(),
                        v.object.as_ref(),
                        v.last_modified,
                    );
                }
            }
        } else {
            for (key, o) in b.objects.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                push(key, "null", true, Some(o), o.last_modified);
            }
        }
        Ok(S3Response::new(dto::ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(prefix),
            is_truncated: Some(false),
            versions: Some(versions),
            delete_markers: Some(markers),
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        let input = req.input;
        let mut state = self.lock();
        let b = bucket_mut(&mut state, &input.bucket)?;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for id in input.delete.objects {
            let condition = id
                .e_tag
                .as_ref()
                .filter(|_| !self.has(Fault::DeleteObjectsIgnoresEtag))
                .map(|e| format!("\"{}\"", e.value()));
            let version = id.version_id.as_deref();
            if let Err(e) = self.delete_one(b, &id.key, version, condition.as_deref()) {
                errors.push(dto::Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(id.key),
                    message: e.message().map(str::to_owned),
                    ..Default::default()
                });
                continue;
            }
            deleted.push(dto::DeletedObject {
                key: Some(id.key),
                version_id: id.version_id,
                ..Default::default()
            });
        }
        Ok(S3Response::new(dto::DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        let input = &req.input;
        let obj = self.read(
            &input.bucket,
            &input.key,
            &req.headers,
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let len = obj.body.len() as i64;
        let body = obj.body.clone();
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
        Ok(S3Response::new(dto::GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(len),
            e_tag: Some(strong(&obj.etag)),
            last_modified: Some(Timestamp::from(obj.last_modified)),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        let input = &req.input;
        let obj = self.read(
            &input.bucket,
            &input.key,
            &req.headers,
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        Ok(S3Response::new(dto::HeadObjectOutput {
            content_length: Some(obj.body.len() as i64),
            e_tag: Some(strong(&obj.etag)),
            last_modified: Some(Timestamp::from(obj.last_modified)),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        let input = &req.input;
        let mut state = self.lock();
        let bucket = bucket_mut(&mut state, &input.bucket)?;
        if let Some(version) = &input.version_id {
            bucket.remove_version(&input.key, version);
            return Ok(S3Response::new(dto::DeleteObjectOutput {
                version_id: Some(version.clone()),
                ..Default::default()
            }));
        }
        let if_match = header(&req.headers, "if-match");
        if if_match.is_some() && self.has(Fault::NoConditionalDelete) {
            return Err(not_implemented());
        }
        let marker = bucket.versioning;
        self.delete_one(bucket, &input.key, None, if_match)?;
        Ok(S3Response::new(dto::DeleteObjectOutput {
            delete_marker: marker.then_some(true),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(etag: &str) -> Object {
        Object {
            body: Bytes::from_static(b"x"),
            etag: etag.into(),
            last_modified: SystemTime::now(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn code(r: S3Result<()>) -> Option<S3ErrorCode> {
        r.err().map(|e| e.code().clone())
    }

    #[test]
    fn fault_names_round_trip_and_unknown_is_explained() {
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>().unwrap(), f);
        }
        let err = "nope".parse::<Fault>().unwrap_err();
        assert!(err.contains("racy") && err.contains("nope"), "{err}");
    }

    #[test]
    fn write_checks_follow_aws() {
        let h = headers(&[("if-none-match", "*")]);
        assert_eq!(code(check_write(&[], &h, None)), None);
        assert_eq!(
            code(check_write(&[], &h, Some(&obj("a")))),
            Some(S3ErrorCode::PreconditionFailed)
        );
        let h = headers(&[("if-match", "\"a\"")]);
        assert_eq!(code(check_write(&[], &h, Some(&obj("a")))), None);
        assert_eq!(
            code(check_write(&[], &h, Some(&obj("b")))),
            Some(S3ErrorCode::PreconditionFailed)
        );
        assert_eq!(
            code(check_write(&[], &h, None)),
            Some(S3ErrorCode::NoSuchKey)
        );
        let h = headers(&[("if-none-match", "\"a\"")]);
        assert_eq!(
            code(check_write(&[], &h, None)),
            Some(S3ErrorCode::NotImplemented)
        );
    }

    #[test]
    fn each_fault_breaks_its_rule() {
        let inm = headers(&[("if-none-match", "*")]);
        let im = headers(&[("if-match", "\"a\"")]);
        assert_eq!(
            code(check_write(
                &[Fault::IgnoreIfNoneMatch],
                &inm,
                Some(&obj("a"))
            )),
            None
        );
        assert_eq!(
            code(check_write(&[Fault::IgnoreIfMatch], &im, Some(&obj("b")))),
            None
        );
        assert_eq!(
            code(check_write(&[Fault::MissingIfMatch412], &im, None)),
            Some(S3ErrorCode::PreconditionFailed)
        );
    }

    #[test]
    fn read_checks_answer_304_with_the_etag() {
        let h = headers(&[("if-none-match", "\"a\"")]);
        let err = check_read(&[], &h, None, None, &obj("a")).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::NotModified);
        assert_eq!(err.headers().unwrap()[http::header::ETAG], "\"a\"");
        let h = headers(&[("if-match", "\"b\"")]);
        assert_eq!(
            code(check_read(&[], &h, None, None, &obj("a"))),
            Some(S3ErrorCode::PreconditionFailed)
        );
    }
}
