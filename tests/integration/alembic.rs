//! The `alembic` engine against the fixture project (schema `marketplace`, version
//! table `marketplace.alembic_version`, branches and a merge, a concurrent index, a
//! data migration) and real Alembic in its own venv.

use std::path::Path;

use crate::harness::{
    alembic_config, alembic_per_migration as per_migration, alembic_revision, alembic_version,
    Blocker, Project, ALEMBIC_HEAD,
};

const HEAD: &str = ALEMBIC_HEAD;

fn version(p: &Project) -> String {
    alembic_version(p)
}

fn revision(dir: &Path, id: &str, down: &str, upgrade: &str, downgrade: &str) {
    alembic_revision(dir, id, down, &[upgrade], downgrade);
}

/// a7…: creates marketplace.reviews, on top of the head.
fn reviews_revision(versions: &Path) {
    revision(
        versions,
        "a7000000000a",
        HEAD,
        "op.create_table(\"reviews\", sa.Column(\"id\", sa.Integer()), schema=\"marketplace\")",
        "op.drop_table(\"reviews\", schema=\"marketplace\")",
    );
}

/// a7 (reviews), then b8, which fails on a table that does not exist.
fn reviews_then_a_failing_revision(versions: &Path) {
    reviews_revision(versions);
    revision(
        versions,
        "b8000000000b",
        "a7000000000a",
        "op.execute(\"alter table marketplace.nope add column x int\")",
        "pass",
    );
}

#[test]
fn deploy_runs_every_revision_through_the_branches_and_the_merge() {
    let p = Project::new();
    p.alembic();
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    let out = run.stdout();
    // The preview: offline SQL per revision, and the one it cannot render named.
    assert!(out.contains("CREATE TABLE marketplace.sellers"), "{out}");
    assert!(
        out.contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_products_title"),
        "{out}"
    );
    assert!(
        out.contains("offline mode cannot render this revision"),
        "the data migration's SQL is unavailable, and said so: {out}"
    );
    assert!(out.contains("7 migrations applied"), "{out}");
    assert_eq!(version(&p), HEAD);
    assert_eq!(
        p.sql("select count(*) from pg_index where indexrelid = 'marketplace.ix_products_title'::regclass and indisvalid"),
        "1"
    );
    assert!(p.table_exists("marketplace.tags"));
    let status = p.ballast(&["status"]);
    status.expect_code(0);
    assert!(status.stdout().contains(HEAD), "{}", status.stdout());
    // A second deploy has nothing to do, and does nothing (not even a backup).
    let again = p.ballast(&["--yes", "deploy"]);
    again.expect_code(0);
    assert!(
        again.stdout().contains("backup skipped"),
        "{}",
        again.stdout()
    );
    assert_eq!(version(&p), HEAD);
    // History knows the run, in the table beside the version table.
    assert_eq!(
        p.sql("select count(*) from marketplace.ballast_journal where status = 'succeeded'"),
        "2"
    );
}

#[test]
fn status_and_plan_show_pending_revisions_and_write_nothing() {
    let p = Project::new();
    p.alembic();
    let status = p.ballast(&["status"]);
    status.expect_code(1);
    assert!(
        status.stdout().contains("0 applied, 7 pending"),
        "{}",
        status.stdout()
    );
    let plan = p.ballast(&["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout().contains("a1f0c2d3e4b5 create sellers"),
        "{}",
        plan.stdout()
    );
    assert!(
        plan.stdout().contains("(in the deploy transaction"),
        "{}",
        plan.stdout()
    );
    assert_eq!(
        p.sql("select count(*) from pg_namespace where nspname = 'marketplace'"),
        "0",
        "read-only commands create nothing"
    );
}

#[test]
fn a_failure_in_one_transaction_leaves_the_revision_the_run_found() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    reviews_then_a_failing_revision(&versions);
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("nothing committed"), "{out}");
    assert!(
        out.contains("marketplace.nope"),
        "alembic's own error is shown: {out}"
    );
    assert_eq!(version(&p), HEAD);
    assert!(
        !p.table_exists("marketplace.reviews"),
        "rolled back with the rest"
    );
}

