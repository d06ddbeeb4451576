//! One function per command; each returns the process exit code.

mod demo;
mod history;
mod inspect;
mod pipeline_run;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::{self, LoadOptions, Settings};
use crate::events::Events;
use crate::exit_code;
use crate::report::{stdout_line, HumanReporter, JsonReporter, Verbosity};

pub async fn run(cli: Cli) -> i32 {
    crate::interrupt::install();
    let g = &cli.global;
    match &cli.command {
        Command::Deploy => pipeline_run::run(g, "deploy").await,
        Command::Run { name } => pipeline_run::run(g, name).await,
        Command::Backup => pipeline_run::run(g, "backup").await,
        Command::Status => inspect::status(g).await,
        Command::Plan { full } => inspect::plan(g, *full).await,
        Command::History { limit } => history::run(g, *limit).await,
        Command::Demo { dir, keep } => demo::run(g, dir, *keep).await,
    }
}

pub(crate) fn verbosity(g: &GlobalArgs) -> Verbosity {
    match (g.quiet, g.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

pub(crate) fn events(g: &GlobalArgs, full_sql: bool) -> Events {
    if g.json {
        Events::new(JsonReporter)
    } else {
        Events::new(HumanReporter::new(verbosity(g), full_sql))
    }
}

pub(crate) fn load_settings(g: &GlobalArgs) -> Result<Settings, i32> {
    config::load(&LoadOptions::from_process(g.config.clone(), g.env.clone()))
        .map_err(|e| fail(g, &e.to_string(), exit_code::USAGE))
}

/// Reports an error that ends a command before any pipeline ran; returns `code`.
pub(crate) fn fail(g: &GlobalArgs, message: &str, code: i32) -> i32 {
    if g.json {
        let line = serde_json::json!({ "event": "error", "message": message, "exit_code": code });
        stdout_line(&line.to_string());
    } else {
        crate::report::stderr_line(&format!("ballast: error: {message}"));
    }
    code
}
