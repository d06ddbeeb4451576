//! `[rehearse]` limits judged against a rehearsal's [`Report`]: the longest
//! `ACCESS EXCLUSIVE` lock, the longest write-blocking lock, the whole run's time.

use std::time::Duration;

use serde::Serialize;

use super::measure::{blocks_writes, Report};

/// The limits a rehearsal must stay within (each optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_exclusive_lock: Option<Duration>,
    pub max_write_block: Option<Duration>,
    pub max_duration: Option<Duration>,
}

/// A limit the rehearsal went over, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exceeded {
    /// `max_exclusive_lock`, `max_write_block` or `max_duration`.
    pub limit: &'static str,
    pub limit_ms: u64,
    pub measured_ms: u64,
    /// The statement that took the lock (none for `max_duration`).
    pub migration: Option<String>,
    pub line: Option<usize>,
    pub sql: Option<String>,
    pub relation: Option<String>,
    pub mode: Option<String>,
}

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
            });
        }
    }
    out
}
