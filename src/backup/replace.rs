//! Putting a backup into a database, for `restore` and the `restore` stage.
//!
//! Every restore goes into a brand-new database first (one pg_restore transaction), so
//! a failure leaves the target untouched. In place, a safety backup of the target is
//! taken first, then the names are swapped in one transaction: the target becomes
//! `<name>_before_restore_<stamp>` (kept until someone drops it) and the restored copy
//! takes its name. The result is exactly the backup: nothing created since is left.

use super::pg_restore_for;
use super::restore::restore_into;
use super::restore_db;
use super::sessions;
use super::target::back_up;
use crate::config::Settings;
use crate::db::lock::DeployLock;
use crate::db::{self, journal_table, quote_ident, DbError, ServerInfo};
use crate::events::{Event, Events, Restored, Severity};
use crate::redact::split_secrets;
use crate::storage::manifest::Manifest;
use crate::storage::Storage;

/// The database restore connects to for creating and renaming databases.
pub const MAINTENANCE_DB: &str = "postgres";

/// `<target>__ballast_restore_<stamp>`: an in-place restore's copy before the rename.
const FRESH_INFIX: &str = "__ballast_restore_";

/// A scratch copy beside the target, restored to be looked at and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scratch {
    /// `<target>__ballast_drill_<stamp>`: the restore drill's, counted and dropped here.
    Drill,
    /// `<target>__ballast_rehearsal_<stamp>`: a rehearsal's, which runs the plan on it
    /// and drops it ([`drop_scratch_copy`]). `grants`: the backup's GRANTs restored
    /// too (beside the target its roles exist; on another server they may not).
    Rehearsal { grants: bool },
}

impl Scratch {
    fn infix(self) -> &'static str {
        match self {
            Scratch::Drill => "__ballast_drill_",
            Scratch::Rehearsal { .. } => "__ballast_rehearsal_",
        }
    }

    /// Who drops a copy that a killed run left.
    fn next(self) -> &'static str {
        match self {
            Scratch::Drill => "the next restore drill",
            Scratch::Rehearsal { .. } => "the next rehearsal",
        }
    }
}

/// `<target><infix>`, the target's name cut (at a character) so that a 14-digit stamp
/// after it still fits PostgreSQL's 63 bytes: a name PostgreSQL truncated would lose
/// its stamp, and the next run would not find it by its prefix.
fn scratch_prefix(target: &str, infix: &str) -> String {
    let room = 63 - infix.len() - 14;
    let mut end = target.len().min(room);
    while !target.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{infix}", &target[..end])
}

pub enum Destination<'a> {
    /// A new database of this name (it must not exist).
    New(&'a str),
    /// Replace the configured target.
    InPlace,
    /// A scratch copy beside the target ([`Scratch`]), restored and counted. It stays
    /// marked safe to drop until it is gone, so a copy a killed run left is dropped by
    /// the next one of its kind.
    Scratch(Scratch),
}

#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("the safety backup failed, nothing was restored: {0}")]
    SafetyBackup(String),
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("{0}")]
    Restore(String),
    /// Other sessions use the target; it was not touched (up front: nothing was done;
    /// at the rename: the copy is ready).
    #[error("{0}")]
    InUse(String),
    /// Another session holds the deploy lock: nothing was done.
    #[error("{0}; it is probably a deploy: wait for it, or raise database.lock_wait")]
    Locked(String),
    #[error("backup {id} is of database {backup_db}, and the target is {target}: restoring it in place would replace the wrong database. Restore it with --into NEW_DB, or point database.url at {backup_db}")]
    OtherDatabase {
        id: String,
        backup_db: String,
        target: String,
    },
}

impl From<DbError> for ReplaceError {
    fn from(e: DbError) -> Self {
        ReplaceError::Db(Box::new(e))
    }
}

/// In place, only a backup of this very database may replace it.
pub fn check_destination(
    manifest: &Manifest,
    target: &str,
    destination: &Destination<'_>,
) -> Result<(), ReplaceError> {
    match destination {
        Destination::InPlace if manifest.database != target => Err(ReplaceError::OtherDatabase {
            id: manifest.id.clone(),
            backup_db: manifest.database.clone(),
            target: target.to_string(),
        }),
        _ => Ok(()),
    }
}

