//! `restore`: puts a backup back. In a deploy's ladder or a drill pipeline, this run's
//! backup in place of the target; in `ballast restore`, the backup the person chose,
//! in place or `--into` a new database. Verified first; the target is replaced only by
//! an atomic rename after a successful restore, and a safety backup is taken before.

use super::{StageError, StageOutcome};
use crate::backup::replace::{replace, Destination, ReplaceError};
use crate::backup::verify;
use crate::events::{Event, Restored, Severity};
use crate::pipeline::{RestoreChoice, RunContext};
use crate::seal::SealError;
use crate::storage::manifest::Manifest;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    match ctx.restore_choice().cloned() {
        Some(choice) => restore_chosen(ctx, choice).await,
        None => restore_this_runs_backup(ctx).await,
    }
}

async fn restore_this_runs_backup(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let Some(artifact) = ctx.backup().cloned() else {
        return Err(StageError::Refused(
            "this run took no backup to restore (add a backup stage before it)".into(),
        ));
    };
    let storage = ctx.storage().await?;
    let listed = storage.find(Some(&artifact.id)).await?;
    let verified = verify(&storage, &listed, &ctx.settings().backup)
        .await
        .map_err(|e| StageError::Refused(format!("refusing to restore: {e}")))?;
    if !verified.contents_checked {
        return Err(StageError::Refused(format!(
            "refusing to restore: {}",
            SealError::needs_identity(&listed.manifest)
        )));
    }
    let restored = put_back(ctx, &listed.manifest, Destination::InPlace).await?;
    Ok(StageOutcome::Done(format!(
        "restored {} from {}; the previous state is kept as {}",
        restored.database,
        artifact.id,
        restored.kept_aside.as_deref().unwrap_or("-")
    )))
}

/// The backup `ballast restore` was asked for, verified by its `verify-backup` stage
/// and confirmed by name; the run's account says where it went and what is left to do.
async fn restore_chosen(
    ctx: &mut RunContext,
    choice: RestoreChoice,
) -> Result<StageOutcome, StageError> {
    let m = &choice.backup.manifest;
    let destination = match &choice.into {
        Some(name) => Destination::New(name),
        None => Destination::InPlace,
    };
    let restored = put_back(ctx, m, destination).await?;
    let mut detail = format!("{} into {}", m.id, restored.database);
    if let Some(aside) = &restored.kept_aside {
        ctx.target_replaced(m.revision.clone());
        detail.push_str(&format!("; the previous database is kept as {aside}"));
        ctx.leave_next_step(format!(
            "check the restored database, then drop the previous one: DROP DATABASE {}",
            crate::db::quote_ident(aside)
        ));
    }
    if let Some(location) = &restored.safety_backup {
        ctx.events()
            .diagnose(Severity::Info, format!("safety backup: {location}"), None);
        detail.push_str(&format!("; safety backup {location}"));
    }
    ctx.events().emit(Event::Restored { restore: restored });
    Ok(StageOutcome::Done(detail))
}

/// Restores `manifest`'s backup to `destination`. Our own connection would keep the
/// target in use and block the rename; a deploy lock the run holds is handed over
/// (let go just before the rename; kept when the restore stops before it) and taken
/// again on the restored database for the rest of the run.
async fn put_back(
    ctx: &mut RunContext,
    manifest: &Manifest,
    destination: Destination<'_>,
) -> Result<Restored, StageError> {
    let settings = ctx.settings().clone();
    let storage = ctx.storage().await?;
    ctx.reset_conn().await;
    let events = ctx.events().clone();
    let held_lock = ctx.deploy_lock_slot().is_some();
    let restored = replace(
        &settings,
        &storage,
        manifest,
        destination,
        &events,
        ctx.deploy_lock_slot(),
    )
    .await;
    if held_lock {
        if let Err(e) = super::deploy_lock::hold(ctx).await {
            ctx.events().diagnose(
                Severity::Warning,
                format!("restored, but the deploy lock could not be taken again: {e}"),
                None,
            );
        }
    }
    restored.map_err(|e| match e {
        e @ (ReplaceError::InUse(_)
        | ReplaceError::OtherDatabase { .. }
        | ReplaceError::Locked(_)) => StageError::Refused(e.to_string()),
        other => StageError::Failed(other.to_string()),
    })
}
