//! Putting a backup into a database, for `restore` and the `restore` stage.
//!
//! Every restore goes into a brand-new database first (one pg_restore transaction), so
//! a failure leaves the target untouched. In place, a safety backup of the target is
//! taken first, then the names are swapped in one transaction: the target becomes
//! `<name>_before_restore_<stamp>` (kept until someone drops it) and the restored copy
//! takes its name. The result is exactly the backup: nothing created since is left.

use super::restore::restore_into;
use super::restore_db;
use super::target::back_up;
use super::{pg_restore_for, Manifest};
use crate::config::Settings;
use crate::db::lock::DeployLock;
use crate::db::{self, journal_table, quote_ident, DbError, ServerInfo};
use crate::events::{Event, Events, Severity};
use crate::redact::split_secrets;
use crate::storage::Storage;

/// The database restore connects to for creating and renaming databases.
pub const MAINTENANCE_DB: &str = "postgres";

/// `<target>__ballast_restore_<stamp>`: an in-place restore's copy before the rename.
const FRESH_INFIX: &str = "__ballast_restore_";

pub enum Destination<'a> {
    /// A new database of this name (it must not exist).
    New(&'a str),
    /// Replace the configured target.
    InPlace,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Replaced {
    pub database: String,
    pub kept_aside: Option<String>,
    pub safety_backup: Option<String>,
    pub row_counts: Vec<(String, i64)>,
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

/// A client session connected to a database.
#[derive(Debug, Clone)]
pub struct Session {
    pub pid: i32,
    pub application_name: String,
}

impl Session {
    /// A deploy waiting for the deploy lock: it gives up within its lock_wait, once the
    /// target is closed to it.
    pub fn waits_for_the_lock(&self) -> bool {
        self.application_name.ends_with("(deploy lock)")
    }
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.application_name)
    }
}

/// Client sessions on `database` (background workers aside), but for the asking
/// session and `except` (the deploy lock's).
pub async fn sessions_on(
    conn: &mut sqlx::PgConnection,
    database: &str,
    except: i32,
) -> Result<Vec<Session>, DbError> {
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "select pid, coalesce(application_name, '') from pg_stat_activity \
         where datname = $1 and backend_type = 'client backend' and pid <> pg_backend_pid() and pid <> $2 \
         order by pid",
    )
    .bind(database)
    .bind(except)
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("listing sessions on the target", &e))?;
    Ok(rows
        .into_iter()
        .map(|(pid, application_name)| Session {
            pid,
            application_name,
        })
        .collect())
}

