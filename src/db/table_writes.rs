//! Rows written per table (inserted, updated, deleted), from `pg_stat_user_tables`.
//! Read when the backup starts and again before the restore rung, so the person asked
//! to restore is told how much writing the restore would throw away. The counters are
//! PostgreSQL's activity statistics: they include the run's own migrations, may lag a
//! second or so behind, and restart after a statistics reset or a crash.

use std::collections::BTreeMap;

use sqlx::postgres::PgConnection;

use super::DbError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableWrites(BTreeMap<String, i64>);

impl TableWrites {
    pub async fn read(conn: &mut PgConnection) -> Result<TableWrites, DbError> {
        let failed = |e: sqlx::Error| DbError::query("reading table write statistics", &e);
        // This session's own counts reach the shared statistics when it goes idle, at
        // most once a second; ask for it now (PostgreSQL 15+; older ones just lag).
        let _ = sqlx::query("select pg_stat_force_next_flush()")
            .execute(&mut *conn)
            .await;
        // This session's view of the statistics is cached per transaction: start fresh.
        sqlx::query("select pg_stat_clear_snapshot()")
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del \
             from pg_stat_user_tables",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(failed)?;
        Ok(TableWrites(rows.into_iter().collect()))
    }

    /// Rows written since `earlier`, per table, most first (tables with none left out).
    /// A table whose counter went backwards (statistics reset) counts what it has now.
    pub fn since(&self, earlier: &TableWrites) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = self
            .0
            .iter()
            .filter_map(|(table, now)| {
                let before = earlier.0.get(table).copied().unwrap_or(0);
                let written = if *now >= before { now - before } else { *now };
                (written > 0).then(|| (table.clone(), written))
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// Rows written since `at_backup` per table, leaving out `ours` (`schema.table` of
/// the tables that hold migration state, not data).
pub async fn written_since(
    conn: &mut PgConnection,
    at_backup: &TableWrites,
    ours: &[String],
) -> Result<Vec<(String, i64)>, DbError> {
    let mut written = TableWrites::read(conn).await?.since(at_backup);
    written.retain(|(table, _)| !ours.contains(table));
    Ok(written)
}

/// "1,204 rows written in 3 tables since the backup (public.orders 1,200, public.a 3,
/// and 1 more)", or "no rows written since the backup".
pub fn describe(written: &[(String, i64)]) -> String {
    if written.is_empty() {
        return "no rows written since the backup".into();
    }
    let total: i64 = written.iter().map(|(_, n)| n).sum();
    let mut top: Vec<String> = written
        .iter()
        .take(3)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    if written.len() > 3 {
        top.push(format!("and {} more", written.len() - 3));
    }
    format!(
        "{total} row{} written in {} table{} since the backup ({})",
        if total == 1 { "" } else { "s" },
        written.len(),
        if written.len() == 1 { "" } else { "s" },
        top.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(rows: &[(&str, i64)]) -> TableWrites {
        TableWrites(rows.iter().map(|(t, n)| (t.to_string(), *n)).collect())
    }

    #[test]
    fn writes_since_are_differences_most_first() {
        let before = writes(&[("public.a", 10), ("public.b", 5), ("public.c", 7)]);
        let after = writes(&[
            ("public.a", 12),
            ("public.b", 5),
            ("public.c", 3),
            ("public.d", 40),
        ]);
        let since = after.since(&before);
        assert_eq!(
            since,
            [
                ("public.d".to_string(), 40),
                ("public.c".to_string(), 3),
                ("public.a".to_string(), 2)
            ]
        );
        assert_eq!(
            describe(&since),
            "45 rows written in 3 tables since the backup (public.d 40, public.c 3, public.a 2)"
        );
        assert_eq!(describe(&[]), "no rows written since the backup");
    }
}
