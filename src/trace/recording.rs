//! [`Tracer`]: what the engine tells a rehearsal while it applies the plan, and the
//! [`Recording`] it fills. Times are milliseconds since the tracer was made, on this
//! machine's monotonic clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::postgres::PgConnection;
use sqlx::Executor;

use crate::db::held_locks::{self, OtherLock, OtherStatement, Relation};
use crate::db::DbError;

/// A statement the engine ran, as its own session saw it.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The migration's label (`3_retype_orders`, an Alembic revision).
    pub migration: String,
    /// Its line in the migration's file.
    pub line: usize,
    pub sql: String,
    /// The transaction it ran in (counted from 0; a statement run alone is one).
    pub tx: usize,
    pub started_ms: f64,
    pub ended_ms: f64,
    /// Rows it affected; `None` when it failed.
    pub rows: Option<u64>,
    /// The relation locks its session held right after it (oid, mode): in a
    /// transaction, what it took stays held until the transaction ends.
    pub locks_after: Vec<(u32, String)>,
    /// Relations whose storage it replaced (oids).
    pub rewrote: Vec<u32>,
    pub error: Option<String>,
}

/// A look from the sampler's connection.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at_ms: f64,
    pub locks: Vec<OtherLock>,
    pub statements: Vec<OtherStatement>,
}

/// Everything seen while the plan ran.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub ran: Vec<Ran>,
    /// When each transaction ended (by index), committed or rolled back.
    pub tx_ended_ms: Vec<f64>,
    pub samples: Vec<Sample>,
    /// How often the sampler looked (milliseconds between looks).
    pub sample_interval_ms: f64,
    /// When each migration started (Alembic's log, the sql engine's loop).
    pub migrations: Vec<(f64, String)>,
    /// Relations known at any point (oid → `schema.name`).
    pub names: HashMap<u32, String>,
    /// Storage per relation before the plan ran, and after it ended.
    pub filenodes_before: HashMap<u32, u32>,
    pub filenodes_after: HashMap<u32, u32>,
    /// Storage per relation as last read while the plan runs.
    filenodes_now: HashMap<u32, u32>,
    /// The sessions that run the plan.
    pub applier: Applier,
    pub started_ms: f64,
    pub ended_ms: f64,
}

/// Handed to the engine (in `RunFacts`) to record what it runs; cheap to clone, one
/// recording behind it.
#[derive(Clone)]
pub struct Tracer {
    t0: Instant,
    recording: Arc<Mutex<Recording>>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer")
    }
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::new()
    }
}

impl Tracer {
    pub fn new() -> Tracer {
        Tracer {
            t0: Instant::now(),
            recording: Arc::new(Mutex::new(Recording::default())),
        }
    }

    /// Milliseconds since the tracer was made.
    pub fn now_ms(&self) -> f64 {
        self.t0.elapsed().as_secs_f64() * 1000.0
    }

