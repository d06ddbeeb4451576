//! `upgrade`: applies the plan under the deploy lock.
//!
//! Consecutive transactional migrations run in ONE transaction together with their
//! ledger rows, so a failure anywhere leaves none of them applied. A `no-transaction`
//! migration splits the batch: it runs alone, statement by statement, and is recorded
//! when it completes. The context records exactly what committed, so the runner never
//! claims "rolled back" for something that was not.

use std::time::Instant;

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

use super::{migrations_count, StageError, StageOutcome};
use crate::db::{ledger, DbError, SqlFailure};
use crate::engine::Snapshot;
use crate::events::Event;
use crate::migrations::split::{line_of_position, split_statements};
use crate::migrations::Migration;
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    // Even with nothing to apply: "up to date" is answered under the lock, so it is
    // never said while another run is half-way through (or undoing) its deploy.
    super::deploy_lock::hold(ctx).await?;
    crate::interrupt::set_changing(true);
    let result = apply_under_lock(ctx).await;
    ctx.end_changing();
    // Once something committed, an interruption is never "before anything changed".
    crate::interrupt::set_changing(!ctx.committed.is_empty() || ctx.outcome_unknown);
    result
}

async fn apply_under_lock(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let settings = ctx.settings.clone();
    let schema = settings.database.schema.as_str();
    // Nothing to apply runs no Alembic child, so needs no proof of where it connects.
    let snap = ctx.goal_snapshot().await?;
    let snap = match snap.plan().is_empty() {
        true => snap,
        false => ctx.proven_goal_snapshot().await?,
    };
    super::refuse_if_engine_refuses(&snap)?;
    if snap.is_blocked() {
        // Changed since the state check, or seen only now that env.py said where its
        // version table is: nothing was applied.
        let problems = crate::stages::state_check::diagnose(&ctx.events, &snap);
        return Err(StageError::Refused(format!(
            "{problems} problem{} found under the deploy lock (see above; the state changed since the state check, or the version table is where env.py keeps it); nothing was changed, run `ballast status`",
            if problems == 1 { "" } else { "s" }
        )));
    }
    let plan = snap.plan();
    if let Some(previewed) = &ctx.plan {
        if previewed.hash != plan.hash {
            let all_applied_elsewhere = plan.is_empty()
                && previewed
                    .migrations
                    .iter()
                    .all(|m| snap.has_applied(&m.version, &m.checksum));
            if all_applied_elsewhere {
                return Ok(StageOutcome::Skipped(
                    "another run applied this plan while we waited for the lock".into(),
                ));
            }
            return Err(StageError::Refused(format!(
                "the plan changed since the preview (previewed {}, now {}): files or database changed; \
                 nothing was applied, run the deploy again to see the new plan",
                previewed.short_hash(),
                plan.short_hash()
            )));
        }
    }
    if plan.is_empty() {
        return Ok(StageOutcome::Skipped("nothing to apply".into()));
    }
    // The same plan as the preview's (the hashes match), which for Alembic also has
    // the SQL offline mode rendered: keep that one.
    if ctx.plan.is_none() {
        ctx.plan = Some(plan);
    }

    ctx.begin_changing().await?;
    ledger::ensure_tables(ctx.conn().await?, schema).await?;
    // Where the recovery ladder must bring the schema back to, if it comes to that.
    ctx.take_schema_before(&snap).await?;
    ctx.upgrade_started = true;
    crate::journal::mark_running(ctx).await;
    let snap = match snap {
        Snapshot::Sql(sql) => sql,
        Snapshot::Alembic(alembic) => {
            return crate::engine::alembic::run::upgrade(ctx, &alembic).await
        }
    };
    let pending: Vec<Migration> = snap.pending().into_iter().cloned().collect();

    let total = pending.len();
    let mut index = 0;
    let started = Instant::now();
    // A migration that adds an enum value commits its batch: a later one may use it.
    // Where the plan (the one the preview showed) says, read once there.
    let cuts: Vec<String> = ctx
        .plan
        .iter()
        .flat_map(|plan| &plan.migrations)
        .filter(|m| m.commits_after.is_some())
        .map(|m| m.version.clone())
        .collect();
    let cut = |m: &Migration| cuts.contains(&m.version.to_string());
    for batch in crate::migrations::batches_cut(&pending, |m| m.transactional, cut) {
        if crate::interrupt::requested() {
            return Err(interrupted());
        }
        if batch[0].transactional {
            apply_with_retries(ctx, batch, index, total).await?;
        } else {
            apply_alone(ctx, &batch[0], index, total).await?;
        }
        index += batch.len();
    }
    Ok(StageOutcome::Done(format!(
        "{} applied in {}",
        migrations_count(total),
        crate::text::human_duration(started.elapsed().as_millis() as u64)
    )))
}

