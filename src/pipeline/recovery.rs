//! The recovery ladder's restore rung: when a failure left changes behind and the
//! pipeline's `[on_failure] restore` allows it, put this run's backup back.
//! (Rung 1, "nothing changed", is the runner's own check; the downgrade rung and the
//! rest of the ladder come with the recovery work.)

use std::time::Instant;

use super::context::RunContext;
use super::definition::{Pipeline, RestorePolicy, StageKind, StageSpec};
use crate::events::{Event, StageRecord};

pub enum RungOutcome {
    /// Not tried: the policy, no backup, or nobody to ask. The reason says which.
    NotTried(String),
    Restored(String),
    Failed(String),
}

pub async fn restore_rung(
    pipeline: &Pipeline,
    ctx: &mut RunContext,
    records: &mut Vec<StageRecord>,
) -> RungOutcome {
    let Some(backup) = ctx.backup.clone() else {
        return RungOutcome::NotTried("this run took no backup".into());
    };
    match pipeline.on_failure.restore {
        RestorePolicy::Never => {
            return RungOutcome::NotTried("the pipeline's [on_failure] restore is \"never\"".into())
        }
        RestorePolicy::Ask => {
            if !crate::report::interactive() {
                return RungOutcome::NotTried(
                    "restore = \"ask\" and there is no terminal to ask".into(),
                );
            }
            let prompt = format!(
                "The deploy failed after changing the database. Restore this run's backup {} now? Writes since it was taken will be lost",
                backup.id
            );
            if crate::report::prompt::confirm(prompt).await != Ok(true) {
                return RungOutcome::NotTried("the restore was declined".into());
            }
        }
        RestorePolicy::Auto => {}
    }
    let spec = StageSpec {
        kind: StageKind::Restore,
        name: Some("restore (recovery)".into()),
        command: None,
        to: None,
    };
    let stage = spec.display_name();
    ctx.events.emit(Event::StageStarted {
        stage: stage.clone(),
    });
    let t = Instant::now();
    let result = crate::stages::run(&spec, ctx).await;
    let duration_ms = t.elapsed().as_millis() as u64;
    let (status, detail, outcome) = match result {
        Ok(done) => {
            let summary = match done {
                crate::stages::StageOutcome::Done(s) | crate::stages::StageOutcome::Skipped(s) => s,
            };
            ctx.events.emit(Event::StageFinished {
                stage: stage.clone(),
                duration_ms,
                summary: summary.clone(),
            });
            ("ok", summary.clone(), RungOutcome::Restored(summary))
        }
        Err(e) => {
            ctx.events.emit(Event::StageFailed {
                stage: stage.clone(),
                duration_ms,
                error: e.to_string(),
            });
            ("failed", e.to_string(), RungOutcome::Failed(e.to_string()))
        }
    };
    let record = StageRecord {
        stage,
        status: status.into(),
        duration_ms,
        detail,
    };
    ctx.journal.stage(&record);
    records.push(record);
    outcome
}
