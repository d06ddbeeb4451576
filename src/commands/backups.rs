//! `backups`, `verify-backup` and `prune`: the catalogue of backups in storage.
//! None of them needs a database, but for `verify-backup --restore` (the restore drill).

use crate::backup::retention::prune;
use std::path::Path;

use crate::backup::verify_and_record;
use crate::cli::GlobalArgs;
use crate::config::Settings;
use crate::exit_code;
use crate::report::stdout_line;
use crate::storage::Storage;
use crate::text::{human_bytes, human_duration};

async fn open(g: &GlobalArgs) -> Result<(Settings, Storage), i32> {
    let settings = super::load_settings(g)?;
    let storage = Storage::open(&settings.backup)
        .await
        .map_err(|e| super::fail(g, &e.to_string(), exit_code::USAGE))?;
    Ok((settings, storage))
}

/// `ballast backups`: complete backups, newest first.
pub async fn list(g: &GlobalArgs) -> i32 {
    let (_, storage) = match open(g).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let listed = match storage.list().await {
        Ok(l) => l,
        Err(e) => return super::fail(g, &e.to_string(), exit_code::USAGE),
    };
    if g.json {
        for backup in &listed {
            crate::report::print_event("backup", serde_json::to_value(backup).unwrap_or_default());
        }
        return exit_code::SUCCESS;
    }
    if listed.is_empty() {
        stdout_line(&format!("no backups in {}", storage.describe()));
        return exit_code::SUCCESS;
    }
    stdout_line(&format!(
        "{:<44} {:<20} {:<14} {:>10}  {:<9} {:<22} revision",
        "id", "taken", "database", "size", "verified", "sealed for"
    ));
    for backup in &listed {
        let m = &backup.manifest;
        stdout_line(&format!(
            "{:<44} {:<20} {:<14} {:>10}  {:<9} {:<22} {}",
            m.id,
            m.started_at
                .chars()
                .take(19)
                .collect::<String>()
                .replace('T', " "),
            m.database,
            human_bytes(m.compressed_bytes),
            if backup.verified_at.is_some() {
                "yes"
            } else {
                "no"
            },
            sealed_for(m),
            m.revision.as_deref().unwrap_or("none"),
        ));
    }
    stdout_line(&format!("({} in {})", listed.len(), storage.describe()));
    exit_code::SUCCESS
}

/// Who can read a backup, short: `-` (not sealed), `age1qyqs…7k2m`, `age1qyqs…7k2m +1`.
fn sealed_for(m: &crate::storage::manifest::Manifest) -> String {
    let Some(sealed) = &m.sealed else {
        return "-".to_string();
    };
    let short = |key: &str| match key.len() > 14 {
        true => format!("{}…{}", &key[..8], &key[key.len() - 4..]),
        false => key.to_string(),
    };
    match sealed.recipients.as_slice() {
        [] => "age".to_string(),
        [one] => short(one),
        [first, rest @ ..] => format!("{} +{}", short(first), rest.len()),
    }
}

/// `ballast verify-backup [ID] [--restore]`: read it back and check it; marks it
/// verified; with `restore`, the restore drill too ([`restore_drill`]).
pub async fn verify_one(
    g: &GlobalArgs,
    id: Option<&str>,
    identity: Option<&Path>,
    restore: bool,
) -> i32 {
    let (mut settings, storage) = match open(g).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(identity) = identity {
        settings.backup.age_identity_file = Some(identity.to_path_buf());
    }
    let listed = match storage.find(id).await {
        Ok(l) => l,
        Err(e) => return super::fail(g, &e.to_string(), exit_code::USAGE),
    };
    let started = std::time::Instant::now();
    match verify_and_record(&storage, &listed, &settings.backup).await {
        Ok(verified) => {
            let record = serde_json::to_value(&verified).unwrap_or_default();
            if g.json {
                crate::report::print_event(
                    "backup_verified",
                    serde_json::json!({ "backup": record }),
                );
            } else if !verified.contents_checked {
                stdout_line(&format!(
                    "✓ backup {}: what is stored is sound: {}, SHA-256 matches the manifest ({}). Its contents were not checked: it is sealed with age for {}, and no identity was given (--identity FILE or backup.age_identity_file)",
                    verified.id,
                    human_bytes(verified.compressed_bytes),
                    human_duration(started.elapsed().as_millis() as u64),
                    listed.manifest.sealed.as_ref().map(|s| s.recipients.join(", ")).unwrap_or_default()
                ));
            } else {
                stdout_line(&format!(
                    "✓ backup {} is sound: {} ({} raw), SHA-256 matches the manifest, {} archive entries ({})",
                    verified.id,
                    human_bytes(verified.compressed_bytes),
                    human_bytes(verified.raw_bytes),
                    verified.toc_entries,
                    human_duration(started.elapsed().as_millis() as u64)
                ));
            }
            match restore {
                true => restore_drill(g, &settings, &storage, &listed, &verified).await,
                false => exit_code::SUCCESS,
            }
        }
        Err(e) => {
            use crate::backup::VerifyError;
            use crate::seal::SealError;
            let code = match &e {
                VerifyError::Seal(
                    SealError::IdentityFile { .. } | SealError::NoIdentity { .. },
                ) => exit_code::USAGE,
                VerifyError::Seal(_) => exit_code::REFUSED,
                _ => exit_code::FAILED_RESTORED,
            };
            super::fail(g, &e.to_string(), code)
        }
    }
}

