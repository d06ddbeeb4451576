//! The plan run on the copy, traced: the copy's own state read by the engine and
//! aimed like the deploy's (its goal, its phase), then its steps applied as the
//! upgrade applies them (one transaction for consecutive transactional migrations,
//! each `-- no-transaction` one alone, Alembic's one upgrade), with the same
//! `lock_timeout` and `statement_timeout`, each statement through the tracer and a
//! sampler watching from a second connection.

use uuid::Uuid;

use super::copy::{self, Copy};
use super::RehearseError;
use crate::config::Settings;
use crate::db::{self, ledger};
use crate::engine::change::RunFacts;
use crate::engine::{Engine, Snapshot};
use crate::events::Events;
use crate::lint::Finding;
use crate::storage::manifest::Manifest;
use crate::storage::Storage;
use crate::trace::sampler::Sampler;
use crate::trace::{compare, limits, measure, Applier, Rehearsal, Tracer, Verdict};

/// What the deploy would run: where its upgrade aims, its phase, the plan's lint and
/// the tables that keep migration state (left out of the measure).
pub struct Asked<'a> {
    pub goal: Option<&'a str>,
    pub phase: Option<crate::migrations::Phase>,
    pub findings: &'a [Finding],
    pub bookkeeping: &'a [String],
}

/// Restores `manifest`'s backup into a copy, runs the plan there traced, drops the
/// copy, and judges the measure against `[rehearse]`'s limits.
pub async fn rehearse(
    settings: &Settings,
    storage: &Storage,
    manifest: &Manifest,
    asked: &Asked<'_>,
    events: &Events,
) -> Result<Rehearsal, RehearseError> {
    let copy = copy::make(settings, storage, manifest, events).await?;
    let traced = trace_plan(&copy, asked, events).await;
    let described = copy.describe();
    let restore_ms = copy.restore_ms;
    let row_counts = copy.restored.row_counts.clone();
    copy.drop(events).await;
    let (report, migrations, failed) = traced?;
    let limits = settings.rehearse.limits;
    let exceeded = limits::exceeded(&report, &limits);
    let long_ms = limits
        .max_write_block
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1000);
    Ok(Rehearsal {
        backup: manifest.id.clone(),
        copy: described,
        restore_ms,
        tables: row_counts.len(),
        rows: row_counts.iter().map(|(_, n)| n).sum(),
        row_counts,
        migrations_rehearsed: migrations,
        lint: compare::compare(&report, asked.findings, long_ms),
        verdict: Verdict {
            ok: failed.is_none() && exceeded.is_empty(),
            failed,
            exceeded,
        },
        report,
    })
}

/// (the measure, the migrations run, why the plan failed on the copy).
type Traced = (crate::trace::Report, Vec<String>, Option<String>);

async fn trace_plan(
    copy: &Copy,
    asked: &Asked<'_>,
    events: &Events,
) -> Result<Traced, RehearseError> {
    let settings = &copy.settings;
    let mut conn = db::connect(&settings.database, "rehearsal").await?;
    let server_major = db::server_info(&mut conn).await?.major;
    let mut engine = Engine::open(settings);
    let snap = engine
        .snapshot(settings, &mut conn, true)
        .await
        .map_err(|e| RehearseError::Failed(format!("reading the copy's migrations: {e}")))?;
    let snap: Snapshot = snap
        .aimed(asked.goal, asked.phase)
        .map_err(RehearseError::Refused)?;
    if let Some(refusal) = snap.refusal() {
        return Err(RehearseError::Refused(format!("on the copy: {refusal}")));
    }
    if snap.is_blocked() {
        let problems = snap.diagnose(events);
        return Err(RehearseError::Refused(format!(
            "the copy's migrations are not in a state a deploy runs from ({problems} problem{}, see above)",
            if problems == 1 { "" } else { "s" }
        )));
    }
    let plan = snap.plan();
    let migrations: Vec<String> = snap.pending_labels();
    let cuts: Vec<String> = plan
        .migrations
        .iter()
        .filter(|m| m.commits_after.is_some())
        .map(|m| m.version.clone())
        .collect();
    ledger::ensure_tables(&mut conn, &settings.database.schema).await?;
    // A restored copy has no statistics, and every row is new: autovacuum would start
    // on it while the plan runs, and a statement would wait for it to give way. A
    // maintained production table has both done.
    let vacuumed = std::time::Instant::now();
    sqlx::raw_sql("vacuum (analyze)")
        .execute(&mut conn)
        .await
        .map_err(|e| db::DbError::query("vacuuming the copy", &e))?;
    events.diagnose(
        crate::events::Severity::Detail,
        format!(
            "the copy vacuumed and analyzed in {}",
            crate::text::human_duration(vacuumed.elapsed().as_millis() as u64)
        ),
        None,
    );
    let tracer = Tracer::new();
    tracer.applied_by(match snap.applying_application(settings) {
        Some(name) => Applier::Named(name),
        None => Applier::Pid(backend_pid(&mut conn).await?),
    });
    tracer.storage(&mut conn, true).await?;
    let sampler = Sampler::start(&settings.database, &tracer).await?;
    crate::faults::pause("rehearsal");
    let run = RunFacts {
        run_id: Uuid::new_v4(),
        settings: settings.clone(),
        events: events.only_diagnoses(),
        server_major,
        before: None,
        trace: Some(tracer.clone()),
    };
    let applied = apply_all(&snap, &cuts, conn, &run).await;
    // Stopped whatever happened: its session would keep the copy from being dropped.
    let stopped = sampler.stop().await;
    let (mut conn, failed) = applied?;
    tracer.storage(&mut conn, false).await?;
    db::close(conn).await;
    if let Some(e) = stopped {
        return Err(RehearseError::Failed(format!(
            "the rehearsal's lock sampler stopped: {e}"
        )));
    }
    let report = measure(&tracer.recording(), asked.bookkeeping);
    Ok((report, migrations, failed))
}

/// The plan's steps on the copy, as the upgrade stage runs them; the session after
/// them (a new one where a step lost it) and why the plan failed, if it did.
async fn apply_all(
    snap: &Snapshot,
    cuts: &[String],
    mut conn: sqlx::PgConnection,
    run: &RunFacts,
) -> Result<(sqlx::PgConnection, Option<String>), RehearseError> {
    let database = &run.settings.database;
    for step in snap.apply_steps(cuts) {
        let (lost, failed) = match snap.apply(&step, &mut conn, run).await {
            Ok(report) => (report.connection_lost, None),
            Err(e) => (true, Some(e.message)),
        };
        if lost {
            // Alembic ran as a child, or the step failed: its session is replaced.
            db::close(conn).await;
            conn = db::connect(database, "rehearsal").await?;
            if let (Some(trace), None) = (&run.trace, snap.applying_application(&run.settings)) {
                trace.applied_by(Applier::Pid(backend_pid(&mut conn).await?));
            }
        }
        if failed.is_some() {
            return Ok((conn, failed));
        }
    }
    Ok((conn, None))
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> Result<i32, RehearseError> {
    sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(conn)
        .await
        .map_err(|e| db::DbError::query("reading the session's pid", &e).into())
}
