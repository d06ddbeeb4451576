//! The one runner: stages in order, then an honest account of what happened.
//!
//! When a stage fails, the runner works out what the run changed from facts, not
//! hopes: what the context says committed, and a fresh read of the ledger compared
//! with the run's starting state. Only then does it say "nothing changed" (exit 1);
//! anything else is "NOT recovered" (exit 4) with the steps to finish by hand.

use std::time::Instant;

use super::hooks::run_hooks;
use super::recovery;
use crate::engine::Snapshot;
use crate::events::{Event, Outcome, RunSummary, StageRecord};
use crate::exit_code;
use crate::pipeline::{Pipeline, RunContext};
use crate::stages::{self, StageError};

struct Failure {
    stage: String,
    error: StageError,
}

pub async fn run(pipeline: &Pipeline, ctx: &mut RunContext) -> RunSummary {
    let started = Instant::now();
    ctx.set_course(pipeline);
    ctx.events().emit(Event::RunStarted {
        run_id: ctx.run_id().to_string(),
        pipeline: pipeline.name.clone(),
        target: ctx.settings().database.display_url(),
        schema: ctx.settings().database.schema.clone(),
    });
    let mut records = Vec::new();
    let mut failure = None;
    let stages = if pipeline.confirms_before_changing() || ctx.options().assume_yes {
        pipeline.stages.as_slice()
    } else {
        // Never a silent yes: a pipeline that changes the database without asking
        // needs --yes said out loud.
        let error = StageError::NotConfirmed(format!(
            "pipeline {} changes the database and has no confirm stage before its upgrade; pass --yes to run it",
            pipeline.name
        ));
        ctx.events().emit(Event::StageFailed {
            stage: "start".into(),
            duration_ms: 0,
            error: error.to_string(),
        });
        failure = Some(Failure {
            stage: "start".into(),
            error,
        });
        &[]
    };
    for spec in stages {
        let stage = spec.display_name();
        // A signal between stages: do not start the next one.
        if crate::interrupt::requested() {
            let error = interrupted(ctx);
            ctx.events().emit(Event::StageFailed {
                stage: stage.clone(),
                duration_ms: 0,
                error: error.to_string(),
            });
            failure = Some(Failure { stage, error });
            break;
        }
        ctx.events().emit(Event::StageStarted {
            stage: stage.clone(),
        });
        crate::interrupt::set_activity(format!("running the {stage} stage"));
        crate::faults::pause(&format!("stage:{stage}"));
        let t = Instant::now();
        let result = match stages::run(spec, ctx).await {
            // A signal came while the stage changed the database: stop here, so the
            // ladder starts from what this stage did, not from what the next one does.
            Ok(_) if crate::interrupt::requested() => Err(interrupted(ctx)),
            other => other,
        };
        super::record::record_stage(ctx, &mut records, &stage, t, &result);
        if ctx.changes_started() {
            crate::pipeline::journal::sync_table(ctx).await;
        }
        if let Err(error) = result {
            failure = Some(Failure { stage, error });
            break;
        }
    }
    let mut summary = conclude(pipeline, ctx, failure, records).await;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    crate::pipeline::journal::finish(ctx, &summary).await;
    ctx.release_deploy_lock().await;
    run_hooks(pipeline, ctx, &summary).await;
    ctx.events().emit(Event::RunFinished(summary.clone()));
    summary
}

