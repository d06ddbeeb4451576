//! `ballast_migrations`: the ledger of applied migrations, one row per migration.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::Row;

use super::error::DbError;
use super::quote_ident;

pub const TABLE: &str = "ballast_migrations";

/// One applied migration as the ledger records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppliedRow {
    pub version: String,
    pub name: String,
    /// As the ledger keeps it (empty: it keeps none).
    pub checksum: String,
    /// `None`: the ledger keeps no time (dbmate's).
    pub applied_at: Option<DateTime<Utc>>,
    /// Empty in a tool's ledger (ballast's own record beside it has it).
    pub run_id: String,
    pub duration_ms: i64,
    /// A row the tool left for a migration that failed (sqlx's `success = false`).
    pub failed: bool,
}

/// The newest applied migration, by version order (a repeatable one has no version).
pub fn newest(rows: &[AppliedRow]) -> Option<&AppliedRow> {
    rows.iter()
        .filter_map(|r| crate::migrations::Version::parse(&r.version).map(|v| (v, r)))
        .filter(|(v, _)| !v.is_repeatable())
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, r)| r)
}

/// Whether `schema.table` exists, without touching it.
pub async fn table_exists(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<bool, DbError> {
    // From the catalog: no privilege on the schema is needed to know (to_regclass
    // would fail with "permission denied for schema" before a GRANT could be named).
    sqlx::query_scalar::<_, bool>(
        "select exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p'))",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(conn)
    .await
    .map_err(|e| DbError::query(format!("looking for {schema}.{table}"), &e))
}

/// Applied migrations; an empty list when the ledger does not exist yet.
pub async fn applied(conn: &mut PgConnection, schema: &str) -> Result<Vec<AppliedRow>, DbError> {
    if !table_exists(&mut *conn, schema, TABLE).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select version, name, checksum, applied_at, run_id::text, duration_ms from {}.{TABLE}",
        quote_ident(schema)
    );
    let rows = sqlx::query(&sql)
        .fetch_all(conn)
        .await
        .map_err(|e| DbError::query(format!("reading {schema}.{TABLE}"), &e))?;
    Ok(rows
        .into_iter()
        .map(|r| AppliedRow {
            version: r.get(0),
            name: r.get(1),
            checksum: r.get(2),
            applied_at: Some(r.get(3)),
            run_id: r.get(4),
            duration_ms: r.get(5),
            failed: false,
        })
        .collect())
}

/// Creates the schema and ballast's tables if missing. Only the upgrade stage calls
/// this: read-only commands must leave a database without them untouched.
pub async fn ensure_tables(conn: &mut PgConnection, schema: &str) -> Result<(), DbError> {
    let s = quote_ident(schema);
    let sql = format!(
        "create schema if not exists {s};
         create table if not exists {s}.{TABLE} (
             version text primary key,
             name text not null,
             checksum text not null,
             applied_at timestamptz not null default now(),
             run_id uuid not null,
             duration_ms bigint not null,
             transactional boolean not null
         );
         -- The tool's ledger a row was written beside (null: ballast's ledger). Added
         -- only when missing: ALTER needs the table's owner, a deploy role may not be.
         do $ballast$ begin
             if not exists (select 1 from pg_attribute
                            where attrelid = '{relation}'::regclass
                            and attname = 'beside' and not attisdropped) then
                 alter table {s}.{TABLE} add column beside text;
             end if;
         end $ballast$;
         {journal}",
        relation = format!("{s}.{TABLE}").replace('\'', "''"),
        journal = super::journal_table::create_sql(schema),
    );
    sqlx::raw_sql(&sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| DbError::query(format!("creating ballast's tables in schema {schema}"), &e))
}

/// What a new ledger row says (applied_at is the server's clock).
pub struct NewRow<'a> {
    pub version: &'a str,
    pub name: &'a str,
    pub checksum: &'a str,
    pub run_id: uuid::Uuid,
    pub duration_ms: i64,
    pub transactional: bool,
}

/// Inserts the row. `beside`: the tool's ledger (`schema.table`) this table is ballast's
/// record beside, where a migration the tool rolled back and ballast applies again
/// already has a row: it is replaced by this run's.
pub async fn record(
    conn: &mut PgConnection,
    schema: &str,
    row: NewRow<'_>,
    beside: Option<&str>,
) -> Result<(), DbError> {
    // Beside a tool's ledger, the tool's says what is applied; a repeatable migration
    // (Flyway's) is applied again and again: its row is replaced.
    let replace_row = beside.is_some()
        || crate::migrations::Version::parse(row.version).is_some_and(|v| v.is_repeatable());
    let replace = match replace_row {
        true => {
            " on conflict (version) do update set name = excluded.name, \
                 checksum = excluded.checksum, applied_at = now(), run_id = excluded.run_id, \
                 duration_ms = excluded.duration_ms, transactional = excluded.transactional, beside = excluded.beside"
        }
        false => "",
    };
    let sql = format!(
        "insert into {}.{TABLE} (version, name, checksum, run_id, duration_ms, transactional, beside) \
         values ($1, $2, $3, $4, $5, $6, $7){replace}",
        quote_ident(schema)
    );
    sqlx::query(&sql)
        .bind(row.version)
        .bind(row.name)
        .bind(row.checksum)
        .bind(row.run_id)
        .bind(row.duration_ms)
        .bind(row.transactional)
        .bind(beside)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| {
            DbError::query(
                format!("recording migration {} in {schema}.{TABLE}", row.version),
                &e,
            )
        })
}

/// How many rows ballast's ledger in `schema` holds as the ledger itself, not written
/// beside a tool's (a database whose table predates that mark counts every row).
/// Zero when it does not exist.
pub async fn own_rows(conn: &mut PgConnection, schema: &str) -> Result<i64, DbError> {
    if !table_exists(&mut *conn, schema, TABLE).await? {
        return Ok(0);
    }
    // Through jsonb: the column may not be there yet on a database only read so far.
    let sql = format!(
        "select count(*) from {}.{TABLE} r where to_jsonb(r) ->> 'beside' is null",
        quote_ident(schema)
    );
    sqlx::query_scalar(&sql)
        .fetch_one(conn)
        .await
        .map_err(|e| DbError::query(format!("counting the rows of {schema}.{TABLE}"), &e))
}

/// Deletes `version`'s row: a downgrade undid the migration. False when there was no
/// such row (the caller decides whether that is an error).
pub async fn remove(conn: &mut PgConnection, schema: &str, version: &str) -> Result<bool, DbError> {
    delete_version(conn, schema, TABLE, version, "").await
}

/// Deletes the row of `version` from the ledger `schema.table` (ballast's, or a tool's
/// with a row per migration); `and`: a further condition (` and ...`), or empty. False
/// when there was none.
pub(super) async fn delete_version(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    version: &str,
    and: &str,
) -> Result<bool, DbError> {
    let sql = format!(
        "delete from {}.{table} where version::text = $1{and}",
        quote_ident(schema)
    );
    sqlx::query(&sql)
        .bind(version)
        .execute(conn)
        .await
        .map(|done| done.rows_affected() > 0)
        .map_err(|e| {
            DbError::query(
                format!("deleting migration {version} from {schema}.{table}"),
                &e,
            )
        })
}
