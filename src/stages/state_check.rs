//! `state-check`: compares the migration files with the ledger and says, in words a
//! person can act on, anything that must be resolved before a deploy.

use super::{migrations_count, StageError, StageOutcome};
use crate::engine::Snapshot;
use crate::events::{Event, Events, Severity};
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    // A run killed mid-way is reported (and its debris dealt with) before anything.
    crate::resume::check(ctx).await?;
    let whole = ctx.snapshot().await?;
    // What this run's phase runs (`--phase pre` holds the contract step back), refused
    // (after the state is shown) when the contract step cannot be held back.
    let phased = ctx.phased(whole.clone());
    let blockers = report_phased(ctx.events(), &whole, &phased);
    let snap = phased?;
    // A rollback refused for a reason the state already shows is refused now, before
    // the pipeline's backup.
    if let Some((crate::pipeline::StageKind::Downgrade, Some(to))) = ctx.first_change() {
        if let Some(refusal) = snap.undo_refusal(to) {
            return Err(StageError::Refused(refusal));
        }
    }
    let pending = snap.pending_count();
    let mut preflight_note = String::new();
    if pending > 0 && blockers == 0 {
        let failed = run_preflight(ctx, &snap).await?;
        if failed > 0 {
            return Err(StageError::Refused(format!(
                "{failed} preflight check{} failed (see above); nothing was changed",
                if failed == 1 { "" } else { "s" }
            )));
        }
        preflight_note = "; preflight passed".into();
    }
    if blockers > 0 {
        return Err(StageError::Refused(format!(
            "{blockers} problem{} must be resolved before deploying (see above)",
            if blockers == 1 { "" } else { "s" }
        )));
    }
    Ok(StageOutcome::Done(format!(
        "{} pending{preflight_note}",
        migrations_count(pending)
    )))
}

/// The preflight before anything runs: reports what is not right; returns how many
/// checks failed.
async fn run_preflight(ctx: &mut RunContext, snap: &Snapshot) -> Result<usize, StageError> {
    let settings = ctx.settings().clone();
    let server = ctx.server().await?;
    let storage = if ctx.takes_backup() {
        Some(ctx.storage().await?)
    } else {
        None
    };
    // Sessions in the way of the plan's locks matter only to a run that changes the
    // target (a rehearsal runs the plan on its copy).
    let tables = match ctx.first_change() {
        Some(_) => crate::lint::locks::table_locks(
            &snap.lint_inputs(&snap.plan()),
            &snap.lint_schema(&settings),
        ),
        None => Vec::new(),
    };
    let scope = crate::preflight::Scope {
        backup: ctx.takes_backup(),
        restores_on_failure: ctx.restores_on_failure(),
        tables: &tables,
        state: snap,
        rehearse: ctx.rehearses(),
    };
    let checks = crate::preflight::run(
        &settings,
        ctx.conn().await?,
        &server,
        storage.as_ref(),
        scope,
    )
    .await;
    let mut failed = 0;
    for check in checks {
        let severity = match check.status {
            crate::preflight::Status::Ok => continue,
            crate::preflight::Status::Warning => Severity::Warning,
            crate::preflight::Status::Failed => {
                failed += 1;
                Severity::Error
            }
        };
        ctx.events().diagnose(
            severity,
            format!("preflight {}: {}", check.name, check.detail),
            None,
        );
    }
    Ok(failed)
}

/// Shows the state a run of one phase works on (`phased`: the whole state cut to the
/// phase, or why it could not be), then diagnoses the whole state; returns how many
/// blockers it found.
pub fn report_phased<E>(events: &Events, whole: &Snapshot, phased: &Result<Snapshot, E>) -> usize {
    report_state(events, phased.as_ref().unwrap_or(whole));
    whole.diagnose(events)
}

fn report_state(events: &Events, snap: &Snapshot) {
    events.emit(Event::State {
        current: snap.current_label(),
        target: snap.aim_label(),
        applied: snap.applied_count(),
        pending: snap.pending_count(),
        pending_migrations: snap.pending_labels(),
        pending_post: snap.pending_post_labels(),
        held_back: snap.held_back_labels(),
    });
    if let Some((reading, worth_saying)) = snap.reading() {
        let severity = match worth_saying {
            true => Severity::Info,
            false => Severity::Detail,
        };
        events.diagnose(severity, reading, None);
    }
    for note in snap.notes() {
        events.diagnose(Severity::Detail, note, None);
    }
}
