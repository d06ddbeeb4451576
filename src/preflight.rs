//! Preflight: can this run succeed, before it starts? Connection, privileges, a
//! pg_dump new enough for the server, writable backup storage with room for the dump,
//! the deploy lock free, and no session in the way of the plan's locks. Run by the
//! `state-check` stage and by `ballast check`; each check names what is wrong and
//! what to do.

use sqlx::postgres::PgConnection;

use crate::config::Settings;
use crate::db::{lock, DbError, ServerInfo};
use crate::storage::Storage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Failed,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
        }
    }
    fn warn(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warning,
            detail: detail.into(),
        }
    }
    fn failed(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Failed,
            detail: detail.into(),
        }
    }
}

/// What the checks need to know about the run.
pub struct Scope<'a> {
    /// The run takes a backup (pg_dump, storage and disk are checked).
    pub backup: bool,
    /// `schema.table` the plan's statements touch (for the blocking-session check).
    pub tables: &'a [String],
    /// The migration state: its engine's tables are checked for privileges too.
    pub state: &'a crate::engine::Snapshot,
}

/// Runs every check that applies. A failure of the checks themselves (a query that
/// errors) is reported as a failed check, never hidden.
pub async fn run(
    settings: &Settings,
    conn: &mut PgConnection,
    server: &ServerInfo,
    storage: Option<&Storage>,
    scope: Scope<'_>,
) -> Vec<Check> {
    let mut checks = vec![Check::ok(
        "connect",
        format!(
            "{} on {} as {} (PostgreSQL {})",
            server.database, server.host, server.user, server.server_version
        ),
    )];
    checks.push(privileges(settings, conn, scope.state).await);
    if scope.backup {
        checks.push(pg_dump(settings, server).await);
        if let Some(storage) = storage {
            checks.push(match storage.probe_write().await {
                Ok(()) => Check::ok("storage", format!("{} is writable", storage.describe())),
                Err(e) => Check::failed("storage", format!("cannot write a backup: {e}")),
            });
            if let Some(dir) = storage.local_dir() {
                checks.push(free_disk(dir, server.size_bytes));
            }
        }
    }
    checks.push(deploy_lock(settings, conn).await);
    checks.extend(blockers(conn, scope.tables, settings.database.long_transaction).await);
    checks
}

pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Failed)
}

async fn privileges(
    settings: &Settings,
    conn: &mut PgConnection,
    state: &crate::engine::Snapshot,
) -> Check {
    let schema = &settings.database.schema;
    match state.missing_privileges(conn, schema).await {
        Ok(None) => Check::ok(
            "privileges",
            format!("can create and write ballast's tables in {schema}"),
        ),
        Ok(Some((problem, grant))) => {
            Check::failed("privileges", format!("{problem}; run: {grant}"))
        }
        Err(e) => Check::failed("privileges", e.to_string()),
    }
}

async fn pg_dump(settings: &Settings, server: &ServerInfo) -> Check {
    let program = settings.backup.pg_dump.clone();
    let client = tokio::task::spawn_blocking(move || crate::backup::client_version(&program)).await;
    match client {
        Ok(Ok(client)) if client.major >= server.major => {
            Check::ok("pg_dump", format!("{} can dump PostgreSQL {}", client.version, server.major))
        }
        Ok(Ok(client)) => Check::failed(
            "pg_dump",
            format!(
                "pg_dump {} is older than the server ({}): install postgresql-client-{} or set backup.pg_dump",
                client.version, server.server_version, server.major
            ),
        ),
        Ok(Err(e)) => Check::failed("pg_dump", e.to_string()),
        Err(e) => Check::failed("pg_dump", e.to_string()),
    }
}

fn free_disk(dir: &std::path::Path, database_bytes: i64) -> Check {
    // The folder may not exist until the first backup: measure where it will be.
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    match available_bytes(existing) {
        Some(free) if free >= database_bytes.max(0) as u64 => Check::ok(
            "disk",
            format!(
                "{} free for backups, the database is {}",
                crate::text::human_bytes(free),
                crate::text::human_bytes(database_bytes.max(0) as u64)
            ),
        ),
        Some(free) => Check::failed(
            "disk",
            format!(
                "only {} free in {} for a backup of a {} database: free space or set backup.dir",
                crate::text::human_bytes(free),
                existing.display(),
                crate::text::human_bytes(database_bytes.max(0) as u64)
            ),
        ),
        None => Check::warn(
            "disk",
            format!("cannot tell the free space in {}", existing.display()),
        ),
    }
}

