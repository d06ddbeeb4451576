//! Opening connections, and reading what the server is.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};

use super::error::{DbError, SqlFailure};
use crate::config::{to_pg_millis, DatabaseSettings};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest role a ballast session names after its application name
/// (` (restore journal)`): the base is cut to leave room for it.
const LONGEST_ROLE: usize = " (restore journal)".len();

/// `database.application_name` as ballast's sessions carry it: cut (at a character
/// boundary) so that `<base> (<role>)` fits PostgreSQL's 63 bytes whatever the role,
/// and the role, which other sessions read (`... (deploy lock)`), is never cut.
pub fn session_base(application_name: &str) -> &str {
    let mut cut = application_name.len().min(63 - LONGEST_ROLE);
    while !application_name.is_char_boundary(cut) {
        cut -= 1;
    }
    &application_name[..cut]
}

/// One connection to the target, tagged with ballast's application name so other
/// sessions (and a second deploy waiting for the lock) can see who it is.
pub async fn connect(db: &DatabaseSettings, role: &str) -> Result<PgConnection, DbError> {
    let target = db.display_url();
    let url = db.url().map_err(|e| DbError::Connect {
        target: target.clone(),
        failure: SqlFailure {
            message: e.to_string(),
            sqlstate: None,
            detail: None,
            hint: None,
            position: None,
        },
    })?;
    let secrets = crate::redact::split_secrets(url)
        .map(|s| s.secrets)
        .unwrap_or_default();
    let failure = |e: &sqlx::Error| {
        let mut failure = SqlFailure::scrubbed(e, &secrets);
        if failure.refuses_connections() && failure.hint.is_none() {
            failure.hint = Some(format!(
                "an in-place restore closes the database to new connections just before its rename; if one was killed there, open it again from another database: ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                crate::db::quote_ident(&db.database_name())
            ));
        }
        DbError::Connect {
            target: target.clone(),
            failure,
        }
    };
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| failure(&e))?
        .application_name(&format!("{} ({role})", session_base(&db.application_name)))
        // Every session, reads included, gives up on a lock rather than queueing
        // behind one (and so blocking everything queued behind it).
        .options([
            ("lock_timeout", to_pg_millis(db.lock_timeout)),
            ("statement_timeout", to_pg_millis(db.statement_timeout)),
        ])
        .log_statements(tracing::log::LevelFilter::Trace);
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(failure(&e)),
        Err(_) => Err(DbError::ConnectTimeout {
            target,
            seconds: CONNECT_TIMEOUT.as_secs(),
        }),
    }
}

/// Facts about the server, for the manifest, the confirm prompt and version checks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInfo {
    pub database: String,
    pub user: String,
    pub server_version: String,
    /// `server_version_num / 10000`: 15 for 15.4.
    pub major: u32,
    pub host: String,
    pub size_bytes: i64,
}

pub async fn server_info(conn: &mut PgConnection) -> Result<ServerInfo, DbError> {
    let row = sqlx::query(
        "select current_database()::text, current_user::text, \
                current_setting('server_version'), current_setting('server_version_num')::int, \
                coalesce(host(inet_server_addr()), 'local socket'), \
                pg_database_size(current_database())",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| DbError::query("reading server facts", &e))?;
    let num: i32 = row.get(3);
    Ok(ServerInfo {
        database: row.get(0),
        user: row.get(1),
        server_version: row.get(2),
        major: (num / 10000) as u32,
        host: row.get(4),
        size_bytes: row.get(5),
    })
}

/// Closes politely; errors on close are of no interest to anyone.
pub async fn close(conn: PgConnection) {
    let _ = conn.close().await;
}

#[cfg(test)]
mod tests {
    use super::session_base;

    #[test]
    fn a_long_application_name_is_cut_so_the_role_always_fits() {
        assert_eq!(session_base("ballast"), "ballast");
        let pod = format!("ballast/{}", "release-job-7f9c6d5b8-".repeat(4));
        let name = format!("{} (restore journal)", session_base(&pod));
        assert_eq!(name.len(), 63);
        assert!(pod.starts_with(session_base(&pod)));
        // Never inside a character.
        let wide = "é".repeat(40);
        let base = session_base(&wide);
        assert!(base.len() <= 45 && base.chars().all(|c| c == 'é'));
    }
}
