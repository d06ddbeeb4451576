//! Reading a backup back: size and SHA-256 against its manifest, then the archive's
//! table of contents through `pg_restore --list`. Needs no database. A backup sealed
//! with age is opened with the configured identity; without one, only what is stored
//! is checked (size and SHA-256), and the result says its contents were not.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::Digest;

use super::hashing::HashingReader;
use crate::config::BackupSettings;
use crate::seal::{Identities, SealError};
use crate::storage::{Listed, Storage, StorageError};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub id: String,
    pub compressed_bytes: u64,
    pub raw_bytes: u64,
    pub sha256: String,
    /// Entries in the archive's table of contents.
    pub toc_entries: usize,
    pub verified_at: String,
    /// The archive itself was read (decrypted, decompressed, listed); false for a
    /// sealed backup checked without its identity: only size and SHA-256 were.
    pub contents_checked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("reading backup {id} from storage failed part-way ({message}); that says nothing about the backup itself: run the command again")]
    Unreadable { id: String, message: String },
    #[error("backup {id} is corrupt: {problem}")]
    Corrupt { id: String, problem: String },
    #[error("pg_restore {client} cannot read an archive written by pg_dump {dump_major}; install postgresql-client-{dump_major} (or newer) and set backup.pg_dump to that folder's pg_dump")]
    PgRestoreTooOld { client: String, dump_major: u32 },
    #[error("cannot run {program}: {source}; install the PostgreSQL client tools")]
    PgRestoreMissing {
        program: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Seal(SealError),
}

/// `pg_restore` beside the configured `pg_dump` (or on PATH when pg_dump is).
pub fn pg_restore_for(pg_dump: &Path) -> PathBuf {
    match pg_dump.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("pg_restore"),
        _ => PathBuf::from("pg_restore"),
    }
}

