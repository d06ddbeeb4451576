//! `restore`: round trips, refusals, and the target untouched when anything fails.

use crate::harness::{cluster, psql, Project};

fn seed(p: &Project) {
    p.sql(
        "create table customers (id bigint primary key, email text not null unique);
         create table orders (id bigint primary key, customer_id bigint not null references customers (id), total numeric(10,2), placed timestamptz default now());
         create index orders_customer_idx on orders (customer_id);
         insert into customers select g, 'c' || g || '@example.com' from generate_series(1, 300) g;
         insert into orders select g, 1 + g % 300, g * 1.5 from generate_series(1, 2000) g",
    );
}

fn schema(db_url: &str) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", "-d", db_url])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn counts(p: &Project) -> String {
    p.sql("select (select count(*) from customers) || '/' || (select count(*) from orders) || '/' || (select sum(total) from orders)")
}

fn backup_id(p: &Project) -> String {
    p.ballast(&["backup"]).expect_code(0);
    p.newest_backup()["id"].as_str().unwrap().to_string()
}

#[test]
fn in_place_restore_round_trips_rows_and_schema() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    let (schema_before, counts_before) = (schema(&p.url), counts(&p));

    p.sql("delete from orders where id > 100; drop index orders_customer_idx; create table added_later (id int)");
    assert_ne!(counts(&p), counts_before);

    let run = p.ballast(&["--yes", "restore", &id]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("writes that will be lost: 1900 row changes"),
        "{out}"
    );
    assert!(out.contains("safety backup: "), "{out}");
    assert!(
        out.contains("public.orders") && out.contains("2000"),
        "row counts per table: {out}"
    );
    assert_eq!(counts(&p), counts_before);
    assert_eq!(
        schema(&p.url),
        schema_before,
        "exactly the backup's schema: no leftovers"
    );
    let aside = psql(
        &cluster().url("postgres"),
        &format!(
            "select datname from pg_database where datname like '{}_before_restore_%'",
            p.db
        ),
    );
    assert!(!aside.is_empty(), "the previous database is kept aside");
    // The safety backup is a backup like any other.
    assert_eq!(
        p.ballast(&["--json", "backups"]).stdout().lines().count(),
        2
    );
}

#[test]
fn restore_into_a_new_database_leaves_the_target_alone() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    p.sql("delete from orders");
    let drill = format!("{}_drill", p.db);
    let run = p.ballast(&["--yes", "restore", &id, "--into", &drill]);
    run.expect_code(0);
    assert_eq!(
        psql(&cluster().url(&drill), "select count(*) from orders"),
        "2000"
    );
    assert_eq!(
        p.sql("select count(*) from orders"),
        "0",
        "the target is untouched"
    );
    let again = p.ballast(&["--yes", "restore", &id, "--into", &drill]);
    again.expect_code(2);
    assert!(
        again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );
}

#[test]
fn restore_without_terminal_or_yes_refuses_and_changes_nothing() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    p.sql("delete from orders");
    let run = p.ballast(&["restore", &id]);
    run.expect_code(3);
    assert!(run.stderr().contains("pass --yes"), "{}", run.stderr());
    assert_eq!(p.sql("select count(*) from orders"), "0");
    let run = p.ballast(&["restore"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("no backup id given"),
        "{}",
        run.stderr()
    );
}

