//! The deploy lock: a session-level advisory lock on its own connection.
//!
//! Holding it on a dedicated connection means a migration's own transaction can
//! commit or roll back without touching the lock, and a killed ballast releases it
//! the moment its connection drops.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::Row;

use super::error::DbError;
use crate::config::DatabaseSettings;

/// First half of the two-key advisory lock: "ballast" in spirit, constant forever.
pub const LOCK_CLASS: i32 = 0x0ba1_1a57;

pub struct DeployLock {
    conn: PgConnection,
    key: i32,
    /// Held in shared mode: a backup-only run's, which other backups share and a
    /// deploy waits for (see [`DeployLock::acquire_shared`]).
    shared: bool,
    /// The lock session's backend pid.
    pid: i32,
}

/// Who holds the lock, as far as `pg_stat_activity` tells.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockHolder {
    pub pid: i32,
    pub application_name: String,
    pub client: String,
    pub since: String,
    /// It holds the lock in shared mode: a backup-only run, dumping.
    pub backing_up: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} holds the lock on this database: pid {pid}, application \"{app}\", client {client}, since {since}; waited {waited:?}", what = if .holder.backing_up { "a backup-only run (pg_dump holds ACCESS SHARE on every table while it dumps, so a change would queue behind it)" } else { "another deploy" }, pid = .holder.pid, app = .holder.application_name, client = .holder.client, since = .holder.since)]
    Busy {
        holder: LockHolder,
        waited: Duration,
    },
    #[error("another session holds the deploy lock (it went away before it could be named); waited {waited:?}")]
    BusyUnknown { waited: Duration },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The lock key for one schema: two deploys to different schemas of one database do
/// not block each other.
pub fn key_for(schema: &str) -> i32 {
    // FNV-1a: stable across versions and platforms (std's hasher is not).
    let mut hash: u32 = 0x811c_9dc5;
    for byte in schema.bytes() {
        hash ^= byte as u32;
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

/// The key of one of ballast's own locks besides the deploy lock, by what it is for
/// (`restore drill`): a NUL no schema name holds keeps it apart from every schema's
/// deploy lock ([`key_for`]).
pub fn purpose_key(purpose: &str) -> i32 {
    key_for(&format!("\0{purpose}"))
}

/// Takes ballast's lock for `purpose` (see [`purpose_key`]) on `conn`'s session, without
/// waiting: `false` when another session holds it. Held until the session ends.
pub async fn try_purpose_lock(conn: &mut PgConnection, purpose: &str) -> Result<bool, DbError> {
    sqlx::query_scalar("select pg_try_advisory_lock($1, $2)")
        .bind(LOCK_CLASS)
        .bind(purpose_key(purpose))
        .fetch_one(conn)
        .await
        .map_err(|e| DbError::query(format!("taking the {purpose} lock"), &e))
}

impl DeployLock {
    /// Takes the lock, waiting up to `database.lock_wait`; `on_wait` is told once
    /// who is in the way.
    pub async fn acquire(
        db: &DatabaseSettings,
        on_wait: impl FnMut(&LockHolder),
    ) -> Result<DeployLock, LockError> {
        Self::take(db, false, on_wait).await
    }

    /// Takes the lock in shared mode, for a backup-only run (the nightly job): backups
    /// share it, a deploy holds it alone. So a deploy never starts its changes while
    /// pg_dump holds `ACCESS SHARE` on every table (they would queue behind the dump,
    /// and the application behind them), and a backup never starts in the middle of a
    /// deploy. Each side waits `database.lock_wait` for the other, then gives up.
    pub async fn acquire_shared(
        db: &DatabaseSettings,
        on_wait: impl FnMut(&LockHolder),
    ) -> Result<DeployLock, LockError> {
        Self::take(db, true, on_wait).await
    }

    async fn take(
        db: &DatabaseSettings,
        shared: bool,
        mut on_wait: impl FnMut(&LockHolder),
    ) -> Result<DeployLock, LockError> {
        let mut conn = super::connect(db, "deploy lock").await?;
        let key = key_for(&db.schema);
        let started = Instant::now();
        let mut told = false;
        let take = match shared {
            true => "select pg_try_advisory_lock_shared($1, $2)",
            false => "select pg_try_advisory_lock($1, $2)",
        };
        loop {
            let got: bool = sqlx::query_scalar(take)
                .bind(LOCK_CLASS)
                .bind(key)
                .fetch_one(&mut conn)
                .await
                .map_err(|e| DbError::query("taking the deploy lock", &e))?;
            if got {
                let pid = sqlx::query_scalar("select pg_backend_pid()")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| DbError::query("taking the deploy lock", &e))?;
                return Ok(DeployLock {
                    conn,
                    key,
                    shared,
                    pid,
                });
            }
            let holder = holder(&mut conn, key).await?;
            if !told {
                if let Some(h) = &holder {
                    on_wait(h);
                    told = true;
                }
            }
            let waited = started.elapsed();
            if waited >= db.lock_wait {
                super::connect::close(conn).await;
                return Err(match holder {
                    Some(holder) => LockError::Busy { holder, waited },
                    None => LockError::BusyUnknown { waited },
                });
            }
            tokio::time::sleep(Duration::from_millis(200).min(db.lock_wait - waited)).await;
        }
    }

    /// Also takes the advisory locks in `keys` (a migration tool's, one 64-bit key
    /// each) on the lock's session, waiting up to `database.lock_wait` in all; `on_wait`
    /// is told once who is in the way. Released with the deploy lock.
    pub async fn also(
        &mut self,
        keys: &[i64],
        db: &DatabaseSettings,
        mut on_wait: impl FnMut(&LockHolder),
    ) -> Result<(), LockError> {
        let started = Instant::now();
        let mut told = false;
        for &key in keys {
            loop {
                let got: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut self.conn)
                    .await
                    .map_err(|e| DbError::query("taking the migration tool's lock", &e))?;
                if got {
                    break;
                }
                let holder = tool_holder(&mut self.conn, key).await?;
                if let (false, Some(h)) = (told, &holder) {
                    on_wait(h);
                    told = true;
                }
                let waited = started.elapsed();
                if waited >= db.lock_wait {
                    return Err(match holder {
                        Some(holder) => LockError::Busy { holder, waited },
                        None => LockError::BusyUnknown { waited },
                    });
                }
                tokio::time::sleep(Duration::from_millis(200).min(db.lock_wait - waited)).await;
            }
        }
        Ok(())
    }

    /// The backend pid of the session holding the lock.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether this session still holds the lock: false when its connection was lost
    /// (a server restart, a network cut), which releases it without a word.
    pub async fn still_held(&mut self) -> bool {
        sqlx::query_scalar::<_, bool>(
            "select exists (select 1 from pg_locks where pid = pg_backend_pid() \
             and locktype = 'advisory' and granted and classid::int = $1 and objid::int = $2 \
             and objsubid = 2)",
        )
        .bind(LOCK_CLASS)
        .bind(self.key)
        .fetch_one(&mut self.conn)
        .await
        .unwrap_or(false)
    }

    pub async fn release(mut self) {
        let unlock = match self.shared {
            true => "select pg_advisory_unlock_shared($1, $2)",
            false => "select pg_advisory_unlock($1, $2)",
        };
        let _ = sqlx::query(unlock)
            .bind(LOCK_CLASS)
            .bind(self.key)
            .execute(&mut self.conn)
            .await;
        super::connect::close(self.conn).await;
    }
}

