//! How a stage ends: done, skipped, refused or failed.

/// How a stage ended when it did not fail.
#[derive(Debug)]
pub enum StageOutcome {
    /// Done, with a one-line summary for the report.
    Done(String),
    /// Not needed this run (nothing pending), with the reason.
    Skipped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The run stops on purpose before changing anything (exit 3): a preflight check
    /// failed, the lock is busy, the plan changed.
    #[error("{0}")]
    Refused(String),
    /// Nobody said yes: no terminal and no `--yes`, or the person said no (exit 3).
    #[error("{0}")]
    NotConfirmed(String),
    /// The stage failed (what changed is worked out by the runner from the context).
    #[error("{0}")]
    Failed(String),
    /// The project's files or settings are wrong (a migration file ballast cannot
    /// read as one): refused before anything changed, exit 2 like any config error.
    #[error("{0}")]
    Config(String),
}

macro_rules! failed_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StageError {
            fn from(e: $t) -> Self {
                StageError::Failed(e.to_string())
            }
        }
    )*};
}
impl From<crate::migrations::SourceError> for StageError {
    fn from(e: crate::migrations::SourceError) -> Self {
        StageError::Config(e.to_string())
    }
}

failed_from!(crate::backup::BackupError, crate::storage::StorageError);

impl From<crate::db::DbError> for StageError {
    fn from(e: crate::db::DbError) -> Self {
        match e.refusal() {
            Some(refusal) => StageError::Refused(refusal),
            None => StageError::Failed(e.to_string()),
        }
    }
}

impl From<crate::engine::EngineError> for StageError {
    fn from(e: crate::engine::EngineError) -> Self {
        match e {
            crate::engine::EngineError::Db(db) => db.into(),
            crate::engine::EngineError::Source(source) => source.into(),
            crate::engine::EngineError::Ledger(e) if e.is_config() => {
                StageError::Config(e.to_string())
            }
            crate::engine::EngineError::Ledger(e) => StageError::Refused(e.to_string()),
            other => StageError::Failed(other.to_string()),
        }
    }
}

impl StageError {
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            StageError::Refused(_) | StageError::NotConfirmed(_) | StageError::Config(_)
        )
    }
}
