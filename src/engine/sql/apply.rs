//! The `sql` engine's apply: one step of the upgrade at a time, as the stage orders
//! them. Consecutive transactional migrations run in ONE transaction together with
//! their ledger rows, so a failure anywhere leaves none of them applied. A
//! `no-transaction` migration runs alone, statement by statement, and is recorded when
//! it completes. Each step's [`Report`] says exactly what committed.

use std::time::Instant;

use sqlx::postgres::PgConnection;
use sqlx::Executor;

use super::alone::{run_alone, statement_failed, INTERRUPTED};
use super::ledger::Ledger;
use super::transaction::{in_one_transaction, Body, Ended};
use crate::db::{ledger::NewRow, DbError, SqlFailure};
use crate::engine::change::{ChangeError, PartialChange, Report, RunFacts, Stop, StoppedAt};
use crate::events::Event;
use crate::migrations::Migration;

/// Applies consecutive transactional migrations (`batch`, the first of them
/// `first_index` of `total`) in one transaction with their ledger rows.
pub async fn batch(
    conn: &mut PgConnection,
    batch: &[&Migration],
    first_index: usize,
    total: usize,
    ledger: &Ledger,
    run: &RunFacts,
) -> Result<Report, ChangeError> {
    let versions: Vec<String> = batch.iter().map(|m| m.version.to_string()).collect();
    let rolled_back = || Report {
        rolled_back: versions.clone(),
        ..Report::default()
    };
    let mut body = Batch {
        batch,
        first_index,
        total,
        ledger,
        run,
    };
    let ended = in_one_transaction(conn, "beginning the deploy transaction", &mut body).await;
    if let Some(trace) = &run.trace {
        trace.transaction_ended();
    }
    match ended {
        Ended::Committed => Ok(Report::committed(versions)),
        Ended::NotBegun(e) => Err(e.into()),
        Ended::BodyFailed {
            error,
            connection_lost,
        } => Err(ChangeError {
            report: Report {
                connection_lost,
                ..rolled_back()
            },
            ..error
        }),
        Ended::CommitFailed(failure) => Err(ChangeError::failed(
            format!("COMMIT failed and rolled back: {failure}"),
            rolled_back(),
        )),
        Ended::CommitUnknown(failure) => Err(ChangeError::failed(
            format!(
                "the connection failed during COMMIT of {}: {failure}; whether they were applied is unknown until checked",
                versions.join(", ")
            ),
            Report {
                commit_unknown: versions.clone(),
                outcome_unknown: true,
                connection_lost: true,
                ..Report::default()
            },
        )),
    }
}

/// The migrations of a batch and their ledger rows, inside the open transaction.
struct Batch<'a> {
    batch: &'a [&'a Migration],
    first_index: usize,
    total: usize,
    ledger: &'a Ledger,
    run: &'a RunFacts,
}

impl Body for Batch<'_> {
    type Error = ChangeError;

    async fn run(&mut self, tx: &mut PgConnection) -> Result<(), ChangeError> {
        self.ledger.ensure(&mut *tx).await?;
        for (offset, m) in self.batch.iter().enumerate() {
            if crate::interrupt::requested() {
                return Err(ChangeError::failed(INTERRUPTED, Report::default()));
            }
            let index = self.first_index + offset;
            self.run.events.emit(started(m, index, self.total));
            let t = Instant::now();
            if let Err((e, place)) = run_up(tx, m, self.run).await {
                let failure = SqlFailure::from_sqlx(&e);
                return Err(ChangeError {
                    kind: match failure.is_lock_timeout() {
                        true => Stop::LockTimeout,
                        false => Stop::Failed,
                    },
                    message: migration_failed(m, &failure, self.run, place),
                    report: Report::default(),
                });
            }
            record(tx, m, index, self.total, t, self.ledger, self.run).await?;
        }
        crate::faults::pause("upgrade-transaction");
        Ok(())
    }
}

