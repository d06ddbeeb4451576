//! How a stage's end is recorded, the same for a pipeline's stage and a recovery
//! rung: its event for the reporters, its line in the journal, its row in the run's
//! stage table.

use std::time::Instant;

use crate::events::{Event, StageRecord};
use crate::pipeline::{RunContext, StageError, StageOutcome};

/// The stage `stage`, started at `started`, ended with `result`.
pub(super) fn record_stage(
    ctx: &mut RunContext,
    records: &mut Vec<StageRecord>,
    stage: &str,
    started: Instant,
    result: &Result<StageOutcome, StageError>,
) {
    let duration_ms = started.elapsed().as_millis() as u64;
    let stage = stage.to_string();
    let (status, detail) = match result {
        Ok(StageOutcome::Done(summary)) => {
            ctx.events().emit(Event::StageFinished {
                stage: stage.clone(),
                duration_ms,
                summary: summary.clone(),
            });
            ("ok", summary.clone())
        }
        Ok(StageOutcome::Skipped(reason)) => {
            ctx.events().emit(Event::StageSkipped {
                stage: stage.clone(),
                reason: reason.clone(),
            });
            ("skipped", reason.clone())
        }
        Err(error) => {
            ctx.events().emit(Event::StageFailed {
                stage: stage.clone(),
                duration_ms,
                error: error.to_string(),
            });
            let status = match error.is_refusal() {
                true => "refused",
                false => "failed",
            };
            (status, error.to_string())
        }
    };
    let record = StageRecord {
        stage,
        status: status.into(),
        duration_ms,
        detail,
    };
    ctx.journal_stage(&record);
    records.push(record);
}
