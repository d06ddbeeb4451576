//! `ballast wait`: the rollout gate. Exits 0 as soon as nothing of a release phase is
//! pending for these migration files (an application pod's init container waits so
//! for the schema its code needs); 1 when `--timeout` passes first; 3 when the
//! database has migrations the files do not know (the image is older than the
//! database).
//!
//! It only reads, in read-only transactions, and never queues behind a lock: a ledger
//! held by another session (a deploy altering it, a test's `LOCK TABLE`) is seen in
//! `pg_locks` first and not read that round, and a short `lock_timeout` covers the
//! moment between that look and the read.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;

use crate::cli::GlobalArgs;
use crate::config::Settings;
use crate::engine::{Engine, Snapshot};
use crate::events::{Event, Events, WaitOutcome};
use crate::exit_code;
use crate::migrations::Phase;

/// How long one read may wait for a lock another session took after the `pg_locks`
/// look: short, so nothing queues behind it.
const READ_LOCK_TIMEOUT: &str = "200ms";

/// The shortest `--interval`: every waiting pod polls the database.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

pub async fn run(g: &GlobalArgs, phase: Phase, timeout: Duration, interval: Duration) -> i32 {
    let events = super::events(g, false);
    let settings = match super::load_settings(g) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    if let Err(e) = settings.database.url() {
        return super::fail(g, &e.to_string(), exit_code::USAGE);
    }
    let interval = interval.max(MIN_INTERVAL);
    let mut engine = Engine::open(&settings);
    let mut gate = Gate {
        settings: &settings,
        events: &events,
        phase,
        started: Instant::now(),
        last: None,
        unread: None,
        said: None,
    };
    // No connection yet, or a lost one: a database restarting as the pods start is
    // waited for like a deploy is.
    let mut conn: Option<PgConnection> = None;
    loop {
        let last = gate.started.elapsed() + interval > timeout;
        if last {
            // One last look at the deadline, so a deploy that finished just now counts.
            tokio::time::sleep(timeout.saturating_sub(gate.started.elapsed())).await;
        }
        // Every look ends by the deadline (a hung probe or a half-open socket too).
        let left = timeout.saturating_sub(gate.started.elapsed()) + Duration::from_secs(1);
        let look =
            match tokio::time::timeout(left, gate.look_connecting(&mut engine, &mut conn)).await {
                Ok(look) => look,
                Err(_) => Err(Unread::Connection(
                    "the database did not answer in time".into(),
                )),
            };
        match look {
            Ok(Look::Ready) => return gate.end(WaitOutcome::Ready, exit_code::SUCCESS),
            Ok(Look::Ahead) => return gate.end(WaitOutcome::Ahead, exit_code::REFUSED),
            Ok(Look::Pending) => {}
            Err(Unread::Files(e)) => return super::fail(g, &e, exit_code::USAGE),
            Err(Unread::Locked(why)) => gate.unread(why),
            Err(Unread::Connection(why)) => {
                gate.unread(why);
                // The server restarted or the connection dropped: a new one next round.
                conn = None;
            }
        }
        if last {
            return gate.end(WaitOutcome::TimedOut, exit_code::FAILED_RESTORED);
        }
        tokio::time::sleep(interval).await;
    }
}

/// What one look found.
enum Look {
    /// Nothing of the phase is pending.
    Ready,
    Pending,
    /// The database has migrations the files do not know.
    Ahead,
}

/// Why a look could not say.
enum Unread {
    /// The migration files (or the config) cannot be read: waiting will not help.
    Files(String),
    /// Another session holds the ledger.
    Locked(String),
    /// The database could not be read this round.
    Connection(String),
}

struct Gate<'a> {
    settings: &'a Settings,
    events: &'a Events,
    phase: Phase,
    started: Instant,
    /// The last state read.
    last: Option<Seen>,
    /// Why the last look could not count what it read as applied (the state could
    /// not be read, or needs attention); `None` when it could.
    unread: Option<String>,
    /// The pending list and reason last said, so a change is said once.
    said: Option<(Vec<String>, Option<String>)>,
}

/// A state read by a look.
struct Seen {
    /// The phase's migrations still pending.
    pending: Vec<String>,
    /// What the database has that the files do not.
    unknown: Vec<String>,
    /// Where it was read from (names the ledger to look at next time).
    snap: Snapshot,
}

