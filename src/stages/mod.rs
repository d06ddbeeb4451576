//! The stage kinds, one file each. A stage reads and writes the run context and emits
//! events; it never prints, and it never decides what runs next.

mod backup;
mod confirm;
mod preview;
mod shell;
pub mod state_check;
mod upgrade;
mod verify;

use crate::pipeline::{RunContext, StageKind, StageSpec};

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
failed_from!(
    crate::db::DbError,
    crate::engine::EngineError,
    crate::migrations::SourceError,
    crate::backup::BackupError
);

impl StageError {
    pub fn is_refusal(&self) -> bool {
        matches!(self, StageError::Refused(_) | StageError::NotConfirmed(_))
    }
}

pub async fn run(spec: &StageSpec, ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    match spec.kind {
        StageKind::StateCheck => state_check::run(ctx).await,
        StageKind::Preview => preview::run(ctx).await,
        StageKind::Confirm => confirm::run(ctx).await,
        StageKind::Backup => backup::run(ctx).await,
        StageKind::Upgrade => upgrade::run(ctx).await,
        StageKind::Verify => verify::run(ctx).await,
        StageKind::Shell => shell::run(ctx, spec.command.as_deref().unwrap_or_default()).await,
    }
}

/// "1 migration" / "3 migrations".
pub fn migrations_count(n: usize) -> String {
    format!("{n} migration{}", if n == 1 { "" } else { "s" })
}
