//! What a rehearsal found, as data: the measure ([`Report`]: each statement with its
//! time, rows, locks and rewrites; the maxima), the lint beside it ([`Comparison`]), the
//! limits gone over ([`Exceeded`]), and the whole of it ([`Rehearsal`]), as the
//! `rehearsal` event carries it (docs/json-events.md) and the reports show it. Plain
//! data: the events and the reporters read it without the tracer behind it.

use serde::Serialize;

/// What the rehearsal measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub statements: Vec<TracedStatement>,
    pub migrations: Vec<MigrationTotals>,
    /// Per table, the longest `AccessExclusiveLock` of the run, longest first.
    pub longest_exclusive: Vec<TableHold>,
    /// Per table, the longest lock that blocks writes (`ShareLock` or stronger).
    pub longest_write_block: Vec<TableHold>,
    /// From the first statement to the last transaction's end.
    pub duration_ms: u64,
    /// How often the sampler looked at the other sessions' locks.
    pub sample_interval_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TracedStatement {
    pub migration: String,
    /// Its line in the migration's file; `null` for Alembic (seen, not run, by ballast).
    pub line: Option<usize>,
    /// Its first line, shortened.
    pub sql: String,
    /// When it started, from the start of the plan.
    pub started_ms: u64,
    pub duration_ms: u64,
    /// Rows affected; `null` where ballast did not run it, or it failed.
    pub rows: Option<u64>,
    /// The locks it took, held until its transaction ended, longest first.
    pub locks: Vec<HeldLock>,
    /// Tables whose storage it replaced (a rewrite, a TRUNCATE).
    pub rewrites: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldLock {
    /// `schema.table`.
    pub relation: String,
    /// As `pg_locks` names it (`AccessExclusiveLock`).
    pub mode: String,
    pub held_ms: u64,
    /// When it was taken, from the start of the plan.
    pub from_ms: u64,
    /// The migration whose end released it, when that is a later one (the lock was
    /// held across migrations that share a transaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A table's longest lock of one kind, and the statement that took it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableHold {
    pub relation: String,
    pub mode: String,
    pub held_ms: u64,
    pub migration: String,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationTotals {
    pub migration: String,
    pub duration_ms: u64,
    pub longest_exclusive: Vec<TableHold>,
    pub longest_write_block: Vec<TableHold>,
    pub rewrites: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    /// Statements where the lint and the rehearsal agree (both said, or both silent,
    /// about a rewrite and a long write-blocking lock); one that failed counts nowhere.
    pub agreed: usize,
    /// What the lint said that the rehearsal did not see.
    pub lint_only: Vec<Disagreement>,
    /// What the rehearsal saw that the lint did not say.
    pub rehearsal_only: Vec<Disagreement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    pub migration: String,
    pub line: Option<usize>,
    /// The lint rule (lint only), or what was measured (rehearsal only).
    pub what: String,
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
    /// The later migration whose commit released the lock, when it was held across
    /// migrations sharing a transaction (often why it was held that long).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    /// The backup restored into the copy.
    pub backup: String,
    /// The copy's database (dropped by the end).
    pub copy: String,
    /// How long the restore took: the recovery time a restore would take.
    pub restore_ms: u64,
    pub tables: usize,
    pub rows: i64,
    /// Rows per table (`schema.table`), recorded beside the backup's manifest.
    #[serde(skip)]
    pub row_counts: Vec<(String, i64)>,
    /// The plan's migrations, as the copy had them pending.
    pub migrations_rehearsed: Vec<String>,
    /// The measure: statements, per-migration and whole-run maxima.
    #[serde(flatten)]
    pub report: Report,
    pub lint: Comparison,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Within the limits, and the plan ran to its end on the copy.
    pub ok: bool,
    /// The plan failed on the copy: the statement and the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    pub exceeded: Vec<Exceeded>,
}

impl Rehearsal {
    /// One sentence per problem the verdict names (none when it is ok).
    pub fn problems(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.verdict.failed.iter().cloned().collect();
        lines.extend(self.verdict.exceeded.iter().map(describe));
        lines
    }
}

/// "3_retype_orders line 2 (`ALTER TABLE ...`) held AccessExclusiveLock on
/// public.orders for 4.2s; rehearse.max_exclusive_lock is 1s".
pub fn describe(e: &Exceeded) -> String {
    let took = crate::text::human_duration(e.measured_ms);
    let limit = crate::text::human_duration(e.limit_ms);
    match (&e.migration, &e.relation, &e.mode) {
        (Some(migration), Some(relation), Some(mode)) => format!(
            "{migration}{} ({}) held {mode} on {relation} for {took}{}; rehearse.{} is {limit}",
            e.line.map(|l| format!(" line {l}")).unwrap_or_default(),
            e.sql.as_deref().unwrap_or(""),
            e.until
                .as_deref()
                .map(|u| format!(" (until {u} committed: they share a transaction)"))
                .unwrap_or_default(),
            e.limit
        ),
        _ => format!(
            "the plan took {took} on the copy; rehearse.{} is {limit}",
            e.limit
        ),
    }
}