impl Gate<'_> {
    /// A session that reads only and gives up on a lock at once.
    async fn connect(&self) -> Result<PgConnection, crate::db::DbError> {
        let mut conn = crate::db::connect(&self.settings.database, "wait").await?;
        for set in [
            "set default_transaction_read_only = on".to_string(),
            format!("set lock_timeout = '{READ_LOCK_TIMEOUT}'"),
        ] {
            sqlx::query(&set)
                .execute(&mut conn)
                .await
                .map_err(|e| crate::db::DbError::query("setting up the read-only session", &e))?;
        }
        Ok(conn)
    }

    /// [`Gate::look`], connecting first when there is no connection.
    async fn look_connecting(
        &mut self,
        engine: &mut Engine,
        conn: &mut Option<PgConnection>,
    ) -> Result<Look, Unread> {
        if conn.is_none() {
            *conn = Some(
                self.connect()
                    .await
                    .map_err(|e| Unread::Connection(e.to_string()))?,
            );
        }
        let conn = conn.as_mut().expect("connected above");
        self.look(engine, conn).await
    }

    async fn look(&mut self, engine: &mut Engine, conn: &mut PgConnection) -> Result<Look, Unread> {
        if let Some(holder) = self.ledger_holder(engine, conn).await? {
            return Err(Unread::Locked(holder));
        }
        let snap = engine
            .snapshot(self.settings, conn, false)
            .await
            .map_err(|e| {
                let text = e.to_string();
                use crate::engine::alembic::AlembicError;
                use crate::engine::EngineError;
                match &e {
                    _ if text.contains("SQLSTATE 55P03") => Unread::Locked(
                        "another session took a lock on the ledger; not queueing behind it".into(),
                    ),
                    EngineError::Db(_) | EngineError::Alembic(AlembicError::Db(_)) => {
                        Unread::Connection(text)
                    }
                    _ => Unread::Files(text),
                }
            })?;
        let all = snap.pending_labels();
        let post = snap.pending_post_labels();
        let pending: Vec<String> = match self.phase {
            Phase::Post => all,
            Phase::Pre => all.into_iter().filter(|l| !post.contains(l)).collect(),
        };
        let unknown = snap.unknown_applied();
        // Nothing pending counts only in a state a deploy would accept (an Alembic
        // project with several heads shows nothing pending, and is not ready).
        let blocked = snap.is_blocked();
        let look = match (unknown.is_empty(), pending.is_empty() && !blocked) {
            (false, _) => Look::Ahead,
            (true, true) => Look::Ready,
            (true, false) => Look::Pending,
        };
        self.last = Some(Seen {
            pending,
            unknown,
            snap,
        });
        self.unread = blocked.then(|| {
            "the state needs attention before it counts as applied (`ballast status` says what)"
                .to_string()
        });
        if matches!(look, Look::Pending) {
            self.say(WaitOutcome::Waiting);
        }
        Ok(look)
    }

    /// Who holds a lock on the ledger that a read would queue behind (the ledger
    /// the last look read, or where the settings put it), as words; `None`: nobody.
    async fn ledger_holder(
        &self,
        engine: &Engine,
        conn: &mut PgConnection,
    ) -> Result<Option<String>, Unread> {
        // `schema.table` as `own_tables` names them (to_regclass reads them so).
        let mut tables = vec![format!(
            "{}.{}",
            self.settings.database.schema,
            crate::db::ledger::TABLE
        )];
        tables.extend(engine.own_tables(self.settings, self.last.as_ref().map(|l| &l.snap)));
        let holder: Option<(i32, String, String)> = sqlx::query_as(
            "select l.pid, coalesce(a.application_name, ''), n.nspname || '.' || c.relname \
               from pg_locks l left join pg_stat_activity a on a.pid = l.pid \
               join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace \
              where l.locktype = 'relation' and l.mode = 'AccessExclusiveLock' \
                and l.pid <> pg_backend_pid() \
                and l.relation = any (select to_regclass(t) from unnest($1::text[]) t) \
              limit 1",
        )
        .bind(&tables)
        .fetch_optional(conn)
        .await
        .map_err(|e| {
            Unread::Connection(crate::db::DbError::query("reading pg_locks", &e).to_string())
        })?;
        Ok(holder.map(|(pid, app, table)| {
            format!(
                "{table} is locked by pid {pid}{}: not read this round, so nothing queues behind this wait",
                match app.is_empty() {
                    true => String::new(),
                    false => format!(" ({app})"),
                }
            )
        }))
    }

    /// A look could not read the state: waiting goes on, saying why.
    fn unread(&mut self, why: String) {
        self.unread = Some(why);
        self.say(WaitOutcome::Waiting);
    }

    /// Emits where the wait stands (while waiting, once per change); the reason it
    /// could not count the state as applied goes with waiting and timing out.
    fn say(&mut self, outcome: WaitOutcome) {
        let (pending, unknown) = self
            .last
            .as_ref()
            .map(|l| (l.pending.clone(), l.unknown.clone()))
            .unwrap_or_default();
        let unread = match outcome {
            WaitOutcome::Waiting | WaitOutcome::TimedOut => self.unread.clone(),
            WaitOutcome::Ready | WaitOutcome::Ahead => None,
        };
        let now = (pending.clone(), unread.clone());
        if outcome == WaitOutcome::Waiting && self.said.as_ref() == Some(&now) {
            return;
        }
        self.said = Some(now);
        self.events.emit(Event::Wait {
            phase: self.phase,
            outcome,
            pending,
            unknown,
            unread,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        });
    }

    /// Says how the wait ended; returns `code`.
    fn end(&mut self, outcome: WaitOutcome, code: i32) -> i32 {
        self.say(outcome);
        code
    }
}
