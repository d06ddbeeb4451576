//! `concurrently-in-transaction`
//!
//! `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`, `REINDEX ... CONCURRENTLY` and
//! `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY` cannot run inside a transaction
//! block: PostgreSQL refuses them ("cannot run inside a transaction block"), so a
//! migration that runs in the deploy transaction fails, and the deploy with it. Move the
//! statement to a migration of its own whose first line is `-- no-transaction` (in
//! Alembic, run it inside `op.get_context().autocommit_block()`).

use super::refused_in_block;
use crate::lint::nodes::never_in_a_transaction;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct ConcurrentlyInTransaction;

static META: RuleMeta = RuleMeta {
    id: "concurrently-in-transaction",
    category: Category::Transaction,
    default_level: Level::Error,
    summary: "a CONCURRENTLY statement in a migration that runs inside a transaction (or inside its own BEGIN) fails",
    explanation: "CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, REINDEX ... CONCURRENTLY and ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY cannot run inside a transaction block: PostgreSQL refuses them, so a migration that runs in the deploy transaction fails, and the deploy with it. Move the statement to a migration of its own whose first line is -- no-transaction (in Alembic, run it inside op.get_context().autocommit_block()). In a -- no-transaction migration, a BEGIN or START TRANSACTION before it (until COMMIT, END or ROLLBACK) opens such a block just the same: remove the BEGIN and COMMIT.",
};

impl Rule for ConcurrentlyInTransaction {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let what = match never_in_a_transaction(statement.node) {
            Some(what) if what.contains("CONCURRENTLY") => what,
            _ => return Vec::new(),
        };
        refused_in_block(
            ctx,
            statement,
            what,
            "move it to a migration of its own whose first line is -- no-transaction (Alembic: op.get_context().autocommit_block())",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::ConcurrentlyInTransaction as R;
    use crate::lint::rules::testing::{ids, lint, lint_no_transaction};
    use crate::lint::Finding;

    fn no_transaction(sql: &str) -> Vec<Finding> {
        lint_no_transaction(&R, sql)
    }

    #[test]
    fn concurrently_in_a_transaction_is_found() {
        let found = lint(
            &R,
            "select 1;\n\ncreate index concurrently i on orders (customer_id);",
        );
        assert_eq!(ids(&found), ["concurrently-in-transaction"]);
        assert_eq!(found[0].line, 3);
        for sql in [
            "drop index concurrently i;",
            "reindex table concurrently orders;",
            "reindex (concurrently) index i;",
            "alter table events detach partition events_2020 concurrently;",
        ] {
            assert_eq!(
                ids(&lint(&R, sql)),
                ["concurrently-in-transaction"],
                "{sql}"
            );
        }
    }

    #[test]
    fn concurrently_inside_begin_in_a_no_transaction_migration_is_found() {
        let found = no_transaction(
            "-- no-transaction\nbegin;\ncreate index concurrently if not exists i on orders (channel);\ncommit;",
        );
        assert_eq!(ids(&found), ["concurrently-in-transaction"]);
        assert_eq!(found[0].line, 3);
        assert!(
            found[0].message.contains("the BEGIN on line 2"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].fix.contains("remove the BEGIN and the COMMIT"),
            "{}",
            found[0].fix
        );
        for sql in [
            "start transaction;\ndrop index concurrently i;\ncommit;",
            "begin;\nselect 1;\nreindex index concurrently i;",
            "begin;\ncommit and chain;\ncreate index concurrently i on orders (channel);",
            "begin;\nbegin;\ncommit;\nbegin;\ncreate index concurrently i on orders (channel);\nend;",
        ] {
            assert_eq!(
                ids(&no_transaction(sql)),
                ["concurrently-in-transaction"],
                "{sql}"
            );
        }
    }

    #[test]
    fn no_transaction_or_no_concurrently_is_fine() {
        assert!(no_transaction(
            "-- no-transaction\ncreate index concurrently i on orders (customer_id);"
        )
        .is_empty());
        for sql in [
            "begin;\ncommit;\ncreate index concurrently i on orders (channel);",
            "begin;\nrollback;\ndrop index concurrently i;",
            "begin;\nend;\nreindex index concurrently i;",
            "begin;\ncreate index i on orders (channel);\ncommit;",
        ] {
            assert!(no_transaction(sql).is_empty(), "{sql}");
        }
        for sql in [
            "create index i on orders (customer_id);",
            "reindex (concurrently false) index i;",
            "alter table events detach partition events_2020;",
        ] {
            assert!(lint(&R, sql).is_empty(), "{sql}");
        }
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow concurrently-in-transaction\ncreate index concurrently i on orders (customer_id);";
        assert!(lint(&R, sql).is_empty());
        let sql = "-- no-transaction\nbegin;\n-- ballast:allow concurrently-in-transaction\ncreate index concurrently i on orders (customer_id);\ncommit;";
        assert!(no_transaction(sql).is_empty());
    }
}
