//! The copy a rehearsal runs the plan on: where it lives (`[rehearse] url`: beside the
//! target, beside a database on another server, or on a throwaway local server), the
//! checks before it is made (the role may create a database, there is room for it, no
//! other rehearsal of the same database runs), the restore, and dropping it.
//!
//! The copy is made by the restore every restore uses ([`Destination::Scratch`]): it
//! stays marked "incomplete restore, safe to drop" until it is dropped, so a copy left
//! by a killed run is dropped by the next rehearsal. A Ctrl-C while the plan runs on
//! it drops it on the way out.

use std::time::Instant;

use super::RehearseError;
use crate::backup::replace::{drop_scratch_copy, replace, Destination, ReplaceError, Scratch};
use crate::config::{CopyPlace, DatabaseSettings, Settings};
use crate::db::{self, quote_ident};
use crate::events::{Events, Restored, Severity};
use crate::scratch::ScratchCluster;
use crate::storage::manifest::Manifest;
use crate::storage::Storage;
use crate::text::human_bytes;

/// A restored copy, there until [`Copy::drop`].
pub struct Copy {
    /// The run's settings pointed at the copy.
    pub settings: Settings,
    /// Where it was made beside (its server's maintenance database drops it).
    beside: Settings,
    pub name: String,
    /// How long the restore took, and what it restored.
    pub restore_ms: u64,
    pub restored: Restored,
    /// The throwaway server it lives on (`url = "local"`).
    cluster: Option<ScratchCluster>,
    /// The session holding the rehearsal's lock, until the copy is dropped.
    lock: sqlx::PgConnection,
}

/// Makes the copy of `manifest`'s backup, after checking it can be made.
pub async fn make(
    settings: &Settings,
    storage: &Storage,
    manifest: &Manifest,
    events: &Events,
) -> Result<Copy, RehearseError> {
    let mut cluster = None;
    let beside = match &settings.rehearse.copy {
        CopyPlace::Beside => settings.clone(),
        CopyPlace::Elsewhere(database) => Settings {
            database: database.clone(),
            ..settings.clone()
        },
        CopyPlace::Local => {
            let started = tokio::task::spawn_blocking(ScratchCluster::start)
                .await
                .map_err(|e| RehearseError::Failed(e.to_string()))?
                .map_err(|e| {
                    RehearseError::Failed(format!("starting a throwaway server for the copy: {e}"))
                })?;
            // Gone with this process, however it ends.
            let _ = started.stop_when_process_exits(std::process::id());
            let url = started.url("postgres");
            cluster = Some(started);
            Settings {
                database: settings.database.with_url(url),
                ..settings.clone()
            }
        }
    };
    let mut lock = db::connect(&beside.database, "rehearsal").await?;
    // One rehearsal beside a database at a time: another's copy is never taken for a
    // leftover and dropped.
    if !db::lock::try_purpose_lock(&mut lock, "rehearsal").await? {
        db::close(lock).await;
        return Err(RehearseError::Refused(
            "another rehearsal beside this database is running; nothing was made".into(),
        ));
    }
    if let Err(e) = may_create(&mut lock, &beside.database).await {
        db::close(lock).await;
        return Err(e);
    }
    let room = room_for(settings, &mut lock, cluster.as_ref(), events).await;
    if let Err(e) = room {
        db::close(lock).await;
        return Err(e);
    }
    if let Ok(Some(line)) = &room {
        events.diagnose(Severity::Detail, line.clone(), None);
    }
    let started = Instant::now();
    let restored = replace(
        &beside,
        storage,
        manifest,
        Destination::Scratch(Scratch::Rehearsal {
            grants: matches!(settings.rehearse.copy, CopyPlace::Beside),
        }),
        events,
        &mut None,
    )
    .await;
    let restored = match restored {
        Ok(restored) => restored,
        Err(e) => {
            db::close(lock).await;
            return Err(match e {
                ReplaceError::Db(e)
                    if e.to_string()
                        .contains("permission denied to create database") =>
                {
                    RehearseError::Refused(format!("{e}: {}", createdb_hint(&beside.database)))
                }
                e => RehearseError::Failed(format!(
                    "restoring backup {} into the rehearsal's copy failed: {e}",
                    manifest.id
                )),
            });
        }
    };
    let restore_ms = started.elapsed().as_millis() as u64;
    let name = restored.database.clone();
    // The restore set the copy's drop on exit (a Ctrl-C ends the run at once: the
    // target is not changing) as soon as it created it.
    crate::interrupt::set_note(Some(format!(
        "interrupted during the rehearsal: the target was not touched; the copy {name} is dropped"
    )));
    Ok(Copy {
        settings: Settings {
            database: beside.database.for_database(&name),
            ..settings.clone()
        },
        beside,
        name,
        restore_ms,
        restored,
        cluster,
        lock,
    })
}

impl Copy {
    /// Drops the copy (and its throwaway server); one that cannot be dropped now stays
    /// marked for the next rehearsal.
    pub async fn drop(mut self, events: &Events) {
        drop_scratch_copy(&self.beside, &self.name, events).await;
        crate::interrupt::set_note(None);
        db::close(self.lock).await;
        if let Some(mut cluster) = self.cluster.take() {
            let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
        }
    }

    /// Where the copy lives, for people: `shop__ballast_rehearsal_… on 127.0.0.1`.
    pub fn describe(&self) -> String {
        match &self.cluster {
            Some(_) => format!("{} on a throwaway local server", self.name),
            None => self.name.clone(),
        }
    }
}

