//! Upgrading and downgrading an Alembic target, under ballast's deploy lock (the
//! caller holds it). Alembic runs online as the project has it; afterwards the version
//! table says exactly what committed, whatever the project's transaction mode, so a
//! failure after some revisions committed is reported as that, never as "rolled back".

use std::collections::HashSet;
use std::time::Instant;

use super::offline::upgraded_to;
use super::process::{Finished, Runner};
use super::reach::Witness;
use super::snapshot::{current_revisions, AlembicSnapshot};
use crate::events::Event;
use crate::pipeline::RunContext;
use crate::stages::{migrations_count, StageError, StageOutcome};

/// Runs `alembic upgrade TARGET` and accounts for every pending revision.
pub async fn upgrade(
    ctx: &mut RunContext,
    snap: &AlembicSnapshot,
) -> Result<StageOutcome, StageError> {
    let target = snap
        .target()
        .ok_or_else(|| StageError::Refused("the project has no single head".into()))?
        .to_string();
    let pending: Vec<(String, String)> = snap
        .pending()
        .iter()
        .map(|r| (r.revision.clone(), r.message.clone()))
        .collect();
    let total = pending.len();
    let transactional = !snap.per_migration();
    let server = ctx.server().await?;
    let started = Instant::now();
    let retries = ctx.settings.database.lock_retries;
    let mut wait = ctx.settings.database.lock_retry_wait;
    let mut attempt = 0;
    // Alembic's every connection is held to the witness while it runs (guard.py).
    let witness = Witness::open(&ctx.settings.database).await?;
    let finished = loop {
        let runner = Runner::new(&ctx.settings, Some(server.major)).guarded(&witness);
        let finished =
            match upgrade_once(runner, &ctx.events, &target, &pending, transactional).await {
                Ok(finished) => finished,
                Err(e) => {
                    witness.close().await;
                    return Err(e);
                }
            };
        // A lock timeout before anything committed: the transaction rolled back whole,
        // so trying again later applies nothing twice (as the sql engine does).
        let retry = !finished.success
            && finished.reason().contains("lock timeout")
            && attempt < retries
            && !crate::interrupt::requested()
            && revisions_after(ctx, snap)
                .await
                .is_ok_and(|now| snap.graph.ancestry(&now) == snap.graph.ancestry(snap.current()))
            // Nothing committed outside the version table either (autocommit blocks).
            && crate::pipeline::recovery::back_at_start(ctx).await.is_ok();
        if !retry {
            break finished;
        }
        attempt += 1;
        ctx.events.diagnose(
            crate::events::Severity::Warning,
            format!(
                "alembic waited lock_timeout for a lock another session holds (SQLSTATE 55P03); nothing committed. Retry {attempt} of {retries} in {}",
                humantime::format_duration(wait)
            ),
            None,
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(300));
    };
    witness.close().await;
    let accounted = account(ctx, snap, &pending, &finished, "upgrade").await;
    refused_if_nothing_changed(ctx, &finished)?;
    accounted?;
    Ok(StageOutcome::Done(format!(
        "{} applied in {}",
        migrations_count(total),
        crate::text::human_duration(started.elapsed().as_millis() as u64)
    )))
}

/// One `alembic upgrade`, with a progress event per revision from alembic's log.
async fn upgrade_once(
    runner: Runner,
    events: &crate::events::Events,
    target: &str,
    pending: &[(String, String)],
    transactional: bool,
) -> Result<Finished, StageError> {
    let total = pending.len();
    let order = pending.to_vec();
    let progress = events.clone();
    let events = events.clone();
    let target = target.to_string();
    let (finished, last) = tokio::task::spawn_blocking(move || {
        let mut previous: Option<(usize, Instant)> = None;
        let finished = runner.alembic_streaming(&["upgrade", &target], |line| {
            let Some(revision) = line
                .split_once("Running upgrade ")
                .and_then(|(_, r)| upgraded_to(r))
            else {
                return;
            };
            let Some(index) = order.iter().position(|(r, _)| *r == revision) else {
                return;
            };
            if let Some((done, since)) = previous.take() {
                events.emit(Event::MigrationApplied {
                    index: done,
                    total,
                    version: order[done].0.clone(),
                    name: order[done].1.clone(),
                    duration_ms: since.elapsed().as_millis() as u64,
                });
            }
            events.emit(Event::MigrationStarted {
                index,
                total,
                version: revision,
                name: order[index].1.clone(),
                transactional,
            });
            previous = Some((index, Instant::now()));
        });
        (finished, previous)
    })
    .await
    .map_err(|e| StageError::Failed(e.to_string()))?;
    let finished = finished.map_err(failed)?;
    if let (true, Some((done, since))) = (finished.success, last) {
        progress.emit(Event::MigrationApplied {
            index: done,
            total,
            version: pending[done].0.clone(),
            name: pending[done].1.clone(),
            duration_ms: since.elapsed().as_millis() as u64,
        });
    }
    Ok(finished)
}

