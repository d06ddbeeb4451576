//! `upgrade`: applies the plan under the deploy lock, one engine step at a time
//! (`Snapshot::apply_steps`), each gone on with after a lock stop that left nothing
//! half-done. The context records exactly what each step's report says committed,
//! so the runner never claims "rolled back" for something that was not.

use std::time::Instant;

use super::lock_retry::{Change, LockRetries, Next};
use super::{migrations_count, StageError, StageOutcome};
use crate::db::ledger;
use crate::db::schema_shape::SchemaShape;
use crate::engine::change::ChangeError;
use crate::engine::{ApplyStep, Snapshot};
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    // Even with nothing to apply: "up to date" is answered under the lock, so it is
    // never said while another run is half-way through (or undoing) its deploy.
    super::deploy_lock::hold(ctx).await?;
    super::deploy_lock::hold_tools(ctx).await?;
    crate::interrupt::set_changing(true);
    let result = apply_under_lock(ctx).await;
    ctx.end_changing();
    // Once something committed, an interruption is never "before anything changed".
    crate::interrupt::set_changing(!ctx.committed().is_empty() || ctx.outcome_unknown());
    result
}

async fn apply_under_lock(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let settings = ctx.settings().clone();
    let schema = settings.database.schema.as_str();
    // Nothing to apply runs no Alembic child, so needs no proof of where it connects.
    let snap = ctx.goal_snapshot().await?;
    let snap = match snap.plan().is_empty() {
        true => snap,
        false => ctx.proven_goal_snapshot().await?,
    };
    super::refuse_if_engine_refuses(&snap)?;
    if snap.is_blocked() {
        // Changed since the state check, or seen only now that env.py said where its
        // version table is: nothing was applied.
        let problems = snap.diagnose(ctx.events());
        return Err(StageError::Refused(format!(
            "{problems} problem{} found under the deploy lock (see above; the state changed since the state check, or the version table is where env.py keeps it); nothing was changed, run `ballast status`",
            if problems == 1 { "" } else { "s" }
        )));
    }
    let plan = snap.plan();
    if let Some(previewed) = ctx.plan() {
        if previewed.hash != plan.hash {
            let all_applied_elsewhere = plan.is_empty()
                && previewed
                    .migrations
                    .iter()
                    .all(|m| snap.has_applied(&m.version, &m.checksum));
            if all_applied_elsewhere {
                return Ok(StageOutcome::Skipped(
                    "another run applied this plan while we waited for the lock".into(),
                ));
            }
            return Err(StageError::Refused(format!(
                "the plan changed since the preview (previewed {}, now {}): files or database changed; \
                 nothing was applied, run the deploy again to see the new plan",
                previewed.short_hash(),
                plan.short_hash()
            )));
        }
    }
    if plan.is_empty() {
        return Ok(StageOutcome::Skipped("nothing to apply".into()));
    }
    // The same plan as the preview's (the hashes match), which for Alembic also has
    // the SQL offline mode rendered: keep that one.
    ctx.planned_without_preview(plan);

    ctx.begin_changing().await?;
    ledger::ensure_tables(ctx.conn().await?, schema).await?;
    // Where the recovery ladder must bring the schema back to, if it comes to that.
    ctx.take_schema_before(&snap).await?;
    ctx.mark_changes_started();
    crate::pipeline::journal::mark_running(ctx).await;
    // A migration that adds an enum value commits its batch: a later one may use it.
    // Where the plan (the one the preview showed) says, read once there.
    let cuts: Vec<String> = ctx
        .plan()
        .into_iter()
        .flat_map(|plan| &plan.migrations)
        .filter(|m| m.commits_after.is_some())
        .map(|m| m.version.clone())
        .collect();
    let total = snap.pending_count();
    let started = Instant::now();
    let mut retries = LockRetries::new(ctx, Change::Upgrade);
    for step in snap.apply_steps(&cuts) {
        if crate::interrupt::requested() {
            return Err(StageError::Failed(
                "interrupted by a signal (Ctrl-C or SIGTERM) before the next statement".into(),
            ));
        }
        apply_with_retries(ctx, &snap, &step, &mut retries).await?;
    }
    Ok(StageOutcome::Done(format!(
        "{} applied in {}{}",
        migrations_count(total),
        crate::text::human_duration(started.elapsed().as_millis() as u64),
        retries.said()
    )))
}

