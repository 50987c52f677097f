//! The one thin S3 client wrapper.
//!
//! Every request condwrite sends goes through [`Store`]. It owns the
//! `aws-sdk-s3` client and keeps every SDK type inside this module: callers
//! speak [`ETag`], [`Precondition`] and [`Outcome`]. The client is configured
//! for a conformance harness rather than an application: retries are off (a
//! retried PUT whose first try committed would show up as a false 412),
//! checksums are only sent when required, and every call has a timeout.

use std::fmt;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::Client;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An entity tag exactly as the server sent it (normally quoted: `"abc…"`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ETag(String);

impl ETag {
    /// Wraps a raw ETag header value.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// A header or XML value as an ETag; an empty one is no ETag.
    pub fn from_header(raw: impl AsRef<str>) -> Option<Self> {
        let raw = raw.as_ref();
        (!raw.trim().is_empty()).then(|| Self::new(raw))
    }

    /// The value exactly as the server sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The opaque tag without a weak prefix and without quotes.
    pub fn opaque(&self) -> &str {
        let s = self.0.trim();
        let s = s.strip_prefix("W/").unwrap_or(s);
        s.trim_matches('"')
    }

    /// Whether two tags name the same object version, comparing the opaque
    /// value (quotes and a weak prefix do not count).
    pub fn same_version(&self, other: &ETag) -> bool {
        self.opaque() == other.opaque()
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({})", self.0)
    }
}

/// The conditional headers of one request, sent verbatim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    /// `If-Match` header value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    /// `If-None-Match` header value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_none_match: Option<String>,
    /// `If-Modified-Since` (an HTTP date), for reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_modified_since: Option<String>,
    /// `If-Unmodified-Since` (an HTTP date), for reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_unmodified_since: Option<String>,
}

impl Precondition {
    /// No conditional header at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// `If-None-Match: *`: write only if nothing is there.
    pub fn create_only() -> Self {
        Self {
            if_none_match: Some("*".into()),
            ..Self::default()
        }
    }

    /// `If-Match: E`: write only if the object is still version `E`.
    pub fn if_match(etag: &ETag) -> Self {
        Self {
            if_match: Some(etag.as_str().to_owned()),
            ..Self::default()
        }
    }
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(v) = &self.if_match {
            parts.push(format!("If-Match: {v}"));
        }
        if let Some(v) = &self.if_none_match {
            parts.push(format!("If-None-Match: {v}"));
        }
        if let Some(v) = &self.if_modified_since {
            parts.push(format!("If-Modified-Since: {v}"));
        }
        if let Some(v) = &self.if_unmodified_since {
            parts.push(format!("If-Unmodified-Since: {v}"));
        }
        if parts.is_empty() {
            f.write_str("unconditional")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The S3 operation a request performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    PutObject,
    GetObject,
    HeadObject,
    DeleteObject,
    DeleteObjects,
    CopyObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
}

impl Operation {
    /// The HTTP method S3 uses for the operation.
    pub fn method(self) -> &'static str {
        match self {
            Operation::PutObject => "PUT",
            Operation::GetObject => "GET",
            Operation::HeadObject => "HEAD",
            Operation::DeleteObject => "DELETE",
            Operation::DeleteObjects => "POST",
            Operation::CopyObject => "PUT",
            Operation::CreateMultipartUpload => "POST",
            Operation::UploadPart => "PUT",
            Operation::CompleteMultipartUpload => "POST",
        }
    }
}

/// What the server answered to one request, and the request itself: the wire
/// exchange that later serves as evidence for a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The operation sent.
    pub operation: Operation,
    /// The HTTP method of the request.
    #[serde(default)]
    pub method: String,
    /// The request path: `/bucket/key` and the operation's query
    /// (`?uploads`, `?uploadId=…`, `?delete`).
    #[serde(default)]
    pub path: String,
    /// `x-amz-copy-source` of a CopyObject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_source: Option<String>,
    /// The request body, cut short (PUT and UploadPart bodies, the XML of
    /// CompleteMultipartUpload and DeleteObjects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// The body of a successful GET, cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<String>,
    /// The object key (full, with the run's prefix).
    pub key: String,
    /// The conditional headers sent.
    pub precondition: Precondition,
    /// HTTP status. Successful answers carry the status S3 documents for the
    /// operation (the SDK does not expose it on success).
    pub status: u16,
    /// The S3 error code of an error answer, when it had a body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The ETag header of the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<ETag>,
    /// The Last-Modified header of a successful GET or HEAD (HTTP date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The body of a successful GET.
    #[serde(skip)]
    pub body: Option<Bytes>,
    /// Why the body of a successful GET could not be read whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_error: Option<String>,
    /// The upload id a CreateMultipartUpload answered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Per-key results of a DeleteObjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<BatchItem>,
}

