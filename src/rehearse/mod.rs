//! Rehearsing a deploy: a backup restored into a scratch copy ([`copy`]), the pending
//! plan run there exactly as the deploy will run it, traced ([`run`], with
//! [`crate::trace`]), the copy dropped; then the measure judged against `[rehearse]`'s
//! limits and set beside the lint. The target is never touched (docs/rehearsal.md).

pub mod copy;
mod run;

pub use run::{rehearse, Asked};

/// Why a rehearsal could not run (nothing was made, or what was made is dropped).
#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    /// The copy cannot be made here (no CREATEDB, no room, another rehearsal): exit 3.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

impl From<crate::db::DbError> for RehearseError {
    fn from(e: crate::db::DbError) -> Self {
        RehearseError::Failed(e.to_string())
    }
}