async fn conclude(
    pipeline: &Pipeline,
    ctx: &mut RunContext,
    failure: Option<Failure>,
    stages: Vec<StageRecord>,
) -> RunSummary {
    // Without a state check, what a stage read (a restore in place reads the target's
    // revision before it replaces it).
    let start_version = match ctx.start() {
        Some(start) => start.current_label(),
        None => ctx.revision_found().cloned().flatten(),
    };
    // A COMMIT without an answer may still be finishing: read the ledger only once the
    // session that sent it has ended.
    let (unknown, pid) = ctx.take_unknown_commit();
    let ended = match pid {
        Some(pid) => session_ended(ctx, pid).await,
        None => true,
    };
    let now = fresh_snapshot(ctx).await;
    let settled = if ended {
        settle_unknown_commit(ctx, now.as_ref(), unknown)
    } else {
        vec!["whether the interrupted COMMIT took effect is not known yet: the session that sent it has not ended, or the server cannot be reached".into()]
    };
    let end_version = match (&now, ctx.replaced_with()) {
        (Some(snap), _) => snap.current_label(),
        (None, Some(restored)) => restored.clone(),
        (None, None) => start_version.clone(),
    };
    let mut summary = RunSummary {
        run_id: ctx.run_id().to_string(),
        pipeline: pipeline.name.clone(),
        outcome: Outcome::Succeeded,
        exit_code: exit_code::SUCCESS,
        failed_stage: None,
        error: None,
        start_version,
        end_version,
        applied: ctx.committed().to_vec(),
        rolled_back: ctx.rolled_back().to_vec(),
        undone: Vec::new(),
        state_read: ctx.start().is_some() || ctx.replaced_with().is_some(),
        backup: match (ctx.backup(), ctx.restore_choice()) {
            (Some(artifact), _) => Some(artifact.location.clone()),
            (None, Some(choice)) => Some(choice.backup.manifest.id.clone()),
            (None, None) => None,
        },
        stages,
        duration_ms: 0,
        next_steps: ctx.next_steps().to_vec(),
    };
    let Some(failure) = failure else {
        return summary;
    };
    summary.failed_stage = Some(failure.stage.clone());
    summary.error = Some(failure.error.to_string());
    summary.next_steps.extend(settled);

    // A refusal means "nothing changed" only while nothing has: a custom pipeline may
    // refuse (a second lock, a prompt) after an upgrade committed.
    if failure.error.is_refusal() && !ctx.changes_started() {
        refused(&mut summary, &failure.error);
        return summary;
    }

    if proven_unchanged(ctx, now.as_ref()).await {
        summary.outcome = Outcome::FailedUnchanged;
        summary.exit_code = exit_code::FAILED_RESTORED;
        summary.next_steps.push(format!(
            "fix the cause above, then run `ballast {}` again",
            rerun_command(pipeline, ctx.options().phase)
        ));
        return summary;
    }

    // Changes were left behind: the recovery ladder.
    climb_the_ladder(pipeline, ctx, &failure, &mut summary).await;
    summary
}

/// Climbs the recovery ladder after a failure that left changes, and says where it
/// left the database: back where the run started (exit 1), or not (exit 4).
async fn climb_the_ladder(
    pipeline: &Pipeline,
    ctx: &mut RunContext,
    failure: &Failure,
    summary: &mut RunSummary,
) {
    crate::interrupt::set_climbing();
    if crate::interrupt::signalled() {
        // A cancel sent for the signal may still be on its way: let it land on a
        // session the ladder does not use.
        ctx.reset_conn().await;
    }
    crate::interrupt::set_activity(
        "climbing the recovery ladder (downgrade, then restore, as the pipeline allows)",
    );
    let downgrade_failed = pipeline.stages.iter().any(|s| {
        s.display_name() == failure.stage && s.kind == crate::pipeline::StageKind::Downgrade
    });
    let climb = recovery::climb(pipeline, ctx, &mut summary.stages, downgrade_failed).await;
    summary.next_steps.extend(climb.notes);
    // Where the ladder left it, not where the failure did (a dropped INVALID index is
    // no longer a change left behind).
    summary.applied = ctx.committed().to_vec();
    let now = fresh_snapshot(ctx).await;
    if let Some(snap) = &now {
        summary.end_version = snap.current_label();
        let planned: Vec<&str> = ctx
            .plan()
            .into_iter()
            .flat_map(|p| p.migrations.iter().map(|m| m.version.as_str()))
            .collect();
        summary.undone = ctx
            .committed()
            .iter()
            .filter(|v| planned.contains(&v.as_str()) && !snap.is_applied(v))
            .cloned()
            .collect();
    }
    if let Some(how) = climb.recovered {
        summary.outcome = Outcome::FailedUnchanged;
        summary.exit_code = exit_code::FAILED_RESTORED;
        summary
            .next_steps
            .push(format!("back where the run started: {how}"));
        summary.next_steps.push(format!(
            "fix the cause above, then run `ballast {}` again",
            rerun_command(pipeline, ctx.options().phase)
        ));
        return;
    }
    not_recovered(ctx, summary, now.is_some());
}

