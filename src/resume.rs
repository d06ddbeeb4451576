//! Runs that never finished. A run killed mid-way (SIGKILL, a lost machine, power)
//! leaves its journal entry `running`. The next run's state check finds it, checks the
//! database against it (is its deploy lock gone? what did it commit? did it leave an
//! INVALID index?), says so, and only then goes on: never silently.
//!
//! What it committed is in the ledger under its run id and is simply applied; an open
//! transaction was rolled back by the server when its session died. An INVALID index
//! (a `CREATE INDEX CONCURRENTLY` cut short) would make the retry fail, or, with `IF
//! NOT EXISTS`, pass while leaving the index unusable: the run asks before dropping it,
//! and without a terminal refuses with the command to run.

use serde_json::Value;
use sqlx::postgres::PgConnection;

use crate::db::{journal_table, ledger, lock, DbError};
use crate::events::Severity;
use crate::pipeline::RunContext;
use crate::pipeline::StageError;

/// A run the journal says is running, whose deploy lock nobody holds.
struct Abandoned {
    entry: Value,
    run_id: String,
}

/// Looks for abandoned runs and deals with them; `Err` refuses the run (an INVALID
/// index left that nobody agreed to drop).
pub async fn check(ctx: &mut RunContext) -> Result<(), StageError> {
    let schema = ctx.settings().database.schema.clone();
    let own = ctx.run_id().to_string();
    let app_name = ctx.settings().database.application_name.clone();
    let events = ctx.events().clone();
    let conn = ctx.conn().await?;
    if !ledger::table_exists(&mut *conn, &schema, journal_table::TABLE).await? {
        return Ok(());
    }
    let abandoned = abandoned(conn, &schema, &own, &events).await?;
    if abandoned.is_empty() {
        return Ok(());
    }
    let invalid = crate::db::invalid_indexes(conn).await?;
    let lingering = lingering_sessions(conn, &app_name).await?;
    let snap = ctx.snapshot().await?;
    // Alembic keeps no per-run record: compare its version table with the start.
    let by_run = snap.records_runs();
    let now = if by_run { None } else { snap.current_label() };
    // Only an index of this project's migrations can be the interrupted run's: one they
    // name, or one on a table they name (CREATE INDEX CONCURRENTLY ON t (c) lets the
    // server name it). Any other INVALID index (a DBA's build cut short) is not
    // ballast's to drop.
    let scope = ctx.scope_of(&snap).await?;
    let conn = ctx.conn().await?;
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for qualified in invalid {
        let (schema, name) = unqualify(&qualified);
        let table: String = sqlx::query_scalar(
            "select c.relname::text from pg_index i join pg_class c on c.oid = i.indrelid \
             where i.indexrelid = $1::regclass",
        )
        .bind(&qualified)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_default();
        if scope.covers(&schema)
            && (scope.names(&name) || (!table.is_empty() && scope.names(&table)))
        {
            ours.push(qualified);
        } else {
            others.push(qualified);
        }
    }
    let invalid = ours;
    if !others.is_empty() {
        events.diagnose(
            Severity::Info,
            format!(
                "INVALID index {} left alone: no migration of this project names it or its table",
                others.join(", ")
            ),
            None,
        );
    }
    let conn = ctx.conn().await?;
    for run in &abandoned {
        let committed = committed_by(conn, &schema, &run.run_id).await?;
        let stage = run.entry["stages"]
            .as_array()
            .and_then(|s| s.last())
            .and_then(|s| s["stage"].as_str())
            .map(|s| format!("after its {s} stage"))
            .unwrap_or_else(|| "before its first stage finished".into());
        let half_run = match run.entry["in_progress"].as_str() {
            Some(label) => format!(
                "; it was inside {label}, a -- no-transaction migration, whose statements that ran stay while it is not recorded: this run starts it again from its first statement (each should be safe to repeat: IF NOT EXISTS)"
            ),
            None => String::new(),
        };
        let committed = if !by_run {
            format!(
                "it started at revision {}, and the version table is now at {}",
                run.entry["start_version"].as_str().unwrap_or("none"),
                now.as_deref().unwrap_or("none")
            )
        } else if committed.is_empty() {
            "it committed no migration".to_string()
        } else {
            format!("it committed {} (still applied)", committed.join(", "))
        };
        events.diagnose(
            Severity::Warning,
            format!(
                "run {} ({}, started {}) was interrupted {stage} and never finished: {committed}{half_run}; its deploy lock is free, so it is not running",
                run.run_id,
                run.entry["pipeline"].as_str().unwrap_or("?"),
                run.entry["started_at"].as_str().unwrap_or("?"),
            ),
            Some(if lingering.is_empty() {
                "an open transaction of it was rolled back by the server; this run starts from the state read now".into()
            } else {
                format!(
                    "a ballast session still runs a statement (pid {}); if it is the interrupted run's, its transaction rolls back when the statement ends or is cancelled (SELECT pg_cancel_backend(pid)), and until then this run may wait for its locks",
                    lingering.join(", ")
                )
            }),
        );
    }
    if !invalid.is_empty() {
        drop_or_refuse(ctx, &invalid).await?;
    }
    let conn = ctx.conn().await?;
    for run in abandoned {
        mark_interrupted(conn, &schema, run.entry, &own).await;
    }
    Ok(())
}

