//! `backup`: a checksummed dump of the target, taken before anything changes.

use super::{StageError, StageOutcome};
use crate::backup::target::{back_up, TargetBackupError};
use crate::backup::BackupError;
use crate::db::table_writes::TableWrites;
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    if ctx.plan().is_some_and(|p| p.is_empty()) {
        return Ok(StageOutcome::Skipped(
            "nothing to apply, so nothing to protect".into(),
        ));
    }
    // Before a change, the lock first: a second deploy waits (or refuses) here rather
    // than after a full dump, and no other deploy can run between this backup and the
    // change it protects.
    // A backup-only run (the nightly job) shares the lock with other backups: a deploy
    // never changes tables pg_dump holds, nor a dump starts half-way through a deploy.
    match ctx.first_change() {
        Some(_) => super::deploy_lock::hold(ctx).await?,
        None => super::deploy_lock::hold_shared(ctx).await?,
    }
    let server = ctx.server().await?;
    let settings = ctx.settings().clone();
    let (run_id, events) = (ctx.run_id(), ctx.events().clone());
    let storage = ctx.storage().await?;
    // What a restore of this backup would throw away is measured from here: pg_dump's
    // snapshot is taken right after. Statistics are a signal, never a reason to stop.
    let writes = TableWrites::read(ctx.conn().await?).await.ok();
    ctx.measured_writes(writes);
    let artifact = match back_up(
        &settings,
        ctx.conn().await?,
        &server,
        &storage,
        run_id,
        &events,
    )
    .await
    {
        Ok(artifact) => artifact,
        // A preflight refusal: nothing was dumped, nothing changed.
        Err(TargetBackupError::Backup(e @ BackupError::PgDumpTooOld { .. })) => {
            return Err(StageError::Refused(e.to_string()))
        }
        Err(e) => return Err(StageError::Failed(e.to_string())),
    };
    // The dump is done: a deploy waiting for a backup-only run need not wait for its
    // verify and prune too.
    if ctx.first_change().is_none() {
        if let Some(shared) = ctx.deploy_lock_slot().take() {
            shared.release().await;
        }
    }
    let summary = format!(
        "{} ({})",
        artifact.location,
        crate::text::human_bytes(artifact.compressed_bytes)
    );
    ctx.backed_up(artifact);
    Ok(StageOutcome::Done(summary))
}
