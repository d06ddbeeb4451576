//! What makes `CREATE INDEX CONCURRENTLY name` safe to run again: a failed concurrent
//! build leaves an INVALID index of that very name on that very table, on which the
//! plain form's rerun fails ("already exists") and which `IF NOT EXISTS` would keep as
//! it is (the migration "succeeds" with a broken index). Before the statement runs,
//! such a leftover (not being built by anyone now) is dropped concurrently.

use pg_query::NodeEnum;
use sqlx::postgres::PgConnection;
use sqlx::Executor;

use super::DbError;

/// The index and table a statement builds concurrently (with or without `IF NOT
/// EXISTS`): `(index name, table as written)`.
pub fn concurrent_build(statement: &str) -> Option<(String, String)> {
    let parsed = pg_query::parse(statement, pg_query::ParserOptions::DEFAULT).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    let NodeEnum::IndexStmt(index) = raw.stmt.as_ref()?.node.as_ref()? else {
        return None;
    };
    if !index.concurrent || index.idxname.is_empty() {
        return None;
    }
    let table = index.relation.as_ref()?;
    let written = match table.schemaname.as_str() {
        "" => crate::db::quote_ident(&table.relname),
        schema => format!(
            "{}.{}",
            crate::db::quote_ident(schema),
            crate::db::quote_ident(&table.relname)
        ),
    };
    Some((index.idxname.clone(), written))
}

/// Drops the INVALID index `name` on `table` that an earlier, failed build of the same
/// statement left (none being built now); returns its qualified name when it did.
pub async fn drop_leftover(
    conn: &mut PgConnection,
    name: &str,
    table: &str,
) -> Result<Option<String>, DbError> {
    let leftover: Option<String> = sqlx::query_scalar(
        "select format('%I.%I', n.nspname, c.relname) from pg_index i \
         join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace \
         where c.relname = $1 and i.indrelid = to_regclass($2) and not i.indisvalid \
           and c.relkind = 'i' \
           and not exists (select 1 from pg_stat_progress_create_index p where p.index_relid = c.oid)",
    )
    .bind(name)
    .bind(table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| DbError::query("looking for an INVALID index left by a failed build", &e))?;
    let Some(leftover) = leftover else {
        return Ok(None);
    };
    conn.execute(sqlx::raw_sql(&format!(
        "drop index concurrently if exists {leftover}"
    )))
    .await
    .map_err(|e| DbError::query(format!("dropping the INVALID index {leftover}"), &e))?;
    Ok(Some(leftover))
}

#[cfg(test)]
mod tests {
    use super::concurrent_build;

    #[test]
    fn only_a_plain_named_concurrent_build_counts() {
        assert_eq!(
            concurrent_build("CREATE INDEX CONCURRENTLY orders_total_idx ON shop.orders (total)"),
            Some(("orders_total_idx".into(), "\"shop\".\"orders\"".into()))
        );
        assert_eq!(
            concurrent_build("create unique index concurrently u on \"Orders\" (id);"),
            Some(("u".into(), "\"Orders\"".into()))
        );
        assert_eq!(
            concurrent_build("create index concurrently if not exists i on t (a)"),
            Some(("i".into(), "\"t\"".into()))
        );
        assert_eq!(concurrent_build("create index i on t (a)"), None);
        assert_eq!(concurrent_build("create index concurrently on t (a)"), None);
    }
}
