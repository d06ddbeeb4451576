//! `restore [ID]`: put a backup back, for disaster recovery and drills. This command
//! picks, verifies, checks and asks; [`crate::backup::replace`] does the restoring.
//! Every restore is journaled like a pipeline run (`ballast history` lists it).

use std::time::Instant;

use crate::backup::replace::{check_destination, replace, Destination, ReplaceError};
use crate::backup::sessions;
use crate::backup::target::write_counter;
use crate::backup::{pg_restore_for, restore_db, verify};
use crate::cli::GlobalArgs;
use crate::config::Settings;
use crate::db;
use crate::events::{Outcome, RunSummary, StageRecord};
use crate::exit_code;
use crate::pipeline::journal::Journal;
use crate::report::stdout_line;
use crate::storage::{Listed, Storage};
use crate::text::human_bytes;

pub async fn run(g: &GlobalArgs, id: Option<&str>, into: Option<&str>, end_sessions: bool) -> i32 {
    let mut settings = match super::load_settings(g) {
        Ok(s) => s,
        Err(code) => return code,
    };
    settings.backup.restore_ends_sessions |= end_sessions;
    let mut account = Account::new();
    // Started now (its entry is written once it ends).
    let journal = Journal::new(
        settings.backup.dir.clone(),
        &account.run_id.to_string(),
        "restore",
        &settings.database.display_url(),
        &settings.database.schema,
    );
    let result = restore(g, &settings, id, into, &mut account).await;
    let code = match &result {
        Ok(()) => exit_code::SUCCESS,
        Err((code, _)) => *code,
    };
    // A usage error (no such backup, a name taken) is no restore, as a pipeline run
    // that never started is not journaled either.
    if code != exit_code::USAGE {
        record(&settings, journal, &account, &result).await;
    }
    match result {
        Ok(()) => code,
        Err((code, message)) => super::fail(g, &message, code),
    }
}

type Failure = (i32, String);

/// What the journal keeps of a restore: its stages (`verify-backup`, `restore`), the
/// revisions before and after, the backup, what is left to do.
struct Account {
    run_id: uuid::Uuid,
    started: Instant,
    stages: Vec<StageRecord>,
    stage: (&'static str, Instant),
    start_version: Option<String>,
    end_version: Option<String>,
    backup: Option<String>,
    next_steps: Vec<String>,
    /// The configured database was replaced (its journal table gets the entry too).
    replaced_target: bool,
}

impl Account {
    fn new() -> Account {
        Account {
            run_id: uuid::Uuid::new_v4(),
            started: Instant::now(),
            stages: Vec::new(),
            stage: ("verify-backup", Instant::now()),
            start_version: None,
            end_version: None,
            backup: None,
            next_steps: Vec::new(),
            replaced_target: false,
        }
    }

    /// The current stage, ended now.
    fn ended(&self, status: &str, detail: String) -> StageRecord {
        let (stage, since) = self.stage;
        StageRecord {
            stage: stage.into(),
            status: status.into(),
            duration_ms: since.elapsed().as_millis() as u64,
            detail,
        }
    }

    fn record(&mut self, status: &str, detail: String) {
        let record = self.ended(status, detail);
        self.stages.push(record);
    }

    /// The current stage ended well; `next` begins.
    fn next(&mut self, detail: String, next: &'static str) {
        self.record("ok", detail);
        self.stage = (next, Instant::now());
    }

