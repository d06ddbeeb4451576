//! An `alembic` run killed (SIGKILL) inside its upgrade, after one revision committed
//! in its own transaction and while the next one runs. Alembic keeps no per-run record,
//! so the next run's state check compares the version table with the revision the run
//! started at, says so, marks the run interrupted, and finishes the upgrade.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    alembic_per_migration, alembic_revision, alembic_version, Project, ALEMBIC_HEAD,
};

/// The fixture project's head: where the killed run starts.
const HEAD: &str = ALEMBIC_HEAD;
/// Adds `marketplace.sellers.rating`; commits in its own transaction.
const A: &str = "a7000000000a";
/// Creates `marketplace.reviews`; the killed run's version then sleeps, so the run
/// hangs inside it with the table created but not committed.
const B: &str = "b8000000000b";

/// Sessions of the test's database sitting in `pg_sleep` (B, while it hangs).
const SLEEPING: &str = "select count(*) from pg_stat_activity where datname = current_database() and wait_event = 'PgSleep'";

fn revision_b(versions: &Path, hang: bool) {
    let create =
        "op.create_table(\"reviews\", sa.Column(\"id\", sa.Integer()), schema=\"marketplace\")";
    let upgrade: &[&str] = if hang {
        &[create, "op.execute(\"select pg_sleep(60)\")"]
    } else {
        &[create]
    };
    alembic_revision(
        versions,
        B,
        A,
        upgrade,
        "op.drop_table(\"reviews\", schema=\"marketplace\")",
    );
}

/// Waits until the run sits inside B: A in the version table, B in `pg_sleep`.
fn wait_inside_b(p: &Project, mut ballast: Child) -> Child {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if alembic_version(p) == A && p.sql(SLEEPING) == "1" {
            return ballast;
        }
        let ended = ballast.try_wait().unwrap().is_some();
        if ended || Instant::now() > deadline {
            let _ = ballast.kill();
            let out = ballast.wait_with_output().unwrap();
            panic!(
                "the run never hung inside {B} with {A} committed (ended on its own: {ended}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pid (comm) state ppid …` from /proc; comm may hold spaces and parentheses.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The processes ballast started that still run (its alembic child).
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f.get(1) == Some(&parent.to_string())))
        .collect()
}

/// Running, not a zombie nobody reaped yet.
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().map(String::as_str) != Some("Z"))
}

/// ballast's children die with it (PR_SET_PDEATHSIG, src/children.rs): Alembic's
/// session ends, and the server rolls B back.
fn children_died_with_ballast(p: &Project, children: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for &pid in children {
        while alive(pid) {
            assert!(Instant::now() < deadline, "pid {pid} outlived ballast");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The server notices the dead client within client_connection_check_interval (1s).
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.sql(SLEEPING) != "0" {
        assert!(Instant::now() < deadline, "B's session never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_run_killed_inside_a_revision_is_reported_against_the_version_table_and_finished() {
    let p = Project::new();
    let versions = p.alembic();
    alembic_per_migration(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(alembic_version(&p), HEAD);
    alembic_revision(
        &versions,
        A,
        HEAD,
        &["op.add_column(\"sellers\", sa.Column(\"rating\", sa.Integer()), schema=\"marketplace\")"],
        "op.drop_column(\"sellers\", \"rating\", schema=\"marketplace\")",
    );
    revision_b(&versions, true);

    let ballast = p
        .command(&["--yes", "deploy"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ballast = wait_inside_b(&p, ballast);
    let children = children_of(ballast.id());
    assert!(!children.is_empty(), "alembic runs as ballast's child");
    ballast.kill().unwrap();
    ballast.wait().unwrap();
    children_died_with_ballast(&p, &children);

    // A committed on its own; B's open transaction was rolled back with its session.
    assert_eq!(alembic_version(&p), A);
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_schema = 'marketplace' and table_name = 'sellers' and column_name = 'rating'"),
        "1"
    );
    assert!(!p.table_exists("marketplace.reviews"));
    let killed = p.sql("select string_agg(run_id::text, ',') from marketplace.ballast_journal where status = 'running'");
    assert_eq!(killed.len(), 36, "one run left running: {killed:?}");

    revision_b(&versions, false);
    let next = p.ballast(&["--yes", "deploy"]);
    next.expect_code(0);
    let out = next.stdout();
    assert!(
        out.contains(&format!("run {killed} (deploy, started")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "was interrupted after its backup stage and never finished: it started at revision {HEAD}, and the version table is now at {A}; its deploy lock is free, so it is not running"
        )),
        "{out}"
    );
    assert_eq!(
        p.sql(&format!(
            "select status from marketplace.ballast_journal where run_id = '{killed}'"
        )),
        "interrupted"
    );
    assert_eq!(
        p.sql(
            "select string_agg(status, ',' order by started_at) from marketplace.ballast_journal"
        ),
        "succeeded,interrupted,succeeded"
    );
    assert_eq!(alembic_version(&p), B);
    assert!(p.table_exists("marketplace.reviews"));
}
