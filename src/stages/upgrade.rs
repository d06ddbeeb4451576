//! `upgrade`: applies the plan under the deploy lock, one engine step at a time
//! (`Snapshot::apply_steps`), each tried again after a lock timeout that rolled it
//! back whole. The context records exactly what each step's report says committed,
//! so the runner never claims "rolled back" for something that was not.

use std::time::{Duration, Instant};

use super::{migrations_count, StageError, StageOutcome};
use crate::db::ledger;
use crate::db::lock_queue::{Blocker, Ours, Seen, Watch};
use crate::engine::change::{ChangeError, Stop};
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
    let mut waits = LockWaits::default();
    for step in snap.apply_steps(&cuts) {
        if crate::interrupt::requested() {
            return Err(StageError::Failed(
                "interrupted by a signal (Ctrl-C or SIGTERM) before the next statement".into(),
            ));
        }
        apply_with_retries(ctx, &snap, &step, &mut waits).await?;
    }
    Ok(StageOutcome::Done(format!(
        "{} applied in {}{}",
        migrations_count(total),
        crate::text::human_duration(started.elapsed().as_millis() as u64),
        waits.said()
    )))
}

/// What the upgrade's steps waited for locks, for the closing line.
#[derive(Default)]
struct LockWaits {
    waited: Duration,
    retries: u32,
    blockers: Vec<Blocker>,
}

impl LockWaits {
    fn add(&mut self, seen: &Seen) {
        self.waited += seen.waited;
        for b in &seen.blockers {
            if !self.blockers.iter().any(|known| known.pid == b.pid) {
                self.blockers.push(b.clone());
            }
        }
    }

    /// `; waited 8.1 s for locks (3 retries), held by pid 42 (psql, active, …)`, or
    /// nothing when the run never waited long enough to mention.
    fn said(&self) -> String {
        if self.waited < Duration::from_millis(100) && self.retries == 0 {
            return String::new();
        }
        let retries = match self.retries {
            0 => String::new(),
            1 => " (1 retry)".to_string(),
            n => format!(" ({n} retries)"),
        };
        let by = match self.blockers.first() {
            Some(b) => format!(", held by {}", short(b)),
            None => String::new(),
        };
        format!(
            "; waited {} for locks{retries}{by}",
            crate::text::human_duration(self.waited.as_millis() as u64)
        )
    }
}

/// `pid 42 (psql, active)`: who, without the query, for one line.
fn short(b: &Blocker) -> String {
    format!("pid {} ({}, {})", b.pid, b.application, b.state)
}