/// Runs `m`'s up in the open transaction: whole, or (in a rehearsal) statement by
/// statement through the tracer; on failure, where it stopped when that is known.
async fn run_up(
    tx: &mut PgConnection,
    m: &Migration,
    run: &RunFacts,
) -> Result<(), (sqlx::Error, Option<String>)> {
    let Some(trace) = &run.trace else {
        return tx
            .execute(sqlx::raw_sql(&m.up_sql))
            .await
            .map(|_| ())
            .map_err(|e| (e, None));
    };
    let label = m.label();
    trace.migration_started(&label);
    let statements = crate::migrations::split::split_statements(&m.up_sql);
    for (n, statement) in statements.iter().enumerate() {
        if let Err(e) = trace
            .execute(&mut *tx, &label, statement.line, &statement.sql, false)
            .await
        {
            let place = format!(
                "statement {} of {}, line {}",
                n + 1,
                statements.len(),
                statement.line
            );
            return Err((e, Some(place)));
        }
    }
    Ok(())
}

/// Applies a `no-transaction` migration: each statement commits on its own. `from`:
/// the statement to start at (counted from 0), past the ones an earlier attempt ran
/// before it stopped on a lock.
#[allow(clippy::too_many_arguments)]
pub async fn alone(
    conn: &mut PgConnection,
    m: &Migration,
    from: usize,
    index: usize,
    total: usize,
    ledger: &Ledger,
    run: &RunFacts,
) -> Result<Report, ChangeError> {
    ledger.ensure(&mut *conn).await?;
    if from == 0 {
        run.events.emit(started(m, index, total));
    }
    let t = Instant::now();
    let version = m.version.to_string();
    let schema = &run.settings.database.schema;
    let prior = match from {
        0 => ledger.starting_alone(&mut *conn, &version).await?,
        // The first attempt marked it started, and its statements before `from` ran.
        _ => None,
    };
    let fault = Some("no-transaction").filter(|_| from == 0);
    let label = m.label();
    if let (Some(trace), 0) = (&run.trace, from) {
        trace.migration_started(&label);
    }
    let traced = run.trace.as_ref().map(|t| (t, label.as_str()));
    let Err(halted) = run_alone(conn, &m.up_sql, from, &run.events, fault, traced).await? else {
        if let Some(error) = left_open(conn, m, ledger, prior).await? {
            return Err(error);
        }
        if let Err(e) = record(conn, m, index, total, t, ledger, run).await {
            // It ran; only the bookkeeping failed. Never let the run call this unchanged.
            let mut report = Report::default();
            report.partial(format!(
                "{version} (ran completely, not recorded in the ledger)"
            ));
            return Err(ChangeError::failed(
                format!(
                        "{} ran completely but recording it in the ledger failed: {e}; {} before the next deploy",
                    m.label(),
                    ledger.by_hand(schema, &run.settings.migrations.dir, &version, true, None)
                ),
                report,
            ));
        }
        return Ok(Report::committed(vec![version]));
    };
    let mut report = Report::default();
    if halted.ran > 0 {
        report.partial(format!(
            "{version} (statements 1-{} of {} only)",
            halted.ran, halted.of
        ));
    } else if let Err(e) = ledger.not_started(&mut *conn, prior).await {
        // The ledger still marks the migration as started (golang-migrate's dirty).
        report.partial(format!(
            "{version}: nothing of it ran, but its dirty mark in {} could not be cleared ({e})",
            ledger.qualified(schema)
        ));
    }
    let Some((failure, place)) = halted.failure else {
        return Err(ChangeError::failed(INTERRUPTED, report));
    };
    // Stopped between two statements: going on from the one that stopped finishes it.
    let nothing_left = matches!(&halted.invalid_left, Ok(left) if left.is_empty());
    if halted.failed_whole && nothing_left {
        report.stopped_at_statement = Some(StoppedAt {
            version: version.clone(),
            statement: halted.ran,
        });
    }
    let kind = match failure.is_lock_timeout() && report.stopped_at_statement.is_some() {
        true => Stop::LockTimeout,
        false => Stop::Failed,
    };
    // A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind: a change
    // like any other, and one that makes the retry fail too.
    match halted.invalid_left {
        Ok(left) => report
            .partial
            .extend(left.into_iter().map(|name| PartialChange::InvalidIndex {
                name,
                migration: version.clone(),
            })),
        Err(_) => report.partial(format!(
            "{version}: could not check for INVALID indexes it may have left (the connection failed)"
        )),
    }
    Err(ChangeError {
        kind,
        message: migration_failed(m, &failure, run, Some(place)),
        report,
    })
}

