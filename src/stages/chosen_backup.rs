//! `ballast restore`'s checks on the backup a person chose, before the question:
//! read back in full and fit for this server (its `verify-backup` stage), then what
//! the restore will create or replace, and lose (said by its `confirm` stage).

use super::{StageError, StageOutcome};
use crate::backup::replace::{check_destination, Destination};
use crate::backup::sessions;
use crate::backup::target::write_counter;
use crate::backup::{restore_db, verify};
use crate::db::{self, ServerInfo};
use crate::events::Severity;
use crate::pipeline::{RestoreChoice, RunContext};
use crate::seal::SealError;
use crate::storage::manifest::Manifest;
use crate::text::human_bytes;

/// The chosen backup, read back in full (size, SHA-256, every byte, `pg_restore
/// --list`), and a server that can take it. Not sound: refused, nothing happened.
pub async fn verify_chosen(
    ctx: &mut RunContext,
    choice: &RestoreChoice,
) -> Result<StageOutcome, StageError> {
    let m = &choice.backup.manifest;
    say(
        ctx,
        format!("verifying {} ({}) …", m.id, human_bytes(m.compressed_bytes)),
    );
    let storage = ctx.storage().await?;
    let verified = verify(&storage, &choice.backup, &ctx.settings().backup)
        .await
        .map_err(|e| StageError::Refused(format!("refusing to restore: {e}")))?;
    if !verified.contents_checked {
        return Err(StageError::Refused(format!(
            "refusing to restore: {}",
            SealError::needs_identity(m)
        )));
    }
    let server = ctx.server().await?;
    if let Some(major) = m.server_major {
        if server.major < major {
            return Err(StageError::Refused(format!(
                "the backup comes from PostgreSQL {major}; this server is {}: restore it on {major} or newer",
                server.server_version
            )));
        }
    }
    Ok(StageOutcome::Done(format!(
        "{}: sound: size and SHA-256 match the manifest, {} archive entries",
        m.id, verified.toc_entries
    )))
}

/// What the restore will do, said before the question; returns the name a person
/// types to go ahead. Refuses a backup of another database (in place), and an
/// `--into` database that exists, unless it is an interrupted restore's leftover.
pub async fn announce(ctx: &mut RunContext, choice: &RestoreChoice) -> Result<String, StageError> {
    let m = &choice.backup.manifest;
    let server = ctx.server().await?;
    let destination = match &choice.into {
        Some(name) => Destination::New(name),
        None => Destination::InPlace,
    };
    check_destination(m, &server.database, &destination)
        .map_err(|e| StageError::Refused(e.to_string()))?;
    let target = choice.into.clone().unwrap_or(server.database.clone());
    let conn = ctx.conn().await?;
    let exists: bool =
        sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(&target)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db::DbError::query("looking for the database", &e))?;
    // The leftover of an interrupted `--into` restore is dropped and done again.
    let leftover =
        exists && choice.into.is_some() && restore_db::is_incomplete(conn, &target).await?;
    say(
        ctx,
        format!(
            "backup {}: database {} at revision {}, taken {}",
            m.id,
            m.database,
            m.revision.as_deref().unwrap_or("none"),
            m.started_at
        ),
    );
    match &choice.into {
        Some(name) if leftover => say(
            ctx,
            format!("database {name} is an incomplete restore left by an interrupted run: it will be dropped and restored again"),
        ),
        Some(name) if exists => {
            return Err(StageError::Config(format!(
                "database {name} already exists; --into needs a new name"
            )))
        }
        Some(name) => say(
            ctx,
            format!(
                "will create database {name} on {} and restore into it; nothing else changes",
                server.host
            ),
        ),
        None => announce_in_place(ctx, &server, m).await?,
    }
    Ok(target)
}

/// What an in-place restore will replace and lose: the revision now, the writes
/// since the backup, the clients connected.
async fn announce_in_place(
    ctx: &mut RunContext,
    server: &ServerInfo,
    m: &Manifest,
) -> Result<(), StageError> {
    let now_at = ctx.current_revision().await?;
    ctx.found_at(now_at.clone());
    say(
        ctx,
        format!(
            "will REPLACE database {} on {} (now at revision {}) with the backup's contents",
            server.database,
            server.host,
            now_at.as_deref().unwrap_or("none")
        ),
    );
    let conn = ctx.conn().await?;
    let lost = match (m.write_counter, write_counter(&mut *conn).await) {
        (Some(then), Ok(now)) if now >= then => format!(
            "{} row changes since the backup (pg_stat_user_tables)",
            now - then
        ),
        _ => "unknown (statistics were reset, or the backup predates this count)".into(),
    };
    let clients: Vec<sessions::Session> = sessions::on(conn, &server.database, 0)
        .await?
        .into_iter()
        .filter(|s| !s.waits_for_the_lock())
        .collect();
    say(ctx, format!("writes that will be lost: {lost}"));
    if !clients.is_empty() {
        let then = match ctx.settings().backup.restore_ends_sessions {
            false => "the restore refuses while they are: stop them first, or pass --end-sessions",
            true if clients.iter().all(|s| s.can_end) => {
                "their sessions are ended just before the rename"
            }
            true => "ballast's role may not end them all: the restore refuses",
        };
        say(
            ctx,
            format!("connected now: {}; {then}", sessions::list(&clients)),
        );
    }
    Ok(())
}

fn say(ctx: &RunContext, line: String) {
    ctx.events().diagnose(Severity::Info, line, None);
}
