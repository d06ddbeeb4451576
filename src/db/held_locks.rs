//! What a rehearsal reads from the catalog while a plan runs: the user relations with
//! their storage (`relfilenode`: a new one means the table was rewritten), the locks a
//! session holds, and, from a second connection, the locks and statements of the
//! other sessions in the database.

use std::collections::HashMap;

use sqlx::postgres::PgConnection;

use super::DbError;

/// A user relation (table, partitioned table, materialized view, view, sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// `schema.name`.
    pub name: String,
    /// Its storage file; 0 for a relation without storage (a view, a partitioned
    /// parent).
    pub filenode: u32,
}

/// Which relations count: tables, partitioned tables, materialized views, views and
/// sequences outside the system schemas (`c` is `pg_class`, `n` its namespace).
const USER_RELATION: &str = "c.relkind in ('r', 'p', 'm', 'v', 'S') \
    and n.nspname not in ('pg_catalog', 'information_schema') \
    and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'";

fn relation_rows(rows: Vec<(i64, String, i64)>) -> HashMap<u32, Relation> {
    rows.into_iter()
        .map(|(oid, name, filenode)| {
            (
                oid as u32,
                Relation {
                    name,
                    filenode: filenode as u32,
                },
            )
        })
        .collect()
}

/// The user relations by oid.
pub async fn relations(conn: &mut PgConnection) -> Result<HashMap<u32, Relation>, DbError> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(&format!(
        "select c.oid::int8, format('%s.%s', n.nspname, c.relname), c.relfilenode::int8 \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace where {USER_RELATION}"
    ))
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("listing relations", &e))?;
    Ok(relation_rows(rows))
}

/// The user relations this session holds locks on now, with their storage as this
/// session sees it, and the locks: (relations, [(oid, mode as `pg_locks` names it)]).
/// One small query, so that reading it after each statement of a transaction costs
/// little of the time it measures.
pub async fn own_locks(
    conn: &mut PgConnection,
) -> Result<(HashMap<u32, Relation>, Vec<(u32, String)>), DbError> {
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(&format!(
        "select c.oid::int8, l.mode, format('%s.%s', n.nspname, c.relname), c.relfilenode::int8 \
         from pg_locks l join pg_class c on c.oid = l.relation \
         join pg_namespace n on n.oid = c.relnamespace \
         where l.pid = pg_backend_pid() and l.locktype = 'relation' and l.granted \
           and {USER_RELATION}"
    ))
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("reading the session's locks", &e))?;
    let locks = rows
        .iter()
        .map(|(oid, mode, _, _)| (*oid as u32, mode.clone()))
        .collect();
    let relations = relation_rows(
        rows.into_iter()
            .map(|(oid, _, name, filenode)| (oid, name, filenode))
            .collect(),
    );
    Ok((relations, locks))
}

/// Who a session of the database is: the process (a parallel worker counts as its
/// leader), its application name and its kind (`client backend`, `autovacuum
/// worker`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub pid: i32,
    pub application_name: String,
    pub backend_type: String,
}

/// A relation lock another session of this database holds.
#[derive(Debug, Clone)]
pub struct OtherLock {
    pub session: Session,
    pub oid: u32,
    pub mode: String,
}

/// A statement another session of this database is running (or its transaction,
/// idle between statements).
#[derive(Debug, Clone)]
pub struct OtherStatement {
    pub session: Session,
    pub query: String,
    /// `active` or `idle in transaction`.
    pub state: String,
    /// When it started, by the server's clock (milliseconds since the epoch): the
    /// same statement has the same value at every look.
    pub started_at: f64,
    /// How long ago it started, by the server's clock.
    pub running_ms: f64,
}

/// One look from the sampler's connection at the other sessions in its database. A
/// parallel worker counts as its leader (`leader_pid`, PostgreSQL 13 and later:
/// `workers_known`), so an index build's workers are the statement's.
pub async fn others(
    conn: &mut PgConnection,
    workers_known: bool,
) -> Result<(Vec<OtherLock>, Vec<OtherStatement>), DbError> {
    // `a`: the session holding the lock or running; `s`: who it works for.
    let leader = match workers_known {
        true => "coalesce(a.leader_pid, a.pid)",
        false => "a.pid",
    };
    let who = format!("{leader}, coalesce(s.application_name, ''), coalesce(s.backend_type, '')");
    let locks: Vec<(i32, String, String, i64, String)> = sqlx::query_as(&format!(
        "select {who}, l.relation::int8, l.mode \
         from pg_locks l join pg_stat_activity a on a.pid = l.pid \
         left join pg_stat_activity s on s.pid = {leader} \
         where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid() \
           and l.database = (select oid from pg_database where datname = current_database())"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DbError::query("sampling locks", &e))?;
    let only_leaders = match workers_known {
        true => "and a.leader_pid is null",
        false => "",
    };
    let statements: Vec<(i32, String, String, String, String, f64, f64)> =
        sqlx::query_as(&format!(
            "select {who}, coalesce(a.query, ''), a.state, \
               (extract(epoch from a.query_start) * 1000)::float8, \
               (extract(epoch from clock_timestamp() - a.query_start) * 1000)::float8 \
             from pg_stat_activity a left join pg_stat_activity s on s.pid = {leader} \
             where a.datname = current_database() and a.pid <> pg_backend_pid() {only_leaders} \
               and a.state in ('active', 'idle in transaction') and a.query_start is not null"
        ))
        .fetch_all(conn)
        .await
        .map_err(|e| DbError::query("sampling statements", &e))?;
    let session = |pid, application_name, backend_type| Session {
        pid,
        application_name,
        backend_type,
    };
    Ok((
        locks
            .into_iter()
            .map(|(pid, app, kind, oid, mode)| OtherLock {
                session: session(pid, app, kind),
                oid: oid as u32,
                mode,
            })
            .collect(),
        statements
            .into_iter()
            .map(
                |(pid, app, kind, query, state, started_at, running_ms)| OtherStatement {
                    session: session(pid, app, kind),
                    query,
                    state,
                    started_at,
                    running_ms,
                },
            )
            .collect(),
    ))
}
