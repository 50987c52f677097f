//! The S3 operations the reference server answers (one `s3s` trait
//! implementation), each applying its precondition under the store lock.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::checks::*;
use super::store::*;
use super::Fault;
use bytes::BytesMut;
use s3s::dto::{self, StreamingBlob, Timestamp};
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

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
        let S3Request {
            input,
            headers,
            extensions,
            ..
        } = req;
        let body = read_body(input.body).await?;
        // When the whole body was here, for the racers' arrival spread.
        let received = self.received_header(extensions.get());
        let new = Object {
            etag: md5_hex(&body),
            body,
            last_modified: SystemTime::now(),
        };
        let etag = new.etag.clone();
        if let Err(mut e) = self
            .write_checked(&input.bucket, &input.key, &headers, new, true)
            .await
        {
            e.set_headers(received);
            return Err(e);
        }
        let mut answer = S3Response::new(dto::PutObjectOutput {
            e_tag: (!self.has(Fault::NoEtagOnWrite)).then(|| strong(&etag)),
            ..Default::default()
        });
        answer.headers = received;
        Ok(answer)
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
        let (body, content_range) = match &input.range {
            None => (obj.body.clone(), None),
            Some(range) => {
                let full = obj.body.len() as u64;
                let at = range
                    .check(full)
                    .map_err(|_| s3_error!(InvalidRange, "the range is not satisfiable"))?;
                let source = if self.has(Fault::StaleRangedRead) {
                    let mut state = self.lock();
                    let b = bucket_mut(&mut state, &input.bucket)?;
                    b.previous
                        .get(&input.key)
                        .cloned()
                        .unwrap_or(obj.body.clone())
                } else {
                    obj.body.clone()
                };
                let end = (at.end as usize).min(source.len());
                let start = (at.start as usize).min(end);
                (
                    source.slice(start..end),
                    Some(format!("bytes {}-{}/{full}", at.start, at.end - 1)),
                )
            }
        };
        // s3s answers 206 for an output with a Content-Range; the
        // `range-as-200` fault sends the header beside the output instead,
        // so the answer is a 200 with the range's bytes.
        let as_200 = self.has(Fault::RangeAs200);
        let header_range = if as_200 { content_range.clone() } else { None };
        let len = body.len() as i64;
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let mut response = S3Response::new(dto::GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(len),
            content_range: if as_200 { None } else { content_range },
            accept_ranges: Some("bytes".into()),
            e_tag: Some(strong(&obj.etag)),
            last_modified: Some(Timestamp::from(obj.last_modified)),
            ..Default::default()
        });
        if let Some(range) = header_range.and_then(|r| http::HeaderValue::from_str(&r).ok()) {
            response.headers.insert(http::header::CONTENT_RANGE, range);
        }
        Ok(response)
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
