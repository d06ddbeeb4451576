//! S3-protocol storage (AWS, MinIO, Ceph, R2, …) through aws-sdk-s3.
//!
//! Uploads are multipart with equal parts and a bounded number of parts uploading
//! at once; each part is retried with backoff; a failed upload is aborted, and the
//! manifest is put only after the upload completed. Credentials come from the standard
//! AWS chain (environment, profile, instance role), never from ballast's config.

use std::io::Read;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, MultipartUpload as UnfinishedUpload,
};
use aws_sdk_s3::Client;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::objects::{
    id_of, is_object_of, object_name, parse_manifest, skip_bad, Listed, StorageError,
    MANIFEST_SUFFIX, OBJECT_SUFFIX, SEALED_OBJECT_SUFFIX, VERIFIED_SUFFIX,
};
use super::sink::{PartWriter, PendingUpload, Sink};
use crate::config::S3Settings;

/// Bytes of parts uploading at once. The uploader takes the next part only when a
/// slot is free, so memory holds the uploading parts, one part in the channel and the
/// one being filled: about 16 MiB plus two parts.
const IN_FLIGHT_BUDGET: usize = 16 << 20;

/// Parts uploading at once: as many as fit the budget, at least one.
fn parts_in_flight(part_size: usize) -> usize {
    (IN_FLIGHT_BUDGET / part_size.max(1)).max(1)
}
const PART_ATTEMPTS: u32 = 4;

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    settings: S3Settings,
}

fn failed(what: impl Into<String>, place: String, e: impl std::error::Error) -> StorageError {
    StorageError::Io {
        what: what.into(),
        place,
        message: DisplayErrorContext(e).to_string(),
    }
}