/// `lock`: the deploy lock's slot. A run's restore rung hands in the lock it holds;
/// otherwise an in-place restore takes it here. It is let go only for the rename
/// (taken out of the slot); when the restore stops before, the caller still holds it,
/// so no deploy waiting for it can slip in before the run has said its last word.
pub async fn replace(
    settings: &Settings,
    storage: &Storage,
    manifest: &Manifest,
    destination: Destination<'_>,
    events: &Events,
    lock: &mut Option<DeployLock>,
) -> Result<Restored, ReplaceError> {
    let info = |line: String| events.diagnose(Severity::Info, line, None);
    let mut conn = db::connect(&settings.database, "restore").await?;
    let server = db::server_info(&mut conn).await?;
    let target = server.database.clone();
    check_destination(manifest, &target, &destination)?;
    let template = restore_db::template_of(&mut conn).await?;
    // In place, the deploy lock keeps deploys and other restores of this target out
    // while the copy is made. It is released just before the rename, which needs the
    // target free of sessions, this one included.
    let mut taken_here = false;
    match &destination {
        Destination::InPlace if lock.is_none() => {
            *lock = Some(
                DeployLock::acquire(&settings.database, |holder| {
                    events.emit(Event::LockWaiting {
                        pid: holder.pid,
                        application_name: holder.application_name.clone(),
                    })
                })
                .await
                .map_err(|e| ReplaceError::Locked(e.to_string()))?,
            );
            taken_here = true;
        }
        Destination::InPlace => {}
        Destination::New(_) | Destination::Scratch(_) => {
            if let Some(held) = lock.take() {
                held.release().await;
            }
        }
    }
    let lock_pid = lock.as_ref().map(DeployLock::pid).unwrap_or(0);
    let checked = match &destination {
        Destination::InPlace => sessions::check_clients(&mut conn, &target, lock_pid, settings)
            .await
            .map_err(|e| ReplaceError::InUse(e.to_string())),
        Destination::New(_) | Destination::Scratch(_) => Ok(Vec::new()),
    };
    let result = match checked {
        Ok(to_end) => {
            if !to_end.is_empty() {
                events.diagnose(
                    Severity::Warning,
                    format!(
                        "{target} has {} client session{} ({}): they are ended just before the rename (backup.restore_ends_sessions)",
                        to_end.len(),
                        if to_end.len() == 1 { "" } else { "s" },
                        sessions::list(&to_end)
                    ),
                    None,
                );
            }
            restore_and_swap(
                settings,
                storage,
                manifest,
                &destination,
                events,
                conn,
                &server,
                &template,
                lock,
            )
            .await
        }
        Err(e) => {
            db::close(conn).await;
            Err(e)
        }
    };
    crate::interrupt::set_note(None);
    // A lock taken here is this restore's alone; one handed in stays with the caller.
    if taken_here {
        if let Some(lock) = lock.take() {
            lock.release().await;
        }
    }
    let (database, kept_aside, safety_backup) = result?;
    if let Some(aside) = &kept_aside {
        info(format!("{target} is now the restored copy; the previous database is kept as {aside} (drop it when satisfied)"));
        carry_journal_over(settings, aside, &target, events).await;
    }
    // The restore has happened: a failure to count is a warning, never a failed restore.
    let counted = row_counts(settings, &database).await;
    if let Destination::Scratch(scratch) = destination {
        // A scratch copy that counted nothing proved nothing.
        if scratch == Scratch::Drill || counted.is_err() {
            drop_scratch_copy(settings, &database, events).await;
        }
        if let Err(e) = &counted {
            return Err(ReplaceError::Restore(format!(
                "restored, but counting its rows failed ({e}); the copy is dropped"
            )));
        }
    }
    let row_counts = match counted {
        Ok(counts) => counts,
        Err(e) => {
            events.diagnose(
                Severity::Warning,
                format!("restored, but counting rows failed: {e}"),
                None,
            );
            Vec::new()
        }
    };
    events.emit(Event::RestoreFinished {
        database: database.clone(),
        tables: row_counts.len(),
        rows: row_counts.iter().map(|(_, n)| n).sum(),
    });
    Ok(Restored {
        database,
        kept_aside,
        safety_backup,
        row_counts,
    })
}

