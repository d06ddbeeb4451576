//! `rehearse`: the pending plan run on a restored copy of the target (this run's
//! backup, or the one `ballast rehearse --from` chose), measured, and judged against
//! `[rehearse]`'s limits before the target is touched. Over a limit, or a plan that
//! fails on the copy, refuses the run (exit 3). The restore is recorded beside the
//! backup's manifest: the backup is proved restorable, and how long that takes.

use super::{StageError, StageOutcome};
use crate::pipeline::RunContext;
use crate::rehearse::{rehearse, Asked, RehearseError};
use crate::storage::{Listed, Storage};
use crate::trace::Rehearsal;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    if ctx.plan().is_some_and(|p| p.is_empty()) {
        return Ok(StageOutcome::Skipped(
            "nothing to apply, so nothing to rehearse".into(),
        ));
    }
    let storage = ctx.storage().await?;
    let backup = which_backup(ctx, &storage).await?;
    let settings = ctx.settings().clone();
    let findings = ctx.findings().to_vec();
    let bookkeeping = ctx.bookkeeping_tables();
    let asked = Asked {
        goal: ctx.upgrade_goal(),
        phase: ctx.options().phase,
        findings: &findings,
        bookkeeping: &bookkeeping,
    };
    let events = ctx.events().clone();
    let rehearsal = rehearse(&settings, &storage, &backup.manifest, &asked, &events)
        .await
        .map_err(|e| match e {
            // A Ctrl-C drops the copy under the rehearsal: whatever broke then, the run
            // ends as interrupted before anything changed (exit 3), as the handler's.
            _ if crate::interrupt::requested() => StageError::Refused(
                "interrupted by a signal during the rehearsal; the target was not touched".into(),
            ),
            RehearseError::Refused(message) => StageError::Refused(message),
            RehearseError::Failed(message) => {
                StageError::Failed(format!("{message}; the target was not touched"))
            }
        })?;
    record_restore(ctx, &storage, &backup, &rehearsal).await;
    // An older backup (`--from`) may have another plan pending than the target.
    let planned = ctx.plan().map(|p| p.migrations.len());
    if planned.is_some_and(|n| n != rehearsal.migrations_rehearsed.len()) {
        events.diagnose(
            crate::events::Severity::Warning,
            format!(
                "backup {} had {} pending where the target has {}: the rehearsal ran the backup's plan ({})",
                rehearsal.backup,
                crate::text::migrations_count(rehearsal.migrations_rehearsed.len()),
                crate::text::migrations_count(planned.unwrap_or(0)),
                crate::text::short_list(&rehearsal.migrations_rehearsed)
            ),
            None,
        );
    }
    events.emit(crate::events::Event::Rehearsal {
        rehearsal: Box::new(rehearsal.clone()),
    });
    if let Some(path) = ctx.options().rehearsal_report.clone() {
        write_page(ctx, &path, &rehearsal)?;
    }
    let summary = crate::report::rehearsal::summary(&rehearsal);
    ctx.set_rehearsal(summary.clone());
    if let Some(failed) = &rehearsal.verdict.failed {
        return Err(StageError::Refused(format!(
            "the plan failed on the rehearsal's copy, as it would on the target: {failed}. The target was not touched: fix the migration (or the data) and deploy again"
        )));
    }
    if !rehearsal.verdict.exceeded.is_empty() {
        let reasons: Vec<String> = rehearsal
            .verdict
            .exceeded
            .iter()
            .map(|e| with_fix(e, ctx.findings()))
            .collect();
        return Err(StageError::Refused(format!(
            "the rehearsal went over its limits, so the target was not touched: {}",
            reasons.join("; ")
        )));
    }
    Ok(StageOutcome::Done(format!(
        "{} ({} migration{} on {})",
        summary,
        rehearsal.migrations_rehearsed.len(),
        if rehearsal.migrations_rehearsed.len() == 1 {
            ""
        } else {
            "s"
        },
        rehearsal.copy
    )))
}

