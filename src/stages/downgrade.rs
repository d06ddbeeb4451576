//! `downgrade`: steps the target back, under the deploy lock, to the revision in the
//! stage's `to` or, without one, to where this run found it (the recovery ladder's
//! downgrade rung, and the round-trip test's middle step). Refuses up front when a
//! revision on the way is known not to downgrade.

use super::lock_retry::{Change, LockRetries, Next};
use super::{deploy_lock, StageError, StageOutcome};
use crate::engine::Snapshot;
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext, to: Option<&str>) -> Result<StageOutcome, StageError> {
    if to.is_none() && ctx.start().is_none() {
        return Err(StageError::Refused(
            "no `to` revision and no starting state to go back to (put a state-check first)".into(),
        ));
    }
    deploy_lock::hold(ctx).await?;
    deploy_lock::hold_tools(ctx).await?;
    crate::interrupt::set_changing(true);
    let result = async {
        let snap = ctx.proven_snapshot().await?;
        super::refuse_if_engine_refuses(&snap)?;
        // `-1`, a revision's start: the migration it names, from the state now.
        let to = match to {
            Some(asked) => {
                // `-1` counts from what is applied now: it must be what the run read
                // (and the person confirmed), or it names another migration.
                let read = ctx.start().and_then(Snapshot::current_label);
                let now = snap.current_label();
                if crate::migrations::steps_back(asked).is_some() && read != now {
                    return Err(StageError::Refused(format!(
                        "`{asked}` counts back from the newest applied migration, which changed since the run read it ({} then, {} now); nothing was changed: run again",
                        read.as_deref().unwrap_or("none"),
                        now.as_deref().unwrap_or("none")
                    )));
                }
                let named = snap.resolve_goal(asked).map_err(|e| {
                    StageError::Refused(format!("cannot downgrade: {e}; nothing was changed"))
                })?;
                // A verify after this stage checks the database got there.
                if ctx.upgrade_goal() == Some(asked) {
                    ctx.aim_upgrade(Some(named.clone()));
                }
                Some(named)
            }
            None => None,
        };
        let mut plan = snap
            .undo_plan(to.as_deref(), ctx.start())
            .map_err(|e| StageError::Refused(e.to_string()))?;
        if plan.is_empty() {
            return Ok(StageOutcome::Skipped(plan.already()));
        }
        ctx.begin_changing().await?;
        crate::pipeline::journal::mark_running(ctx).await;
        let mut snap = snap;
        let mut retries = LockRetries::new(ctx, Change::Downgrade);
        loop {
            let run = ctx.run_facts().await?;
            let guard = retries.guard(ctx, snap.undo_stops_cleanly(&plan)).await?;
            let result = snap.undo(&plan, ctx.conn().await?, &run).await;
            let seen = retries.seen(guard).await;
            let mut e = match result {
                Ok((summary, report)) => {
                    ctx.record_change(report).await;
                    return Ok(StageOutcome::Done(format!("{summary}{}", retries.said())));
                }
                Err(e) => e,
            };
            let next = retries.after(ctx, &seen, e.kind, e.message, &e.report).await;
            // Undone versions are not committed work: the report keeps what else
            // the stop left (half-run downs, an unknown COMMIT).
            e.report.committed.clear();
            let stopped_at = e.report.stopped_at_statement.clone();
            match next {
                // A down run alone half-way is finished by the next attempt.
                Next::Again => ctx.record_change(e.report.going_on()).await,
                Next::Stop(..) => ctx.record_change(e.report).await,
            }
            match next {
                Next::Stop(kind, message) => return Err(ctx.stage_error(kind, message)),
                // What was undone before the stop stays undone: plan the rest again.
                Next::Again => {
                    snap = ctx.proven_snapshot().await?;
                    plan = snap
                        .undo_plan(to.as_deref(), ctx.start())
                        .map_err(|e| StageError::Refused(e.to_string()))?;
                    if let Some(at) = &stopped_at {
                        if !plan.resume_at(at) {
                            return Err(StageError::Failed(format!(
                                "the down of {} stopped at statement {} on a lock, and then it was no longer the next to undo: something else changed the database meanwhile; run `ballast status`",
                                at.version,
                                at.statement + 1
                            )));
                        }
                    }
                    if plan.is_empty() {
                        return Ok(StageOutcome::Done(format!(
                            "{}{}",
                            plan.already(),
                            retries.said()
                        )));
                    }
                }
            }
        }
    }
    .await;
    ctx.end_changing();
    // Refusals and skips change nothing; anything else may have. From then on the
    // runner must prove "unchanged" from the ledger rather than assume it (the flag it
    // reads is the upgrade's, but the question is the same), and an interruption is
    // never "before anything changed".
    let may_have_changed = matches!(
        result,
        Ok(StageOutcome::Done(_)) | Err(StageError::Failed(_))
    );
    if may_have_changed {
        ctx.mark_changes_started();
    }
    crate::interrupt::set_changing(
        may_have_changed || !ctx.committed().is_empty() || ctx.outcome_unknown(),
    );
    result
}
