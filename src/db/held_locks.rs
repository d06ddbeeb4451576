//! What a rehearsal reads from the catalog while a plan runs: the user relations with
//! their storage (`relfilenode`: a new one means the table was rewritten), the locks a
//! session holds, and, from a second connection, the locks and statements of the
//! other sessions in the database.

use std::collections::HashMap;

use sqlx::postgres::PgConnection;

use super::DbError;

/// A user relation (table, partitioned table, materialized view, view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// `schema.name`.
    pub name: String,
    /// Its storage file; 0 for a relation without storage (a view, a partitioned
    /// parent).
    pub filenode: u32,
}

/// The user relations by oid, outside the system schemas.
pub async fn relations(conn: &mut PgConnection) -> Result<HashMap<u32, Relation>, DbError> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "select c.oid::int8, format('%s.%s', n.nspname, c.relname), c.relfilenode::int8 \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('r', 'p', 'm', 'v') \
           and n.nspname not in ('pg_catalog', 'information_schema') \
           and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'",
    )
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("listing relations", &e))?;
    Ok(rows
        .into_iter()
        .map(|(oid, name, filenode)| {
            (
                oid as u32,
                Relation {
                    name,
                    filenode: filenode as u32,
                },
            )
        })
        .collect())
}

/// The relation locks this session holds now: (oid, mode as `pg_locks` names it).
pub async fn own_locks(conn: &mut PgConnection) -> Result<Vec<(u32, String)>, DbError> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "select relation::int8, mode from pg_locks \
         where pid = pg_backend_pid() and locktype = 'relation' and granted",
    )
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("reading the session's locks", &e))?;
    Ok(rows.into_iter().map(|(o, m)| (o as u32, m)).collect())
}

/// A relation lock another session of this database holds.
#[derive(Debug, Clone)]
pub struct OtherLock {
    pub pid: i32,
    pub oid: u32,
    pub mode: String,
}

/// A statement another session of this database is running (or its transaction,
/// idle between statements).
#[derive(Debug, Clone)]
pub struct OtherStatement {
    pub pid: i32,
    pub query: String,
    /// `active` or `idle in transaction`.
    pub state: String,
    /// How long ago it started, by the server's clock.
    pub running_ms: f64,
}

/// One look from the sampler's connection at the other sessions in its database. A
/// parallel worker counts as its leader (`leader_pid`, PostgreSQL 13 and later:
/// `workers_known`), so an index build's workers are the statement's, not sessions of
/// their own.
pub async fn others(
    conn: &mut PgConnection,
    workers_known: bool,
) -> Result<(Vec<OtherLock>, Vec<OtherStatement>), DbError> {
    let session = match workers_known {
        true => "coalesce(a.leader_pid, a.pid)",
        false => "a.pid",
    };
    let locks: Vec<(i32, i64, String)> = sqlx::query_as(&format!(
        "select {session}, l.relation::int8, l.mode \
         from pg_locks l join pg_stat_activity a on a.pid = l.pid \
         where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid() \
           and l.database = (select oid from pg_database where datname = current_database())"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DbError::query("sampling locks", &e))?;
    let statements: Vec<(i32, String, String, f64)> = sqlx::query_as(&format!(
        "select {session}, coalesce(a.query, ''), a.state, \
           (extract(epoch from clock_timestamp() - a.query_start) * 1000)::float8 \
         from pg_stat_activity a \
         where a.datname = current_database() and a.pid <> pg_backend_pid() \
           and a.state in ('active', 'idle in transaction') and a.query_start is not null"
    ))
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("sampling statements", &e))?;
    Ok((
        locks
            .into_iter()
            .map(|(pid, oid, mode)| OtherLock {
                pid,
                oid: oid as u32,
                mode,
            })
            .collect(),
        statements
            .into_iter()
            .map(|(pid, query, state, running_ms)| OtherStatement {
                pid,
                query,
                state,
                running_ms,
            })
            .collect(),
    ))
}