/// One step of the upgrade, under the lock-queue guard ([`crate::db::lock_queue`]),
/// and tried again when it stopped on a lock with nothing committed: the guard
/// cancelled its wait because the application queued behind it, or the wait ran into
/// `lock_timeout`. The engine says the step rolled back whole, so nothing is applied
/// twice, and the blocker may be gone by then. The waits between attempts grow from
/// `database.lock_retry_wait` (doubling, jittered, at most 30 s), for at most
/// `database.lock_retries` retries within `database.lock_budget`. The one retry
/// policy, for every engine.
async fn apply_with_retries(
    ctx: &mut RunContext,
    snap: &Snapshot,
    step: &ApplyStep,
    waits: &mut LockWaits,
) -> Result<(), StageError> {
    let db = ctx.settings().database.clone();
    let retries = db.lock_retries;
    let began = Instant::now();
    let mut wait = db.lock_retry_wait;
    let mut attempt = 0;
    loop {
        // A migration run alone can stop half-way: a killed run's journal names it.
        if let Some(label) = step.runs_alone() {
            crate::pipeline::journal::mark_in_progress(ctx, Some(label.to_string())).await;
        }
        let run = ctx.run_facts().await?;
        let guard = start_guard(ctx, &db, snap.step_rolls_back_whole(step)).await?;
        let result = snap.apply(step, ctx.conn().await?, &run).await;
        let seen = match guard {
            Some(guard) => guard.finish().await,
            None => Seen::default(),
        };
        waits.add(&seen);
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
            mut kind,
            mut message,
            report,
        } = error;
        // The guard's cancel is a lock timeout that came early.
        if seen.cancelled && kind == Stop::Failed && !report.changed_anything() {
            kind = Stop::LockTimeout;
            message = format!(
                "{message} (cancelled by the lock-queue guard: application sessions queued behind its lock wait for database.lock_queue_limit, {})",
                humantime::format_duration(db.lock_queue_limit)
            );
        }
        ctx.record_change(report).await;
        let blockers = match seen.blockers.as_slice() {
            [] => String::new(),
            all => format!(
                "; in the way: {}",
                all.iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let jittered = jitter(wait);
        let within_budget = began.elapsed() + jittered <= db.lock_budget;
        if kind == Stop::LockTimeout
            && attempt < retries
            && within_budget
            && !crate::interrupt::requested()
        {
            attempt += 1;
            waits.retries += 1;
            let why = match seen.cancelled {
                true => format!(
                    "waited for a lock while application sessions queued behind it, so the lock-queue guard cancelled it after {}",
                    humantime::format_duration(db.lock_queue_limit)
                ),
                false => "waited lock_timeout for a lock another session holds (SQLSTATE 55P03)"
                    .to_string(),
            };
            ctx.events().diagnose(
                crate::events::Severity::Warning,
                format!(
                    "the upgrade {why} and rolled back whole: nothing committed{blockers}. Retry {attempt} of at most {retries} in {} ({} of database.lock_budget left)",
                    crate::text::human_duration(jittered.as_millis() as u64),
                    crate::text::human_duration(
                        db.lock_budget.saturating_sub(began.elapsed()).as_millis() as u64
                    )
                ),
                None,
            );
            tokio::time::sleep(jittered).await;
            wait = (wait * 2).min(Duration::from_secs(30));
            continue;
        }
        if kind == Stop::LockTimeout {
            let limit = match attempt < retries {
                true => format!(
                    "database.lock_budget = {}",
                    humantime::format_duration(db.lock_budget)
                ),
                false => format!("database.lock_retries = {retries}"),
            };
            message = format!(
                "{message} (tried {} times over {}, {limit}){blockers}; nothing committed: deploy again when the lock is free, or end the session in the way with pg_terminate_backend(pid)",
                attempt + 1,
                crate::text::human_duration(began.elapsed().as_millis() as u64)
            );
        }
        return Err(ctx.stage_error(kind, message));
    }
}

/// The guard over one attempt, watching the step's own session and Alembic's;
/// cancelling a queued wait only when `cancel` (the step rolls back whole).
async fn start_guard(
    ctx: &mut RunContext,
    db: &crate::config::DatabaseSettings,
    cancel: bool,
) -> Result<Option<Watch>, StageError> {
    if db.lock_queue_limit.is_zero() {
        return Ok(None);
    }
    let pid: Option<i32> = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(ctx.conn().await?)
        .await
        .ok();
    let events = ctx.events().clone();
    let ours = Ours {
        pid,
        application_name: Some(crate::engine::alembic::process::application_name(db)),
    };
    Ok(Watch::start(db, ours, db.lock_queue_limit, cancel, move |blockers| {
        let list: Vec<String> = blockers.iter().map(|b| b.to_string()).collect();
        events.diagnose(
            crate::events::Severity::Info,
            format!(
                "waiting for a lock (nobody queues behind the wait, so it goes on up to lock_timeout); held by {}",
                list.join("; ")
            ),
            None,
        );
    })
    .await)
}

/// `wait`, give or take a quarter, so runs that met the same blocker do not come back
/// at the same moment.
fn jitter(wait: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as f64 / u128::MAX as f64;
    wait.mul_f64(0.75 + 0.5 * random)
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
