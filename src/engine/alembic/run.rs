//! Upgrading and downgrading an Alembic target, under ballast's deploy lock (the
//! stage holds it). Alembic runs online as the project has it; afterwards the version
//! table says what Alembic recorded, and the schema and the table statistics what
//! committed besides, whatever the project's transaction mode: a failure after some
//! revisions committed is reported as that, never as "rolled back".

use std::collections::HashSet;
use std::time::Instant;

use sqlx::postgres::PgConnection;

use super::offline::upgraded_to;
use super::process::{Finished, Runner};
use super::reach::Witness;
use super::snapshot::{commits_by_itself, current_revisions, AlembicSnapshot};
use crate::db::DbError;
use crate::engine::change::{ChangeError, Report, RunFacts, Stop};
use crate::engine::goal::UndoRefused;
use crate::events::Event;

/// Runs `alembic upgrade TARGET` once and accounts for every pending revision. A
/// lock timeout that left only whole revisions committed is [`Stop::LockTimeout`].
pub async fn upgrade(snap: &AlembicSnapshot, run: &RunFacts) -> Result<Report, ChangeError> {
    let target = snap
        .target()
        .ok_or_else(|| ChangeError::refused("the project has no single head"))?
        .to_string();
    let pending: Vec<(String, String)> = snap
        .pending()
        .iter()
        .map(|r| (r.revision.clone(), r.message.clone()))
        .collect();
    let transactional = !snap.per_migration();
    // Alembic's every connection is held to the witness while it runs (guard.py).
    let witness = Witness::open(&run.settings.database).await?;
    let runner = Runner::new(&run.settings, Some(run.server_major)).guarded(&witness);
    // A rehearsal's trace names each revision as the plan and the lint do.
    let labels: Vec<String> = snap.pending().iter().map(|r| r.label()).collect();
    let finished = upgrade_once(runner, run, &target, &pending, &labels, transactional).await;
    witness.close().await;
    let finished = finished?;
    let mut account = account(snap, &pending, &finished, "upgrade", run).await;
    if let Err(e) = &mut account {
        refused_if_nothing_changed(&finished, e);
    }
    account
}

/// One `alembic upgrade`, with a progress event per revision from alembic's log.
async fn upgrade_once(
    runner: Runner,
    run: &RunFacts,
    target: &str,
    pending: &[(String, String)],
    labels: &[String],
    transactional: bool,
) -> Result<Finished, ChangeError> {
    let total = pending.len();
    let order = pending.to_vec();
    let progress = run.events.clone();
    let events = run.events.clone();
    let trace = run.trace.clone();
    let labels = labels.to_vec();
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
                events.emit(applied(&order, done, since));
            }
            if let Some(trace) = &trace {
                trace.migration_started(&labels[index]);
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
    .map_err(|e| ChangeError::failed(e.to_string(), Report::default()))?;
    let finished = finished.map_err(failed)?;
    if let (true, Some((done, since))) = (finished.success, last) {
        progress.emit(applied(pending, done, since));
    }
    Ok(finished)
}

/// The revision `done` of `pending` (revision, message) ran, since `since`.
fn applied(pending: &[(String, String)], done: usize, since: Instant) -> Event {
    Event::MigrationApplied {
        index: done,
        total: pending.len(),
        version: pending[done].0.clone(),
        name: pending[done].1.clone(),
        duration_ms: since.elapsed().as_millis() as u64,
    }
}

/// Reads the version table after alembic ended: what committed and what did not; an
/// error when alembic failed.
async fn account(
    before: &AlembicSnapshot,
    pending: &[(String, String)],
    finished: &Finished,
    verb: &str,
    run: &RunFacts,
) -> Result<Report, ChangeError> {
    let mut report = Report::default();
    // A fresh connection: a failure may have left any other one unusable.
    let mut conn = match crate::db::connect(&run.settings.database, "deploy").await {
        Ok(conn) => conn,
        Err(e) => return Err(unreadable(verb, finished, e)),
    };
    let result = account_on(&mut conn, before, pending, finished, verb, run, &mut report).await;
    crate::db::close(conn).await;
    match result {
        Ok(()) => Ok(report),
        Err(mut e) => {
            e.report = report;
            Err(e)
        }
    }
}

/// What committed is unknown: the version table could not be read afterwards.
fn unreadable(verb: &str, finished: &Finished, e: DbError) -> ChangeError {
    ChangeError::failed(
        format!(
            "alembic {verb} ended ({}), and reading the version table afterwards failed: {e}; what committed is unknown until checked",
            finished.status
        ),
        Report {
            outcome_unknown: true,
            ..Report::default()
        },
    )
}

