//! The `transaction` rules: statements that interact badly with the transaction a
//! migration runs in, or with running outside one (`-- no-transaction`, where each
//! statement commits on its own and a failure leaves the migration half-applied).
//! Errors by default.
//!
//! The helpers below tell whether a statement runs inside a transaction block, for the
//! rules about statements PostgreSQL refuses there.

mod concurrently_in_transaction;
mod multiple_statements_without_transaction;
mod non_retryable_without_transaction;
mod not_allowed_in_transaction;
mod transaction_control_in_migration;

use pg_query::protobuf::TransactionStmtKind as Kind;
use pg_query::NodeEnum;

use crate::lint::{Context, Hit, Rule, Statement};

pub fn all() -> Vec<&'static dyn Rule> {
    vec![
        &concurrently_in_transaction::ConcurrentlyInTransaction,
        &not_allowed_in_transaction::NotAllowedInTransaction,
        &transaction_control_in_migration::TransactionControlInMigration,
        &multiple_statements_without_transaction::MultipleStatementsWithoutTransaction,
        &non_retryable_without_transaction::NonRetryableWithoutTransaction,
    ]
}

/// The `BEGIN` (or `START TRANSACTION`) of the explicit transaction block statement
/// `index` runs in, if any. ballast sends the statements of a `-- no-transaction`
/// migration one by one, but a block the SQL opens lasts on the server until `COMMIT`,
/// `END`, `ROLLBACK` or `PREPARE TRANSACTION` (`... AND CHAIN` opens the next at once).
pub(crate) fn explicit_block<'c, 'a>(
    ctx: &'c Context<'a>,
    index: usize,
) -> Option<&'c Statement<'a>> {
    let mut open = None;
    for s in &ctx.statements[..index.min(ctx.statements.len())] {
        let NodeEnum::TransactionStmt(t) = s.node else {
            continue;
        };
        match t.kind() {
            // A second BEGIN only warns: the block is still the first one's.
            Kind::TransStmtBegin | Kind::TransStmtStart => open = open.or(Some(s)),
            Kind::TransStmtCommit | Kind::TransStmtRollback if t.chain => {}
            Kind::TransStmtCommit | Kind::TransStmtRollback | Kind::TransStmtPrepare => open = None,
            _ => {}
        }
    }
    open
}

/// The finding for `what`, a statement PostgreSQL refuses inside a transaction block,
/// when `statement` runs in one: the deploy transaction of a transactional migration
/// (`fix` says where to move it), or a block the SQL of a `-- no-transaction` one opens.
pub(crate) fn refused_in_block(
    ctx: &Context<'_>,
    statement: &Statement<'_>,
    what: &str,
    fix: &str,
) -> Vec<Hit> {
    if ctx.input.transactional {
        return vec![Hit::new(
            format!("{what} cannot run inside a transaction block, and this migration runs in one: PostgreSQL refuses it"),
            fix,
        )];
    }
    let Some(begin) = explicit_block(ctx, statement.index) else {
        return Vec::new();
    };
    let opened_by = match begin.node {
        NodeEnum::TransactionStmt(t) if t.kind() == Kind::TransStmtStart => "START TRANSACTION",
        _ => "BEGIN",
    };
    vec![Hit::new(
        format!(
            "{what} cannot run inside a transaction block, and the {opened_by} on line {} opens one around it: PostgreSQL refuses it",
            ctx.input.line_of(begin.start_of_code)
        ),
        format!("remove the {opened_by} and the COMMIT around it: a -- no-transaction migration already runs each statement on its own, outside a transaction"),
    )]
}
