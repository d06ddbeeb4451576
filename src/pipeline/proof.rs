//! What the database shows about a run's changes, read afresh: whether it is back
//! where the run found it (the recovery ladder's proof, and the runner's "nothing
//! changed"), and how many rows were written since the backup (what a restore loses).

use super::context::RunContext;
use crate::db::DbError;
use crate::engine::EngineError;

/// Why the database is not proven back where the run found it.
#[derive(Debug, thiserror::Error)]
pub enum NotBack {
    #[error("cannot read the migration state: {0}")]
    StateUnreadable(#[from] EngineError),
    #[error("the run never read its starting state")]
    NoStart,
    #[error("the migrations applied differ from the start (now at {now}, started at {start})")]
    MigrationsDiffer { now: String, start: String },
    #[error("cannot read the schema: {0}")]
    SchemaUnreadable(DbError),
    #[error("the schema differs from before the upgrade: {0}")]
    SchemaDiffers(String),
}

/// Proves the database is where the run found it: the same migration state as the
/// start, and the same schema shape as right before the upgrade. `Err` says what
/// differs (the first few schema differences).
pub async fn back_at_start(ctx: &mut RunContext) -> Result<(), NotBack> {
    let now = ctx.snapshot().await?;
    let Some(start) = ctx.start() else {
        return Err(NotBack::NoStart);
    };
    if now.fingerprint() != start.fingerprint() {
        let label =
            |s: &crate::engine::Snapshot| s.current_label().unwrap_or_else(|| "none".into());
        return Err(NotBack::MigrationsDiffer {
            now: label(&now),
            start: label(start),
        });
    }
    let Some(before) = ctx.schema_before().cloned() else {
        return Ok(());
    };
    let shape = ctx
        .schema_shape()
        .await
        .map_err(NotBack::SchemaUnreadable)?;
    let differences = shape.differences(&before);
    if differences.is_empty() {
        return Ok(());
    }
    Err(NotBack::SchemaDiffers(crate::db::schema_shape::summary(
        &differences,
    )))
}

/// Why the rows written since the backup cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum WritesUnknown {
    #[error("not measured")]
    NotMeasured,
    #[error("cannot count them: {0}")]
    Unreadable(#[from] DbError),
}

/// Rows written per table since the backup, ballast's bookkeeping left out.
pub async fn rows_written_since_backup(
    ctx: &mut RunContext,
) -> Result<Vec<(String, i64)>, WritesUnknown> {
    let Some(before) = ctx.writes_at_backup().cloned() else {
        return Err(WritesUnknown::NotMeasured);
    };
    let ours = ctx.bookkeeping_tables();
    let conn = ctx.conn().await?;
    Ok(crate::db::table_writes::written_since(conn, &before, &ours).await?)
}
