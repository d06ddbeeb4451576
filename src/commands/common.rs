//! What every command shares: loading settings, choosing a reporter, reporting an
//! error that ends a command before any pipeline ran.

use crate::cli::GlobalArgs;
use crate::config::{self, LoadOptions, Settings};
use crate::events::Events;
use crate::exit_code;
use crate::report::{stdout_line, HumanReporter, JsonReporter, Verbosity};

pub(crate) fn verbosity(g: &GlobalArgs) -> Verbosity {
    match (g.quiet, g.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

pub(crate) fn events(g: &GlobalArgs, full_sql: bool) -> Events {
    if g.json {
        Events::new(JsonReporter::new())
    } else {
        Events::new(HumanReporter::new(
            verbosity(g),
            full_sql,
            g.progress_interval,
        ))
    }
}

pub(crate) fn load_settings(g: &GlobalArgs) -> Result<Settings, i32> {
    let mut options = LoadOptions::from_process(g.config.clone(), g.env.clone(), g.set.clone());
    options.target = match (&g.targets, &g.target) {
        (Some(file), Some(name)) => Some((file.clone(), name.clone())),
        _ => None,
    };
    config::load(&options).map_err(|e| fail(g, &e.to_string(), exit_code::USAGE))
}

/// Reports an error that ends a command before any pipeline ran; returns `code`.
pub(crate) fn fail(g: &GlobalArgs, message: &str, code: i32) -> i32 {
    if g.json {
        let line = serde_json::json!({ "event": "error", "message": message, "exit_code": code });
        stdout_line(&JsonReporter::new().line(&line.to_string()));
    } else {
        crate::report::stderr_line(&format!("ballast: error: {message}"));
    }
    code
}