#[test]
fn a_failure_after_per_revision_commits_says_exactly_what_committed() {
    let p = Project::new();
    let versions = p.alembic();
    per_migration(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    reviews_then_a_failing_revision(&versions);
    let plan = p.ballast(&["plan"]);
    assert!(
        plan.stdout().contains("(its own transaction)"),
        "{}",
        plan.stdout()
    );
    let before = p.schema_dump("marketplace");
    let run = p.ballast(&["--yes", "deploy"]);
    let out = run.stdout();
    assert!(
        out.contains("1 migration committed before the failure (a7000000000a)"),
        "{out}"
    );
    assert!(!out.contains("nothing committed"), "{out}");
    // The ladder's downgrade rung steps back over what committed, and proves it.
    run.expect_code(1);
    assert!(out.contains("downgrade (recovery)"), "{out}");
    assert!(out.contains("undone by their downgrades"), "{out}");
    assert_eq!(version(&p), HEAD);
    assert!(!p.table_exists("marketplace.reviews"));
    assert_eq!(p.schema_dump("marketplace"), before);
}

#[test]
fn alembic_gets_the_lock_timeout_instead_of_queueing_behind_a_lock() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    revision(
        &versions,
        "a7000000000a",
        HEAD,
        "op.add_column(\"sellers\", sa.Column(\"rating\", sa.Integer()), schema=\"marketplace\")",
        "op.drop_column(\"sellers\", \"rating\", schema=\"marketplace\")",
    );
    let _reader = Blocker::hold(&p.url, "select * from marketplace.sellers");
    let started = std::time::Instant::now();
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "it gave up on the lock (lock_timeout 2s) instead of waiting for the reader"
    );
    assert!(run.stdout().contains("lock timeout"), "{}", run.stdout());
    // Retried once (the harness's database.lock_retries), after nothing committed,
    // naming the reader in the way.
    assert!(
        run.stdout().contains("nothing committed; in the way: pid")
            && run.stdout().contains("Retry 1 of at most 1 in"),
        "{}",
        run.stdout()
    );
    assert_eq!(version(&p), HEAD);
}

#[test]
fn an_unknown_revision_in_the_database_is_named() {
    let p = Project::new();
    p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("update marketplace.alembic_version set version_num = 'deadbeef0000'");
    let status = p.ballast(&["status"]);
    status.expect_code(1);
    assert!(
        status
            .stdout()
            .contains("Can't locate revision identified by 'deadbeef0000'"),
        "{}",
        status.stdout()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(3);
}

#[test]
fn several_heads_are_refused_with_the_merge_command() {
    let p = Project::new();
    let versions = p.alembic();
    revision(&versions, "a7000000000a", HEAD, "pass", "pass");
    revision(&versions, "b8000000000b", HEAD, "pass", "pass");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("alembic merge -m \"merge heads\""),
        "{}",
        run.stdout()
    );
    assert_eq!(
        p.sql("select count(*) from pg_namespace where nspname = 'marketplace'"),
        "0"
    );
}

#[test]
fn tables_without_a_version_table_suggest_stamp_and_change_nothing() {
    let p = Project::new();
    p.alembic();
    p.sql("create schema marketplace; create table marketplace.sellers (id bigint primary key, name text)");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(run.stdout().contains("ballast stamp"), "{}", run.stdout());
    assert!(!p.table_exists("marketplace.alembic_version"));
}

#[test]
fn missing_privileges_name_the_grant() {
    let p = Project::new();
    p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let role = format!("{}_deployer", p.db);
    p.sql(&format!("create role {role} login; grant usage on schema marketplace to {role}; grant select on all tables in schema marketplace to {role}"));
    let versions = p.path().join("app/alembic/versions");
    revision(&versions, "a7000000000a", HEAD, "pass", "pass");
    let url = p.url.replacen("postgres@", &format!("{role}@"), 1);
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    std::fs::write(p.path().join("deploy.toml"), text.replace(&p.url, &url)).unwrap();
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains(&format!(
            "GRANT USAGE, CREATE ON SCHEMA \"marketplace\" TO {role}"
        )),
        "{}",
        run.stdout()
    );
    assert_eq!(version(&p), HEAD);
    // Without USAGE on the version table's schema, reading it names the grant too.
    p.sql(&format!("revoke usage on schema marketplace from {role}"));
    let status = p.ballast(&["status"]);
    assert_ne!(status.code(), 0);
    assert!(
        status
            .all()
            .contains("hint: GRANT USAGE ON SCHEMA \"marketplace\""),
        "{}",
        status.all()
    );
}

