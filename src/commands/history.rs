//! `history`: the journal of this database, newest first: the table (when it exists
//! and the database answers) and the JSON lines file merged, so runs that never
//! reached the database (refused early, database down) are shown too. `--run ID`
//! shows one run's closing report again.

use serde_json::Value;

use crate::cli::GlobalArgs;
use crate::db::{self, journal_table, ledger};
use crate::events::{Event, Reporter, RunSummary, StageRecord};
use crate::exit_code;
use crate::report::human::stage_table;
use crate::report::{stdout_line, HumanReporter};
use crate::text::human_duration;

pub async fn run(g: &GlobalArgs, limit: usize, run_id: Option<&str>) -> i32 {
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
                    .join(crate::pipeline::journal::FILE_NAME)
                    .display()
            ));
        }
        if let Ok(mut conn) = connected {
            if let Ok(true) = ledger::table_exists(&mut conn, schema, journal_table::TABLE).await {
                // One run is looked for among them all.
                let rows = if run_id.is_some() {
                    i64::MAX
                } else {
                    limit as i64
                };
                match journal_table::recent(&mut conn, schema, rows).await {
                    Ok(rows) => from_db = Some(rows),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            db::close(conn).await;
        }
    }
    let file = settings
        .backup
        .dir
        .join(crate::pipeline::journal::FILE_NAME);
    let from_file = match crate::pipeline::journal::read_file(&settings.backup.dir, usize::MAX) {
        // A backup folder shared by several databases holds all their runs.
        Ok(rows) => rows
            .into_iter()
            .filter(|run| {
                run["target"]
                    .as_str()
                    .is_none_or(|t| settings.database.same_database(t))
                    && run["schema"].as_str().is_none_or(|s| s == schema)
            })
            .collect(),
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
    if let Some(id) = run_id {
        let runs = merge(from_db.unwrap_or_default(), from_file, usize::MAX);
        return show_one(g, &runs, id, &source);
    }
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
    // A run that left the database for a human to look at points at its own account.
    let detail = if run["exit_code"].as_i64() == Some(exit_code::NOT_RECOVERED as i64) {
        format!(
            "NOT recovered, what to do: ballast history --run {} · {detail}",
            text("run_id").chars().take(8).collect::<String>()
        )
    } else {
        detail
    };
    format!(
        "{started:<26} {:<9} {:<22} {time:>8}  {version:<24} {detail}",
        text("pipeline"),
        text("status")
    )
}

/// `history --run ID`: the run whose id starts with `id`, as its closing report.
fn show_one(g: &GlobalArgs, runs: &[Value], id: &str, source: &str) -> i32 {
    let found: Vec<&Value> = runs
        .iter()
        .filter(|r| r["run_id"].as_str().is_some_and(|r| r.starts_with(id)))
        .collect();
    let run = match found.as_slice() {
        [run] => *run,
        [] => {
            return super::fail(
                g,
                &format!(
                    "no run {id} in {source}; `ballast history` lists the runs of this database"
                ),
                exit_code::USAGE,
            )
        }
        many => {
            let ids: Vec<&str> = many.iter().filter_map(|r| r["run_id"].as_str()).collect();
            return super::fail(
                g,
                &format!(
                    "{} runs start with {id} ({}): give more of the id",
                    many.len(),
                    ids.join(", ")
                ),
                exit_code::USAGE,
            );
        }
    };
    if g.json {
        crate::report::print_event("run", run.clone());
        return exit_code::SUCCESS;
    }
    let text = |key: &str| run[key].as_str().unwrap_or("?").to_string();
    stdout_line(&format!(
        "run {} · {} · {} (schema {})",
        text("run_id"),
        text("pipeline"),
        text("target"),
        text("schema")
    ));
    let finished = run["finished_at"]
        .as_str()
        .map(|t| format!("finished {t}"))
        .unwrap_or_else(|| "never finished".into());
    stdout_line(&format!("started {} · {finished}", text("started_at")));
    // A finished run (recorded whole since the journal kept the summary): its report.
    if let Ok(summary) = serde_json::from_value::<RunSummary>(run.clone()) {
        HumanReporter::new(super::common::verbosity(g), false, g.progress_interval)
            .report(&Event::RunFinished(summary));
        return exit_code::SUCCESS;
    }
    // Running, killed, or written by an older ballast: what the journal has.
    let stages: Vec<StageRecord> =
        serde_json::from_value(run["stages"].clone()).unwrap_or_default();
    stdout_line("");
    for line in stage_table(&stages, None) {
        stdout_line(&line);
    }
    stdout_line("");
    stdout_line(&format!("status: {}", text("status")));
    if let Some(label) = run["in_progress"].as_str() {
        stdout_line(&format!(
            "  in the middle of the no-transaction migration {label}"
        ));
    }
    if run["status"] == "running" {
        stdout_line("  if no ballast runs now, it was killed: the next run of ballast reports what it left, and `ballast status` shows where the database is");
    }
    exit_code::SUCCESS
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
