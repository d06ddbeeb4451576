//! `--targets FILE`: the pipeline on every target of the file, each in a ballast
//! process of its own (its own deploy lock, journal, signals and recovery, exactly as a
//! single run), at most `--parallel` at once. Their output is passed through with the
//! target's name in front (`[acme] ...`, or a `"target"` field with `--json`), and the
//! run ends with a table: target, outcome, revision before and after, backup, time.
//!
//! After a failure no further target starts unless `--keep-going`; the ones running
//! finish. The exit code is the worst of the targets' (4, then 1, then 2, then 3).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use crate::cli::GlobalArgs;
use crate::config::targets::{self, Target};
use crate::exit_code;
use crate::report::{stderr_line, stdout_line, JsonReporter};

/// How one target's run ended.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    target: String,
    /// `succeeded`, `failed-unchanged`, `refused`, `failed-not-recovered`, `error` (the
    /// run ended before its pipeline: bad config), or `not-started`.
    outcome: String,
    exit_code: Option<i32>,
    start_version: Option<String>,
    end_version: Option<String>,
    backup: Option<String>,
    duration_ms: u64,
    /// Why, when it did not succeed.
    error: Option<String>,
}

pub async fn run_all(g: &GlobalArgs, file: &Path) -> i32 {
    let mut targets = match targets::read(file) {
        Ok(t) => t,
        Err(e) => return super::fail(g, &e.to_string(), exit_code::USAGE),
    };
    if let Some((index, count)) = g.shard {
        targets = targets
            .into_iter()
            .enumerate()
            .filter(|(n, _)| n % count == index)
            .map(|(_, t)| t)
            .collect();
        if targets.is_empty() {
            if !g.json {
                stdout_line(&format!(
                    "share {index}/{count} of {}: no targets",
                    file.display()
                ));
            }
            return exit_code::SUCCESS;
        }
    }
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            return super::fail(
                g,
                &format!("cannot find ballast's own binary to run the targets: {e}"),
                exit_code::USAGE,
            )
        }
    };
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            return super::fail(
                g,
                &format!("cannot make a scratch folder: {e}"),
                exit_code::USAGE,
            )
        }
    };
    crate::interrupt::set_runs_mode();
    let plan = FanOut {
        program,
        args: std::env::args_os().skip(1).collect(),
        scratch: scratch.path().to_path_buf(),
        json: g.json,
        parallel: g.parallel as usize,
        keep_going: g.keep_going,
    };
    let rows = match tokio::task::spawn_blocking(move || plan.run(targets)).await {
        Ok(rows) => rows,
        Err(e) => {
            return super::fail(
                g,
                &format!("the targets' runner failed: {e}"),
                exit_code::NOT_RECOVERED,
            )
        }
    };
    report(g, &rows);
    worst(&rows)
}

/// What every target's process is started with.
struct FanOut {
    program: PathBuf,
    /// ballast's own arguments, passed on; each run adds `--target NAME`.
    args: Vec<std::ffi::OsString>,
    scratch: PathBuf,
    json: bool,
    parallel: usize,
    keep_going: bool,
}

impl FanOut {
    fn run(&self, targets: Vec<Target>) -> Vec<Row> {
        let queue = Mutex::new(
            targets
                .iter()
                .map(|t| t.name.clone())
                .collect::<VecDeque<_>>(),
        );
        let rows: Mutex<Vec<Row>> = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..self.parallel.min(targets.len()) {
                scope.spawn(|| loop {
                    let Some(name) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
                    else {
                        return;
                    };
                    let row = if stop.load(Ordering::SeqCst) || crate::interrupt::signalled() {
                        not_started(&name, crate::interrupt::signalled())
                    } else {
                        self.run_one(&name)
                    };
                    if row.outcome != "succeeded" && !self.keep_going {
                        stop.store(true, Ordering::SeqCst);
                    }
                    rows.lock().unwrap_or_else(|e| e.into_inner()).push(row);
                });
            }
        });
        let mut rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
        // In the file's order.
        rows.sort_by_key(|r| targets.iter().position(|t| t.name == r.target));
        rows
    }

    /// One target's run, start to end, on this thread (its process dies with it).
    fn run_one(&self, name: &str) -> Row {
        let started = Instant::now();
        let summary_file = self.scratch.join(format!("{name}.json"));
        let mut command = Command::new(&self.program);
        // Before ballast's own arguments: clap checks a global flag's `requires` only
        // among the flags on the same side of the subcommand.
        command
            .arg("--target")
            .arg(name)
            .arg("--summary-file")
            .arg(&summary_file)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::children::prepare(&mut command);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => return failed_to_start(name, &e.to_string(), started),
        };
        crate::interrupt::track_run(child.id());
        let stderr = child.stderr.take();
        let prefix = format!("[{name}] ");
        let status = std::thread::scope(|scope| {
            if let Some(stderr) = stderr {
                let prefix = prefix.clone();
                scope.spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        stderr_line(&format!("{prefix}{line}"));
                    }
                });
            }
            if let Some(stdout) = child.stdout.take() {
                let tagged = JsonReporter::for_target(name);
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    stdout_line(&self.pass_on(&line, &prefix, &tagged));
                }
            }
            child.wait()
        });
        crate::interrupt::untrack_run(child.id());
        let code = status.ok().and_then(|s| s.code());
        let summary: Option<Value> = std::fs::read(&summary_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        match summary {
            Some(s) => Row {
                target: name.to_string(),
                outcome: s["outcome"].as_str().unwrap_or("?").to_string(),
                exit_code: code,
                start_version: s["start_version"].as_str().map(str::to_string),
                end_version: s["end_version"].as_str().map(str::to_string),
                backup: s["backup"].as_str().map(str::to_string),
                duration_ms: started.elapsed().as_millis() as u64,
                error: s["error"].as_str().map(str::to_string),
            },
            // It ended before its pipeline ran (its config, its URL): its output says why.
            None => Row {
                target: name.to_string(),
                outcome: "error".into(),
                exit_code: code,
                start_version: None,
                end_version: None,
                backup: None,
                duration_ms: started.elapsed().as_millis() as u64,
                error: Some(match code {
                    Some(code) => format!(
                        "ended with exit {code} before its pipeline ran (see its lines above)"
                    ),
                    None => "ended by a signal".into(),
                }),
            },
        }
    }

    /// A line of a target's stdout, marked as that target's.
    fn pass_on(&self, line: &str, prefix: &str, tagged: &JsonReporter) -> String {
        if !self.json {
            return format!("{prefix}{line}");
        }
        // `{"v":1,...}` → `{"v":1,"target_name":"acme",...}`.
        let version = format!("{{\"v\":{},", crate::report::json::SCHEMA_VERSION);
        match line.strip_prefix(&version) {
            Some(rest) => tagged.line(&format!("{{{rest}")),
            None => line.to_string(),
        }
    }
}

