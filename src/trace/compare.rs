//! The lint's prediction beside the rehearsal's measure, per statement: where the lint
//! said a statement rewrites a table or holds a lock that blocks writers, and the
//! rehearsal did or did not see it; where the rehearsal saw one the lint did not say.
//! A lock counts as seen when a write-blocking lock was held at least `long`.

use super::measure::blocks_writes;
use super::report::{Comparison, Disagreement, Report, TracedStatement};
use crate::lint::{Category, Finding};

/// Rules that say a statement rewrites the table.
const REWRITE_RULES: &[&str] = &[
    "changing-column-type",
    "table-rewrite-command",
    "adding-field-with-volatile-default",
];

/// Compares `findings` (the plan's lint) with `report`, statement by statement.
pub fn compare(report: &Report, findings: &[Finding], long_ms: u64) -> Comparison {
    let mut out = Comparison::default();
    for (i, statement) in report.statements.iter().enumerate() {
        // A statement that failed measured nothing to set beside the lint.
        if statement.error.is_some() {
            continue;
        }
        let next_line = report
            .statements
            .get(i + 1)
            .filter(|n| n.migration == statement.migration)
            .and_then(|n| n.line);
        let said: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.category == Category::Lock && f.migration == statement.migration)
            .filter(|f| match statement.line {
                Some(line) => f.line >= line && next_line.is_none_or(|next| f.line < next),
                // Alembic: the rendered SQL's lines are not the statements' here.
                None => true,
            })
            .collect();
        let said_rewrite = said.iter().find(|f| REWRITE_RULES.contains(&f.rule));
        let said_lock = said.first();
        let rewrote = !statement.rewrites.is_empty();
        let long_lock = longest_blocking(statement).filter(|(_, ms)| *ms >= long_ms);
        let mut agrees = true;
        match (said_rewrite, rewrote) {
            (Some(f), false) => {
                agrees = false;
                out.lint_only.push(Disagreement {
                    migration: statement.migration.clone(),
                    line: statement.line,
                    what: format!("{} (no rewrite measured)", f.rule),
                });
            }
            (None, true) => {
                agrees = false;
                out.rehearsal_only.push(Disagreement {
                    migration: statement.migration.clone(),
                    line: statement.line,
                    what: format!("rewrote {}", statement.rewrites.join(", ")),
                });
            }
            _ => {}
        }
        match (said_lock, long_lock) {
            (Some(f), None) if said_rewrite.is_none() || rewrote => {
                agrees = false;
                out.lint_only.push(Disagreement {
                    migration: statement.migration.clone(),
                    line: statement.line,
                    what: format!(
                        "{} (no write-blocking lock held {} ms or more)",
                        f.rule, long_ms
                    ),
                });
            }
            (None, Some((lock, ms))) => {
                agrees = false;
                out.rehearsal_only.push(Disagreement {
                    migration: statement.migration.clone(),
                    line: statement.line,
                    what: format!("{lock} held {ms} ms"),
                });
            }
            _ => {}
        }
        if agrees {
            out.agreed += 1;
        }
    }
    out
}

/// The statement's longest write-blocking lock: ("Mode on table", ms).
fn longest_blocking(statement: &TracedStatement) -> Option<(String, u64)> {
    statement
        .locks
        .iter()
        .filter(|l| blocks_writes(&l.mode))
        .max_by_key(|l| l.held_ms)
        .map(|l| (format!("{} on {}", l.mode, l.relation), l.held_ms))
}

#[cfg(test)]
mod tests {
    use super::compare;
    use crate::lint::{Category, Finding, Level};
    use crate::trace::report::{HeldLock, Report, TracedStatement};

    fn statement(line: usize, lock: Option<(&str, u64)>, rewrites: &[&str]) -> TracedStatement {
        TracedStatement {
            migration: "1_a".into(),
            line: Some(line),
            sql: String::new(),
            started_ms: 0,
            duration_ms: 0,
            rows: None,
            locks: lock
                .map(|(mode, held_ms)| HeldLock {
                    relation: "public.t".into(),
                    mode: mode.into(),
                    held_ms,
                    from_ms: 0,
                    until: None,
                })
                .into_iter()
                .collect(),
            rewrites: rewrites.iter().map(|r| r.to_string()).collect(),
            error: None,
        }
    }

    fn finding(rule: &'static str, line: usize) -> Finding {
        Finding {
            rule,
            level: Level::Error,
            category: Category::Lock,
            migration: "1_a".into(),
            file: "1_a.sql".into(),
            line,
            message: String::new(),
            fix: String::new(),
        }
    }

    #[test]
    fn agreements_and_each_side_alone_are_counted_per_statement() {
        let report = Report {
            statements: vec![
                // Both: a rewrite under a long lock.
                statement(1, Some(("AccessExclusiveLock", 5000)), &["public.t"]),
                // The lint warned of a scan under lock; it took milliseconds here.
                statement(3, Some(("AccessExclusiveLock", 4)), &[]),
                // Neither said anything.
                statement(5, Some(("RowExclusiveLock", 9000)), &[]),
                // The lint said nothing; the lock was held long (a shared transaction).
                statement(7, Some(("AccessExclusiveLock", 4000)), &[]),
                // It failed: it measured nothing, whatever the lint said.
                TracedStatement {
                    error: Some("syntax error".into()),
                    ..statement(9, None, &[])
                },
            ],
            ..Report::default()
        };
        let findings = [
            finding("changing-column-type", 1),
            finding("set-not-null", 4),
        ];
        let seen = compare(&report, &findings, 1000);
        assert_eq!(seen.agreed, 2);
        assert_eq!(seen.lint_only.len(), 1);
        assert_eq!(seen.lint_only[0].line, Some(3));
        assert!(seen.lint_only[0].what.starts_with("set-not-null"));
        assert_eq!(seen.rehearsal_only.len(), 1);
        assert_eq!(seen.rehearsal_only[0].line, Some(7));
        assert_eq!(
            seen.rehearsal_only[0].what,
            "AccessExclusiveLock on public.t held 4000 ms"
        );
    }
}