    fn summary(&self, result: &Result<(), Failure>) -> RunSummary {
        let (outcome, exit_code, error) = match result {
            Ok(()) => (Outcome::Succeeded, exit_code::SUCCESS, None),
            // The target is untouched by a failed restore: it goes into a new database
            // first, and the rename is one transaction.
            Err((code, message)) if *code == exit_code::FAILED_RESTORED => {
                (Outcome::FailedUnchanged, *code, Some(message.clone()))
            }
            Err((code, message)) => (Outcome::Refused, *code, Some(message.clone())),
        };
        let mut stages = self.stages.clone();
        let mut failed_stage = None;
        if let Some(error) = &error {
            failed_stage = Some(self.stage.0.to_string());
            let status = match outcome {
                Outcome::Refused => "refused",
                _ => "failed",
            };
            stages.push(self.ended(status, error.clone()));
        }
        RunSummary {
            run_id: self.run_id.to_string(),
            pipeline: "restore".into(),
            outcome,
            exit_code,
            failed_stage,
            error,
            start_version: self.start_version.clone(),
            // Not restored: where it was.
            end_version: match result {
                Ok(()) => self.end_version.clone(),
                Err(_) => self.start_version.clone(),
            },
            applied: Vec::new(),
            rolled_back: Vec::new(),
            undone: Vec::new(),
            state_read: self.replaced_target,
            backup: self.backup.clone(),
            stages,
            duration_ms: self.started.elapsed().as_millis() as u64,
            next_steps: self.next_steps.clone(),
        }
    }
}

/// The restore's entry: in the journal file always; in the target's journal table too
/// when the target was replaced (its history then holds the restore that made it).
async fn record(
    settings: &Settings,
    mut journal: Journal,
    account: &Account,
    result: &Result<(), Failure>,
) {
    journal.close(&account.summary(result));
    if account.replaced_target {
        if let Ok(mut conn) = db::connect(&settings.database, "restore journal").await {
            journal
                .write_table(&mut conn, &settings.database.schema)
                .await;
            db::close(conn).await;
        }
    }
}

/// The id that names the newest backup, for scripted drills.
const LATEST: &str = "latest";

fn say(g: &GlobalArgs, line: &str) {
    if !g.json && !g.quiet {
        stdout_line(line);
    }
}

async fn restore(
    g: &GlobalArgs,
    settings: &Settings,
    id: Option<&str>,
    into: Option<&str>,
    account: &mut Account,
) -> Result<(), Failure> {
    let usage = |e: &dyn std::fmt::Display| (exit_code::USAGE, e.to_string());
    let failed = |e: &dyn std::fmt::Display| (exit_code::FAILED_RESTORED, e.to_string());
    settings.database.url().map_err(|e| usage(&e))?;
    let storage = Storage::open(&settings.backup)
        .await
        .map_err(|e| usage(&e))?;
    let database = settings.database.database_name();
    let listed = pick(&storage, id, &database).await?;
    let m = &listed.manifest;
    account.backup = Some(m.id.clone());

    // 1. The artifact, read back in full before anything else happens.
    say(
        g,
        &format!("verifying {} ({}) …", m.id, human_bytes(m.compressed_bytes)),
    );
    let pg_restore = pg_restore_for(&settings.backup.pg_dump);
    let verified = verify(&storage, &listed, pg_restore.clone())
        .await
        .map_err(|e| (exit_code::REFUSED, format!("refusing to restore: {e}")))?;
    let sound = format!(
        "sound: size and SHA-256 match the manifest, {} archive entries",
        verified.toc_entries
    );
    say(g, &format!("  {sound}"));
    account.next(format!("{}: {sound}", m.id), "restore");

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
    let destination = match into {
        Some(name) => Destination::New(name),
        None => Destination::InPlace,
    };
    check_destination(m, &server.database, &destination)
        .map_err(|e| (exit_code::REFUSED, e.to_string()))?;
    let exists: bool =
        sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(&target)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| failed(&db::DbError::query("looking for the database", &e)))?;
    // The leftover of an interrupted `--into` restore is dropped and done again.
    let leftover = exists
        && into.is_some()
        && restore_db::is_incomplete(&mut conn, &target)
            .await
            .map_err(|e| failed(&e))?;
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
        Some(name) if leftover => say(
            g,
            &format!("database {name} is an incomplete restore left by an interrupted run: it will be dropped and restored again"),
        ),
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
        None => announce_in_place(g, settings, &mut conn, &server, m, account).await?,
    }

    // 4. A person types the name, or a script says --yes.
    confirm(g, &target).await?;

    // 5. Safety backup (in place), restore into a new database, swap names.
    db::close(conn).await;
    let events = super::events(g, false);
    let replaced = replace(settings, &storage, m, destination, &events, &mut None)
        .await
        .map_err(|e| match e {
            e @ (ReplaceError::InUse(_)
            | ReplaceError::OtherDatabase { .. }
            | ReplaceError::Locked(_)) => (exit_code::REFUSED, e.to_string()),
            other => (exit_code::FAILED_RESTORED, other.to_string()),
        })?;
    if let Some(location) = &replaced.safety_backup {
        say(g, &format!("safety backup: {location}"));
    }
    let mut detail = format!("{} into {}", m.id, replaced.database);
    if let Some(aside) = &replaced.kept_aside {
        account.replaced_target = true;
        account.end_version = m.revision.clone();
        detail.push_str(&format!("; the previous database is kept as {aside}"));
        account.next_steps.push(format!(
            "check the restored database, then drop the previous one: DROP DATABASE {}",
            crate::db::quote_ident(aside)
        ));
    }
    if let Some(location) = &replaced.safety_backup {
        detail.push_str(&format!("; safety backup {location}"));
    }
    account.record("ok", detail);
    report_restored(g, &replaced);
    Ok(())
}