impl S3Store {
    pub async fn connect(settings: &S3Settings) -> S3Store {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .region(aws_config::Region::new(settings.region.clone()))
            .load()
            .await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.force_path_style)
            // A stalled connection fails the attempt (and is retried) instead of
            // hanging the backup while pg_dump holds its snapshot.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(300))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            // Many S3-compatible stores reject the SDK's default CRC checksum headers.
            config = config
                .endpoint_url(endpoint)
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                )
                .response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                );
        }
        S3Store {
            client: Client::from_conf(config.build()),
            settings: settings.clone(),
        }
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.settings.bucket, self.settings.prefix)
    }

    pub fn location(&self, object: &str) -> String {
        format!("s3://{}/{}", self.settings.bucket, self.key(object))
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.prefix)
    }

    pub(super) async fn begin(
        &self,
        id: &str,
        sealed: bool,
        part_size: usize,
    ) -> Result<(Sink, PendingUpload), StorageError> {
        let key = self.key(&object_name(id, sealed));
        // Refused before pg_dump starts: a lock the bucket cannot keep is no lock.
        let retention = match self.settings.object_lock {
            Some(lock) => {
                self.check_object_lock().await?;
                Some(Retention::from_now(lock))
            }
            None => None,
        };
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(&key);
        if let Some(retention) = &retention {
            request = request
                .object_lock_mode(retention.mode())
                .object_lock_retain_until_date(retention.until());
        }
        if let Some(class) = &self.settings.storage_class {
            request = request.storage_class(class.as_str().into());
        }
        if let Some(sse) = &self.settings.server_side_encryption {
            request = request.server_side_encryption(sse.as_str().into());
        }
        if let Some(kms) = &self.settings.kms_key_id {
            request = request.ssekms_key_id(kms);
        }
        let created = request
            .send()
            .await
            .map_err(|e| failed(format!("starting the upload of {key}"), self.describe(), e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(StorageError::Io {
                what: format!("starting the upload of {key}"),
                place: self.describe(),
                message: "the store returned no upload id".into(),
            });
        };
        let (tx, rx) = mpsc::channel(1);
        let target = PartTarget {
            client: self.client.clone(),
            bucket: self.settings.bucket.clone(),
            key: key.clone(),
            upload_id: upload_id.clone(),
        };
        let uploader = tokio::spawn(upload_parts(target.clone(), rx, parts_in_flight(part_size)));
        let upload = MultipartUpload {
            target,
            uploader,
            manifest_key: self.key(&format!("{id}{MANIFEST_SUFFIX}")),
            place: self.describe(),
            retention,
        };
        Ok((
            Sink::S3(PartWriter::new(part_size, tx)),
            PendingUpload::S3(upload),
        ))
    }

    pub(super) async fn list(&self) -> Result<Vec<Listed>, StorageError> {
        let keys = self.keys().await?;
        let prefix = &self.settings.prefix;
        let names: std::collections::HashSet<&str> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .collect();
        let mut listed = Vec::new();
        for name in &names {
            let Some(id) = id_of(name, MANIFEST_SUFFIX) else {
                continue;
            };
            let bytes = self.get_small(&format!("{id}{MANIFEST_SUFFIX}")).await?;
            // One unreadable manifest must not hide every other backup.
            let Some(manifest) = skip_bad(parse_manifest(id, &self.describe(), &bytes)) else {
                continue;
            };
            if !is_object_of(&manifest.object, id) || !names.contains(manifest.object.as_str()) {
                continue; // a manifest whose object is gone is not a backup
            }
            let verified_at = if names.contains(format!("{id}{VERIFIED_SUFFIX}").as_str()) {
                let record = self.get_small(&format!("{id}{VERIFIED_SUFFIX}")).await?;
                serde_json::from_slice::<serde_json::Value>(&record)
                    .ok()
                    .and_then(|v| v["verified_at"].as_str().map(str::to_string))
            } else {
                None
            };
            listed.push(Listed {
                location: self.location(&manifest.object),
                manifest,
                verified_at,
            });
        }
        Ok(listed)
    }

    async fn keys(&self) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.settings.bucket)
            .prefix(&self.settings.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| failed("listing objects", self.describe(), e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        Ok(keys)
    }

    /// The body of object `name` (under the prefix), as a stream.
    async fn get(&self, name: &str) -> Result<ByteStream, StorageError> {
        let key = self.key(name);
        self.client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .send()
            .await
            .map(|object| object.body)
            .map_err(|e| failed(format!("reading {key}"), self.describe(), e))
    }

    async fn get_small(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let key = self.key(name);
        let bytes = self
            .get(name)
            .await?
            .collect()
            .await
            .map_err(|e| failed(format!("reading {key}"), self.describe(), e))?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// Backups are to be kept by S3 Object Lock (`backup.s3.object_lock_days`).
    pub(super) fn locks_objects(&self) -> bool {
        self.settings.object_lock.is_some()
    }

    /// The bucket keeps Object Lock retention (it was created with Object Lock on), or
    /// the error that says it does not.
    pub(super) async fn check_object_lock(&self) -> Result<(), StorageError> {
        let bucket = &self.settings.bucket;
        let refused = |message: String| {
            StorageError::Io {
            what: "checking Object Lock".into(),
            place: self.describe(),
            message: format!(
                "{message}; backup.s3.object_lock_days needs a bucket with Object Lock enabled (set when the bucket is made, or later with versioning on): enable it on {bucket}, or remove object_lock_days"
            ),
        }
        };
        let config = self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| {
                refused(format!(
                    "the bucket has no Object Lock configuration ({})",
                    DisplayErrorContext(e)
                ))
            })?;
        let enabled = config
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            .is_some_and(|e| *e == aws_sdk_s3::types::ObjectLockEnabled::Enabled);
        match enabled {
            true => Ok(()),
            false => Err(refused("Object Lock is not enabled on the bucket".into())),
        }
    }

    pub(super) async fn put_small(&self, name: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let key = self.key(name);
        self.client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(format!("writing {key}"), self.describe(), e))
    }

    pub(super) async fn remove(&self, name: &str) -> Result<(), StorageError> {
        let key = self.key(name);
        self.client
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(format!("deleting {key}"), self.describe(), e))
    }

    /// Streams the object to a blocking reader through a small channel.
    pub(super) async fn reader(&self, object: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let mut body = self.get(object).await?;
        let (tx, rx) = mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        tokio::spawn(async move {
            loop {
                let next = body.try_next().await.map_err(std::io::Error::other);
                let done = !matches!(next, Ok(Some(_)));
                let item = match next {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                // A closed receiver means the reader stopped early: stop downloading.
                if tx.send(item).await.is_err() || done {
                    break;
                }
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            current: bytes::Bytes::new(),
        }))
    }

    /// Every unfinished multipart upload under the prefix, page by page (a store
    /// returns at most 1,000 a page).
    async fn unfinished_uploads(&self) -> Result<Vec<UnfinishedUpload>, StorageError> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut upload_id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.settings.bucket)
                .prefix(&self.settings.prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await
                .map_err(|e| failed("listing unfinished uploads", self.describe(), e))?;
            uploads.extend(page.uploads().iter().cloned());
            if page.is_truncated() != Some(true) {
                return Ok(uploads);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            upload_id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && upload_id_marker.is_none() {
                return Ok(uploads); // truncated with nowhere to go on from: stop
            }
        }
    }

    pub(super) async fn clean_stale_uploads(&self) -> Result<Vec<String>, StorageError> {
        let uploads = self.unfinished_uploads().await?;
        let now = std::time::SystemTime::now();
        let mut aborted = Vec::new();
        for upload in &uploads {
            let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
                continue;
            };
            if !key.ends_with(OBJECT_SUFFIX) && !key.ends_with(SEALED_OBJECT_SUFFIX) {
                continue; // not a backup of ours: another application's upload
            }
            let age = upload
                .initiated()
                .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if age < self.settings.stale_upload_after {
                continue; // perhaps another run's upload, still going
            }
            self.client
                .abort_multipart_upload()
                .bucket(&self.settings.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| {
                    failed(
                        format!("aborting the stale upload of {key}"),
                        self.describe(),
                        e,
                    )
                })?;
            aborted.push(key.to_string());
        }
        Ok(aborted)
    }
}

