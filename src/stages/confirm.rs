//! `confirm`: a person says yes, or the run stops. Never a silent yes.

use super::{migrations_count, StageError, StageOutcome};
use crate::pipeline::{RunContext, StageKind};

pub async fn run(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    if let Some(choice) = ctx.restore_choice().cloned() {
        let name = super::chosen_backup::announce(ctx, &choice).await?;
        return confirm_by_name(ctx, &name).await;
    }
    let pending = ctx.plan().map(|p| p.migrations.len());
    if pending == Some(0) {
        return Ok(StageOutcome::Skipped("nothing to apply".into()));
    }
    let risky = ctx
        .findings()
        .iter()
        .filter(|f| f.level == crate::lint::Level::Error)
        .count();
    if risky > 0 && !ctx.options().allow_risky {
        return confirm_risky(ctx, risky).await;
    }
    if ctx.options().assume_yes {
        return Ok(StageOutcome::Done("confirmed by --yes".into()));
    }
    if !crate::report::interactive() {
        return Err(StageError::NotConfirmed(
            "no terminal to ask for confirmation (or --non-interactive); pass --yes to run unattended".into(),
        ));
    }
    let server = ctx.server().await?;
    let current = ctx
        .start()
        .and_then(|s| s.current_label())
        .unwrap_or_else(|| "none".into());
    let target = ctx
        .plan()
        .and_then(|p| p.target())
        .map(|m| format!("{}_{}", m.version, m.name))
        .unwrap_or_else(|| "head".into());
    let place = format!(
        "database {} on {} (server {})",
        server.database, server.host, server.server_version
    );
    // Ask about the change the pipeline makes, not always about a deploy.
    let prompt = match ctx.first_change() {
        Some((StageKind::Downgrade, to)) => {
            // `-1` named as the migration it is now.
            let to = match (to, ctx.start()) {
                (Some(to), Some(start)) => match start.resolve_goal(to) {
                    Ok(named) if named != *to => format!("{named} ({to})"),
                    _ => to.clone(),
                },
                (Some(to), None) => to.clone(),
                (None, _) => "where this run found it".into(),
            };
            format!("Downgrade {place} from {current} to {to}?")
        }
        Some((StageKind::Restore, _)) => {
            format!("Restore this run's backup over {place}, replacing it?")
        }
        Some((StageKind::Roundtrip, _)) => format!(
            "Round-trip the newest migration on {place} (upgrade, downgrade, upgrade)? Use a throwaway database"
        ),
        _ => format!(
            "Deploy to {place}: {current} → {target}, {}{}?",
            pending
                .map(migrations_count)
                .unwrap_or_else(|| "all pending migrations".into()),
            match ctx.options().phase {
                Some(crate::migrations::Phase::Pre) => {
                    " (the expand step: migrations marked phase post are held back)"
                }
                Some(crate::migrations::Phase::Post) => " (the contract step included)",
                None => "",
            },
        ),
    };
    // With `[rehearse] before_deploy`, the numbers measured on the copy.
    let prompt = match ctx.rehearsal() {
        Some(numbers) => match prompt.strip_suffix('?') {
            Some(question) => format!("{question} ({numbers})?"),
            None => prompt,
        },
        None => prompt,
    };
    if crate::report::prompt::confirm(prompt)
        .await
        .map_err(prompt_failed)?
    {
        Ok(StageOutcome::Done("confirmed".into()))
    } else {
        Err(StageError::NotConfirmed("not confirmed".into()))
    }
}

/// Error-level lint findings: `--yes` alone is not enough. A person types `yes`, or a
/// script says `--allow-risky`.
async fn confirm_risky(ctx: &RunContext, risky: usize) -> Result<StageOutcome, StageError> {
    let what = format!(
        "the lint found {risky} error-level risk{} in the plan (see the preview)",
        if risky == 1 { "" } else { "s" }
    );
    if ctx.options().assume_yes || !crate::report::interactive() {
        return Err(StageError::NotConfirmed(format!(
            "{what}: fix them, allow reviewed ones with `-- ballast:allow <rule>` above the statement, or pass --allow-risky"
        )));
    }
    let prompt = format!("{what}. Type yes to deploy anyway");
    let typed = crate::report::prompt::typed(prompt)
        .await
        .map_err(prompt_failed)?;
    if typed == "yes" {
        Ok(StageOutcome::Done(format!("confirmed despite {what}")))
    } else {
        Err(StageError::NotConfirmed("not confirmed".into()))
    }
}

/// `ballast restore`: a person types the name of the database the restore creates or
/// replaces, or a script says `--yes`.
async fn confirm_by_name(ctx: &RunContext, name: &str) -> Result<StageOutcome, StageError> {
    if ctx.options().assume_yes {
        return Ok(StageOutcome::Done("confirmed by --yes".into()));
    }
    if !crate::report::interactive() {
        return Err(StageError::NotConfirmed(
            "no terminal to confirm the restore; pass --yes to run it unattended".into(),
        ));
    }
    let typed =
        crate::report::prompt::typed(format!("Type the database name ({name}) to go ahead"))
            .await
            .map_err(prompt_failed)?;
    if typed == name {
        Ok(StageOutcome::Done(format!("{name} typed")))
    } else {
        Err(StageError::NotConfirmed(format!(
            "`{typed}` is not `{name}`: nothing restored"
        )))
    }
}

/// A command that asks its own question before it changes anything (`stamp`,
/// `baseline`): `--yes`, or a person's yes at a terminal. `what` names the change in
/// the refusal ("nothing stamped").
pub(super) async fn ask(ctx: &RunContext, question: String, what: &str) -> Result<(), StageError> {
    if ctx.options().assume_yes {
        return Ok(());
    }
    if !crate::report::interactive() {
        return Err(StageError::NotConfirmed(format!(
            "no terminal to ask whether to {what} (or --non-interactive); pass --yes to run it unattended"
        )));
    }
    let yes = crate::report::prompt::confirm(question)
        .await
        .map_err(prompt_failed)?;
    if yes {
        Ok(())
    } else {
        Err(StageError::NotConfirmed(format!(
            "not confirmed: nothing {}",
            match what {
                "stamp" => "stamped",
                _ => "recorded",
            }
        )))
    }
}

/// The terminal could not be read: that is no yes.
pub(super) fn prompt_failed(e: crate::report::prompt::PromptError) -> StageError {
    StageError::NotConfirmed(format!("confirmation prompt failed: {e}"))
}
