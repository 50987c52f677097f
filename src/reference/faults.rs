//! Fault profiles: the rules of AWS's semantics the reference server can
//! break on purpose, so every scenario is shown to fail on a store that
//! breaks what it checks.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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
    /// `If-Match` on a missing key answers 412 instead of AWS's 404 NoSuchKey
    /// (on GET and HEAD, If-Unmodified-Since too: SeaweedFS up to 4.44).
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
    /// In a versioned bucket, `If-None-Match: *` on a key that never had a
    /// version is answered 404 NoSuchKey (a 2025 MinIO release did this).
    VersionedCreateNeedsObject,
    /// A ranged GET is served from the key's previous write (a stale range
    /// cache), a full GET from the current one.
    StaleRangedRead,
    /// A ranged GET is answered 200, with the range's bytes and a
    /// Content-Range header (rclone 1.75.2 does this).
    RangeAs200,
}

impl Fault {
    /// Every fault, in the order documentation lists them.
    pub const ALL: [Fault; 24] = [
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
        Fault::VersionedCreateNeedsObject,
        Fault::StaleRangedRead,
        Fault::RangeAs200,
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
            Fault::VersionedCreateNeedsObject => "versioned-create-needs-object",
            Fault::StaleRangedRead => "stale-ranged-read",
            Fault::RangeAs200 => "range-as-200",
        }
    }
    /// What the fault breaks, in one line (docs/faults.md).
    pub fn what(self) -> &'static str {
        match self {
            Fault::IgnoreIfNoneMatch => "ignores If-None-Match on writes",
            Fault::IgnoreIfMatch => "ignores If-Match on writes (PUT and DELETE)",
            Fault::Racy => "checks the precondition, then yields before writing, without a lock",
            Fault::MissingIfMatch412 => "412 instead of 404 for If-Match on a missing key (and on GET and HEAD for If-Unmodified-Since too, as SeaweedFS up to 4.44)",
            Fault::UnquotedIfMatch => "compares If-Match with the unquoted ETag only, so the quoted ETag it returned never matches (Ceph RGW 16 on PUT)",
            Fault::NoEtagOnWrite => "PutObject, CopyObject and CompleteMultipartUpload answers carry no ETag",
            Fault::IgnoreReadConditions => "GET and HEAD ignore conditional headers",
            Fault::RfcIfNoneMatch => "evaluates `If-None-Match: <etag>` and both headers as RFC 9110 does, where AWS answers 501",
            Fault::NoConditionalDelete => "501 to DeleteObject with If-Match",
            Fault::IfNoneMatchAsStar => "takes any If-None-Match value as `*`",
            Fault::QuotedIfMatchOnly => "compares If-Match verbatim with the quoted ETag: an unquoted one never matches",
            Fault::IgnoreUnparsedIfMatch => "drops an If-Match it cannot parse (a weak tag, a list, `*`) and writes",
            Fault::MultipartChecksAtCreate => "checks multipart conditions at CreateMultipartUpload, not at completion",
            Fault::IgnoreCopyConditions => "CopyObject ignores the destination's If-Match / If-None-Match",
            Fault::CopyWritesBeforeCheck => "CopyObject replaces the destination, then answers 412",
            Fault::DeleteObjectsIgnoresEtag => "DeleteObjects ignores the per-object `<ETag>`",
            Fault::DeleteMarkerCountsAsObject => "in a versioned bucket, a delete marker on top counts as an existing object",
            Fault::NodeLocalLock => "two nodes, each checking and writing under a lock of its own: writers on one node take turns, writers on two nodes race",
            Fault::AckWithoutWrite => "acknowledges a conditional write whose condition holds (PUT, COPY, CompleteMultipartUpload, DELETE) without applying it",
            Fault::RefuseAndWrite => "answers 412 to a conditional write whose condition fails, and applies it",
            Fault::Answer500AfterWrite => "applies the first conditional write of each key, then answers 500 InternalError: nothing is lost, the outcome is unknown (never `unsafe`)",
            Fault::VersionedCreateNeedsObject => "in a versioned bucket, answers 404 NoSuchKey to `If-None-Match: *` on a key that never had a version (as a 2025 MinIO release did)",
            Fault::StaleRangedRead => "serves a ranged GET from the key's previous write (a stale range cache); a full GET is current",
            Fault::RangeAs200 => "answers a ranged GET with 200 (the range's bytes and a Content-Range header), where AWS answers 206 (as rclone 1.75.2 does)",
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
pub(super) const RACY_WINDOW: Duration = Duration::from_millis(30);