/// A blocking `Read` over chunks arriving from an async download.
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0), // the download finished
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[derive(Clone)]
struct PartTarget {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
}

/// Why a part did not upload.
#[derive(Debug, thiserror::Error)]
enum PartError {
    #[error("part {number} was refused: {message}")]
    Refused { number: i32, message: String },
    #[error("part {number} failed {PART_ATTEMPTS} times: {message}")]
    GaveUp { number: i32, message: String },
    #[error("a part's upload task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Uploads parts as the dump produces them, a bounded number at a time.
async fn upload_parts(
    target: PartTarget,
    mut rx: mpsc::Receiver<Vec<u8>>,
    in_flight: usize,
) -> Result<Vec<CompletedPart>, PartError> {
    let mut running = tokio::task::JoinSet::new();
    let mut done = Vec::new();
    let mut number = 0;
    loop {
        // A free slot first, then the next part: never hold a part waiting for a slot.
        while running.len() >= in_flight {
            done.push(running.join_next().await.expect("non-empty")??);
        }
        let Some(part) = rx.recv().await else { break };
        number += 1;
        running.spawn(upload_part(target.clone(), number, part));
    }
    while let Some(finished) = running.join_next().await {
        done.push(finished??);
    }
    done.sort_by_key(|p| p.part_number());
    Ok(done)
}

async fn upload_part(
    target: PartTarget,
    number: i32,
    part: Vec<u8>,
) -> Result<CompletedPart, PartError> {
    let body = bytes::Bytes::from(part);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = target
            .client
            .upload_part()
            .bucket(&target.bucket)
            .key(&target.key)
            .upload_id(&target.upload_id)
            .part_number(number)
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        match sent {
            Ok(out) => {
                return Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build())
            }
            Err(e) if attempt < PART_ATTEMPTS && worth_retrying(&e) => {
                tracing::warn!(
                    "part {number} of {}: attempt {attempt} failed: {}",
                    target.key,
                    DisplayErrorContext(&e)
                );
                tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt - 1))).await;
            }
            Err(e) if attempt < PART_ATTEMPTS => {
                return Err(PartError::Refused {
                    number,
                    message: DisplayErrorContext(e).to_string(),
                })
            }
            Err(e) => {
                return Err(PartError::GaveUp {
                    number,
                    message: DisplayErrorContext(e).to_string(),
                })
            }
        }
    }
}

/// Whether trying a request again can help: network failures, timeouts, throttling
/// and server errors can pass; a refusal (access denied, no such bucket or upload, a
/// bad request) will only be refused again, so the upload stops at once.
fn worth_retrying<E>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(service) => retryable_status(service.raw().status().as_u16()),
        _ => true,
    }
}

fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// An upload under way: completes (then puts the manifest) or aborts.
pub struct MultipartUpload {
    target: PartTarget,
    uploader: JoinHandle<Result<Vec<CompletedPart>, PartError>>,
    manifest_key: String,
    place: String,
    /// Object Lock retention for the dump and its manifest.
    retention: Option<Retention>,
}

/// S3 Object Lock retention for one backup's objects.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retention {
    compliance: bool,
    /// Whole seconds, as S3 keeps it.
    until: i64,
}

impl Retention {
    fn from_now(lock: crate::config::ObjectLock) -> Retention {
        Retention {
            compliance: lock.compliance,
            until: (chrono::Utc::now() + chrono::Duration::days(lock.days as i64)).timestamp(),
        }
    }

    fn mode(&self) -> aws_sdk_s3::types::ObjectLockMode {
        match self.compliance {
            true => aws_sdk_s3::types::ObjectLockMode::Compliance,
            false => aws_sdk_s3::types::ObjectLockMode::Governance,
        }
    }

    /// The same, as PutObjectRetention names it.
    fn retention_mode(&self) -> aws_sdk_s3::types::ObjectLockRetentionMode {
        match self.compliance {
            true => aws_sdk_s3::types::ObjectLockRetentionMode::Compliance,
            false => aws_sdk_s3::types::ObjectLockRetentionMode::Governance,
        }
    }

