//! `detach-partition-without-concurrently`
//!
//! `ALTER TABLE ... DETACH PARTITION` without `CONCURRENTLY` takes an ACCESS EXCLUSIVE
//! lock on the partitioned table: it waits behind every query running on any partition,
//! and every read and write of the whole table waits behind it. On PostgreSQL 14+ use
//! `DETACH PARTITION ... CONCURRENTLY`, which only takes a SHARE UPDATE EXCLUSIVE lock and
//! waits for running queries to finish instead of blocking new ones; it cannot run in a
//! transaction block, so put it alone in a `-- no-transaction` migration (if it is
//! interrupted, complete it with `DETACH PARTITION ... FINALIZE`). It is not allowed when
//! the table has a default partition. Tables created earlier in the same migration, or
//! that the database shows empty, are not reported.

use pg_query::protobuf::AlterTableType;
use pg_query::NodeEnum;

use super::{alter_table, is};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct DetachPartitionWithoutConcurrently;

static META: RuleMeta = RuleMeta {
    id: "detach-partition-without-concurrently",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "DETACH PARTITION without CONCURRENTLY locks the whole partitioned table against reads and writes",
    explanation: "ALTER TABLE ... DETACH PARTITION without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the partitioned table: it waits behind every query running on any partition, and every read and write of the whole table waits behind it. On PostgreSQL 14+ use DETACH PARTITION ... CONCURRENTLY, which only takes a SHARE UPDATE EXCLUSIVE lock and waits for running queries to finish instead of blocking new ones; it cannot run in a transaction block, so put it alone in a -- no-transaction migration (if it is interrupted, complete it with DETACH PARTITION ... FINALIZE). It is not allowed when the table has a default partition.",
};

impl Rule for DetachPartitionWithoutConcurrently {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let Some((table, cmds)) = alter_table(statement.node) else {
            return Vec::new();
        };
        let key = ctx.key(table);
        cmds.into_iter()
            .filter(|cmd| is(cmd, AlterTableType::AtDetachPartition))
            .filter_map(|cmd| match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::PartitionCmd(detach)) if !detach.concurrent => {
                    detach.name.as_ref()
                }
                _ => None,
            })
            // The rows live in the partitions: a partitioned table has no pages of its own.
            .filter(|partition| {
                ctx.holds_data(table, statement.index) || ctx.holds_data(partition, statement.index)
            })
            .map(|partition| {
                let partition = ctx.key(partition);
                Hit::new(
                    format!(
                        "DETACH PARTITION {partition} takes an ACCESS EXCLUSIVE lock on {key}: it waits behind every running query on the table, and every read and write of it waits behind the detach"
                    ),
                    format!(
                        "ALTER TABLE {key} DETACH PARTITION {partition} CONCURRENTLY (PostgreSQL 14+), alone in a -- no-transaction migration"
                    ),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::DetachPartitionWithoutConcurrently as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_plain_detach_is_found() {
        let found = lint(
            &R,
            "select 1;\nalter table events detach partition events_2023;",
        );
        assert_eq!(ids(&found), ["detach-partition-without-concurrently"]);
        assert_eq!(found[0].line, 2);
        assert!(found[0].fix.contains(
            "ALTER TABLE public.events DETACH PARTITION public.events_2023 CONCURRENTLY"
        ));
        // The database shows the partitioned table without pages; its partition holds the rows.
        let facts = DbFacts {
            tables: [
                ("public.events".to_string(), false),
                ("public.events_2023".to_string(), true),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table events detach partition events_2023;"),
            Some(&facts),
            None,
        );
        assert_eq!(ids(&found), ["detach-partition-without-concurrently"]);
    }

    #[test]
    fn concurrently_or_new_or_empty_tables_are_fine() {
        assert!(lint(
            &R,
            "alter table events detach partition events_2023 concurrently;"
        )
        .is_empty());
        assert!(lint(
            &R,
            "alter table events detach partition events_2023 finalize;"
        )
        .is_empty());
        assert!(lint(
            &R,
            "create table events (at date) partition by range (at);\n\
             create table events_2023 partition of events for values from ('2023-01-01') to ('2024-01-01');\n\
             alter table events detach partition events_2023;"
        )
        .is_empty());
        let facts = DbFacts {
            tables: [
                ("public.events".to_string(), false),
                ("public.events_2023".to_string(), false),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("alter table events detach partition events_2023;"),
            Some(&facts),
            None,
        );
        assert!(found.is_empty(), "empty per the database");
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow detach-partition-without-concurrently\nalter table events detach partition events_2023;";
        assert!(lint(&R, sql).is_empty());
    }
}