async fn account_on(
    conn: &mut PgConnection,
    before: &AlembicSnapshot,
    pending: &[(String, String)],
    finished: &Finished,
    verb: &str,
    run: &RunFacts,
    report: &mut Report,
) -> Result<(), ChangeError> {
    let now = match current_revisions(conn, &before.version).await {
        Ok(rows) => rows.unwrap_or_default(),
        Err(e) => {
            let e = unreadable(verb, finished, e);
            *report = e.report.clone();
            return Err(e);
        }
    };
    let reached = before.graph.ancestry(&now);
    let (committed, not): (Vec<String>, Vec<String>) = pending
        .iter()
        .map(|(r, _)| r.clone())
        .partition(|r| reached.contains(r));
    report.committed = committed.clone();
    if finished.success {
        if !not.is_empty() {
            return Err(ChangeError::failed(
                format!(
                    "alembic {verb} exited 0 but the version table does not include {}; check `ballast status`",
                    not.join(", ")
                ),
                Report::default(),
            ));
        }
        return Ok(());
    }
    // The version table says what Alembic recorded, not what committed: a revision
    // that commits by itself (`op.get_bind().commit()`, an autocommit block) keeps its
    // changes when a later revision's failure rolls the version table back.
    let unrecorded = match committed.is_empty() {
        true => changed_since_upgrade_began(conn, run).await,
        false => None,
    };
    // The revision that failed may have committed part of its work by itself, which
    // neither the version table nor (for rows) the schema shows: never "rolled back".
    // No row written anywhere since the backup proves it committed nothing.
    let self_committing = not
        .first()
        .filter(|failed| {
            before
                .graph
                .get(failed)
                .is_some_and(|r| commits_by_itself(&r.path))
        })
        .cloned();
    let self_committing = match self_committing {
        Some(failed) if unrecorded.is_none() => match rows_written_since_backup(conn, run).await {
            Some(written) if written.is_empty() => None,
            _ => Some(failed),
        },
        other => other,
    };
    let self_committing = self_committing.as_ref();
    if let Some(changes) = &unrecorded {
        report.partial(format!(
            "schema changes {} does not record: {changes}",
            before.version
        ));
    } else if let Some(failed) = self_committing {
        report.partial(format!(
            "{failed} failed, and it commits by itself (an autocommit block or commit()): what it committed before failing is unknown"
        ));
        report.rolled_back = not[1..].to_vec();
    } else if !not.is_empty() {
        report.rolled_back = not.clone();
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
            crate::text::migrations_count(committed.len()),
            committed.join(", "),
            if not.is_empty() {
                "the rest".to_string()
            } else {
                "nothing else".to_string()
            }
        )
    };
    let reason = finished.reason();
    let lock_timeout = reason.contains("lock timeout");
    let hint = if lock_timeout {
        format!(
            ". It waited lock_timeout ({}) for a lock another session holds, instead of queueing behind it and blocking the site; find the blocker in pg_stat_activity and retry when it is gone",
            humantime::format_duration(run.settings.database.lock_timeout)
        )
    } else {
        String::new()
    };
    // Stopped cleanly: what committed are whole revisions, which the version table
    // records (one transaction per revision), and the rest rolled back; with one
    // transaction for the run, nothing committed. Going on from the version table
    // then applies nothing twice (as the sql engine's batches). The version table must
    // have moved by exactly those (another run, or a hand, may have moved it meanwhile).
    let mut expected = before.graph.ancestry(before.current());
    expected.extend(committed.iter().cloned());
    let stopped_cleanly = unrecorded.is_none()
        && self_committing.is_none()
        && before.graph.ancestry(&now) == expected;
    Err(ChangeError {
        kind: match lock_timeout && stopped_cleanly {
            true => Stop::LockTimeout,
            false => Stop::Failed,
        },
        message: format!("alembic {verb} failed: {reason}; {stopped}{hint}"),
        report: Report::default(),
    })
}

/// The guard refused one of the child's connections before anything ran on it: a
/// refusal (exit 3) when the account shows nothing changed, otherwise the account's
/// failure stands (a multi-database env.py may have migrated one database first).
fn refused_if_nothing_changed(finished: &Finished, e: &mut ChangeError) {
    if let Some(why) = finished.refused() {
        if !e.report.changed_anything() {
            // What rolled back is still recorded as such.
            let report = std::mem::take(&mut e.report);
            *e = ChangeError {
                report,
                ..ChangeError::refused(format!(
                    "{why}; {}; nothing was changed",
                    super::reach::HINT_SHORT
                ))
            };
        }
    }
}

