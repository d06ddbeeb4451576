//! `check`: the lint (and, with a database, the preflight) for CI and pre-commit.
//! With a reachable database it lints the pending migrations, knowing which tables hold
//! data; without one (or with `--all`) it lints every migration. Writes nothing to the
//! database. Exit 0 when nothing is error-level, 1 otherwise.

use std::collections::BTreeMap;

use crate::cli::{CheckFormat, GlobalArgs};
use crate::config::Settings;
use crate::engine::{self, EngineError};
use crate::lint::{self, Finding, Level};
use crate::migrations::SourceError;
use crate::preflight::{self, Check, Scope, Status};
use crate::report::{print_event, stdout_line};
use crate::storage::Storage;
use crate::{db, exit_code};

pub async fn run(g: &GlobalArgs, format: CheckFormat, all: bool, list_rules: bool) -> i32 {
    let format = if g.json { CheckFormat::Json } else { format };
    if list_rules {
        print_rules(format);
        return exit_code::SUCCESS;
    }
    let settings = match super::load_settings(g) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let outcome = if settings.database.url().is_ok() && !all {
        with_database(&settings).await
    } else {
        without_database(&settings).await
    };
    let (findings, checks) = match outcome {
        Ok(x) => x,
        Err(message) => return super::fail(g, &message, exit_code::USAGE),
    };
    report(format, &findings, &checks);
    if lint::has_errors(&findings) || preflight::failed(&checks) {
        exit_code::FAILED_RESTORED
    } else {
        exit_code::SUCCESS
    }
}

