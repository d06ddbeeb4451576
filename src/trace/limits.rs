//! `[rehearse]` limits judged against a rehearsal's [`Report`]: the longest
//! `ACCESS EXCLUSIVE` lock, the longest write-blocking lock, the whole run's time.

use std::time::Duration;

use super::measure::blocks_writes;
use super::report::{Exceeded, Report};

pub use crate::config::RehearseLimits as Limits;

/// Every limit `report` goes over: each statement's lock over a lock limit (the
/// strongest kind it breaks only), then the run's time.
pub fn exceeded(report: &Report, limits: &Limits) -> Vec<Exceeded> {
    let ms = |d: Duration| d.as_millis() as u64;
    let mut out = Vec::new();
    for statement in &report.statements {
        for lock in &statement.locks {
            let broken = match (limits.max_exclusive_lock, limits.max_write_block) {
                (Some(max), _) if lock.mode == "AccessExclusiveLock" && lock.held_ms > ms(max) => {
                    Some(("max_exclusive_lock", max))
                }
                (_, Some(max)) if blocks_writes(&lock.mode) && lock.held_ms > ms(max) => {
                    Some(("max_write_block", max))
                }
                _ => None,
            };
            if let Some((limit, max)) = broken {
                out.push(Exceeded {
                    limit,
                    limit_ms: ms(max),
                    measured_ms: lock.held_ms,
                    migration: Some(statement.migration.clone()),
                    line: statement.line,
                    sql: Some(statement.sql.clone()),
                    relation: Some(lock.relation.clone()),
                    mode: Some(lock.mode.clone()),
                    until: lock.until.clone(),
                });
            }
        }
    }
    if let Some(max) = limits.max_duration {
        if report.duration_ms > ms(max) {
            out.push(Exceeded {
                limit: "max_duration",
                limit_ms: ms(max),
                measured_ms: report.duration_ms,
                migration: None,
                line: None,
                sql: None,
                relation: None,
                mode: None,
                until: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{exceeded, Limits};
    use crate::trace::report::{HeldLock, Report, TracedStatement};
    use std::time::Duration;

    fn statement(locks: &[(&str, u64)]) -> TracedStatement {
        TracedStatement {
            migration: "3_retype".into(),
            line: Some(2),
            sql: "alter table orders ...".into(),
            started_ms: 0,
            duration_ms: 0,
            rows: Some(0),
            locks: locks
                .iter()
                .map(|(mode, held_ms)| HeldLock {
                    relation: "public.orders".into(),
                    mode: mode.to_string(),
                    held_ms: *held_ms,
                    from_ms: 0,
                    until: None,
                })
                .collect(),
            rewrites: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn each_lock_over_its_limit_is_named_once_and_the_run_over_its_time() {
        let report = Report {
            statements: vec![
                statement(&[("AccessExclusiveLock", 4000)]),
                statement(&[("ShareLock", 3000), ("RowExclusiveLock", 9000)]),
                statement(&[("AccessExclusiveLock", 20)]),
            ],
            duration_ms: 12_000,
            ..Report::default()
        };
        let limits = Limits {
            max_exclusive_lock: Some(Duration::from_secs(1)),
            max_write_block: Some(Duration::from_secs(2)),
            max_duration: Some(Duration::from_secs(10)),
        };
        let over = exceeded(&report, &limits);
        let named: Vec<(&str, u64)> = over.iter().map(|e| (e.limit, e.measured_ms)).collect();
        assert_eq!(
            named,
            [
                ("max_exclusive_lock", 4000),
                ("max_write_block", 3000),
                ("max_duration", 12_000)
            ]
        );
        assert_eq!(over[0].relation.as_deref(), Some("public.orders"));
        assert_eq!(over[0].line, Some(2));
        assert!(exceeded(&report, &Limits::default()).is_empty());
        // Only the write-block limit set: the long ACCESS EXCLUSIVE breaks it.
        let writes_only = Limits {
            max_write_block: Some(Duration::from_secs(2)),
            ..Limits::default()
        };
        let named: Vec<(&str, u64)> = exceeded(&report, &writes_only)
            .iter()
            .map(|e| (e.limit, e.measured_ms))
            .collect();
        assert_eq!(
            named,
            [("max_write_block", 4000), ("max_write_block", 3000)]
        );
    }
}