/// Bytes available to this user on the file system holding `path`.
fn available_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string; stat is a plain struct we own.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

async fn deploy_lock(settings: &Settings, conn: &mut PgConnection) -> Check {
    match lock::holder(conn, lock::key_for(&settings.database.schema)).await {
        Ok(None) => Check::ok("deploy lock", "free"),
        // Not a failure: the upgrade waits database.lock_wait for it, then says who.
        Ok(Some(h)) => Check::warn(
            "deploy lock",
            format!(
                "held by pid {} ({}, {}) since {}: another deploy is running; the upgrade will wait database.lock_wait for it",
                h.pid, h.application_name, h.client, h.since
            ),
        ),
        Err(e) => Check::failed("deploy lock", e.to_string()),
    }
}

/// Sessions that would make the plan's statements wait: a lock held on a table the
/// plan touches (the migration would hit lock_timeout), and transactions open for a
/// long time (they hold locks and old snapshots).
async fn blockers(
    conn: &mut PgConnection,
    tables: &[String],
    long_transaction: std::time::Duration,
) -> Vec<Check> {
    let mut checks = Vec::new();
    // pid, table, transaction age, query start, query.
    type Holder = (i32, String, String, String, String);
    let holding: Result<Vec<Holder>, DbError> = sqlx::query_as(
        "select distinct a.pid, lower(n.nspname) || '.' || lower(c.relname), \
                coalesce(to_char(now() - a.xact_start, 'HH24:MI:SS'), '?'), coalesce(a.query_start::text, '?'), \
                left(coalesce(a.query, ''), 120) \
         from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace \
         join pg_stat_activity a on a.pid = l.pid \
         where l.granted and a.pid <> pg_backend_pid() and a.xact_start is not null \
           and lower(n.nspname) || '.' || lower(c.relname) = any($1) order by 1",
    )
    .bind(tables)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DbError::query("looking for sessions holding the plan's tables", &e));
    match holding {
        Ok(rows) if rows.is_empty() => checks.push(Check::ok(
            "blocking sessions",
            "no open transaction holds a lock on the plan's tables",
        )),
        Ok(rows) => {
            for (pid, table, age, query_start, query) in rows {
                checks.push(Check::failed(
                    "blocking sessions",
                    format!(
                        "pid {pid} holds a lock on {table} in a transaction open for {age} (query started {query_start}: {query}); the migration would wait lock_timeout and fail: wait for it, or end it with pg_terminate_backend({pid})"
                    ),
                ));
            }
        }
        Err(e) => checks.push(Check::failed("blocking sessions", e.to_string())),
    }
    // pid, application, transaction age, query start, state.
    type Open = (i32, String, String, String, String);
    let long: Result<Vec<Open>, DbError> = sqlx::query_as(
        "select pid, coalesce(nullif(application_name, ''), 'no application_name'), \
                to_char(now() - xact_start, 'HH24:MI:SS'), coalesce(query_start::text, '?'), coalesce(state, '?') \
         from pg_stat_activity where xact_start < now() - make_interval(secs => $1) \
           and pid <> pg_backend_pid() and datname = current_database() order by xact_start",
    )
    .bind(long_transaction.as_secs_f64())
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DbError::query("looking for long transactions", &e));
    match long {
        Ok(rows) => {
            for (pid, application, age, query_start, state) in rows {
                checks.push(Check::warn(
                    "long transactions",
                    format!("pid {pid} ({application}) has had a transaction open for {age} ({state}, query started {query_start}); it may hold locks the plan needs (database.long_transaction)"),
                ));
            }
        }
        Err(e) => checks.push(Check::warn("long transactions", e.to_string())),
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_disk_fails_when_the_backup_cannot_fit() {
        let dir = tempfile::tempdir().unwrap();
        // The folder need not exist yet: its nearest existing parent is measured.
        let backups = dir.path().join("not/yet/backups");
        let fits = free_disk(&backups, 1024);
        assert_eq!(fits.status, Status::Ok, "{}", fits.detail);
        let huge = free_disk(&backups, i64::MAX);
        assert_eq!(huge.status, Status::Failed);
        assert!(huge.detail.contains("free in"), "{}", huge.detail);
        assert!(
            huge.detail.contains(&dir.path().display().to_string()),
            "names the folder measured: {}",
            huge.detail
        );
        assert!(huge.detail.contains("set backup.dir"), "{}", huge.detail);
    }
}