/// Reads the version table after alembic ended and records what committed and what
/// did not; an error when alembic failed.
async fn account(
    ctx: &mut RunContext,
    before: &AlembicSnapshot,
    pending: &[(String, String)],
    finished: &Finished,
    verb: &str,
) -> Result<(), StageError> {
    let now = match revisions_after(ctx, before).await {
        Ok(rows) => rows,
        Err(e) => {
            ctx.outcome_unknown = true;
            return Err(StageError::Failed(format!(
                "alembic {verb} ended ({}), and reading the version table afterwards failed: {e}; what committed is unknown until checked",
                finished.status
            )));
        }
    };
    let reached = before.graph.ancestry(&now);
    let (committed, not): (Vec<String>, Vec<String>) = pending
        .iter()
        .map(|(r, _)| r.clone())
        .partition(|r| reached.contains(r));
    if !committed.is_empty() {
        ctx.record_committed(committed.clone());
    }
    if finished.success {
        if !not.is_empty() {
            return Err(StageError::Failed(format!(
                "alembic {verb} exited 0 but the version table does not include {}; check `ballast status`",
                not.join(", ")
            )));
        }
        return Ok(());
    }
    // The version table says what Alembic recorded, not what committed: a revision
    // that commits by itself (`op.get_bind().commit()`, an autocommit block) keeps its
    // changes when a later revision's failure rolls the version table back.
    let unrecorded = match committed.is_empty() {
        true => changed_since_upgrade_began(ctx).await,
        false => None,
    };
    // The revision that failed may have committed part of its work by itself, which
    // neither the version table nor (for rows) the schema shows: never "rolled back".
    // No row written anywhere since the backup proves it committed nothing.
    let self_committing = not
        .first()
        .filter(|failed| {
            before.graph.get(failed).is_some_and(|r| {
                std::fs::read_to_string(&r.path).is_ok_and(|text| {
                    text.contains("autocommit_block") || text.contains(".commit(")
                })
            })
        })
        .cloned();
    let self_committing = match self_committing {
        Some(failed) if unrecorded.is_none() => {
            match crate::pipeline::recovery::rows_written_since_backup(ctx).await {
                Ok(written) if written.is_empty() => None,
                _ => Some(failed),
            }
        }
        other => other,
    };
    let self_committing = self_committing.as_ref();
    if let Some(changes) = &unrecorded {
        ctx.record_partial_change(format!(
            "schema changes {} does not record: {changes}",
            before.version
        ));
    } else if let Some(failed) = self_committing {
        ctx.record_partial_change(format!(
            "{failed} failed, and it commits by itself (an autocommit block or commit()): what it committed before failing is unknown"
        ));
        ctx.record_rolled_back(not[1..].to_vec());
    } else if !not.is_empty() {
        ctx.record_rolled_back(not.clone());
    }
    let stopped = if let Some(changes) = &unrecorded {
        format!(
            "{} records none of them, but the schema is not as the upgrade found it ({changes}): something committed outside the version table (an autocommit block, or a revision that commits by itself)",
            before.version
        )
    } else if let (true, Some(failed)) = (committed.is_empty(), self_committing) {
        format!(
            "the version table records none of them, but {failed} commits by itself (an autocommit block or commit()), so part of it may have committed"
        )
    } else if committed.is_empty() {
        "nothing committed: the database is at the revision the run found".to_string()
    } else {
        format!(
            "{} committed before the failure ({}); {} did not",
            migrations_count(committed.len()),
            committed.join(", "),
            if not.is_empty() {
                "the rest".to_string()
            } else {
                "nothing else".to_string()
            }
        )
    };
    let reason = finished.reason();
    let hint = if reason.contains("lock timeout") {
        format!(
            ". It waited lock_timeout ({}) for a lock another session holds, instead of queueing behind it and blocking the site; find the blocker in pg_stat_activity and retry when it is gone",
            humantime::format_duration(ctx.settings.database.lock_timeout)
        )
    } else {
        String::new()
    };
    Err(StageError::Failed(format!(
        "alembic {verb} failed: {reason}; {stopped}{hint}"
    )))
}

