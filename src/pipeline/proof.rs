//! What the database shows about a run's changes, read afresh: whether it is back
//! where the run found it (the recovery ladder's proof, and the runner's "nothing
//! changed"), and how many rows were written since the backup (what a restore loses).

use super::context::RunContext;

/// Proves the database is where the run found it: the same migration state as the
/// start, and the same schema shape as right before the upgrade. `Err` says what
/// differs (the first few schema differences).
pub async fn back_at_start(ctx: &mut RunContext) -> Result<(), String> {
    let now = ctx
        .snapshot()
        .await
        .map_err(|e| format!("cannot read the migration state: {e}"))?;
    let Some(start) = ctx.start() else {
        return Err("the run never read its starting state".into());
    };
    if now.fingerprint() != start.fingerprint() {
        return Err(format!(
            "the migrations applied differ from the start (now at {}, started at {})",
            now.current_label().unwrap_or_else(|| "none".into()),
            start.current_label().unwrap_or_else(|| "none".into())
        ));
    }
    let Some(before) = ctx.schema_before().cloned() else {
        return Ok(());
    };
    let shape = ctx
        .schema_shape()
        .await
        .map_err(|e| format!("cannot read the schema: {e}"))?;
    let differences = shape.differences(&before);
    if differences.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the schema differs from before the upgrade: {}",
        crate::db::schema_shape::summary(&differences)
    ))
}

/// Rows written per table since the backup, ballast's bookkeeping left out; `Err` says
/// why they cannot be told.
pub async fn rows_written_since_backup(ctx: &mut RunContext) -> Result<Vec<(String, i64)>, String> {
    let Some(before) = ctx.writes_at_backup().cloned() else {
        return Err("not measured".into());
    };
    let ours = ctx.bookkeeping_tables();
    let conn = ctx
        .conn()
        .await
        .map_err(|e| format!("cannot count them: {e}"))?;
    crate::db::table_writes::written_since(conn, &before, &ours)
        .await
        .map_err(|e| format!("cannot count them: {e}"))
}
