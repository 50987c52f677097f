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
    /// PutObject answers carry no ETag.
    NoEtagOnPut,
    /// GetObject and HeadObject ignore every conditional header.
    IgnoreReadConditions,
    /// PutObject evaluates `If-None-Match: <etag>` and both headers together
    /// as RFC 9110 does, where AWS answers 501 NotImplemented.
    RfcIfNoneMatch,
    /// DeleteObject refuses `If-Match` with 501 NotImplemented.
    NoConditionalDelete,
    /// Any `If-None-Match` value is taken as `*`: "matches whatever exists".
    IfNoneMatchAsStar,
}

impl Fault {
    /// Every fault, in the order documentation lists them.
    pub const ALL: [Fault; 10] = [
        Fault::IgnoreIfNoneMatch,
        Fault::IgnoreIfMatch,
        Fault::Racy,
        Fault::MissingIfMatch412,
        Fault::UnquotedIfMatch,
        Fault::NoEtagOnPut,
        Fault::IgnoreReadConditions,
        Fault::RfcIfNoneMatch,
        Fault::NoConditionalDelete,
        Fault::IfNoneMatchAsStar,
    ];

    /// The name used in targets.toml.
    pub fn name(self) -> &'static str {
        match self {
            Fault::IgnoreIfNoneMatch => "ignore-if-none-match",
            Fault::IgnoreIfMatch => "ignore-if-match",
            Fault::Racy => "racy",
            Fault::MissingIfMatch412 => "missing-if-match-412",
            Fault::UnquotedIfMatch => "unquoted-if-match",
            Fault::NoEtagOnPut => "no-etag-on-put",
            Fault::IgnoreReadConditions => "ignore-read-conditions",
            Fault::RfcIfNoneMatch => "rfc-if-none-match",
            Fault::NoConditionalDelete => "no-conditional-delete",
            Fault::IfNoneMatchAsStar => "if-none-match-as-star",
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
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("faults", &self.faults)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// A server running on the current tokio runtime.
pub struct RunningServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and drops the store.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Binds `addr` (port 0 picks a free one) and serves until stopped.
pub async fn start(options: Options, addr: SocketAddr) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let reference = Reference {
        state: Arc::default(),
        faults: options.faults.clone(),
    };
    let mut builder = S3ServiceBuilder::new(reference);
    builder.set_auth(SimpleAuth::from_single(
        options.access_key.clone(),
        options.secret_key.clone(),
    ));
    let service = builder.build();
    let task = tokio::spawn(async move {
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
    });
    Ok(RunningServer { addr, task })
}

/// One stored object version.
#[derive(Clone)]
struct Object {
    body: Bytes,
    /// MD5 hex, unquoted.
    etag: String,
    last_modified: SystemTime,
}

#[derive(Default)]
struct Bucket {
    objects: BTreeMap<String, Object>,
}

#[derive(Default)]
struct State {
    buckets: BTreeMap<String, Bucket>,
}

/// The `s3s` implementation.
struct Reference {
    state: Arc<Mutex<State>>,
    faults: Vec<Fault>,
}

impl Reference {
    fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
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
    if faults.contains(&Fault::UnquotedIfMatch) {
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
        if !bucket.objects.is_empty() {
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
        {
            let mut state = self.lock();
            let bucket = bucket_mut(&mut state, &input.bucket)?;
            check_write(&self.faults, &headers, bucket.objects.get(&input.key))?;
            if !self.has(Fault::Racy) {
                bucket.objects.insert(input.key.clone(), new.clone());
            }
        }
        if self.has(Fault::Racy) {
            // The check above has passed; give concurrent writers the time to
            // pass it too, then write without checking again.
            tokio::time::sleep(RACY_WINDOW).await;
            let mut state = self.lock();
            let bucket = bucket_mut(&mut state, &input.bucket)?;
            bucket.objects.insert(input.key, new);
        }
        Ok(S3Response::new(dto::PutObjectOutput {
            e_tag: (!self.has(Fault::NoEtagOnPut)).then(|| strong(&etag)),
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
        if let Some(im) = header(&req.headers, "if-match") {
            if self.has(Fault::NoConditionalDelete) {
                return Err(not_implemented());
            }
            check_if_match(&self.faults, im, bucket.objects.get(&input.key))?;
        }
        bucket.objects.remove(&input.key);
        Ok(S3Response::new(dto::DeleteObjectOutput::default()))
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