    fn with<T>(&self, f: impl FnOnce(&mut Recording) -> T) -> T {
        let mut recording = self.recording.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut recording)
    }

    /// What was recorded so far.
    pub fn recording(&self) -> Recording {
        self.with(|r| r.clone())
    }

    /// The engine starts migration `label` (its next statements are its).
    pub fn migration_started(&self, label: &str) {
        let at = self.now_ms();
        self.with(|r| r.migrations.push((at, label.to_string())));
    }

    /// The current transaction ended (committed or rolled back): the locks its
    /// statements took are gone from here on.
    pub fn transaction_ended(&self) {
        let at = self.now_ms();
        self.with(|r| r.tx_ended_ms.push(at));
    }

    pub(super) fn sampled(&self, sample: Sample, interval_ms: f64) {
        self.with(|r| {
            r.samples.push(sample);
            r.sample_interval_ms = interval_ms;
        });
    }

    /// Reads the relations' storage before the plan runs (`before`) or after it ended,
    /// on a connection of its own.
    pub async fn storage(&self, conn: &mut PgConnection, before: bool) -> Result<(), DbError> {
        let relations = held_locks::relations(conn).await?;
        let at = self.now_ms();
        self.with(|r| {
            learn(&mut r.names, &relations);
            let filenodes: HashMap<u32, u32> = relations
                .iter()
                .map(|(o, rel)| (*o, rel.filenode))
                .collect();
            match before {
                true => {
                    r.filenodes_now = filenodes.clone();
                    r.filenodes_before = filenodes;
                    r.started_ms = at;
                }
                false => {
                    r.filenodes_after = filenodes;
                    r.ended_ms = at;
                }
            }
        });
        Ok(())
    }

    /// Runs one statement of `migration` (at `line` of its file) on `conn` as the
    /// engine would, then reads what its session holds: in a transaction (`alone`
    /// false), the locks and the storage of the relations locked (a rewrite needs
    /// `ACCESS EXCLUSIVE`, so a rewritten table is among them); after a statement run
    /// alone (committed, its locks gone), the storage of every relation. Returns what
    /// `execute` returned (rows affected), or why the trace could not read.
    pub async fn execute(
        &self,
        conn: &mut PgConnection,
        migration: &str,
        line: usize,
        sql: &str,
        alone: bool,
    ) -> Result<u64, sqlx::Error> {
        let started_ms = self.now_ms();
        let result = conn.execute(sqlx::raw_sql(sql)).await;
        let ended_ms = self.now_ms();
        // After a failure the transaction is aborted: nothing more can be read in it.
        let read = match (&result, alone) {
            (Err(_), _) => Ok((HashMap::new(), Vec::new())),
            (Ok(_), false) => held_locks::own_locks(&mut *conn).await,
            (Ok(_), true) => held_locks::relations(&mut *conn)
                .await
                .map(|relations| (relations, Vec::new())),
        };
        let (relations, locks_after) = match read {
            Ok(read) => read,
            // A failed read aborts the transaction too: the migration stops here, and
            // says why, rather than failing at its next statement for no clear reason.
            Err(e) => {
                return Err(sqlx::Error::Protocol(format!(
                    "the rehearsal's trace could not read the session's locks after this statement: {e}"
                )))
            }
        };
        self.with(|r| {
            learn(&mut r.names, &relations);
            let rewrote = rewritten(&mut r.filenodes_now, &relations);
            let tx = r.tx_ended_ms.len();
            r.ran.push(Ran {
                migration: migration.to_string(),
                line,
                sql: sql.to_string(),
                tx,
                started_ms,
                ended_ms,
                rows: result.as_ref().ok().map(|done| done.rows_affected()),
                locks_after,
                rewrote,
                error: result.as_ref().err().map(|e| e.to_string()),
            });
        });
        result.map(|done| done.rows_affected())
    }

    /// Which sessions run the plan: the sampler's looks at others are left out.
    pub fn applied_by(&self, applier: Applier) {
        self.with(|r| r.applier = applier);
    }
}

/// The sessions that run the plan on the copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Applier {
    /// Not said: every client session of the copy.
    #[default]
    Clients,
    /// The engine's own session (the sql engine).
    Pid(i32),
    /// Sessions of this application name (Alembic's child, whose guard sets it).
    Named(String),
}

impl Applier {
    /// Whether `session` runs the plan (autovacuum and ballast's other sessions do not).
    pub fn runs(&self, session: &crate::db::held_locks::Session) -> bool {
        match self {
            Applier::Clients => session.backend_type == "client backend",
            Applier::Pid(pid) => session.pid == *pid,
            Applier::Named(name) => session.application_name == *name,
        }
    }
}

fn learn(names: &mut HashMap<u32, String>, relations: &HashMap<u32, Relation>) {
    for (oid, relation) in relations {
        names.insert(*oid, relation.name.clone());
    }
}

/// Relations whose storage differs from the last known (a rewrite, a TRUNCATE); the
/// last known updated. A relation first seen now (the plan created it) is no rewrite.
pub(super) fn rewritten(known: &mut HashMap<u32, u32>, now: &HashMap<u32, Relation>) -> Vec<u32> {
    let mut oids = Vec::new();
    for (oid, relation) in now {
        match known.insert(*oid, relation.filenode) {
            Some(was) if was != 0 && was != relation.filenode => oids.push(*oid),
            _ => {}
        }
    }
    oids.sort_unstable();
    oids
}
