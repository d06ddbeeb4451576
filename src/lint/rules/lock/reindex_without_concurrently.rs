//! `reindex-without-concurrently`
//!
//! `REINDEX` without `CONCURRENTLY` holds a SHARE lock on the table while it rebuilds,
//! so every INSERT, UPDATE and DELETE waits, and an ACCESS EXCLUSIVE lock on the index
//! being rebuilt, so queries that would plan with it wait too: on a large table, minutes
//! of outage. `REINDEX SCHEMA` and `REINDEX DATABASE` do this to every table in turn. Use
//! `REINDEX ... CONCURRENTLY` (PostgreSQL 12+) in a migration of its own that runs outside
//! a transaction (`-- no-transaction`; in Alembic, inside `autocommit_block()`), or better,
//! leave maintenance out of migrations. A table created earlier in the same migration, or
//! one the database shows empty, is not reported.

use pg_query::protobuf::ReindexObjectType;
use pg_query::NodeEnum;

use super::{index_created_before, option_on};
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct ReindexWithoutConcurrently;

static META: RuleMeta = RuleMeta {
    id: "reindex-without-concurrently",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "REINDEX without CONCURRENTLY blocks writes to the table, and queries using the index, while it rebuilds",
    explanation: "REINDEX without CONCURRENTLY holds a SHARE lock on the table while it rebuilds, so every INSERT, UPDATE and DELETE waits, and an ACCESS EXCLUSIVE lock on the index being rebuilt, so queries that would plan with it wait too: on a large table, minutes of outage. REINDEX SCHEMA and REINDEX DATABASE do this to every table in turn. Use REINDEX ... CONCURRENTLY (PostgreSQL 12+) in a migration of its own that runs outside a transaction (-- no-transaction; in Alembic, inside autocommit_block()), or better, leave maintenance out of migrations.",
};

const BLOCKS: &str = "blocks writes to the table, and queries that would use an index being rebuilt, until it finishes";
const FIX: &str = "use REINDEX ... CONCURRENTLY, alone in a -- no-transaction migration (or run it by hand outside the deploy)";

impl Rule for ReindexWithoutConcurrently {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::ReindexStmt(reindex) = statement.node else {
            return Vec::new();
        };
        if option_on(&reindex.params, "concurrently") {
            return Vec::new();
        }
        let kind =
            ReindexObjectType::try_from(reindex.kind).unwrap_or(ReindexObjectType::Undefined);
        let hit = match (kind, &reindex.relation) {
            (ReindexObjectType::ReindexObjectTable, Some(table)) => {
                if !ctx.holds_data(table, statement.index) {
                    return Vec::new();
                }
                Hit::new(
                    format!("REINDEX TABLE {} {BLOCKS}", ctx.key(table)),
                    FIX,
                )
            }
            (ReindexObjectType::ReindexObjectIndex, Some(index)) => {
                // The statement names the index, not its table: the database says
                // which table, and whether it holds data.
                if index_created_before(ctx, index, statement.index)
                    || ctx.index_in_database(index) != Some(true)
                {
                    return Vec::new();
                }
                Hit::new(
                    format!("REINDEX INDEX {} {BLOCKS}", index.relname),
                    FIX,
                )
            }
            (ReindexObjectType::ReindexObjectSystem, _) => Hit::new(
                "REINDEX SYSTEM rebuilds every system catalog index under exclusive locks, blocking every session of the database",
                "do not reindex system catalogs in a migration (it cannot be done CONCURRENTLY); run it by hand in a maintenance window",
            ),
            (ReindexObjectType::ReindexObjectSchema, _) => Hit::new(
                format!(
                    "REINDEX SCHEMA {} rebuilds every index in the schema, and for each table {BLOCKS}",
                    reindex.name
                ),
                FIX,
            ),
            _ => Hit::new(
                format!("REINDEX DATABASE rebuilds every index, and for each table {BLOCKS}"),
                FIX,
            ),
        };
        vec![hit]
    }
}

#[cfg(test)]
mod tests {
    use super::ReindexWithoutConcurrently as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};
    use crate::lint::DbFacts;

    #[test]
    fn a_plain_reindex_is_found() {
        let found = lint(&R, "reindex table orders;\nreindex index orders_pkey;");
        assert_eq!(
            ids(&found),
            [
                "reindex-without-concurrently",
                "reindex-without-concurrently"
            ]
        );
        assert_eq!(found[1].line, 2);
        assert!(found[0].message.contains("public.orders"));
        assert_eq!(lint(&R, "reindex schema shop;").len(), 1);
        assert_eq!(lint(&R, "reindex (verbose) database;").len(), 1);
        assert_eq!(
            lint(&R, "reindex (concurrently false) table orders;").len(),
            1
        );
    }

    #[test]
    fn concurrently_or_a_new_or_empty_table_is_fine() {
        assert!(lint(&R, "reindex table concurrently orders;").is_empty());
        assert!(lint(&R, "reindex (concurrently, verbose) index orders_pkey;").is_empty());
        assert!(lint(&R, "create table t (id int);\nreindex table t;").is_empty());
        assert!(lint(
            &R,
            "create index t_idx on orders (id);\nreindex index t_idx;"
        )
        .is_empty());
        let facts = DbFacts {
            tables: [("shop.orders".to_string(), false)].into_iter().collect(),
            ..Default::default()
        };
        let found = lint_with(
            &R,
            input("reindex table orders;"),
            Some(&facts),
            Some("shop"),
        );
        assert!(found.is_empty(), "empty per the database");
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow reindex-without-concurrently\nreindex table orders;";
        assert!(lint(&R, sql).is_empty());
    }
}