pub async fn holder(conn: &mut PgConnection, key: i32) -> Result<Option<LockHolder>, DbError> {
    let row = sqlx::query(
        "select a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), \
                coalesce(a.backend_start::text, '?'), l.mode = 'ShareLock' \
         from pg_locks l join pg_stat_activity a on a.pid = l.pid \
         where l.locktype = 'advisory' and l.granted and l.classid::int = $1 and l.objid::int = $2 \
           and l.objsubid = 2 and a.pid <> pg_backend_pid() \
           and l.database = (select oid from pg_database where datname = current_database()) \
         order by l.mode = 'ShareLock', a.backend_start limit 1",
    )
    .bind(LOCK_CLASS)
    .bind(key)
    .fetch_optional(conn)
    .await
    .map_err(|e| DbError::query("looking up who holds the deploy lock", &e))?;
    Ok(row.map(|r| LockHolder {
        pid: r.get(0),
        application_name: r.get(1),
        client: r.get(2),
        since: r.get(3),
        backing_up: r.get(4),
    }))
}

/// Who holds the 64-bit advisory lock `key` in this database.
async fn tool_holder(conn: &mut PgConnection, key: i64) -> Result<Option<LockHolder>, DbError> {
    let row = sqlx::query(
        "select a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), \
                coalesce(a.backend_start::text, '?') \
         from pg_locks l join pg_stat_activity a on a.pid = l.pid \
         where l.locktype = 'advisory' and l.granted and l.objsubid = 1 \
           and ((l.classid::bigint << 32) | l.objid::bigint) = $1 \
           and l.database = (select oid from pg_database where datname = current_database())",
    )
    .bind(key)
    .fetch_optional(conn)
    .await
    .map_err(|e| DbError::query("looking up who holds the migration tool's lock", &e))?;
    Ok(row.map(|r| LockHolder {
        pid: r.get(0),
        application_name: r.get(1),
        client: r.get(2),
        since: r.get(3),
        backing_up: false,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_keys_are_stable_and_differ_by_schema() {
        assert_eq!(super::key_for("public"), super::key_for("public"));
        assert_ne!(super::key_for("public"), super::key_for("marketplace"));
    }
}
