//! `preview`: the pending migrations, their SQL, and the plan hash that pins them.

use super::{migrations_count, StageError, StageOutcome};
use crate::events::Event;
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let snap = ctx.snapshot().await?;
    let plan = snap.plan_with_sql(&ctx.settings).await;
    ctx.events.emit(Event::Plan { plan: plan.clone() });
    let summary = if plan.is_empty() {
        "nothing pending".to_string()
    } else {
        format!(
            "{} to apply, plan {}",
            migrations_count(plan.migrations.len()),
            plan.short_hash()
        )
    };
    ctx.plan = Some(plan);
    Ok(StageOutcome::Done(summary))
}