/// One key's result inside a DeleteObjects answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The object key.
    pub key: String,
    /// The ETag sent for it (the per-object condition), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    /// `None`: listed under `<Deleted>`; otherwise the `<Error>` code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Outcome {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `412 PreconditionFailed`-style short form of the answer.
    pub fn status_line(&self) -> String {
        match &self.code {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// A request that got no HTTP answer at all: connection refused, timeout,
/// a response that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{operation:?} {key}: {message}")]
pub struct StoreError {
    pub operation: Operation,
    pub key: String,
    pub message: String,
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
            .finish()
    }
}

/// A client bound to one bucket of one endpoint.
#[derive(Clone)]
pub struct Store {
    client: Client,
    bucket: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// Builds the SDK client for the given settings.
fn client(settings: &ClientSettings) -> Client {
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
    let config = aws_sdk_s3::config::Builder::new()
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
        .build();
    Client::from_conf(config)
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

/// How much of a body the evidence keeps.
const EVIDENCE_BODY: usize = 200;

/// A body as evidence: text (lossy), at most [`EVIDENCE_BODY`] characters.
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

/// A key as it goes into `x-amz-copy-source`: every byte but unreserved
/// characters and `/` percent-encoded.
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

/// An SDK date as an HTTP date (`Sun, 29 Nov 2026 15:12:08 GMT`).
fn http_date(d: Option<&DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(DateTimeFormat::HttpDate).ok())
}

/// Describes an SDK error with its whole source chain, one line.
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
    /// A client for `bucket` on the endpoint `settings` names.
    pub fn new(settings: &ClientSettings, bucket: impl Into<String>) -> Self {
        Self {
            client: client(settings),
            bucket: bucket.into(),
        }
    }

    /// The bucket every call works in.
    pub fn bucket(&self) -> &str {
        &self.bucket
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
                })
        };
        Ok((
            parse(&pre.if_modified_since)?,
            parse(&pre.if_unmodified_since)?,
        ))
    }

    fn failed<E>(&self, mut outcome: Outcome, err: SdkError<E>) -> Result<Outcome, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match answer_of(&err) {
            Some((status, code)) => {
                outcome.status = status;
                outcome.code = code;
                // A 304 carries the ETag of the version the client holds.
                outcome.etag = err
                    .raw_response()
                    .and_then(|r| r.headers().get("etag"))
                    .and_then(ETag::from_header);
                Ok(outcome)
            }
            None => Err(StoreError {
                operation: outcome.operation,
                key: outcome.key,
                message: describe(&err),
            }),
        }
    }

    /// PutObject with the given body and conditional headers.
    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        pre: &Precondition,
    ) -> Result<Outcome, StoreError> {
        let mut outcome = self.outcome(Operation::PutObject, key, pre);
        outcome.sent = Some(cut(&body));
        let res = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .send()
            .await;
        match res {
            Ok(out) => {
                outcome.status = 200;
                outcome.etag = out.e_tag().and_then(ETag::from_header);
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
    }

    /// GetObject with the given conditional headers; the body is read whole.
    pub async fn get(&self, key: &str, pre: &Precondition) -> Result<Outcome, StoreError> {
        let mut outcome = self.outcome(Operation::GetObject, key, pre);
        let (since, unmodified) = self.dates(Operation::GetObject, key, pre)?;
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .set_if_modified_since(since)
            .set_if_unmodified_since(unmodified)
            .send()
            .await;
        match res {
            Ok(out) => {
                outcome.status = 200;
                outcome.etag = out.e_tag().and_then(ETag::from_header);
                outcome.last_modified = http_date(out.last_modified());
                // The headers came; a body that then cannot be read whole
                // (shorter than its Content-Length, say) is part of the
                // answer, not a missing one.
                match out.body.collect().await {
                    Ok(data) => {
                        let data = data.into_bytes();
                        outcome.received = Some(cut(&data));
                        outcome.body = Some(data);
                    }
                    Err(err) => outcome.body_error = Some(describe(&err)),
                }
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
    }

    /// HeadObject with the given conditional headers.
    pub async fn head(&self, key: &str, pre: &Precondition) -> Result<Outcome, StoreError> {
        let mut outcome = self.outcome(Operation::HeadObject, key, pre);
        let (since, unmodified) = self.dates(Operation::HeadObject, key, pre)?;
        let res = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .set_if_modified_since(since)
            .set_if_unmodified_since(unmodified)
            .send()
            .await;
        match res {
            Ok(out) => {
                outcome.status = 200;
                outcome.etag = out.e_tag().and_then(ETag::from_header);
                outcome.last_modified = http_date(out.last_modified());
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
    }

    /// DeleteObject with the given conditional headers (only If-Match exists
    /// for deletes; an If-None-Match is not sent).
    pub async fn delete(&self, key: &str, pre: &Precondition) -> Result<Outcome, StoreError> {
        let mut outcome = self.outcome(Operation::DeleteObject, key, pre);
        let res = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(pre.if_match.clone())
            .send()
            .await;
        match res {
            Ok(_) => {
                outcome.status = 204;
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
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
        let res = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(copy_source)
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .send()
            .await;
        match res {
            Ok(out) => {
                outcome.status = 200;
                outcome.etag = out
                    .copy_object_result()
                    .and_then(|r| r.e_tag())
                    .and_then(ETag::from_header);
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
    }

    /// CreateMultipartUpload. The SDK has no conditional fields for it; the
    /// headers given are added to the request as they are (AWS ignores them).
    pub async fn create_upload(
        &self,
        key: &str,
        pre: &Precondition,
    ) -> Result<Outcome, StoreError> {
        let mut outcome = self.outcome(Operation::CreateMultipartUpload, key, pre);
        let headers: Vec<(&'static str, String)> = [
            ("if-match", &pre.if_match),
            ("if-none-match", &pre.if_none_match),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.clone().map(|v| (name, v)))
        .collect();
        let res = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .customize()
            .mutate_request(move |req| {
                for (name, value) in &headers {
                    req.headers_mut().insert(*name, value.clone());
                }
            })
            .send()
            .await;
        match res {
            Ok(out) => {
                outcome.status = 200;
                outcome.upload_id = out.upload_id().map(str::to_owned);
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
    }

    /// UploadPart: part `number` of the upload `upload_id`.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<Outcome, StoreError> {
        let mut outcome = self.outcome(Operation::UploadPart, key, &Precondition::none());
        outcome
            .path
            .push_str(&format!("?partNumber={number}&uploadId={upload_id}"));
        outcome.sent = Some(cut(&body));
        let res = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await;
        match res {
            Ok(out) => {
                outcome.status = 200;
                outcome.etag = out.e_tag().and_then(ETag::from_header);
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
    }

    /// CompleteMultipartUpload with the given parts `(number, ETag)` and
    /// conditional headers.
    pub async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(i32, ETag)],
        pre: &Precondition,
    ) -> Result<Outcome, StoreError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let mut outcome = self.outcome(Operation::CompleteMultipartUpload, key, pre);
        outcome.path.push_str(&format!("?uploadId={upload_id}"));
        let xml: String = parts
            .iter()
            .map(|(n, e)| {
                format!(
                    "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                    xml_text(e.as_str())
                )
            })
            .collect();
        outcome.sent = Some(format!(
            "<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>"
        ));
        let parts = parts
            .iter()
            .map(|(n, e)| {
                CompletedPart::builder()
                    .part_number(*n)
                    .e_tag(e.as_str())
                    .build()
            })
            .collect();
        let res = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_if_match(pre.if_match.clone())
            .set_if_none_match(pre.if_none_match.clone())
            .send()
            .await;
        match res {
            Ok(out) => {
                outcome.status = 200;
                outcome.etag = out.e_tag().and_then(ETag::from_header);
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
    }

    /// AbortMultipartUpload; an upload already gone is fine.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), String> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("NoSuchUpload") => Ok(()),
            Err(err) => Err(format!("AbortMultipartUpload {key}: {}", sdk_error(&err))),
        }
    }

    /// The open multipart uploads under `prefix`, as `(key, upload id)` (all
    /// pages); `None` where the store does not implement the listing.
    pub async fn list_uploads(
        &self,
        prefix: &str,
    ) -> Result<Option<Vec<(String, String)>>, String> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(e)
                    if answer_of(&e).is_some_and(|(status, code)| {
                        status == 501 || code.as_deref() == Some("NotImplemented")
                    }) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(format!("ListMultipartUploads {prefix}: {}", sdk_error(&e))),
            };
            uploads.extend(
                out.uploads()
                    .iter()
                    .filter_map(|u| Some((u.key()?.to_owned(), u.upload_id()?.to_owned()))),
            );
            match (
                out.is_truncated(),
                out.next_key_marker(),
                out.next_upload_id_marker(),
            ) {
                (Some(true), Some(k), id) if !k.is_empty() => {
                    key_marker = Some(k.to_owned());
                    id_marker = id.map(str::to_owned);
                }
                _ => break,
            }
        }
        Ok(Some(uploads))
    }

    /// Aborts every open multipart upload under `prefix` (those whose id a
    /// scenario never learnt too); returns how many (`None`: the store
    /// cannot list uploads).
    pub async fn abort_uploads(&self, prefix: &str) -> Result<Option<usize>, String> {
        let Some(uploads) = self.list_uploads(prefix).await? else {
            return Ok(None);
        };
        for (key, id) in &uploads {
            self.abort_upload(key, id).await?;
        }
        Ok(Some(uploads.len()))
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
            })?;
        let res = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await;
        match res {
            Ok(out) => {
                outcome.status = 200;
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
                Ok(outcome)
            }
            Err(err) => self.failed(outcome, err),
        }
    }

    /// Turns versioning on for the bucket; the error names the answer.
    pub async fn enable_versioning(&self) -> Result<(), String> {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        self.client
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match answer_of(&e) {
                Some((status, code)) => format!(
                    "PutBucketVersioning answered {status}{}",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                ),
                None => format!("PutBucketVersioning: {}", sdk_error(&e)),
            })
    }

    /// Whether the bucket reports versioning as enabled.
    pub async fn versioning_enabled(&self) -> Result<bool, String> {
        let out = self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| match answer_of(&e) {
                Some((status, _)) if status < 300 => format!(
                    "GetBucketVersioning answered {status}, but its XML is not a VersioningConfiguration"
                ),
                Some((status, code)) => format!(
                    "GetBucketVersioning answered {status}{}",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                ),
                None => format!("GetBucketVersioning: {}", sdk_error(&e)),
            })?;
        Ok(out.status().map(|s| s.as_str()) == Some("Enabled"))
    }

    /// Deletes every version and delete marker under `prefix` of a
    /// versioned bucket; returns how many it deleted.
    pub async fn delete_versions(&self, prefix: &str) -> Result<usize, String> {
        let mut n = 0;
        loop {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .map_err(|e| format!("ListObjectVersions {prefix}: {}", sdk_error(&e)))?;
            let mut found: Vec<(String, Option<String>)> = Vec::new();
            for v in out.versions() {
                found.push((
                    v.key().unwrap_or_default().to_owned(),
                    v.version_id().map(str::to_owned),
                ));
            }
            for m in out.delete_markers() {
                found.push((
                    m.key().unwrap_or_default().to_owned(),
                    m.version_id().map(str::to_owned),
                ));
            }
            if found.is_empty() {
                return Ok(n);
            }
            for (key, version) in found {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .set_version_id(version)
                    .send()
                    .await
                    .map_err(|e| format!("DeleteObject {key} (a version): {}", sdk_error(&e)))?;
                n += 1;
            }
            if n > 10_000 {
                return Err(format!(
                    "ListObjectVersions {prefix} keeps listing versions after {n} deletes"
                ));
            }
        }
    }

    /// A client for another bucket of the same endpoint.
    pub fn for_bucket(&self, bucket: impl Into<String>) -> Self {
        Self {
            client: self.client.clone(),
            bucket: bucket.into(),
        }
    }

    /// Every key under `prefix` (all pages).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| format!("ListObjectsV2 {prefix}: {}", sdk_error(&e)))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match (out.is_truncated(), out.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Deletes each of `keys` unconditionally; a key that is not there is
    /// fine.
    pub async fn delete_keys(&self, keys: impl IntoIterator<Item = &String>) -> Result<(), String> {
        for key in keys {
            match self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Some("NoSuchKey") => {}
                Err(e) => return Err(format!("DeleteObject {key}: {}", sdk_error(&e))),
            }
        }
        Ok(())
    }

    /// Deletes every object under `prefix`; returns how many it deleted.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, String> {
        let keys = self.list(prefix).await?;
        for key in &keys {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| format!("DeleteObject {key}: {}", sdk_error(&e)))?;
        }
        Ok(keys.len())
    }

    /// Creates the bucket; an already-owned bucket is fine.
    pub async fn create_bucket(&self) -> Result<(), String> {
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(err) => Err(format!("CreateBucket {}: {}", self.bucket, sdk_error(&err))),
        }
    }

    /// Deletes the (empty) bucket.
    pub async fn delete_bucket(&self) -> Result<(), String> {
        self.client
            .delete_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("DeleteBucket {}: {}", self.bucket, sdk_error(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_comparison_ignores_quotes_and_weakness() {
        let a = ETag::new("\"abc\"");
        assert!(a.same_version(&ETag::new("abc")));
        assert!(a.same_version(&ETag::new("W/\"abc\"")));
        assert!(!a.same_version(&ETag::new("\"abd\"")));
        assert_eq!(a.opaque(), "abc");
    }

    #[test]
    fn precondition_display_names_the_headers() {
        assert_eq!(Precondition::none().to_string(), "unconditional");
        assert_eq!(Precondition::create_only().to_string(), "If-None-Match: *");
        assert_eq!(
            Precondition::if_match(&ETag::new("\"e\"")).to_string(),
            "If-Match: \"e\""
        );
    }

    #[test]
    fn client_settings_debug_hides_the_secret() {
        let mut s = ClientSettings::local("http://127.0.0.1:1".into(), "AK", "very-secret");
        s.session_token = Some("token-secret".into());
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
        assert!(!dbg.contains("token-secret"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}
