//! `shell`: a command of the team's own as a stage (smoke tests, cache flushes). Its
//! output is shown (the last lines), it is killed at its `timeout`, and a Ctrl-C or
//! SIGTERM stops it at once rather than after it ends.

use super::{StageError, StageOutcome};
use crate::events::Severity;
use crate::pipeline::{RunContext, StageSpec};
use crate::subprocess::{run_shell, Limits};

/// How many of the command's last output lines the report shows.
const SHOWN_LINES: usize = 20;

pub async fn run(ctx: &mut RunContext, spec: &StageSpec) -> Result<StageOutcome, StageError> {
    let command = spec.command.as_deref().unwrap_or_default();
    let env = ctx.hook_env(None);
    let limits = Limits {
        timeout: spec.shell_timeout(),
        stop_on_interrupt: true,
    };
    let result = run_shell(command, &ctx.settings().config_dir, &env, None, limits).await;
    let out =
        result.map_err(|e| StageError::Failed(format!("`{command}` could not start: {e}")))?;
    let lines: Vec<&str> = out.output.lines().collect();
    if lines.len() > SHOWN_LINES {
        ctx.events().diagnose(
            Severity::Info,
            format!("| … {} earlier lines", lines.len() - SHOWN_LINES),
            None,
        );
    }
    for line in &lines[lines.len().saturating_sub(SHOWN_LINES)..] {
        ctx.events()
            .diagnose(Severity::Info, format!("| {line}"), None);
    }
    if out.success {
        Ok(StageOutcome::Done(format!("`{command}` succeeded")))
    } else {
        let tail = out.tail();
        Err(StageError::Failed(if tail.is_empty() {
            format!("`{command}` failed ({})", out.status)
        } else {
            format!("`{command}` failed ({}): {tail}", out.status)
        }))
    }
}
