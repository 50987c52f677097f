//! The one thin S3 client wrapper.
//!
//! Every request condwrite sends goes through [`Store`]. It owns the
//! `aws-sdk-s3` client and keeps every SDK type inside this module: callers
//! speak the [`model`](crate::model)'s `ETag`, `Precondition` and `Outcome`.
//! The client is configured for a conformance harness rather than an
//! application: retries are off (a retried PUT whose first try committed
//! would show up as a false 412), checksums are only sent when required,
//! every call has a timeout, no answer is read past a cap, and a target that
//! stops answering is not waited on again and again.
//!
//! - `health`: timeouts in a row, and the stall rule;
//! - `gate`: last-byte synchronisation of racers;
//! - `limit`: the cap on every answer's body;
//! - `objects`: PUT, GET, HEAD, DELETE, COPY, DeleteObjects;
//! - `multipart`: the multipart upload requests and their listing;
//! - `bucket`: buckets, versioning, listing and clean-up;
//! - `wire`: the status of every answer, as the server sent it.

mod bucket;
pub mod gate;
mod health;
mod limit;
mod multipart;
mod objects;
mod wire;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};

use crate::model::{ETag, Operation, Outcome, Precondition};

pub use bucket::open_scenario_buckets;
pub use health::Health;

/// A request that got no HTTP answer at all: connection refused, timeout,
/// a response that could not be parsed — or one not sent, because the
/// target stopped answering.
#[derive(Debug, thiserror::Error)]
#[error("{operation:?} {key}: {message}")]
pub struct StoreError {
    /// The operation the request was.
    pub operation: Operation,
    /// The key it was for.
    pub key: String,
    /// What happened, for people.
    pub message: String,
    /// What happened, for code to decide on.
    pub failure: Failure,
}

/// Settings no client can be built from (a CA certificate that is not
/// PEM, say), in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// What happened to a request that did not bring the answer its caller
/// wanted: what code decides on (the message beside it is for people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not sent: the run is ending.
    NotSent,
    /// Not sent: the target stopped answering (see [`Health`]).
    Stalled,
    /// Sent, and no HTTP answer came: refused, reset, timed out, or one
    /// that could not be read.
    NoAnswer,
    /// An HTTP answer with this status and error code.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The error code of the body, if it had one.
        code: Option<String>,
    },
    /// Answered, but not as S3 does (a listing that never ends, say).
    Unexpected,
    /// Not sent: the client could not build the request from what it was
    /// given (a key or an ETag the SDK refuses).
    NotBuilt,
}

impl Failure {
    /// Whether the target as a whole was given up on (it stopped
    /// answering, or the run is ending), rather than anything about this
    /// request.
    pub fn target_gone(&self) -> bool {
        matches!(self, Failure::NotSent | Failure::Stalled)
    }

    /// Whether the answer carried this error code.
    pub fn is_code(&self, want: &str) -> bool {
        matches!(self, Failure::Answered { code: Some(c), .. } if c == want)
    }
}

/// A set-up, listing or clean-up request that failed. The message names
/// the request and what happened, as users see it; the failure is what
/// code decides on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// What happened.
    pub failure: Failure,
    /// The request and what happened, in words.
    pub message: String,
}

impl RequestError {
    /// The same failure, said in other words.
    fn reworded(self, message: String) -> Self {
        RequestError {
            failure: self.failure,
            message,
        }
    }
}

