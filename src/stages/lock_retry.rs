//! The one retry policy for a change stopped on a lock, for every stage that changes
//! the database (`upgrade`, `downgrade`, and so the recovery ladder's downgrade rung)
//! and every engine. Each attempt runs under the lock-queue guard
//! ([`crate::db::lock_queue`]); one stopped by the guard's cancel or by `lock_timeout`
//! with nothing left half-done goes on from where it stopped (the same step again, the
//! rest of the plan, the rest of a migration run alone) after
//! `database.lock_retry_wait`, doubling (at most 30 s) and jittered by a quarter, at
//! most `database.lock_retries` times within `database.lock_budget`. Each retry names who is in the way; the
//! stage's closing line says how long it waited for locks and on whom.

use std::time::{Duration, Instant};

use super::StageError;
use crate::config::DatabaseSettings;
use crate::db::lock_queue::{Blocker, Ours, Seen, Watch};
use crate::engine::change::{Report, Stop};
use crate::pipeline::RunContext;

/// The longest wait between two attempts.
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// What to do after a failed attempt.
pub enum Next {
    /// Try again now (the wait is over).
    Again,
    /// Give up with this.
    Stop(Stop, String),
}

/// Which change the retries are for.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    Upgrade,
    Downgrade,
}

impl Change {
    fn noun(self) -> &'static str {
        match self {
            Change::Upgrade => "upgrade",
            Change::Downgrade => "downgrade",
        }
    }

    /// What a migration it finished is.
    fn done(self) -> &'static str {
        match self {
            Change::Upgrade => "applied",
            Change::Downgrade => "reverted",
        }
    }
}

/// The attempts of one change, and what they waited for.
pub struct LockRetries {
    db: DatabaseSettings,
    /// What the messages call the change.
    change: Change,
    began: Instant,
    wait: Duration,
    attempt: u32,
    waited: Duration,
    blockers: Vec<Blocker>,
}

impl LockRetries {
    pub fn new(ctx: &RunContext, change: Change) -> LockRetries {
        let db = ctx.settings().database.clone();
        LockRetries {
            wait: db.lock_retry_wait,
            db,
            change,
            began: Instant::now(),
            attempt: 0,
            waited: Duration::ZERO,
            blockers: Vec::new(),
        }
    }

