//! Hooks: the team's own commands, told what happened. `[on_failure] hooks` run when
//! a run did not succeed, `[notify] hooks` after every run. Each gets the run's facts
//! as `BALLAST_*` variables and the run's summary on stdin (one JSON object: the
//! fields of the `run_finished` event, docs/json-events.md). A hook's failure is reported, never changes
//! the run's outcome.

use crate::events::{Event, Outcome, RunSummary};
use crate::pipeline::{Pipeline, RunContext};
use crate::subprocess::run_shell;

/// Runs the hooks the outcome calls for: the failure hooks first, then the notify hooks.
pub async fn run_hooks(pipeline: &Pipeline, ctx: &RunContext, summary: &RunSummary) {
    let mut commands: Vec<&String> = Vec::new();
    if summary.outcome != Outcome::Succeeded {
        commands.extend(&pipeline.on_failure.hooks);
    }
    commands.extend(&pipeline.notify.hooks);
    if commands.is_empty() {
        return;
    }
    let env = ctx.hook_env(Some(summary));
    let stdin = serde_json::to_vec(summary).unwrap_or_default();
    for command in commands {
        let ran = run_shell(
            command,
            &ctx.settings().config_dir,
            &env,
            Some(stdin.clone()),
            crate::subprocess::Limits::HOOK,
        )
        .await;
        let (success, output) = match ran {
            Ok(out) => (out.success, out.output),
            Err(e) => (false, format!("could not start: {e}")),
        };
        ctx.events().emit(Event::HookFinished {
            command: command.clone(),
            success,
            output,
        });
    }
}
