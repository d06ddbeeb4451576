//! Deploys next to an application that reads and writes all the time: real pgbench
//! clients on the throwaway cluster, each transaction a few milliseconds. No false
//! refusal under steady load, and ballast's lock waits cancelled as soon as the
//! application queues behind them (src/db/lock_queue.rs). How long the application's
//! queries took is measured by scripts/bench-traffic, not here: with the other tests
//! running at once, a query's time says more about them than about ballast.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Blocker, Project};

/// The `hot` table an application uses, 1000 rows.
fn hot_table(p: &Project) {
    p.existing(
        "create table hot (id int primary key, v int not null default 0); \
         insert into hot (id) select g from generate_series(1, 1000) g",
    );
}

/// pgbench clients running `script` for `seconds`, each transaction's latency logged
/// under `logs/`.
struct Traffic {
    child: Child,
    logs: PathBuf,
}

impl Traffic {
    fn start(p: &Project, name: &str, clients: u32, seconds: u32, script: &str) -> Traffic {
        let dir = p.path().join(format!("traffic-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let script_file = dir.join("script.sql");
        std::fs::write(&script_file, script).unwrap();
        let bindir = String::from_utf8(
            Command::new("pg_config")
                .arg("--bindir")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let child = Command::new(Path::new(bindir.trim()).join("pgbench"))
            .args(["-n", "-c", &clients.to_string(), "-j", "2"])
            .args(["-T", &seconds.to_string(), "-l", "--log-prefix"])
            .arg(dir.join("latency"))
            .arg("-f")
            .arg(&script_file)
            .arg(&p.url)
            .env("PGAPPNAME", "application")
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Running once every client is connected and working.
        let deadline = Instant::now() + Duration::from_secs(15);
        while p.sql("select count(*) from pg_stat_activity where application_name = 'application' and datname = current_database()")
            != clients.to_string()
        {
            assert!(Instant::now() < deadline, "pgbench never connected");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        Traffic { child, logs: dir }
    }

    /// Waits for the clients to end: they ran throughout, and many transactions did.
    fn finish(self) {
        let out = self.child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut count = 0;
        for entry in std::fs::read_dir(&self.logs).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("latency")
            {
                count += std::fs::read_to_string(path).unwrap().lines().count();
            }
        }
        assert!(count > 100, "too few transactions logged: {count}");
    }
}

/// Runs `ballast ARGS` while a report session holds the locks of `holding`. The report
/// ends once a session named like `ours` has been seen waiting for a lock, and `then`
/// after that: the run met the report whatever the machine's speed before it.
fn run_past_a_report(
    p: &Project,
    holding: &str,
    ours: &str,
    then: Duration,
    args: &[&str],
) -> crate::harness::Run {
    let report = Blocker::hold(&p.url, holding);
    let url = p.url.clone();
    let waiting = format!(
        "select count(*) from pg_stat_activity where application_name like '{ours}' and wait_event_type = 'Lock' and datname = current_database()"
    );
    let ends = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(90);
        while crate::harness::psql(&url, &waiting) == "0" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(then);
        crate::harness::psql(
            &url,
            "select pg_cancel_backend(pid) from pg_stat_activity where application_name = 'blocker' and datname = current_database()",
        );
        drop(report);
    });
    let run = p.ballast(args);
    ends.join().unwrap();
    run
}

const READ_WRITE: &str = "\\set id random(1, 1000)\nbegin;\nselect v from hot where id = :id;\nupdate hot set v = v + 1 where id = :id;\nend;\n";
const SELLERS_READ: &str =
    "\\set id random(1, 1000)\nselect name from marketplace.sellers where id = :id;\n";
const READ_ONLY: &str = "\\set id random(1, 1000)\nselect v from hot where id = :id;\n";

#[test]
fn deploys_under_steady_read_write_load_are_never_refused() {
    let p = Project::new();
    hot_table(&p);
    let traffic = Traffic::start(&p, "rw", 8, 12, READ_WRITE);
    for n in 1..=4 {
        p.migration(
            &format!("{n}_c{n}.sql"),
            &format!("alter table hot add column c{n} int;"),
        );
        p.migration(
            &format!("{n}_c{n}.down.sql"),
            &format!("alter table hot drop column c{n};"),
        );
        let run = p.ballast(&["--yes", "deploy"]);
        run.expect_code(0);
    }
    assert_eq!(p.ledger_versions(), ["1", "2", "3", "4"]);
    traffic.finish();
}

#[test]
fn a_long_report_is_waited_for_without_the_application_queueing_behind_the_deploy() {
    let p = Project::new();
    hot_table(&p);
    p.migration("1_col.sql", "alter table hot add column flag boolean;")
        .migration("1_col.down.sql", "alter table hot drop column flag;");
    let traffic = Traffic::start(&p, "ro", 4, 20, READ_ONLY);
    // A report holds ACCESS SHARE on hot until the deploy has waited for it 3 s.
    // The harness allows one retry; the defaults' ten fit the report.
    let run = run_past_a_report(
        &p,
        "select count(*) from hot",
        "ballast%",
        Duration::from_secs(3),
        &["--yes", "--set", "database.lock_retries=10", "deploy"],
    );
    run.expect_code(0);
    let out = run.stdout();
    // The preflight waits for the report rather than refusing; the guard cancels the
    // queued ALTER as soon as reads queue behind it, until the report is gone.
    assert!(out.contains("the upgrade waits for it"), "{out}");
    assert!(out.contains("lock-queue guard cancelled it"), "{out}");
    assert!(out.contains("for locks ("), "{out}");
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'hot' and column_name = 'flag'"),
        "1"
    );
    traffic.finish();
}

