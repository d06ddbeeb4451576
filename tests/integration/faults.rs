//! Fault injection: ballast killed (SIGKILL) or interrupted at known moments, and
//! PostgreSQL stopped under it. Each test asserts where the database ended, what the
//! next run says about it, and the exit code. Run alone with
//! `cargo test --test integration faults::`; the table is docs/reliability.md.
//!
//! The moments come from ballast's pause points (src/faults.rs): with
//! BALLAST_FAULT_PAUSE=<point> it waits there and writes BALLAST_FAULT_READY.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ballast::scratch::ScratchCluster;

use crate::harness::{psql, Project, FAILING_VERIFY};

/// ballast started with a pause point, once it sits there. It leads a process group of
/// its own, as a shell's job does, so a test can signal the group like a terminal's
/// Ctrl-C.
pub fn paused_at(p: &Project, args: &[&str], point: &str) -> Child {
    let ready: PathBuf = p.path().join(format!("paused-at-{point}"));
    let mut child = p
        .command(
            args,
            &[
                ("BALLAST_FAULT_PAUSE", point),
                ("BALLAST_FAULT_READY", ready.to_str().unwrap()),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "ballast ended before reaching {point}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "never reached {point}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

pub fn signal(child: Child, name: &str) -> Output {
    Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    child.wait_with_output().unwrap()
}

/// After a SIGKILL the server ends ballast's sessions (rolling back what was open)
/// once it notices the client is gone.
pub fn sessions_gone(p: &Project) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.sql(
        "select count(*) from pg_stat_activity where application_name like 'ballast%' and datname = current_database()",
    ) != "0"
    {
        assert!(Instant::now() < deadline, "ballast's sessions linger");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn two_migrations(p: &Project) {
    p.migration("1_a.sql", "create table a (id bigint primary key);")
        .migration("1_a.down.sql", "drop table a;")
        .migration("2_b.sql", "create table b (id bigint primary key);")
        .migration("2_b.down.sql", "drop table b;");
}

fn journal_statuses(p: &Project) -> String {
    p.sql("select string_agg(status, ',' order by started_at) from ballast_journal")
}

#[test]
fn sigkill_during_the_backup_changes_nothing_and_lists_no_backup() {
    let p = Project::new();
    p.existing("create table kept (id int); insert into kept select generate_series(1, 1000)");
    two_migrations(&p);
    let child = paused_at(&p, &["--yes", "deploy"], "backup");
    signal(child, "KILL");
    sessions_gone(&p);
    assert!(!p.table_exists("public.a"));
    let listing = p.ballast(&["backups"]);
    assert!(
        !listing.stdout().contains(" yes "),
        "a half-written backup is never listed: {}",
        listing.stdout()
    );
    // The next deploy runs from the start.
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    assert_eq!(p.sql("select count(*) from kept"), "1000");
}

#[test]
fn sigkill_in_the_upgrade_transaction_applies_nothing_and_the_next_run_says_so() {
    let p = Project::new();
    two_migrations(&p);
    let child = paused_at(&p, &["--yes", "deploy"], "upgrade-transaction");
    signal(child, "KILL");
    sessions_gone(&p);
    assert!(
        !p.table_exists("public.a"),
        "the open transaction rolled back"
    );
    assert!(p.ledger_versions().is_empty());
    assert_eq!(journal_statuses(&p), "running");
    let next = p.ballast(&["--yes", "deploy"]);
    next.expect_code(0);
    let out = next.stdout();
    assert!(
        out.contains(
            "was interrupted after its backup stage and never finished: it committed no migration"
        ),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    assert_eq!(journal_statuses(&p), "interrupted,succeeded");
    // Reported once.
    let again = p.ballast(&["--yes", "deploy"]);
    assert!(
        !again.stdout().contains("was interrupted"),
        "{}",
        again.stdout()
    );
}

#[test]
fn sigkill_between_statements_of_a_no_transaction_migration_is_reported_and_finished() {
    let p = Project::new();
    p.migration("1_t.sql", "create table t (a int, b int);")
        .migration("1_t.down.sql", "drop table t;")
        .migration(
            "2_idx.sql",
            "-- no-transaction\n\
             -- ballast:allow multiple-statements-without-transaction\n\
             create index concurrently if not exists t_a_idx on t (a);\n\
             create index concurrently if not exists t_b_idx on t (b);",
        )
        .migration(
            "2_idx.down.sql",
            "drop index if exists t_a_idx;\ndrop index if exists t_b_idx;",
        );
    let child = paused_at(&p, &["--yes", "deploy"], "no-transaction");
    signal(child, "KILL");
    sessions_gone(&p);
    // Half of it: the first index exists and the migration is not recorded.
    assert_eq!(p.ledger_versions(), ["1"]);
    assert!(p.table_exists("public.t_a_idx"));
    assert!(!p.table_exists("public.t_b_idx"));
    let next = p.ballast(&["--yes", "deploy"]);
    next.expect_code(0);
    assert!(
        next.stdout().contains("it committed 1 (still applied)"),
        "{}",
        next.stdout()
    );
    assert!(
        next.stdout()
            .contains("it was inside 2_idx, a -- no-transaction migration"),
        "the half-run migration is named: {}",
        next.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    assert!(p.table_exists("public.t_b_idx"));
}

#[test]
fn sigkill_during_verify_leaves_the_committed_migrations_and_the_next_run_says_so() {
    let p = Project::new();
    two_migrations(&p);
    let child = paused_at(&p, &["--yes", "deploy"], "verify");
    signal(child, "KILL");
    sessions_gone(&p);
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    let next = p.ballast(&["--yes", "deploy"]);
    next.expect_code(0);
    let out = next.stdout();
    assert!(
        out.contains("was interrupted after its upgrade stage"),
        "{out}"
    );
    assert!(out.contains("it committed 1, 2 (still applied)"), "{out}");
}

#[test]
fn sigkill_during_an_in_place_restore_leaves_the_target_untouched() {
    let p = Project::new();
    p.sql("create table kept (id int); insert into kept select generate_series(1, 100)");
    p.ballast(&["--yes", "backup"]).expect_code(0);
    let listing = p.ballast(&["--json", "backups"]);
    let first = listing.stdout().lines().next().unwrap().to_string();
    let id = serde_json::from_str::<serde_json::Value>(&first).unwrap()["manifest"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.sql("insert into kept values (101)");
    let child = paused_at(&p, &["--yes", "restore", &id], "restore");
    signal(child, "KILL");
    // The target was never touched; the half-filled copy is left, marked.
    assert_eq!(p.sql("select count(*) from kept"), "101");
    let leftovers = format!(
        "select count(*) from pg_database where datname like '{}\\_\\_ballast\\_restore\\_%'",
        p.db
    );
    assert_eq!(
        psql(&crate::harness::cluster().url("postgres"), &leftovers),
        "1"
    );
    // The next restore clears it and finishes.
    p.ballast(&["--yes", "restore", &id]).expect_code(0);
    assert_eq!(p.sql("select count(*) from kept"), "100");
    assert_eq!(
        psql(&crate::harness::cluster().url("postgres"), &leftovers),
        "0"
    );
}

#[test]
fn postgresql_stopped_during_the_upgrade_applies_nothing_and_a_restart_recovers() {
    let mut cluster = ScratchCluster::start().expect("a cluster of this test's own");
    let p = Project::on(&cluster);
    two_migrations(&p);
    let child = paused_at(&p, &["--yes", "deploy"], "upgrade-transaction");
    cluster.stop_server();
    // Let it go on, to a COMMIT on a connection that is gone.
    std::fs::remove_file(p.path().join("paused-at-upgrade-transaction")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // It cannot read the server to prove the rollback, so it does not claim it.
    assert_eq!(
        out.status.code(),
        Some(4),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("could not be read"), "{stdout}");
    cluster.start_server().expect("start it again");
    assert!(!p.table_exists("public.a"), "the open transaction was lost");
    assert!(p.ledger_versions().is_empty());
    let next = p.ballast(&["--yes", "deploy"]);
    next.expect_code(0);
    assert!(
        next.stdout().contains("was interrupted"),
        "the next run names the run that never finished: {}",
        next.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    cluster.stop();
}

#[test]
fn sigint_during_the_backup_stops_before_anything_changed() {
    let p = Project::new();
    two_migrations(&p);
    let child = paused_at(&p, &["--yes", "deploy"], "backup");
    let out = signal(child, "INT");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted before anything changed"));
    assert!(!p.table_exists("public.a"));
}

#[test]
fn sigint_during_verify_climbs_the_ladder_back_to_the_start() {
    let p = Project::new();
    let before = p.schema_dump("public");
    two_migrations(&p);
    let child = paused_at(&p, &["--yes", "deploy"], "verify");
    let out = signal(child, "INT");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("interrupted by a signal"), "{stdout}");
    assert!(stdout.contains("undone by their downgrades"), "{stdout}");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(p.schema_dump("public"), before);
}

#[test]
fn a_local_backup_that_cannot_fit_is_refused_before_anything_runs() {
    let p = Project::new();
    two_migrations(&p);
    let small = p.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        return;
    }
    p.write_config(&format!("[backup]\ndir = \"{}\"\n", small.display()));
    let run = p.ballast(&["--yes", "deploy"]);
    let _ = Command::new("umount").arg(&small).status();
    run.expect_code(3);
    assert!(run.stdout().contains("only"), "{}", run.stdout());
    assert!(run.stdout().contains("free in"), "{}", run.stdout());
    assert!(!p.table_exists("public.a"));
}

#[test]
fn sigint_at_the_start_of_each_stage_ends_where_the_run_started() {
    let p = Project::new();
    let before = p.schema_dump("public");
    two_migrations(&p);
    // Before the upgrade has changed anything: stop at once, exit 3.
    for stage in ["state-check", "preview", "confirm", "backup", "upgrade"] {
        let child = paused_at(&p, &["--yes", "deploy"], &format!("stage:{stage}"));
        let out = signal(child, "INT");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stage}: {stderr}");
        assert!(
            stderr.contains("interrupted before anything changed"),
            "{stage}: {stderr}"
        );
        assert!(p.ledger_versions().is_empty(), "{stage}");
    }
    // After it committed: the run stops there and the ladder undoes it, exit 1.
    let child = paused_at(&p, &["--yes", "deploy"], "stage:verify");
    let out = signal(child, "INT");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("undone by their downgrades"), "{stdout}");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(p.schema_dump("public"), before);
}

#[test]
fn a_disk_that_fills_during_the_backup_fails_it_before_the_upgrade() {
    let p = Project::new();
    p.existing("create table kept (payload text); insert into kept select md5(g::text) || md5((g * 7)::text) from generate_series(1, 20000) g");
    two_migrations(&p);
    let disk = p.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&disk)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        return;
    }
    p.write_config(&format!("[backup]\ndir = \"{}\"\n", disk.display()));
    // The preflight sees room; then something else fills the disk while the dump runs.
    let child = paused_at(&p, &["--yes", "deploy"], "backup");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=100"])
        .arg(format!("of={}", disk.join("filler").display()))
        .stderr(Stdio::null())
        .status();
    std::fs::remove_file(p.path().join("paused-at-backup")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let leftovers: Vec<String> = std::fs::read_dir(&disk)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler" && n != "journal.jsonl")
        .collect();
    let _ = Command::new("umount").arg(&disk).status();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("No space left on device"), "{stdout}");
    assert!(stdout.contains("nothing changed"), "{stdout}");
    assert!(!p.table_exists("public.a"), "the upgrade never started");
    assert!(
        leftovers.is_empty(),
        "no partial backup is left: {leftovers:?}"
    );
}

#[test]
fn the_s3_server_stopped_during_the_upload_fails_the_backup_before_the_upgrade() {
    let p = Project::new();
    p.existing("create table kept (id int); insert into kept select generate_series(1, 1000)");
    two_migrations(&p);
    let mut s3 = crate::harness::OwnS3::start();
    let bucket = p.with_s3_on(&s3.server, "");
    let child = paused_at(&p, &["--yes", "deploy"], "backup");
    // The multipart upload is open; the server goes away under it.
    assert_eq!(s3.server.unfinished_uploads(&bucket), 1);
    s3.stop();
    std::fs::remove_file(p.path().join("paused-at-backup")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("backup failed"), "{stdout}");
    assert!(stdout.contains("nothing changed"), "{stdout}");
    assert!(!p.table_exists("public.a"), "the upgrade never started");
    // Back up (empty: moto keeps nothing), the next deploy backs up and applies.
    s3.start_again();
    s3.server.create_bucket(&bucket);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    assert_eq!(s3.server.unfinished_uploads(&bucket), 0);
    assert_eq!(
        s3.server.keys(&bucket).len(),
        2,
        "one backup and its manifest"
    );
}

#[test]
fn a_signal_during_the_recovery_ladder_says_what_is_going_on_and_lets_it_finish() {
    let p = Project::new();
    p.existing("create table kept (id int); insert into kept values (1)");
    two_migrations(&p);
    p.write_config(FAILING_VERIFY);
    p.on_failure(false, "auto");
    // Paused inside the restore rung, with the ladder climbing (pg_restore running).
    // Ctrl-C at a terminal signals the whole foreground group: pg_restore must not
    // hear it (it runs in a group of its own), only ballast, which lets it finish.
    let child = paused_at(&p, &["--yes", "deploy"], "restore");
    Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(p.path().join("paused-at-restore")).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("still running the recovery rung restore (recovery)"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("restored from this run's backup"),
        "{stdout}"
    );
    assert!(!p.table_exists("public.a"));
    assert_eq!(p.sql("select count(*) from kept"), "1");
}

#[test]
fn a_second_deploy_during_the_first_ones_verify_waits_and_never_calls_it_abandoned() {
    let p = Project::new();
    two_migrations(&p);
    // The first run committed both migrations and sits before its verify stage.
    let first = paused_at(&p, &["--yes", "deploy"], "stage:verify");
    let second = p.ballast(&["--yes", "deploy"]);
    let out = second.all();
    assert_eq!(second.code(), 3, "the lock is busy: a refusal\n{out}");
    assert!(out.contains("is in progress: pid"), "{out}");
    assert!(out.contains("holds the deploy lock"), "{out}");
    assert!(!out.contains("was interrupted"), "{out}");
    let upgrade = out
        .lines()
        .find(|l| l.starts_with("upgrade "))
        .unwrap_or("");
    assert!(
        upgrade.contains("refused") && upgrade.contains("another deploy holds the lock"),
        "'up to date' is never said under a running deploy\n{out}"
    );
    assert!(
        journal_statuses(&p).starts_with("running"),
        "the live run is not marked interrupted: {}",
        journal_statuses(&p)
    );
    std::fs::remove_file(p.path().join("paused-at-stage:verify")).unwrap();
    let done = first.wait_with_output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(journal_statuses(&p), "succeeded,refused");
    assert_eq!(p.ledger_versions(), ["1", "2"]);
}

#[test]
fn a_change_in_a_schema_the_run_never_names_does_not_spoil_its_recovery() {
    let p = Project::new();
    two_migrations(&p);
    p.write_config(FAILING_VERIFY);
    let run = paused_at(&p, &["--yes", "deploy"], "stage:verify");
    // Meanwhile another team deploys to its own schema, and someone adds a table to
    // this run's schema.
    p.sql("create schema reporting; create table reporting.daily (day date)");
    std::fs::remove_file(p.path().join("paused-at-stage:verify")).unwrap();
    let out = run.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("undone by their downgrades"), "{text}");
    assert!(p.table_exists("reporting.daily"), "not this run's to undo");

    // A change in the run's own schema during the run is one the proof cannot tell
    // from the run's: no recovery is claimed.
    let p = Project::new();
    two_migrations(&p);
    p.write_config(FAILING_VERIFY);
    let run = paused_at(&p, &["--yes", "deploy"], "stage:verify");
    p.sql("create table public.surprise (id int)");
    std::fs::remove_file(p.path().join("paused-at-stage:verify")).unwrap();
    let out = run.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("+ relation public.surprise"), "{text}");
}

#[test]
fn after_a_killed_run_only_an_invalid_index_of_the_projects_own_is_dropped() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (v int);").migration(
        "2_idx.sql",
        "-- no-transaction\ncreate unique index concurrently if not exists a_v_key on a (v);",
    );
    let child = paused_at(&p, &["--yes", "deploy"], "upgrade-transaction");
    signal(child, "KILL");
    sessions_gone(&p);
    // What a cut-short CREATE INDEX CONCURRENTLY leaves: one named by the project's
    // migrations, and a DBA's own on another table.
    p.sql(
        "create table dup (v int); create index a_v_key on dup (v); create index dba_v_idx on dup (v); \
         update pg_index set indisvalid = false where indexrelid in ('a_v_key'::regclass, 'dba_v_idx'::regclass)",
    );
    let next = p.ballast(&["--yes", "deploy"]);
    let out = next.stdout();
    next.expect_code(0);
    assert!(
        out.contains("dropped the INVALID index public.a_v_key left by the interrupted run"),
        "{out}"
    );
    assert!(
        out.contains(
            "INVALID index public.dba_v_idx left alone: no migration of this project names it or its table"
        ),
        "{out}"
    );
    assert_eq!(
        p.sql("select string_agg(c.relname || ':' || i.indisvalid, ',' order by c.relname) from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname in ('a_v_key', 'dba_v_idx')"),
        "a_v_key:true,dba_v_idx:false",
        "the project's index was built again, valid; the DBA's is untouched"
    );
}

