//! What the reference server stores, and the answer every check gives on
//! a failed condition: shared by the checks and the store, below both.

use std::time::SystemTime;

use bytes::Bytes;
use s3s::{s3_error, S3Error};

/// One stored object version.
#[derive(Clone)]
pub(super) struct Object {
    pub(super) body: Bytes,
    /// MD5 hex (or multipart `md5-N`), unquoted.
    pub(super) etag: String,
    pub(super) last_modified: SystemTime,
}

pub(super) fn precondition_failed() -> S3Error {
    s3_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    )
}

pub(super) fn no_such_key() -> S3Error {
    s3_error!(NoSuchKey, "The specified key does not exist.")
}
