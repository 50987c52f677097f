//! Unit tests of the precondition checks.

use std::time::SystemTime;

use bytes::Bytes;
use s3s::{S3ErrorCode, S3Result};

use super::checks::*;
use super::store::*;
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

/// The date checks at their boundary: a date equal to Last-Modified (to
/// the second) is "not modified since" and "not modified after" it.
#[test]
fn date_conditions_hold_at_the_boundary_second() {
    let o = obj("a");
    let at = s3s::dto::Timestamp::from(o.last_modified);
    let before = s3s::dto::Timestamp::from(o.last_modified - std::time::Duration::from_secs(1));
    let none = headers(&[]);
    // If-Unmodified-Since: equal holds, a second earlier fails.
    assert_eq!(code(check_read(&[], &none, None, Some(&at), &o)), None);
    assert_eq!(
        code(check_read(&[], &none, None, Some(&before), &o)),
        Some(S3ErrorCode::PreconditionFailed)
    );
    // If-Modified-Since: equal is not modified, a second earlier is.
    assert_eq!(
        code(check_read(&[], &none, Some(&at), None, &o)),
        Some(S3ErrorCode::NotModified)
    );
    assert_eq!(code(check_read(&[], &none, Some(&before), None, &o)), None);
}
