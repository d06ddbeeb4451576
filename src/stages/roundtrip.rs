//! `roundtrip`: the CI round trip the Alembic guide recommends (upgrade head,
//! downgrade one step, upgrade head), with the schema compared at each step, for a
//! throwaway database where the newest migration is pending:
//!
//! 1. upgrade to the migration before the newest, and take the schema's shape;
//! 2. upgrade the newest, and take the shape again;
//! 3. downgrade it: the shape must equal step 1's, or its down does not undo it;
//! 4. upgrade it again: the shape must equal step 2's, or the up does not survive its
//!    own down (an `IF NOT EXISTS` hiding a leftover, say).
//!
//! Each step is the `upgrade` or `downgrade` stage itself, so the lock, the timeouts
//! and the bookkeeping are the deploy's own.

use super::{downgrade, upgrade, StageError, StageOutcome};
use crate::db::schema_shape::summary;
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let snap = ctx.proven_snapshot().await?;
    super::refuse_if_engine_refuses(&snap)?;
    if snap.is_blocked() {
        return Err(StageError::Refused(
            "the migration state is blocked (see the state check): no round trip".into(),
        ));
    }
    let plan = snap.plan();
    if let Some(previewed) = ctx.plan() {
        if previewed.hash != plan.hash {
            return Err(StageError::Refused(format!(
                "the plan changed since the preview (previewed {}, now {}): run it again",
                previewed.short_hash(),
                plan.short_hash()
            )));
        }
    }
    // Nothing round-trips without a pending newest migration: never "succeeded" then.
    let Some(newest) = plan.migrations.last() else {
        return Err(StageError::Refused(
            "nothing pending, so nothing to round-trip: the round trip needs the newest migration pending (run it on a fresh database, as CI does); nothing was changed".into(),
        ));
    };
    let newest = newest.version.clone();
    // A downgrade that cannot run is known from the files: refuse before upgrading.
    if let Some(problem) = snap.undo_problem(&newest) {
        return Err(StageError::Refused(format!(
            "the newest migration cannot be round-tripped, its downgrade cannot undo it: {problem}; nothing was changed"
        )));
    }
    let newest_label = snap
        .pending_labels()
        .last()
        .cloned()
        .unwrap_or(newest.clone());
    // Where the newest one's downgrade must bring the database: the migration before
    // it, pending or applied, or nothing at all.
    let before_newest = match plan.migrations.len() {
        n if n >= 2 => Some(plan.migrations[n - 2].version.clone()),
        _ => snap.current_version(),
    };

    // The schemas compared are the run's own, the same at every step.
    let scope = ctx.scope_of(&snap).await?;
    ctx.scope_shape_to(scope);
    let events = ctx.events().clone();
    let step = |n: u8, what: &str| {
        events.diagnose(
            crate::events::Severity::Info,
            format!("round trip {n}/4: {what}"),
            None,
        )
    };
    if let Some(before) = before_newest
        .as_deref()
        .filter(|_| plan.migrations.len() >= 2)
    {
        step(
            1,
            &format!("upgrade to {before}, the migration before the newest"),
        );
        upgrade_to(ctx, Some(before)).await?;
    } else {
        step(1, "nothing to apply before the newest");
    }
    let before = ctx.schema_shape().await?;
    step(2, &format!("upgrade {newest_label}"));
    upgrade_to(ctx, Some(&newest)).await?;
    let after = ctx.schema_shape().await?;
    step(3, &format!("downgrade {newest_label}"));
    ctx.forget_plan();
    let back_to = before_newest.clone().unwrap_or_else(|| "base".into());
    downgrade::run(ctx, Some(&back_to)).await?;
    let differences = ctx.schema_shape().await?.differences(&before);
    if !differences.is_empty() {
        return Err(StageError::Failed(format!(
            "the downgrade of {newest_label} does not undo its upgrade; the schema differs from before it: {}",
            summary(&differences)
        )));
    }
    step(4, &format!("upgrade {newest_label} again"));
    upgrade_to(ctx, Some(&newest)).await?;
    let differences = ctx.schema_shape().await?.differences(&after);
    if !differences.is_empty() {
        return Err(StageError::Failed(format!(
            "{newest_label} upgraded again does not give the schema of its first upgrade: {}",
            summary(&differences)
        )));
    }
    Ok(StageOutcome::Done(format!(
        "{newest_label}: upgrade, downgrade, upgrade; its downgrade restored the schema exactly and its upgrade gave the same schema twice"
    )))
}

/// One upgrade step, aimed at `to`, as the `upgrade` stage runs it.
async fn upgrade_to(ctx: &mut RunContext, to: Option<&str>) -> Result<(), StageError> {
    let goal = ctx.aim_upgrade(to.map(str::to_string));
    ctx.forget_plan();
    let result = upgrade::run(ctx).await;
    ctx.aim_upgrade(goal);
    match result? {
        StageOutcome::Done(_) => Ok(()),
        StageOutcome::Skipped(why) => Err(StageError::Failed(format!(
            "the round trip's upgrade to {} did nothing: {why}",
            to.unwrap_or("the head")
        ))),
    }
}