#[test]
fn a_deploy_waiting_during_the_restore_rungs_rename_never_deploys_to_the_database_put_aside() {
    let p = Project::new();
    p.notes_dropped_by_a_migration();
    p.on_failure(true, "auto");
    std::fs::create_dir_all(p.path().join("config")).unwrap();
    std::fs::write(p.path().join("config/failing.toml"), FAILING_VERIFY).unwrap();
    let first = paused_at(
        &p,
        &["--yes", "--allow-risky", "--env", "failing", "deploy"],
        "restore",
    );
    // A second deploy waits for the lock the first holds through its restore rung:
    // its own lock session is connected to this database (other tests share the
    // cluster), and holds no advisory lock.
    let second = p
        .command(
            &["--yes", "--allow-risky", "deploy"],
            &[("BALLAST_DATABASE__LOCK_WAIT", "2s")],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.sql(
        "select count(*) from pg_stat_activity a where a.datname = current_database() \
         and a.application_name like '%deploy lock%' and not exists (select 1 from pg_locks l where l.pid = a.pid and l.locktype = 'advisory' and l.granted)",
    ) != "1"
    {
        assert!(
            Instant::now() < deadline,
            "the second deploy never waited at the lock"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(p.path().join("paused-at-restore")).unwrap();
    let second = second.wait_with_output().unwrap();
    let first = first.wait_with_output().unwrap();
    let (a, b) = (
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&second.stdout),
    );
    assert_eq!(second.status.code(), Some(3), "it never got the lock:\n{b}");
    assert_eq!(first.status.code(), Some(1), "restored:\n{a}");
    assert!(a.contains("restored from this run's backup"), "{a}");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(p.sql("select body from notes"), "remember me");
}

/// `ballast --yes run NAME`, once its shell command has touched `started`.
fn run_until_started(p: &Project, name: &str) -> Child {
    let child = p
        .command(&["--yes", "run", name], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.path().join("started").exists() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// No process whose command line holds `pattern` is left within 5 seconds.
fn gone_within_5s(pattern: &str, failure: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap()
        .stdout
        .is_empty()
    {
        assert!(Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_during_a_shell_stage_before_any_change_ends_what_the_command_started() {
    let p = Project::new();
    p.pipeline(
        "check",
        "[[stages]]\nkind = \"state-check\"\n[[stages]]\nkind = \"shell\"\ncommand = \"touch started; sleep 118; true\"\n",
    );
    let child = run_until_started(&p, "check");
    let out = signal(child, "INT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("interrupted before anything changed"),
        "{stderr}"
    );
    // Not only `sh`: the `sleep` it started is gone too.
    gone_within_5s("sleep 118", "the command's sleep outlived ballast");
}

#[test]
fn sigint_during_a_smoke_test_after_the_upgrade_stops_it_and_climbs_the_ladder() {
    let p = Project::new();
    two_migrations(&p);
    p.pipeline(
        "slow",
        "[[stages]]\nkind = \"state-check\"\n[[stages]]\nkind = \"upgrade\"\n\
         [[stages]]\nkind = \"shell\"\nname = \"smoke test\"\ncommand = \"touch started; sleep 119\"\n",
    );
    let child = run_until_started(&p, "slow");
    let asked = Instant::now();
    let out = signal(child, "INT");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "it waited for the command"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("`touch started; sleep 119` failed (stopped: ballast was interrupted)"),
        "{stdout}"
    );
    assert!(stdout.contains("undone by their downgrades"), "{stdout}");
    assert!(p.ledger_versions().is_empty());
    // The command's process group went with it.
    gone_within_5s("sleep 119", "the command still runs");
}

#[test]
fn a_deploy_finding_the_database_closed_by_a_restore_refuses_and_changes_nothing() {
    // The moment between an in-place restore closing the target and its rename: a
    // deploy that connects for the deploy lock then is refused (exit 3), not failed.
    let p = Project::new();
    two_migrations(&p);
    let maintenance = crate::harness::cluster().url("postgres");
    // Closed before the deploy starts: refused at its first connection.
    psql(
        &maintenance,
        &format!("alter database {} with allow_connections false", p.db),
    );
    let early = p.ballast(&["--yes", "deploy"]);
    psql(
        &maintenance,
        &format!("alter database {} with allow_connections true", p.db),
    );
    early.expect_code(3);
    assert!(
        early
            .stdout()
            .contains("another run is probably restoring this database in place"),
        "{}",
        early.all()
    );
    // Closed between the deploy's state check and its backup (its lock connection).
    let run = paused_at(&p, &["--yes", "deploy"], "stage:backup");
    psql(
        &maintenance,
        &format!("alter database {} with allow_connections false", p.db),
    );
    std::fs::remove_file(p.path().join("paused-at-stage:backup")).unwrap();
    let out = run.wait_with_output().unwrap();
    psql(
        &maintenance,
        &format!("alter database {} with allow_connections true", p.db),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("another run is probably restoring this database in place"),
        "{stdout}"
    );
    assert!(p.ledger_versions().is_empty());
    assert!(!p.table_exists("public.a"));
}

#[test]
fn ctrl_c_while_an_in_place_restore_waits_to_rename_leaves_the_target_open() {
    use crate::harness::Blocker;
    let p = Project::new();
    p.sql("create table kept (id int); insert into kept values (1)");
    p.ballast(&["--yes", "backup"]).expect_code(0);
    let id = p
        .ballast(&["--json", "backups"])
        .stdout()
        .lines()
        .next()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["manifest"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    // A client connects while the copy is made (one there before would make the
    // restore refuse up front): the restore closes the target to new connections and
    // waits for it to leave before the rename.
    let mut restore = p
        .command(
            &["--yes", "restore", &id],
            &[
                ("BALLAST_DATABASE__LOCK_WAIT", "30s"),
                ("BALLAST_FAULT_PAUSE", "restore"),
                (
                    "BALLAST_FAULT_READY",
                    p.path().join("paused").to_str().unwrap(),
                ),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p.path().join("paused").exists() {
        assert!(
            Instant::now() < deadline,
            "the restore never started its copy"
        );
        assert!(
            restore.try_wait().unwrap().is_none(),
            "the restore ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _client = Blocker::hold(&p.url, "select 1");
    std::fs::remove_file(p.path().join("paused")).unwrap();
    let closed = format!(
        "select not datallowconn from pg_database where datname = '{}'",
        p.db
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while psql(&crate::harness::cluster().url("postgres"), &closed) != "t" {
        assert!(
            Instant::now() < deadline,
            "the restore never reached its rename"
        );
        assert!(
            restore.try_wait().unwrap().is_none(),
            "the restore ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = signal(restore, "INT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted before the rename"), "{stderr}");
    assert_eq!(
        psql(&crate::harness::cluster().url("postgres"), &closed),
        "f",
        "open again"
    );
    assert_eq!(p.sql("select count(*) from kept"), "1", "and untouched");
}

#[test]
fn a_killed_run_in_a_dbmate_folder_is_found_and_finished_from_dbmates_ledger() {
    let p = Project::new();
    p.migration(
        "20240101000000_t.sql",
        "-- migrate:up\ncreate table t (a int, b int);\n-- migrate:down\ndrop table t;\n",
    )
    .migration(
        "20240102000000_idx.sql",
        "-- migrate:up transaction:false\n\
         -- ballast:allow multiple-statements-without-transaction\n\
         create index concurrently if not exists t_a_idx on t (a);\n\
         create index concurrently if not exists t_b_idx on t (b);\n\
         -- migrate:down\ndrop index if exists t_a_idx;\ndrop index if exists t_b_idx;\n",
    );
    let child = paused_at(&p, &["--yes", "deploy"], "no-transaction");
    signal(child, "KILL");
    sessions_gone(&p);
    assert_eq!(
        p.sql("select string_agg(version, ',') from schema_migrations"),
        "20240101000000"
    );
    assert!(p.table_exists("public.t_a_idx"));
    let next = p.ballast(&["--yes", "deploy"]);
    next.expect_code(0);
    let out = next.stdout();
    assert!(
        out.contains("it committed 20240101000000 (still applied)"),
        "{out}"
    );
    assert!(out.contains("it was inside 20240102000000_idx"), "{out}");
    assert_eq!(
        p.sql("select string_agg(version, ',' order by version) from schema_migrations"),
        "20240101000000,20240102000000"
    );
    assert!(p.table_exists("public.t_b_idx"));
}