fn not_started(name: &str, interrupted: bool) -> Row {
    Row {
        target: name.to_string(),
        outcome: "not-started".into(),
        exit_code: None,
        start_version: None,
        end_version: None,
        backup: None,
        duration_ms: 0,
        error: Some(if interrupted {
            "not started: interrupted".into()
        } else {
            "not started: an earlier target failed (--keep-going runs the others anyway)".into()
        }),
    }
}

fn failed_to_start(name: &str, why: &str, started: Instant) -> Row {
    Row {
        outcome: "error".into(),
        error: Some(format!("could not start its run: {why}")),
        duration_ms: started.elapsed().as_millis() as u64,
        ..not_started(name, false)
    }
}

/// The worst exit code: a target not recovered, then failed, then a usage error,
/// then refused or not started.
fn worst(rows: &[Row]) -> i32 {
    let code = |r: &Row| match (r.outcome.as_str(), r.exit_code) {
        ("succeeded", _) => exit_code::SUCCESS,
        ("not-started", _) => exit_code::REFUSED,
        (_, Some(code)) => code,
        (_, None) => exit_code::NOT_RECOVERED,
    };
    let rank = |c: i32| match c {
        exit_code::NOT_RECOVERED => 4,
        exit_code::FAILED_RESTORED => 3,
        exit_code::USAGE => 2,
        exit_code::REFUSED => 1,
        exit_code::SUCCESS => 0,
        _ => 4,
    };
    rows.iter()
        .map(code)
        .max_by_key(|c| rank(*c))
        .unwrap_or(exit_code::SUCCESS)
}

/// The closing table, or one `targets_finished` JSON line.
fn report(g: &GlobalArgs, rows: &[Row]) {
    if g.json {
        crate::report::print_event(
            "targets_finished",
            serde_json::json!({ "targets": rows, "exit_code": worst(rows) }),
        );
        return;
    }
    let width = rows
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(6)
        .max(6);
    stdout_line("");
    stdout_line(&format!(
        "{:<width$}  {:<20}  {:<32}  {:>8}  backup",
        "target", "outcome", "revision", "time"
    ));
    for r in rows {
        let revision = match (&r.start_version, &r.end_version) {
            (_, _) if r.outcome == "not-started" || r.outcome == "error" => "-".to_string(),
            (a, b) if a == b => a.clone().unwrap_or_else(|| "none".into()),
            (a, b) => format!(
                "{} → {}",
                a.as_deref().unwrap_or("none"),
                b.as_deref().unwrap_or("none")
            ),
        };
        let backup = r
            .backup
            .as_deref()
            .map(|b| b.rsplit('/').next().unwrap_or(b).to_string())
            .unwrap_or_else(|| "-".into());
        stdout_line(&format!(
            "{:<width$}  {:<20}  {:<32}  {:>8}  {backup}",
            r.target,
            r.outcome,
            revision,
            crate::text::human_duration(r.duration_ms),
        ));
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| r.outcome != "succeeded").collect();
    if failed.is_empty() {
        stdout_line(&format!("✓ all {} targets succeeded", rows.len()));
    } else {
        stdout_line(&format!(
            "✗ {} of {} targets did not succeed: {}",
            failed.len(),
            rows.len(),
            failed
                .iter()
                .map(|r| r.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for r in failed {
            if let Some(error) = &r.error {
                stdout_line(&format!("  {}: {error}", r.target));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: &str, code: Option<i32>) -> Row {
        Row {
            target: "t".into(),
            outcome: outcome.into(),
            exit_code: code,
            start_version: None,
            end_version: None,
            backup: None,
            duration_ms: 0,
            error: None,
        }
    }

    #[test]
    fn the_exit_code_is_the_worst_targets() {
        assert_eq!(
            worst(&[row("succeeded", Some(0)), row("succeeded", Some(0))]),
            0
        );
        assert_eq!(
            worst(&[row("succeeded", Some(0)), row("not-started", None)]),
            3
        );
        assert_eq!(
            worst(&[
                row("refused", Some(3)),
                row("failed-unchanged", Some(1)),
                row("error", Some(2))
            ]),
            1
        );
        assert_eq!(
            worst(&[
                row("failed-unchanged", Some(1)),
                row("failed-not-recovered", Some(4))
            ]),
            4
        );
        assert_eq!(
            worst(&[row("error", None)]),
            4,
            "killed by a signal: unknown, the worst"
        );
    }
}
