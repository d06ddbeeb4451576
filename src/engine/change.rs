//! What an engine's change did to the database, as the database shows it: the
//! [`Report`] that apply and undo return, on success and inside their [`ChangeError`]
//! (refinery's error with its report is the model), so no stage has to guess what
//! committed before a failure. And [`RunFacts`], what an engine is told about the run
//! it changes the database for.

use uuid::Uuid;

use crate::config::Settings;
use crate::db::schema_shape::{SchemaShape, Scope};
use crate::db::table_writes::TableWrites;
use crate::events::Events;

/// Something a failed step left behind that is not a whole migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartialChange {
    /// An INVALID index left by a failed `CREATE INDEX CONCURRENTLY`: dropping it is
    /// the whole undo.
    InvalidIndex { name: String, migration: String },
    /// Anything else (a half-run `-- no-transaction` migration, one that ran but was
    /// not recorded): no downgrade knows where it stopped; only a restore undoes it.
    Other(String),
}

/// What one apply or undo changed, in the order it happened.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Versions whose change committed (applied by an apply, undone by an undo).
    pub committed: Vec<String>,
    /// Versions whose transaction rolled back: nothing of them changed.
    pub rolled_back: Vec<String>,
    /// What changed that is not a whole migration.
    pub partial: Vec<PartialChange>,
    /// The versions whose COMMIT got no answer: committed or not, unknown until the
    /// ledger is read again once the session that sent it ended.
    pub commit_unknown: Vec<String>,
    /// What committed could not be read at all.
    pub outcome_unknown: bool,
    /// The connection the change ran on may be unusable: open a new one.
    pub connection_lost: bool,
    /// A `-- no-transaction` migration (its up, or its down) stopped at a statement
    /// that rolled back whole (it runs in one transaction of its own); the ones before
    /// it committed. Running the file on from it finishes the migration.
    pub stopped_at_statement: Option<StoppedAt>,
}

/// Where a migration run alone stopped: see [`Report::stopped_at_statement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedAt {
    /// The migration's version, as its ledger row stores it.
    pub version: String,
    /// The statement that stopped, counted from 0.
    pub statement: usize,
}

impl Report {
    pub fn committed(versions: Vec<String>) -> Report {
        Report {
            committed: versions,
            ..Report::default()
        }
    }

    pub fn partial(&mut self, what: String) {
        self.partial.push(PartialChange::Other(what));
    }

    /// Whether the change can go on from the database as it is now without doing
    /// anything twice: what committed are whole migrations and the rest rolled back,
    /// or a `-- no-transaction` migration stopped between two of its statements.
    /// Nothing half-done or unknown besides.
    pub fn goes_on(&self) -> bool {
        let between_statements = self.stopped_at_statement.is_some()
            && self
                .partial
                .iter()
                .all(|p| matches!(p, PartialChange::Other(_)));
        self.commit_unknown.is_empty()
            && !self.outcome_unknown
            && (self.partial.is_empty() || between_statements)
    }

    /// What stands of a change that [`Report::goes_on`]: the same report without the
    /// half-run migration, which the next attempt finishes (its report then says how
    /// that ended).
    pub fn going_on(mut self) -> Report {
        if self.stopped_at_statement.take().is_some() {
            self.partial.clear();
        }
        self
    }

    /// Whether anything may have changed.
    pub fn changed_anything(&self) -> bool {
        !self.committed.is_empty()
            || !self.partial.is_empty()
            || !self.commit_unknown.is_empty()
            || self.outcome_unknown
    }
}

/// Why a change stopped, and what it had done by then.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ChangeError {
    pub kind: Stop,
    pub message: String,
    pub report: Report,
}

/// How a change stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// It failed; the report says what committed before.
    Failed,
    /// It refused before changing anything (exit 3).
    Refused,
    /// A lock wait ran into `lock_timeout`, and the step rolled back whole: trying it
    /// again later applies nothing twice, and the blocker may be gone by then.
    LockTimeout,
}

