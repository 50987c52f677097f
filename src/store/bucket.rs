//! Buckets, versioning, listing and clean-up: the requests that set a run
//! up and take it down, whose failures are messages rather than outcomes.

use aws_sdk_s3::error::ProvideErrorMetadata;

use super::{answer_of, Failure, RequestError, Store};

/// The buckets scenarios made for themselves (versioning scenarios) and have
/// not removed yet: an interrupted run removes them.
fn scenario_buckets() -> std::sync::MutexGuard<'static, Vec<String>> {
    static OPEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    OPEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The buckets made for scenarios beside the bucket `of` and not removed
/// yet.
pub fn open_scenario_buckets(of: &str) -> Vec<String> {
    let prefix = format!("{of}-v");
    scenario_buckets()
        .iter()
        .filter(|b| b.starts_with(&prefix))
        .cloned()
        .collect()
}

impl Store {
    /// A client for a new bucket of a scenario's own beside this one
    /// (`BUCKET-vN`), registered until [`Store::delete_scenario_bucket`]
    /// removes it (an interrupted run removes what is still registered).
    pub fn scenario_bucket(&self) -> Store {
        use std::sync::atomic::{AtomicU32, Ordering};
        static MADE: AtomicU32 = AtomicU32::new(0);
        let n = MADE.fetch_add(1, Ordering::SeqCst);
        let bucket = format!("{}-v{n}", self.bucket);
        scenario_buckets().push(bucket.clone());
        self.for_bucket(bucket)
    }

    /// Deletes a bucket [`Store::scenario_bucket`] made; once it is gone it
    /// is no longer registered.
    pub async fn delete_scenario_bucket(&self) -> Result<(), RequestError> {
        self.delete_bucket().await?;
        scenario_buckets().retain(|b| *b != self.bucket);
        Ok(())
    }

    /// Creates the bucket; an already-owned bucket is fine.
    pub async fn create_bucket(&self) -> Result<(), RequestError> {
        let request = self.client.create_bucket().bucket(&self.bucket).send();
        match self
            .call_plain(|| format!("CreateBucket {}", self.bucket), request)
            .await
        {
            Ok(_) => Ok(()),
            Err((_, Some(err))) if err.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err((e, _)) => Err(e),
        }
    }

    /// Deletes the (empty) bucket.
    pub async fn delete_bucket(&self) -> Result<(), RequestError> {
        let request = self.client.delete_bucket().bucket(&self.bucket).send();
        self.call_plain(|| format!("DeleteBucket {}", self.bucket), request)
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }

    /// Turns versioning on for the bucket; the error names the answer.
    pub async fn enable_versioning(&self) -> Result<(), RequestError> {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        let request = self
            .client
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send();
        self.call_plain(|| "PutBucketVersioning".into(), request)
            .await
            .map(|_| ())
            .map_err(|(err, e)| match e.as_ref().and_then(answer_of) {
                Some((status, code)) => err.reworded(format!(
                    "PutBucketVersioning answered {status}{}",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                )),
                None => err,
            })
    }

    /// Whether the bucket reports versioning as enabled.
    pub async fn versioning_enabled(&self) -> Result<bool, RequestError> {
        let request = self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send();
        let out = self
            .call_plain(|| "GetBucketVersioning".into(), request)
            .await
            .map_err(|(err, e)| match e.as_ref().and_then(answer_of) {
                Some((status, _)) if status < 300 => RequestError {
                    failure: Failure::Unexpected,
                    message: format!(
                        "GetBucketVersioning answered {status}, but its XML is not a VersioningConfiguration"
                    ),
                },
                Some((status, code)) => err.reworded(format!(
                    "GetBucketVersioning answered {status}{}",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                )),
                None => err,
            })?;
        Ok(out.status().map(|s| s.as_str()) == Some("Enabled"))
    }

    /// Deletes every version and delete marker under `prefix` of a
    /// versioned bucket; returns how many it deleted.
    pub async fn delete_versions(&self, prefix: &str) -> Result<usize, RequestError> {
        let mut n = 0;
        loop {
            let request = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send();
            let out = self
                .call_plain(|| format!("ListObjectVersions {prefix}"), request)
                .await
                .map_err(|(e, _)| e)?;
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
                let request = self
                    .client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .set_version_id(version)
                    .send();
                self.call_plain(|| format!("DeleteObject {key} (a version)"), request)
                    .await
                    .map_err(|(e, _)| e)?;
                n += 1;
            }
            if n > 10_000 {
                return Err(RequestError {
                    failure: Failure::Unexpected,
                    message: format!(
                        "ListObjectVersions {prefix} keeps listing versions after {n} deletes"
                    ),
                });
            }
        }
    }

    /// Every version and delete marker under `prefix` (first page of up to
    /// 1000): `(key, version id, whether it is a delete marker)`.
    pub async fn list_versions(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Option<String>, bool)>, RequestError> {
        let request = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send();
        let out = self
            .call_plain(|| format!("ListObjectVersions {prefix}"), request)
            .await
            .map_err(|(e, _)| e)?;
        let mut found: Vec<(String, Option<String>, bool)> = Vec::new();
        for v in out.versions() {
            found.push((
                v.key().unwrap_or_default().to_owned(),
                v.version_id().map(str::to_owned),
                false,
            ));
        }
        for m in out.delete_markers() {
            found.push((
                m.key().unwrap_or_default().to_owned(),
                m.version_id().map(str::to_owned),
                true,
            ));
        }
        Ok(found)
    }

    /// Every key under `prefix` (all pages).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, RequestError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send();
            let out = self
                .call_plain(|| format!("ListObjectsV2 {prefix}"), request)
                .await
                .map_err(|(e, _)| e)?;
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
    pub async fn delete_keys(
        &self,
        keys: impl IntoIterator<Item = &String>,
    ) -> Result<(), RequestError> {
        for key in keys {
            let request = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send();
            match self
                .call_plain(|| format!("DeleteObject {key}"), request)
                .await
            {
                Ok(_) => {}
                Err((_, Some(e))) if e.code() == Some("NoSuchKey") => {}
                Err((e, _)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes every object under `prefix`; returns how many it deleted.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, RequestError> {
        let keys = self.list(prefix).await?;
        self.delete_keys(&keys).await?;
        Ok(keys.len())
    }
}
