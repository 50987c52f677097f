//! Precondition checks (`If-Match`, `If-None-Match`, dates) on writes and
//! reads, and small helpers of the S3 handlers.

use std::time::SystemTime;

use super::object::{no_such_key, precondition_failed, Object};
use super::Fault;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::{ETag as DtoETag, StreamingBlob, Timestamp};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

/// The raw value of a header, if present and text.
pub(super) fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether an `If-Match`-style list (`*`, or comma-separated tags, quoted or
/// not, weak or strong) names the stored tag. AWS compares the opaque value.
pub(super) fn list_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|item| {
        item == "*" || {
            let item = item.strip_prefix("W/").unwrap_or(item);
            item.trim_matches('"') == etag
        }
    })
}

pub(super) fn not_implemented() -> S3Error {
    s3_error!(
        NotImplemented,
        "A header you provided implies functionality that is not implemented"
    )
}

/// Whether `If-Match` names the stored version, as the server's faults say.
pub(super) fn if_match_holds(faults: &[Fault], list: &str, etag: &str) -> bool {
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
pub(super) fn check_if_match(
    faults: &[Fault],
    if_match: &str,
    current: Option<&Object>,
) -> S3Result<()> {
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
pub(super) fn check_write(
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
pub(super) fn secs(t: SystemTime) -> i64 {
    time::OffsetDateTime::from(t).unix_timestamp()
}

pub(super) fn ts_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// AWS's (RFC 7232's) checks for a read (GetObject / HeadObject).
pub(super) fn check_read(
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

pub(super) fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub(super) async fn read_body(body: Option<StreamingBlob>) -> S3Result<Bytes> {
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

pub(super) fn strong(etag: &str) -> DtoETag {
    DtoETag::Strong(etag.to_owned())
}
