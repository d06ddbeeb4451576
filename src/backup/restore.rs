//! Streaming a backup into a database: storage → (age, when sealed) → gunzip →
//! `pg_restore`, in one transaction, with progress. The caller chooses the (empty,
//! new) database.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use super::hashing::HashingReader;
use crate::redact::SplitUrl;
use crate::seal::{Identities, SealError};
use crate::storage::manifest::Manifest;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot run {program}: {source}; install the PostgreSQL client tools")]
    Missing {
        program: String,
        source: std::io::Error,
    },
    #[error("reading the backup: {0}")]
    Read(std::io::Error),
    #[error("reading the backup from storage failed part-way ({0}); the restore was stopped")]
    Download(String),
    #[error("the object read for the restore ({bytes} bytes, SHA-256 {sha256}) is not the one verified against the manifest; it changed in storage")]
    Changed { bytes: u64, sha256: String },
    #[error("pg_restore failed ({status}); its transaction rolled back, the database is empty: {stderr}")]
    Failed { status: String, stderr: String },
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Restores the dump read from `reader` into the database at `target` with
/// `pg_restore --single-transaction --exit-on-error --no-owner` (and
/// `--no-privileges` without `grants`: for a server whose roles may differ). Blocking.
pub fn restore_into(
    reader: Box<dyn Read + Send>,
    identities: Option<&Identities>,
    pg_restore: &Path,
    target: &SplitUrl,
    manifest: &Manifest,
    grants: bool,
    progress: impl Fn(u64),
) -> Result<(), RestoreError> {
    // The object was verified, but this is a second download: hash it again, and let
    // the caller throw the restored copy away if it is not the object it verified.
    // A sealed one is opened first: the wrong identity stops it before pg_restore runs.
    let mut hashed = HashingReader::new(reader);
    let mut gunzip = crate::seal::archive(&mut hashed, manifest, identities)?;
    let dbname = format!("--dbname={}", target.public);
    let mut command = Command::new(pg_restore.as_os_str());
    crate::children::prepare(&mut command);
    command
        .args([
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-password",
            &dbname,
        ])
        .args((!grants).then_some("--no-privileges"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    let mut child = command.spawn().map_err(|source| RestoreError::Missing {
        program: pg_restore.display().to_string(),
        source,
    })?;
    let mut stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdin = child.stdin.take().expect("piped");
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut last = std::time::Instant::now();
    let copied: Result<(), RestoreError> = loop {
        let n = match gunzip.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(RestoreError::Read(e)),
        };
        if stdin.write_all(&buf[..n]).is_err() {
            break Ok(()); // pg_restore stopped: its exit status and stderr say why
        }
        total += n as u64;
        if last.elapsed() > std::time::Duration::from_millis(200) {
            progress(total);
            last = std::time::Instant::now();
        }
    };
    drop(stdin);
    if copied.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(RestoreError::Read)?;
    let stderr = crate::redact::scrub(
        err_thread.join().unwrap_or_default().trim(),
        &target.secrets,
    );
    drop(gunzip);
    if let Some(message) = hashed.source_error.take() {
        return Err(RestoreError::Download(message));
    }
    copied?;
    progress(total);
    if !status.success() {
        return Err(RestoreError::Failed {
            status: status.to_string(),
            stderr,
        });
    }
    let (bytes, sha256) = hashed.finish().map_err(RestoreError::Read)?;
    if bytes != manifest.compressed_bytes || sha256 != manifest.sha256 {
        return Err(RestoreError::Changed { bytes, sha256 });
    }
    Ok(())
}