/// A batch's transaction failed: why, and whether it was a lock timeout (the whole
/// batch rolled back; trying again later may well succeed).
struct BatchFailure {
    error: StageError,
    lock_timeout: bool,
}

impl From<DbError> for BatchFailure {
    fn from(e: DbError) -> BatchFailure {
        BatchFailure {
            error: e.into(),
            lock_timeout: false,
        }
    }
}

/// [`apply_transaction`], tried again after a lock timeout (`database.lock_retries`
/// times, the wait doubling from `database.lock_retry_wait`): the batch rolled back
/// whole, so nothing is applied twice, and the blocker may be gone by then.
async fn apply_with_retries(
    ctx: &mut RunContext,
    batch: &[Migration],
    first_index: usize,
    total: usize,
) -> Result<(), StageError> {
    let retries = ctx.settings.database.lock_retries;
    let mut wait = ctx.settings.database.lock_retry_wait;
    let mut attempt = 0;
    loop {
        match apply_transaction(ctx, batch, first_index, total).await {
            Ok(()) => return Ok(()),
            Err(failure) if failure.lock_timeout && attempt < retries => {
                attempt += 1;
                ctx.events.diagnose(
                    crate::events::Severity::Warning,
                    format!(
                        "a migration of the batch waited lock_timeout for a lock another session holds (SQLSTATE 55P03); the batch rolled back, nothing of it applied. Retry {attempt} of {retries} in {}",
                        humantime::format_duration(wait)
                    ),
                    None,
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(300));
            }
            Err(failure) if attempt > 0 => {
                return Err(StageError::Failed(format!(
                    "{} (tried {} times, database.lock_retries = {retries})",
                    failure.error,
                    attempt + 1
                )))
            }
            Err(failure) => return Err(failure.error),
        }
    }
}

async fn apply_transaction(
    ctx: &mut RunContext,
    batch: &[Migration],
    first_index: usize,
    total: usize,
) -> Result<(), BatchFailure> {
    let versions: Vec<String> = batch.iter().map(|m| m.version.to_string()).collect();
    let run = RunFacts::of(ctx);
    let conn = ctx.conn().await?;
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| DbError::query("beginning the deploy transaction", &e))?;
    let applied = run_batch(&mut tx, batch, first_index, total, &run).await;
    let outcome = match applied {
        Ok(()) => tx.commit().await,
        Err(error) => {
            if tx.rollback().await.is_err() {
                // The connection is gone: PostgreSQL rolls back a transaction whose
                // session ends before COMMIT, so nothing of the batch is applied.
                ctx.reset_conn().await;
            }
            ctx.record_rolled_back(versions);
            return Err(error);
        }
    };
    match outcome {
        Ok(()) => {
            ctx.record_committed(versions);
            Ok(())
        }
        // The server answered COMMIT with an error (a deferred constraint, say): it
        // rolled back, and nothing of the batch is applied.
        Err(e @ sqlx::Error::Database(_)) => {
            ctx.record_rolled_back(versions);
            let failure = SqlFailure::from_sqlx(&e);
            Err(BatchFailure {
                error: StageError::Failed(format!("COMMIT failed and rolled back: {failure}")),
                lock_timeout: false,
            })
        }
        // COMMIT sent, answer lost: it may or may not have committed.
        Err(e) => {
            ctx.outcome_unknown = true;
            ctx.commit_unknown.extend(versions.iter().cloned());
            ctx.commit_unknown_pid = ctx.session_pid;
            ctx.reset_conn().await;
            Err(BatchFailure {
                error: StageError::Failed(format!(
                    "the connection failed during COMMIT of {}: {}; whether they were applied is unknown until checked",
                    versions.join(", "),
                    SqlFailure::from_sqlx(&e)
                )),
                lock_timeout: false,
            })
        }
    }
}

