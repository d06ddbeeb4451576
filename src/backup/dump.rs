//! Streaming `pg_dump` → gzip → (age, when sealed) → storage, hashing and counting as
//! it goes.
//!
//! pg_dump runs as its own process; this side reads its output, compresses it and
//! writes it into the storage's sink on a blocking thread, while (for S3) the upload
//! runs on the async runtime. The write is completed only after pg_dump exited 0 and
//! the compressor finished; on any failure it is aborted and leaves nothing behind.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use flate2::Compression;
use sha2::{Digest, Sha256};

use super::hashing::HashingWriter;

use super::error::BackupError;
use crate::seal::SealingWriter;
use crate::storage::manifest::{Manifest, Sealed, FORMAT, SEALED_FORMAT};
use crate::storage::{Sink, Storage};

/// Everything needed to take one backup.
pub struct DumpRequest {
    pub pg_dump: std::path::PathBuf,
    /// The target, secrets apart: the password travels in PGPASSWORD, never in argv.
    pub target: crate::redact::SplitUrl,
    pub id: String,
    pub lock_wait: Duration,
    pub compression_level: u32,
    /// `pg_database_size`, to choose a part size that can never hit S3's part limit.
    pub database_bytes: i64,
    /// Facts for the manifest.
    pub manifest: Manifest,
    /// Seal the backup to these (`backup.age_recipients`).
    pub recipients: Option<crate::seal::Recipients>,
}

/// A finished backup: object and manifest both in place.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Artifact {
    pub id: String,
    /// A path or an `s3://` URL.
    pub location: String,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    pub sha256: String,
}

const MIB: u64 = 1 << 20;
/// S3 allows 10,000 parts; aim for at most 9,000 even if the dump is twice the size
/// of the database (text can be wider than the binary it came from).
const MAX_PARTS: u64 = 9_000;

/// One part size for the whole upload (some stores demand equal parts): at least
/// 8 MiB, a whole number of MiB, large enough that the part limit cannot be reached.
pub fn part_size_for(database_bytes: i64) -> usize {
    let expected = 2 * database_bytes.max(0) as u64;
    let needed = expected.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.clamp(8 * MIB, 5 * 1024 * MIB) as usize
}

