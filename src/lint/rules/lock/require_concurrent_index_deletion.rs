//! `require-concurrent-index-deletion`
//!
//! `DROP INDEX` without `CONCURRENTLY` takes an ACCESS EXCLUSIVE lock on the index's
//! table. The drop itself is quick, but the lock waits behind every query already running
//! on the table, and every read and write that arrives after it waits behind the lock: a
//! long report query turns a quick drop into an outage. Drop it with
//! `DROP INDEX CONCURRENTLY`, one index per statement, in a migration of its own that
//! runs outside a transaction (`-- no-transaction`; in Alembic, inside
//! `autocommit_block()`). An index created earlier in the same migration is not
//! reported, nor, with a database, one that does not exist yet (an earlier pending
//! migration builds it) or whose table holds no data.

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use super::{index_created_before, range_var_of};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct RequireConcurrentIndexDeletion;

static META: RuleMeta = RuleMeta {
    id: "require-concurrent-index-deletion",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "DROP INDEX without CONCURRENTLY locks the table against reads and writes",
    explanation: "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the index's table. The drop itself is quick, but the lock waits behind every query already running on the table, and every read and write that arrives after it waits behind the lock: a long report query turns a quick drop into an outage. Drop it with DROP INDEX CONCURRENTLY, one index per statement, in a migration of its own that runs outside a transaction (-- no-transaction; in Alembic, inside autocommit_block()).",
};

impl Rule for RequireConcurrentIndexDeletion {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::DropStmt(drop) = statement.node else {
            return Vec::new();
        };
        if drop.remove_type != ObjectType::ObjectIndex as i32 || drop.concurrent {
            return Vec::new();
        }
        let names: Vec<String> = drop
            .objects
            .iter()
            .filter_map(|n| match &n.node {
                Some(NodeEnum::List(list)) => range_var_of(&list.items),
                _ => None,
            })
            .filter(|index| !index_created_before(ctx, index, statement.index))
            // With a database: only an index that exists, on a table holding data (one
            // an earlier pending migration built blocks nobody).
            .filter(|index| ctx.index_in_database(index) == Some(true))
            .map(|index| match index.schemaname.as_str() {
                "" => index.relname,
                schema => format!("{schema}.{}", index.relname),
            })
            .collect();
        if names.is_empty() {
            return Vec::new();
        }
        vec![Hit::new(
            format!(
                "DROP INDEX {} takes an ACCESS EXCLUSIVE lock on its table: it waits behind every running query on it, and every read and write after it waits too",
                names.join(", ")
            ),
            format!(
                "use DROP INDEX CONCURRENTLY {}, one index per statement, alone in a -- no-transaction migration",
                names[0]
            ),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::RequireConcurrentIndexDeletion as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn a_plain_drop_index_is_found() {
        let found = lint(
            &R,
            "select 1;\n\ndrop index if exists shop.orders_customer_idx;",
        );
        assert_eq!(ids(&found), ["require-concurrent-index-deletion"]);
        assert_eq!(found[0].line, 3);
        assert!(found[0].message.contains("shop.orders_customer_idx"));
    }

    #[test]
    fn concurrently_or_an_index_created_in_the_same_migration_is_fine() {
        assert!(lint(&R, "drop index concurrently orders_customer_idx;").is_empty());
        assert!(lint(
            &R,
            "create index orders_tmp_idx on orders (id);\ndrop index orders_tmp_idx;"
        )
        .is_empty());
        assert!(lint(
            &R,
            "create index orders_tmp_idx on shop.orders (id);\ndrop index shop.orders_tmp_idx;"
        )
        .is_empty());
        // Same name, another schema: a different index.
        assert_eq!(
            lint(
                &R,
                "create index orders_tmp_idx on shop.orders (id);\ndrop index orders_tmp_idx;"
            )
            .len(),
            1
        );
        // Other DROPs are other rules' business.
        assert!(lint(&R, "drop table orders;").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql =
            "-- ballast:allow require-concurrent-index-deletion\ndrop index orders_customer_idx;";
        assert!(lint(&R, sql).is_empty());
    }

    #[test]
    fn with_a_database_only_an_existing_index_on_a_table_with_data_counts() {
        use crate::lint::rules::testing::{input, lint_with};
        use crate::lint::DbFacts;
        let sql = "drop index orders_customer_idx;";
        let facts = |holds_data: Option<bool>| DbFacts {
            tables: holds_data
                .map(|d| ("shop.orders".to_string(), d))
                .into_iter()
                .collect(),
            indexes: holds_data
                .map(|_| {
                    (
                        "shop.orders_customer_idx".to_string(),
                        "shop.orders".to_string(),
                    )
                })
                .into_iter()
                .collect(),
            search_path: vec!["shop".into(), "public".into()],
            ..Default::default()
        };
        let found = |holds_data| lint_with(&R, input(sql), Some(&facts(holds_data)), None).len();
        assert_eq!(found(Some(true)), 1, "found along the search_path");
        assert_eq!(found(Some(false)), 0, "its table is empty");
        assert_eq!(found(None), 0, "an earlier pending migration builds it");
    }
}