/// Runs each migration of a batch and its ledger row inside the open transaction.
async fn run_batch(
    tx: &mut PgConnection,
    batch: &[Migration],
    first_index: usize,
    total: usize,
    run: &RunFacts,
) -> Result<(), BatchFailure> {
    for (offset, m) in batch.iter().enumerate() {
        if crate::interrupt::requested() {
            return Err(BatchFailure {
                error: interrupted(),
                lock_timeout: false,
            });
        }
        let index = first_index + offset;
        run.events.emit(started_event(m, index, total));
        let t = Instant::now();
        if let Err(e) = tx.execute(sqlx::raw_sql(&m.up_sql)).await {
            let failure = SqlFailure::from_sqlx(&e);
            return Err(BatchFailure {
                error: migration_failed(m, &failure, &run.settings, None),
                lock_timeout: failure.is_lock_timeout(),
            });
        }
        record_applied(tx, m, index, total, t, run).await?;
    }
    crate::faults::pause("upgrade-transaction");
    Ok(())
}

/// What every step of the upgrade needs to know about the run.
struct RunFacts {
    run_id: uuid::Uuid,
    settings: crate::config::Settings,
    events: crate::events::Events,
}

impl RunFacts {
    fn of(ctx: &RunContext) -> RunFacts {
        RunFacts {
            run_id: ctx.run_id,
            settings: ctx.settings.clone(),
            events: ctx.events.clone(),
        }
    }
}

/// Writes the ledger row for `m` (on `conn`: inside the batch's transaction, or on
/// its own) and reports it applied.
async fn record_applied(
    conn: &mut PgConnection,
    m: &Migration,
    index: usize,
    total: usize,
    started: Instant,
    run: &RunFacts,
) -> Result<(), DbError> {
    let duration_ms = started.elapsed().as_millis() as u64;
    let row = ledger::NewRow {
        version: m.version.as_str(),
        name: &m.name,
        checksum: &m.checksum,
        run_id: run.run_id,
        duration_ms: duration_ms as i64,
        transactional: m.transactional,
    };
    ledger::record(conn, &run.settings.database.schema, row).await?;
    run.events.emit(Event::MigrationApplied {
        index,
        total,
        version: m.version.to_string(),
        name: m.name.clone(),
        duration_ms,
    });
    Ok(())
}

