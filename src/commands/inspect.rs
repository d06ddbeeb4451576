//! `status` and `plan`: read-only looks at a target. They create nothing, not even
//! ballast's tables. `plan` also shows what the lint finds in the pending migrations.

use crate::cli::GlobalArgs;
use crate::config::Settings;
use crate::db;
use crate::engine::{self, Snapshot};
use crate::events::{Event, Events};
use crate::exit_code;
use crate::migrations::Phase;
use crate::stages::state_check::report_phased;

type Read = (Settings, Snapshot, Option<crate::lint::DbFacts>);

/// Reads the target; with `lint_facts`, also what the lint needs to know of its tables.
/// `phase`: cut to what a deploy of that phase runs (refused, exit 3, when it could not).
async fn read(
    g: &GlobalArgs,
    events: &Events,
    lint_facts: bool,
    phase: Option<Phase>,
) -> Result<Read, i32> {
    let settings = super::load_settings(g)?;
    let mut conn = db::connect(&settings.database, "status")
        .await
        .map_err(|e| super::fail(g, &e.to_string(), exit_code::USAGE))?;
    let snap = engine::Engine::open(&settings)
        .snapshot(&settings, &mut conn, false)
        .await
        .map_err(|e| {
            let code = match e.is_refusal() {
                true => exit_code::REFUSED,
                false => exit_code::USAGE,
            };
            super::fail(g, &e.to_string(), code)
        });
    let facts = match lint_facts {
        true => crate::lint::facts::gather(&mut conn).await.ok(),
        false => None,
    };
    db::close(conn).await;
    let whole = snap?;
    let phased = whole.in_phase(phase);
    report_phased(events, &whole, &phased);
    let snap = phased.map_err(|e| super::fail(g, &e.to_string(), exit_code::REFUSED))?;
    Ok((settings, snap, facts))
}

/// Exit 0 when up to date (of `phase`: `pre` ignores the held-back contract step) and
/// clean, 1 otherwise.
pub async fn status(g: &GlobalArgs, phase: Option<Phase>) -> i32 {
    let events = super::events(g, false);
    match read(g, &events, false, phase).await {
        Ok((_, snap, _)) if snap.pending_count() == 0 && !snap.is_blocked() => exit_code::SUCCESS,
        Ok(_) => exit_code::FAILED_RESTORED,
        Err(code) => code,
    }
}

pub async fn plan(g: &GlobalArgs, full: bool, phase: Option<Phase>) -> i32 {
    let events = super::events(g, full);
    match read(g, &events, true, phase).await {
        Ok((settings, snap, facts)) => {
            let plan = snap.plan_with_sql(&settings).await;
            let findings = crate::lint::run(
                &snap.lint_inputs(&plan),
                &settings.lint.for_deploy(phase),
                facts.as_ref(),
                Some(&snap.lint_schema(&settings)),
            );
            let not_linted = crate::plan::unrendered(&plan);
            events.emit(Event::Plan {
                plan,
                held_back: snap.held_back_labels(),
            });
            for finding in findings {
                events.emit(Event::Finding { finding });
            }
            for revision in not_linted {
                events.diagnose(crate::events::Severity::Warning, revision, None);
            }
            if snap.is_blocked() {
                exit_code::FAILED_RESTORED
            } else {
                exit_code::SUCCESS
            }
        }
        Err(code) => code,
    }
}
