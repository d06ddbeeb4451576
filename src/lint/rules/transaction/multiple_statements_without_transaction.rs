//! `multiple-statements-without-transaction`
//!
//! A `-- no-transaction` migration runs statement by statement, each committing on its
//! own: if the second statement fails (or the deploy is interrupted before it), the
//! first stays applied, the migration is not recorded, and the database is left
//! half-migrated, with a retry that starts again from the first statement. Give each
//! statement that must run outside a transaction a `-- no-transaction` migration of its
//! own, and put everything else in ordinary transactional migrations.

use super::non_retryable_without_transaction::NonRetryableWithoutTransaction;
use crate::lint::suppress;
use crate::lint::{Category, Context, Hit, Level, Rule, RuleMeta};

pub struct MultipleStatementsWithoutTransaction;

static META: RuleMeta = RuleMeta {
    id: "multiple-statements-without-transaction",
    category: Category::Transaction,
    default_level: Level::Error,
    summary: "a -- no-transaction migration with more than one statement can stop half-applied",
    explanation: "A -- no-transaction migration runs statement by statement, each committing on its own: if the second statement fails (or the deploy is interrupted before it), the first stays applied, the migration is not recorded, and the database is left half-migrated, with a retry that starts again from the first statement. Give each statement that must run outside a transaction a -- no-transaction migration of its own, and put everything else in ordinary transactional migrations.",
};

impl Rule for MultipleStatementsWithoutTransaction {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn check_migration(&self, ctx: &Context<'_>) -> Vec<Hit> {
        if ctx.input.transactional || ctx.statements.len() < 2 {
            return Vec::new();
        }
        // Findings about a whole migration are not tied to a statement, so `run` does
        // not apply allow comments to them: read them here, at the top of the file or
        // above the statement the finding points at.
        if ctx.statements[..2]
            .iter()
            .any(|s| suppress::allows(s.text, META.id))
        {
            return Vec::new();
        }
        // Every statement can run twice (IF NOT EXISTS, IF EXISTS, a concurrent build
        // whose INVALID leftover ballast drops first): a half-done migration is
        // finished by running it again, which is what the next deploy does.
        let rerunnable = ctx.statements.iter().all(|s| {
            NonRetryableWithoutTransaction
                .check(s, ctx)
                .iter()
                .all(|hit| hit.advisory)
        });
        let mut hit = if rerunnable {
            Hit::new(
                format!(
                    "this -- no-transaction migration has {} statements, each committing on its own: if one fails, those before it stay applied until the migration runs again (every statement can run twice, so the next deploy finishes it)",
                    ctx.statements.len()
                ),
                "nothing to do if a half-done migration until the next deploy is acceptable; otherwise give each statement its own -- no-transaction migration",
            )
            .advisory()
        } else {
            Hit::new(
                format!(
                    "this -- no-transaction migration has {} statements, each committing on its own: if one fails, those before it stay applied and the migration is half-done",
                    ctx.statements.len()
                ),
                "give each statement that must run outside a transaction its own -- no-transaction migration; the rest go in transactional ones",
            )
        };
        hit.at = Some(ctx.statements[1].start_of_code);
        vec![hit]
    }
}

#[cfg(test)]
mod tests {
    use super::MultipleStatementsWithoutTransaction as R;
    use crate::lint::rules::testing::{ids, input, lint, lint_with};

    fn no_transaction(sql: &str) -> Vec<crate::lint::Finding> {
        let mut i = input(sql);
        i.transactional = false;
        lint_with(&R, i, None, None)
    }

    #[test]
    fn two_statements_without_a_transaction_are_found() {
        let found = no_transaction(
            "-- no-transaction\ncreate index concurrently i on a (x);\n\ncreate index concurrently j on a (y);\n",
        );
        assert_eq!(ids(&found), ["multiple-statements-without-transaction"]);
        assert_eq!(found[0].line, 4, "points at the second statement");
        // Named concurrent builds run again safely: a warning, not a refusal.
        assert_eq!(found[0].level, crate::lint::Level::Warning);
        let idempotent = no_transaction(
            "-- no-transaction\ncreate index concurrently if not exists i on a (x);\ncreate index concurrently if not exists j on a (y);",
        );
        assert_eq!(idempotent[0].level, crate::lint::Level::Warning);
        // One statement that cannot run twice (an unnamed build makes a second copy).
        let stuck = no_transaction(
            "-- no-transaction\ncreate index concurrently i on a (x);\ncreate index concurrently on a (y);",
        );
        assert_eq!(stuck[0].level, crate::lint::Level::Error);
    }

    #[test]
    fn one_statement_or_a_transaction_is_fine() {
        assert!(
            no_transaction("-- no-transaction\ncreate index concurrently i on a (x);").is_empty()
        );
        assert!(lint(&R, "create table a (x int);\ncreate index i on a (x);").is_empty());
    }

    #[test]
    fn the_allow_comment_silences_it() {
        let above = "-- no-transaction\ncreate index concurrently i on a (x);\n-- ballast:allow multiple-statements-without-transaction\ncreate index concurrently j on a (y);";
        assert!(no_transaction(above).is_empty());
        let top = "-- no-transaction\n-- ballast:allow multiple-statements-without-transaction\ncreate index concurrently i on a (x);\ncreate index concurrently j on a (y);";
        assert!(no_transaction(top).is_empty());
    }
}
