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
    let lock = acquire(ctx, false).await?;
    *ctx.deploy_lock_slot() = Some(lock);
    Ok(())
}

/// Also takes the lock the ledger's tool takes while it migrates (sqlx, golang-migrate,
/// Flyway), so the tool and ballast never change the database at the same moment:
/// before a change, once the run holds the deploy lock and knows the ledger. A tool
/// that keeps migrating past `database.lock_wait` is a refusal, as another deploy is.
pub async fn hold_tools(ctx: &mut RunContext) -> Result<(), StageError> {
    let Some(crate::engine::Snapshot::Sql(snap)) = ctx.start() else {
        return Ok(());
    };
    let crate::engine::sql::ledger::Ledger::Tool { tool, schema } = &snap.ledger.ledger else {
        return Ok(());
    };
    let (tool, schema) = (*tool, schema.clone());
    let database: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(ctx.conn().await?)
        .await
        .map_err(|e| crate::db::DbError::query("reading the database's name", &e))?;
    let keys = crate::db::tool_ledger::lock_keys(tool, &database, &schema);
    if keys.is_empty() {
        return Ok(());
    }
    let settings = ctx.settings().database.clone();
    let events = ctx.events().clone();
    let Some(lock) = ctx.deploy_lock_slot().as_mut() else {
        return Ok(());
    };
    lock.also(&keys, &settings, |holder| {
        events.emit(Event::LockWaiting {
            pid: holder.pid,
            application_name: holder.application_name.clone(),
        })
    })
    .await
    .map_err(|e| {
        let held = match e {
            LockError::Db(db) => return StageError::from(db),
            LockError::Busy { holder, waited } => format!(
                "held by pid {}, application \"{}\", client {}, since {}; waited {waited:?}",
                holder.pid, holder.application_name, holder.client, holder.since
            ),
            LockError::BusyUnknown { waited } => format!("held; waited {waited:?}"),
        };
        StageError::Refused(format!(
            "the lock {tool} takes while it migrates this database is {held}: it is probably {tool} migrating it now; nothing was changed: wait for it to finish, or raise database.lock_wait"
        ))
    })
}

/// Takes the deploy lock in shared mode for a run that only backs up (see
/// [`DeployLock::acquire_shared`]); a deploy holding it is waited for, then refused.
pub async fn hold_shared(ctx: &mut RunContext) -> Result<(), StageError> {
    if ctx.deploy_lock_slot().is_none() {
        let lock = acquire(ctx, true).await?;
        *ctx.deploy_lock_slot() = Some(lock);
    }
    Ok(())
}

/// Takes the lock, alone or `shared`, saying who is in the way while it waits; a
/// busy lock is a refusal that says what holds it and what to do.
async fn acquire(ctx: &RunContext, shared: bool) -> Result<DeployLock, StageError> {
    let events = ctx.events().clone();
    let on_wait = move |holder: &crate::db::lock::LockHolder| {
        events.emit(Event::LockWaiting {
            pid: holder.pid,
            application_name: holder.application_name.clone(),
        })
    };
    let db = &ctx.settings().database;
    let taken = match shared {
        true => DeployLock::acquire_shared(db, on_wait).await,
        false => DeployLock::acquire(db, on_wait).await,
    };
    taken.map_err(|e| match e {
        // A closed database (an in-place restore renaming it) is a refusal.
        LockError::Db(db) => StageError::from(db),
        busy => {
            let what = match &busy {
                _ if shared => "a deploy is changing this database, and a backup started now would dump it half-way (and pg_dump's locks would queue its next statements): back up after it",
                LockError::Busy { holder, .. } if holder.backing_up => {
                    "nothing was changed: deploy when the backup has finished"
                }
                _ => "it is probably another deploy: wait for it",
            };
            StageError::Refused(format!("{busy}; {what}, or raise database.lock_wait"))
        }
    })
}
