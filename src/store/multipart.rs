//! The multipart upload requests: create, upload a part, complete (with
//! conditions), abort, and the listing of open uploads the clean-up uses.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{answer_of, cut, xml_text, RequestError, Store, StoreError};
use crate::model::{ETag, Operation, Outcome, Precondition};

impl Store {
    /// CreateMultipartUpload. The SDK has no conditional fields for it; the
    /// headers given are added to the request as they are (AWS ignores them).
    pub async fn create_upload(
        &self,
        key: &str,
        pre: &Precondition,
    ) -> Result<Outcome, StoreError> {
        let outcome = self.outcome(Operation::CreateMultipartUpload, key, pre);
        let headers: Vec<(&'static str, String)> = [
            ("if-match", &pre.if_match),
            ("if-none-match", &pre.if_none_match),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.clone().map(|v| (name, v)))
        .collect();
        let request = self
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
            .send();
        let (mut outcome, out) = self.call(outcome, request).await?;
        if let Some(out) = out {
            outcome.upload_id = out.upload_id().map(str::to_owned);
        }
        Ok(outcome)
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
        self.written.part(body.len());
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send();
        let (mut outcome, out) = self.call(outcome, request).await?;
        if let Some(out) = out {
            outcome.etag = out.e_tag().and_then(ETag::from_header);
        }
        Ok(outcome)
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
        let request = self
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
            .send();
        let (mut outcome, out) = self.call(outcome, request).await?;
        if let Some(out) = out {
            outcome.etag = out.e_tag().and_then(ETag::from_header);
        }
        Ok(outcome)
    }

    /// AbortMultipartUpload; an upload already gone is fine.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), RequestError> {
        let request = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send();
        match self
            .call_plain(|| format!("AbortMultipartUpload {key}"), request)
            .await
        {
            Ok(_) => Ok(()),
            Err((_, Some(err))) if err.code() == Some("NoSuchUpload") => Ok(()),
            Err((e, _)) => Err(e),
        }
    }

    /// The open multipart uploads under `prefix`, as `(key, upload id)` (all
    /// pages); `None` where the store does not implement the listing.
    pub async fn list_uploads(
        &self,
        prefix: &str,
    ) -> Result<Option<Vec<(String, String)>>, RequestError> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let request = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send();
            let out = match self
                .call_plain(|| format!("ListMultipartUploads {prefix}"), request)
                .await
            {
                Ok(out) => out,
                Err((_, Some(e)))
                    if answer_of(&e).is_some_and(|(status, code)| {
                        status == 501 || code.as_deref() == Some("NotImplemented")
                    }) =>
                {
                    return Ok(None)
                }
                // rclone answers a listing that finds nothing with 404
                // NoSuchUpload.
                Err((_, Some(e))) if e.code() == Some("NoSuchUpload") => return Ok(Some(uploads)),
                Err((e, _)) => return Err(e),
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
    pub async fn abort_uploads(&self, prefix: &str) -> Result<Option<usize>, RequestError> {
        let Some(uploads) = self.list_uploads(prefix).await? else {
            return Ok(None);
        };
        for (key, id) in &uploads {
            self.abort_upload(key, id).await?;
        }
        Ok(Some(uploads.len()))
    }
}
