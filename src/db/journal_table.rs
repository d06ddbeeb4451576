//! `ballast_journal`: one row per run, updated as its stages finish.

use sqlx::postgres::PgConnection;

use super::error::DbError;
use super::quote_ident;

pub const TABLE: &str = "ballast_journal";

pub fn create_sql(schema: &str) -> String {
    format!(
        "create table if not exists {}.{TABLE} (
             run_id uuid primary key,
             pipeline text not null,
             status text not null,
             started_at timestamptz not null,
             finished_at timestamptz,
             exit_code int,
             failed_stage text,
             stages jsonb not null default '[]',
             detail jsonb not null default '{{}}'
         );",
        quote_ident(schema)
    )
}

/// Writes the run's current record (insert or replace).
pub async fn upsert(
    conn: &mut PgConnection,
    schema: &str,
    entry: &serde_json::Value,
) -> Result<(), DbError> {
    let sql = format!(
        "insert into {s}.{TABLE} (run_id, pipeline, status, started_at, finished_at, exit_code, failed_stage, stages, detail)
         select (e->>'run_id')::uuid, e->>'pipeline', e->>'status', (e->>'started_at')::timestamptz,
                (e->>'finished_at')::timestamptz, (e->>'exit_code')::int, e->>'failed_stage',
                coalesce(e->'stages', '[]'), e
         from (select $1::jsonb as e) as input
         on conflict (run_id) do update set status = excluded.status, finished_at = excluded.finished_at,
             exit_code = excluded.exit_code, failed_stage = excluded.failed_stage,
             stages = excluded.stages, detail = excluded.detail",
        s = quote_ident(schema)
    );
    sqlx::query(&sql)
        .bind(entry)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| DbError::query(format!("writing the run journal to {schema}.{TABLE}"), &e))
}

/// The latest runs, newest first, as the JSON documents the runs wrote.
pub async fn recent(
    conn: &mut PgConnection,
    schema: &str,
    limit: i64,
) -> Result<Vec<serde_json::Value>, DbError> {
    let sql = format!(
        "select detail from {}.{TABLE} order by started_at desc limit $1",
        quote_ident(schema)
    );
    sqlx::query_scalar(&sql)
        .bind(limit)
        .fetch_all(conn)
        .await
        .map_err(|e| DbError::query(format!("reading {schema}.{TABLE}"), &e))
}

/// Copies every run recorded in `from` into `to` (creating the table there if
/// needed); a run in both keeps `from`'s newer record. Returns how many were copied.
pub async fn carry_over(
    from: &mut PgConnection,
    to: &mut PgConnection,
    schema: &str,
) -> Result<usize, DbError> {
    if !super::ledger::table_exists(&mut *from, schema, TABLE).await? {
        return Ok(0);
    }
    let sql = format!("select detail from {}.{TABLE}", quote_ident(schema));
    let entries: Vec<serde_json::Value> = sqlx::query_scalar(&sql)
        .fetch_all(from)
        .await
        .map_err(|e| DbError::query(format!("reading {schema}.{TABLE}"), &e))?;
    sqlx::raw_sql(&create_sql(schema))
        .execute(&mut *to)
        .await
        .map_err(|e| DbError::query(format!("creating {schema}.{TABLE}"), &e))?;
    for entry in &entries {
        upsert(&mut *to, schema, entry).await?;
    }
    Ok(entries.len())
}
