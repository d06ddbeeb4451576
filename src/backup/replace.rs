//! Putting a backup into a database, for `restore` and the `restore` stage.
//!
//! Every restore goes into a brand-new database first (one pg_restore transaction), so
//! a failure leaves the target untouched. In place, a safety backup of the target is
//! taken first, then the names are swapped in one transaction: the target becomes
//! `<name>_before_restore_<stamp>` (kept until someone drops it) and the restored copy
//! takes its name. The result is exactly the backup: nothing created since is left.

use sqlx::Row;

use super::restore::restore_into;
use super::target::back_up;
use super::{pg_restore_for, Manifest};
use crate::config::Settings;
use crate::db::{self, quote_ident, DbError};
use crate::events::{Events, Severity};
use crate::redact::split_secrets;
use crate::storage::Storage;

/// The database restore connects to for creating and renaming databases.
pub const MAINTENANCE_DB: &str = "postgres";

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
    Db(#[from] DbError),
    #[error("{0}")]
    Restore(String),
    /// Other sessions use the target; it was not touched (the copy is ready).
    #[error("{0}")]
    InUse(String),
    #[error("backup {id} is of database {backup_db}, and the target is {target}: restoring it in place would replace the wrong database. Restore it with --into NEW_DB, or point database.url at {backup_db}")]
    OtherDatabase {
        id: String,
        backup_db: String,
        target: String,
    },
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

pub async fn replace(
    settings: &Settings,
    storage: &Storage,
    manifest: &Manifest,
    destination: Destination<'_>,
    events: &Events,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Replaced, ReplaceError> {
    let info = |line: String| events.diagnose(Severity::Info, line, None);
    let mut conn = db::connect(&settings.database, "restore").await?;
    let server = db::server_info(&mut conn).await?;
    let target = server.database.clone();
    check_destination(manifest, &target, &destination)?;
    // The new database is made like the target: same encoding, locale and owner, and
    // from template0, so nothing added to template1 gets in the way.
    let (encoding, collate, ctype, owner, may_own): (String, String, String, String, bool) = sqlx::query_as(
        "select pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text, pg_get_userbyid(datdba)::text, \
                pg_has_role(current_user, datdba, 'MEMBER') from pg_database where datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| DbError::query("reading the target's encoding and owner", &e))?;
    let mut safety_backup = None;
    if let Destination::InPlace = destination {
        info("taking a safety backup of the current state".into());
        let safety = back_up(settings, &mut conn, &server, uuid::Uuid::new_v4(), events)
            .await
            .map_err(|e| ReplaceError::SafetyBackup(e.to_string()))?;
        safety_backup = Some(safety.location);
    }
    db::close(conn).await;

    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let fresh = match destination {
        Destination::New(name) => name.to_string(),
        Destination::InPlace => format!("{target}__ballast_restore_{stamp}"),
    };
    let mut admin = db::connect(
        &settings.database.for_database(MAINTENANCE_DB),
        "restore admin",
    )
    .await?;
    let owner_clause = if may_own {
        format!(" owner {}", quote_ident(&owner))
    } else {
        String::new()
    };
    let create = format!(
        "create database {} template template0 encoding '{}' lc_collate '{}' lc_ctype '{}'{owner_clause}",
        quote_ident(&fresh),
        encoding.replace('\'', ""),
        collate.replace('\'', "''"),
        ctype.replace('\'', "''"),
    );
    sqlx::raw_sql(&create)
        .execute(&mut admin)
        .await
        .map_err(|e| DbError::query(format!("creating database {fresh}"), &e))?;
    let fresh_url = settings
        .database
        .for_database(&fresh)
        .url()
        .ok()
        .and_then(|u| split_secrets(u).ok());
    let pg_restore = pg_restore_for(&settings.backup.pg_dump);
    let restored = match (fresh_url, storage.reader(&manifest.id).await) {
        (Some(fresh_url), Ok(reader)) => {
            let manifest = manifest.clone();
            tokio::task::spawn_blocking(move || {
                restore_into(reader, &pg_restore, &fresh_url, &manifest, progress)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        }
        (None, _) => Err("database.url is not usable".to_string()),
        (_, Err(e)) => Err(e.to_string()),
    };
    if let Err(e) = restored {
        let _ = sqlx::raw_sql(&format!("drop database if exists {}", quote_ident(&fresh)))
            .execute(&mut admin)
            .await;
        return Err(ReplaceError::Restore(format!(
            "{e}; {target} was not touched"
        )));
    }

    let (database, kept_aside) = match destination {
        Destination::New(name) => (name.to_string(), None),
        Destination::InPlace => {
            let aside = format!("{target}_before_restore_{stamp}");
            swap(&mut admin, &target, &fresh, &aside, settings).await?;
            info(format!("{target} is now the restored copy; the previous database is kept as {aside} (drop it when satisfied)"));
            (target.clone(), Some(aside))
        }
    };
    db::close(admin).await;
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
    Ok(Replaced {
        database,
        kept_aside,
        safety_backup,
        row_counts,
    })
}

/// `target` → `aside`, `fresh` → `target`, in one transaction. Refuses (and keeps the
/// restored copy under its temporary name) while other sessions use the target.
async fn swap(
    admin: &mut sqlx::PgConnection,
    target: &str,
    fresh: &str,
    aside: &str,
    settings: &Settings,
) -> Result<(), ReplaceError> {
    let deadline = std::time::Instant::now() + settings.database.lock_wait;
    loop {
        let sessions = sqlx::query(
            "select pid, coalesce(application_name, '') from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(target)
        .fetch_all(&mut *admin)
        .await
        .map_err(|e| DbError::query("listing sessions on the target", &e))?;
        if sessions.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let who: Vec<String> = sessions
                .iter()
                .map(|r| format!("pid {} ({})", r.get::<i32, _>(0), r.get::<String, _>(1)))
                .collect();
            return Err(ReplaceError::InUse(
                format!(
                    "{target} is in use by {}; it was not touched. The restored copy is ready as {fresh}: \
                     stop those clients, then run: ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {};",
                    who.join(", "),
                    quote_ident(target),
                    quote_ident(aside),
                    quote_ident(fresh),
                    quote_ident(target)
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let sql = format!(
        "begin; alter database {t} rename to {a}; alter database {f} rename to {t}; commit;",
        t = quote_ident(target),
        a = quote_ident(aside),
        f = quote_ident(fresh)
    );
    sqlx::raw_sql(&sql).execute(&mut *admin).await.map(|_| ()).map_err(|e| {
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
