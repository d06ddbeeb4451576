//! `history`: the journal, newest first: the table (when it exists and the database
//! answers) and the JSON lines file merged, so runs that never reached the database
//! (refused early, database down) are shown too.

use serde_json::Value;

use crate::cli::GlobalArgs;
use crate::db::{self, journal_table, ledger};
use crate::exit_code;
use crate::report::human::human_duration;
use crate::report::stdout_line;

pub async fn run(g: &GlobalArgs, limit: usize) -> i32 {
    let settings = match super::load_settings(g) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let schema = &settings.database.schema;
    let mut from_db = None;
    if settings.database.url().is_ok() {
        let connected = db::connect(&settings.database, "history").await;
        if let Err(e) = &connected {
            // In a disaster the local file is what is left: show it, and say so.
            crate::report::stderr_line(&format!(
                "ballast: the database could not be read ({e}); showing {} only",
                settings
                    .backup
                    .dir
                    .join(crate::journal::FILE_NAME)
                    .display()
            ));
        }
        if let Ok(mut conn) = connected {
            if let Ok(true) = ledger::table_exists(&mut conn, schema, journal_table::TABLE).await {
                match journal_table::recent(&mut conn, schema, limit as i64).await {
                    Ok(rows) => from_db = Some(rows),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            db::close(conn).await;
        }
    }
    let file = settings.backup.dir.join(crate::journal::FILE_NAME);
    let from_file = match crate::journal::read_file(&settings.backup.dir, usize::MAX) {
        Ok(rows) => rows,
        Err(e) => {
            return super::fail(
                g,
                &format!("cannot read the journal file {}: {e}", file.display()),
                exit_code::USAGE,
            )
        }
    };
    let mut sources = vec![file.display().to_string()];
    if from_db.is_some() {
        sources.insert(0, format!("{schema}.{}", journal_table::TABLE));
    }
    let source = sources.join(" and ");
    let runs = merge(from_db.unwrap_or_default(), from_file, limit);
    if g.json {
        for run in &runs {
            crate::report::print_event("run", run.clone());
        }
        return exit_code::SUCCESS;
    }
    if runs.is_empty() {
        stdout_line(&format!("no runs recorded yet ({source})"));
        return exit_code::SUCCESS;
    }
    stdout_line(&format!(
        "{:<26} {:<9} {:<22} {:>8}  {:<24} detail",
        "started", "pipeline", "outcome", "time", "version"
    ));
    for run in &runs {
        stdout_line(&row(run));
    }
    stdout_line(&format!(
        "({} run{} from {source})",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" }
    ));
    exit_code::SUCCESS
}

fn row(run: &Value) -> String {
    let text = |key: &str| run[key].as_str().unwrap_or("").to_string();
    let started = text("started_at")
        .chars()
        .take(19)
        .collect::<String>()
        .replace('T', " ");
    let time = run["duration_ms"]
        .as_u64()
        .map(human_duration)
        .unwrap_or_else(|| "-".into());
    let version = match (run["start_version"].as_str(), run["end_version"].as_str()) {
        (a, b) if a == b => a.unwrap_or("none").to_string(),
        (a, b) => format!("{} → {}", a.unwrap_or("none"), b.unwrap_or("none")),
    };
    let detail = match (run["failed_stage"].as_str(), run["error"].as_str()) {
        (Some(stage), Some(error)) => format!("{stage}: {error}"),
        _ => format!("run {}", text("run_id")),
    };
    format!(
        "{started:<26} {:<9} {:<22} {time:>8}  {version:<24} {detail}",
        text("pipeline"),
        text("status")
    )
}

/// One entry per run id, newest first. The database's entry wins unless the file knows
/// the run finished and the database does not (the final write to the table failed).
fn merge(from_db: Vec<Value>, from_file: Vec<Value>, limit: usize) -> Vec<Value> {
    let mut by_id: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    for entry in from_file {
        if let Some(id) = entry["run_id"].as_str() {
            by_id.insert(id.to_string(), entry);
        }
    }
    for entry in from_db {
        let Some(id) = entry["run_id"].as_str().map(str::to_string) else {
            continue;
        };
        let file_finished = by_id.get(&id).is_some_and(|f| f["finished_at"].is_string());
        if !(file_finished && entry["finished_at"].is_null()) {
            by_id.insert(id, entry);
        }
    }
    let mut runs: Vec<Value> = by_id.into_values().collect();
    runs.sort_by(|a, b| b["started_at"].as_str().cmp(&a["started_at"].as_str()));
    runs.truncate(limit);
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_by_run_id_newest_first() {
        let db = vec![
            json!({"run_id": "b", "started_at": "2026-01-02", "status": "succeeded", "finished_at": "x"}),
        ];
        let file = vec![
            json!({"run_id": "a", "started_at": "2026-01-01", "status": "refused", "finished_at": "x"}),
            json!({"run_id": "b", "started_at": "2026-01-02", "status": "running"}),
        ];
        let runs = merge(db, file, 10);
        let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(runs[0]["status"], "succeeded");
    }

    #[test]
    fn a_finished_file_entry_beats_a_stale_running_row() {
        let db = vec![
            json!({"run_id": "b", "started_at": "1", "status": "running", "finished_at": null}),
        ];
        let file = vec![
            json!({"run_id": "b", "started_at": "1", "status": "failed-unchanged", "finished_at": "x"}),
        ];
        assert_eq!(merge(db, file, 10)[0]["status"], "failed-unchanged");
    }
}