async fn abandoned(
    conn: &mut PgConnection,
    schema: &str,
    own: &str,
    events: &crate::events::Events,
) -> Result<Vec<Abandoned>, DbError> {
    let running: Vec<Value> = journal_table::recent(&mut *conn, schema, 50)
        .await?
        .into_iter()
        .filter(|e| e["status"] == "running" && e["run_id"].as_str() != Some(own))
        .collect();
    if running.is_empty() {
        return Ok(Vec::new());
    }
    // A run holding the deploy lock is alive: it holds it from its first change to its
    // end, through verify and any recovery.
    if let Some(holder) = lock::holder(conn, lock::key_for(schema)).await? {
        let newest = &running[0];
        events.diagnose(
            Severity::Info,
            format!(
                "run {} ({}, started {}) is in progress: pid {} ({}) holds the deploy lock",
                newest["run_id"].as_str().unwrap_or("?"),
                newest["pipeline"].as_str().unwrap_or("?"),
                newest["started_at"].as_str().unwrap_or("?"),
                holder.pid,
                holder.application_name
            ),
            Some("this run's changing stage waits for it (database.lock_wait), then re-reads the state".into()),
        );
        return Ok(Vec::new());
    }
    Ok(running
        .into_iter()
        .map(|entry| Abandoned {
            run_id: entry["run_id"].as_str().unwrap_or_default().to_string(),
            entry,
        })
        .collect())
}

async fn committed_by(
    conn: &mut PgConnection,
    schema: &str,
    run_id: &str,
) -> Result<Vec<String>, DbError> {
    let sql = format!(
        "select version from {}.{} where run_id::text = $1 order by version",
        crate::db::quote_ident(schema),
        ledger::TABLE
    );
    sqlx::query_scalar(&sql)
        .bind(run_id)
        .fetch_all(conn)
        .await
        .map_err(|e| DbError::query("reading what an interrupted run committed", &e))
}

async fn drop_or_refuse(ctx: &mut RunContext, invalid: &[String]) -> Result<(), StageError> {
    let list = invalid.join(", ");
    let agreed = ctx.options().assume_yes
        || (crate::report::interactive()
            && crate::report::prompt::confirm(format!(
                "INVALID index{} {list} (a CREATE INDEX CONCURRENTLY cut short) would make the retry fail or stay unusable. Drop {} now (DROP INDEX CONCURRENTLY)?",
                if invalid.len() == 1 { "" } else { "es" },
                if invalid.len() == 1 { "it" } else { "them" }
            ))
            .await
                .is_ok_and(|yes| yes));
    if !agreed {
        let commands: Vec<String> = invalid
            .iter()
            .map(|i| format!("DROP INDEX CONCURRENTLY {i};"))
            .collect();
        return Err(StageError::Refused(format!(
            "INVALID index {list} left by an interrupted run; drop it first ({}), or run again with --yes to let ballast drop it",
            commands.join(" ")
        )));
    }
    let events = ctx.events().clone();
    let conn = ctx.conn().await?;
    for index in invalid {
        sqlx::raw_sql(&format!("drop index concurrently if exists {index}"))
            .execute(&mut *conn)
            .await
            .map_err(|e| DbError::query(format!("dropping the INVALID index {index}"), &e))?;
        events.diagnose(
            Severity::Info,
            format!("dropped the INVALID index {index} left by the interrupted run"),
            None,
        );
    }
    Ok(())
}

/// Sessions of another ballast still running a statement: on PostgreSQL before 14
/// (no `client_connection_check_interval`) a dead client's statement runs on.
async fn lingering_sessions(
    conn: &mut PgConnection,
    application_name: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "select pid::text from pg_stat_activity where starts_with(application_name, $1 || ' (') \
         and pid <> pg_backend_pid() and state <> 'idle' and datname = current_database()",
    )
    .bind(crate::db::session_base(application_name))
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("looking for sessions of an earlier run", &e))
}

/// `schema` and `name` of a `format('%I.%I')` name (quotes undone).
fn unqualify(qualified: &str) -> (String, String) {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut quoted = false;
    let mut chars = qualified.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                part.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    let name = parts.pop().unwrap_or_default();
    (parts.pop().unwrap_or_default(), name)
}

/// Records that the run was found abandoned, so it is reported once.
async fn mark_interrupted(conn: &mut PgConnection, schema: &str, mut entry: Value, by: &str) {
    entry["status"] = Value::from("interrupted");
    entry["found_by"] = Value::from(by);
    if let Err(e) = journal_table::upsert(conn, schema, &entry).await {
        tracing::warn!("{e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn qualified_names_are_split_with_their_quotes_undone() {
        use super::unqualify;
        let pair = |s: &str, n: &str| (s.to_string(), n.to_string());
        assert_eq!(unqualify("public.t_idx"), pair("public", "t_idx"));
        assert_eq!(
            unqualify("\"My.Schema\".\"Idx\"\"x\""),
            pair("My.Schema", "Idx\"x")
        );
    }
}
