//! Who is connected to the database an in-place restore replaces: its rename needs the
//! database free of sessions. Lists the client sessions (other roles' too, which
//! `pg_stat_activity` shows a non-superuser without their backend type), tells
//! ballast's own apart, ends sessions when asked, and says why when it may not.

use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::db::{DbError, SqlFailure};

/// Sessions on their way out (a client that just disconnected, ballast's own previous
/// connection) get this long before they count.
const GRACE: Duration = Duration::from_secs(5);

/// A client session connected to a database.
#[derive(Debug, Clone)]
pub struct Session {
    pub pid: i32,
    pub application_name: String,
    pub user: String,
    /// Whether this session's role may end it: a superuser, or a member of
    /// `pg_signal_backend` or of the session's role (and it is no superuser's).
    pub can_end: bool,
}

impl Session {
    /// A deploy waiting for the deploy lock: it gives up within its lock_wait, once the
    /// target is closed to it.
    pub fn waits_for_the_lock(&self) -> bool {
        self.application_name.ends_with(" (deploy lock)")
    }

    /// One of ballast's connections: `<application_name> (<role>)`, the name cut as
    /// [`crate::db::session_base`] cuts it.
    fn is_ballasts(&self, settings: &Settings) -> bool {
        self.application_name
            .rsplit_once(" (")
            .is_some_and(|(base, role)| {
                role.ends_with(')')
                    && base == crate::db::session_base(&settings.database.application_name)
            })
    }
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}, user {})",
            self.pid, self.application_name, self.user
        )
    }
}

/// Client sessions on `database` (background workers aside), but for the asking
/// session and `except` (the deploy lock's).
pub async fn on(
    conn: &mut sqlx::PgConnection,
    database: &str,
    except: i32,
) -> Result<Vec<Session>, DbError> {
    let rows: Vec<(i32, String, String, bool)> = sqlx::query_as(
        "select a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
                coalesce(me.rolsuper or (not coalesce(r.rolsuper, false) and \
                  (pg_has_role(current_user, 'pg_signal_backend', 'USAGE') \
                   or pg_has_role(current_user, a.usesysid, 'USAGE'))), false) \
         from pg_stat_activity a \
         left join pg_roles r on r.oid = a.usesysid \
         cross join (select rolsuper from pg_roles where rolname = current_user) me \
         where a.datname = $1 and a.usesysid is not null \
           and coalesce(a.backend_type, 'client backend') = 'client backend' \
           and a.pid <> pg_backend_pid() and a.pid <> $2 \
         order by a.pid",
    )
    .bind(database)
    .bind(except)
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query("listing sessions on the target", &e))?;
    Ok(rows
        .into_iter()
        .map(|(pid, application_name, user, can_end)| Session {
            pid,
            application_name,
            user,
            can_end,
        })
        .collect())
}

pub fn list<'a>(sessions: impl IntoIterator<Item = &'a Session>) -> String {
    sessions
        .into_iter()
        .map(Session::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ends `sessions` (pg_terminate_backend); what could not be ended, and why.
pub async fn end(conn: &mut sqlx::PgConnection, sessions: &[&Session]) -> Vec<String> {
    let mut refused = Vec::new();
    for session in sessions {
        if let Err(e) = sqlx::query("select pg_terminate_backend($1)")
            .bind(session.pid)
            .execute(&mut *conn)
            .await
        {
            refused.push(format!("{session}: {}", SqlFailure::from_sqlx(&e)));
        }
    }
    refused
}

/// The grant that lets `conn`'s role end other roles' sessions.
pub async fn grant_hint(conn: &mut sqlx::PgConnection) -> String {
    let role: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(conn)
        .await
        .unwrap_or_else(|_| "<ballast's role>".into());
    format!(
        "GRANT pg_signal_backend TO {}",
        crate::db::quote_ident(&role)
    )
}

/// Why an in-place restore cannot replace the target: it is in use.
#[derive(Debug, thiserror::Error)]
pub enum InUse {
    #[error("{target} is in use by {sessions}, and ballast's role may not end their sessions: nothing was done. Stop those clients, or let the role end them: {grant}")]
    MayNotEnd {
        target: String,
        sessions: String,
        grant: String,
    },
    #[error("{target} is in use by {sessions}: nothing was done. Replacing it needs it free of sessions: stop those clients, or let the restore end them just before the rename (`ballast restore --end-sessions`; for the restore rung of a pipeline, backup.restore_ends_sessions = true)")]
    Busy { target: String, sessions: String },
    #[error(transparent)]
    Unlisted(#[from] DbError),
}

/// In place, before any work: the client sessions on the target. Returns those to end
/// at the rename (with `backup.restore_ends_sessions`), or why the restore cannot go on:
/// without it, clients that stay past a few seconds' grace (ballast's own, a deploy
/// closing or waiting for the lock, get 2 × lock_wait); with it, sessions this role
/// may not end. Either way before the safety backup and the copy, not after.
pub async fn check_clients(
    conn: &mut sqlx::PgConnection,
    target: &str,
    lock_pid: i32,
    settings: &Settings,
) -> Result<Vec<Session>, InUse> {
    let ends = settings.backup.restore_ends_sessions;
    let started = Instant::now();
    loop {
        let (ours, others): (Vec<Session>, Vec<Session>) = on(conn, target, lock_pid)
            .await?
            .into_iter()
            .filter(|s| !s.waits_for_the_lock())
            .partition(|s| s.is_ballasts(settings));
        if ours.is_empty() && others.is_empty() {
            return Ok(Vec::new());
        }
        if ends && !others.is_empty() {
            let cannot: Vec<&Session> = others.iter().filter(|s| !s.can_end).collect();
            if !cannot.is_empty() {
                return Err(InUse::MayNotEnd {
                    target: target.to_string(),
                    sessions: list(cannot),
                    grant: grant_hint(conn).await,
                });
            }
            if ours.is_empty() || started.elapsed() > GRACE {
                return Ok(others);
            }
        }
        let waited = started.elapsed();
        let past = if others.is_empty() {
            waited > settings.database.lock_wait * 2
        } else {
            waited > GRACE
        };
        if past {
            let all: Vec<&Session> = ours.iter().chain(&others).collect();
            return Err(InUse::Busy {
                target: target.to_string(),
                sessions: list(all),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
