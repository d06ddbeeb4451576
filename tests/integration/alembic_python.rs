//! The Python behind the Alembic engine: one process per run imports Alembic once and
//! forks a child per command (src/engine/alembic/zygote.py). Each child must end as
//! a fresh `python` would: its output whole, its exit status, and a Ctrl-C that
//! cancels the revision it is in.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{alembic_revision, alembic_version, Project, ALEMBIC_HEAD as HEAD};

#[test]
fn a_deploy_starts_python_once_and_runs_each_alembic_command_as_its_child() {
    let p = Project::new();
    p.alembic();
    let run = p.ballast_with(
        &["--yes", "deploy"],
        &[("RUST_LOG", "ballast::engine::alembic::zygote=debug")],
    );
    run.expect_code(0);
    assert_eq!(alembic_version(&p), HEAD);
    let log = run.stderr();
    assert_eq!(
        log.matches("started the project's Python").count(),
        1,
        "{log}"
    );
    // The graph, the offline SQL (twice: the data migration stops the first render),
    // the proof of where env.py connects, and the upgrade.
    let children = log.matches("python child").count();
    assert!(children >= 4, "{children} children: {log}");
}

#[test]
fn what_a_revision_leaves_unflushed_is_written_as_a_fresh_python_would_write_it() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // A file object of the revision's own, written and never flushed nor closed:
    // the interpreter's finalization flushes it; so must a child's end.
    alembic_revision(
        &versions,
        "a7000000000a",
        HEAD,
        &[
            "import io, os",
            "if not op.get_context().as_sql:",
            "    log = io.TextIOWrapper(io.FileIO(os.path.join(os.getcwd(), 'revision.log'), 'w'), encoding='utf-8')",
            "    log.write('a7 ran online\\n')",
            "    globals()['kept'] = log",
            "op.create_table(\"reviews\", sa.Column(\"id\", sa.Integer()), schema=\"marketplace\")",
        ],
        "op.drop_table(\"reviews\", schema=\"marketplace\")",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert_eq!(alembic_version(&p), "a7000000000a");
    let log = std::fs::read_to_string(p.path().join("app/revision.log")).unwrap();
    assert_eq!(log, "a7 ran online\n");
}

#[test]
fn the_offline_sql_keeps_the_blank_lines_between_statements() {
    // Statements are told apart by the blank lines offline mode puts between them:
    // without them the lint would read a revision's DDL and its version-table update
    // as one statement, and blank both as bookkeeping.
    let p = Project::new();
    let versions = p.alembic();
    alembic_revision(
        &versions,
        "a7000000000a",
        HEAD,
        &["op.create_index(\"ix_sellers_name\", \"sellers\", [\"name\"], schema=\"marketplace\")"],
        "op.drop_index(\"ix_sellers_name\", \"sellers\", schema=\"marketplace\")",
    );
    let plan = p.ballast(&["--json", "plan"]);
    plan.expect_code(0);
    let sql: String = plan
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "plan")
        .flat_map(|e| {
            e["plan"]["migrations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|m| m["version"] == "a7000000000a")
        .map(|m| m["sql"].as_str().unwrap().to_string())
        .collect();
    assert!(
        sql.contains("CREATE INDEX ix_sellers_name ON marketplace.sellers (name);\n\nUPDATE"),
        "{sql:?}"
    );
}

#[test]
fn a_ctrl_c_inside_a_revision_cancels_it_and_nothing_of_it_commits() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    alembic_revision(
        &versions,
        "a7000000000a",
        HEAD,
        &[
            "op.create_table(\"reviews\", sa.Column(\"id\", sa.Integer()), schema=\"marketplace\")",
            "open('started', 'w').close()",
            "op.execute(\"select pg_sleep(120)\")",
        ],
        "op.drop_table(\"reviews\", schema=\"marketplace\")",
    );
    let started = p.path().join("app/started");
    let mut child = p
        .command(&["--yes", "deploy"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(child.try_wait().unwrap().is_none(), "ballast ended early");
        assert!(Instant::now() < deadline, "the revision never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // into pg_sleep
    let asked = Instant::now();
    let out = crate::faults::signal(child, "INT");
    // Well short of the revision's 120 s sleep, with room for a loaded machine (the
    // recovery ladder runs Alembic again before the run ends).
    assert!(
        asked.elapsed() < Duration::from_secs(60),
        "the revision was not cancelled: {:?}",
        asked.elapsed()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(alembic_version(&p), HEAD, "{stdout}");
    assert!(!p.table_exists("marketplace.reviews"), "{stdout}");
    assert_eq!(
        p.sql("select count(*) from pg_stat_activity where query like '%pg_sleep(120)%' and pid <> pg_backend_pid()"),
        "0"
    );
}
