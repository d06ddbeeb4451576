//! `verify`: the database is at the target version, every applied checksum matches
//! its file, and the team's own checks (`[[verify.checks]]`) return true.

use super::{StageError, StageOutcome};
use crate::db::SqlFailure;
use crate::events::{Event, Severity};
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    crate::faults::pause("verify");
    let snap = ctx.goal_snapshot().await?;
    let mut problems = Vec::new();
    if snap.pending_count() > 0 {
        let labels = snap.pending_labels();
        problems.push(format!(
            "not at the target version: still pending {}",
            labels.join(", ")
        ));
    }
    snap.diagnose(ctx.events());
    if snap.is_blocked() {
        problems.push("applied migrations do not match their files (see above)".into());
    }
    let checks = ctx.settings().verify_checks.clone();
    let events = ctx.events().clone();
    let conn = ctx.conn().await?;
    for check in &checks {
        let result = sqlx::query_scalar::<_, Option<bool>>(&check.sql)
            .fetch_one(&mut *conn)
            .await;
        match result {
            Ok(Some(true)) => events.emit(Event::CheckPassed {
                name: check.name.clone(),
            }),
            Ok(other) => {
                let got = other.map_or("null".to_string(), |b| b.to_string());
                events.diagnose(
                    Severity::Error,
                    format!("check `{}` returned {got}, expected true", check.name),
                    None,
                );
                problems.push(format!("check `{}` failed", check.name));
            }
            Err(e) => {
                let failure = SqlFailure::from_sqlx(&e);
                events.diagnose(
                    Severity::Error,
                    format!("check `{}` could not run: {failure}", check.name),
                    None,
                );
                problems.push(format!("check `{}` failed", check.name));
            }
        }
    }
    if !problems.is_empty() {
        return Err(StageError::Failed(problems.join("; ")));
    }
    let at = snap.current_label().unwrap_or_else(|| "none".into());
    let checks = match checks.len() {
        0 => "no user checks configured".to_string(),
        1 => "1 user check passed".to_string(),
        n => format!("{n} user checks passed"),
    };
    // Where the run aimed: the head, or a `to` (a rollback's -1, an upgrade's goal).
    let held = snap.held_back_labels();
    let aim = match ctx.upgrade_goal() {
        None if held.is_empty() => "at the head",
        _ => "at the target",
    };
    let matched = snap.proof_words(aim);
    if !held.is_empty() {
        ctx.leave_next_step(format!(
            "after the rollout (once no instance of the old code runs), `ballast deploy --phase post` applies the contract step held back: {}",
            held.join(", ")
        ));
    }
    Ok(StageOutcome::Done(format!("at {at}; {matched}; {checks}")))
}
