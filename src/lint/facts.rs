//! What the lint asks the database, once per run: which tables exist and whether they
//! hold any data. A lock on an empty or not-yet-created table hurts nobody.

use sqlx::postgres::PgConnection;

use super::DbFacts;
use crate::db::DbError;

pub async fn gather(conn: &mut PgConnection) -> Result<DbFacts, DbError> {
    // Any page at all counts as data: an estimate (reltuples) may be stale or unset.
    // A partitioned table's data is in its partitions.
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "select n.nspname || '.' || c.relname, \
                case when c.relkind = 'p' \
                     then (select coalesce(sum(pg_relation_size(t.relid)), 0) from pg_partition_tree(c.oid) t) \
                     else pg_relation_size(c.oid) end > 0 \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where c.relkind in ('r', 'p', 'm') \
           and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DbError::query("reading table sizes for the lint", &e))?;
    let search_path: Vec<String> =
        sqlx::query_scalar("select unnest(current_schemas(false))::text")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| DbError::query("reading the search_path for the lint", &e))?;
    Ok(DbFacts {
        tables: rows.into_iter().collect(),
        search_path,
    })
}
