//! `not-allowed-in-transaction`
//!
//! Some statements cannot run inside a transaction block at all: `VACUUM` (a plain
//! `VACUUM`, not `ANALYZE`), `CREATE DATABASE`, `DROP DATABASE`, `CREATE TABLESPACE`,
//! `DROP TABLESPACE` and `ALTER SYSTEM`. In a migration that runs in the deploy
//! transaction PostgreSQL refuses them, and the deploy fails. Maintenance (`VACUUM`)
//! belongs outside migrations; the others in a `-- no-transaction` migration of their
//! own, if in a migration at all. In a `-- no-transaction` migration, a `BEGIN` or
//! `START TRANSACTION` before them (until `COMMIT`, `END` or `ROLLBACK`) opens such a
//! block just the same: remove the `BEGIN` and `COMMIT`. (`CONCURRENTLY` statements have
//! their own rule.)

use super::refused_in_block;
use crate::lint::nodes::never_in_a_transaction;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct NotAllowedInTransaction;

static META: RuleMeta = RuleMeta {
    id: "not-allowed-in-transaction",
    category: Category::Transaction,
    default_level: Level::Error,
    summary: "VACUUM, CREATE/DROP DATABASE, tablespaces and ALTER SYSTEM fail inside the deploy transaction",
    explanation: "Some statements cannot run inside a transaction block at all: VACUUM (not ANALYZE alone), CREATE DATABASE, DROP DATABASE, CREATE TABLESPACE, DROP TABLESPACE and ALTER SYSTEM. In a migration that runs in the deploy transaction PostgreSQL refuses them, and the deploy fails. Maintenance (VACUUM) belongs outside migrations; the others in a -- no-transaction migration of their own, if in a migration at all. In a -- no-transaction migration, a BEGIN or START TRANSACTION before them (until COMMIT, END or ROLLBACK) opens such a block just the same: remove the BEGIN and COMMIT.",
};

impl Rule for NotAllowedInTransaction {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let what = match never_in_a_transaction(statement.node) {
            Some(what) if !what.contains("CONCURRENTLY") => what,
            _ => return Vec::new(),
        };
        let fix = if what == "VACUUM" {
            "take it out of the migration: autovacuum, or a maintenance job outside the deploy"
        } else {
            "move it to a migration of its own whose first line is -- no-transaction, or do it by hand outside the deploy"
        };
        refused_in_block(ctx, statement, what, fix)
    }
}

#[cfg(test)]
mod tests {
    use super::NotAllowedInTransaction as R;
    use crate::lint::rules::testing::{ids, lint, lint_no_transaction};
    use crate::lint::Finding;

    fn no_transaction(sql: &str) -> Vec<Finding> {
        lint_no_transaction(&R, sql)
    }

    #[test]
    fn vacuum_or_create_database_in_a_transaction_is_found() {
        let found = lint(
            &R,
            "update orders set total = 0 where total is null;\nvacuum analyze orders;",
        );
        assert_eq!(ids(&found), ["not-allowed-in-transaction"]);
        assert_eq!(found[0].line, 2);
        assert_eq!(lint(&R, "create database reports;").len(), 1);
        assert_eq!(lint(&R, "alter system set work_mem = '64MB';").len(), 1);
    }

    #[test]
    fn vacuum_inside_begin_in_a_no_transaction_migration_is_found() {
        let found =
            no_transaction("-- no-transaction\nstart transaction;\nvacuum orders;\ncommit;");
        assert_eq!(ids(&found), ["not-allowed-in-transaction"]);
        assert_eq!(found[0].line, 3);
        assert!(
            found[0].message.contains("the START TRANSACTION on line 2"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].fix.starts_with("remove the START TRANSACTION"),
            "{}",
            found[0].fix
        );
        assert_eq!(
            ids(&no_transaction("begin;\ncreate database reports;\ncommit;")),
            ["not-allowed-in-transaction"]
        );
    }

    #[test]
    fn analyze_alone_or_outside_a_transaction_is_fine() {
        assert!(lint(&R, "analyze orders;").is_empty());
        assert!(no_transaction("vacuum orders;").is_empty());
        assert!(no_transaction("begin;\nprepare transaction 'x';\nvacuum orders;").is_empty());
        assert!(no_transaction("begin;\nanalyze orders;\ncommit;").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        assert!(lint(
            &R,
            "-- ballast:allow not-allowed-in-transaction\nvacuum orders;"
        )
        .is_empty());
    }
}
