//! `restore [ID]`: put a backup back, for disaster recovery and drills.
//!
//! Every restore goes into a brand-new database first (one pg_restore transaction),
//! so a failure leaves the target untouched. `--into NEW_DB` stops there. In place,
//! ballast first takes a safety backup of the target, then swaps names in one
//! transaction: the target becomes `<name>_before_restore_<stamp>` (kept until you drop
//! it) and the restored copy takes its name. The result is exactly the backup: tables
//! created since are not left behind.

use std::io::IsTerminal;

use sqlx::Row;

use crate::backup::restore::restore_into;
use crate::backup::target::{back_up, write_counter};
use crate::backup::{pg_restore_for, verify};
use crate::cli::GlobalArgs;
use crate::config::Settings;
use crate::db::{self, ledger, quote_ident};
use crate::exit_code;
use crate::redact::split_secrets;
use crate::report::human::human_bytes;
use crate::report::stdout_line;
use crate::storage::{Listed, Storage};

/// The database restore connects to for creating and renaming databases.
const MAINTENANCE_DB: &str = "postgres";

pub async fn run(g: &GlobalArgs, id: Option<&str>, into: Option<&str>) -> i32 {
    match restore(g, id, into).await {
        Ok(()) => exit_code::SUCCESS,
        Err((code, message)) => super::fail(g, &message, code),
    }
}

type Failure = (i32, String);