#[test]
fn downgrade_steps_back_and_refuses_a_revision_that_cannot() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.downgrade_pipeline("back", Some("b2e1d4c5f6a7"), false);
    // f6's downgrade raises: refused before anything runs.
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("f6a0b1c2d3e4") && run.stdout().contains("raises"),
        "{}",
        run.stdout()
    );
    assert_eq!(version(&p), HEAD);

    // Without it, the downgrade goes back through the merge and both branches.
    std::fs::remove_file(versions.join("f6a0b1c2d3e4_backfill_slugs.py")).unwrap();
    p.sql("update marketplace.alembic_version set version_num = 'e5d1e2f3a4b5'; alter table marketplace.sellers drop column slug");
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(0);
    assert_eq!(version(&p), "b2e1d4c5f6a7");
    assert!(!p.table_exists("marketplace.tags"));
    assert!(p.table_exists("marketplace.products"));
}

#[test]
fn downgrade_minus_one_steps_back_one_revision_and_verify_checks_it() {
    let p = Project::new();
    let versions = p.alembic();
    crate::harness::alembic_revision(
        &versions,
        "a7000000000a",
        HEAD,
        &["op.create_table(\"audit\", sa.Column(\"id\", sa.Integer, primary_key=True), schema=\"marketplace\")"],
        "op.drop_table(\"audit\", schema=\"marketplace\")",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(version(&p), "a7000000000a");
    p.downgrade_pipeline("back", Some("-1"), true);
    // Only the newest revision is undone: the head's raising downgrade, further
    // back, is no reason to refuse.
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains(&format!("downgraded to {HEAD}")),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("✓ verify"),
        "verify checks the revision -1 named: {}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("the version table is at the target")
            && !run.stdout().contains("at the head"),
        "a rollback's verify does not speak of the head: {}",
        run.stdout()
    );
    assert_eq!(version(&p), HEAD);
    assert!(!p.table_exists("marketplace.audit"));
    // One more step back would run f6's downgrade, which raises: refused up front.
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("f6a0b1c2d3e4") && run.stdout().contains("raises"),
        "{}",
        run.stdout()
    );
    assert_eq!(version(&p), HEAD);
}