impl ChangeError {
    pub fn failed(message: impl Into<String>, report: Report) -> ChangeError {
        ChangeError {
            kind: Stop::Failed,
            message: message.into(),
            report,
        }
    }

    pub fn refused(message: impl Into<String>) -> ChangeError {
        ChangeError {
            kind: Stop::Refused,
            message: message.into(),
            report: Report::default(),
        }
    }
}

impl From<crate::db::DbError> for ChangeError {
    fn from(e: crate::db::DbError) -> ChangeError {
        match e.refusal() {
            Some(refusal) => ChangeError::refused(refusal),
            None => ChangeError::failed(e.to_string(), Report::default()),
        }
    }
}

/// What an engine is told about the run it changes the database for.
#[derive(Clone)]
pub struct RunFacts {
    pub run_id: Uuid,
    pub settings: Settings,
    pub events: Events,
    /// The server's major version (Alembic's offline rendering wants it).
    pub server_major: u32,
    /// How the database looked right before the change: an engine whose bookkeeping
    /// can miss what committed (Alembic's autocommit blocks) compares against it.
    pub before: Option<Before>,
    /// A rehearsal's tracer: the sql engine runs each statement through it, Alembic
    /// marks where each revision starts ([`crate::trace`]). `None` in a deploy.
    pub trace: Option<crate::trace::Tracer>,
}

/// The database right before a change, for an account that must not trust the
/// version table alone.
#[derive(Clone)]
pub struct Before {
    pub shape: SchemaShape,
    pub scope: Option<Scope>,
    /// `schema.table` of the tables that hold migration state, not schema.
    pub bookkeeping: Vec<String>,
    /// Rows written per table when the backup started (none without a backup).
    pub writes_at_backup: Option<TableWrites>,
}

impl Before {
    /// The schema's shape now, read the way [`Before::shape`] was.
    pub async fn shape_now(
        &self,
        conn: &mut sqlx::postgres::PgConnection,
    ) -> Result<SchemaShape, crate::db::DbError> {
        SchemaShape::read(conn, &self.bookkeeping, self.scope.as_ref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::{PartialChange, Report, StoppedAt};

    fn at(statement: usize) -> Option<StoppedAt> {
        Some(StoppedAt {
            version: "3".into(),
            statement,
        })
    }

    #[test]
    fn a_stop_goes_on_only_when_nothing_is_half_done() {
        let rolled_back = Report {
            rolled_back: vec!["1".into()],
            ..Report::default()
        };
        assert!(rolled_back.goes_on());
        // Whole revisions committed (one transaction each), the rest rolled back.
        let whole = Report {
            committed: vec!["a1".into()],
            rolled_back: vec!["a2".into()],
            ..Report::default()
        };
        assert!(whole.goes_on());
        // Between two statements of a migration run alone.
        let mut between = Report {
            stopped_at_statement: at(1),
            ..Report::default()
        };
        between.partial("3 (statements 1-1 of 2 only)".into());
        assert!(between.goes_on());
        let going_on = between.going_on();
        assert!(going_on.partial.is_empty() && going_on.stopped_at_statement.is_none());

        let mut half_run = Report::default();
        half_run.partial("3 (statements 1-1 of 2 only)".into());
        assert!(!half_run.goes_on());
        let invalid_index = Report {
            stopped_at_statement: at(0),
            partial: vec![PartialChange::InvalidIndex {
                name: "hot_v".into(),
                migration: "3".into(),
            }],
            ..Report::default()
        };
        assert!(!invalid_index.goes_on());
        let unknown = Report {
            commit_unknown: vec!["1".into()],
            ..Report::default()
        };
        assert!(!unknown.goes_on());
        let unreadable = Report {
            outcome_unknown: true,
            ..Report::default()
        };
        assert!(!unreadable.goes_on());
    }
}