#[test]
fn in_place_with_clients_connected_refuses_up_front_or_ends_their_sessions() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    p.sql("delete from orders");
    let backups = || p.ballast(&["--json", "backups"]).stdout().lines().count();
    let copies = || databases_like(&format!("{}__ballast_restore_%", p.db)).len();
    let client = crate::harness::Blocker::hold(&p.url, "select 1");
    // Refused before the safety backup and the copy: nothing to clean up.
    let run = p.ballast(&["--yes", "restore", &id]);
    run.expect_code(3);
    let err = run.stderr();
    assert!(
        err.contains("is in use by pid")
            && err.contains("(blocker, user postgres)")
            && err.contains("nothing was done"),
        "{err}"
    );
    assert!(err.contains("--end-sessions"), "{err}");
    assert!(
        run.stdout().contains("connected now: pid"),
        "{}",
        run.stdout()
    );
    assert_eq!(backups(), 1, "no safety backup was taken");
    assert_eq!(copies(), 0, "no copy was made");
    assert_eq!(p.sql("select count(*) from orders"), "0");
    // Asked to, the restore ends the client's session just before the rename.
    let run = p.ballast(&["--yes", "restore", &id, "--end-sessions"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("ended just before the rename"),
        "{}",
        run.stdout()
    );
    assert_eq!(p.sql("select count(*) from orders"), "2000");
    assert_eq!(
        psql(
            &cluster().url("postgres"),
            &format!(
                "select count(*) from pg_stat_activity where application_name = 'blocker' \
                 and (datname = '{db}' or datname like '{db}\\_before\\_restore\\_%')",
                db = p.db
            )
        ),
        "0",
        "the client's session was ended"
    );
    drop(client);
}

#[test]
fn a_restore_by_a_role_that_is_no_superuser_sees_other_roles_clients() {
    // As in production: ballast's role owns the database, the application has its own.
    let p = Project::new();
    let deployer = format!("{}_deployer", p.db);
    let app = format!("{}_app", p.db);
    p.sql(&format!(
        "create role {deployer} login createdb; create role {app} login; alter database {} owner to {deployer}",
        p.db
    ));
    let url = p.url.replacen("postgres@", &format!("{deployer}@"), 1);
    let app_url = p.url.replacen("postgres@", &format!("{app}@"), 1);
    psql(
        &url,
        "create table orders (id int); insert into orders select generate_series(1, 10)",
    );
    let config = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    std::fs::write(p.path().join("deploy.toml"), config.replace(&p.url, &url)).unwrap();
    let id = backup_id(&p);
    psql(&url, "delete from orders");
    let _client = crate::harness::Blocker::idle(&app_url, "shop web");
    // The application's session is seen (the statistics hide its backend type from
    // other roles), so the restore refuses before any work.
    let run = p.ballast(&["--yes", "restore", &id]);
    run.expect_code(3);
    assert!(
        run.stderr().contains(&format!("(shop web, user {app})"))
            && run.stderr().contains("nothing was done"),
        "{}",
        run.all()
    );
    // Asked to end it, but the role may not: refused up front, with the grant to give.
    let run = p.ballast(&["--yes", "restore", &id, "--end-sessions"]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("may not end their sessions")
            && run
                .stderr()
                .contains(&format!("GRANT pg_signal_backend TO \"{deployer}\"")),
        "{}",
        run.all()
    );
    assert_eq!(
        psql(&url, "select count(*) from orders"),
        "0",
        "nothing done"
    );
    p.sql(&format!("grant pg_signal_backend to {deployer}"));
    p.ballast(&["--yes", "restore", &id, "--end-sessions"])
        .expect_code(0);
    assert_eq!(psql(&url, "select count(*) from orders"), "10");
}

#[test]
fn corrupt_backup_is_refused_before_anything_happens() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    let object = p.path().join("backups").join(format!("{id}.dump.gz"));
    let mut bytes = std::fs::read(&object).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 100);
    std::fs::write(&object, bytes).unwrap();
    p.sql("delete from orders");
    let run = p.ballast(&["--yes", "restore", &id]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("refusing to restore") && run.stderr().contains("corrupt"),
        "{}",
        run.stderr()
    );
    assert_eq!(p.sql("select count(*) from orders"), "0");
    // Journaled (in the file: the database was not touched).
    let history = p.ballast(&["--json", "history"]).stdout();
    let restore: serde_json::Value = history
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["pipeline"] == "restore")
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(restore["status"], "refused", "{restore}");
    assert_eq!(restore["exit_code"], 3, "{restore}");
    assert_eq!(restore["failed_stage"], "verify-backup", "{restore}");
    assert!(!p.table_exists("public.ballast_journal"));
}

