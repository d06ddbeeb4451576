//! Streaming `pg_dump` → gzip → a local file, hashing and counting as it goes.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, FORMAT};
use super::BackupError;

/// Everything needed to take one backup.
pub struct DumpRequest {
    pub pg_dump: PathBuf,
    pub pg_dump_version: String,
    /// The target, secrets apart: the password travels in PGPASSWORD, never in argv.
    pub target: crate::redact::SplitUrl,
    pub dir: PathBuf,
    pub id: String,
    pub lock_wait: Duration,
    /// Facts for the manifest.
    pub manifest: Manifest,
}

/// A finished backup: object and manifest both in place.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Artifact {
    pub id: String,
    pub path: PathBuf,
    pub manifest_path: PathBuf,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    pub sha256: String,
}

/// Counts and hashes what passes through on its way to the file.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Takes the backup. Blocking: call from a blocking thread. `progress` gets the raw
/// byte count a few times a second.
pub fn write_local_backup(
    request: DumpRequest,
    progress: impl Fn(u64),
) -> Result<Artifact, BackupError> {
    let dir = &request.dir;
    std::fs::create_dir_all(dir).map_err(|source| BackupError::Folder {
        path: dir.clone(),
        source,
    })?;
    let object = format!("{}.dump.gz", request.id);
    let final_path = dir.join(&object);
    let partial = dir.join(format!(".{object}.partial"));
    let result = stream_dump(&request, &partial, progress);
    let (raw_bytes, compressed_bytes, sha256) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    // The manifest is written (under a temporary name) before the dump takes its final
    // name, so a dump never sits in place without its description; the manifest is
    // renamed last, and only a manifest makes a backup.
    let mut manifest = request.manifest;
    manifest.object = object;
    manifest.format = FORMAT.into();
    manifest.raw_bytes = raw_bytes;
    manifest.compressed_bytes = compressed_bytes;
    manifest.sha256 = sha256.clone();
    manifest.finished_at = chrono::Utc::now().to_rfc3339();
    let manifest_path = dir.join(format!("{}.manifest.json", request.id));
    let manifest_partial = dir.join(format!(".{}.manifest.json.partial", request.id));
    let text = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    let finished = (|| {
        let mut file = File::create(&manifest_partial)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&partial, &final_path)?;
        std::fs::rename(&manifest_partial, &manifest_path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(source) = finished {
        for leftover in [&manifest_partial, &manifest_path, &partial, &final_path] {
            let _ = std::fs::remove_file(leftover);
        }
        return Err(BackupError::Write {
            path: manifest_path,
            source,
        });
    }
    Ok(Artifact {
        id: request.id,
        path: final_path,
        manifest_path,
        raw_bytes,
        compressed_bytes,
        sha256,
    })
}

fn stream_dump(
    request: &DumpRequest,
    partial: &Path,
    progress: impl Fn(u64),
) -> Result<(u64, u64, String), BackupError> {
    let write_err = |source| BackupError::Write {
        path: partial.to_path_buf(),
        source,
    };
    let file = File::create(partial).map_err(write_err)?;
    let sink = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut gzip = GzEncoder::new(sink, Compression::new(3));

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

    let mut buf = vec![0u8; 256 * 1024];
    let mut raw: u64 = 0;
    let mut last_tick = Instant::now();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = reader.kill();
                return Err(BackupError::PgDumpFailed {
                    status: "read error".into(),
                    stderr: e.to_string(),
                });
            }
        };
        if let Err(e) = gzip.write_all(&buf[..n]) {
            let _ = reader.kill();
            return Err(write_err(e));
        }
        raw += n as u64;
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
    progress(raw);
    let mut sink = gzip.finish().map_err(write_err)?;
    sink.flush().map_err(write_err)?;
    let file = sink
        .inner
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    Ok((raw, sink.bytes, hex::encode(sink.hasher.finalize())))
}

fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}
