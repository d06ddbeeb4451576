//! `verify-backup` and `prune` as stages, for backup-and-prune jobs
//! (`pipelines/backup.toml`).

use super::{StageError, StageOutcome};
use crate::backup::retention::prune as apply_retention;
use crate::backup::verify_and_record;
use crate::events::Severity;
use crate::pipeline::RunContext;

/// Reads this run's backup back and checks it against its manifest; then the same
/// database's backups never read back yet (the deploys' own, which a deploy does not
/// stop to verify), so retention can count them and delete them by its rules. One of
/// those found corrupt is reported as an error; it fails nothing of this run.
pub async fn verify_backup(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let Some(artifact) = ctx.backup().cloned() else {
        return Ok(StageOutcome::Skipped("this run took no backup".into()));
    };
    let storage = ctx.storage().await?;
    let backup = ctx.settings().backup.clone();
    let listed = storage.find(Some(&artifact.id)).await?;
    let verified = verify_and_record(&storage, &listed, &backup)
        .await
        .map_err(|e| StageError::Failed(e.to_string()))?;
    let backlog: Vec<_> = storage
        .list()
        .await?
        .into_iter()
        .filter(|l| {
            l.verified_at.is_none()
                && l.manifest.id != artifact.id
                && l.manifest.database == listed.manifest.database
        })
        .collect();
    let mut sound = 0;
    for older in &backlog {
        match verify_and_record(&storage, older, &backup).await {
            Ok(_) => sound += 1,
            Err(e) => ctx.events().diagnose(
                Severity::Error,
                format!("an older backup failed its read-back: {e}"),
                Some(format!(
                    "it does not count for retention; look at it, then delete it with its manifest (`ballast backups` lists {})",
                    older.manifest.id
                )),
            ),
        }
    }
    let older = match (backlog.len(), sound) {
        (0, _) => String::new(),
        (n, s) if n == s => format!("; {n} older unverified backup(s) of it verified too"),
        (n, s) => format!("; {s} of {n} older unverified backup(s) of it verified, see above"),
    };
    let contents = match verified.contents_checked {
        true => format!("{} archive entries", verified.toc_entries),
        false => "contents not checked (sealed with age; no identity here, as it should be: backup.age_identity_file)".to_string(),
    };
    Ok(StageOutcome::Done(format!(
        "{} read back: SHA-256 matches, {contents}{older}",
        verified.id
    )))
}

/// Retention; deletes only with --yes (the scheduled job's explicit say-so).
pub async fn prune(ctx: &mut RunContext) -> Result<StageOutcome, StageError> {
    let storage = ctx.storage().await?;
    let delete = ctx.options().assume_yes;
    let decision = apply_retention(&storage, ctx.settings().backup.retention, delete).await?;
    for id in &decision.unverified {
        ctx.events().diagnose(
            Severity::Warning,
            format!("backup {id} is not verified: prune neither counts nor deletes it"),
            None,
        );
    }
    let verb = if delete {
        "deleted"
    } else {
        "would delete (dry run without --yes)"
    };
    Ok(StageOutcome::Done(format!(
        "kept {}, {verb} {}{}",
        decision.keep.len(),
        decision.delete.len(),
        if decision.delete.is_empty() {
            String::new()
        } else {
            format!(": {}", decision.delete.join(", "))
        }
    )))
}
