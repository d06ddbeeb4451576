//! [`Rehearsal`]: everything a rehearsal found, as the `rehearsal` event carries it
//! (docs/json-events.md) and the reports show it.

use serde::Serialize;

use super::compare::Comparison;
use super::limits::Exceeded;
use super::measure::Report;

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
            "{migration}{} ({}) held {mode} on {relation} for {took}; rehearse.{} is {limit}",
            e.line.map(|l| format!(" line {l}")).unwrap_or_default(),
            e.sql.as_deref().unwrap_or(""),
            e.limit
        ),
        _ => format!(
            "the plan took {took} on the copy; rehearse.{} is {limit}",
            e.limit
        ),
    }
}