#[test]
fn a_wrong_python_is_a_clear_configuration_error() {
    let p = Project::new();
    p.alembic();
    p.write_config(&alembic_config("").replace(
        &crate::harness::alembic_python().display().to_string(),
        "/nonexistent/bin/python",
    ));
    let run = p.ballast(&["status"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("migrations.python"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_revision_whose_file_is_gone_names_its_nearest_known_ancestor() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    revision(&versions, "a7000000000a", HEAD, "pass", "pass");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    std::fs::remove_file(versions.join("a7000000000a_added.py")).unwrap();
    let status = p.ballast(&["status"]);
    status.expect_code(1);
    assert!(
        status
            .stdout()
            .contains("nearest known ancestor is f6a0b1c2d3e4")
            && status.stdout().contains("`ballast stamp f6a0b1c2d3e4`"),
        "{}",
        status.stdout()
    );
}

#[test]
fn the_preview_sql_is_what_alembic_renders_offline() {
    let p = Project::new();
    let versions = p.alembic();
    // Offline mode cannot render the data migration: compare the range without it.
    std::fs::remove_file(versions.join("f6a0b1c2d3e4_backfill_slugs.py")).unwrap();
    let plan = p.ballast(&["--json", "plan"]);
    plan.expect_code(0);
    let event = plan
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "plan")
        .expect("a plan event");
    let ours: Vec<String> = event["plan"]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            m["sql"]
                .as_str()
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    let app = p.path().join("app");
    let out = std::process::Command::new(crate::harness::alembic_python())
        .args(["-m", "alembic", "upgrade", "head", "--sql"])
        .current_dir(&app)
        .env("DATABASE_URL", &p.url)
        .env("ALEMBIC_CONFIG", app.join("alembic.ini"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("-- Running upgrade"))
        .map(str::to_string)
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
fn downgrading_to_where_the_run_started_restores_the_schema_exactly() {
    let p = Project::new();
    let versions = p.alembic();
    // Start at b2: only the first two revisions are there for the first deploy.
    let later = p.path().join("later");
    std::fs::create_dir(&later).unwrap();
    for file in std::fs::read_dir(&versions).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && !name.starts_with("a1") && !name.starts_with("b2") {
            std::fs::rename(&path, later.join(&name)).unwrap();
        }
    }
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(version(&p), "b2e1d4c5f6a7");
    let before = p.schema_dump("marketplace");
    for file in std::fs::read_dir(&later).unwrap() {
        let path = file.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("f6")
        {
            std::fs::rename(&path, versions.join(path.file_name().unwrap())).unwrap();
        }
    }
    let round_trip = p.path().join("round-trip.toml");
    std::fs::write(
        &round_trip,
        "[[stages]]\nkind = \"state-check\"\n\n[[stages]]\nkind = \"upgrade\"\n\n[[stages]]\nkind = \"downgrade\"\n",
    )
    .unwrap();
    let run = p.ballast(&["--yes", "run", round_trip.to_str().unwrap()]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("downgraded to b2e1d4c5f6a7"),
        "{}",
        run.stdout()
    );
    assert_eq!(version(&p), "b2e1d4c5f6a7");
    assert_eq!(p.schema_dump("marketplace"), before);
}

#[test]
fn stamp_asks_first_then_writes_the_revision_and_is_journaled() {
    let p = Project::new();
    p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("update marketplace.alembic_version set version_num = 'deadbeef0000'");
    let refused = p.ballast(&["stamp", HEAD]);
    refused.expect_code(3);
    assert!(
        refused.stdout().contains("pass --yes"),
        "{}",
        refused.stdout()
    );
    assert_eq!(version(&p), "deadbeef0000");
    p.ballast(&["--yes", "stamp", "nosuchrev000"])
        .expect_code(3);
    let run = p.ballast(&["--yes", "stamp", HEAD]);
    run.expect_code(0);
    assert_eq!(version(&p), HEAD);
    p.ballast(&["status"]).expect_code(0);
    let history = p.ballast(&["history"]);
    assert!(history.stdout().contains("stamp"), "{}", history.stdout());
}

#[test]
fn revisions_after_one_offline_mode_cannot_render_still_show_their_sql() {
    let p = Project::new();
    let versions = p.alembic();
    reviews_revision(&versions);
    let plan = p.ballast(&["plan"]);
    plan.expect_code(0);
    let out = plan.stdout();
    let unrenderable = out.find("offline mode cannot render").expect("f6 is named");
    let after = out
        .find("CREATE TABLE marketplace.reviews")
        .expect("a7's SQL is shown");
    assert!(unrenderable < after, "{out}");
}

#[test]
fn a_revision_that_logs_bytes_that_are_not_utf8_still_runs_to_the_end() {
    let p = Project::new();
    let versions = p.alembic();
    alembic_revision(
        &versions,
        "a7000000000a",
        HEAD,
        &[
            "import sys",
            "sys.stderr.buffer.write(b'imported caf\\xe9 from the old system\\n')",
            "sys.stderr.flush()",
            "op.create_table(\"reviews\", sa.Column(\"id\", sa.Integer()), schema=\"marketplace\")",
        ],
        "op.drop_table(\"reviews\", schema=\"marketplace\")",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert_eq!(version(&p), "a7000000000a");
    assert!(p.table_exists("marketplace.reviews"));
}
