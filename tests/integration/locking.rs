//! Concurrency: the deploy lock, and never hanging behind another session's lock.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Blocker, Project};

#[test]
fn two_concurrent_deploys_apply_each_migration_once() {
    let p = Project::new();
    // Slow enough that the two runs overlap; `create table` without `if not exists`
    // fails if anything is applied twice.
    p.migration("1_a.sql", "create table a (id int); select pg_sleep(1);")
        .migration("2_b.sql", "create table b (id int);");
    let first = p
        .command(&["--yes", "deploy"], &[])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let second = p
        .command(&["--yes", "deploy"], &[])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    let codes = [first.status.code().unwrap(), second.status.code().unwrap()];
    let out = format!(
        "{}\n----\n{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&second.stdout)
    );
    assert!(codes.iter().all(|c| *c == 0 || *c == 3), "{codes:?}\n{out}");
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    assert_eq!(
        p.sql("select count(*) from ballast_migrations"),
        "2",
        "{out}"
    );
}

#[test]
fn migration_blocked_by_a_lock_fails_by_lock_timeout() {
    let p = Project::new();
    p.existing("create table busy (id int)");
    p.migration("1_alter.sql", "alter table busy add column x int;");
    let _blocker = Blocker::idle_in_transaction(&p.url, "lock table busy in access share mode");
    // The deploy's preflight names the blocker, idle in its transaction (waiting
    // would not end it), and refuses before anything runs.
    let refused = p.ballast(&["--yes", "deploy"]);
    refused.expect_code(3);
    assert!(
        refused
            .stdout()
            .contains("holds AccessShareLock on public.busy")
            && refused.stdout().contains("idle in transaction"),
        "{}",
        refused.stdout()
    );
    // A blocker that arrives after the checks: the upgrade gives up after lock_timeout.
    let upgrade_only = p.path().join("upgrade-only.toml");
    std::fs::write(&upgrade_only, "[[stages]]\nkind = \"upgrade\"\n").unwrap();
    let started = Instant::now();
    let run = p.ballast(&["--yes", "run", upgrade_only.to_str().unwrap()]);
    run.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(20), "must not hang");
    let out = run.stdout();
    assert!(out.contains("55P03"), "{out}");
    assert!(out.contains("lock_timeout (2s)"), "{out}");
    // The harness config allows one retry, half a second later (give or take a
    // quarter), and names who is in the way.
    assert!(out.contains("Retry 1 of at most 1 in"), "{out}");
    assert!(out.contains("(tried 2 times over"), "{out}");
    assert!(out.contains("database.lock_retries = 1)"), "{out}");
    assert!(
        out.contains("in the way: pid") && out.contains("(blocker, idle in transaction"),
        "{out}"
    );
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'busy'"),
        "1"
    );
}

#[test]
fn busy_deploy_lock_refuses_and_names_the_holder() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let key = ballast::db::lock::key_for("public");
    let _blocker = Blocker::hold(
        &p.url,
        &format!(
            "select pg_advisory_lock({}, {key})",
            ballast::db::lock::LOCK_CLASS
        ),
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    let out = run.stdout();
    assert!(
        out.contains("another deploy holds the lock") && out.contains("\"blocker\""),
        "{out}"
    );
    assert!(!p.table_exists("public.a"));
}

#[test]
fn sigterm_during_the_upgrade_cancels_the_statement_and_the_run_ends_unchanged() {
    let p = Project::new();
    p.migration(
        "1_slow.sql",
        "create table a (id int); select pg_sleep(30);",
    );
    let child = p
        .command(&["--yes", "deploy"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let sleeping = "select count(*) from pg_stat_activity where application_name like 'ballast%' and wait_event = 'PgSleep' and datname = current_database()";
    while p.sql(sleeping) != "1" {
        assert!(Instant::now() < deadline, "the upgrade never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // The statement is cancelled (not waited for), its transaction rolls back, and the
    // run proves nothing changed: exit 1.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "cancelled, not waited out"
    );
    assert!(
        stderr.contains("cancelling the running statement"),
        "{stderr}"
    );
    assert!(stdout.contains("57014"), "{stdout}");
    assert!(stdout.contains("nothing changed"), "{stdout}");
    // ballast's sessions are gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.sql("select count(*) from pg_stat_activity where application_name like 'ballast%' and datname = current_database()") != "0" {
        assert!(Instant::now() < deadline, "ballast's session lingers");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!p.table_exists("public.a"));
    assert!(p.ledger_versions().is_empty());
}

#[test]
fn a_lock_timeout_is_retried_and_succeeds_once_the_blocker_is_gone() {
    let p = Project::new();
    p.existing("create table busy (id int)");
    p.migration("1_alter.sql", "alter table busy add column x int;");
    let upgrade_only = p.path().join("upgrade-only.toml");
    std::fs::write(&upgrade_only, "[[stages]]\nkind = \"upgrade\"\n").unwrap();
    let _blocker = Blocker::hold(&p.url, "lock table busy in access share mode");
    // The first attempt gives up after lock_timeout (2 s); the blocker's session ends
    // before the retry, 2 s after that.
    let release = end_blocker_after(&p, Duration::from_millis(2800));
    let run = p.ballast(&[
        "--yes",
        "--set",
        "database.lock_retry_wait=2s",
        "run",
        upgrade_only.to_str().unwrap(),
    ]);
    release.join().unwrap();
    run.expect_code(0);
    let out = run.stdout();
    assert!(out.contains("Retry 1 of at most 1 in"), "{out}");
    assert!(
        out.contains("waited") && out.contains("for locks (1 retry), held by pid"),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), ["1"]);
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'busy'"),
        "2"
    );
}

