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
        phase: crate::migrations::Phase::Pre,
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

/// Lints `sql` as the last of several migrations (`earlier` first, in order), with
/// `rule` only: what the earlier ones declare is known (indexes, checks, key types);
/// only the last one's findings are returned.
pub fn lint_after(rule: &'static dyn Rule, earlier: &[&str], sql: &str) -> Vec<Finding> {
    lint_after_with(rule, earlier, sql, None)
}

/// [`lint_after`], with what the database says.
pub fn lint_after_with(
    rule: &'static dyn Rule,
    earlier: &[&str],
    sql: &str,
    db: Option<&DbFacts>,
) -> Vec<Finding> {
    let mut inputs: Vec<LintInput> = earlier
        .iter()
        .enumerate()
        .map(|(i, sql)| LintInput {
            label: format!("{i}_earlier"),
            ..input(sql)
        })
        .collect();
    inputs.push(input(sql));
    run_rules(&inputs, &[rule], &Default::default(), db, None)
        .into_iter()
        .filter(|f| f.migration == "1_test")
        .collect()
}

/// Lints `sql` as one `-- no-transaction` migration, with `rule` only.
pub fn lint_no_transaction(rule: &'static dyn Rule, sql: &str) -> Vec<Finding> {
    let mut i = input(sql);
    i.transactional = false;
    lint_with(rule, i, None, None)
}

/// The rule ids found, in order.
pub fn ids(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.rule).collect()
}