/// The restored database and its rows per table (or the JSON event).
fn report_restored(g: &GlobalArgs, replaced: &crate::backup::replace::Replaced) {
    if g.json {
        crate::report::print_event("restored", serde_json::json!({ "restore": replaced }));
        return;
    }
    stdout_line(&format!(
        "✓ restored into {}; rows per table:",
        replaced.database
    ));
    for (table, n) in &replaced.row_counts {
        stdout_line(&format!("  {table:<40} {n:>12}"));
    }
}

/// What an in-place restore will replace and lose, said before the question: the
/// revision now, the writes since the backup, the clients connected.
async fn announce_in_place(
    g: &GlobalArgs,
    settings: &Settings,
    conn: &mut sqlx::PgConnection,
    server: &db::ServerInfo,
    m: &crate::storage::manifest::Manifest,
    account: &mut Account,
) -> Result<(), Failure> {
    let failed = |e: &dyn std::fmt::Display| (exit_code::FAILED_RESTORED, e.to_string());
    let now_at = crate::engine::Engine::open(settings)
        .current_revision(settings, &mut *conn)
        .await
        .map_err(|e| failed(&e))?;
    account.start_version = now_at.clone();
    say(
        g,
        &format!(
            "will REPLACE database {} on {} (now at revision {}) with the backup's contents",
            server.database,
            server.host,
            now_at.as_deref().unwrap_or("none")
        ),
    );
    let lost = match (m.write_counter, write_counter(&mut *conn).await) {
        (Some(then), Ok(now)) if now >= then => format!(
            "{} row changes since the backup (pg_stat_user_tables)",
            now - then
        ),
        _ => "unknown (statistics were reset, or the backup predates this count)".into(),
    };
    say(g, &format!("writes that will be lost: {lost}"));
    let clients: Vec<sessions::Session> = sessions::on(&mut *conn, &server.database, 0)
        .await
        .map_err(|e| failed(&e))?
        .into_iter()
        .filter(|s| !s.waits_for_the_lock())
        .collect();
    if !clients.is_empty() {
        let then = match settings.backup.restore_ends_sessions {
            false => "the restore refuses while they are: stop them first, or pass --end-sessions",
            true if clients.iter().all(|s| s.can_end) => {
                "their sessions are ended just before the rename"
            }
            true => "ballast's role may not end them all: the restore refuses",
        };
        say(
            g,
            &format!("connected now: {}; {then}", sessions::list(&clients)),
        );
    }
    Ok(())
}

/// The backup to restore: `id`, or with `latest` the newest backup OF THE TARGET
/// DATABASE (a storage folder shared by several databases holds theirs too).
async fn pick(storage: &Storage, id: Option<&str>, database: &str) -> Result<Listed, Failure> {
    if id == Some(LATEST) {
        let listed = storage
            .list()
            .await
            .map_err(|e| (exit_code::USAGE, e.to_string()))?;
        return listed
            .into_iter()
            .find(|l| database.is_empty() || l.manifest.database == database)
            .ok_or_else(|| {
                (
                    exit_code::USAGE,
                    format!(
                        "no backup of database {database} in {} (`ballast backups` lists them all)",
                        storage.describe()
                    ),
                )
            });
    }
    if let Some(id) = id {
        return storage
            .find(Some(id))
            .await
            .map_err(|e| (exit_code::USAGE, e.to_string()));
    }
    if !crate::report::interactive() {
        return Err((
            exit_code::USAGE,
            "no backup id given and no terminal to pick one: name one (`ballast backups` lists them) or say `latest`".into(),
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
    if !crate::report::interactive() {
        return Err((
            exit_code::REFUSED,
            "no terminal to confirm the restore; pass --yes to run it unattended".into(),
        ));
    }
    let typed =
        crate::report::prompt::typed(format!("Type the database name ({target}) to go ahead"))
            .await
            .map_err(|e| (exit_code::REFUSED, e.to_string()))?;
    if typed == target {
        Ok(())
    } else {
        Err((
            exit_code::REFUSED,
            format!("`{typed}` is not `{target}`: nothing restored"),
        ))
    }
}