/// What differs from the schema as it was right before the upgrade (a summary), or
/// `None` when nothing does. Unknown counts as changed: never "nothing committed"
/// without seeing it.
async fn changed_since_upgrade_began(conn: &mut PgConnection, run: &RunFacts) -> Option<String> {
    let before = run.before.as_ref()?;
    match before.shape_now(conn).await {
        Ok(now) => {
            let differences = now.differences(&before.shape);
            (!differences.is_empty()).then(|| crate::db::schema_shape::summary(&differences))
        }
        Err(e) => Some(format!("the schema could not be read to tell: {e}")),
    }
}

/// Rows written since the backup outside the bookkeeping tables; `None` when that
/// cannot be told (no backup, or the statistics could not be read).
async fn rows_written_since_backup(
    conn: &mut PgConnection,
    run: &RunFacts,
) -> Option<Vec<(String, i64)>> {
    let before = run.before.as_ref()?;
    let at_backup = before.writes_at_backup.as_ref()?;
    crate::db::table_writes::written_since(conn, at_backup, &before.bookkeeping)
        .await
        .ok()
}

/// What a downgrade reverted.
pub struct Reverted {
    pub revisions: Vec<String>,
}

/// The revisions a downgrade to `to` (`None`: to base) reverts, newest first, or the
/// refusal when one on the way is known not to downgrade.
pub fn downgrade_plan(
    snap: &AlembicSnapshot,
    to: Option<&str>,
) -> Result<Vec<(String, String)>, UndoRefused> {
    let undone: Vec<(String, String)> = snap
        .graph
        .undone_by_downgrade(snap.current(), to)
        .iter()
        .map(|r| (r.revision.clone(), r.message.clone()))
        .collect();
    if undone.is_empty() {
        return Ok(undone);
    }
    let problems = snap.downgrade_problems(to);
    if !problems.is_empty() {
        return Err(UndoRefused::Unsafe {
            goal: format!("downgrade to {}", to.unwrap_or("base")),
            problems,
            instead: "restore a backup instead",
        });
    }
    Ok(undone)
}

/// Downgrades to `to` (`None`: to base), reverting `undone` (see [`downgrade_plan`]).
pub async fn downgrade(
    snap: &AlembicSnapshot,
    to: Option<&str>,
    undone: &[(String, String)],
    run: &RunFacts,
) -> Result<Reverted, ChangeError> {
    let witness = Witness::open(&run.settings.database).await?;
    let runner = Runner::new(&run.settings, Some(run.server_major)).guarded(&witness);
    let target = to.unwrap_or("base").to_string();
    let events = run.events.clone();
    let total = undone.len();
    let order = undone.to_vec();
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
    .map_err(|e| ChangeError::failed(e.to_string(), Report::default()))?
    .map_err(failed);
    witness.close().await;
    let finished = finished?;
    let now = revisions_after(snap, run).await?;
    let still: HashSet<String> = snap.graph.ancestry(&now);
    let reverted: Vec<String> = undone
        .iter()
        .map(|(r, _)| r.clone())
        .filter(|r| !still.contains(r))
        .collect();
    if finished.success {
        return Ok(Reverted {
            revisions: reverted,
        });
    }
    // Each revision's downgrade is whole (none commits by itself): the downgrade
    // can be planned again from where it stopped.
    let stopped_cleanly = snap.stops_cleanly(undone.iter().map(|(r, _)| r.as_str()));
    let mut error = ChangeError {
        kind: match finished.reason().contains("lock timeout") && stopped_cleanly {
            true => Stop::LockTimeout,
            false => Stop::Failed,
        },
        ..ChangeError::failed(
            format!(
                "alembic downgrade failed: {}; {} reverted before it stopped ({}); the database is at {}",
                finished.reason(),
                reverted.len(),
                if reverted.is_empty() { "none".to_string() } else { reverted.join(", ") },
                if now.is_empty() { "base".to_string() } else { now.join("+") }
            ),
            Report::committed(reverted),
        )
    };
    refused_if_nothing_changed(&finished, &mut error);
    Err(error)
}

/// The version table's rows after alembic ran, read on a fresh connection (a failure
/// may have left any other one unusable).
async fn revisions_after(snap: &AlembicSnapshot, run: &RunFacts) -> Result<Vec<String>, DbError> {
    let mut conn = crate::db::connect(&run.settings.database, "deploy").await?;
    let rows = current_revisions(&mut conn, &snap.version).await;
    crate::db::close(conn).await;
    Ok(rows?.unwrap_or_default())
}

fn failed(e: super::AlembicError) -> ChangeError {
    ChangeError::failed(e.to_string(), Report::default())
}