/// The guard refused one of the child's connections before anything ran on it: a
/// refusal (exit 3) when the account shows nothing changed, otherwise the account's
/// failure stands (a multi-database env.py may have migrated one database first).
fn refused_if_nothing_changed(ctx: &RunContext, finished: &Finished) -> Result<(), StageError> {
    match finished.refused() {
        Some(why) if ctx.committed.is_empty() && !ctx.outcome_unknown => Err(StageError::Refused(
            format!("{why}; {}; nothing was changed", super::reach::HINT_SHORT),
        )),
        _ => Ok(()),
    }
}

/// What differs from the schema as it was right before the upgrade (a summary), or
/// `None` when nothing does. Unknown counts as changed: never "nothing committed"
/// without seeing it.
async fn changed_since_upgrade_began(ctx: &mut RunContext) -> Option<String> {
    let before = ctx.schema_before.clone()?;
    match ctx.schema_shape().await {
        Ok(now) => {
            let differences = now.differences(&before);
            (!differences.is_empty()).then(|| crate::db::schema_shape::summary(&differences))
        }
        Err(e) => Some(format!("the schema could not be read to tell: {e}")),
    }
}

/// Downgrades to `to` (`None`: to base), refusing up front when a revision on the way
/// is known not to downgrade. The caller holds the deploy lock.
pub async fn downgrade(
    ctx: &mut RunContext,
    snap: &AlembicSnapshot,
    to: Option<&str>,
) -> Result<StageOutcome, StageError> {
    let undone: Vec<(String, String)> = snap
        .graph
        .undone_by_downgrade(snap.current(), to)
        .iter()
        .map(|r| (r.revision.clone(), r.message.clone()))
        .collect();
    if undone.is_empty() {
        return Ok(StageOutcome::Skipped(format!(
            "already at {}",
            to.unwrap_or("base")
        )));
    }
    let problems = snap.downgrade_problems(to);
    if !problems.is_empty() {
        return Err(StageError::Refused(format!(
            "cannot downgrade to {}: {}; nothing was changed (restore a backup instead)",
            to.unwrap_or("base"),
            problems.join("; ")
        )));
    }
    let server = ctx.server().await?;
    let witness = Witness::open(&ctx.settings.database).await?;
    let runner = Runner::new(&ctx.settings, Some(server.major)).guarded(&witness);
    let target = to.unwrap_or("base").to_string();
    let events = ctx.events.clone();
    let total = undone.len();
    let order = undone.clone();
    let finished = tokio::task::spawn_blocking(move || {
        runner.alembic_streaming(&["downgrade", &target], |line| {
            let Some((_, rest)) = line.split_once("Running downgrade ") else {
                return;
            };
            let revision = rest.split(" -> ").next().unwrap_or_default().trim();
            if let Some(index) = order.iter().position(|(r, _)| r == revision) {
                events.diagnose(
                    crate::events::Severity::Info,
                    format!("downgrading {revision} ({}/{total})", index + 1),
                    None,
                );
            }
        })
    })
    .await
    .map_err(|e| StageError::Failed(e.to_string()))?
    .map_err(failed);
    witness.close().await;
    let finished = finished?;
    let now = revisions_after(ctx, snap).await?;
    let still: HashSet<String> = snap.graph.ancestry(&now);
    let reverted: Vec<String> = undone
        .iter()
        .map(|(r, _)| r.clone())
        .filter(|r| !still.contains(r))
        .collect();
    if !finished.success && reverted.is_empty() {
        refused_if_nothing_changed(ctx, &finished)?;
    }
    if !finished.success {
        return Err(StageError::Failed(format!(
            "alembic downgrade failed: {}; {} reverted before it stopped ({}); the database is at {}",
            finished.reason(),
            reverted.len(),
            if reverted.is_empty() { "none".to_string() } else { reverted.join(", ") },
            if now.is_empty() { "base".to_string() } else { now.join("+") }
        )));
    }
    Ok(StageOutcome::Done(format!(
        "downgraded to {}: {} reverted ({})",
        to.unwrap_or("base"),
        reverted.len(),
        reverted.join(", ")
    )))
}

/// The version table's rows after alembic ran, read on a fresh connection (a failure
/// may have left ours unusable).
async fn revisions_after(
    ctx: &mut RunContext,
    snap: &AlembicSnapshot,
) -> Result<Vec<String>, crate::db::DbError> {
    ctx.reset_conn().await;
    let conn = ctx.conn().await?;
    Ok(current_revisions(conn, &snap.version)
        .await?
        .unwrap_or_default())
}

fn failed(e: super::AlembicError) -> StageError {
    StageError::Failed(e.to_string())
}