/// Unchanged only when proven: the same migration state (`now`, read after the
/// failure) and, once the upgrade started, the same schema shape (an Alembic revision
/// can commit DDL in an autocommit block without moving the version table).
async fn proven_unchanged(ctx: &mut RunContext, now: Option<&Snapshot>) -> bool {
    if !ctx.changes_started() {
        return true;
    }
    let same_state = match (ctx.start(), now) {
        (Some(start), Some(now)) => same_ledger(start, now),
        _ => false, // cannot prove it: do not claim it
    };
    ctx.committed().is_empty()
        && same_state
        && (ctx.schema_before().is_none()
            || crate::pipeline::proof::back_at_start(ctx).await.is_ok())
}

/// The run stopped on purpose before changing anything (exit 3; 2 for bad files).
fn refused(summary: &mut RunSummary, error: &StageError) {
    summary.outcome = Outcome::Refused;
    summary.exit_code = match error {
        StageError::Config(_) => exit_code::USAGE,
        _ => exit_code::REFUSED,
    };
    if let StageError::NotConfirmed(why) = error {
        summary.next_steps.push(if why.contains("lint") {
            "fix the findings the preview lists, or allow reviewed ones (`-- ballast:allow <rule>`, --allow-risky)".into()
        } else {
            "run again at a terminal to confirm, or with --yes in scripts".into()
        });
    }
}

/// The ladder did not bring the database back (exit 4): what to do by hand, from
/// what the run knows (`read`: the database could be read after the failure).
fn not_recovered(ctx: &RunContext, summary: &mut RunSummary, read: bool) {
    summary.outcome = Outcome::FailedNotRecovered;
    summary.exit_code = exit_code::NOT_RECOVERED;
    if !read {
        summary.next_steps.push("the database could not be read after the failure: check it is up, then run `ballast status`".into());
    } else {
        summary
            .next_steps
            .push("see where the database is with `ballast status`".into());
    }
    if ctx.outcome_unknown() {
        summary
            .next_steps
            .push("a COMMIT was interrupted: `ballast status` tells whether it took effect".into());
    }
    if let (Some(backup), Some(server)) = (ctx.backup(), ctx.server_known()) {
        // A sealed backup (`.age`) is decrypted first, with one recipient's identity.
        let identity = ctx
            .settings()
            .backup
            .age_identity_file
            .as_ref()
            .map_or("IDENTITY_FILE".to_string(), |f| f.display().to_string());
        let sealed = backup.location.ends_with(".age");
        let fetch = match (backup.location.starts_with("s3://"), sealed) {
            (true, false) => format!("aws s3 cp {} - | gunzip -c", backup.location),
            (true, true) => format!(
                "aws s3 cp {} - | age -d -i {identity} | gunzip -c",
                backup.location
            ),
            (false, false) => format!("gunzip -c {}", backup.location),
            (false, true) => format!("age -d -i {identity} {} | gunzip -c", backup.location),
        };
        summary.next_steps.push(format!(
            "to return to the state before this run, restore its backup: {fetch} | pg_restore --clean --if-exists --no-owner -d {}",
            server.database
        ));
    }
    // Those the ladder has not undone already.
    let still: Vec<String> = ctx
        .committed()
        .iter()
        .rev()
        .filter(|v| !summary.undone.contains(v))
        .cloned()
        .collect();
    if !still.is_empty() {
        summary.next_steps.push(format!(
            "or undo the committed migrations with their down files, newest first: {}",
            still.join(", ")
        ));
    }
}