/// Safety backup, restore into a fresh database, rename: the part that runs under
/// the deploy lock (in place). Returns (database restored, name kept aside, safety
/// backup's location).
#[allow(clippy::too_many_arguments)]
async fn restore_and_swap(
    settings: &Settings,
    storage: &Storage,
    manifest: &Manifest,
    destination: &Destination<'_>,
    events: &Events,
    mut conn: sqlx::PgConnection,
    server: &ServerInfo,
    template: &restore_db::Template,
    lock: &mut Option<DeployLock>,
) -> Result<(String, Option<String>, Option<String>), ReplaceError> {
    let info = |line: String| events.diagnose(Severity::Info, line, None);
    let target = &server.database;
    let mut admin = db::connect(
        &settings.database.for_database(MAINTENANCE_DB),
        "restore admin",
    )
    .await?;
    let (exact, prefix) = match destination {
        Destination::New(name) => (Some(*name), String::new()),
        Destination::InPlace => (None, format!("{target}{FRESH_INFIX}")),
        Destination::Scratch(scratch) => (None, scratch_prefix(target, scratch.infix())),
    };
    for name in restore_db::drop_leftovers(&mut admin, exact, &prefix).await? {
        info(format!(
            "dropped {name}: an incomplete restore left by an interrupted run"
        ));
    }
    let mut safety_backup = None;
    if let Destination::InPlace = destination {
        info("taking a safety backup of the current state".into());
        let safety = back_up(
            settings,
            &mut conn,
            server,
            storage,
            uuid::Uuid::new_v4(),
            events,
        )
        .await
        .map_err(|e| ReplaceError::SafetyBackup(e.to_string()))?;
        safety_backup = Some(safety.location);
    }
    db::close(conn).await;

    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let fresh = match destination {
        Destination::New(name) => name.to_string(),
        Destination::InPlace => format!("{target}{FRESH_INFIX}{stamp}"),
        Destination::Scratch(scratch) => {
            format!("{}{stamp}", scratch_prefix(target, scratch.infix()))
        }
    };
    if !matches!(destination, Destination::New(_)) {
        for name in settle_same_name(&mut admin, &fresh).await? {
            info(format!(
                "dropped {name}: an incomplete restore left by an interrupted run"
            ));
        }
    }
    restore_db::create(&mut admin, &fresh, template, &manifest.id).await?;
    if let Destination::Scratch(_) = destination {
        // A scratch copy is nobody's: a Ctrl-C from here on (which ends the run at
        // once, the target untouched) drops it on the way out.
        crate::interrupt::set_undo_on_exit(Some((
            settings.database.for_database(MAINTENANCE_DB),
            restore_db::drop_sql(&fresh, server.major),
        )));
    }
    let next = match destination {
        Destination::Scratch(scratch) => scratch.next(),
        _ => "the next restore",
    };
    crate::interrupt::set_note(Some(format!(
        "interrupted during the restore: {target} was not touched. The incomplete copy {fresh} is dropped by {next}."
    )));
    events.emit(Event::RestoreStarted {
        id: manifest.id.clone(),
        database: fresh.clone(),
        raw_bytes: manifest.raw_bytes,
    });
    let fresh_url = settings
        .database
        .for_database(&fresh)
        .url()
        .ok()
        .and_then(|u| split_secrets(u).ok());
    let pg_restore = pg_restore_for(&settings.backup.pg_dump);
    let progress = events.clone();
    let identities = match manifest.sealed {
        Some(_) => {
            crate::seal::Identities::configured(settings.backup.age_identity_file.as_deref())
                .map_err(|e| ReplaceError::Restore(format!("{e}; {target} was not touched")))?
        }
        None => None,
    };
    let grants = !matches!(
        destination,
        Destination::Scratch(Scratch::Rehearsal { grants: false })
    );
    let restored = match (fresh_url, storage.reader(&manifest.object).await) {
        (Some(fresh_url), Ok(reader)) => {
            let manifest = manifest.clone();
            tokio::task::spawn_blocking(move || {
                let identities = identities.as_ref();
                restore_into(
                    reader,
                    identities,
                    &pg_restore,
                    &fresh_url,
                    &manifest,
                    grants,
                    |raw_bytes| {
                        progress.emit(Event::RestoreProgress { raw_bytes });
                        crate::faults::pause("restore");
                    },
                )
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        }
        (None, _) => Err("database.url is not usable".to_string()),
        (_, Err(e)) => Err(e.to_string()),
    };
    if let Err(e) = restored {
        let _ = restore_db::drop(&mut admin, &fresh).await;
        crate::interrupt::set_undo_on_exit(None);
        return Err(ReplaceError::Restore(format!(
            "{e}; {target} was not touched"
        )));
    }
    if !matches!(destination, Destination::Scratch(_)) {
        restore_db::mark_complete(&mut admin, &fresh).await?;
    }
    let result = match destination {
        Destination::New(name) => (name.to_string(), None, safety_backup),
        Destination::Scratch(_) => (fresh.clone(), None, None),
        Destination::InPlace => {
            let aside = format!("{target}_before_restore_{stamp}");
            swap(&mut admin, target, &fresh, &aside, settings, lock).await?;
            (target.clone(), Some(aside), safety_backup)
        }
    };
    db::close(admin).await;
    Ok(result)
}

/// A run interrupted within this same second left an incomplete copy of this very
/// name, its pg_restore perhaps still connected for a moment: waits (up to 10 s) for
/// it to go, and drops it. Returns what it dropped.
async fn settle_same_name(
    admin: &mut sqlx::PgConnection,
    name: &str,
) -> Result<Vec<String>, DbError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut dropped = Vec::new();
    loop {
        let there: bool =
            sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(name)
                .fetch_one(&mut *admin)
                .await
                .map_err(|e| DbError::query("looking for a database of that name", &e))?;
        if !there || std::time::Instant::now() > deadline {
            return Ok(dropped);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        dropped.extend(restore_db::drop_leftovers(admin, Some(name), "").await?);
    }
}

/// The runs journaled in the database replaced (this one's included) stay in its
/// history: `ballast_journal` rows are copied from the database kept aside.
async fn carry_journal_over(settings: &Settings, aside: &str, target: &str, events: &Events) {
    let schema = &settings.database.schema;
    let copied = async {
        let mut from =
            db::connect(&settings.database.for_database(aside), "restore journal").await?;
        let mut to =
            db::connect(&settings.database.for_database(target), "restore journal").await?;
        let n = journal_table::carry_over(&mut from, &mut to, schema).await;
        db::close(from).await;
        db::close(to).await;
        n
    }
    .await;
    if let Err(e) = copied {
        events.diagnose(
            Severity::Warning,
            format!("restored, but the run history of {aside} was not copied over: {e}"),
            Some(format!("`ballast history` reads backups/journal.jsonl as well; the rows are still in {aside}.{schema}.ballast_journal")),
        );
    }
}

/// `target` → `aside`, `fresh` → `target`, in one transaction. Refuses (and keeps the
/// restored copy under its temporary name) while other sessions use the target.
///
/// The deploy lock is held until the very rename: the target first stops taking new
/// connections, so a deploy waiting for the lock can never get it and change the
/// database that is about to be put aside; the waiting deploy gives up (exit 3) and
/// leaves, then the lock goes and the rename follows at once. When the swap gives up,
/// the lock stays in its slot.
async fn swap(
    admin: &mut sqlx::PgConnection,
    target: &str,
    fresh: &str,
    aside: &str,
    settings: &Settings,
    lock: &mut Option<DeployLock>,
) -> Result<(), ReplaceError> {
    let allow = |db: &str, on: bool| {
        format!(
            "alter database {} with allow_connections {on}",
            quote_ident(db)
        )
    };
    let closed = lock.is_some()
        && sqlx::raw_sql(&allow(target, false))
            .execute(&mut *admin)
            .await
            .is_ok();
    if closed {
        // A Ctrl-C from here on must not leave the target refusing every client.
        crate::interrupt::set_undo_on_exit(Some((
            settings.database.for_database(MAINTENANCE_DB),
            allow(target, true),
        )));
        crate::interrupt::set_note(Some(format!(
            "interrupted before the rename: {target} was not touched (it takes connections again). The restored copy {fresh} is complete: rename it by hand (ALTER DATABASE {t} RENAME TO {a}; ALTER DATABASE {f} RENAME TO {t};) or drop it",
            t = quote_ident(target),
            a = quote_ident(aside),
            f = quote_ident(fresh)
        )));
    }
    let own = lock.as_ref().map(DeployLock::pid).unwrap_or(0);
    // A deploy waiting for the lock gives up within lock_wait: wait a little longer.
    let deadline = std::time::Instant::now() + settings.database.lock_wait * 2;
    loop {
        let on_target = sessions::on(admin, target, own).await?;
        if on_target.is_empty() {
            break;
        }
        // Closed to new connections, the clients still there are ended (a deploy
        // waiting for the lock is left to give up: it changed nothing).
        let mut cannot_end = Vec::new();
        if closed && settings.backup.restore_ends_sessions {
            let to_end: Vec<&sessions::Session> = on_target
                .iter()
                .filter(|s| !s.waits_for_the_lock())
                .collect();
            cannot_end = sessions::end(admin, &to_end).await;
        }
        if !cannot_end.is_empty() || std::time::Instant::now() > deadline {
            if closed {
                let _ = sqlx::raw_sql(&allow(target, true))
                    .execute(&mut *admin)
                    .await;
                crate::interrupt::set_undo_on_exit(None);
            }
            let why = if cannot_end.is_empty() {
                String::new()
            } else {
                format!(
                    " (ballast's role could not end them: {}; {})",
                    cannot_end.join("; "),
                    sessions::grant_hint(admin).await
                )
            };
            return Err(ReplaceError::InUse(
                format!(
                    "{target} is in use by {}{why}; it was not touched. The restored copy is ready as {fresh}: \
                     stop those clients, then run: ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {};",
                    sessions::list(&on_target),
                    quote_ident(target),
                    quote_ident(aside),
                    quote_ident(fresh),
                    quote_ident(target)
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    if let Some(lock) = lock.take() {
        lock.release().await;
    }
    // The lock session may take a moment to end after it closed.
    if own != 0 {
        let _ = db::wait_backend_gone(admin, own, std::time::Duration::from_secs(5)).await;
    }
    let sql = format!(
        "begin; alter database {t} rename to {a}; alter database {f} rename to {t}; commit;",
        t = quote_ident(target),
        a = quote_ident(aside),
        f = quote_ident(fresh)
    );
    let renamed = sqlx::raw_sql(&sql).execute(&mut *admin).await.map(|_| ());
    crate::interrupt::set_undo_on_exit(None);
    if closed {
        // The database kept aside (or, after a failure, the target) takes connections
        // again, for a person to look at it.
        let reopen = if renamed.is_ok() { aside } else { target };
        let _ = sqlx::raw_sql(&allow(reopen, true))
            .execute(&mut *admin)
            .await;
    }
    renamed.map_err(|e| {
        ReplaceError::Restore(format!(
            "renaming the databases failed and rolled back ({e}); {target} was not touched, the restored copy is {fresh}"
        ))
    })
}

/// Drops a scratch copy; one that cannot be dropped now is said, and stays marked for
/// the next run of its kind to drop.
pub async fn drop_scratch_copy(settings: &Settings, copy: &str, events: &Events) {
    let dropped = async {
        let mut admin = db::connect(
            &settings.database.for_database(MAINTENANCE_DB),
            "restore admin",
        )
        .await?;
        let dropped = restore_db::drop_scratch(&mut admin, copy).await;
        db::close(admin).await;
        dropped
    }
    .await;
    crate::interrupt::set_undo_on_exit(None);
    if let Err(e) = dropped {
        events.diagnose(
            Severity::Warning,
            format!("the scratch copy {copy} could not be dropped ({e}); the next run of its kind drops it, or drop it by hand"),
            None,
        );
    }
}

/// Exact row counts per user table of `database`.
async fn row_counts(settings: &Settings, database: &str) -> Result<Vec<(String, i64)>, DbError> {
    let mut conn = db::connect(&settings.database.for_database(database), "restore check").await?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select schemaname::text, relname::text from pg_stat_user_tables order by 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| DbError::query("listing tables", &e))?;
    let mut counts = Vec::new();
    for (schema, table) in &tables {
        let sql = format!(
            "select count(*) from {}.{}",
            quote_ident(schema),
            quote_ident(table)
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| DbError::query(format!("counting {schema}.{table}"), &e))?;
        counts.push((format!("{schema}.{table}"), n));
    }
    db::close(conn).await;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scratch_name_keeps_its_stamp_within_postgresqls_63_bytes() {
        let long = "é".repeat(40);
        for scratch in [
            super::Scratch::Drill,
            super::Scratch::Rehearsal { grants: true },
        ] {
            let prefix = super::scratch_prefix(&long, scratch.infix());
            assert!(prefix.len() + 14 <= 63, "{}", prefix.len());
            assert!(prefix.ends_with(scratch.infix()) && prefix.starts_with("éé"));
        }
        assert_eq!(
            super::scratch_prefix("shop", super::Scratch::Rehearsal { grants: true }.infix()),
            "shop__ballast_rehearsal_"
        );
    }
}
