//! `preview`: the pending migrations, their SQL, the plan hash that pins them, and
//! what the lint finds in them (with the database's knowledge of which tables hold
//! data).

use super::{migrations_count, StageError, StageOutcome};
use crate::events::{Event, Severity};
use crate::lint::{self, Level};
use crate::pipeline::RunContext;

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let snap = ctx.goal_snapshot().await?;
    let plan = snap.plan_with_sql(ctx.settings()).await;
    ctx.events().emit(Event::Plan {
        plan: plan.clone(),
        held_back: snap.held_back_labels(),
    });
    let facts = match lint::facts::gather(ctx.conn().await?).await {
        Ok(facts) => Some(facts),
        Err(e) => {
            ctx.events().diagnose(
                Severity::Warning,
                format!("the lint assumes every table holds data: {e}"),
                None,
            );
            None
        }
    };
    let settings = ctx.settings();
    let findings = lint::run(
        &snap.lint_inputs(&plan),
        &settings.lint.for_deploy(ctx.options().phase),
        facts.as_ref(),
        Some(&snap.lint_schema(settings)),
    );
    for finding in &findings {
        ctx.events().emit(Event::Finding {
            finding: finding.clone(),
        });
    }
    for revision in crate::plan::unrendered(&plan) {
        ctx.events().diagnose(Severity::Warning, revision, None);
    }
    let summary = if plan.is_empty() {
        "nothing pending".to_string()
    } else {
        format!(
            "{} to apply, plan {}{}",
            migrations_count(plan.migrations.len()),
            plan.short_hash(),
            lint_summary(&findings)
        )
    };
    ctx.previewed(plan, findings);
    Ok(StageOutcome::Done(summary))
}

/// `; lint: 2 errors, 1 warning`, or nothing when clean.
pub fn lint_summary(findings: &[lint::Finding]) -> String {
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .count();
    match (errors, warnings) {
        (0, 0) => String::new(),
        _ => format!(
            "; lint: {errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        ),
    }
}
