//! `restore`: puts this run's backup back in place of the target (a failure rung, or a
//! drill pipeline's step). Verified first; the target is replaced only by an atomic
//! rename after a successful restore, and a safety backup is taken before.

use super::{StageError, StageOutcome};
use crate::backup::replace::{replace, Destination, ReplaceError};
use crate::backup::{pg_restore_for, verify};
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let Some(artifact) = ctx.backup().cloned() else {
        return Err(StageError::Refused(
            "this run took no backup to restore (add a backup stage before it)".into(),
        ));
    };
    let settings = ctx.settings().clone();
    let storage = ctx.storage().await?;
    let listed = storage.find(Some(&artifact.id)).await?;
    verify(&storage, &listed, pg_restore_for(&settings.backup.pg_dump))
        .await
        .map_err(|e| StageError::Refused(format!("refusing to restore: {e}")))?;
    // Our own connection would keep the target in use and block the rename; the run's
    // deploy lock is handed over (let go just before the rename; kept when the restore
    // stops before it).
    ctx.reset_conn().await;
    let events = ctx.events().clone();
    let replaced = replace(
        &settings,
        &storage,
        &listed.manifest,
        Destination::InPlace,
        &events,
        ctx.deploy_lock_slot(),
    )
    .await;
    // The run keeps the lock to its end: on the restored database too.
    let retaken = super::deploy_lock::hold(ctx).await;
    let replaced = replaced.map_err(|e| match e {
        e @ (ReplaceError::InUse(_)
        | ReplaceError::OtherDatabase { .. }
        | ReplaceError::Locked(_)) => StageError::Refused(e.to_string()),
        other => StageError::Failed(other.to_string()),
    })?;
    if let Err(e) = retaken {
        ctx.events().diagnose(
            crate::events::Severity::Warning,
            format!("restored, but the deploy lock could not be taken again: {e}"),
            None,
        );
    }
    Ok(StageOutcome::Done(format!(
        "restored {} from {}; the previous state is kept as {}",
        replaced.database,
        artifact.id,
        replaced.kept_aside.as_deref().unwrap_or("-")
    )))
}
