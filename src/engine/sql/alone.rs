//! A `-- no-transaction` file (an up or a down) run alone: statement by statement,
//! each committing on its own, so a failure in the middle leaves the statements before
//! it applied. What such a stop left is told precisely: how many statements ran, and
//! which INVALID indexes appeared (a failed `CREATE INDEX CONCURRENTLY` leaves one).
//! A run can start at a later statement: the one a stop on a lock rolled back, so
//! that a retry finishes the file without running its first statements twice.

use sqlx::postgres::PgConnection;
use sqlx::Executor;

use crate::db::index_leftover;
use crate::db::{DbError, SqlFailure};
use crate::events::{Events, Severity};
use crate::migrations::split::{line_of_position, split_statements};

/// Where a file run alone stopped.
pub(super) struct Halted {
    /// Statements that ran (and stay): 1 to `ran` of `of`.
    pub ran: usize,
    pub of: usize,
    /// `None`: a signal asked to stop before statement `ran + 1`.
    pub failure: Option<(SqlFailure, String)>,
    /// The statement that failed is one transaction of its own (not one that
    /// commits in parts, `crate::migrations::in_parts`): nothing of it stayed.
    pub failed_whole: bool,
    /// INVALID indexes that appeared, or the error that kept us from looking.
    pub invalid_left: Result<Vec<String>, DbError>,
}

/// Runs `sql` statement by statement, from statement `from` (counted from 0; the
/// ones before it ran earlier). `fault`: a test pause after the first of several.
/// `traced`: a rehearsal's tracer and the migration's label (each statement is a
/// transaction of its own).
pub(super) async fn run_alone(
    conn: &mut PgConnection,
    sql: &str,
    from: usize,
    events: &Events,
    fault: Option<&str>,
    traced: Option<(&crate::trace::Tracer, &str)>,
) -> Result<Result<(), Halted>, DbError> {
    let statements = split_statements(sql);
    let invalid_before = crate::db::invalid_indexes(conn).await?;
    for (n, statement) in statements.iter().enumerate().skip(from) {
        if crate::interrupt::requested() {
            return Ok(Err(Halted {
                ran: n,
                of: statements.len(),
                failure: None,
                failed_whole: true,
                invalid_left: Ok(Vec::new()),
            }));
        }
        // A failed concurrent build of this very index left it INVALID: drop it, so
        // the rerun builds it instead of failing on the name.
        if let Some((index, table)) = index_leftover::concurrent_build(&statement.sql) {
            if let Some(dropped) = index_leftover::drop_leftover(conn, &index, &table).await? {
                events.diagnose(
                    Severity::Info,
                    format!("dropped the INVALID index {dropped} a failed build of this statement left, to build it again"),
                    None,
                );
            }
        }
        let ran = match traced {
            Some((trace, label)) => {
                let ran = trace
                    .execute(&mut *conn, label, statement.line, &statement.sql, true)
                    .await;
                trace.transaction_ended();
                ran
            }
            None => conn
                .execute(sqlx::raw_sql(&statement.sql))
                .await
                .map(|done| done.rows_affected()),
        };
        let Err(e) = ran else {
            if let (0, Some(fault), true) = (n, fault, statements.len() > 1) {
                crate::faults::pause(fault);
            }
            continue;
        };
        let failure = SqlFailure::from_sqlx(&e);
        let invalid_left = crate::db::invalid_indexes(conn).await.map(|now| {
            now.into_iter()
                .filter(|i| !invalid_before.contains(i))
                .collect()
        });
        let place = format!(
            "statement {} of {}, line {}",
            n + 1,
            statements.len(),
            statement.line
        );
        return Ok(Err(Halted {
            ran: n,
            of: statements.len(),
            failure: Some((failure, place)),
            failed_whole: !crate::migrations::in_parts::commits_in_parts(&statement.sql),
            invalid_left,
        }));
    }
    Ok(Ok(()))
}

pub(super) const INTERRUPTED: &str =
    "interrupted by a signal (Ctrl-C or SIGTERM) before the next statement";

/// "`subject` failed (`file`, line 4): `failure`" plus what to do about lock and
/// statement timeouts. `location`: where in `sql` it failed, when known better than
/// the server's error position.
pub(super) fn statement_failed(
    subject: &str,
    file: Option<&str>,
    sql: &str,
    failure: &SqlFailure,
    run: &crate::engine::change::RunFacts,
    location: Option<String>,
) -> String {
    let location = location.or_else(|| {
        failure
            .position
            .map(|pos| format!("line {}", line_of_position(sql, pos)))
    });
    let place: Vec<&str> = [file, location.as_deref()].into_iter().flatten().collect();
    let place = match place.is_empty() {
        true => String::new(),
        false => format!(" ({})", place.join(", ")),
    };
    let mut message = format!("{subject} failed{place}: {failure}");
    if let Some(advice) = failure_advice(failure, &run.settings) {
        message.push_str(&format!(". {advice}"));
    }
    message
}

/// What to do about a statement that failed by a timeout, or why it was cancelled:
/// a sentence to append to the error (`None` for other errors). Our own cancel after
/// Ctrl-C shares SQLSTATE 57014 with `statement_timeout`.
fn failure_advice(failure: &SqlFailure, settings: &crate::config::Settings) -> Option<String> {
    let cancelled = failure.sqlstate.as_deref() == Some("57014");
    if cancelled && crate::interrupt::requested() {
        return Some("It was cancelled by a signal (Ctrl-C or SIGTERM)".into());
    }
    failure.timeout_advice(
        settings.database.lock_timeout,
        settings.database.statement_timeout,
    )
}