#[test]
fn a_deploy_never_changes_tables_a_backup_only_run_is_dumping() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let backup = crate::faults::paused_at(&p, &["backup"], "backup");
    // pg_dump holds ACCESS SHARE on every table now: the deploy waits lock_wait for the
    // backup, then refuses, saying so, before changing anything.
    let deploy = p.ballast(&["--yes", "--set", "database.lock_wait=1s", "deploy"]);
    deploy.expect_code(3);
    let out = deploy.stdout();
    assert!(out.contains("a backup-only run"), "{out}");
    assert!(out.contains("deploy when the backup has finished"), "{out}");
    assert!(!p.table_exists("public.a"));
    crate::faults::signal(backup, "KILL");
    crate::faults::sessions_gone(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.a"));
}

#[test]
fn a_backup_only_run_never_starts_in_the_middle_of_a_deploy_and_backups_share() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let deploy = crate::faults::paused_at(&p, &["--yes", "deploy"], "upgrade-transaction");
    let backup = p.ballast(&["--set", "database.lock_wait=1s", "backup"]);
    backup.expect_code(3);
    let out = backup.stdout();
    assert!(out.contains("another deploy holds the lock"), "{out}");
    assert!(out.contains("back up after it"), "{out}");
    crate::faults::signal(deploy, "KILL");
    crate::faults::sessions_gone(&p);
    // Two backups at once share the lock: the second is not refused.
    let first = crate::faults::paused_at(&p, &["backup"], "backup");
    p.bare_backup();
    crate::faults::signal(first, "KILL");
}

#[test]
fn a_downgrade_stopped_by_lock_timeout_is_retried_once_the_blocker_is_gone() {
    let p = Project::new();
    p.existing("create table busy (id int)");
    p.migration("1_alter.sql", "alter table busy add column x int;")
        .migration("1_alter.down.sql", "alter table busy drop column x;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let downgrade_only = p.path().join("downgrade-only.toml");
    std::fs::write(
        &downgrade_only,
        "[[stages]]\nkind = \"downgrade\"\nto = \"base\"\n",
    )
    .unwrap();
    let _blocker = Blocker::hold(&p.url, "lock table busy in access share mode");
    // The first attempt gives up after lock_timeout (2 s; nothing queues behind it,
    // so the guard lets it wait); the blocker ends before the retry.
    let release = end_blocker_after(&p, Duration::from_millis(2300));
    let run = p.ballast(&[
        "--yes",
        "--set",
        "database.lock_retry_wait=1s",
        "run",
        downgrade_only.to_str().unwrap(),
    ]);
    release.join().unwrap();
    run.expect_code(0);
    let out = run.stdout();
    assert!(out.contains("the downgrade waited lock_timeout"), "{out}");
    assert!(out.contains("Retry 1 of at most 1 in"), "{out}");
    assert!(p.ledger_versions().is_empty());
}

#[test]
fn a_reader_idle_in_its_transaction_is_no_blocker_of_a_concurrent_index_build() {
    // CREATE INDEX CONCURRENTLY waits for the table's writers, never for its readers:
    // a reader left idle in its transaction is named, and the build goes ahead.
    let p = Project::new();
    p.existing("create table busy (id int, v int)");
    p.migration(
        "1_index.sql",
        "-- no-transaction\ncreate index concurrently busy_v on busy (v);\n",
    );
    let reader = Blocker::idle_in_transaction(&p.url, "select count(*) from busy");
    let check = p.ballast(&["check"]);
    assert!(
        check
            .stdout()
            .contains("holds AccessShareLock on public.busy"),
        "{}",
        check.stdout()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select indisvalid from pg_index where indexrelid = 'busy_v'::regclass"),
        "t"
    );
    drop(reader);
    // A writer left idle in its transaction would keep the build waiting: refused.
    p.migration(
        "2_index.sql",
        "-- no-transaction\ncreate index concurrently busy_id on busy (id);\n",
    );
    let _writer = Blocker::idle_in_transaction(&p.url, "update busy set v = 1");
    let refused = p.ballast(&["--yes", "deploy"]);
    refused.expect_code(3);
    assert!(
        refused
            .stdout()
            .contains("holds RowExclusiveLock on public.busy")
            && refused.stdout().contains("idle in transaction"),
        "{}",
        refused.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1"]);
}

/// Ends the `blocker` session's backend `after` from now, from another thread.
fn end_blocker_after(p: &Project, after: Duration) -> std::thread::JoinHandle<()> {
    let url = p.url.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        crate::harness::psql(
            &url,
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'blocker' and datname = current_database()",
        );
    })
}
