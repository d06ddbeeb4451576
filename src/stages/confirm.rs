//! `confirm`: a person says yes, or the run stops. Never a silent yes.

use super::{migrations_count, StageError, StageOutcome};
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let pending = ctx.plan.as_ref().map(|p| p.migrations.len());
    if pending == Some(0) {
        return Ok(StageOutcome::Skipped("nothing to apply".into()));
    }
    if ctx.options.assume_yes {
        return Ok(StageOutcome::Done("confirmed by --yes".into()));
    }
    if !crate::report::interactive() {
        return Err(StageError::NotConfirmed(
            "no terminal to ask for confirmation; pass --yes to run unattended".into(),
        ));
    }
    let server = ctx.server().await?;
    let current = ctx
        .start
        .as_ref()
        .and_then(|s| s.current_label())
        .unwrap_or_else(|| "none".into());
    let target = ctx
        .plan
        .as_ref()
        .and_then(|p| p.target())
        .map(|m| format!("{}_{}", m.version, m.name))
        .unwrap_or_else(|| "head".into());
    let prompt = format!(
        "Deploy to database {} on {} (server {}): {} → {}, {}?",
        server.database,
        server.host,
        server.server_version,
        current,
        target,
        pending
            .map(migrations_count)
            .unwrap_or_else(|| "all pending migrations".into()),
    );
    // dialoguer blocks; keep it off the async runtime's threads.
    let answer = tokio::task::spawn_blocking(move || {
        dialoguer::Confirm::new()
            .with_prompt(prompt)
            .default(false)
            .interact_opt()
    })
    .await
    .map_err(|e| StageError::Failed(format!("confirmation prompt: {e}")))?
    .map_err(|e| StageError::NotConfirmed(format!("confirmation prompt failed: {e}")))?;
    match answer {
        Some(true) => Ok(StageOutcome::Done("confirmed".into())),
        _ => Err(StageError::NotConfirmed("not confirmed".into())),
    }
}