/// One step of the upgrade, under the lock-queue guard and gone on with after a lock
/// stop that left nothing half-done ([`LockRetries`]): the same step again when it
/// rolled back whole, the rest of a migration run alone from the statement that
/// stopped, or the rest of the plan read again from the database when whole
/// migrations committed (Alembic with a transaction per revision). Nothing is applied
/// twice, and the blocker may be gone by then.
async fn apply_with_retries(
    ctx: &mut RunContext,
    snap: &Snapshot,
    step: &ApplyStep,
    retries: &mut LockRetries,
) -> Result<(), StageError> {
    let mut step = step.clone();
    let mut replanned: Option<Snapshot> = None;
    // After a replan, the schema the next attempt starts from (what committed before
    // is not that attempt's change).
    let mut shape_now: Option<SchemaShape> = None;
    loop {
        let snap = replanned.as_ref().unwrap_or(snap);
        // A migration run alone can stop half-way: a killed run's journal names it.
        if let Some(label) = step.runs_alone() {
            crate::pipeline::journal::mark_in_progress(ctx, Some(label.to_string())).await;
        }
        let mut run = ctx.run_facts().await?;
        if let (Some(shape), Some(before)) = (&shape_now, run.before.as_mut()) {
            before.shape = shape.clone();
        }
        let guard = retries.guard(ctx, snap.apply_stops_cleanly()).await?;
        let result = snap.apply(&step, ctx.conn().await?, &run).await;
        let seen = retries.seen(guard).await;
        let error = match result {
            Ok(report) => {
                ctx.record_change(report).await;
                if step.runs_alone().is_some() {
                    crate::pipeline::journal::mark_in_progress(ctx, None).await;
                }
                return Ok(());
            }
            Err(error) => error,
        };
        let ChangeError {
            kind,
            message,
            report,
        } = error;
        match retries.after(ctx, &seen, kind, message, &report).await {
            Next::Stop(kind, message) => {
                ctx.record_change(report).await;
                return Err(ctx.stage_error(kind, message));
            }
            Next::Again => {
                let resume = report.stopped_at_statement.clone();
                let committed = report.committed.clone();
                ctx.record_change(report.going_on()).await;
                if let Some(at) = &resume {
                    step = step.resumed_at(at);
                } else if !committed.is_empty() {
                    let fresh = ctx.proven_goal_snapshot().await?;
                    let Some(rest) = rest_of(snap, &fresh, &committed)? else {
                        return Ok(()); // the stop came after the last of them committed
                    };
                    step = rest;
                    replanned = Some(fresh);
                    shape_now = Some(ctx.schema_shape().await?);
                }
            }
        }
    }
}

/// The step that applies what is left of `before`'s plan once `committed` did, read
/// again from the database (`now`): exactly the rest (`None`: nothing is left), or the
/// stage fails (something else moved the database meanwhile).
fn rest_of(
    before: &Snapshot,
    now: &Snapshot,
    committed: &[String],
) -> Result<Option<ApplyStep>, StageError> {
    let left: Vec<String> = before
        .plan()
        .migrations
        .into_iter()
        .map(|m| m.version)
        .filter(|v| !committed.contains(v))
        .collect();
    let pending: Vec<String> = now
        .plan()
        .migrations
        .into_iter()
        .map(|m| m.version)
        .collect();
    let steps = now.apply_steps(&[]);
    match (left == pending, steps.as_slice()) {
        (true, _) if pending.is_empty() => Ok(None),
        (true, [only]) => Ok(Some(only.clone())),
        _ => Err(StageError::Failed(format!(
            "{} committed before a lock stop, and then the database no longer had the rest of the plan pending ({} left, {} pending): something else changed it meanwhile; run `ballast status`",
            committed.join(", "),
            left.join(", "),
            pending.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use crate::migrations::{checksum::checksum, Migration, Version};

    fn m(v: &str, transactional: bool) -> Migration {
        Migration {
            version: Version::parse(v).unwrap(),
            name: "x".into(),
            up_path: "x.sql".into(),
            up_sql: "select 1".into(),
            down_sql: None,
            checksum: checksum("select 1"),
            transactional,
            down_transactional: true,
            phase: crate::migrations::Phase::Pre,
        }
    }

    #[test]
    fn non_transactional_migrations_split_the_batch() {
        let list = [
            m("1", true),
            m("2", true),
            m("3", false),
            m("4", true),
            m("5", false),
        ];
        let shapes: Vec<usize> = crate::migrations::batches(&list, |m| m.transactional)
            .iter()
            .map(|b| b.len())
            .collect();
        assert_eq!(shapes, [2, 1, 1, 1]);
        assert!(!crate::migrations::batches(&list, |m| m.transactional)[1][0].transactional);
    }

    #[test]
    fn all_transactional_is_one_batch() {
        let list = [m("1", true), m("2", true), m("3", true)];
        assert_eq!(
            crate::migrations::batches(&list, |m| m.transactional).len(),
            1
        );
    }
}
