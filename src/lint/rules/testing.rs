//! Helpers for rule tests: lint SQL with one rule and read back what it found.

use crate::lint::input::{Downgrade, LintInput};
use crate::lint::{run_rules, DbFacts, Finding, Rule};

/// Lints `sql` as one transactional migration with a downgrade, with `rule` only.
pub fn lint(rule: &'static dyn Rule, sql: &str) -> Vec<Finding> {
    lint_with(rule, input(sql), None, None)
}

pub fn input(sql: &str) -> LintInput {
    LintInput {
        label: "1_test".into(),
        file: "1_test.sql".into(),
        sql: sql.into(),
        transactional: true,
        downgrade: Downgrade::Present,
        whole_allows: String::new(),
    }
}

pub fn lint_with(
    rule: &'static dyn Rule,
    input: LintInput,
    db: Option<&DbFacts>,
    schema: Option<&str>,
) -> Vec<Finding> {
    run_rules(&[input], &[rule], &Default::default(), db, schema)
}

/// The rule ids found, in order.
pub fn ids(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.rule).collect()
}