/// The restore drill: the verified backup restored into a scratch copy beside the
/// target, every table counted, the copy dropped; how long it took and the counts are
/// recorded in the backup's verified record (`ID.verified.json`, `restore_drill`).
/// Exit 0 when it restored; 3 when the role may not create the copy (nothing was
/// made); 1 when the restore failed (the copy is dropped, the target never touched).
async fn restore_drill(
    g: &GlobalArgs,
    settings: &Settings,
    storage: &Storage,
    listed: &crate::storage::Listed,
    verified: &crate::backup::Verified,
) -> i32 {
    if let Err(e) = settings.database.url() {
        return super::fail(g, &e.to_string(), exit_code::USAGE);
    }
    if !verified.contents_checked {
        return super::fail(
            g,
            "the restore drill restores a sealed backup: give its identity (--identity FILE or backup.age_identity_file); nothing was made",
            exit_code::USAGE,
        );
    }
    // One drill of a database at a time: another's copy is never taken for a leftover.
    let mut guard = match crate::db::connect(&settings.database, "restore drill").await {
        Ok(conn) => conn,
        Err(e) => return super::fail(g, &e.to_string(), exit_code::USAGE),
    };
    let alone = crate::db::lock::try_purpose_lock(&mut guard, "restore drill").await;
    if !matches!(alone, Ok(true)) {
        crate::db::close(guard).await;
        return super::fail(
            g,
            "another restore drill of this database is running; nothing was made",
            exit_code::REFUSED,
        );
    }
    let code = drill_alone(g, settings, storage, listed, verified).await;
    crate::db::close(guard).await;
    code
}

/// [`restore_drill`], once it is the only drill of the database.
async fn drill_alone(
    g: &GlobalArgs,
    settings: &Settings,
    storage: &Storage,
    listed: &crate::storage::Listed,
    verified: &crate::backup::Verified,
) -> i32 {
    use crate::backup::replace::{replace, Destination, ReplaceError, Scratch};
    let events = super::events(g, false);
    let started = std::time::Instant::now();
    let restored = replace(
        settings,
        storage,
        &listed.manifest,
        Destination::Scratch(Scratch::Drill),
        &events,
        &mut None,
    )
    .await;
    let restored = match restored {
        Ok(restored) => restored,
        Err(e) => {
            let text = e.to_string();
            let (message, code) = match &e {
                ReplaceError::Db(_) if text.contains("permission denied to create database") => (
                    format!("{text}: the drill restores into a new database beside the target, and this role may not create one. Grant it (ALTER ROLE ... CREATEDB), or run the drill with a role that may; nothing was made"),
                    exit_code::REFUSED,
                ),
                _ => (format!("restore drill of backup {} failed: {text}", listed.manifest.id), exit_code::FAILED_RESTORED),
            };
            return super::fail(g, &message, code);
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let rows: i64 = restored.row_counts.iter().map(|(_, n)| n).sum();
    let drill = serde_json::json!({
        "restored_at": chrono::Utc::now().to_rfc3339(),
        "duration_ms": duration_ms,
        "tables": restored.row_counts.len(),
        "rows": rows,
        "row_counts": restored.row_counts.iter().cloned().collect::<std::collections::BTreeMap<String, i64>>(),
    });
    let mut record = serde_json::to_value(verified).unwrap_or_default();
    record["restore_drill"] = drill.clone();
    if let Err(e) = storage.mark_verified(&verified.id, &record).await {
        events.diagnose(
            crate::events::Severity::Warning,
            format!("the drill restored, but recording it beside the manifest failed: {e}"),
            None,
        );
    }
    if g.json {
        crate::report::print_event(
            "restore_drill",
            serde_json::json!({ "backup": verified.id, "drill": drill }),
        );
    } else {
        stdout_line(&format!(
            "✓ restore drill: backup {} restored into a scratch copy in {} (the recovery time you would face, counting included): {} tables, {} rows; the copy is dropped",
            verified.id,
            human_duration(duration_ms),
            restored.row_counts.len(),
            rows
        ));
    }
    exit_code::SUCCESS
}

/// `ballast prune [--yes]`: retention; a dry run unless --yes.
pub async fn prune_old(g: &GlobalArgs) -> i32 {
    let (settings, storage) = match open(g).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let rules = settings.backup.retention;
    let decision = match prune(&storage, rules, g.yes).await {
        Ok(d) => d,
        Err(e) => return super::fail(g, &e.to_string(), exit_code::NOT_RECOVERED),
    };
    if g.json {
        crate::report::print_event(
            "prune",
            serde_json::json!({ "dry_run": !g.yes, "decision": decision }),
        );
    } else {
        stdout_line(&format!(
            "retention: keep the newest {} verified backups and any younger than {} days; never the newest verified",
            rules.keep_last, rules.keep_days
        ));
        for (id, why) in &decision.keep {
            stdout_line(&format!("  keep    {id}  ({why})"));
        }
        for id in &decision.unverified {
            stdout_line(&format!(
                "  skip    {id}  (not verified: run `ballast verify-backup {id}`)"
            ));
        }
        for id in &decision.delete {
            stdout_line(&format!(
                "  {}  {id}",
                if g.yes { "delete" } else { "would delete" }
            ));
        }
    }
    if !g.yes && !g.json && !decision.delete.is_empty() {
        stdout_line("dry run: nothing deleted; pass --yes to delete");
    }
    exit_code::SUCCESS
}
