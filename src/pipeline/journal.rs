//! The run journal: every run, stage by stage, so a failed or killed run is never a
//! mystery. Kept twice: as JSON lines in the backup folder (always, even when the
//! database is unreachable) and in `ballast_journal` beside the ledger (once ballast's
//! tables exist; a run never creates them just to journal).

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::db::{journal_table, ledger};
use crate::events::{RunSummary, StageRecord};
use crate::pipeline::RunContext;

pub const FILE_NAME: &str = "journal.jsonl";

/// The run's journal entry as it grows.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    entry: Value,
}

impl Journal {
    pub fn new(
        backup_dir: PathBuf,
        run_id: &str,
        pipeline: &str,
        target: &str,
        schema: &str,
    ) -> Journal {
        Journal {
            path: backup_dir.join(FILE_NAME),
            entry: json!({
                "run_id": run_id,
                "pipeline": pipeline,
                "status": "started",
                "started_at": chrono::Utc::now().to_rfc3339(),
                "target": target,
                "schema": schema,
                "stages": [],
            }),
        }
    }

    pub fn stage(&mut self, record: &StageRecord) {
        if let Some(stages) = self.entry["stages"].as_array_mut() {
            stages.push(serde_json::to_value(record).unwrap_or(Value::Null));
        }
        self.append_line();
    }

    fn set(&mut self, key: &str, value: Value) {
        self.entry[key] = value;
    }

    /// Appends the entry as it stands; the newest line for a run id is its state.
    fn append_line(&self) {
        let write = || -> std::io::Result<()> {
            // Beside the backups: as private as they are.
            if let Some(dir) = self.path.parent() {
                crate::storage::private_dir(dir)?;
            }
            let mut file = crate::storage::private_append(&self.path)?;
            // One write per line: concurrent runs append whole lines, never interleaved.
            file.write_all(format!("{}\n", self.entry).as_bytes())
        };
        if let Err(e) = write() {
            tracing::warn!("cannot write the journal file {}: {e}", self.path.display());
        }
    }
}

/// Called by the upgrade stage once ballast's tables exist, before anything is
/// applied: a run killed from here on leaves a `running` entry for the next run to find.
pub async fn mark_running(ctx: &mut RunContext) {
    ctx.journal.set("status", json!("running"));
    let start = ctx.start().and_then(|s| s.current_label());
    ctx.journal.set("start_version", json!(start));
    ctx.journal.append_line();
    sync_table(ctx).await;
}

/// Names the `-- no-transaction` migration the run is in the middle of (`None` once it
/// is recorded), in the table too: a run killed inside one is found with its name,
/// since the ledger knows nothing of a migration that did not finish.
pub async fn mark_in_progress(ctx: &mut RunContext, label: Option<String>) {
    ctx.journal.set("in_progress", json!(label));
    ctx.journal.append_line();
    sync_table(ctx).await;
}

/// Writes the entry as it stands to `ballast_journal` (while a run changes the
/// database, after each stage: a run killed later is found with its last stage).
pub async fn sync_table(ctx: &mut RunContext) {
    let entry = ctx.journal.entry.clone();
    let schema = ctx.settings().database.schema.clone();
    if let Ok(conn) = ctx.conn().await {
        if let Err(e) = journal_table::upsert(conn, &schema, &entry).await {
            tracing::warn!("{e}");
        }
    }
}

impl Journal {
    /// The run's closing account, whole (its next steps too), so `history --run` can
    /// show a failed run's report again after its output is gone; appended to the file.
    pub fn close(&mut self, summary: &RunSummary) {
        if let Ok(Value::Object(fields)) = serde_json::to_value(summary) {
            for (key, value) in fields {
                self.set(&key, value);
            }
        }
        self.set(
            "status",
            serde_json::to_value(summary.outcome).unwrap_or(Value::Null),
        );
        self.set("finished_at", json!(chrono::Utc::now().to_rfc3339()));
        self.append_line();
    }

    /// Writes the entry to `<schema>.ballast_journal` when the table exists (a run
    /// never creates ballast's tables just to journal).
    pub async fn write_table(&self, conn: &mut sqlx::PgConnection, schema: &str) {
        match ledger::table_exists(conn, schema, journal_table::TABLE).await {
            Ok(true) => {
                if let Err(e) = journal_table::upsert(conn, schema, &self.entry).await {
                    tracing::warn!("{e}");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// Records the final outcome: JSON lines always, the table when it exists.
pub async fn finish(ctx: &mut RunContext, summary: &RunSummary) {
    ctx.journal.close(summary);
    // Never reached the database: no table to write to, and no point waiting on it
    // again. A restore that replaced the target journals in the restored database.
    if ctx.start().is_none() && ctx.replaced_with().is_none() {
        return;
    }
    let journal = ctx.journal.clone();
    let schema = ctx.settings().database.schema.clone();
    let Ok(conn) = ctx.conn().await else { return };
    journal.write_table(conn, &schema).await;
}

/// Runs from the JSON lines file, newest first (the last line of each run wins).
pub fn read_file(backup_dir: &std::path::Path, limit: usize) -> std::io::Result<Vec<Value>> {
    let text = match std::fs::read_to_string(backup_dir.join(FILE_NAME)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut order: Vec<String> = Vec::new();
    let mut latest: std::collections::HashMap<String, Value> = Default::default();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(id) = entry["run_id"].as_str().map(str::to_string) else {
            continue;
        };
        if !latest.contains_key(&id) {
            order.push(id.clone());
        }
        latest.insert(id, entry);
    }
    Ok(order
        .iter()
        .rev()
        .take(limit)
        .filter_map(|id| latest.remove(id))
        .collect())
}
