//! `on_failure` hooks: the team's own commands, told what happened.

use super::context::RunContext;
use super::definition::Pipeline;
use super::runner::hook_env;
use crate::events::{Event, RunSummary};
use crate::subprocess::run_shell;

pub async fn run_failure_hooks(pipeline: &Pipeline, ctx: &RunContext, summary: &RunSummary) {
    let env = hook_env(ctx, Some(summary));
    for command in &pipeline.on_failure.hooks {
        let (success, output) = match run_shell(command, &ctx.settings.config_dir, &env).await {
            Ok(out) => (out.success, out.output),
            Err(e) => (false, format!("could not start: {e}")),
        };
        ctx.events.emit(Event::HookFinished {
            command: command.clone(),
            success,
            output,
        });
    }
}