/// The role may create databases on the copy's server (CREATEDB, or a superuser).
async fn may_create(
    conn: &mut sqlx::PgConnection,
    database: &DatabaseSettings,
) -> Result<(), RehearseError> {
    let may: Option<bool> = sqlx::query_scalar(
        "select rolcreatedb or rolsuper from pg_roles where rolname = current_user",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| db::DbError::query("reading the role's privileges", &e))?;
    match may {
        Some(false) => Err(RehearseError::Refused(format!(
            "this role may not create databases: {}",
            createdb_hint(database)
        ))),
        _ => Ok(()),
    }
}

fn createdb_hint(database: &DatabaseSettings) -> String {
    let role = url::Url::parse(database.url().unwrap_or_default())
        .ok()
        .map(|u| u.username().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "the role".into());
    format!(
        "a rehearsal restores the backup into a new database beside it. Grant it (ALTER ROLE {} CREATEDB), or give the rehearsal a server where it may ([rehearse] url = \"postgres://...\" on a staging server, or \"local\" for a throwaway one); nothing was made",
        quote_ident(&role)
    )
}

/// Whether the copy fits, where this machine can see the free space of the copy's
/// server (the throwaway server, or a server on this machine whose data directory the
/// role may read). `Ok(Some(line))`: what was found; `Ok(None)`: the free space cannot
/// be known from here (said as a warning, with what it needs).
async fn room_for(
    settings: &Settings,
    beside: &mut sqlx::PgConnection,
    cluster: Option<&ScratchCluster>,
    events: &Events,
) -> Result<Option<String>, RehearseError> {
    let mut target = db::connect(&settings.database, "rehearsal").await?;
    let needed = Needed::of(&mut target).await;
    db::close(target).await;
    let needed = needed?;
    let folder = match cluster {
        Some(cluster) => Some(cluster.base_dir().to_path_buf()),
        None => local_data_directory(beside).await?,
    };
    let room = needed.fits(folder)?;
    if room.is_none() {
        events.diagnose(
            Severity::Warning,
            format!(
                "the free space of the copy's server cannot be read from here: the copy needs about {}; make sure it has it",
                needed.describe()
            ),
            None,
        );
    }
    Ok(room)
}

/// What the copy needs on its server's disk: the target's size, and the size of its
/// largest table again (a rewrite writes a new copy of a table before it drops the
/// old one). The WAL the restore writes comes on top, as far as the server keeps it
/// (`max_wal_size`, replication slots, archiving).
struct Needed {
    database: String,
    size: u64,
    largest: u64,
}

impl Needed {
    async fn of(target: &mut sqlx::PgConnection) -> Result<Needed, RehearseError> {
        let info = db::server_info(&mut *target).await?;
        let largest: i64 = sqlx::query_scalar(
            "select coalesce(max(pg_total_relation_size(oid)), 0)::int8 from pg_class \
             where relkind in ('r', 'm')",
        )
        .fetch_one(target)
        .await
        .map_err(|e| db::DbError::query("reading the largest table's size", &e))?;
        Ok(Needed {
            database: info.database,
            size: info.size_bytes.max(0) as u64,
            largest: largest.max(0) as u64,
        })
    }

    fn bytes(&self) -> u64 {
        self.size + self.largest
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} is {}, and a rewrite of its largest table needs {} more)",
            human_bytes(self.bytes()),
            self.database,
            human_bytes(self.size),
            human_bytes(self.largest)
        )
    }

    /// Against the free space in `folder` (where the copy's server keeps its data).
    fn fits(&self, folder: Option<std::path::PathBuf>) -> Result<Option<String>, RehearseError> {
        let free = crate::faults::free_bytes()
            .or_else(|| folder.as_deref().and_then(crate::disk::available_bytes));
        let Some(free) = free else {
            return Ok(None);
        };
        let place = folder
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "its data directory".into());
        if free < self.bytes() {
            return Err(RehearseError::Refused(format!(
                "not enough room for the rehearsal's copy: it needs about {}, and the copy's server has {} free ({place}). Free space, or give the rehearsal a server with room ([rehearse] url); nothing was made",
                self.describe(),
                human_bytes(free)
            )));
        }
        Ok(Some(format!(
            "room for the copy: about {} needed, {} free ({place})",
            human_bytes(self.bytes()),
            human_bytes(free)
        )))
    }
}

/// The preflight's look, on the target's own session, when the copy is to be made
/// beside it: the role may create it and (where this machine can tell) it fits.
/// `Ok(None)`: the copy is made elsewhere, checked when it is made.
pub async fn preflight(
    settings: &Settings,
    conn: &mut sqlx::PgConnection,
) -> Result<Option<String>, RehearseError> {
    if !matches!(settings.rehearse.copy, CopyPlace::Beside) {
        return Ok(None);
    }
    may_create(conn, &settings.database).await?;
    let needed = Needed::of(conn).await?;
    let folder = local_data_directory(conn).await?;
    let room = needed.fits(folder)?;
    Ok(Some(room.unwrap_or_else(|| {
        format!(
            "this role may create the copy beside the target; the server's free space cannot be read from here: it needs about {}",
            needed.describe()
        )
    })))
}

/// The server's data directory, when the server runs on this machine (a folder of
/// that name here is its own only then).
async fn local_data_directory(
    conn: &mut sqlx::PgConnection,
) -> Result<Option<std::path::PathBuf>, RehearseError> {
    Ok(match db::server_info(&mut *conn).await?.host.as_str() {
        "127.0.0.1" | "localhost" | "::1" | "local socket" => data_directory(conn).await,
        _ => None,
    })
}

/// The server's data directory when the role may read it and it is on this machine.
async fn data_directory(conn: &mut sqlx::PgConnection) -> Option<std::path::PathBuf> {
    let dir: Option<String> =
        sqlx::query_scalar("select setting from pg_settings where name = 'data_directory'")
            .fetch_optional(conn)
            .await
            .ok()
            .flatten();
    dir.map(std::path::PathBuf::from).filter(|d| d.exists())
}