fn say(g: &GlobalArgs, line: &str) {
    if !g.json && !g.quiet {
        stdout_line(line);
    }
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

async fn restore(g: &GlobalArgs, id: Option<&str>, into: Option<&str>) -> Result<(), Failure> {
    let usage = |e: &dyn std::fmt::Display| (exit_code::USAGE, e.to_string());
    let failed = |e: &dyn std::fmt::Display| (exit_code::FAILED_RESTORED, e.to_string());
    let settings = super::load_settings(g).map_err(|code| (code, "configuration".to_string()))?;
    settings.database.url().map_err(|e| usage(&e))?;
    let storage = Storage::open(&settings.backup)
        .await
        .map_err(|e| usage(&e))?;
    let listed = pick(&storage, id).await?;
    let m = &listed.manifest;

    // 1. The artifact, read back in full before anything else happens.
    say(
        g,
        &format!("verifying {} ({}) …", m.id, human_bytes(m.compressed_bytes)),
    );
    let pg_restore = pg_restore_for(&settings.backup.pg_dump);
    verify(&storage, &listed, pg_restore.clone())
        .await
        .map_err(|e| (exit_code::REFUSED, format!("refusing to restore: {e}")))?;

    // 2. Can this server take it?
    let mut conn = db::connect(&settings.database, "restore")
        .await
        .map_err(|e| failed(&e))?;
    let server = db::server_info(&mut conn).await.map_err(|e| failed(&e))?;
    if let Some(major) = m.server_major {
        if server.major < major {
            return Err((
                exit_code::REFUSED,
                format!("the backup comes from PostgreSQL {major}; this server is {}: restore it on {major} or newer", server.server_version),
            ));
        }
    }

    // 3. What will be replaced, what will be lost.
    let target = into.unwrap_or(&server.database).to_string();
    let exists: bool =
        sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(&target)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| failed(&db::DbError::query("looking for the database", &e)))?;
    say(
        g,
        &format!(
            "backup {}: database {} at revision {}, taken {}",
            m.id,
            m.database,
            m.revision.as_deref().unwrap_or("none"),
            m.started_at
        ),
    );
    match into {
        Some(name) if exists => {
            return Err((
                exit_code::USAGE,
                format!("database {name} already exists; --into needs a new name"),
            ))
        }
        Some(name) => say(
            g,
            &format!(
                "will create database {name} on {} and restore into it; nothing else changes",
                server.host
            ),
        ),
        None => {
            let applied = ledger::applied(&mut conn, &settings.database.schema)
                .await
                .map_err(|e| failed(&e))?;
            let now_at = ledger::newest(&applied).map(|r| format!("{}_{}", r.version, r.name));
            say(
                g,
                &format!(
                "will REPLACE database {} on {} (now at revision {}) with the backup's contents",
                server.database,
                server.host,
                now_at.as_deref().unwrap_or("none")
            ),
            );
            let lost = match (m.write_counter, write_counter(&mut conn).await) {
                (Some(then), Ok(now)) if now >= then => format!(
                    "{} row changes since the backup (pg_stat_user_tables)",
                    now - then
                ),
                _ => "unknown (statistics were reset, or the backup predates this count)".into(),
            };
            say(g, &format!("writes that will be lost: {lost}"));
        }
    }

    // 4. A person types the name, or a script says --yes.
    confirm(g, &target).await?;

    // 5. In place: a safety backup of the current state first.
    if into.is_none() {
        say(g, "taking a safety backup of the current state …");
        let events = super::events(g, false);
        let safety = back_up(&settings, &mut conn, &server, uuid::Uuid::new_v4(), &events)
            .await
            .map_err(|e| {
                (
                    exit_code::FAILED_RESTORED,
                    format!("the safety backup failed, nothing was restored: {e}"),
                )
            })?;
        say(g, &format!("safety backup: {}", safety.location));
    }
    db::close(conn).await;

    // 6. Restore into a new database, in one transaction.
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let fresh = into
        .map(str::to_string)
        .unwrap_or_else(|| format!("{target}__ballast_restore_{stamp}"));
    let admin_settings = settings.database.for_database(MAINTENANCE_DB);
    let mut admin = db::connect(&admin_settings, "restore admin")
        .await
        .map_err(|e| failed(&e))?;
    sqlx::raw_sql(&format!("create database {}", quote_ident(&fresh)))
        .execute(&mut admin)
        .await
        .map_err(|e| {
            failed(&db::DbError::query(
                format!("creating database {fresh}"),
                &e,
            ))
        })?;
    let fresh_url = split_secrets(
        &settings
            .database
            .for_database(&fresh)
            .url()
            .map_err(|e| usage(&e))?
            .to_string(),
    )
    .map_err(|e| usage(&e))?;
    let reader = storage.reader(&m.id).await.map_err(|e| failed(&e))?;
    let bar = progress_bar(g, m.raw_bytes);
    let ticker = bar.clone();
    let restored = tokio::task::spawn_blocking(move || {
        restore_into(reader, &pg_restore, &fresh_url, move |n| {
            ticker.set_position(n)
        })
    })
    .await;
    bar.finish_and_clear();
    let restored = match restored {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = restored {
        let _ = sqlx::raw_sql(&format!("drop database if exists {}", quote_ident(&fresh)))
            .execute(&mut admin)
            .await;
        return Err((
            exit_code::FAILED_RESTORED,
            format!("{e}; {target} was not touched"),
        ));
    }

    // 7. In place: swap names in one transaction, if nobody else is connected.
    let final_db = match into {
        Some(name) => name.to_string(),
        None => {
            let aside = format!("{target}_before_restore_{stamp}");
            swap(&mut admin, &target, &fresh, &aside, &settings).await?;
            say(g, &format!("{target} is now the restored copy; the previous database is kept as {aside} (drop it when satisfied)"));
            target.clone()
        }
    };
    db::close(admin).await;

    // 8. Row counts per table, from the restored database.
    report_counts(g, &settings, &final_db)
        .await
        .map_err(|e| failed(&e))?;
    Ok(())
}

async fn pick(storage: &Storage, id: Option<&str>) -> Result<Listed, Failure> {
    if id.is_some() {
        return storage
            .find(id)
            .await
            .map_err(|e| (exit_code::USAGE, e.to_string()));
    }
    if !interactive() {
        return Err((
            exit_code::USAGE,
            "no backup id given and no terminal to pick one: `ballast backups` lists them".into(),
        ));
    }
    let listed = storage
        .list()
        .await
        .map_err(|e| (exit_code::USAGE, e.to_string()))?;
    if listed.is_empty() {
        return Err((
            exit_code::USAGE,
            format!("no backups in {}", storage.describe()),
        ));
    }
    let items: Vec<String> = listed
        .iter()
        .map(|l| {
            format!(
                "{}  {}  revision {}  {}{}",
                l.manifest.id,
                l.manifest.started_at.chars().take(19).collect::<String>(),
                l.manifest.revision.as_deref().unwrap_or("none"),
                human_bytes(l.manifest.compressed_bytes),
                if l.verified_at.is_some() {
                    "  verified"
                } else {
                    ""
                }
            )
        })
        .collect();
    let choice = tokio::task::spawn_blocking(move || {
        dialoguer::Select::new()
            .with_prompt("Restore which backup?")
            .items(&items)
            .default(0)
            .interact_opt()
    })
    .await
    .map_err(|e| (exit_code::REFUSED, e.to_string()))?
    .map_err(|e| (exit_code::REFUSED, e.to_string()))?;
    match choice {
        Some(n) => Ok(listed[n].clone()),
        None => Err((exit_code::REFUSED, "no backup chosen".into())),
    }
}

async fn confirm(g: &GlobalArgs, target: &str) -> Result<(), Failure> {
    if g.yes {
        return Ok(());
    }
    if !interactive() {
        return Err((
            exit_code::REFUSED,
            "no terminal to confirm the restore; pass --yes to run it unattended".into(),
        ));
    }
    let expected = target.to_string();
    let typed = tokio::task::spawn_blocking(move || {
        dialoguer::Input::<String>::new()
            .with_prompt(format!("Type the database name ({expected}) to go ahead"))
            .allow_empty(true)
            .interact_text()
    })
    .await
    .map_err(|e| (exit_code::REFUSED, e.to_string()))?
    .map_err(|e| (exit_code::REFUSED, e.to_string()))?;
    if typed.trim() == target {
        Ok(())
    } else {
        Err((
            exit_code::REFUSED,
            format!("`{}` is not `{target}`: nothing restored", typed.trim()),
        ))
    }
}

/// `target` → `aside`, `fresh` → `target`, in one transaction. Refuses (and keeps the
/// restored copy under its temporary name) while other sessions use the target.
async fn swap(
    admin: &mut sqlx::PgConnection,
    target: &str,
    fresh: &str,
    aside: &str,
    settings: &Settings,
) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + settings.database.lock_wait;
    loop {
        let sessions = sqlx::query(
            "select pid, coalesce(application_name, '') from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(target)
        .fetch_all(&mut *admin)
        .await
        .map_err(|e| (exit_code::FAILED_RESTORED, e.to_string()))?;
        if sessions.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let who: Vec<String> = sessions
                .iter()
                .map(|r| format!("pid {} ({})", r.get::<i32, _>(0), r.get::<String, _>(1)))
                .collect();
            return Err((
                exit_code::REFUSED,
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
        (
            exit_code::FAILED_RESTORED,
            format!("renaming the databases failed and rolled back ({e}); {target} was not touched, the restored copy is {fresh}"),
        )
    })
}

async fn report_counts(
    g: &GlobalArgs,
    settings: &Settings,
    database: &str,
) -> Result<(), db::DbError> {
    let mut conn = db::connect(&settings.database.for_database(database), "restore check").await?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select schemaname::text, relname::text from pg_stat_user_tables order by schemaname, relname",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| db::DbError::query("listing tables", &e))?;
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
            .map_err(|e| db::DbError::query(format!("counting {schema}.{table}"), &e))?;
        counts.push((format!("{schema}.{table}"), n));
    }
    db::close(conn).await;
    if g.json {
        let rows: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(t, n)| (t.clone(), (*n).into()))
            .collect();
        stdout_line(
            &serde_json::json!({ "event": "restored", "database": database, "row_counts": rows })
                .to_string(),
        );
    } else {
        stdout_line(&format!("✓ restored into {database}; rows per table:"));
        for (table, n) in &counts {
            stdout_line(&format!("  {table:<40} {n:>12}"));
        }
    }
    Ok(())
}

fn progress_bar(g: &GlobalArgs, total: u64) -> indicatif::ProgressBar {
    if g.json || g.quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "  restoring {bar:30} {bytes}/{total_bytes} · {binary_bytes_per_sec}",
    ) {
        bar.set_style(style);
    }
    bar
}