/// Takes the backup into `storage`. `progress` gets the raw byte count a few times a second.
pub async fn take(
    request: DumpRequest,
    storage: &Storage,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Artifact, BackupError> {
    let sealed = request.recipients.is_some();
    let (sink, pending) = storage
        .begin(&request.id, sealed, part_size_for(request.database_bytes))
        .await?;
    let dumped = tokio::task::spawn_blocking(move || {
        let mut sink = sink;
        let sums = stream_dump(&request, &mut sink, progress)
            .and_then(|sums| sink.close().map(|()| sums).map_err(BackupError::Stream));
        (request, sums)
    })
    .await;
    let (request, sums) = match dumped {
        Ok((request, Ok(sums))) => (request, sums),
        Ok((_, Err(e))) => {
            // When the upload failed first, its error is the one worth reading.
            return Err(match pending.abort().await {
                Some(upload_error) => BackupError::Upload(upload_error),
                None => e,
            });
        }
        Err(join) => {
            pending.abort().await;
            return Err(BackupError::Stream(std::io::Error::other(join.to_string())));
        }
    };
    let (raw_bytes, compressed_bytes, sha256) = sums;
    let mut manifest = request.manifest;
    manifest.object = crate::storage::object_name(&request.id, sealed);
    manifest.format = match sealed {
        true => SEALED_FORMAT,
        false => FORMAT,
    }
    .into();
    manifest.locked_until = pending.locked_until();
    manifest.sealed = request.recipients.as_ref().map(|r| Sealed {
        scheme: "age".into(),
        recipients: r.keys(),
    });
    manifest.raw_bytes = raw_bytes;
    manifest.compressed_bytes = compressed_bytes;
    manifest.sha256 = sha256.clone();
    manifest.finished_at = chrono::Utc::now().to_rfc3339();
    let bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    pending.complete(&bytes).await?;
    Ok(Artifact {
        location: storage.location(&manifest.object),
        id: request.id,
        raw_bytes,
        compressed_bytes,
        sha256,
    })
}

/// Raw bytes compressed as one independent gzip member.
const BLOCK: usize = 1 << 20;

/// pg_dump's output is read here and cut into blocks; a few worker threads compress
/// the blocks in parallel, each into a complete gzip member that says its own size
/// ([`super::members`]: a multi-member gzip file is ordinary gzip, `gunzip` takes it
/// whole, and verify inflates the members in parallel); one writer
/// thread puts the members back in order, hashes them and writes them to the sink.
/// Compression is the bottleneck of a backup; this spreads it over the cores. Sealed,
/// the members are encrypted on the writer thread as one age stream (a few percent of
/// gzip's work), so what is hashed and stored is the ciphertext.
/// Returns (raw bytes, stored bytes, SHA-256 of what was stored).
fn stream_dump(
    request: &DumpRequest,
    sink: &mut Sink,
    progress: impl Fn(u64),
) -> Result<(u64, u64, String), BackupError> {
    let level = Compression::new(request.compression_level);
    std::thread::scope(|scope| {
        let (blocks, members) =
            super::in_order::spawn(scope, super::in_order::workers(), move |block: Vec<u8>| {
                super::members::framed(&block, level)
            });
        let recipients = request.recipients.as_ref();
        let writer = scope.spawn(move || -> std::io::Result<(u64, String)> {
            let hashing = HashingWriter {
                inner: sink,
                hasher: Sha256::new(),
                bytes: 0,
            };
            let mut out = SealingWriter::new(hashing, recipients).map_err(std::io::Error::other)?;
            let mut members = members;
            // Returning early drops the members, which stops the workers and the reader.
            for member in &mut members {
                out.write_all(&member?)?;
            }
            if !members.all_back() {
                return Err(std::io::Error::other("a compressed block went missing"));
            }
            let mut out = out.finish()?;
            out.flush()?;
            Ok((out.bytes, hex::encode(out.hasher.finalize())))
        });
        let raw = read_dump(request, blocks, progress);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")));
        match (raw, written) {
            (Ok(raw), Ok((bytes, sha256))) => Ok((raw, bytes, sha256)),
            // The sink failed first (an upload error, a full disk): that is the cause.
            (Err(BackupError::Stream(_)) | Ok(_), Err(e)) => Err(BackupError::Stream(e)),
            (Err(e), _) => Err(e),
        }
    })
}

/// Runs pg_dump and hands its output on in numbered blocks; returns the raw byte count
/// once pg_dump exited 0 (and only then).
fn read_dump(
    request: &DumpRequest,
    mut blocks: super::in_order::Feed<Vec<u8>>,
    progress: impl Fn(u64),
) -> Result<u64, BackupError> {
    let lock_wait = format!(
        "--lock-wait-timeout={}",
        request.lock_wait.as_millis().max(1)
    );
    let dbname = format!("--dbname={}", request.target.public);
    let mut expression = duct::cmd(
        request.pg_dump.as_os_str(),
        [
            "--format=custom",
            "--compress=0",
            "--no-password",
            lock_wait.as_str(),
            dbname.as_str(),
        ],
    )
    .stdin_null()
    .stderr_capture()
    .before_spawn(crate::children::duct_hook)
    .unchecked();
    if let Some(password) = &request.target.password {
        expression = expression.env("PGPASSWORD", password);
    }
    let mut reader = expression
        .reader()
        .map_err(|source| BackupError::PgDumpMissing {
            program: request.pg_dump.display().to_string(),
            source,
        })?;
    let mut raw: u64 = 0;
    let mut block = Vec::with_capacity(BLOCK);
    let mut last_tick = Instant::now();
    let mut send = |block: Vec<u8>| -> Result<(), BackupError> {
        blocks
            .send(block)
            .map_err(|()| BackupError::Stream(std::io::Error::other("the backup's writer stopped")))
    };
    loop {
        // The block always has room here (a full one was sent), so 0 means the end.
        let filled = block.len();
        block.resize(BLOCK, 0);
        let n = loop {
            match reader.read(&mut block[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = reader.kill();
                    return Err(BackupError::PgDumpFailed {
                        status: "read error".into(),
                        stderr: e.to_string(),
                    });
                }
            }
        };
        block.truncate(filled + n);
        if n == 0 {
            break;
        }
        raw += n as u64;
        if block.len() == BLOCK {
            let full = std::mem::replace(&mut block, Vec::with_capacity(BLOCK));
            if let Err(e) = send(full) {
                let _ = reader.kill();
                return Err(e);
            }
        }
        if last_tick.elapsed() > Duration::from_millis(200) {
            progress(raw);
            last_tick = Instant::now();
        }
    }
    // Check pg_dump's exit status before trusting a single byte of what it wrote.
    let output = reader
        .try_wait()
        .map_err(|e| BackupError::PgDumpFailed {
            status: "unknown".into(),
            stderr: e.to_string(),
        })?
        .ok_or_else(|| BackupError::PgDumpFailed {
            status: "still running at end of output".into(),
            stderr: String::new(),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let stderr = crate::redact::scrub(&stderr, &request.target.secrets);
        return Err(BackupError::PgDumpFailed {
            status: describe_status(&output.status),
            stderr,
        });
    }
    if raw == 0 {
        return Err(BackupError::PgDumpFailed {
            status: "exit 0".into(),
            stderr: "pg_dump wrote nothing".into(),
        });
    }
    if !block.is_empty() {
        send(block)?;
    }
    progress(raw);
    Ok(raw)
}

fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_keeps_small_databases_at_the_minimum() {
        assert_eq!(part_size_for(0), 8 << 20);
        assert_eq!(part_size_for(10 << 30), 8 << 20);
    }

    #[test]
    fn part_size_grows_so_the_part_limit_is_never_reached() {
        for gib in [100u64, 1_000, 5_000] {
            let db = (gib << 30) as i64;
            let part = part_size_for(db) as u64;
            assert_eq!(part % (1 << 20), 0, "whole MiB");
            assert!(
                2 * db as u64 / part < 10_000,
                "{gib} GiB: {part} bytes a part"
            );
        }
    }
}
