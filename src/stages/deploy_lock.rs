//! Taking the deploy lock for a stage that changes the database (`upgrade`,
//! `downgrade`): waiting says who is in the way; a busy lock is a refusal (exit 3).

use super::StageError;
use crate::db::lock::{DeployLock, LockError};
use crate::events::Event;
use crate::pipeline::RunContext;

pub async fn acquire(ctx: &RunContext) -> Result<DeployLock, StageError> {
    let events = ctx.events.clone();
    DeployLock::acquire(&ctx.settings.database, |holder| {
        events.emit(Event::LockWaiting {
            pid: holder.pid,
            application_name: holder.application_name.clone(),
        })
    })
    .await
    .map_err(|e| match e {
        LockError::Db(db) => StageError::Failed(db.to_string()),
        busy => StageError::Refused(format!(
            "{busy}; it is probably another deploy: wait for it, or raise database.lock_wait"
        )),
    })
}
