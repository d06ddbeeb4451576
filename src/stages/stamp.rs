//! `stamp`: the documented emergency for an Alembic target whose version table is
//! wrong (a revision whose file is gone, a schema built by hand): writes the revision
//! into the version table without running any migration. It asks first (even with a
//! confirm stage before it: the question is a different one), and the run is journaled.

use super::{confirm::ask, deploy_lock, StageError, StageOutcome};
use crate::engine::Snapshot;
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext, to: Option<&str>) -> Result<StageOutcome, StageError> {
    let Some(to) = to else {
        return Err(StageError::Refused(
            "a stamp stage needs `to` (a revision, head or base)".into(),
        ));
    };
    // The question first, from the files and the table; env.py runs only once it is
    // answered (under the lock, below): a "no" changes nothing anywhere.
    let snap = ctx.snapshot().await?;
    super::refuse_if_engine_refuses(&snap)?;
    let snap = match snap {
        Snapshot::Alembic(snap) => snap,
        Snapshot::Sql(_) => {
            return Err(StageError::Refused(
                "stamp is for Alembic projects; the sql engine's ledger is ballast's own".into(),
            ))
        }
    };
    let known = matches!(to, "head" | "base") || snap.graph.get(to).is_some();
    if !known {
        return Err(StageError::Refused(format!(
            "no revision {to} in {}; `ballast status` shows the project's revisions",
            snap.graph.script_location
        )));
    }
    let now = snap.current_label().unwrap_or_else(|| "nothing".into());
    let question = format!(
        "{} says {now}. Write {to} there WITHOUT running any migration? Only when the schema already matches {to}.",
        snap.version
    );
    ask(ctx, question, "stamp").await?;
    deploy_lock::hold(ctx).await?;
    let proven = ctx.proven_snapshot().await?;
    super::refuse_if_engine_refuses(&proven)?;
    if let Snapshot::Alembic(proven) = &proven {
        if proven.version != snap.version || proven.current != snap.current {
            return Err(StageError::Refused(format!(
                "the question was about {} saying {now}, but env.py keeps the version table at {}, which says {}; nothing was stamped: run it again",
                snap.version,
                proven.version,
                proven.current_label().unwrap_or_else(|| "nothing".into())
            )));
        }
    }
    let server = ctx.server().await?;
    let witness = crate::engine::alembic::reach::Witness::open(&ctx.settings().database).await?;
    let runner = crate::engine::alembic::process::Runner::new(ctx.settings(), Some(server.major))
        .guarded(&witness);
    // --purge: the table says exactly `to` afterwards, even when what it says now is a
    // revision no file has (plain `stamp` would stop at "Can't locate revision").
    let stamped = runner.alembic(&["stamp", "--purge", to]).await;
    witness.close().await;
    let stamped = stamped.map_err(|e| StageError::Failed(e.to_string()))?;
    if let Some(why) = stamped.refused() {
        return Err(StageError::Refused(format!(
            "{why}; {}; nothing was stamped",
            crate::engine::alembic::reach::HINT_SHORT
        )));
    }
    if !stamped.success {
        return Err(StageError::Failed(format!(
            "alembic stamp failed: {}; the version table is unchanged",
            stamped.reason()
        )));
    }
    ctx.record_partial_change(format!("stamped {to}"));
    // A change like any other: a later stage's failure never calls the run unchanged.
    ctx.mark_changes_started();
    Ok(StageOutcome::Done(format!(
        "{} was {now}, is now {to}",
        snap.version
    )))
}
