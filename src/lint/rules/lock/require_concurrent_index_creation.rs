//! `require-concurrent-index-creation`
//!
//! `CREATE INDEX` without `CONCURRENTLY` holds a SHARE lock on the table for the whole
//! build: every INSERT, UPDATE and DELETE waits, for minutes on a large table. Build it
//! with `CREATE INDEX CONCURRENTLY` in a migration of its own that runs outside a
//! transaction (`-- no-transaction`; in Alembic, inside `autocommit_block()`). On a table
//! created in the same migration, or one the database shows empty, there is nothing to
//! wait for and no finding.

use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct RequireConcurrentIndexCreation;

static META: RuleMeta = RuleMeta {
    id: "require-concurrent-index-creation",
    category: Category::Lock,
    default_level: Level::Error,
    summary: "CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds",
    explanation: "CREATE INDEX without CONCURRENTLY holds a SHARE lock on the table for the whole build: every INSERT, UPDATE and DELETE waits, for minutes on a large table. Build it with CREATE INDEX CONCURRENTLY in a migration of its own that runs outside a transaction (-- no-transaction; in Alembic, inside autocommit_block()).",
};

impl Rule for RequireConcurrentIndexCreation {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::IndexStmt(index) = statement.node else {
            return Vec::new();
        };
        let Some(table) = &index.relation else {
            return Vec::new();
        };
        if index.concurrent || !ctx.holds_data(table, statement.index) {
            return Vec::new();
        }
        vec![Hit::new(
            format!(
                "CREATE INDEX {}on {} blocks writes to the table until the index is built",
                if index.idxname.is_empty() {
                    String::new()
                } else {
                    format!("{} ", index.idxname)
                },
                ctx.key(table)
            ),
            "use CREATE INDEX CONCURRENTLY, alone in a -- no-transaction migration",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::RequireConcurrentIndexCreation as R;
    use crate::lint::rules::testing::{ids, lint};

    #[test]
    fn a_plain_index_on_an_existing_table_is_found() {
        let found = lint(
            &R,
            "create index orders_customer_idx on orders (customer_id);",
        );
        assert_eq!(ids(&found), ["require-concurrent-index-creation"]);
        assert_eq!(found[0].line, 1);
    }

    #[test]
    fn concurrently_or_a_new_table_is_fine() {
        assert!(lint(&R, "create index concurrently i on orders (customer_id);").is_empty());
        assert!(lint(&R, "create table t (id int);\ncreate index i on t (id);").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow require-concurrent-index-creation\ncreate index i on orders (customer_id);";
        assert!(lint(&R, sql).is_empty());
    }
}