fn list(sessions: &[Session]) -> String {
    sessions
        .iter()
        .map(Session::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// In place, before any work: the clients connected to the target. Without
/// `backup.restore_ends_sessions` they make the restore refuse at once (after a few
/// seconds' grace for sessions on their way out), rather than after a safety backup
/// and a full copy; with it, they are named and ended at the rename.
async fn check_clients(
    conn: &mut sqlx::PgConnection,
    target: &str,
    lock_pid: i32,
    settings: &Settings,
    events: &Events,
) -> Result<(), ReplaceError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let clients = loop {
        let clients: Vec<Session> = sessions_on(conn, target, lock_pid)
            .await?
            .into_iter()
            .filter(|s| !s.waits_for_the_lock())
            .collect();
        if clients.is_empty()
            || settings.backup.restore_ends_sessions
            || std::time::Instant::now() > deadline
        {
            break clients;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    if clients.is_empty() {
        return Ok(());
    }
    if settings.backup.restore_ends_sessions {
        events.diagnose(
            Severity::Warning,
            format!(
                "{target} has {} client session{} ({}): they are ended just before the rename (backup.restore_ends_sessions)",
                clients.len(),
                if clients.len() == 1 { "" } else { "s" },
                list(&clients)
            ),
            None,
        );
        return Ok(());
    }
    Err(ReplaceError::InUse(format!(
        "{target} is in use by {}: nothing was done. Replacing it needs it free of sessions: stop those clients, \
         or let the restore end them just before the rename (`ballast restore --end-sessions`; for the restore \
         rung of a pipeline, backup.restore_ends_sessions = true)",
        list(&clients)
    )))
}

/// `held`: the deploy lock when the caller already holds it (a run's restore rung);
/// otherwise an in-place restore takes it here. Either way it is let go just before
/// the rename.
pub async fn replace(
    settings: &Settings,
    storage: &Storage,
    manifest: &Manifest,
    destination: Destination<'_>,
    events: &Events,
    held: Option<DeployLock>,
) -> Result<Replaced, ReplaceError> {
    let info = |line: String| events.diagnose(Severity::Info, line, None);
    let mut conn = db::connect(&settings.database, "restore").await?;
    let server = db::server_info(&mut conn).await?;
    let target = server.database.clone();
    check_destination(manifest, &target, &destination)?;
    let template = restore_db::template_of(&mut conn).await?;
    // In place, the deploy lock keeps deploys and other restores of this target out
    // while the copy is made. It is released just before the rename, which needs the
    // target free of sessions, this one included.
    let lock = match (&destination, held) {
        (Destination::InPlace, Some(held)) => Some(held),
        (Destination::InPlace, None) => Some(
            DeployLock::acquire(&settings.database, |holder| {
                events.emit(Event::LockWaiting {
                    pid: holder.pid,
                    application_name: holder.application_name.clone(),
                })
            })
            .await
            .map_err(|e| ReplaceError::Locked(e.to_string()))?,
        ),
        (Destination::New(_), held) => {
            if let Some(held) = held {
                held.release().await;
            }
            None
        }
    };
    if let (Destination::InPlace, Some(held)) = (&destination, &lock) {
        if let Err(e) = check_clients(&mut conn, &target, held.pid(), settings, events).await {
            if let Some(lock) = lock {
                lock.release().await;
            }
            db::close(conn).await;
            return Err(e);
        }
    }
    let result = restore_and_swap(
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
    .await;
    crate::interrupt::set_note(None);
    let (database, kept_aside, safety_backup) = result?;
    if let Some(aside) = &kept_aside {
        info(format!("{target} is now the restored copy; the previous database is kept as {aside} (drop it when satisfied)"));
        carry_journal_over(settings, aside, &target, events).await;
    }
    // The restore has happened: a failure to count is a warning, never a failed restore.
    let row_counts = match row_counts(settings, &database).await {
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
    Ok(Replaced {
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
    lock: Option<DeployLock>,
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
    };
    restore_db::create(&mut admin, &fresh, template, &manifest.id).await?;
    crate::interrupt::set_note(Some(format!(
        "interrupted during the restore: {target} was not touched. The incomplete copy {fresh} is dropped by the next restore."
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
    let restored = match (fresh_url, storage.reader(&manifest.id).await) {
        (Some(fresh_url), Ok(reader)) => {
            let manifest = manifest.clone();
            tokio::task::spawn_blocking(move || {
                restore_into(reader, &pg_restore, &fresh_url, &manifest, |raw_bytes| {
                    progress.emit(Event::RestoreProgress { raw_bytes });
                    crate::faults::pause("restore");
                })
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
        return Err(ReplaceError::Restore(format!(
            "{e}; {target} was not touched"
        )));
    }
    restore_db::mark_complete(&mut admin, &fresh).await?;
    let result = match destination {
        Destination::New(name) => {
            if let Some(lock) = lock {
                lock.release().await;
            }
            (name.to_string(), None, safety_backup)
        }
        Destination::InPlace => {
            let aside = format!("{target}_before_restore_{stamp}");
            swap(&mut admin, target, &fresh, &aside, settings, lock).await?;
            (target.clone(), Some(aside), safety_backup)
        }
    };
    db::close(admin).await;
    Ok(result)
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
/// leaves, then the lock goes and the rename follows at once.
async fn swap(
    admin: &mut sqlx::PgConnection,
    target: &str,
    fresh: &str,
    aside: &str,
    settings: &Settings,
    lock: Option<DeployLock>,
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
        let sessions = sessions_on(admin, target, own).await?;
        if sessions.is_empty() {
            break;
        }
        // Closed to new connections, the clients still there are ended (a deploy
        // waiting for the lock is left to give up: it changed nothing).
        if closed && settings.backup.restore_ends_sessions {
            for session in sessions.iter().filter(|s| !s.waits_for_the_lock()) {
                let _ = sqlx::query("select pg_terminate_backend($1)")
                    .bind(session.pid)
                    .execute(&mut *admin)
                    .await;
            }
        }
        if std::time::Instant::now() > deadline {
            if closed {
                let _ = sqlx::raw_sql(&allow(target, true))
                    .execute(&mut *admin)
                    .await;
                crate::interrupt::set_undo_on_exit(None);
            }
            if let Some(lock) = lock {
                lock.release().await;
            }
            return Err(ReplaceError::InUse(
                format!(
                    "{target} is in use by {}; it was not touched. The restored copy is ready as {fresh}: \
                     stop those clients, then run: ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {};",
                    list(&sessions),
                    quote_ident(target),
                    quote_ident(aside),
                    quote_ident(fresh),
                    quote_ident(target)
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    if let Some(lock) = lock {
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
