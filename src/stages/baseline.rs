//! `baseline`: the sql engine's way to adopt a database that has tables but no ledger
//! (built by hand, or by a tool whose ledger is gone): records the migrations up to a
//! version as applied, in the ledger the target keeps, WITHOUT running them; `none`
//! records that none is (the ledger is created empty, and the next deploy runs them
//! all). Asks first, under the deploy lock, journaled like any run.

use super::{confirm::ask, deploy_lock, StageError, StageOutcome};
use crate::db::ledger::{self, NewRow};
use crate::engine::sql::SqlSnapshot;
use crate::engine::Snapshot;
use crate::migrations::Migration;
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext, to: Option<&str>) -> Result<StageOutcome, StageError> {
    let Some(to) = to else {
        return Err(StageError::Refused(
            "a baseline stage needs `to` (a migration's version, or none)".into(),
        ));
    };
    let snap = sql_snapshot(ctx.snapshot().await?)?;
    let marked = up_to(&snap, to)?;
    let tables = match snap.state.untracked.len() {
        0 => "no table".to_string(),
        n => format!(
            "{n} table(s) ({})",
            crate::text::short_list(&snap.state.untracked)
        ),
    };
    let ledger = snap.ledger.ledger.describe(&snap.schema);
    let question = match marked.last() {
        Some(last) => format!(
            "Found {tables} and no ledger in schema {}. Record the {} migration(s) up to {} as applied in {ledger}, WITHOUT running them? Only when they built what is there.",
            snap.schema,
            marked.len(),
            last.label()
        ),
        None => format!(
            "Found {tables} and no ledger in schema {}. Record that none of the {} migration(s) is applied (create {ledger} empty)? The next deploy runs them all.",
            snap.schema,
            snap.source.len()
        ),
    };
    ask(ctx, question, "baseline").await?;
    deploy_lock::hold(ctx).await?;
    deploy_lock::hold_tools(ctx).await?;
    // Under the lock: the state the question was about, still.
    let now = sql_snapshot(ctx.snapshot().await?)?;
    if !now.applied.is_empty() || now.ledger != snap.ledger {
        return Err(StageError::Refused(format!(
            "{} changed while the question was asked (it records {} migration(s) now); nothing was recorded: run `ballast status`",
            now.ledger.ledger.describe(&now.schema),
            now.applied.len()
        )));
    }
    record(ctx, &snap, &marked).await?;
    let label = marked.last().map(|m| m.label());
    ctx.record_partial_change(format!(
        "stamped {} (baseline: {} migration(s) recorded, none run)",
        label.as_deref().unwrap_or("none"),
        marked.len()
    ));
    ctx.mark_changes_started();
    Ok(StageOutcome::Done(match label {
        Some(label) => format!(
            "{ledger} records the {} migration(s) up to {label} as applied; none was run",
            marked.len()
        ),
        None => format!("{ledger} created empty: every migration is pending"),
    }))
}

fn sql_snapshot(snap: Snapshot) -> Result<SqlSnapshot, StageError> {
    super::refuse_if_engine_refuses(&snap)?;
    match snap {
        Snapshot::Sql(snap) if snap.applied.is_empty() => Ok(snap),
        Snapshot::Sql(snap) => Err(StageError::Refused(format!(
            "{} already records {} applied migration(s): baseline is for a database with no ledger yet",
            snap.ledger.ledger.describe(&snap.schema),
            snap.applied.len()
        ))),
        Snapshot::Alembic(_) => Err(StageError::Refused(
            "baseline is for SQL migration folders; an Alembic project's is `ballast stamp REV`"
                .into(),
        )),
    }
}

/// The migrations up to `to` (a version or a label), in order; none for `none`.
fn up_to<'a>(snap: &'a SqlSnapshot, to: &str) -> Result<Vec<&'a Migration>, StageError> {
    if to == "none" {
        return Ok(Vec::new());
    }
    let named = snap.source.iter().position(|m| {
        m.label() == to || crate::migrations::Version::parse(to).as_ref() == Some(&m.version)
    });
    match named {
        Some(i) => Ok(snap.source[..=i].iter().collect()),
        None => Err(StageError::Config(format!(
            "no migration {to} among the files: baseline takes the version of one (`ballast status` lists them), or none"
        ))),
    }
}

/// The ledger, created as its tool creates it, with a row per migration in `marked`,
/// in one transaction.
async fn record(
    ctx: &mut RunContext,
    snap: &SqlSnapshot,
    marked: &[&Migration],
) -> Result<(), StageError> {
    let schema = ctx.settings().database.schema.clone();
    let run_id = ctx.run_id();
    let led = &snap.ledger.ledger;
    let conn = ctx.conn().await?;
    ledger::ensure_tables(&mut *conn, &schema).await?;
    let begin =
        |e: sqlx::Error| crate::db::DbError::query("beginning the baseline transaction", &e);
    sqlx::query("begin")
        .execute(&mut *conn)
        .await
        .map_err(begin)?;
    let written = async {
        led.ensure(&mut *conn).await?;
        for m in marked {
            let row = NewRow {
                version: m.version.as_str(),
                name: &m.name,
                checksum: &m.checksum,
                run_id,
                duration_ms: 0,
                transactional: m.transactional,
            };
            led.record(&mut *conn, &schema, m, row).await?;
        }
        Ok::<_, crate::db::DbError>(())
    }
    .await;
    let end = match written {
        Ok(()) => "commit",
        Err(_) => "rollback",
    };
    let ended = sqlx::query(end).execute(&mut *conn).await;
    written?;
    ended.map_err(|e| crate::db::DbError::query("committing the baseline", &e))?;
    Ok(())
}
