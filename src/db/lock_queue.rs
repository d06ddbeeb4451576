//! The lock-queue guard. A statement waiting for a lock stands in that lock's queue,
//! and every later request that conflicts with it queues behind it: an `ALTER TABLE`
//! waiting for a report's `ACCESS SHARE` makes every read of the table wait as long.
//! `lock_timeout` bounds that wait, but only at the cost of the application stalling
//! for all of it. So while a step of ballast's changes the database, a second session
//! watches ballast's sessions (its own, and Alembic's by their application name): when
//! one waits for a lock and application sessions have queued behind it for
//! `database.lock_queue_limit`, the waiting statement is cancelled. It rolls back whole
//! and the step goes on later from where it stopped ([`crate::stages::lock_retry`]).
//! A wait nobody queues behind goes on, up to `lock_timeout`, and so does the wait of
//! a statement that commits in parts (a `CREATE INDEX CONCURRENTLY` waiting out old
//! transactions: [`crate::migrations::in_parts`]), which a cancel would leave
//! half-done. What the watch saw (how long ballast waited, and on whom) is kept for
//! the progress line and the closing report.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::DbError;
use crate::config::DatabaseSettings;

/// How often the watch looks: the application's longest queue is about
/// `lock_queue_limit` plus this.
const POLL: Duration = Duration::from_millis(20);

/// After waiting this long with nobody queued behind, the run says what it waits for.
const SAY_AFTER: Duration = Duration::from_secs(1);

/// A session in the way of ballast's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub pid: i32,
    pub application: String,
    /// `active`, `idle in transaction`, …
    pub state: String,
    pub query_start: String,
    /// How long its transaction has been open, `HH24:MI:SS`.
    pub transaction_age: String,
    pub query: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}, {}, transaction open for {}, query started {}: {})",
            self.pid,
            self.application,
            self.state,
            self.transaction_age,
            self.query_start,
            self.query
        )
    }
}

/// What one watch saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// It cancelled a waiting statement of ballast's.
    pub cancelled: bool,
    /// How long ballast's sessions waited for locks.
    pub waited: Duration,
    /// Who held what ballast waited for, the last time it looked.
    pub blockers: Vec<Blocker>,
}

/// Which sessions are ballast's: the step's own connection, and Alembic's.
#[derive(Debug, Clone)]
pub struct Ours {
    pub pid: Option<i32>,
    pub application_name: Option<String>,
}

/// A running watch; [`Watch::finish`] ends it and says what it saw.
pub struct Watch {
    stop: watch::Sender<bool>,
    task: JoinHandle<Seen>,
}

impl Watch {
    /// Starts watching `ours`, cancelling a waiting statement once application
    /// sessions have queued behind it for `limit`, when `cancel` (the step stops
    /// cleanly: a cancel of one that commits by itself would fail it half-done, so that
    /// one is only watched) and the statement does not commit in parts. `say` hears, once, who is in the way when ballast
    /// has waited a while. `None` when the guard is off (a zero limit) or its session
    /// cannot connect: `lock_timeout` still bounds each wait.
    pub async fn start(
        db: &DatabaseSettings,
        ours: Ours,
        limit: Duration,
        cancel: bool,
        say: impl Fn(&[Blocker]) + Send + 'static,
    ) -> Option<Watch> {
        if limit.is_zero() {
            return None;
        }
        let conn = match super::connect(db, "lock guard").await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("the lock-queue guard could not connect: {e}");
                return None;
            }
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(watch_loop(conn, ours, limit, cancel, stopped, say));
        Some(Watch { stop, task })
    }

    pub async fn finish(self) -> Seen {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

async fn watch_loop(
    mut conn: PgConnection,
    ours: Ours,
    limit: Duration,
    cancel: bool,
    mut stopped: watch::Receiver<bool>,
    say: impl Fn(&[Blocker]),
) -> Seen {
    let mut seen = Seen::default();
    let mut waiting_since: Option<Instant> = None;
    let mut queued_since: Option<Instant> = None;
    let mut told = false;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        let waiting = match waiting(&mut conn, &ours).await {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!("the lock-queue guard stopped watching: {e}");
                break;
            }
        };
        let now = Instant::now();
        let Some((pid, queued, statement)) = waiting.into_iter().max_by_key(|w| w.1) else {
            if let Some(since) = waiting_since.take() {
                seen.waited += now - since;
            }
            queued_since = None;
            continue;
        };
        let since = *waiting_since.get_or_insert(now);
        // A statement that commits in parts, stopped half-way, may leave its work
        // half-done: watched, never cancelled.
        let cancellable = cancel && !crate::migrations::in_parts::commits_in_parts(&statement);
        if queued == 0 || !cancellable {
            queued_since = None;
            if !told && now - since >= SAY_AFTER {
                told = true;
                if let Ok(blockers) = blockers_of(&mut conn, pid).await {
                    say(&blockers);
                    seen.blockers = blockers;
                }
            }
            continue;
        }
        if now - *queued_since.get_or_insert(now) < limit {
            continue;
        }
        if let Ok(blockers) = blockers_of(&mut conn, pid).await {
            seen.blockers = blockers;
        }
        let cancelled: Result<bool, _> = sqlx::query_scalar("select pg_cancel_backend($1)")
            .bind(pid)
            .fetch_one(&mut conn)
            .await;
        if matches!(cancelled, Ok(true)) {
            seen.cancelled = true;
        }
        queued_since = None;
    }
    if let Some(since) = waiting_since {
        seen.waited += since.elapsed();
    }
    super::close(conn).await;
    seen
}

/// Each of ballast's sessions that waits for a lock now, with how many client
/// sessions wait behind it (`pg_blocking_pids` names the sessions ahead in the queue
/// too) and the statement that waits. Only waiting sessions are asked, so an idle
/// watch costs one cheap scan.
async fn waiting(conn: &mut PgConnection, ours: &Ours) -> Result<Vec<(i32, i64, String)>, DbError> {
    sqlx::query_as(
        "with mine as ( \
           select pid, query from pg_stat_activity \
           where wait_event_type = 'Lock' and datname = current_database() \
             and (pid = $1 or application_name = $2)) \
         select m.pid, (select count(*) from pg_stat_activity q \
                        where q.wait_event_type = 'Lock' and q.backend_type = 'client backend' \
                          and q.pid <> m.pid and m.pid = any(pg_blocking_pids(q.pid))), \
                coalesce(m.query, '') \
         from mine m",
    )
    .bind(ours.pid.unwrap_or(0))
    .bind(ours.application_name.as_deref().unwrap_or(""))
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("watching ballast's lock waits", &e))
}

/// The sessions `pid` waits for.
pub async fn blockers_of(conn: &mut PgConnection, pid: i32) -> Result<Vec<Blocker>, DbError> {
    let rows = sqlx::query(
        "select a.pid, coalesce(nullif(a.application_name, ''), 'no application_name') as application, \
                coalesce(a.state, '?') as state, \
                coalesce(to_char(a.query_start, 'YYYY-MM-DD HH24:MI:SS'), '?') as query_start, \
                coalesce(to_char(now() - a.xact_start, 'HH24:MI:SS'), '?') as transaction_age, \
                left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120) as query \
         from pg_stat_activity a where a.pid = any(pg_blocking_pids($1)) order by a.xact_start",
    )
    .bind(pid)
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("reading who holds the lock", &e))?;
    Ok(rows
        .iter()
        .map(|r| Blocker {
            pid: r.get(0),
            application: r.get(1),
            state: r.get(2),
            query_start: r.get(3),
            transaction_age: r.get(4),
            query: r.get(5),
        })
        .collect())
}
