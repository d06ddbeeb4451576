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
use crate::trace::{compare, limits, measure, Rehearsal, Tracer, Verdict};

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
    crate::faults::pause("rehearsal");
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
    let tracer = Tracer::new();
    tracer.storage(&mut conn, true).await?;
    let sampler = Sampler::start(&settings.database, &tracer).await?;
    let run = RunFacts {
        run_id: Uuid::new_v4(),
        settings: settings.clone(),
        events: events.only_diagnoses(),
        server_major,
        before: None,
        trace: Some(tracer.clone()),
    };
    let mut failed = None;
    for step in snap.apply_steps(&cuts) {
        match snap.apply(&step, &mut conn, &run).await {
            Ok(report) if report.connection_lost => {
                db::close(conn).await;
                conn = db::connect(&settings.database, "rehearsal").await?;
            }
            Ok(_) => {}
            Err(e) => {
                failed = Some(e.message);
                break;
            }
        }
    }
    let stopped = sampler.stop().await;
    if failed.is_some() {
        // The failed step's session may be unusable; the storage is read anew.
        db::close(conn).await;
        conn = db::connect(&settings.database, "rehearsal").await?;
    }
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