/// A `-- no-transaction` migration that ran to its end but left a transaction open (a
/// `BEGIN` without `COMMIT`): recorded in it, it would be reported applied and then
/// rolled back, ledger row and all, when the session ends. It is rolled back now and
/// fails: what ran before its `BEGIN` committed (a change only a restore undoes), what
/// ran after did not. `None`: the session is outside a transaction, as it should be.
async fn left_open(
    conn: &mut PgConnection,
    m: &Migration,
    ledger: &Ledger,
    prior: Option<crate::db::ledger::AppliedRow>,
) -> Result<Option<ChangeError>, DbError> {
    // A savepoint needs a transaction block: outside one, PostgreSQL refuses it
    // (SQLSTATE 25P01) and nothing happens.
    match conn
        .execute(sqlx::raw_sql("savepoint ballast_left_open"))
        .await
    {
        Err(e) if SqlFailure::from_sqlx(&e).sqlstate.as_deref() == Some("25P01") => {
            return Ok(None)
        }
        Err(e) => {
            return Err(DbError::query(
                "checking the session is outside a transaction",
                &e,
            ))
        }
        Ok(_) => {}
    }
    conn.execute("rollback")
        .await
        .map_err(|e| DbError::query("rolling back the transaction it left open", &e))?;
    let statements = crate::migrations::split::split_statements(&m.up_sql);
    let opened_at = crate::migrations::split::transaction_control(&m.up_sql)
        .map(|c| c.line)
        .unwrap_or(0);
    let before = statements.iter().filter(|s| s.line < opened_at).count();
    let mut report = Report::default();
    if before > 0 {
        report.partial(format!(
            "{} (statements 1-{before} of {}, before its BEGIN, only)",
            m.version,
            statements.len()
        ));
    } else {
        ledger.not_started(&mut *conn, prior).await?;
    }
    Ok(Some(ChangeError::failed(
        format!(
            "migration {} ({}, line {opened_at}) left a transaction open: a BEGIN without COMMIT. Recorded inside it, it would have been reported applied and then rolled back when the session ended; it was rolled back now and not recorded{}. End the transaction with COMMIT, or drop the BEGIN (a -- no-transaction migration commits each statement by itself)",
            m.label(),
            m.up_path.display(),
            match before {
                0 => String::new(),
                n => format!(" (its first {n} statement(s), before the BEGIN, committed)"),
            }
        ),
        report,
    )))
}

/// Writes the ledger row for `m` (on `conn`: inside the batch's transaction, or on
/// its own) and reports it applied.
#[allow(clippy::too_many_arguments)]
async fn record(
    conn: &mut PgConnection,
    m: &Migration,
    index: usize,
    total: usize,
    started: Instant,
    ledger: &Ledger,
    run: &RunFacts,
) -> Result<(), DbError> {
    let duration_ms = started.elapsed().as_millis() as u64;
    let row = NewRow {
        version: m.version.as_str(),
        name: &m.name,
        checksum: &m.checksum,
        run_id: run.run_id,
        duration_ms: duration_ms as i64,
        transactional: m.transactional,
    };
    ledger
        .record(conn, &run.settings.database.schema, m, row)
        .await?;
    run.events.emit(Event::MigrationApplied {
        index,
        total,
        version: m.version.to_string(),
        name: m.name.clone(),
        duration_ms,
    });
    Ok(())
}

fn started(m: &Migration, index: usize, total: usize) -> Event {
    Event::MigrationStarted {
        index,
        total,
        version: m.version.to_string(),
        name: m.name.clone(),
        transactional: m.transactional,
    }
}

/// "migration 3_add_orders failed (migrations/3_add_orders.sql, line 4): ..." plus
/// what to do about lock and statement timeouts.
fn migration_failed(
    m: &Migration,
    failure: &SqlFailure,
    run: &RunFacts,
    location: Option<String>,
) -> String {
    let file = m.up_path.display().to_string();
    let subject = format!("migration {}", m.label());
    statement_failed(&subject, Some(&file), &m.up_sql, failure, run, location)
}
