//! The recovery ladder, after a failure that left changes behind (rung 1, "nothing
//! changed", is the runner's own check). Least destructive first, each rung journaled
//! as a stage of the run, and the climb stops at the first one that *provably* brings
//! the database back to where the run found it: the migration state equal to the
//! start's, and the schema's shape equal to the one taken right before the upgrade.
//!
//! - INVALID indexes a failed `CREATE INDEX CONCURRENTLY` left are dropped
//!   (`[on_failure] invalid_indexes`), since they would make any retry fail.
//! - Downgrade (`[on_failure] downgrade`): the engine's own downgrade back to the start,
//!   when every change is a whole migration it knows how to undo.
//! - Restore (`[on_failure] restore`): this run's backup, after saying how many rows
//!   were written since it was taken.
//!
//! The downgrade's proof compares structure, not rows. When a committed migration
//! destroyed data (`DROP COLUMN`, `DELETE`, ...: [`data_effects`]), a downgrade that
//! brings the structure back is not a recovery and the climb goes on to the restore;
//! when one only wrote rows, the recovery says that its down file is trusted for them.

use std::time::Instant;

use super::record::record_stage;
use crate::db::table_writes;
use crate::db::DbError;
use crate::events::{Event, Severity, StageRecord};
use crate::migrations::data_effects::{data_effects, has_statements, DataEffect};
use crate::pipeline::context::PartialChange;
use crate::pipeline::proof::{back_at_start, rows_written_since_backup};
use crate::pipeline::{
    InvalidIndexPolicy, Pipeline, RestorePolicy, RunContext, StageKind, StageSpec,
};
use crate::pipeline::{StageError, StageOutcome};

/// Where the climb ended.
pub struct Climb {
    /// How the database got back to the start, when it did (proven).
    pub recovered: Option<String>,
    /// What each rung did or why it was not tried, for the run's next steps.
    pub notes: Vec<String>,
}

pub async fn climb(
    pipeline: &Pipeline,
    ctx: &mut RunContext,
    records: &mut Vec<StageRecord>,
    downgrade_failed: bool,
) -> Climb {
    let mut notes = Vec::new();
    let policy = &pipeline.on_failure;

    let dropped = drop_invalid_indexes(policy.invalid_indexes, ctx, records, &mut notes).await;
    if dropped && ctx.committed().is_empty() && ctx.partial().is_empty() {
        // The index was the only change: prove it.
        match back_at_start(ctx).await {
            Ok(()) => {
                return Climb {
                    recovered: Some("the INVALID index it left was dropped".into()),
                    notes,
                }
            }
            Err(why) => notes.push(format!("still not where the run started: {why}")),
        }
    }

    let leftovers: Vec<String> = ctx
        .partial()
        .iter()
        .map(|p| match p {
            PartialChange::InvalidIndex { name, .. } => format!("INVALID index {name}"),
            PartialChange::Other(what) => what.clone(),
        })
        .collect();
    if !policy.downgrade {
        notes.push("no downgrade: the pipeline's [on_failure] downgrade is false".into());
    } else if downgrade_failed {
        notes.push("no downgrade rung: the stage that failed was the downgrade itself".into());
    } else if !leftovers.is_empty() {
        notes.push(format!(
            "no downgrade: it cannot undo a change that is not a whole migration ({})",
            leftovers.join("; ")
        ));
    } else {
        let spec = StageSpec::built(StageKind::Downgrade, Some("downgrade (recovery)"), None);
        let caveats = data_caveats(ctx);
        match run_rung(&spec, ctx, records).await {
            Ok(summary) => match back_at_start(ctx).await {
                Ok(()) if !caveats.unproven.is_empty() => notes.push(format!(
                    "the downgrade brought the schema back ({summary}), but not the data the run's migrations destroyed or may have changed ({}): only this run's backup has it",
                    caveats.unproven.join("; ")
                )),
                Ok(()) => {
                    let trusted = match caveats.written.as_slice() {
                        [] => String::new(),
                        written => format!(
                            "; rows the migrations changed ({}) are as their down files left them: the proof compares structure, not rows",
                            written.join("; ")
                        ),
                    };
                    return Climb {
                        recovered: Some(format!(
                            "the committed migrations were undone by their downgrades ({summary}){trusted}"
                        )),
                        notes,
                    };
                }
                Err(why) => notes.push(format!(
                    "the downgrade ran ({summary}) but the database is not where the run started: {why}"
                )),
            },
            Err(error) => notes.push(format!("the downgrade failed: {error}")),
        }
    }

    match restore_rung(policy.restore, ctx, records).await {
        Ok(summary) => match back_at_start(ctx).await {
            Ok(()) => Climb {
                recovered: Some(format!(
                    "the database was restored from this run's backup ({summary}); writes made since the backup are lost"
                )),
                notes,
            },
            Err(why) => {
                notes.push(format!(
                    "the backup was restored ({summary}) but the database is not where the run started: {why}"
                ));
                Climb {
                    recovered: None,
                    notes,
                }
            }
        },
        Err(why) => {
            notes.push(why.to_string());
            Climb {
                recovered: None,
                notes,
            }
        }
    }
}