    /// The guard over one attempt, watching the run's own session and Alembic's;
    /// cancelling a queued wait only when `cancel` (the attempt stops cleanly: one
    /// that commits by itself would fail half-done, so it is only watched).
    pub async fn guard(
        &self,
        ctx: &mut RunContext,
        cancel: bool,
    ) -> Result<Option<Watch>, StageError> {
        let db = &self.db;
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
        Ok(
            Watch::start(db, ours, db.lock_queue_limit, cancel, move |blockers| {
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
            .await,
        )
    }

    /// Ends the attempt's guard: what it saw, counted for the closing line.
    pub async fn seen(&mut self, guard: Option<Watch>) -> Seen {
        let seen = match guard {
            Some(guard) => guard.finish().await,
            None => Seen::default(),
        };
        self.waited += seen.waited;
        for b in &seen.blockers {
            if !self.blockers.iter().any(|known| known.pid == b.pid) {
                self.blockers.push(b.clone());
            }
        }
        seen
    }

    /// After a failed attempt that left `report`: waits and says [`Next::Again`] when
    /// it stopped on a lock where it can go on from ([`Report::goes_on`]), otherwise
    /// [`Next::Stop`] with the message to fail with.
    pub async fn after(
        &mut self,
        ctx: &RunContext,
        seen: &Seen,
        mut kind: Stop,
        mut message: String,
        report: &Report,
    ) -> Next {
        let db = &self.db;
        // The guard's cancel is a lock timeout that came early.
        if kind == Stop::Failed && report.goes_on() && seen.cancelled {
            kind = Stop::LockTimeout;
            message = format!(
                "{message} (cancelled by the lock-queue guard: application sessions queued behind its lock wait for database.lock_queue_limit, {})",
                humantime::format_duration(db.lock_queue_limit)
            );
        }
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
        let retries = db.lock_retries;
        let jittered = jitter(self.wait);
        let within_budget = self.began.elapsed() + jittered <= db.lock_budget;
        if kind == Stop::LockTimeout
            && self.attempt < retries
            && within_budget
            && !crate::interrupt::requested()
        {
            self.attempt += 1;
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
                    "the {} {why}; {}{blockers}. Retry {} of at most {retries} in {} ({} of database.lock_budget left)",
                    self.change.noun(),
                    self.what_stays(report),
                    self.attempt,
                    crate::text::human_duration(jittered.as_millis() as u64),
                    crate::text::human_duration(
                        db.lock_budget.saturating_sub(self.began.elapsed()).as_millis() as u64
                    )
                ),
                None,
            );
            tokio::time::sleep(jittered).await;
            self.wait = (self.wait * 2).min(LONGEST_WAIT);
            return Next::Again;
        }
        if kind == Stop::LockTimeout {
            let limit = match self.attempt < retries {
                true => format!(
                    "database.lock_budget = {}",
                    humantime::format_duration(db.lock_budget)
                ),
                false => format!("database.lock_retries = {retries}"),
            };
            message = format!(
                "{message} (tried {} times over {}, {limit}){blockers}; {}: try again when the lock is free, or end the session in the way with pg_terminate_backend(pid)",
                self.attempt + 1,
                crate::text::human_duration(self.began.elapsed().as_millis() as u64),
                self.what_stays(report)
            );
        }
        Next::Stop(kind, message)
    }

    /// What an attempt stopped on a lock left: nothing, whole migrations, or the
    /// statements of a migration run alone before the one that stopped.
    fn what_stays(&self, report: &Report) -> String {
        let done = self.change.done();
        let ran = report.stopped_at_statement.as_ref().map(|at| at.statement);
        match (report.committed.as_slice(), ran) {
            ([], None | Some(0)) => "it rolled back whole: nothing committed".to_string(),
            ([], Some(ran)) => format!(
                "the statement stopped rolled back whole; the {} before it (the migration runs alone) committed and stay, and it goes on from statement {}",
                match ran {
                    1 => "statement".to_string(),
                    n => format!("{n} statements"),
                },
                ran + 1
            ),
            (versions, _) => format!(
                "{} {done} before it stay{} {done}, the rest rolled back",
                versions.join(", "),
                if versions.len() == 1 { "s" } else { "" }
            ),
        }
    }

    /// `; waited 8.1 s for locks (3 retries), held by pid 42 (psql, active)`, or
    /// nothing when the change never waited long enough to mention.
    pub fn said(&self) -> String {
        if self.waited < Duration::from_millis(100) && self.attempt == 0 {
            return String::new();
        }
        let retries = match self.attempt {
            0 => String::new(),
            1 => " (1 retry)".to_string(),
            n => format!(" ({n} retries)"),
        };
        let by = match self.blockers.first() {
            Some(b) => format!(", held by pid {} ({}, {})", b.pid, b.application, b.state),
            None => String::new(),
        };
        format!(
            "; waited {} for locks{retries}{by}",
            crate::text::human_duration(self.waited.as_millis() as u64)
        )
    }
}

/// `wait`, give or take a quarter, so runs that met the same blocker do not come back
/// at the same moment.
fn jitter(wait: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as f64 / u128::MAX as f64;
    wait.mul_f64(0.75 + 0.5 * random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_jittered_by_at_most_a_quarter() {
        let wait = Duration::from_millis(1000);
        for _ in 0..200 {
            let j = jitter(wait);
            assert!(
                j >= Duration::from_millis(750) && j <= Duration::from_millis(1250),
                "{j:?}"
            );
        }
    }
}