/// A `no-transaction` migration: each statement commits on its own.
async fn apply_alone(
    ctx: &mut RunContext,
    m: &Migration,
    index: usize,
    total: usize,
) -> Result<(), StageError> {
    let run = RunFacts::of(ctx);
    run.events.emit(started_event(m, index, total));
    let t = Instant::now();
    let statements = split_statements(&m.up_sql);
    crate::journal::mark_in_progress(ctx, Some(m.label())).await;
    let conn = ctx.conn().await?;
    let invalid_before = crate::db::invalid_indexes(conn).await?;
    for (n, statement) in statements.iter().enumerate() {
        if crate::interrupt::requested() {
            if n > 0 {
                ctx.record_partial_change(format!(
                    "{} (statements 1-{n} of {} only)",
                    m.version,
                    statements.len()
                ));
            }
            return Err(interrupted());
        }
        // A failed concurrent build of this very index left it INVALID: drop it, so
        // the rerun builds it instead of failing on the name.
        if let Some((index, table)) = crate::db::index_leftover::concurrent_build(&statement.sql) {
            if let Some(dropped) =
                crate::db::index_leftover::drop_leftover(conn, &index, &table).await?
            {
                run.events.diagnose(
                    crate::events::Severity::Info,
                    format!("dropped the INVALID index {dropped} a failed build of this statement left, to build it again"),
                    None,
                );
            }
        }
        let Err(e) = conn.execute(sqlx::raw_sql(&statement.sql)).await else {
            if n == 0 && statements.len() > 1 {
                crate::faults::pause("no-transaction");
            }
            continue;
        };
        let failure = SqlFailure::from_sqlx(&e);
        // A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind: a change
        // like any other, and one that makes the retry fail too.
        let left_over = crate::db::invalid_indexes(conn).await;
        if n > 0 {
            ctx.record_partial_change(format!(
                "{} (statements 1-{n} of {} only)",
                m.version,
                statements.len()
            ));
        }
        match left_over {
            Ok(now) => {
                for name in now.into_iter().filter(|i| !invalid_before.contains(i)) {
                    ctx.record_invalid_index(name, m.version.to_string());
                }
            }
            Err(_) => ctx.record_partial_change(format!(
                "{}: could not check for INVALID indexes it may have left (the connection failed)",
                m.version
            )),
        }
        let place = format!(
            "statement {} of {}, line {}",
            n + 1,
            statements.len(),
            statement.line
        );
        return Err(migration_failed(m, &failure, &run.settings, Some(place)));
    }
    if let Err(e) = record_applied(conn, m, index, total, t, &run).await {
        // It ran; only the bookkeeping failed. Never let the run call this unchanged.
        ctx.record_partial_change(format!(
            "{} (ran completely, not recorded in the ledger)",
            m.version
        ));
        return Err(StageError::Failed(format!(
            "{} ran completely but recording it in the ledger failed: {e}; \
             insert its row into {}.{} by hand before the next deploy",
            m.label(),
            run.settings.database.schema,
            ledger::TABLE
        )));
    }
    ctx.record_committed(vec![m.version.to_string()]);
    crate::journal::mark_in_progress(ctx, None).await;
    Ok(())
}

fn interrupted() -> StageError {
    StageError::Failed(
        "interrupted by a signal (Ctrl-C or SIGTERM) before the next statement".into(),
    )
}

fn started_event(m: &Migration, index: usize, total: usize) -> Event {
    Event::MigrationStarted {
        index,
        total,
        version: m.version.to_string(),
        name: m.name.clone(),
        transactional: m.transactional,
    }
}

/// "migration 3_add_orders failed (migrations/3_add_orders.sql line 4): ..." plus
/// what to do about lock and statement timeouts.
fn migration_failed(
    m: &Migration,
    failure: &SqlFailure,
    settings: &crate::config::Settings,
    location: Option<String>,
) -> StageError {
    let location = location.or_else(|| {
        failure
            .position
            .map(|pos| format!("line {}", line_of_position(&m.up_sql, pos)))
    });
    let place = match location {
        Some(location) => format!("{}, {location}", m.up_path.display()),
        None => m.up_path.display().to_string(),
    };
    let mut message = format!("migration {} failed ({place}): {failure}", m.label());
    if let Some(advice) = super::failure_advice(failure, settings) {
        message.push_str(&format!(". {advice}"));
    }
    StageError::Failed(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::{checksum::checksum, Version};

    fn m(v: &str, transactional: bool) -> Migration {
        Migration {
            version: Version::parse(v).unwrap(),
            name: "x".into(),
            up_path: "x.sql".into(),
            up_sql: "select 1".into(),
            down_sql: None,
            checksum: checksum("select 1"),
            transactional,
        }
    }

    #[test]
    fn non_transactional_migrations_split_the_batch() {
        let list = [
            m("1", true),
            m("2", true),
            m("3", false),
            m("4", true),
            m("5", false),
        ];
        let shapes: Vec<usize> = crate::migrations::batches(&list, |m| m.transactional)
            .iter()
            .map(|b| b.len())
            .collect();
        assert_eq!(shapes, [2, 1, 1, 1]);
        assert!(!crate::migrations::batches(&list, |m| m.transactional)[1][0].transactional);
    }

    #[test]
    fn all_transactional_is_one_batch() {
        let list = [m("1", true), m("2", true), m("3", true)];
        assert_eq!(
            crate::migrations::batches(&list, |m| m.transactional).len(),
            1
        );
    }
}
