//! What happens during a run, as data. Stages emit events; reporters render them.
//!
//! The JSON reporter writes each event as one line, so this enum is a public schema:
//! add fields freely, rename nothing.

use std::sync::Arc;

use serde::Serialize;

use crate::plan::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Shown with `-v` only (what was left alone, and why).
    Detail,
    Info,
    Warning,
    Error,
}

/// Where `ballast wait` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitOutcome {
    Waiting,
    Ready,
    TimedOut,
    Ahead,
}

/// A restored database: its name, the one kept aside (in place), the safety backup
/// taken before, rows per table.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub database: String,
    pub kept_aside: Option<String>,
    pub safety_backup: Option<String>,
    pub row_counts: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
        target: String,
        schema: String,
    },
    StageStarted {
        stage: String,
    },
    StageSkipped {
        stage: String,
        reason: String,
    },
    StageFinished {
        stage: String,
        duration_ms: u64,
        summary: String,
    },
    StageFailed {
        stage: String,
        duration_ms: u64,
        error: String,
    },
    /// Something a person should read: a finding of the state check, a warning.
    Diagnosis {
        severity: Severity,
        message: String,
        hint: Option<String>,
    },
    State {
        current: Option<String>,
        target: Option<String>,
        applied: usize,
        pending: usize,
        /// Labels of the pending migrations, in the order they would run.
        pending_migrations: Vec<String>,
        /// Those of them marked `ballast:phase post` (the contract step).
        pending_post: Vec<String>,
        /// Pending migrations `--phase pre` leaves for after the rollout (not counted
        /// in `pending`).
        held_back: Vec<String>,
    },
    /// `ballast wait`: what it waits for (`pending`, the phase's migrations still to
    /// apply), emitted when it starts, whenever that changes, and when it ends.
    Wait {
        /// `pre` or `post`.
        phase: crate::migrations::Phase,
        /// `waiting`, `ready` (exit 0), `timed_out` (exit 1) or `ahead` (the
        /// database has migrations the files do not know: exit 3).
        outcome: WaitOutcome,
        pending: Vec<String>,
        /// With `ahead`: what the database has that the files do not.
        unknown: Vec<String>,
        /// Why the last look could not read the state (the ledger locked by another
        /// session), when that is so.
        #[serde(skip_serializing_if = "Option::is_none")]
        unread: Option<String>,
        elapsed_ms: u64,
    },
    Plan {
        plan: Plan,
        /// Pending migrations `--phase pre` leaves for after the rollout.
        held_back: Vec<String>,
    },
    /// A lint finding on a migration of the plan (or of `check`).
    Finding {
        finding: crate::lint::Finding,
    },
    BackupStarted {
        path: String,
        database_bytes: i64,
    },
    BackupProgress {
        raw_bytes: u64,
    },
    BackupFinished {
        id: String,
        path: String,
        raw_bytes: u64,
        compressed_bytes: u64,
        sha256: String,
    },
    /// A backup is being restored into `database` (a new one, or an in-place
    /// restore's copy before the rename).
    RestoreStarted {
        id: String,
        database: String,
        raw_bytes: u64,
    },
    RestoreProgress {
        raw_bytes: u64,
    },
    RestoreFinished {
        database: String,
        tables: usize,
        rows: i64,
    },
    /// A rehearsal: the plan run on a restored copy and measured, with its verdict
    /// (docs/rehearsal.md).
    Rehearsal {
        #[serde(flatten)]
        rehearsal: Box<crate::trace::report::Rehearsal>,
    },
    /// `ballast restore` put a chosen backup back: what is where now.
    Restored {
        restore: Restored,
    },
    LockWaiting {
        pid: i32,
        application_name: String,
    },
    MigrationStarted {
        index: usize,
        total: usize,
        version: String,
        name: String,
        transactional: bool,
    },
    MigrationApplied {
        index: usize,
        total: usize,
        version: String,
        name: String,
        duration_ms: u64,
    },
    /// A transaction over `versions` committed (they are now applied).
    Committed {
        versions: Vec<String>,
    },
    /// A transaction over `versions` rolled back (none of them is applied).
    RolledBack {
        versions: Vec<String>,
    },
    CheckPassed {
        name: String,
    },
    HookFinished {
        command: String,
        success: bool,
        output: String,
    },
    RunFinished(RunSummary),
}

/// The final account of a run: what the person at the keyboard reads last. The
/// journal keeps it whole, so `history --run` can show it again.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub pipeline: String,
    pub outcome: Outcome,
    pub exit_code: i32,
    pub failed_stage: Option<String>,
    pub error: Option<String>,
    pub start_version: Option<String>,
    pub end_version: Option<String>,
    #[serde(default)]
    pub applied: Vec<String>,
    #[serde(default)]
    pub rolled_back: Vec<String>,
    /// Of `applied`, the migrations the recovery ladder undid again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undone: Vec<String>,
    /// Whether the run read the migration state at all (a backup pipeline does not;
    /// a state check can fail before it): `start_version` means nothing otherwise.
    #[serde(default)]
    pub state_read: bool,
    pub backup: Option<String>,
    #[serde(default)]
    pub stages: Vec<StageRecord>,
    pub duration_ms: u64,
    /// What to do next, when there is anything to do.
    #[serde(default)]
    pub next_steps: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    /// Failed; the database is as the run found it.
    FailedUnchanged,
    Refused,
    /// Failed after changes were committed: a human must look.
    FailedNotRecovered,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StageRecord {
    pub stage: String,
    pub status: String,
    pub duration_ms: u64,
    pub detail: String,
}

pub trait Reporter: Send + Sync {
    fn report(&self, event: &Event);
}

/// The handle stages hold: cheap to clone, one reporter behind it.
#[derive(Clone)]
pub struct Events(Arc<dyn Reporter>);

impl Events {
    pub fn new(reporter: impl Reporter + 'static) -> Events {
        Events(Arc::new(reporter))
    }

    pub fn emit(&self, event: Event) {
        self.0.report(&event);
    }

    /// The same reporter, told only diagnoses: for an engine run on a rehearsal's
    /// copy, whose progress events would read as a change to the target.
    pub fn only_diagnoses(&self) -> Events {
        Events(Arc::new(OnlyDiagnoses(self.0.clone())))
    }

    pub fn diagnose(&self, severity: Severity, message: impl Into<String>, hint: Option<String>) {
        self.emit(Event::Diagnosis {
            severity,
            message: message.into(),
            hint,
        });
    }
}

struct OnlyDiagnoses(Arc<dyn Reporter>);

impl Reporter for OnlyDiagnoses {
    fn report(&self, event: &Event) {
        if let Event::Diagnosis { .. } = event {
            self.0.report(event);
        }
    }
}
