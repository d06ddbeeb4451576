//! `history`: the journal, newest first, from the database when its table exists,
//! else from the JSON lines file in the backup folder.

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
        if let Ok(mut conn) = db::connect(&settings.database, "history").await {
            if let Ok(true) = ledger::table_exists(&mut conn, schema, journal_table::TABLE).await {
                match journal_table::recent(&mut conn, schema, limit as i64).await {
                    Ok(rows) => from_db = Some(rows),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            db::close(conn).await;
        }
    }
    let (runs, source) = match from_db {
        Some(rows) => (rows, format!("{schema}.{}", journal_table::TABLE)),
        None => match crate::journal::read_file(&settings.backup.dir, limit) {
            Ok(rows) => (
                rows,
                settings
                    .backup
                    .dir
                    .join(crate::journal::FILE_NAME)
                    .display()
                    .to_string(),
            ),
            Err(e) => {
                return super::fail(
                    g,
                    &format!("cannot read the journal file: {e}"),
                    exit_code::USAGE,
                )
            }
        },
    };
    if g.json {
        for run in &runs {
            stdout_line(&run.to_string());
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
