//! The `transaction` rules: statements that interact badly with the transaction a
//! migration runs in, or with running outside one (`-- no-transaction`, where each
//! statement commits on its own and a failure leaves the migration half-applied).
//! Errors by default.

mod concurrently_in_transaction;
mod multiple_statements_without_transaction;
mod non_retryable_without_transaction;
mod not_allowed_in_transaction;
mod transaction_control_in_migration;

use crate::lint::Rule;

pub fn all() -> Vec<&'static dyn Rule> {
    vec![
        &concurrently_in_transaction::ConcurrentlyInTransaction,
        &not_allowed_in_transaction::NotAllowedInTransaction,
        &transaction_control_in_migration::TransactionControlInMigration,
        &multiple_statements_without_transaction::MultipleStatementsWithoutTransaction,
        &non_retryable_without_transaction::NonRetryableWithoutTransaction,
    ]
}