#[test]
fn a_blocker_that_never_leaves_ends_the_run_within_its_budget_with_nothing_changed() {
    let p = Project::new();
    hot_table(&p);
    p.migration("1_col.sql", "alter table hot add column flag boolean;")
        .migration("1_col.down.sql", "alter table hot drop column flag;");
    let traffic = Traffic::start(&p, "ro", 2, 8, READ_ONLY);
    let _report = Blocker::hold(&p.url, "select count(*) from hot");
    let started = Instant::now();
    let run = p.ballast(&[
        "--yes",
        "--set",
        "database.lock_budget=3s",
        "--set",
        "database.lock_retries=10",
        "deploy",
    ]);
    run.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(20));
    let out = run.stdout();
    assert!(out.contains("database.lock_budget = 3s"), "{out}");
    assert!(
        out.contains("in the way: pid") && out.contains("(blocker, active"),
        "{out}"
    );
    assert!(out.contains("nothing changed"), "{out}");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'hot'"),
        "2"
    );
    traffic.finish();
}

#[test]
fn an_alembic_revision_is_guarded_the_same_way() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("insert into marketplace.sellers (name) select 's' || g from generate_series(1, 1000) g");
    crate::harness::alembic_revision(
        &versions,
        "a7000000000a",
        crate::harness::ALEMBIC_HEAD,
        &["op.add_column(\"sellers\", sa.Column(\"rating\", sa.Integer()), schema=\"marketplace\")"],
        "op.drop_column(\"sellers\", \"rating\", schema=\"marketplace\")",
    );
    let traffic = Traffic::start(&p, "alembic", 4, 20, SELLERS_READ);
    let run = run_past_a_report(
        &p,
        "select count(*) from marketplace.sellers",
        "ballast (alembic)",
        Duration::from_secs(2),
        &["--yes", "--set", "database.lock_retries=10", "deploy"],
    );
    run.expect_code(0);
    let out = run.stdout();
    assert!(out.contains("lock-queue guard cancelled it"), "{out}");
    assert_eq!(crate::harness::alembic_version(&p), "a7000000000a");
    traffic.finish();
}

/// A pipeline with the upgrade alone (no backup in the way of the timing).
fn upgrade_only(p: &Project) -> String {
    let file = p.path().join("upgrade-only.toml");
    std::fs::write(&file, "[[stages]]\nkind = \"upgrade\"\n").unwrap();
    file.to_str().unwrap().to_string()
}

#[test]
fn a_migration_run_alone_goes_on_from_the_statement_the_guard_cancelled() {
    // Each statement of a no-transaction migration commits on its own. The guard
    // cancels the second one (queued behind the report, the application behind it);
    // it rolled back whole, so the retry starts there: the first never runs twice.
    let p = Project::new();
    hot_table(&p);
    p.existing("create table runs (n int)");
    p.migration(
        "1_two.sql",
        "-- no-transaction\ninsert into runs values (1);\nalter table hot add column flag boolean;\n",
    )
    .migration(
        "1_two.down.sql",
        "alter table hot drop column flag;\ndelete from runs;\n",
    );
    let traffic = Traffic::start(&p, "ro", 4, 20, READ_ONLY);
    let run = run_past_a_report(
        &p,
        "select count(*) from hot",
        "ballast%",
        Duration::from_secs(2),
        &[
            "--yes",
            "--set",
            "database.lock_retries=10",
            "run",
            &upgrade_only(&p),
        ],
    );
    run.expect_code(0);
    let out = run.stdout();
    assert!(out.contains("lock-queue guard cancelled it"), "{out}");
    assert!(out.contains("goes on from statement 2"), "{out}");
    assert_eq!(p.sql("select count(*) from runs"), "1");
    assert_eq!(p.ledger_versions(), ["1"]);
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'hot' and column_name = 'flag'"),
        "1"
    );
    traffic.finish();
}

