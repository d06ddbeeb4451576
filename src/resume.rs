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
use crate::stages::StageError;

/// A run the journal says is running, whose deploy lock nobody holds.
struct Abandoned {
    entry: Value,
    run_id: String,
}

/// Looks for abandoned runs and deals with them; `Err` refuses the run (an INVALID
/// index left that nobody agreed to drop).
pub async fn check(ctx: &mut RunContext) -> Result<(), StageError> {
    let schema = ctx.settings.database.schema.clone();
    let own = ctx.run_id.to_string();
    let events = ctx.events.clone();
    let conn = ctx.conn().await?;
    if !ledger::table_exists(&mut *conn, &schema, journal_table::TABLE).await? {
        return Ok(());
    }
    let abandoned = abandoned(conn, &schema, &own, &events).await?;
    if abandoned.is_empty() {
        return Ok(());
    }
    let invalid = crate::db::invalid_indexes(conn).await?;
    let alembic = ctx.settings.migrations.alembic.is_some();
    let now = if alembic {
        ctx.snapshot().await?.current_label()
    } else {
        None
    };
    let conn = ctx.conn().await?;
    for run in &abandoned {
        let committed = committed_by(conn, &schema, &run.run_id).await?;
        let stage = run.entry["stages"]
            .as_array()
            .and_then(|s| s.last())
            .and_then(|s| s["stage"].as_str())
            .map(|s| format!("after its {s} stage"))
            .unwrap_or_else(|| "before its first stage finished".into());
        let committed = if alembic {
            // Alembic keeps no per-run record: compare its version table with the start.
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
                "run {} ({}, started {}) was interrupted {stage} and never finished: {committed}; its deploy lock is free, so it is not running",
                run.run_id,
                run.entry["pipeline"].as_str().unwrap_or("?"),
                run.entry["started_at"].as_str().unwrap_or("?"),
            ),
            Some("an open transaction of it was rolled back by the server; this run starts from the state read now".into()),
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
    let agreed = ctx.options.assume_yes
        || (crate::report::interactive()
            && crate::report::prompt::confirm(format!(
                "INVALID index{} {list} (a CREATE INDEX CONCURRENTLY cut short) would make the retry fail or stay unusable. Drop {} now (DROP INDEX CONCURRENTLY)?",
                if invalid.len() == 1 { "" } else { "es" },
                if invalid.len() == 1 { "it" } else { "them" }
            ))
            .await
                == Ok(true));
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
    let events = ctx.events.clone();
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

/// Records that the run was found abandoned, so it is reported once.
async fn mark_interrupted(conn: &mut PgConnection, schema: &str, mut entry: Value, by: &str) {
    entry["status"] = Value::from("interrupted");
    entry["found_by"] = Value::from(by);
    if let Err(e) = journal_table::upsert(conn, schema, &entry).await {
        tracing::warn!("{e}");
    }
}
