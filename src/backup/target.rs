//! Backing up the configured target: the one path used by the `backup` stage and by
//! `restore`'s safety backup.

use sqlx::postgres::PgConnection;

use super::{client_version, take, Artifact, BackupError, DumpRequest};
use crate::config::Settings;
use crate::db::{DbError, ServerInfo};
use crate::events::{Event, Events, Severity};
use crate::redact::split_secrets;
use crate::storage::manifest::Manifest;
use crate::storage::Storage;

#[derive(Debug, thiserror::Error)]
pub enum TargetBackupError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Sum of rows inserted, updated and deleted in user tables since statistics were
/// reset: compared at restore time, it tells how many writes a restore would lose.
pub async fn write_counter(conn: &mut PgConnection) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint from pg_stat_user_tables",
    )
    .fetch_one(conn)
    .await
    .map_err(|e| DbError::query("reading pg_stat_user_tables", &e))
}

pub async fn back_up(
    settings: &Settings,
    conn: &mut PgConnection,
    server: &ServerInfo,
    storage: &Storage,
    run_id: uuid::Uuid,
    events: &Events,
) -> Result<Artifact, TargetBackupError> {
    let program = settings.backup.pg_dump.clone();
    let client = tokio::task::spawn_blocking(move || client_version(&program))
        .await
        .map_err(|e| BackupError::Stream(std::io::Error::other(e.to_string())))??;
    if client.major < server.major {
        return Err(BackupError::PgDumpTooOld {
            client: client.version,
            server: server.server_version.clone(),
            server_major: server.major,
        }
        .into());
    }
    // The revision as it is now, read from the ledger alone: a scheduled backup needs
    // no migration folder, and a deploy may have moved the database since the check.
    let revision = crate::engine::Engine::open(settings)
        .current_revision(settings, &mut *conn)
        .await?;
    let writes = write_counter(&mut *conn).await?;
    let url = settings
        .database
        .url()
        .map_err(|e| BackupError::Stream(std::io::Error::other(e.to_string())))?;
    let target = split_secrets(url)
        .map_err(|e| BackupError::Stream(std::io::Error::other(format!("database.url: {e}"))))?;

    let now = chrono::Utc::now();
    let run = run_id.simple().to_string();
    let id = format!(
        "{}-{}-{}",
        server.database,
        now.format("%Y%m%dT%H%M%SZ"),
        &run[..8]
    );
    let manifest = Manifest {
        manifest_version: 1,
        id: id.clone(),
        object: String::new(),
        format: String::new(),
        database: server.database.clone(),
        host: server.host.clone(),
        server_version: server.server_version.clone(),
        server_major: Some(server.major),
        pg_dump_version: client.version.clone(),
        revision,
        schema: settings.database.schema.clone(),
        raw_bytes: 0,
        compressed_bytes: 0,
        sha256: String::new(),
        started_at: now.to_rfc3339(),
        finished_at: String::new(),
        run_id: run_id.to_string(),
        tool: format!("ballast {}", env!("CARGO_PKG_VERSION")),
        write_counter: Some(writes),
        sealed: None,
        locked_until: None,
    };
    let request = DumpRequest {
        pg_dump: settings.backup.pg_dump.clone(),
        target,
        id: id.clone(),
        lock_wait: settings.database.lock_wait,
        compression_level: settings.backup.compression_level,
        database_bytes: server.size_bytes,
        manifest,
        recipients: settings.backup.age_recipients.clone(),
    };
    // Housekeeping must not stop a backup (a role may lack ListBucketMultipartUploads).
    match storage.clean_stale_uploads().await {
        Ok(keys) => {
            for key in keys {
                events.diagnose(
                    Severity::Info,
                    format!("cleaned up an unfinished backup left by an earlier run: {key}"),
                    None,
                );
            }
        }
        Err(e) => events.diagnose(
            Severity::Warning,
            format!("could not clean up stale uploads: {e}"),
            None,
        ),
    }
    // A backup is a full copy of production: say so when others can read the folder
    // (ballast creates it 0700 and its files 0600, but leaves a folder it found alone).
    if let Some(loose) = storage.local().and_then(|l| l.loose_permissions()) {
        let dir = storage
            .local()
            .map(|l| l.dir().display().to_string())
            .unwrap_or_default();
        events.diagnose(
            Severity::Warning,
            format!("the backup folder {dir} is not private: {loose}, and every backup holds every row of the database"),
            Some(format!("chmod 700 {dir}")),
        );
    }
    let object = crate::storage::object_name(&id, settings.backup.age_recipients.is_some());
    events.emit(Event::BackupStarted {
        path: storage.location(&object),
        database_bytes: server.size_bytes,
    });
    let progress = events.clone();
    let artifact = take(request, storage, move |raw_bytes| {
        progress.emit(Event::BackupProgress { raw_bytes })
    })
    .await?;
    events.emit(Event::BackupFinished {
        id: artifact.id.clone(),
        path: artifact.location.clone(),
        raw_bytes: artifact.raw_bytes,
        compressed_bytes: artifact.compressed_bytes,
        sha256: artifact.sha256.clone(),
    });
    Ok(artifact)
}
