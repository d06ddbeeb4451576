//! `transaction-control-in-migration`
//!
//! ballast runs a migration inside its deploy transaction (together with the migrations
//! next to it and their ledger rows), or, for a `-- no-transaction` one, statement by
//! statement, reporting exactly which statements took effect. `BEGIN`, `COMMIT`,
//! `ROLLBACK`, savepoints and `PREPARE TRANSACTION` in the SQL undo that: in a
//! transactional migration, `COMMIT` or `ROLLBACK` ends the deploy transaction early
//! (what came before is committed, or silently undone, and the rest runs without a
//! transaction); in a `-- no-transaction` one, a transaction ballast does not know about
//! makes partial progress invisible (after a failure, the statements it reports as done
//! were rolled back with it). Remove the statement: ballast provides the transaction. If
//! something must run outside one, put it in its own migration marked `-- no-transaction`.

use pg_query::protobuf::TransactionStmtKind as Kind;
use pg_query::NodeEnum;

use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta, Statement};

pub struct TransactionControlInMigration;

static META: RuleMeta = RuleMeta {
    id: "transaction-control-in-migration",
    category: Category::Transaction,
    default_level: Level::Error,
    summary: "BEGIN, COMMIT, ROLLBACK or a savepoint in a migration fights ballast's own transaction handling",
    explanation: "ballast runs a migration inside its deploy transaction, or, for a -- no-transaction one, statement by statement, reporting exactly which statements took effect. BEGIN, COMMIT, ROLLBACK, savepoints and PREPARE TRANSACTION in the SQL undo that: in a transactional migration, COMMIT or ROLLBACK ends the deploy transaction early (what came before is committed, or silently undone, and the rest runs without a transaction); in a -- no-transaction one, a transaction ballast does not know about makes partial progress invisible. Remove the statement: ballast provides the transaction. If something must run outside one, put it in its own migration marked -- no-transaction.",
};

impl Rule for TransactionControlInMigration {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check(&self, statement: &Statement<'_>, ctx: &Context<'_>) -> Vec<Hit> {
        let NodeEnum::TransactionStmt(stmt) = statement.node else {
            return Vec::new();
        };
        let kind = stmt.kind();
        let what = match kind {
            Kind::TransStmtBegin => "BEGIN",
            Kind::TransStmtStart => "START TRANSACTION",
            Kind::TransStmtCommit => "COMMIT",
            Kind::TransStmtRollback => "ROLLBACK",
            Kind::TransStmtSavepoint => "SAVEPOINT",
            Kind::TransStmtRelease => "RELEASE SAVEPOINT",
            Kind::TransStmtRollbackTo => "ROLLBACK TO SAVEPOINT",
            Kind::TransStmtPrepare => "PREPARE TRANSACTION",
            Kind::TransStmtCommitPrepared => "COMMIT PREPARED",
            Kind::TransStmtRollbackPrepared => "ROLLBACK PREPARED",
            Kind::Undefined => "a transaction statement",
        };
        let why = if ctx.input.transactional {
            match kind {
                Kind::TransStmtBegin | Kind::TransStmtStart => {
                    "does nothing in ballast's deploy transaction but warn, and the COMMIT that goes with it ends that transaction early"
                }
                Kind::TransStmtCommit | Kind::TransStmtPrepare => {
                    "ends ballast's deploy transaction early: what came before (with the migrations before it in the batch) commits, and the rest runs without a transaction"
                }
                Kind::TransStmtRollback => {
                    "ends ballast's deploy transaction early: what came before is silently undone, and the rest runs without a transaction"
                }
                Kind::TransStmtRollbackTo => {
                    "silently undoes part of the migration, which is then recorded as applied"
                }
                _ => {
                    "is only of use with ROLLBACK TO SAVEPOINT, which silently undoes part of a migration that is then recorded as applied"
                }
            }
        } else {
            match kind {
                Kind::TransStmtBegin | Kind::TransStmtStart => {
                    "opens a transaction ballast does not know about in this -- no-transaction migration: after a failure, statements ballast reports as applied may have been rolled back with it"
                }
                Kind::TransStmtSavepoint | Kind::TransStmtRelease | Kind::TransStmtRollbackTo => {
                    "fails outside a transaction block, or acts on one ballast does not know about, in this -- no-transaction migration"
                }
                _ => {
                    "ends a transaction ballast does not know about in this -- no-transaction migration: after a failure, statements ballast reports as applied may have been rolled back with it"
                }
            }
        };
        vec![Hit::new(
            format!("{what} {why}"),
            "remove it (ballast provides the transaction); if a statement must run outside one, put it alone in a -- no-transaction migration",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::TransactionControlInMigration as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};

    #[test]
    fn transaction_control_is_found() {
        let found = lint(&R, "begin;\ncreate table a (id int);\ncommit;");
        assert_eq!(ids(&found), ["transaction-control-in-migration"; 2]);
        assert_eq!((found[0].line, found[1].line), (1, 3));
        assert!(
            found[1].message.starts_with("COMMIT ends"),
            "{}",
            found[1].message
        );
        for sql in [
            "end;",
            "rollback;",
            "savepoint s;",
            "release savepoint s;",
            "prepare transaction 'x';",
        ] {
            assert_eq!(
                ids(&lint(&R, sql)),
                ["transaction-control-in-migration"],
                "{sql}"
            );
        }
        let mut i = input("-- no-transaction\nbegin;\nselect 1;\ncommit;");
        i.transactional = false;
        let found = lint_with(&R, i, None, None);
        assert_eq!(found.len(), 2);
        assert!(
            found[0].message.contains("no-transaction"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn plain_statements_and_begin_atomic_are_fine() {
        assert!(lint(&R, "create table a (id int);\ninsert into a values (1);").is_empty());
        assert!(lint(
            &R,
            "create function f() returns int language sql begin atomic select 1; end;"
        )
        .is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let sql = "-- ballast:allow transaction-control-in-migration\nsavepoint s;";
        assert!(lint(&R, sql).is_empty());
    }
}