/// This run's backup, or the one `--from` names (`latest`: the newest).
async fn which_backup(ctx: &RunContext, storage: &Storage) -> Result<Listed, StageError> {
    let id = match (ctx.options().rehearse_from.as_deref(), ctx.backup()) {
        (Some("latest"), _) => {
            let database = ctx.settings().database.database_name();
            return storage
                .newest_of(&database)
                .await
                .map_err(|e| StageError::Config(e.to_string()));
        }
        (Some(id), _) => Some(id.to_string()),
        (None, Some(artifact)) => Some(artifact.id.clone()),
        (None, None) => {
            return Err(StageError::Config(
                "a rehearsal restores a backup: put a backup stage before the rehearse stage, or run `ballast rehearse --from latest|ID`".into(),
            ))
        }
    };
    storage
        .find(id.as_deref())
        .await
        .map_err(|e| StageError::Config(e.to_string()))
}

/// The lint's safe rewrite of the statement over a limit, where it has one: a lock
/// finding of that migration at that statement (of that revision, for Alembic).
fn with_fix(e: &crate::trace::Exceeded, findings: &[crate::lint::Finding]) -> String {
    let said = crate::trace::describe(e);
    let fix = findings
        .iter()
        .filter(|f| f.category == crate::lint::Category::Lock && !f.fix.is_empty())
        .filter(|f| Some(&f.migration) == e.migration.as_ref())
        .filter(|f| e.line.is_none_or(|line| f.line >= line))
        .min_by_key(|f| e.line.map(|line| f.line - line).unwrap_or(0))
        .map(|f| format!(" (the lint's safe way: {})", f.fix));
    match fix {
        Some(fix) => format!("{said}{fix}"),
        None if e.limit == "max_duration" => format!(
            "{said} (split the plan into smaller deploys, or raise the limit)"
        ),
        None => format!(
            "{said} (split the change so no statement holds the lock that long: docs/rehearsal.md; or raise the limit)"
        ),
    }
}

/// The backup restored: recorded beside its manifest (`ID.verified.json`), with how
/// long the restore took and the row counts.
async fn record_restore(
    ctx: &RunContext,
    storage: &Storage,
    backup: &Listed,
    rehearsal: &Rehearsal,
) {
    let m = &backup.manifest;
    let record = serde_json::json!({
        "id": m.id,
        "compressed_bytes": m.compressed_bytes,
        "raw_bytes": m.raw_bytes,
        "sha256": m.sha256,
        "verified_at": chrono::Utc::now().to_rfc3339(),
        "contents_checked": true,
        "restore_drill": {
            "restored_at": chrono::Utc::now().to_rfc3339(),
            "duration_ms": rehearsal.restore_ms,
            "tables": rehearsal.tables,
            "rows": rehearsal.rows,
            "row_counts": rehearsal.row_counts.iter().cloned().collect::<std::collections::BTreeMap<String, i64>>(),
            "by": "rehearsal",
            "run_id": ctx.run_id().to_string(),
        },
    });
    if let Err(e) = storage.mark_verified(&m.id, &record).await {
        ctx.events().diagnose(
            crate::events::Severity::Warning,
            format!("the backup restored, but recording that beside its manifest failed: {e}"),
            None,
        );
    }
}

fn write_page(
    ctx: &RunContext,
    path: &std::path::Path,
    rehearsal: &Rehearsal,
) -> Result<(), StageError> {
    let heading = format!(
        "{} on {}: {} rehearsed (backup {})",
        ctx.settings().database.database_name(),
        ctx.settings().database.display_url(),
        crate::text::short_list(&rehearsal.migrations_rehearsed),
        rehearsal.backup
    );
    let page = crate::trace::html::page(&rehearsal.report, &heading, &rehearsal.problems());
    std::fs::write(path, page)
        .map_err(|e| StageError::Failed(format!("writing the report {}: {e}", path.display())))
}