/// Pending migrations, linted with the database's knowledge, and the preflight.
async fn with_database(settings: &Settings) -> Result<(Vec<Finding>, Vec<Check>), String> {
    let mut conn = match db::connect(&settings.database, "check").await {
        Ok(conn) => conn,
        Err(e) => {
            let failed = vec![preflight_failure("connect", e.to_string())];
            return Ok((Vec::new(), failed));
        }
    };
    let result = async {
        let server = db::server_info(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut engine = engine::Engine::open(settings);
        let snap = match engine.snapshot(settings, &mut conn, false).await {
            Ok(snap) => snap,
            // A migration the deploy would refuse to load: lint them all from the files,
            // so that finding comes with every other one, and fail the preflight.
            Err(e @ EngineError::Source(SourceError::TransactionControl { .. })) => {
                let (findings, mut checks) = without_database(settings).await?;
                checks.push(preflight_failure("migrations", e.to_string()));
                return Ok((findings, checks));
            }
            Err(e) => return Err(e.to_string()),
        };
        let plan = snap.plan_with_sql(settings).await;
        let not_linted = not_linted(&plan);
        let inputs = snap.lint_inputs(&plan);
        let facts = lint::facts::gather(&mut conn).await.ok();
        let findings = lint::run(
            &inputs,
            &settings.lint,
            facts.as_ref(),
            Some(&snap.lint_schema(settings)),
        );
        let storage = Storage::open(&settings.backup).await.ok();
        let tables = lint::locks::table_locks(&inputs, &snap.lint_schema(settings));
        let deploy = crate::pipeline::Pipeline::find("deploy", &settings.config_dir).ok();
        let backup = deploy.as_ref().is_none_or(|p| p.takes_backup());
        let restores_on_failure = deploy.as_ref().is_some_and(|p| p.restores_on_failure());
        let checks = preflight::run(
            settings,
            &mut conn,
            &server,
            storage.as_ref(),
            Scope {
                backup,
                restores_on_failure,
                tables: &tables,
                state: &snap,
                rehearse: deploy.as_ref().is_some_and(|p| p.rehearses())
                    || settings.rehearse.before_deploy,
            },
        )
        .await;
        Ok::<_, String>((findings, not_linted.into_iter().chain(checks).collect()))
    }
    .await;
    db::close(conn).await;
    result
}

/// Every migration, linted from the files alone (no database: every existing table is
/// assumed to hold data).
async fn without_database(settings: &Settings) -> Result<(Vec<Finding>, Vec<Check>), String> {
    let snap = engine::Engine::open(settings)
        .files_only(settings)
        .await
        .map_err(|e| e.to_string())?;
    let plan = snap.plan_with_sql(settings).await;
    let (inputs, not_linted) = (snap.lint_inputs(&plan), not_linted(&plan));
    let findings = lint::run(&inputs, &settings.lint, None, Some(settings.lint_schema()));
    Ok((findings, not_linted))
}

/// A warning for each revision offline mode could not render: never skipped in silence.
fn not_linted(plan: &crate::plan::Plan) -> Vec<Check> {
    crate::plan::unrendered(plan)
        .into_iter()
        .map(|detail| Check {
            name: "not linted",
            status: Status::Warning,
            detail,
        })
        .collect()
}

fn preflight_failure(name: &'static str, detail: String) -> Check {
    Check {
        name,
        status: Status::Failed,
        detail,
    }
}

fn report(format: CheckFormat, findings: &[Finding], checks: &[Check]) {
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings.len() - errors;
    match format {
        CheckFormat::Json => {
            for finding in findings {
                print_event("finding", serde_json::json!({ "finding": finding }));
            }
            for check in checks {
                print_event("preflight", serde_json::json!({ "check": check }));
            }
            print_event(
                "check_finished",
                serde_json::json!({
                    "errors": errors,
                    "warnings": warnings,
                    "preflight_failed": preflight::failed(checks),
                }),
            );
        }
        CheckFormat::Github => {
            // GitHub Actions workflow commands: annotations on the pull request's files.
            for f in findings {
                let kind = if f.level == Level::Error {
                    "error"
                } else {
                    "warning"
                };
                stdout_line(&format!(
                    "::{kind} file={},line={},title={}::{} (fix: {})",
                    f.file,
                    f.line,
                    f.rule,
                    escape_github(&f.message),
                    escape_github(&f.fix)
                ));
            }
            for c in checks.iter().filter(|c| c.status != Status::Ok) {
                let kind = if c.status == Status::Failed {
                    "error"
                } else {
                    "warning"
                };
                stdout_line(&format!(
                    "::{kind} title=preflight {}::{}",
                    c.name,
                    escape_github(&c.detail)
                ));
            }
        }
        CheckFormat::Human => {
            let mut by_migration: BTreeMap<(String, String), Vec<&Finding>> = BTreeMap::new();
            let mut order = Vec::new();
            for f in findings {
                let key = (f.migration.clone(), f.file.clone());
                if !by_migration.contains_key(&key) {
                    order.push(key.clone());
                }
                by_migration.entry(key).or_default().push(f);
            }
            for key in &order {
                stdout_line(&format!("{} ({})", key.0, key.1));
                for f in &by_migration[key] {
                    let level = if f.level == Level::Error {
                        "✗ error  "
                    } else {
                        "! warning"
                    };
                    stdout_line(&format!(
                        "  {level} line {:<4} {}  {}",
                        f.line, f.rule, f.message
                    ));
                    stdout_line(&format!("            fix: {}", f.fix));
                }
            }
            if !checks.is_empty() {
                stdout_line("preflight:");
                for c in checks {
                    let mark = match c.status {
                        Status::Ok => "✓",
                        Status::Warning => "!",
                        Status::Failed => "✗",
                    };
                    stdout_line(&format!("  {mark} {:<18} {}", c.name, c.detail));
                }
            }
            stdout_line(&format!(
                "{} error{}, {} warning{}{}",
                errors,
                if errors == 1 { "" } else { "s" },
                warnings,
                if warnings == 1 { "" } else { "s" },
                if preflight::failed(checks) {
                    "; preflight failed"
                } else {
                    ""
                }
            ));
        }
    }
}

/// Workflow commands end at a newline; `%`, CR and LF are escaped.
fn escape_github(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn print_rules(format: CheckFormat) {
    let rules = lint::rules::all();
    for rule in rules {
        let m = rule.meta();
        match format {
            CheckFormat::Json => print_event(
                "rule",
                serde_json::json!({
                    "id": m.id, "category": m.category, "level": m.default_level,
                    "summary": m.summary, "explanation": m.explanation,
                }),
            ),
            _ => stdout_line(&format!(
                "{:<40} {:<12} {:<8} {}",
                m.id,
                format!("{:?}", m.category).to_lowercase(),
                format!("{:?}", m.default_level).to_lowercase(),
                m.summary
            )),
        }
    }
}
