//! `shell`: a command of the team's own as a stage (smoke tests, cache flushes).

use super::{StageError, StageOutcome};
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext, command: &str) -> Result<StageOutcome, StageError> {
    let env = crate::pipeline::runner::hook_env(ctx, None);
    let result = crate::subprocess::run_shell(command, &ctx.settings.config_dir, &env, None).await;
    match result {
        Ok(out) if out.success => Ok(StageOutcome::Done(format!("`{command}` succeeded"))),
        Ok(out) => Err(StageError::Failed(format!(
            "`{command}` failed ({}): {}",
            out.status,
            out.tail()
        ))),
        Err(e) => Err(StageError::Failed(format!(
            "`{command}` could not start: {e}"
        ))),
    }
}
