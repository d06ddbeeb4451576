//! The stage kinds, one file each. A stage reads and writes the run context and emits
//! events; it never prints, and it never decides what runs next.

mod backup;
mod baseline;
mod catalogue;
mod chosen_backup;
mod confirm;
mod deploy_lock;
mod downgrade;
mod lock_retry;
mod preview;
mod rehearse;
mod restore;
mod roundtrip;
mod shell;
mod stamp;
pub mod state_check;
mod upgrade;
mod verify;

pub use crate::pipeline::{StageError, StageOutcome};
pub use crate::text::migrations_count;

use crate::pipeline::{RunContext, StageKind, StageSpec};

pub async fn run(spec: &StageSpec, ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    match spec.kind {
        StageKind::StateCheck => state_check::run(ctx).await,
        StageKind::Preview => preview::run(ctx).await,
        StageKind::Confirm => confirm::run(ctx).await,
        StageKind::Backup => backup::run(ctx).await,
        StageKind::Upgrade => upgrade::run(ctx).await,
        StageKind::Verify => verify::run(ctx).await,
        StageKind::Shell => shell::run(ctx, spec).await,
        StageKind::VerifyBackup => match ctx.restore_choice().cloned() {
            Some(choice) => chosen_backup::verify_chosen(ctx, &choice).await,
            None => catalogue::verify_backup(ctx).await,
        },
        StageKind::Prune => catalogue::prune(ctx).await,
        StageKind::Restore => restore::run(ctx).await,
        StageKind::Downgrade => downgrade::run(ctx, spec.to.as_deref()).await,
        StageKind::Stamp => stamp::run(ctx, spec.to.as_deref()).await,
        StageKind::Baseline => baseline::run(ctx, spec.to.as_deref()).await,
        StageKind::Roundtrip => roundtrip::run(ctx).await,
        StageKind::Rehearse => rehearse::run(ctx).await,
    }
}

/// A changing stage's first question: may the engine change this database at all?
/// (Alembic's connection must reach the database ballast backed up.)
pub(crate) fn refuse_if_engine_refuses(snap: &crate::engine::Snapshot) -> Result<(), StageError> {
    match snap.refusal() {
        Some(refusal) => Err(StageError::Refused(format!(
            "{refusal}; nothing was changed"
        ))),
        None => Ok(()),
    }
}