/// Waits (up to database.lock_wait) for backend `pid` to end, then asks the server to
/// end it and waits as long again. True once it is gone.
async fn session_ended(ctx: &mut RunContext, pid: i32) -> bool {
    let wait = ctx.settings().database.lock_wait;
    for terminate in [false, true] {
        let gone = match ctx.conn().await {
            Ok(conn) => crate::db::wait_backend_gone(conn, pid, wait).await.ok(),
            Err(_) => None,
        };
        match gone {
            Some(true) => return true,
            Some(false) => {}
            None => ctx.reset_conn().await,
        }
        if !terminate {
            if let Ok(conn) = ctx.conn().await {
                let _ = sqlx::query("select pg_terminate_backend($1)")
                    .bind(pid)
                    .execute(conn)
                    .await;
            }
        }
    }
    false
}

/// A COMMIT that got no answer (of `versions`): the ledger read afterwards tells whether it took
/// effect, and the run goes on from that fact (a committed batch is undone like any
/// other, its data effects weighed). Says what was found; nothing without a reading.
fn settle_unknown_commit(
    ctx: &mut RunContext,
    now: Option<&Snapshot>,
    versions: Vec<String>,
) -> Vec<String> {
    let Some(now) = now else {
        return Vec::new();
    };
    if versions.is_empty() {
        return Vec::new();
    }
    let (applied, not): (Vec<String>, Vec<String>) =
        versions.into_iter().partition(|v| now.is_applied(v));
    let mut found = Vec::new();
    if !applied.is_empty() {
        found.push(format!(
            "the COMMIT of {} took effect: the ledger read afterwards has them",
            applied.join(", ")
        ));
        ctx.record_committed(applied);
    }
    if !not.is_empty() {
        found.push(format!(
            "the COMMIT of {} did not take effect: the ledger read afterwards has none of them",
            not.join(", ")
        ));
        ctx.record_rolled_back(not);
    }
    ctx.outcome_settled();
    found
}

/// The command that runs this pipeline again.
/// The run stopped by a signal: a refusal (exit 3) while nothing has changed, as the
/// signal handler, which may exit first, says too; a failure once something has.
fn interrupted(ctx: &RunContext) -> StageError {
    let message = "interrupted by a signal (Ctrl-C or SIGTERM)".to_string();
    if ctx.changes_started() || !ctx.committed().is_empty() || ctx.outcome_unknown() {
        StageError::Failed(message)
    } else {
        StageError::Refused(format!("{message} before anything changed"))
    }
}

/// The command that runs this pipeline again, with the run's `--phase` (a rerun
/// without it would run the contract step before the rollout).
fn rerun_command(pipeline: &Pipeline, phase: Option<crate::migrations::Phase>) -> String {
    let command = match &pipeline.rerun {
        Some(command) => command.clone(),
        None if pipeline.name == "deploy" => "deploy".to_string(),
        None => format!("run {}", pipeline.name),
    };
    match phase {
        Some(phase) => format!("{command} --phase {phase}"),
        None => command,
    }
}

/// Re-reads the ledger after the stages; retries once on a new connection, since a
/// failure may have left the old one broken.
async fn fresh_snapshot(ctx: &mut RunContext) -> Option<Snapshot> {
    ctx.start()?;
    for _ in 0..2 {
        let result = ctx.snapshot().await.ok();
        if result.is_some() {
            return result;
        }
        ctx.reset_conn().await;
    }
    None
}

fn same_ledger(a: &Snapshot, b: &Snapshot) -> bool {
    a.fingerprint() == b.fingerprint()
}
