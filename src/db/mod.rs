//! PostgreSQL access: connections, ballast's own tables, and the deploy lock.
//!
//! ballast keeps two tables in the configured schema: `ballast_migrations` (the
//! ledger of applied migrations) and `ballast_journal` (runs and stage outcomes).
//! Read-only commands only ever read them, and never create them.

mod connect;
mod error;
pub mod held_locks;
pub mod index_leftover;
pub mod journal_table;
pub mod ledger;
pub mod lock;
pub mod lock_queue;
pub mod privileges;
pub mod schema_shape;
pub mod table_writes;
pub mod tool_ledger;

pub use connect::{close, connect, server_info, session_base, ServerInfo};
pub use error::{DbError, SqlFailure};

/// Quotes an identifier for SQL (`"marketplace"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Indexes marked invalid: the debris of a `CREATE INDEX CONCURRENTLY` (or a `DROP
/// INDEX CONCURRENTLY`) that did not finish.
pub async fn invalid_indexes(
    conn: &mut sqlx::postgres::PgConnection,
) -> Result<Vec<String>, DbError> {
    // Schema-qualified and quoted (not relative to search_path); plain indexes only (a
    // partitioned parent's ON ONLY index is invalid by design); none being built now.
    sqlx::query_scalar(
        "select format('%I.%I', n.nspname, c.relname) from pg_index i \
         join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace \
         where not i.indisvalid and c.relkind = 'i' \
           and not exists (select 1 from pg_stat_progress_create_index p where p.index_relid = c.oid)",
    )
        .fetch_all(conn)
        .await
        .map_err(|e| DbError::query("listing invalid indexes", &e))
}

/// Waits up to `within` for backend `pid` to end: `Ok(true)` once it has, `Ok(false)`
/// when it is still there at the deadline.
pub async fn wait_backend_gone(
    conn: &mut sqlx::postgres::PgConnection,
    pid: i32,
    within: std::time::Duration,
) -> Result<bool, DbError> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let present: bool =
            sqlx::query_scalar("select exists (select 1 from pg_stat_activity where pid = $1)")
                .bind(pid)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| DbError::query("looking for a session", &e))?;
        if !present {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Readies the session that is about to change the database (upgrade, downgrade):
/// if ballast dies mid-statement, the server notices within a second and rolls back
/// instead of holding the statement's locks until it ends (PostgreSQL 14+; older
/// servers keep their old behaviour), and a Ctrl-C from here on cancels the running
/// statement rather than the process (the stage clears that when it ends).
/// (`lock_timeout` and `statement_timeout` are set on every session at connect time.)
/// Returns the session's backend pid.
pub async fn prepare_changing_session(
    conn: &mut sqlx::postgres::PgConnection,
    database: &crate::config::DatabaseSettings,
) -> Option<i32> {
    let _ = sqlx::raw_sql("set client_connection_check_interval = '1s'")
        .execute(&mut *conn)
        .await;
    let pid = sqlx::query_scalar::<_, i32>("select pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .ok()?;
    crate::interrupt::set_canceller(Some(crate::interrupt::Canceller::Backend {
        db: database.clone(),
        pid,
    }));
    Some(pid)
}