#[test]
fn a_concurrent_index_build_is_watched_but_never_cancelled_half_done() {
    // CREATE INDEX CONCURRENTLY commits in parts: cancelled while it waits out old
    // transactions, it leaves an INVALID index. Sessions that want SHARE on `hot`
    // queue behind its wait, yet the guard leaves it to lock_timeout (2 s here),
    // which outlasts this blocker.
    let p = Project::new();
    hot_table(&p);
    p.migration(
        "1_index.sql",
        "-- no-transaction\ncreate index concurrently hot_v on hot (v);\n",
    )
    .migration(
        "1_index.down.sql",
        "-- no-transaction\ndrop index concurrently hot_v;\n",
    );
    let traffic = Traffic::start(
        &p,
        "share",
        2,
        8,
        "\\set id random(1, 1000)\nbegin;\nlock table hot in share mode;\nselect v from hot where id = :id;\nend;\n",
    );
    let run = run_past_a_report(
        &p,
        "lock table hot in share mode",
        "ballast%",
        Duration::from_millis(700),
        &["--yes", "run", &upgrade_only(&p)],
    );
    run.expect_code(0);
    assert!(!run.stdout().contains("cancelled it"), "{}", run.stdout());
    assert_eq!(p.ledger_versions(), ["1"]);
    assert_eq!(
        p.sql("select indisvalid from pg_index where indexrelid = 'hot_v'::regclass"),
        "t"
    );
    traffic.finish();
}

#[test]
fn alembic_with_a_transaction_per_revision_and_its_own_application_name_goes_on() {
    // env.py names its connections itself and commits each revision on its own.
    // The guard still finds Alembic's session (ballast renames it), and after the
    // cancel the first revision stays applied: the retry applies the rest.
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    crate::harness::alembic_per_migration(&p);
    let env = p.path().join("app/alembic/env.py");
    let text = std::fs::read_to_string(&env).unwrap();
    let named = text.replace(
        "create_engine(database_url(), poolclass=pool.NullPool)",
        "create_engine(database_url(), poolclass=pool.NullPool, connect_args={\"application_name\": \"marketplace-migrations\"})",
    );
    assert_ne!(
        named, text,
        "the fixture's env.py creates its engine differently"
    );
    std::fs::write(&env, named).unwrap();
    p.sql("insert into marketplace.sellers (name) select 's' || g from generate_series(1, 1000) g");
    crate::harness::alembic_revision(
        &versions,
        "a7000000000a",
        crate::harness::ALEMBIC_HEAD,
        &["op.create_table(\"audit\", sa.Column(\"id\", sa.Integer()), schema=\"marketplace\")"],
        "op.drop_table(\"audit\", schema=\"marketplace\")",
    );
    crate::harness::alembic_revision(
        &versions,
        "a7000000000b",
        "a7000000000a",
        &["op.add_column(\"sellers\", sa.Column(\"rating\", sa.Integer()), schema=\"marketplace\")"],
        "op.drop_column(\"sellers\", \"rating\", schema=\"marketplace\")",
    );
    let traffic = Traffic::start(&p, "alembic", 4, 20, SELLERS_READ);
    let run = run_past_a_report(
        &p,
        "select count(*) from marketplace.sellers",
        "ballast (alembic)",
        Duration::from_secs(2),
        &["--yes", "--set", "database.lock_retries=10", "deploy"],
    );
    run.expect_code(0);
    let out = run.stdout();
    assert!(out.contains("lock-queue guard cancelled it"), "{out}");
    assert!(
        out.contains("a7000000000a applied before it stays applied"),
        "{out}"
    );
    assert_eq!(crate::harness::alembic_version(&p), "a7000000000b");
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'sellers' and column_name = 'rating'"),
        "1"
    );
    traffic.finish();
}

#[test]
fn a_downgrade_is_guarded_the_same_way() {
    let p = Project::new();
    hot_table(&p);
    p.migration("1_col.sql", "alter table hot add column flag boolean;")
        .migration("1_col.down.sql", "alter table hot drop column flag;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let traffic = Traffic::start(&p, "ro", 4, 20, READ_ONLY);
    let run = run_past_a_report(
        &p,
        "select count(*) from hot",
        "ballast%",
        Duration::from_secs(2),
        &[
            "--yes",
            "--set",
            "database.lock_retries=10",
            "run",
            "rollback",
        ],
    );
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("the downgrade waited for a lock while application sessions queued behind it"),
        "{out}"
    );
    assert!(p.ledger_versions().is_empty());
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'hot' and column_name = 'flag'"),
        "0"
    );
    traffic.finish();
}

#[test]
fn a_down_run_alone_goes_on_from_the_statement_the_guard_cancelled() {
    let p = Project::new();
    hot_table(&p);
    p.existing("create table runs (n int)");
    p.migration("1_col.sql", "alter table hot add column flag boolean;")
        .migration(
            "1_col.down.sql",
            "-- no-transaction\ninsert into runs values (1);\nalter table hot drop column flag;\n",
        );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let traffic = Traffic::start(&p, "ro", 4, 20, READ_ONLY);
    let run = run_past_a_report(
        &p,
        "select count(*) from hot",
        "ballast%",
        Duration::from_secs(2),
        &[
            "--yes",
            "--set",
            "database.lock_retries=10",
            "run",
            "rollback",
        ],
    );
    run.expect_code(0);
    let out = run.stdout();
    assert!(out.contains("goes on from statement 2"), "{out}");
    assert_eq!(p.sql("select count(*) from runs"), "1");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'hot' and column_name = 'flag'"),
        "0"
    );
    traffic.finish();
}