/// What the committed migrations did to data, by migration: what the downgrade's
/// structural proof cannot see.
#[derive(Debug, Default)]
struct DataCaveats {
    /// Data no down file brings back (`2_orders: DROP COLUMN orders.note`), or SQL
    /// whose effect on rows cannot be read (a `DO` block, an Alembic revision offline
    /// mode cannot render): either way nothing proves the rows came back.
    unproven: Vec<String>,
    /// Rows changed in place: their down files are trusted for them.
    written: Vec<String>,
}

fn data_caveats(ctx: &RunContext) -> DataCaveats {
    let mut caveats = DataCaveats::default();
    let Some(plan) = ctx.plan() else {
        return caveats;
    };
    // Writing the migration state is the point of a migration, not a caveat.
    let bookkeeping: Vec<String> = ctx
        .bookkeeping_tables()
        .into_iter()
        .flat_map(|t| {
            let bare = t.rsplit('.').next().unwrap_or(&t).to_string();
            [t, bare]
        })
        .collect();
    let on_bookkeeping = |what: &str| bookkeeping.iter().any(|t| what.ends_with(&format!(" {t}")));
    for m in plan
        .migrations
        .iter()
        .filter(|m| ctx.committed().contains(&m.version))
    {
        // Alembic's SQL comes from offline mode, which not every revision renders
        // (and which only the preview asks for): no SQL is no proof, and the SQL read
        // from such a revision's op.execute() literals is only part of what it does.
        let unrendered =
            m.mode.is_some() && (!has_statements(&m.sql) || crate::plan::is_unrendered(&m.sql));
        let mut effects = data_effects(&m.sql);
        if unrendered {
            effects.push(DataEffect::Opaque(
                "its SQL could not be rendered offline".into(),
            ));
        }
        for effect in effects {
            let (list, what) = match effect {
                DataEffect::Destroys(what) => (&mut caveats.unproven, what),
                DataEffect::Opaque(what) => (
                    &mut caveats.unproven,
                    format!("{what}, whose effect on rows cannot be read"),
                ),
                DataEffect::Writes(what) if on_bookkeeping(&what) => continue,
                DataEffect::Writes(what) => (&mut caveats.written, what),
            };
            list.push(format!("{} {}: {what}", m.version, m.name));
        }
    }
    caveats
}