#[test]
fn restore_from_s3_into_a_new_database() {
    let p = Project::new();
    seed(&p);
    p.with_s3("");
    let id = backup_id(&p);
    let drill = format!("{}_s3drill", p.db);
    p.ballast(&["--yes", "restore", &id, "--into", &drill])
        .expect_code(0);
    assert_eq!(
        psql(&cluster().url(&drill), "select count(*) from customers"),
        "300"
    );
}

fn failing_after_commit(p: &Project, policy: &str) {
    p.migration("1_t.sql", "create table t (id int);")
        .migration(
            "2_idx.sql",
            "-- no-transaction\ncreate index concurrently if not exists t_idx on t (id);",
        )
        .migration("3_broken.sql", "alter table nope add column x int;");
    p.on_failure(true, policy);
}

#[test]
fn restore_rung_puts_the_runs_backup_back_when_changes_were_left() {
    let p = Project::new();
    p.existing("create table kept (id int); insert into kept values (1), (2)");
    failing_after_commit(&p, "auto");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("restore (recovery)"), "{out}");
    assert!(out.contains("restored from this run's backup"), "{out}");
    assert!(
        !p.table_exists("public.t"),
        "the committed migrations are gone"
    );
    assert!(p.ledger_versions().is_empty());
    assert_eq!(p.sql("select count(*) from kept"), "2");
}

#[test]
fn the_restore_rung_with_a_client_connected_refuses_at_once_or_ends_its_session() {
    use crate::harness::Blocker;
    // An application stays connected through the deploy, as they do.
    let p = Project::new();
    failing_after_commit(&p, "auto");
    let _app = Blocker::idle(&p.url, "shop web");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(4);
    let out = run.stdout();
    assert!(
        out.contains("(shop web, user postgres)") && out.contains("nothing was done"),
        "{out}"
    );
    assert!(out.contains("backup.restore_ends_sessions = true"), "{out}");
    assert!(
        p.table_exists("public.t"),
        "left for a human, as the account says"
    );

    let p = Project::new();
    p.existing("create table kept (id int); insert into kept values (1), (2)");
    failing_after_commit(&p, "auto");
    let _app = Blocker::idle(&p.url, "shop web");
    let run = p.ballast_with(
        &["--yes", "deploy"],
        &[("BALLAST_BACKUP__RESTORE_ENDS_SESSIONS", "true")],
    );
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("ended just before the rename"), "{out}");
    assert!(out.contains("restored from this run's backup"), "{out}");
    assert!(!p.table_exists("public.t"));
    assert_eq!(p.sql("select count(*) from kept"), "2");
}

