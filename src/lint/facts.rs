//! What the lint asks the database, once per run: which tables exist and whether they
//! hold any data (a lock on an empty or not-yet-created table hurts nobody), which
//! indexes exist and on which table, and the
//! [`Catalog`]: indexes, checks, column types, primary keys, partitioned tables.

use sqlx::postgres::PgConnection;

use super::catalog::{check_expression_column, Catalog, Check};
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
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "select n.nspname || '.' || ci.relname, nt.nspname || '.' || ct.relname \
         from pg_index i join pg_class ci on ci.oid = i.indexrelid \
         join pg_namespace n on n.oid = ci.relnamespace \
         join pg_class ct on ct.oid = i.indrelid join pg_namespace nt on nt.oid = ct.relnamespace \
         where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DbError::query("reading indexes for the lint", &e))?;
    Ok(DbFacts {
        tables: rows.into_iter().collect(),
        search_path,
        catalog: catalog(conn).await?,
        indexes: indexes.into_iter().collect(),
    })
}

/// User schemas only, in every query below.
const USER_TABLES: &str = "n.nspname not in ('pg_catalog', 'information_schema') \
     and n.nspname not like 'pg_toast%' and c.relkind in ('r', 'p')";

async fn catalog(conn: &mut PgConnection) -> Result<Catalog, DbError> {
    let failed = |e: sqlx::Error| DbError::query("reading the schema for the lint", &e);
    let mut catalog = Catalog::default();
    // Every index's columns in order; an expression column (attnum 0) is NULL and ends
    // the usable lead. Partial indexes are left out: they do not cover every row.
    let indexes: Vec<(String, Vec<Option<String>>, bool)> = sqlx::query_as(&format!(
        "select n.nspname || '.' || c.relname, \
                array(select a.attname::text \
                      from unnest(i.indkey::int2[]) with ordinality k(attnum, ord) \
                      left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
                      order by k.ord), \
                i.indisprimary \
         from pg_index i join pg_class c on c.oid = i.indrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         where i.indpred is null and {USER_TABLES}"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    for (table, columns, primary) in indexes {
        let lead: Vec<String> = columns.into_iter().map_while(|c| c).collect();
        if primary {
            catalog.primary_keys.insert(table.clone(), lead.clone());
        }
        if !lead.is_empty() {
            catalog.indexes.entry(table).or_default().push(lead);
        }
    }
    let checks: Vec<(String, String, bool, String)> = sqlx::query_as(&format!(
        "select n.nspname || '.' || c.relname, k.conname::text, k.convalidated, \
                pg_get_expr(k.conbin, k.conrelid) \
         from pg_constraint k join pg_class c on c.oid = k.conrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         where k.contype = 'c' and {USER_TABLES}"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    for (table, name, validated, expression) in checks {
        catalog.checks.entry(table).or_default().push(Check {
            name,
            not_null: check_expression_column(&expression),
            validated,
        });
    }
    let columns: Vec<(String, String, String, bool)> = sqlx::query_as(&format!(
        "select n.nspname || '.' || c.relname, a.attname::text, t.typname::text, \
                c.relkind = 'p' \
         from pg_attribute a join pg_class c on c.oid = a.attrelid \
         join pg_namespace n on n.oid = c.relnamespace join pg_type t on t.oid = a.atttypid \
         where a.attnum > 0 and not a.attisdropped and {USER_TABLES}"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    for (table, column, type_name, partitioned) in columns {
        if partitioned {
            catalog.partitioned.insert(table.clone());
        }
        catalog
            .column_types
            .entry(table)
            .or_default()
            .insert(column, type_name);
    }
    Ok(catalog)
}
