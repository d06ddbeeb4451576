//! `backup`: a checksummed dump of the target, taken before anything changes.

use super::{StageError, StageOutcome};
use crate::backup::BackupError;
use crate::backup::{pg_dump_major, take, DumpRequest, Manifest};
use crate::db::ledger;
use crate::events::Event;
use crate::pipeline::RunContext;
use crate::redact::split_secrets;
use crate::storage::Storage;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    if ctx.plan.as_ref().is_some_and(|p| p.is_empty()) {
        return Ok(StageOutcome::Skipped(
            "nothing to apply, so nothing to protect".into(),
        ));
    }
    let server = ctx.server().await?;
    let settings = ctx.settings.clone();
    let program = settings.backup.pg_dump.clone();
    let client = tokio::task::spawn_blocking(move || pg_dump_major(&program))
        .await
        .map_err(|e| StageError::Failed(e.to_string()))??;
    if client.major < server.major {
        // A preflight refusal: nothing was dumped, nothing changed.
        return Err(StageError::Refused(
            BackupError::PgDumpTooOld {
                client: client.version,
                server: server.server_version.clone(),
                server_major: server.major,
            }
            .to_string(),
        ));
    }
    // The revision as it is now, read from the ledger alone: a scheduled backup needs
    // no migration folder, and a deploy may have moved the database since the check.
    let schema = settings.database.schema.clone();
    let applied = ledger::applied(ctx.conn().await?, &schema).await?;
    let revision = ledger::newest(&applied).map(|row| format!("{}_{}", row.version, row.name));

    let url = settings
        .database
        .url()
        .map_err(|e| StageError::Failed(e.to_string()))?;
    let target =
        split_secrets(url).map_err(|e| StageError::Failed(format!("database.url: {e}")))?;

    let now = chrono::Utc::now();
    let run = ctx.run_id.simple().to_string();
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
        pg_dump_version: client.version.clone(),
        revision,
        schema: settings.database.schema.clone(),
        raw_bytes: 0,
        compressed_bytes: 0,
        sha256: String::new(),
        started_at: now.to_rfc3339(),
        finished_at: String::new(),
        run_id: ctx.run_id.to_string(),
        tool: format!("ballast {}", env!("CARGO_PKG_VERSION")),
    };
    let request = DumpRequest {
        pg_dump: settings.backup.pg_dump.clone(),
        target,
        id: id.clone(),
        lock_wait: settings.database.lock_wait,
        compression_level: settings.backup.compression_level,
        database_bytes: server.size_bytes,
        manifest,
    };
    let storage = Storage::open(&settings.backup).await?;
    for key in storage.clean_stale_uploads().await? {
        ctx.events.diagnose(
            crate::events::Severity::Info,
            format!("aborted a stale unfinished upload: {key}"),
            None,
        );
    }
    ctx.events.emit(Event::BackupStarted {
        path: storage.location(&id),
        database_bytes: server.size_bytes,
    });
    let events = ctx.events.clone();
    let artifact = take(request, &storage, move |raw_bytes| {
        events.emit(Event::BackupProgress { raw_bytes })
    })
    .await?;
    ctx.events.emit(Event::BackupFinished {
        id: artifact.id.clone(),
        path: artifact.location.clone(),
        raw_bytes: artifact.raw_bytes,
        compressed_bytes: artifact.compressed_bytes,
        sha256: artifact.sha256.clone(),
    });
    let summary = format!(
        "{} ({})",
        artifact.location,
        crate::report::human::human_bytes(artifact.compressed_bytes)
    );
    ctx.backup = Some(artifact);
    Ok(StageOutcome::Done(summary))
}
