//! Preflight: can this run succeed, before it starts? Connection, privileges, a
//! pg_dump new enough for the server, writable backup storage with room for the dump,
//! the deploy lock free, and no session in the way of the plan's locks. Run by the
//! `state-check` stage and by `ballast check`; each check names what is wrong and
//! what to do.

use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::config::{BlockerPolicy, Settings};
use crate::db::{lock, DbError, ServerInfo};
use crate::lint::locks::{LockMode, TableLocks};
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
    /// Its recovery ladder may restore that backup (a sealed one needs the identity).
    pub restores_on_failure: bool,
    /// The tables the plan's statements touch and the lock modes they wait for there
    /// (for the blocking-session check).
    pub tables: &'a [TableLocks],
    /// The migration state: its engine's tables are checked for privileges too.
    pub state: &'a crate::engine::Snapshot,
    /// The run rehearses on a copy (the role may create it, it fits).
    pub rehearse: bool,
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
        if let Some(check) = sealed_restore(&settings.backup, scope.restores_on_failure) {
            checks.push(check);
        }
    }
    if scope.rehearse {
        match crate::rehearse::copy::preflight(settings, conn).await {
            Ok(Some(found)) => checks.push(Check::ok("rehearsal copy", found)),
            Ok(None) => {}
            Err(e) => checks.push(Check::failed("rehearsal copy", e.to_string())),
        }
    }
    checks.push(deploy_lock(settings, conn).await);
    checks.extend(blockers(conn, scope.tables, &settings.database).await);
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

/// A sealed backup the recovery ladder may have to restore: the identity that opens
/// it must be at hand, or the restore rung will refuse when it is needed.
fn sealed_restore(backup: &crate::config::BackupSettings, restores: bool) -> Option<Check> {
    backup.age_recipients.as_ref()?;
    if !restores {
        return None;
    }
    Some(match &backup.age_identity_file {
        None => Check::warn(
            "sealed backup",
            "this run's backup is sealed with age and no identity is configured (backup.age_identity_file): if the deploy fails, the restore rung cannot read it, and the run ends with the command to restore by hand with the identity",
        ),
        Some(path) => match crate::seal::Identities::load(path) {
            Ok(_) => Check::ok(
                "sealed backup",
                format!("sealed with age; the restore rung reads it with {}", path.display()),
            ),
            Err(e) => Check::failed("sealed backup", format!("{e}; the restore rung could not read this run's backup")),
        },
    })
}

fn free_disk(dir: &std::path::Path, database_bytes: i64) -> Check {
    // The folder may not exist until the first backup: measure where it will be.
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    match crate::disk::available_bytes(existing) {
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

async fn deploy_lock(settings: &Settings, conn: &mut PgConnection) -> Check {
    match lock::holder(conn, lock::key_for(&settings.database.schema)).await {
        Ok(None) => Check::ok("deploy lock", "free"),
        // Not a failure: the upgrade waits database.lock_wait for it, then says who.
        Ok(Some(h)) => Check::warn(
            "deploy lock",
            format!(
                "held by pid {} ({}, {}) since {}: {}; the run will wait database.lock_wait for it",
                h.pid,
                h.application_name,
                h.client,
                h.since,
                match h.backing_up {
                    true => "a backup-only run is dumping the database",
                    false => "another deploy is running",
                }
            ),
        ),
        Err(e) => Check::failed("deploy lock", e.to_string()),
    }
}

/// How long the preflight looks again before it counts a lock holder: an
/// application's transactions of a few milliseconds come and go many times over.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(300);

/// A session holding a lock on a table the plan changes, as seen at one look.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holding {
    pid: i32,
    table: String,
    /// The lock it holds there, as `pg_locks` names it.
    mode: String,
    /// When its transaction began: the same pid in another transaction is another
    /// holder.
    xact_start: String,
    application: String,
    state: String,
    /// Milliseconds since its state last changed: an application caught between two
    /// statements of a short transaction is `idle in transaction` for a moment only.
    state_for_ms: i64,
    age: String,
    query_start: String,
    query: String,
}

/// Sessions that would make the plan's statements wait: a lock held on a table the
/// plan touches, in a mode one of its statements waits for, by the same transaction
/// at two looks [`RECHECK`] apart (short in-flight queries never count), and
/// transactions open for a long time (they hold locks and old snapshots).
async fn blockers(
    conn: &mut PgConnection,
    tables: &[TableLocks],
    database: &crate::config::DatabaseSettings,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let names: Vec<String> = tables.iter().map(|t| t.table.clone()).collect();
    let tables_named = names.as_slice();
    let first = match holding(conn, tables_named).await {
        Ok(first) => first,
        Err(e) => return vec![Check::failed("blocking sessions", e.to_string())],
    };
    let second = match first.is_empty() {
        true => Ok(Vec::new()),
        false => {
            tokio::time::sleep(RECHECK).await;
            holding(conn, tables_named).await
        }
    };
    match second {
        Ok(second) => checks.extend(judge(&first, &second, tables, database)),
        Err(e) => checks.push(Check::failed("blocking sessions", e.to_string())),
    }
    checks.extend(long_transactions(conn, database.long_transaction).await);
    checks
}

async fn holding(conn: &mut PgConnection, tables: &[String]) -> Result<Vec<Holding>, DbError> {
    let rows = sqlx::query(
        "select distinct a.pid, lower(n.nspname) || '.' || lower(c.relname), l.mode, a.xact_start::text, \
                coalesce(nullif(a.application_name, ''), 'no application_name'), coalesce(a.state, '?'), \
                coalesce((extract(epoch from now() - a.state_change) * 1000)::bigint, 0), \
                coalesce(to_char(now() - a.xact_start, 'HH24:MI:SS'), '?'), coalesce(a.query_start::text, '?'), \
                left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120) \
         from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace \
         join pg_stat_activity a on a.pid = l.pid \
         where l.granted and a.pid <> pg_backend_pid() and a.xact_start is not null \
           and lower(n.nspname) || '.' || lower(c.relname) = any($1) order by 1, 2",
    )
    .bind(tables)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DbError::query("looking for sessions holding the plan's tables", &e))?;
    Ok(rows
        .iter()
        .map(|r| Holding {
            pid: r.get(0),
            table: r.get(1),
            mode: r.get(2),
            xact_start: r.get(3),
            application: r.get(4),
            state: r.get(5),
            state_for_ms: r.get(6),
            age: r.get(7),
            query_start: r.get(8),
            query: r.get(9),
        })
        .collect())
}