/// Connection settings for one S3 endpoint.
#[derive(Clone)]
pub struct ClientSettings {
    /// Base URL, e.g. `http://127.0.0.1:9000`.
    pub endpoint_url: String,
    /// Signing region.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key; never printed.
    pub secret_key: String,
    /// Session token of temporary credentials; never printed.
    pub session_token: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`).
    pub path_style: bool,
    /// When the SDK sends request checksums.
    pub checksums: ChecksumMode,
    /// Timeout of one whole operation.
    pub operation_timeout: Duration,
    /// A PEM certificate (a private CA) trusted besides the system's roots,
    /// for HTTPS endpoints.
    pub ca_pem: Option<Vec<u8>>,
}

/// When request checksums are sent (the SDK's aws-chunked CRC32 trailer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// Only where the operation requires one: plain bodies, which every
    /// S3-compatible accepts.
    #[default]
    WhenRequired,
    /// Whenever the operation supports one (the SDK's own default).
    WhenSupported,
}

impl ClientSettings {
    /// Settings for a local loopback server: path-style, `us-east-1`,
    /// checksums when required, 30 s per operation.
    pub fn local(endpoint_url: String, access_key: &str, secret_key: &str) -> Self {
        Self {
            endpoint_url,
            region: "us-east-1".into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            session_token: None,
            path_style: true,
            checksums: ChecksumMode::WhenRequired,
            operation_timeout: Duration::from_secs(30),
            ca_pem: None,
        }
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .field("checksums", &self.checksums)
            .field("operation_timeout", &self.operation_timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// The largest answer body the SDK is let read (XML listings of a thousand
/// keys are far below it; a body that never ends is cut here).
const ANSWER_CAP: usize = 16 << 20;

/// A client bound to one bucket of one endpoint.
#[derive(Clone)]
pub struct Store {
    client: Client,
    bucket: String,
    /// Shared by every client of one target: its timeouts and stall.
    health: Arc<Health>,
    /// The most bytes any object this run wrote can hold: a GET reads no
    /// more than this (and a little), whatever the store sends.
    written: Arc<Written>,
    timeout: Duration,
}

/// What the run wrote: the largest PUT body, and all multipart parts.
#[derive(Debug, Default)]
struct Written {
    largest_put: AtomicUsize,
    parts: AtomicUsize,
}

impl Written {
    fn put(&self, len: usize) {
        self.largest_put.fetch_max(len, Ordering::SeqCst);
    }

    fn part(&self, len: usize) {
        self.parts.fetch_add(len, Ordering::SeqCst);
    }

    /// How much of a GET body is read: more than any object written can
    /// hold, at least 4 KiB.
    fn read_cap(&self) -> usize {
        let most = self
            .largest_put
            .load(Ordering::SeqCst)
            .max(self.parts.load(Ordering::SeqCst));
        most.max(4 << 10) + 1
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// Builds the SDK client for the given settings.
fn client(settings: &ClientSettings) -> Result<Client, ClientError> {
    let credentials = Credentials::new(
        settings.access_key.clone(),
        settings.secret_key.clone(),
        settings.session_token.clone(),
        None,
        "condwrite",
    );
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(settings.operation_timeout)
        .build();
    let mut config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(credentials)
        .endpoint_url(settings.endpoint_url.clone())
        .region(Region::new(settings.region.clone()))
        .force_path_style(settings.path_style)
        .request_checksum_calculation(match settings.checksums {
            ChecksumMode::WhenRequired => RequestChecksumCalculation::WhenRequired,
            ChecksumMode::WhenSupported => RequestChecksumCalculation::WhenSupported,
        })
        .response_checksum_validation(match settings.checksums {
            ChecksumMode::WhenRequired => ResponseChecksumValidation::WhenRequired,
            ChecksumMode::WhenSupported => ResponseChecksumValidation::WhenSupported,
        })
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts)
        .interceptor(limit::CapAnswers { cap: ANSWER_CAP })
        .interceptor(wire::RecordStatus);
    if let Some(pem) = &settings.ca_pem {
        use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
        let context = TlsContext::builder()
            .with_trust_store(
                TrustStore::default()
                    .with_native_roots(true)
                    .with_pem_certificate(pem.clone()),
            )
            .build()
            .map_err(|e| ClientError(format!("the CA certificate cannot be used: {e}")))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https();
        config = config.http_client(http);
    }
    Ok(Client::from_conf(config.build()))
}

/// Status and error code of an SDK error, or `None` when no HTTP answer came.
fn answer_of<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<(u16, Option<String>)> {
    let status = err.raw_response().map(|r| r.status().as_u16())?;
    let code = match err {
        SdkError::ServiceError(se) => se.err().code().map(str::to_owned),
        _ => None,
    };
    Some((status, code))
}

/// Whether the request ran out of time (no answer within the timeout).
fn timed_out<E>(err: &SdkError<E>) -> bool {
    match err {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    }
}

/// How many characters of a body evidence keeps.
const EVIDENCE_BODY: usize = 200;

/// A body cut to [`EVIDENCE_BODY`] characters for evidence.
fn cut(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > EVIDENCE_BODY {
        let mut t: String = text.chars().take(EVIDENCE_BODY).collect();
        t.push('…');
        t
    } else {
        text.into_owned()
    }
}

/// Text escaped for an XML element.
fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A key as it goes into a path or `x-amz-copy-source`: every byte but
/// unreserved characters and `/` percent-encoded.
fn urlencoding_path(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTTP date (`Last-Modified`), as a string.
fn http_date(d: Option<&DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(DateTimeFormat::HttpDate).ok())
}

/// An error and its causes in one line.
fn describe<E: std::error::Error>(err: &E) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// An SDK error in one line: `answered 409 BucketNotEmpty` when an HTTP
/// answer came, else the error and its causes.
fn sdk_error<E>(err: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (err, answer_of(err)) {
        (SdkError::ServiceError(_), Some((status, Some(code)))) => {
            format!("answered {status} {code}")
        }
        (SdkError::ServiceError(_), Some((status, None))) => format!("answered {status}"),
        _ => describe(err),
    }
}

impl Store {
    /// A client for `bucket` on the endpoint `settings` names; an error for
    /// settings no client can be built from (a CA certificate that is not
    /// PEM, say).
    pub fn try_new(
        settings: &ClientSettings,
        bucket: impl Into<String>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            client: client(settings)?,
            bucket: bucket.into(),
            health: Arc::default(),
            written: Arc::default(),
            timeout: settings.operation_timeout,
        })
    }

    /// A client for `bucket` on the endpoint `settings` names.
    ///
    /// # Panics
    /// When the settings name a CA certificate that cannot be used (see
    /// [`Store::try_new`]); settings without one always work.
    pub fn new(settings: &ClientSettings, bucket: impl Into<String>) -> Self {
        Self::try_new(settings, bucket).expect("client settings without a usable CA certificate")
    }

    /// The bucket every call works in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A client for another bucket of the same endpoint (same health).
    pub fn for_bucket(&self, bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..self.clone()
        }
    }

    /// This client, counting its timeouts (and stalling) with `other`'s:
    /// the endpoints of one target share one health.
    pub fn sharing_health(mut self, other: &Store) -> Self {
        self.health = other.health.clone();
        self.written = other.written.clone();
        self
    }

    /// This client with a health of its own (for the clean-up of a run
    /// whose clients were shut down).
    pub fn with_own_health(&self) -> Self {
        Self {
            health: Arc::default(),
            ..self.clone()
        }
    }

    /// The timeout of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the target still answers.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    fn outcome(&self, operation: Operation, key: &str, pre: &Precondition) -> Outcome {
        let path = match operation {
            Operation::DeleteObjects => format!("/{}?delete", self.bucket),
            Operation::CreateMultipartUpload => {
                format!("/{}/{}?uploads", self.bucket, urlencoding_path(key))
            }
            _ => format!("/{}/{}", self.bucket, urlencoding_path(key)),
        };
        Outcome {
            operation,
            method: operation.method().to_owned(),
            path,
            copy_source: None,
            sent: None,
            received: None,
            key: key.to_owned(),
            precondition: pre.clone(),
            status: 0,
            code: None,
            etag: None,
            last_modified: None,
            body: None,
            body_error: None,
            upload_id: None,
            items: Vec::new(),
        }
    }

    /// The date conditions as the SDK takes them; a value that is not an
    /// HTTP date is a harness error, reported as no answer.
    fn dates(
        &self,
        op: Operation,
        key: &str,
        pre: &Precondition,
    ) -> Result<(Option<DateTime>, Option<DateTime>), StoreError> {
        let parse = |v: &Option<String>| {
            v.as_deref()
                .map(|d| DateTime::from_str(d, DateTimeFormat::HttpDate))
                .transpose()
                .map_err(|e| StoreError {
                    operation: op,
                    key: key.to_owned(),
                    message: format!("not an HTTP date: {e}"),
                    failure: Failure::NotBuilt,
                })
        };
        Ok((
            parse(&pre.if_modified_since)?,
            parse(&pre.if_unmodified_since)?,
        ))
    }

    /// Sends one request (`request`, not yet polled) and takes its answer:
    /// `(outcome, Some(output))` for a 2xx, `(outcome with status and error
    /// code, None)` for an error answer, `Err` when no answer came. Counts
    /// timeouts for the stall rule, and sends nothing to a stalled target.
    async fn call<T, E>(
        &self,
        mut outcome: Outcome,
        request: impl Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<(Outcome, Option<T>), StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let conditional =
            outcome.precondition.if_match.is_some() || outcome.precondition.if_none_match.is_some();
        let unanswered = |outcome: Outcome, failure, message| StoreError {
            operation: outcome.operation,
            key: outcome.key,
            message,
            failure,
        };
        if let Err(refused) = self.health.admit(conditional) {
            return Err(unanswered(outcome, refused.failure, refused.message));
        }
        let _flight = self.health.flying();
        let (answer, wire_status) = wire::recording(request).await;
        match answer {
            Ok(out) => {
                self.health.answered(conditional);
                // The status is the one the server sent, never inferred
                // from the output's fields.
                let Some(status) = wire_status else {
                    return Err(unanswered(
                        outcome,
                        Failure::Unexpected,
                        "the SDK returned an answer whose HTTP status was not seen".into(),
                    ));
                };
                outcome.status = status;
                Ok((outcome, Some(out)))
            }
            Err(err) => match answer_of(&err) {
                Some((status, code)) => {
                    self.health.answered(conditional);
                    outcome.status = status;
                    outcome.code = code;
                    // A 304 carries the ETag of the version the client holds.
                    outcome.etag = err
                        .raw_response()
                        .and_then(|r| r.headers().get("etag"))
                        .and_then(ETag::from_header);
                    Ok((outcome, None))
                }
                None => {
                    if timed_out(&err) {
                        self.health.timed_out(conditional, self.timeout);
                    }
                    Err(unanswered(outcome, Failure::NoAnswer, describe(&err)))
                }
            },
        }
    }

    /// Sends one request of the clean-up or set-up kind (whose errors are
    /// messages, not outcomes); `what` names it in the message.
    async fn call_plain<T, E>(
        &self,
        what: impl FnOnce() -> String,
        request: impl Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<T, (RequestError, Option<SdkError<E>>)>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if let Err(refused) = self.health.admit(false) {
            let message = format!("{}: {}", what(), refused.message);
            return Err((refused.reworded(message), None));
        }
        let _flight = self.health.flying();
        match request.await {
            Ok(out) => {
                self.health.answered(false);
                Ok(out)
            }
            Err(err) => {
                let failure = match answer_of(&err) {
                    Some((status, code)) => {
                        self.health.answered(false);
                        Failure::Answered { status, code }
                    }
                    None => {
                        if timed_out(&err) {
                            self.health.timed_out(false, self.timeout);
                        }
                        Failure::NoAnswer
                    }
                };
                let message = format!("{}: {}", what(), sdk_error(&err));
                Err((RequestError { failure, message }, Some(err)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_settings_debug_hides_the_secret() {
        let mut s = ClientSettings::local("http://127.0.0.1:1".into(), "AK", "very-secret");
        s.session_token = Some("token-secret".into());
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
        assert!(!dbg.contains("token-secret"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn a_get_reads_a_little_more_than_anything_written() {
        let w = Written::default();
        assert_eq!(w.read_cap(), 4097);
        w.put(10_000);
        w.put(20);
        assert_eq!(w.read_cap(), 10_001);
        w.part(6_000);
        w.part(6_000);
        assert_eq!(w.read_cap(), 12_001);
    }

    #[test]
    fn keys_are_percent_encoded_in_paths_but_slashes() {
        assert_eq!(urlencoding_path("a/b c+é"), "a/b%20c%2B%C3%A9");
    }
}