/// Verifies and, when sound, records it beside the backup (`ID.verified.json`). A
/// backup found corrupt loses an earlier record: it no longer counts as verified (for
/// `backups`, and for `prune`, which never keeps a corrupt one as the newest good one).
pub async fn verify_and_record(
    storage: &Storage,
    listed: &Listed,
    settings: &BackupSettings,
) -> Result<Verified, VerifyError> {
    let verified = match verify(storage, listed, settings).await {
        Ok(v) => v,
        Err(e @ VerifyError::Corrupt { .. }) => {
            storage.unmark_verified(&listed.manifest.id).await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let record = serde_json::to_value(&verified).unwrap_or_default();
    storage.mark_verified(&verified.id, &record).await?;
    Ok(verified)
}

/// Reads backup `listed` back with the tools and identity `settings` name (pg_restore
/// beside pg_dump, `age_identity_file`).
pub async fn verify(
    storage: &Storage,
    listed: &Listed,
    settings: &BackupSettings,
) -> Result<Verified, VerifyError> {
    let pg_restore = pg_restore_for(&settings.pg_dump);
    let manifest = listed.manifest.clone();
    let identities = match manifest.sealed {
        Some(_) => Identities::configured(settings.age_identity_file.as_deref())
            .map_err(VerifyError::Seal)?,
        None => None,
    };
    if manifest.sealed.is_some() && identities.is_none() {
        let reader = storage.reader(&manifest.object).await?;
        return tokio::task::spawn_blocking(move || stored_only(reader, &manifest))
            .await
            .map_err(|e| VerifyError::Corrupt {
                id: listed.manifest.id.clone(),
                problem: e.to_string(),
            })?;
    }
    // An old pg_restore cannot read a newer pg_dump's archive: say that, not "corrupt".
    let tool = pg_restore.clone();
    let client = tokio::task::spawn_blocking(move || super::pg_dump::client_version(&tool))
        .await
        .map_err(|e| VerifyError::PgRestoreMissing {
            program: pg_restore.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|e| VerifyError::PgRestoreMissing {
            program: pg_restore.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let dump_major = listed
        .manifest
        .pg_dump_version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if let Some(dump_major) = dump_major.filter(|m| client.major < *m) {
        return Err(VerifyError::PgRestoreTooOld {
            client: client.version,
            dump_major,
        });
    }
    let reader = storage.reader(&manifest.object).await?;
    tokio::task::spawn_blocking(move || check(reader, &manifest, &pg_restore, identities.as_ref()))
        .await
        .map_err(|e| VerifyError::Corrupt {
            id: listed.manifest.id.clone(),
            problem: e.to_string(),
        })?
}

/// A sealed backup checked without its identity: what is stored, its size and SHA-256.
fn stored_only(
    reader: Box<dyn Read + Send>,
    manifest: &crate::storage::manifest::Manifest,
) -> Result<Verified, VerifyError> {
    let mut hashed = HashingReader::new(reader);
    let _ = std::io::copy(&mut hashed, &mut std::io::sink());
    let sha256 = stored_as_listed(&mut hashed, manifest)?;
    Ok(Verified {
        id: manifest.id.clone(),
        compressed_bytes: hashed.bytes,
        raw_bytes: manifest.raw_bytes,
        sha256,
        toc_entries: 0,
        verified_at: chrono::Utc::now().to_rfc3339(),
        contents_checked: false,
    })
}

/// The stored bytes read through `hashed` are the object the manifest describes (size
/// and SHA-256), and were read whole; their SHA-256.
fn stored_as_listed(
    hashed: &mut HashingReader<Box<dyn Read + Send>>,
    manifest: &crate::storage::manifest::Manifest,
) -> Result<String, VerifyError> {
    let corrupt = |problem: String| VerifyError::Corrupt {
        id: manifest.id.clone(),
        problem,
    };
    if let Some(message) = hashed.source_error.take() {
        return Err(VerifyError::Unreadable {
            id: manifest.id.clone(),
            message,
        });
    }
    let sha256 = hex::encode(hashed.hasher.clone().finalize());
    if hashed.bytes != manifest.compressed_bytes {
        return Err(corrupt(format!(
            "its size is {} bytes, the manifest says {} (truncated or replaced)",
            hashed.bytes, manifest.compressed_bytes
        )));
    }
    if sha256 != manifest.sha256 {
        return Err(corrupt(format!(
            "its SHA-256 is {sha256}, the manifest says {}",
            manifest.sha256
        )));
    }
    Ok(sha256)
}

fn check(
    reader: Box<dyn Read + Send>,
    manifest: &crate::storage::manifest::Manifest,
    pg_restore: &Path,
    identities: Option<&Identities>,
) -> Result<Verified, VerifyError> {
    let corrupt = |problem: String| VerifyError::Corrupt {
        id: manifest.id.clone(),
        problem,
    };
    let mut command = Command::new(pg_restore.as_os_str());
    crate::children::prepare(&mut command);
    let mut child = command
        .arg("--list")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| VerifyError::PgRestoreMissing {
            program: pg_restore.display().to_string(),
            source,
        })?;
    // Read pg_restore's output concurrently, or a full pipe would stall it.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut hashed = HashingReader::new(reader);
    let mut stdin = child.stdin.take().expect("piped");
    let mut raw: u64 = 0;
    // pg_restore --list stops reading once it has the table of contents (or on a bad
    // archive: its verdict below says so). Inflating goes on to the end either way,
    // on several threads: every byte must decode.
    let workers = super::in_order::workers();
    let decompressed = match crate::seal::gzip_stream(&mut hashed, manifest, identities) {
        // A damaged header, or the wrong identity: judged below, once the stored
        // bytes are hashed (damage is corruption; the wrong key is not).
        Err(e) => Err(e),
        Ok(gzip) => super::members::inflate(gzip, workers, |bytes| stdin.write_all(bytes).is_ok())
            .map(|n| raw = n)
            .map_err(|e| SealError::Damaged(e.to_string())),
    };
    drop(stdin);
    // Hash whatever is left, so size and checksum speak for the whole object.
    let _ = std::io::copy(&mut hashed, &mut std::io::sink());
    let status = child
        .wait()
        .map_err(|e| corrupt(format!("waiting for pg_restore: {e}")))?;
    let listing = out_thread.join().unwrap_or_default();
    let errors = err_thread.join().unwrap_or_default();

    let sha256 = stored_as_listed(&mut hashed, manifest)?;
    match decompressed {
        Ok(()) => {}
        Err(e @ (SealError::WrongIdentity { .. } | SealError::NeedsIdentity { .. })) => {
            return Err(VerifyError::Seal(e))
        }
        Err(SealError::Damaged(e)) if manifest.sealed.is_some() => {
            return Err(corrupt(format!("decrypting or decompressing: {e}")))
        }
        Err(SealError::Damaged(e)) => return Err(corrupt(format!("gzip: {e}"))),
        Err(e) => return Err(VerifyError::Seal(e)),
    }
    if raw != manifest.raw_bytes {
        return Err(corrupt(format!(
            "it decompresses to {raw} bytes, the manifest says {}",
            manifest.raw_bytes
        )));
    }
    if !status.success() {
        return Err(corrupt(format!(
            "pg_restore --list failed ({status}): {}",
            errors.trim()
        )));
    }
    let toc_entries = listing
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .count();
    Ok(Verified {
        id: manifest.id.clone(),
        compressed_bytes: hashed.bytes,
        raw_bytes: raw,
        sha256,
        toc_entries,
        verified_at: chrono::Utc::now().to_rfc3339(),
        contents_checked: true,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::{check, VerifyError};

    /// Gives `data`, then fails as a dropped download does.
    struct Dropped(std::io::Cursor<Vec<u8>>);

    impl Read for Dropped {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("connection reset by peer")),
                n => Ok(n),
            }
        }
    }

    fn manifest(compressed_bytes: u64) -> crate::storage::manifest::Manifest {
        serde_json::from_value(serde_json::json!({
            "manifest_version": 1, "id": "shop-1", "object": "", "format": "",
            "database": "shop", "host": "h", "server_version": "15.4", "pg_dump_version": "15.4",
            "revision": null, "schema": "public", "raw_bytes": 1u64 << 20,
            "compressed_bytes": compressed_bytes, "sha256": "0", "started_at": "", "finished_at": "",
            "run_id": "", "tool": ""
        }))
        .unwrap()
    }

    #[test]
    fn a_dropped_download_is_not_called_corruption() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![7u8; 1 << 20]).unwrap();
        let whole = gz.finish().unwrap();
        let half = whole[..whole.len() / 2].to_vec();
        let reader = Box::new(Dropped(std::io::Cursor::new(half)));
        let result = check(reader, &manifest(whole.len() as u64), "true".as_ref(), None);
        assert!(
            matches!(&result, Err(VerifyError::Unreadable { message, .. }) if message.contains("reset")),
            "{result:?}"
        );
    }

    #[test]
    fn a_short_object_that_reads_cleanly_is_corrupt() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![7u8; 1 << 20]).unwrap();
        let whole = gz.finish().unwrap();
        let half = whole[..whole.len() / 2].to_vec();
        let reader = Box::new(std::io::Cursor::new(half));
        let result = check(reader, &manifest(whole.len() as u64), "true".as_ref(), None);
        assert!(
            matches!(&result, Err(VerifyError::Corrupt { problem, .. }) if problem.contains("truncated")),
            "{result:?}"
        );
    }
}