/// What the two looks say. A holder seen at both, in the same transaction, holding
/// a mode one of the plan's statements waits for on that table: left idle in its
/// transaction (for as long as the looks are apart), it is refused (nothing says it
/// will ever end); running a query (a report), it is waited for within `lock_budget`
/// under the lock-queue guard, or refused, as `database.blocker_policy` says. A holder
/// whose mode nothing in the plan waits for is no blocker.
fn judge(
    first: &[Holding],
    second: &[Holding],
    tables: &[TableLocks],
    database: &crate::config::DatabaseSettings,
) -> Vec<Check> {
    let in_the_way = |h: &Holding| {
        let waits = tables.iter().find(|t| t.table == h.table);
        match (waits, LockMode::from_pg_name(&h.mode)) {
            (Some(t), Some(held)) => t.waits_for(held),
            // Unknown: counted, to be safe.
            _ => true,
        }
    };
    let mut lasting: Vec<&Holding> = Vec::new();
    let mut harmless: Vec<&Holding> = Vec::new();
    for h in second {
        let seen_first = first
            .iter()
            .any(|f| f.pid == h.pid && f.table == h.table && f.xact_start == h.xact_start);
        if !seen_first || lasting.iter().any(|l| l.pid == h.pid && l.table == h.table) {
            continue;
        }
        match in_the_way(h) {
            true => {
                harmless.retain(|o| !(o.pid == h.pid && o.table == h.table));
                lasting.push(h);
            }
            false
                if !harmless
                    .iter()
                    .any(|o| o.pid == h.pid && o.table == h.table) =>
            {
                harmless.push(h)
            }
            false => {}
        }
    }
    if lasting.is_empty() {
        let detail = match (first.len(), harmless.as_slice()) {
            (0, _) => "no open transaction holds a lock on the plan's tables".to_string(),
            (_, []) => "only short transactions hold locks on the plan's tables (each gone at a second look)".to_string(),
            (_, held) => format!(
                "no lock held on the plan's tables is one its statements wait for ({})",
                held.iter()
                    .map(|h| format!("pid {} ({}) holds {} on {}", h.pid, h.application, h.mode, h.table))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        return vec![Check::ok("blocking sessions", detail)];
    }
    lasting
        .into_iter()
        .map(|h| {
            let who = format!(
                "pid {} ({}) holds {} on {}, which the plan waits for, in a transaction open for {}",
                h.pid, h.application, h.mode, h.table, h.age
            );
            let idle = h.state.starts_with("idle in transaction")
                && h.state_for_ms >= RECHECK.as_millis() as i64;
            match (idle, database.blocker_policy) {
                (true, _) => Check::failed(
                    "blocking sessions",
                    format!(
                        "{who}, {} (last query started {}: {}): it does nothing, so waiting will not end it; the migration would queue behind it. Find why the application leaves it open, or end it with pg_terminate_backend({})",
                        h.state, h.query_start, h.query, h.pid
                    ),
                ),
                (false, BlockerPolicy::Wait) => Check::warn(
                    "blocking sessions",
                    format!(
                        "{who} ({}, query started {}: {}): the upgrade waits for it, for at most database.lock_budget ({}), the lock-queue guard keeping the application from queueing behind the wait",
                        h.state,
                        h.query_start,
                        h.query,
                        humantime::format_duration(database.lock_budget)
                    ),
                ),
                (false, BlockerPolicy::Refuse) => Check::failed(
                    "blocking sessions",
                    format!(
                        "{who}, running a query since {} ({}); database.blocker_policy = \"refuse\": wait for it, or end it with pg_terminate_backend({})",
                        h.query_start, h.query, h.pid
                    ),
                ),
            }
        })
        .collect()
}

/// Transactions open longer than `database.long_transaction`: a warning, naming each.
async fn long_transactions(
    conn: &mut PgConnection,
    long_transaction: std::time::Duration,
) -> Vec<Check> {
    let mut checks = Vec::new();
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

    fn held(pid: i32, xact_start: &str, state: &str) -> Holding {
        Holding {
            pid,
            table: "public.hot".into(),
            mode: "AccessShareLock".into(),
            xact_start: xact_start.into(),
            application: "app".into(),
            state: state.into(),
            state_for_ms: 9000,
            age: "00:00:09".into(),
            query_start: "12:00:00".into(),
            query: "select count(*) from hot".into(),
        }
    }

    /// A plan that rewrites `hot`: it waits for every holder.
    fn rewrite() -> Vec<TableLocks> {
        vec![TableLocks {
            table: "public.hot".into(),
            modes: vec![LockMode::AccessExclusive],
        }]
    }

    fn database(policy: BlockerPolicy) -> crate::config::DatabaseSettings {
        let mut settings = crate::config::load(&crate::config::LoadOptions::default())
            .expect("the defaults load")
            .database;
        settings.blocker_policy = policy;
        settings
    }

    #[test]
    fn a_holder_gone_or_in_another_transaction_at_the_second_look_is_no_blocker() {
        let db = database(BlockerPolicy::Refuse);
        // Steady load: a different transaction of the same session each time.
        let first = [
            held(1, "12:00:00.001", "active"),
            held(2, "12:00:00.002", "idle in transaction"),
        ];
        let second = [held(1, "12:00:00.301", "active")];
        let checks = judge(&first, &second, &rewrite(), &db);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Ok, "{}", checks[0].detail);
        assert!(
            checks[0].detail.contains("second look"),
            "{}",
            checks[0].detail
        );
        assert_eq!(judge(&[], &[], &rewrite(), &db)[0].status, Status::Ok);
    }

    #[test]
    fn a_lasting_idle_transaction_is_refused_and_a_lasting_query_waited_for_by_policy() {
        let idle = [held(7, "11:59:00", "idle in transaction")];
        let checks = judge(&idle, &idle, &rewrite(), &database(BlockerPolicy::Wait));
        assert_eq!(checks[0].status, Status::Failed);
        assert!(
            checks[0].detail.contains("pg_terminate_backend(7)"),
            "{}",
            checks[0].detail
        );
        let report = [held(8, "11:59:00", "active")];
        let waited = judge(&report, &report, &rewrite(), &database(BlockerPolicy::Wait));
        assert_eq!(waited[0].status, Status::Warning);
        assert!(
            waited[0].detail.contains("lock_budget"),
            "{}",
            waited[0].detail
        );
        let refused = judge(
            &report,
            &report,
            &rewrite(),
            &database(BlockerPolicy::Refuse),
        );
        assert_eq!(refused[0].status, Status::Failed);
        assert!(
            refused[0].detail.contains("blocker_policy"),
            "{}",
            refused[0].detail
        );
    }

    #[test]
    fn a_holder_whose_lock_the_plan_does_not_wait_for_is_no_blocker() {
        // A report idle in its transaction holds ACCESS SHARE; a concurrent index build
        // waits for writers only.
        let build = vec![TableLocks {
            table: "public.hot".into(),
            modes: vec![LockMode::Share],
        }];
        let reader = [held(7, "11:59:00", "idle in transaction")];
        let checks = judge(&reader, &reader, &build, &database(BlockerPolicy::Refuse));
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Ok, "{}", checks[0].detail);
        assert!(
            checks[0]
                .detail
                .contains("pid 7 (app) holds AccessShareLock on public.hot"),
            "{}",
            checks[0].detail
        );
        // A writer idle in its transaction is in the build's way.
        let mut writer = held(7, "11:59:00", "idle in transaction");
        writer.mode = "RowExclusiveLock".into();
        let writer = [writer];
        let checks = judge(&writer, &writer, &build, &database(BlockerPolicy::Refuse));
        assert_eq!(checks[0].status, Status::Failed, "{}", checks[0].detail);
        assert!(
            checks[0].detail.contains("RowExclusiveLock"),
            "{}",
            checks[0].detail
        );
    }

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
