//! `verify-backup` and `prune` as stages, for backup-and-prune jobs
//! (`pipelines/backup.toml`).

use super::{StageError, StageOutcome};
use crate::backup::retention::prune as apply_retention;
use crate::backup::{pg_restore_for, verify_and_record};
use crate::events::Severity;
use crate::pipeline::RunContext;

/// Reads this run's backup back and checks it against its manifest.
pub async fn verify_backup(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let Some(artifact) = ctx.backup.clone() else {
        return Ok(StageOutcome::Skipped("this run took no backup".into()));
    };
    let storage = ctx.storage().await?;
    let listed = storage.find(Some(&artifact.id)).await?;
    let verified = verify_and_record(
        &storage,
        &listed,
        pg_restore_for(&ctx.settings.backup.pg_dump),
    )
    .await
    .map_err(|e| StageError::Failed(e.to_string()))?;
    Ok(StageOutcome::Done(format!(
        "{} read back: SHA-256 matches, {} archive entries",
        verified.id, verified.toc_entries
    )))
}

/// Retention; deletes only with --yes (the scheduled job's explicit say-so).
pub async fn prune(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let storage = ctx.storage().await?;
    let delete = ctx.options.assume_yes;
    let decision = apply_retention(&storage, ctx.settings.backup.retention, delete).await?;
    for id in &decision.unverified {
        ctx.events.diagnose(
            Severity::Warning,
            format!("backup {id} is not verified: prune neither counts nor deletes it"),
            None,
        );
    }
    let verb = if delete {
        "deleted"
    } else {
        "would delete (dry run without --yes)"
    };
    Ok(StageOutcome::Done(format!(
        "kept {}, {verb} {}{}",
        decision.keep.len(),
        decision.delete.len(),
        if decision.delete.is_empty() {
            String::new()
        } else {
            format!(": {}", decision.delete.join(", "))
        }
    )))
}
