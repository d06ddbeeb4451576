//! `restore [ID]`: put a backup back, for disaster recovery and drills. This command
//! picks the backup; the built-in `restore` pipeline (`verify-backup → confirm →
//! restore`) verifies it, says what it will replace, asks, and restores, run and
//! journaled by the one runner like any pipeline (`ballast history` lists it).

use crate::cli::GlobalArgs;
use crate::exit_code;
use crate::pipeline::{Pipeline, RestoreChoice};
use crate::storage::{Listed, Storage};
use crate::text::human_bytes;

pub async fn run(
    g: &GlobalArgs,
    id: Option<&str>,
    into: Option<&str>,
    end_sessions: bool,
    identity: Option<&std::path::Path>,
) -> i32 {
    let mut settings = match super::load_settings(g) {
        Ok(s) => s,
        Err(code) => return code,
    };
    settings.backup.restore_ends_sessions |= end_sessions;
    if let Some(identity) = identity {
        settings.backup.age_identity_file = Some(identity.to_path_buf());
    }
    // A usage error (no such backup) is no restore, as a pipeline that never started
    // is not journaled either.
    let (storage, backup) = match choose(&settings, id).await {
        Ok(chosen) => chosen,
        Err((code, message)) => return super::fail(g, &message, code),
    };
    if let Err((code, message)) = can_open(&settings, &storage, &backup).await {
        return super::fail(g, &message, code);
    }
    let mut rerun = format!("restore {}", backup.manifest.id);
    if let Some(name) = into {
        rerun.push_str(&format!(" --into {name}"));
    }
    let choice = RestoreChoice {
        backup,
        into: into.map(str::to_string),
    };
    let summary = super::pipeline_run::run_pipeline(
        g,
        settings,
        Pipeline::restore(rerun),
        Some(choice),
        super::pipeline_run::options(g, None),
    )
    .await;
    // Said on stderr too, as every command's error: a restore runs by hand, under
    // pressure, its output often piped away.
    match &summary.error {
        Some(error) if !g.json => super::fail(g, error, summary.exit_code),
        _ => summary.exit_code,
    }
}

type Failure = (i32, String);

/// The id that names the newest backup, for scripted drills.
const LATEST: &str = "latest";

/// The backup the person named (or picks from a list at a terminal), and the storage
/// it is in.
async fn choose(
    settings: &crate::config::Settings,
    id: Option<&str>,
) -> Result<(Storage, Listed), Failure> {
    let usage = |e: &dyn std::fmt::Display| (exit_code::USAGE, e.to_string());
    settings.database.url().map_err(|e| usage(&e))?;
    let storage = Storage::open(&settings.backup)
        .await
        .map_err(|e| usage(&e))?;
    let listed = pick(&storage, id, &settings.database.database_name()).await?;
    Ok((storage, listed))
}

/// The backup to restore: `id`, or with `latest` the newest backup OF THE TARGET
/// DATABASE (a storage folder shared by several databases holds theirs too).
async fn pick(storage: &Storage, id: Option<&str>, database: &str) -> Result<Listed, Failure> {
    if id == Some(LATEST) {
        return storage
            .newest_of(database)
            .await
            .map_err(|e| (exit_code::USAGE, e.to_string()));
    }
    if let Some(id) = id {
        return storage
            .find(Some(id))
            .await
            .map_err(|e| (exit_code::USAGE, e.to_string()));
    }
    if !crate::report::interactive() {
        return Err((
            exit_code::USAGE,
            "no backup id given and no terminal to pick one: name one (`ballast backups` lists them) or say `latest`".into(),
        ));
    }
    let listed = storage
        .list()
        .await
        .map_err(|e| (exit_code::USAGE, e.to_string()))?;
    if listed.is_empty() {
        return Err((
            exit_code::USAGE,
            format!("no backups in {}", storage.describe()),
        ));
    }
    let items: Vec<String> = listed
        .iter()
        .map(|l| {
            format!(
                "{}  {}  revision {}  {}{}",
                l.manifest.id,
                l.manifest.started_at.chars().take(19).collect::<String>(),
                l.manifest.revision.as_deref().unwrap_or("none"),
                human_bytes(l.manifest.compressed_bytes),
                if l.verified_at.is_some() {
                    "  verified"
                } else {
                    ""
                }
            )
        })
        .collect();
    let choice = tokio::task::spawn_blocking(move || {
        dialoguer::Select::new()
            .with_prompt("Restore which backup?")
            .items(&items)
            .default(0)
            .interact_opt()
    })
    .await
    .map_err(|e| (exit_code::REFUSED, e.to_string()))?
    .map_err(|e| (exit_code::REFUSED, e.to_string()))?;
    match choice {
        Some(n) => Ok(listed[n].clone()),
        None => Err((exit_code::REFUSED, "no backup chosen".into())),
    }
}

/// A sealed backup is refused up front, before anything runs, unless the identity
/// given opens it (its header names the recipients it was sealed for).
async fn can_open(
    settings: &crate::config::Settings,
    storage: &Storage,
    backup: &Listed,
) -> Result<(), Failure> {
    use crate::seal::{Identities, SealError};
    if backup.manifest.sealed.is_none() {
        return Ok(());
    }
    let identities = match Identities::configured(settings.backup.age_identity_file.as_deref()) {
        Ok(Some(identities)) => identities,
        Ok(None) => {
            let refusal = SealError::needs_identity(&backup.manifest);
            return Err((exit_code::REFUSED, refusal.to_string()));
        }
        Err(e) => return Err((exit_code::USAGE, e.to_string())),
    };
    let reader = storage
        .reader(&backup.manifest.object)
        .await
        .map_err(|e| (exit_code::USAGE, e.to_string()))?;
    let manifest = backup.manifest.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let recipients = manifest.sealed.map(|s| s.recipients).unwrap_or_default();
        identities.open(reader, &recipients).map(drop)
    })
    .await
    .map_err(|e| (exit_code::USAGE, e.to_string()))?;
    opened.map_err(|e| {
        (
            exit_code::REFUSED,
            format!(
                "refusing to restore {}: {e}; nothing was changed",
                backup.manifest.id
            ),
        )
    })
}