#[test]
fn restore_rung_with_ask_and_no_terminal_leaves_it_to_a_human() {
    let p = Project::new();
    failing_after_commit(&p, "ask");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(4);
    assert!(
        run.stdout().contains("no terminal to ask"),
        "{}",
        run.stdout()
    );
    assert!(p.table_exists("public.t"));

    // Later, with the output gone: history points at the run, and --run gives its
    // account again, next steps included.
    let history = p.ballast(&["history"]).stdout();
    let short = history
        .split("NOT recovered, what to do: ballast history --run ")
        .nth(1)
        .map(|rest| rest[..8].to_string())
        .unwrap_or_else(|| panic!("{history}"));
    let again = p.ballast(&["history", "--run", &short]);
    again.expect_code(0);
    let out = again.stdout();
    assert!(out.contains("is NOT recovered"), "{out}");
    assert!(out.contains("upgrade"), "the stage table: {out}");
    let first = run.stdout();
    let next: Vec<&str> = first
        .lines()
        .filter(|l| l.starts_with("  next: "))
        .collect();
    assert!(!next.is_empty(), "{}", run.stdout());
    for step in next {
        assert!(out.contains(step), "{step} missing from:\n{out}");
    }
    let json = p.ballast(&["--json", "history", "--run", &short]).stdout();
    let entry: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(entry["exit_code"], 4);
    assert!(
        entry["next_steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{json}"
    );
    let unknown = p.ballast(&["history", "--run", "ffffffff"]);
    unknown.expect_code(2);
    assert!(
        unknown.stderr().contains("no run ffffffff"),
        "{}",
        unknown.stderr()
    );
}

#[test]
fn backup_pipeline_backs_up_verifies_and_prunes() {
    let p = Project::new();
    p.sql("create table t (id int)");
    p.write_config("[backup]\nkeep_last = 1\nkeep_days = 0\n");
    p.ballast(&["--yes", "backup"]).expect_code(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = p.ballast(&["--yes", "backup"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("read back: SHA-256 matches"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("kept 1, deleted 1"),
        "{}",
        run.stdout()
    );
    let listing = p.ballast(&["backups"]);
    assert_eq!(
        listing.stdout().matches(" yes ").count(),
        1,
        "{}",
        listing.stdout()
    );
}

#[test]
fn the_nightly_backup_verifies_the_deploys_backups_so_retention_can_delete_them() {
    let p = Project::new();
    p.write_config("[backup]\nkeep_last = 1\nkeep_days = 0\n");
    // Two deploys, each with its backup, never read back.
    for (n, table) in ["a", "b"].iter().enumerate() {
        p.migration(
            &format!("{}_{table}.sql", n + 1),
            &format!("create table {table} (id int);"),
        );
        p.ballast(&["--yes", "deploy"]).expect_code(0);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(p.ballast(&["backups"]).stdout().matches(" no ").count(), 2);
    // A foreign database's unverified backup in the same folder is not this job's.
    let other = Project::new();
    other.write_config(&format!(
        "[backup]\ndir = \"{}\"\n",
        p.path().join("backups").display()
    ));
    other.migration("1_c.sql", "create table c (id int);");
    other.ballast(&["--yes", "deploy"]).expect_code(0);

    let run = p.ballast(&["--yes", "backup"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("; 2 older unverified backup(s) of it verified too"),
        "{out}"
    );
    assert!(out.contains("kept 1, deleted 2"), "{out}");
    let listing = p.ballast(&["backups"]).stdout();
    let rows = |db: &str| {
        listing
            .lines()
            .filter(|l| l.starts_with(&format!("{db}-")))
            .count()
    };
    assert_eq!(rows(&p.db), 1, "only tonight's: {listing}");
    assert_eq!(
        rows(&other.db),
        1,
        "the other database's backup stays: {listing}"
    );
}

#[test]
fn a_backup_of_another_database_never_replaces_the_target() {
    let shop = Project::new();
    seed(&shop);
    let id = backup_id(&shop);
    // A second project whose backups share the first one's folder.
    let other = Project::new();
    other.sql("create table precious (id int); insert into precious values (1)");
    other.write_config(&format!(
        "[backup]\ndir = \"{}\"\n",
        shop.path().join("backups").display()
    ));
    let run = other.ballast(&["--yes", "restore", &id]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("would replace the wrong database"),
        "{}",
        run.stderr()
    );
    assert_eq!(other.sql("select count(*) from precious"), "1");
}

/// Config lines that make `pg_restore` (found beside pg_dump) sleep instead of
/// restoring; `--list` and `--version` still reach the real one, so verify passes.
fn slow_pg_restore(p: &Project) -> String {
    use std::os::unix::fs::PermissionsExt;
    let script = p.path().join("pg_restore");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$*\" in *--list*|*--version*) exec \"$REAL_PG_RESTORE\" \"$@\";; esac\nsleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.fake_pg_dump("exec pg_dump \"$@\"")
}

fn real_pg_restore() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v pg_restore"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn databases_like(pattern: &str) -> Vec<String> {
    psql(
        &cluster().url("postgres"),
        &format!("select datname from pg_database where datname like '{pattern}' order by 1"),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn interrupted_restore_leaves_the_target_and_the_next_restore_cleans_up() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    p.sql("delete from orders where id > 10");
    p.write_config(&slow_pg_restore(&p));
    let real = real_pg_restore();
    let child = p
        .command(&["--yes", "restore", &id], &[("REAL_PG_RESTORE", &real)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let copies = format!("{}__ballast_restore_%", p.db);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while databases_like(&copies).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the restore never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("was not touched"), "{stderr}");
    assert_eq!(
        p.sql("select count(*) from orders"),
        "10",
        "target untouched"
    );
    assert_eq!(
        databases_like(&copies).len(),
        1,
        "the incomplete copy is left"
    );

    // The next restore (real pg_restore) drops the leftover and finishes.
    p.write_config("");
    let run = p.ballast(&["--yes", "restore", &id]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("an incomplete restore left by an interrupted run"),
        "{}",
        run.stdout()
    );
    assert!(databases_like(&copies).is_empty());
    assert_eq!(p.sql("select count(*) from orders"), "2000");
}

#[test]
fn an_incomplete_into_database_is_restored_again_but_a_real_one_never_is() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    let drill = format!("{}_leftover", p.db);
    leftover_copy(&drill, &id);
    let admin = cluster().url("postgres");
    let run = p.ballast(&["--yes", "restore", &id, "--into", &drill]);
    run.expect_code(0);
    assert_eq!(
        psql(&cluster().url(&drill), "select count(*) from orders"),
        "2000"
    );
    assert_eq!(
        psql(&admin, &format!("select coalesce(shobj_description(oid, 'pg_database'), 'none') from pg_database where datname = '{drill}'")),
        "none",
        "a finished restore is no longer marked incomplete"
    );
    // Now it is a finished database: never dropped.
    p.ballast(&["--yes", "restore", &id, "--into", &drill])
        .expect_code(2);
}

#[test]
fn in_place_restore_waits_for_a_deploy_holding_the_lock() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    p.sql("delete from orders");
    let _deploy = crate::harness::Blocker::hold(
        &p.url,
        &format!(
            "select pg_advisory_lock({}, {})",
            ballast::db::lock::LOCK_CLASS,
            ballast::db::lock::key_for("public")
        ),
    );
    let run = p.ballast(&["--yes", "restore", &id]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("another deploy holds the lock"),
        "{}",
        run.stderr()
    );
    assert_eq!(p.sql("select count(*) from orders"), "0", "untouched");
    assert!(databases_like(&format!("{}__ballast_restore_%", p.db)).is_empty());
}

#[test]
fn in_place_restore_keeps_the_run_history() {
    let p = Project::new();
    seed(&p);
    p.ballast(&["--yes", "baseline", "none"]).expect_code(0);
    let id = backup_id(&p);
    p.migration("1_extra.sql", "create table extra (id int);");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.ballast(&["--yes", "restore", &id]).expect_code(0);
    assert!(!p.table_exists("public.extra"), "the deploy is undone");
    assert_eq!(
        p.sql("select count(*) from ballast_journal where pipeline = 'deploy' and status = 'succeeded'"),
        "1",
        "the deploy stays in the database's run history"
    );
    // The restore itself is in it too: from which revision back to which, and what is
    // left to do.
    assert_eq!(
        p.sql("select status || ' ' || (detail->>'start_version') || ' → ' || coalesce(detail->>'end_version', 'none') from ballast_journal where pipeline = 'restore'"),
        "succeeded 1_extra → none"
    );
    let history = p.ballast(&["history"]).stdout();
    let line = history
        .lines()
        .find(|l| l.contains(" restore "))
        .unwrap_or_else(|| panic!("{history}"));
    assert!(line.contains("1_extra → none"), "{history}");
    let run_id = p.sql("select run_id from ballast_journal where pipeline = 'restore'");
    let again = p.ballast(&["history", "--run", &run_id[..8]]).stdout();
    assert!(again.contains("✓ restore succeeded"), "{again}");
    assert!(again.contains(&format!("{id} into {}", p.db)), "{again}");
    assert!(
        again.contains(
            "next: check the restored database, then drop the previous one: DROP DATABASE"
        ),
        "{again}"
    );
}

#[test]
fn latest_is_the_newest_backup_of_the_target_database_not_of_the_folder() {
    let p = Project::new();
    p.sql("create table mine (id int); insert into mine values (1)");
    p.ballast(&["--yes", "backup"]).expect_code(0);
    // Another database backs up into the same folder, later.
    let other = Project::new();
    other.sql("create table theirs (id int)");
    other.write_config(&format!(
        "[backup]\ndir = \"{}\"\n",
        p.path().join("backups").display()
    ));
    other.ballast(&["--yes", "backup"]).expect_code(0);
    let drill = format!("{}_drill", p.db);
    let run = p.ballast(&["--yes", "restore", "latest", "--into", &drill]);
    run.expect_code(0);
    let url = crate::harness::cluster().url(&drill);
    assert_eq!(
        crate::harness::psql(&url, "select count(*) from mine"),
        "1",
        "{}",
        run.all()
    );
}

#[test]
fn a_restore_is_a_pipeline_run_with_the_runs_events_and_account() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    let drill = format!("{}_events", p.db);
    let run = p.ballast(&["--json", "--yes", "restore", &id, "--into", &drill]);
    run.expect_code(0);
    let events: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let started: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "stage_started")
        .filter_map(|e| e["stage"].as_str())
        .collect();
    assert_eq!(
        started,
        ["verify-backup", "confirm", "restore"],
        "{kinds:?}"
    );
    let restored = events
        .iter()
        .find(|e| e["event"] == "restored")
        .unwrap_or_else(|| panic!("{kinds:?}"));
    assert_eq!(restored["restore"]["database"], drill.as_str());
    assert!(
        restored["restore"]["row_counts"]
            .to_string()
            .contains("public.orders"),
        "{restored}"
    );
    let finished = events.last().unwrap();
    assert_eq!(finished["event"], "run_finished", "{kinds:?}");
    assert_eq!(finished["pipeline"], "restore");
    assert_eq!(finished["backup"], id.as_str());

    // A refusal is the runner's too: the stage it stopped at, the command to run
    // again, and the reason on stderr as every command's error.
    let again = p.ballast(&["--json", "--yes", "restore", &id, "--into", &drill]);
    again.expect_code(2);
    let finished: serde_json::Value =
        serde_json::from_str(again.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(finished["failed_stage"], "confirm", "{finished}");
    assert_eq!(finished["outcome"], "refused", "{finished}");
    let human = p.ballast(&["--yes", "restore", &id, "--into", &drill]);
    human.expect_code(2);
    assert!(
        human
            .stderr()
            .contains("already exists; --into needs a new name"),
        "{}",
        human.stderr()
    );
    assert!(
        human
            .stdout()
            .contains("✗ restore refused: nothing changed"),
        "{}",
        human.stdout()
    );
}

/// The databases whose name says they are a restore drill's copy of `p`'s database.
fn drill_copies(p: &Project) -> Vec<String> {
    databases_like(&format!("{}\\_\\_ballast\\_drill\\_%", p.db))
}

/// An incomplete restore's copy named `name`, marked safe to drop as ballast marks them
/// (`whose`: the backup it was a copy of).
fn leftover_copy(name: &str, whose: &str) {
    let admin = cluster().url("postgres");
    psql(&admin, &format!("create database {name}"));
    psql(
        &admin,
        &format!("comment on database {name} is 'ballast: incomplete restore of {whose}, started earlier; safe to drop'"),
    );
}

/// Waits until no session is connected to a drill's copy (a killed drill's
/// pg_restore ends once its input is gone).
fn drill_sessions_gone(p: &Project) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while psql(
        &cluster().url("postgres"),
        &format!(
            "select count(*) from pg_stat_activity where datname like '{}\\_\\_ballast\\_drill\\_%'",
            p.db
        ),
    ) != "0"
    {
        assert!(std::time::Instant::now() < deadline, "sessions linger in the drill's copy");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_restore_drill_restores_counts_records_the_time_and_drops_its_copy() {
    let p = Project::new();
    seed(&p);
    let id = backup_id(&p);
    // A copy a killed drill left: marked safe to drop, as the drill marks its own.
    let left = format!("{}__ballast_drill_20000101000000", p.db);
    leftover_copy(&left, &id);

    let run = p.ballast(&["verify-backup", "--restore"]);
    run.expect_code(0);
    let out = run.all();
    assert!(
        out.contains(&format!("dropped {left}"))
            && out.contains("restore drill: backup")
            && out.contains("2 tables, 2300 rows; the copy is dropped"),
        "{out}"
    );
    assert!(drill_copies(&p).is_empty(), "no copy is left");
    assert_eq!(counts(&p), "300/2000/3001500.00", "the target is untouched");
    // Recorded beside the manifest: the time it took and the counts.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path().join(format!("backups/{id}.verified.json"))).unwrap(),
    )
    .unwrap();
    let drill = &record["restore_drill"];
    assert_eq!(drill["rows"], 2300, "{record}");
    assert_eq!(drill["row_counts"]["public.orders"], 2000, "{record}");
    assert!(
        drill["duration_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{record}"
    );
    assert_eq!(record["contents_checked"], true);

    // One drill of a database at a time.
    let other = crate::harness::Blocker::hold(
        &p.url,
        &format!(
            "select pg_advisory_lock({}, {})",
            ballast::db::lock::LOCK_CLASS,
            ballast::db::lock::purpose_key("restore drill")
        ),
    );
    let refused = p.ballast(&["verify-backup", "--restore"]);
    refused.expect_code(3);
    assert!(
        refused.stderr().contains("another restore drill"),
        "{}",
        refused.all()
    );
    drop(other);
    // Its session sleeps on in the server until ended.
    p.sql("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'blocker' and datname = current_database()");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while p.sql("select count(*) from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())") != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the other drill's lock lingers"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // JSON, for the nightly job.
    let run = p.ballast(&["--json", "verify-backup", &id, "--restore"]);
    run.expect_code(0);
    let last: serde_json::Value =
        serde_json::from_str(run.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "restore_drill", "{}", run.stdout());
    assert_eq!(last["drill"]["tables"], 2);
}

#[test]
fn a_drill_killed_or_interrupted_mid_restore_leaves_a_copy_the_next_drill_drops() {
    let p = Project::new();
    seed(&p);
    backup_id(&p);
    let child = crate::faults::paused_at(&p, &["verify-backup", "--restore"], "restore");
    let killed = crate::faults::signal(child, "KILL");
    assert_eq!(killed.status.code(), None, "killed");
    assert!(
        !drill_copies(&p).is_empty(),
        "the killed drill's copy is there"
    );
    drill_sessions_gone(&p);

    // The killed run's pause marker would pass for the next run's.
    std::fs::remove_file(p.path().join("paused-at-restore")).unwrap();
    let child = crate::faults::paused_at(&p, &["verify-backup", "--restore"], "restore");
    let interrupted = crate::faults::signal(child, "INT");
    let said = String::from_utf8_lossy(&interrupted.stderr).to_string();
    assert_eq!(interrupted.status.code(), Some(3), "{said}");
    assert!(said.contains("dropped by the next restore drill"), "{said}");

    drill_sessions_gone(&p);
    let run = p.ballast(&["verify-backup", "--restore"]);
    run.expect_code(0);
    assert!(drill_copies(&p).is_empty(), "{}", run.all());
    assert_eq!(counts(&p), "300/2000/3001500.00");
}

#[test]
fn a_drill_by_a_role_that_may_not_create_databases_is_refused_with_the_grant() {
    let p = Project::new();
    seed(&p);
    backup_id(&p);
    let reader = format!("{}_nocreate", p.db);
    p.sql(&format!("create role {reader} login"));
    let url = p.url.replacen("postgres@", &format!("{reader}@"), 1);
    let config = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    std::fs::write(p.path().join("deploy.toml"), config.replace(&p.url, &url)).unwrap();
    let run = p.ballast(&["verify-backup", "--restore"]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("CREATEDB") && run.stderr().contains("nothing was made"),
        "{}",
        run.all()
    );
    assert!(drill_copies(&p).is_empty());
}
