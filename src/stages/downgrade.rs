//! `downgrade`: steps the target back, under the deploy lock, to the revision in the
//! stage's `to` or, without one, to where this run found it (the recovery ladder's
//! downgrade rung, and the round-trip test's middle step). Refuses up front when a
//! revision on the way is known not to downgrade.

use super::{deploy_lock, StageError, StageOutcome};
use crate::engine::Snapshot;
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext, to: Option<&str>) -> Result<StageOutcome, StageError> {
    let to = match to {
        Some(to) => Some(to.to_string()),
        None => match &ctx.start {
            Some(start) => start.current_label(),
            None => return Err(StageError::Refused(
                "no `to` revision and no starting state to go back to (put a state-check first)"
                    .into(),
            )),
        },
    };
    let lock = deploy_lock::acquire(ctx).await?;
    crate::interrupt::set_changing(true);
    let result = async {
        match ctx.snapshot().await? {
            Snapshot::Alembic(snap) => {
                let to = to.as_deref().filter(|t| *t != "base");
                crate::alembic::run::downgrade(ctx, &snap, to).await
            }
            Snapshot::Sql(_) => Err(StageError::Refused(
                "the sql engine has no downgrade stage yet; restore the run's backup instead"
                    .into(),
            )),
        }
    }
    .await;
    crate::interrupt::set_changing(false);
    lock.release().await;
    result
}
