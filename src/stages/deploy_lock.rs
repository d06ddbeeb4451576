//! The run's deploy lock. The backup before a change, or else the first stage that
//! changes the database (`upgrade`, `downgrade`), takes it and the run keeps it to its end: through verify and the
//! recovery ladder, so a second run never mistakes this one for an abandoned one, nor
//! deploys under it. Waiting says who is in the way; a busy lock is a refusal (exit 3).

use super::StageError;
use crate::db::lock::{DeployLock, LockError};
use crate::events::{Event, Severity};
use crate::pipeline::RunContext;

/// Makes sure the run holds the deploy lock: keeps the one it has while its session
/// lives, takes it (again) otherwise.
pub async fn hold(ctx: &mut RunContext) -> Result<(), StageError> {
    if let Some(mut held) = ctx.deploy_lock_slot().take() {
        if held.still_held().await {
            *ctx.deploy_lock_slot() = Some(held);
            return Ok(());
        }
        held.release().await;
        ctx.events().diagnose(
            Severity::Warning,
            "the deploy lock's session was lost (a server restart or a network cut released it); taking it again",
            None,
        );
    }
    let lock = acquire(ctx).await?;
    *ctx.deploy_lock_slot() = Some(lock);
    Ok(())
}

async fn acquire(ctx: &RunContext) -> Result<DeployLock, StageError> {
    let events = ctx.events().clone();
    DeployLock::acquire(&ctx.settings().database, |holder| {
        events.emit(Event::LockWaiting {
            pid: holder.pid,
            application_name: holder.application_name.clone(),
        })
    })
    .await
    .map_err(|e| match e {
        // A closed database (an in-place restore renaming it) is a refusal.
        LockError::Db(db) => StageError::from(db),
        busy => StageError::Refused(format!(
            "{busy}; it is probably another deploy: wait for it, or raise database.lock_wait"
        )),
    })
}
