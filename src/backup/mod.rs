//! Backups: `pg_dump` streamed through gzip into storage, with a manifest beside it.
//!
//! An artifact is a compressed dump plus its manifest. The dump is written under a
//! temporary name and only renamed into place once pg_dump exited 0 and the
//! compressor finished; the manifest is written last. No manifest, no backup.

mod dump;
mod hashing;
mod manifest;
mod pg_dump;
pub mod replace;
pub mod restore;
pub mod restore_db;
pub mod retention;
pub mod sessions;
pub mod target;
mod verify;

pub use dump::{part_size_for, take, Artifact, DumpRequest};
pub use manifest::Manifest;
pub use pg_dump::{client_version, PgDumpVersion};
pub use verify::{pg_restore_for, verify, verify_and_record, Verified, VerifyError};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot run {program}: {source}; install the PostgreSQL client tools or set backup.pg_dump to pg_dump's path")]
    PgDumpMissing {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot tell pg_dump's version from `{output}`")]
    PgDumpVersion { output: String },
    #[error("pg_dump {client} is older than the server ({server}); a dump taken with it may be unusable. Install postgresql-client-{server_major} (or newer) or set backup.pg_dump to its path")]
    PgDumpTooOld {
        client: String,
        server: String,
        server_major: u32,
    },
    #[error("pg_dump failed ({status}): {stderr}; no backup was kept")]
    PgDumpFailed { status: String, stderr: String },
    #[error("streaming the backup: {0}; no backup was kept")]
    Stream(std::io::Error),
    #[error("the upload failed: {0}; it was aborted and no backup was kept")]
    Upload(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}