/// Drops (or, by policy, asks about) the INVALID indexes the run left. True when any
/// was dropped.
async fn drop_invalid_indexes(
    policy: InvalidIndexPolicy,
    ctx: &mut RunContext,
    records: &mut Vec<StageRecord>,
    notes: &mut Vec<String>,
) -> bool {
    let invalid: Vec<(String, String)> = ctx
        .partial()
        .iter()
        .filter_map(|p| match p {
            PartialChange::InvalidIndex { name, migration } => {
                Some((name.clone(), migration.clone()))
            }
            PartialChange::Other(_) => None,
        })
        .collect();
    let mut dropped_any = false;
    for (name, migration) in invalid {
        if policy == InvalidIndexPolicy::Ask {
            let asked = if crate::report::interactive() {
                crate::report::prompt::confirm(format!(
                    "{migration} left the INVALID index {name}. Drop it now (DROP INDEX CONCURRENTLY)?"
                ))
                .await
                    .is_ok_and(|yes| yes)
            } else {
                false
            };
            if !asked {
                notes.push(format!(
                    "the INVALID index {name} was left in place ([on_failure] invalid_indexes = \"ask\"); drop it with DROP INDEX CONCURRENTLY {name} before retrying"
                ));
                continue;
            }
        }
        let stage = "drop invalid index (recovery)".to_string();
        ctx.events().emit(Event::StageStarted {
            stage: stage.clone(),
        });
        let t = Instant::now();
        // Not in a transaction: CONCURRENTLY takes no lock that blocks the table.
        let sql = format!("drop index concurrently if exists {name}");
        let result = match ctx.conn().await {
            Ok(conn) => sqlx::raw_sql(&sql)
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(|e| DbError::query("dropping it", &e)),
            Err(e) => Err(e),
        };
        let outcome = match result {
            Ok(()) => {
                ctx.invalid_index_dropped(&name);
                dropped_any = true;
                Ok(StageOutcome::Done(format!(
                    "dropped the INVALID index {name} left by {migration}"
                )))
            }
            Err(e) => {
                notes.push(format!(
                    "dropping the INVALID index {name} failed ({e}); drop it with DROP INDEX CONCURRENTLY {name}"
                ));
                Err(StageError::Failed(e.to_string()))
            }
        };
        record_stage(ctx, records, &stage, t, &outcome);
    }
    dropped_any
}

/// Why the restore rung did not bring the database back.
#[derive(Debug, thiserror::Error)]
enum NoRestore {
    #[error("no automatic restore: this run took no backup")]
    NoBackup,
    #[error("no automatic restore: the pipeline's [on_failure] restore is \"never\"")]
    Never,
    #[error("no automatic restore: restore = \"ask\" and there is no terminal to ask ({lost})")]
    NoTerminal { lost: String },
    #[error("no automatic restore: the restore was declined")]
    Declined,
    #[error("restoring this run's backup failed: {0}")]
    Failed(StageError),
}

/// The restore rung: the policy, then the writes the restore would lose, then the
/// restore itself.
async fn restore_rung(
    policy: RestorePolicy,
    ctx: &mut RunContext,
    records: &mut Vec<StageRecord>,
) -> Result<String, NoRestore> {
    let Some(backup) = ctx.backup().cloned() else {
        return Err(NoRestore::NoBackup);
    };
    if policy == RestorePolicy::Never {
        return Err(NoRestore::Never);
    }
    let lost = writes_since_backup(ctx).await;
    ctx.events().diagnose(
        Severity::Warning,
        format!("restoring {} would lose {lost}", backup.id),
        Some("the counts include the run's own migrations, and may lag a second behind".into()),
    );
    if policy == RestorePolicy::Ask {
        if !crate::report::interactive() {
            return Err(NoRestore::NoTerminal { lost });
        }
        let prompt = format!(
            "The deploy failed after changing the database. Restore this run's backup {} now? {lost}; they will be lost",
            backup.id
        );
        if !crate::report::prompt::confirm(prompt)
            .await
            .is_ok_and(|yes| yes)
        {
            return Err(NoRestore::Declined);
        }
    }
    let spec = StageSpec::built(StageKind::Restore, Some("restore (recovery)"), None);
    run_rung(&spec, ctx, records)
        .await
        .map_err(NoRestore::Failed)
}

/// "N rows written in K tables since the backup (...)", or why it cannot be told.
/// Ballast's own bookkeeping (ledger, journal, version table) is no write a restore
/// would lose that anyone cares about: it is left out.
async fn writes_since_backup(ctx: &mut RunContext) -> String {
    match rows_written_since_backup(ctx).await {
        Ok(written) => table_writes::describe(&written),
        Err(why) => format!("writes made since the backup ({why})"),
    }
}

/// Runs one rung as a stage of the run: recorded as any stage is; its summary.
async fn run_rung(
    spec: &StageSpec,
    ctx: &mut RunContext,
    records: &mut Vec<StageRecord>,
) -> Result<String, StageError> {
    let stage = spec.display_name();
    ctx.events().emit(Event::StageStarted {
        stage: stage.clone(),
    });
    crate::interrupt::set_activity(format!("running the recovery rung {stage}"));
    let t = Instant::now();
    let result = crate::stages::run(spec, ctx).await;
    record_stage(ctx, records, &stage, t, &result);
    result.map(|(StageOutcome::Done(s) | StageOutcome::Skipped(s))| s)
}
