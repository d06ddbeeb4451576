//! Why taking a backup failed.

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