    fn until(&self) -> aws_sdk_s3::primitives::DateTime {
        aws_sdk_s3::primitives::DateTime::from_secs(self.until)
    }

    /// As the manifest records it.
    pub(super) fn until_rfc3339(&self) -> String {
        chrono::DateTime::<chrono::Utc>::from_timestamp(self.until, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

impl MultipartUpload {
    /// Until when Object Lock keeps this backup, when it does.
    pub(super) fn locked_until(&self) -> Option<String> {
        self.retention.as_ref().map(Retention::until_rfc3339)
    }

    pub(super) async fn complete(self, manifest: Vec<u8>) -> Result<(), StorageError> {
        let t = &self.target;
        let io = |what: &str, message: String| StorageError::Io {
            what: format!("{what} {}", t.key),
            place: self.place.clone(),
            message,
        };
        let parts = match (&mut { self.uploader }).await {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => {
                abort(t).await;
                return Err(io("uploading", e.to_string()));
            }
            Err(join) => {
                abort(t).await;
                return Err(io("uploading", join.to_string()));
            }
        };
        let completed = t
            .client
            .complete_multipart_upload()
            .bucket(&t.bucket)
            .key(&t.key)
            .upload_id(&t.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = completed {
            abort(t).await;
            return Err(io(
                "completing the upload of",
                DisplayErrorContext(e).to_string(),
            ));
        }
        if let Some(retention) = &self.retention {
            // Set at the upload's start too; said again on the object itself, for the
            // stores that do not carry it over from the upload (moto, some others).
            let kept = t
                .client
                .put_object_retention()
                .bucket(&t.bucket)
                .key(&t.key)
                .retention(
                    aws_sdk_s3::types::ObjectLockRetention::builder()
                        .mode(retention.retention_mode())
                        .retain_until_date(retention.until())
                        .build(),
                )
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
                .send()
                .await;
            if let Err(e) = kept {
                // No manifest yet, so nobody would ever list this object: remove it
                // (a delete marker, where the upload's own retention already holds it).
                remove_object(t).await;
                return Err(io(
                    "setting Object Lock retention on",
                    format!("{}; the backup was not completed", DisplayErrorContext(e)),
                ));
            }
        }
        let mut put = t
            .client
            .put_object()
            .bucket(&t.bucket)
            .key(&self.manifest_key)
            .content_type("application/json");
        if let Some(retention) = &self.retention {
            // A PUT with Object Lock retention must carry a checksum of its body.
            put = put
                .object_lock_mode(retention.mode())
                .object_lock_retain_until_date(retention.until())
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32);
        }
        let put = put.body(ByteStream::from(manifest)).send().await;
        if let Err(e) = put {
            // No manifest, no backup: do not leave an object nobody will ever list or prune.
            remove_object(t).await;
            return Err(io(
                "writing the manifest beside",
                format!("{}; the object was removed", DisplayErrorContext(e)),
            ));
        }
        Ok(())
    }

    /// The sink is gone, so the uploader ends once its parts in flight have: wait for
    /// them, so no part lands after the abort and revives the upload.
    pub(super) async fn abort(self) -> Option<String> {
        let mut uploader = self.uploader;
        let cause = match tokio::time::timeout(Duration::from_secs(120), &mut uploader).await {
            Ok(Ok(Err(e))) => Some(e.to_string()),
            Ok(_) => None,
            Err(_) => {
                uploader.abort();
                None
            }
        };
        abort(&self.target).await;
        cause
    }
}

/// Deletes the finished object of an upload whose backup could not be completed.
async fn remove_object(t: &PartTarget) {
    let _ = t
        .client
        .delete_object()
        .bucket(&t.bucket)
        .key(&t.key)
        .send()
        .await;
}

async fn abort(t: &PartTarget) {
    let result = t
        .client
        .abort_multipart_upload()
        .bucket(&t.bucket)
        .key(&t.key)
        .upload_id(&t.upload_id)
        .send()
        .await;
    if let Err(e) = result {
        tracing::warn!(
            "aborting the upload of {}: {}",
            t.key,
            DisplayErrorContext(e)
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_transient_statuses_are_retried() {
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(super::retryable_status(status), "{status}");
        }
        for status in [400, 403, 404, 409, 411] {
            assert!(!super::retryable_status(status), "{status}");
        }
    }

    #[test]
    fn parts_in_flight_fit_the_budget() {
        assert_eq!(super::parts_in_flight(8 << 20), 2);
        assert_eq!(super::parts_in_flight(5 << 20), 3);
        assert_eq!(super::parts_in_flight(64 << 20), 1);
    }
}
