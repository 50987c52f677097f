//! The shared vocabulary every stage speaks: entity tags, the conditional
//! headers of a request, what a store answered, and the verdicts.
//!
//! `catalog`, `engine`, `store` and `report` import these types from here,
//! not from each other; `store` keeps the S3 SDK to itself and turns its
//! answers into an [`Outcome`].

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The answer header in which the reference server says when it had a PUT's
/// whole body: microseconds since the server started (the race reads it to
/// say how close together its racers' writes arrived).
pub const RECEIVED_HEADER: &str = "x-condwrite-received-us";

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
    /// `Range` (GET only): not a condition, but sent with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
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
        if let Some(v) = &self.range {
            parts.push(format!("Range: {v}"));
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
    /// PutObject.
    PutObject,
    /// GetObject.
    GetObject,
    /// HeadObject.
    HeadObject,
    /// DeleteObject.
    DeleteObject,
    /// DeleteObjects (a batch).
    DeleteObjects,
    /// CopyObject.
    CopyObject,
    /// CreateMultipartUpload.
    CreateMultipartUpload,
    /// UploadPart.
    UploadPart,
    /// CompleteMultipartUpload.
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
    /// HTTP status, as the server sent it.
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

/// What one request was answered, as an application's profile compares it:
/// the status and S3 error code (`status` is `None` when no answer came).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Answered {
    /// The HTTP status, if one is expected.
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The error code, if one is expected.
    pub code: Option<String>,
}

impl Answered {
    /// The answer of `outcome`.
    pub fn of(outcome: &Outcome) -> Self {
        Self {
            status: Some(outcome.status),
            code: outcome.code.clone(),
        }
    }

    /// A request that got no answer.
    pub fn none() -> Self {
        Self {
            status: None,
            code: None,
        }
    }

    /// A 2xx answer: the store said it did it.
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl fmt::Display for Answered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.code) {
            (None, _) => f.write_str("no answer"),
            (Some(s), Some(c)) => write!(f, "{s} {c}"),
            (Some(s), None) => write!(f, "{s}"),
        }
    }
}

/// How a target answered one scenario, graded as the Autobahn testsuite
/// grades: what a user of conditional writes fears most is silent loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Behaves as AWS S3 documents.
    Pass,
    /// An informational scenario recorded a property (the reason says
    /// which); never a failure.
    Info,
    /// Safe (nothing overwritten, at most one winner) but answers differently.
    Deviates,
    /// Refuses the conditional request explicitly and changes nothing.
    Unsupported,
    /// The harness could not judge (target down, setup failed, timeout).
    Error,
    /// The condition was ignored or violated: data overwritten, created or
    /// lost, more than one racer won.
    Unsafe,
}

impl Verdict {
    /// Every verdict, best first.
    pub const ALL: [Verdict; 6] = [
        Verdict::Pass,
        Verdict::Info,
        Verdict::Deviates,
        Verdict::Unsupported,
        Verdict::Error,
        Verdict::Unsafe,
    ];

    /// The lowercase name used in every output.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Info => "info",
            Verdict::Deviates => "deviates",
            Verdict::Unsupported => "unsupported",
            Verdict::Error => "error",
            Verdict::Unsafe => "unsafe",
        }
    }

    /// What the verdict means, in one line (for legends).
    pub fn meaning(self) -> &'static str {
        match self {
            Verdict::Pass => "behaves as AWS S3 documents",
            Verdict::Info => "an informational scenario recorded a property (the reason says which); never a failure",
            Verdict::Deviates => "safe (nothing overwritten, at most one winner), but answers differently from AWS",
            Verdict::Unsupported => "refuses the conditional request explicitly (501, 400) and changes nothing",
            Verdict::Error => "condwrite could not judge (target down, set-up failed, timeout)",
            Verdict::Unsafe => "the condition was ignored or violated: data overwritten, created or lost, more than one racer won, a refused write that still changed bytes",
        }
    }

    /// A mark for tables in docs.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "✅",
            Verdict::Info => "ℹ️",
            Verdict::Deviates => "⚠️",
            Verdict::Unsupported => "⛔",
            Verdict::Error => "❓",
            Verdict::Unsafe => "❌",
        }
    }

    /// Whether the cell fails a run (always for unsafe and error; with
    /// `strict` also for deviates and unsupported).
    pub fn fails(self, strict: bool) -> bool {
        match self {
            Verdict::Pass | Verdict::Info => false,
            Verdict::Deviates | Verdict::Unsupported => strict,
            Verdict::Error | Verdict::Unsafe => true,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Orders two release names as versions, not as text: runs of digits
/// compare as numbers (`4.9` < `4.10`, `2.35.5` < `2.36.0`), everything
/// else as text (`2024-08-17T01-24-54Z` < `2025-07-23T15-54-02Z`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    /// The release as runs of digits (numbers) and of other characters.
    fn chunks(s: &str) -> Vec<Result<u128, &str>> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            let digit = c.is_ascii_digit();
            let end = rest
                .find(|x: char| x.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            // A run of digits too long for a number compares as text.
            out.push(if digit {
                chunk.parse().map_err(|_| chunk)
            } else {
                Err(chunk)
            });
            rest = tail;
        }
        out
    }
    chunks(a).cmp(&chunks(b)).then_with(|| a.cmp(b))
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
    fn versions_order_by_number_not_by_text() {
        use std::cmp::Ordering::Less;
        for (a, b) in [
            ("4.9", "4.10"),
            ("2.35.5", "2.36.0"),
            ("2.30.1", "2.35.1"),
            ("4.48", "4.48.1"),
            ("2024-08-17T01-24-54Z", "2025-07-23T15-54-02Z"),
            ("1.0-rc1", "1.0-rc2"),
        ] {
            assert_eq!(compare_versions(a, b), Less, "{a} < {b}");
            assert_eq!(compare_versions(b, a), Less.reverse(), "{b} > {a}");
        }
        let mut v = vec!["4.44", "4.100", "4.5", "4.45"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(v, ["4.5", "4.44", "4.45", "4.100"]);
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
}

/// A problem in a file the user wrote (a suite, a profile, a targets
/// file), with its place: `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file, as given.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub col: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for FileError {}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

impl FileError {
    /// The problem `message` at byte `offset` of the file's `text` (its
    /// start when the place is not known).
    pub fn at(file: &str, text: &str, offset: Option<usize>, message: impl Into<String>) -> Self {
        let (line, col) = line_col(text, offset.unwrap_or(0));
        FileError {
            file: file.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    /// A file that does not parse as TOML (or into the shape expected), at
    /// the place the parser names, its message on one line.
    pub fn of_toml(file: &str, text: &str, e: &toml::de::Error) -> Self {
        Self::at(
            file,
            text,
            e.span().map(|s| s.start),
            e.message().trim_end().replace('\n', "; "),
        )
    }

    /// A problem with the file as a whole (it cannot be read, say).
    pub fn whole(file: &str, message: impl Into<String>) -> Self {
        FileError {
            file: file.to_owned(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

/// What the engine concluded about one scenario on one target: a cell of
/// the report holds it as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// One line: `Expected: … Actual: …`.
    pub reason: String,
    /// Wall time of the scenario, read-backs and clean-up included.
    pub duration_ms: u64,
    /// The exchanges that decided the verdict.
    #[serde(default)]
    pub evidence: Vec<Outcome>,
    /// The answers the verdict rests on (the graded request's status and
    /// error code, a race's losers'), which an application profile compares
    /// with the answers the application handles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<Answered>,
}
