//! Release phases, expand and contract: `--phase pre` holds back what is marked
//! `ballast:phase post`, `--phase post` applies it; each layout the sql engine reads,
//! the ledgers of the tools beside it (the real dbmate), Alembic's chain; the lint's
//! levels; and `ballast wait`, the rollout gate.

use std::time::{Duration, Instant};

use crate::adoption::{dbmate, migrated_by_golang_migrate};
use crate::harness::{alembic_revision, alembic_version, Blocker, Project, ALEMBIC_HEAD};

/// A table with rows, as production has it: the contract step drops `legacy`.
const USERS: &str = "create table users (id bigint primary key, name text, legacy text); \
    insert into users select g, 'user ' || g, 'old ' || g from generate_series(1, 200000) g";

fn columns(p: &Project, table: &str) -> String {
    p.sql(&format!(
        "select string_agg(column_name, ',' order by ordinal_position) from information_schema.columns where table_schema = 'public' and table_name = '{table}'"
    ))
}

/// One release's three migrations in a layout: an expand (add `email`), the contract
/// step (drop `legacy`, marked post), and a later expand (add `nickname`) that runs
/// before it with `--phase pre`.
struct Release {
    layout: &'static str,
    files: Vec<(&'static str, &'static str)>,
    /// The held-back migration's label, as status names it.
    held: &'static str,
    /// `[migrations]` lines the layout's tool needs for it.
    config: &'static str,
    /// Where `--phase pre` ends.
    aim: &'static str,
}

fn releases() -> Vec<Release> {
    vec![
        Release {
            layout: "sqlx",
            files: vec![
                ("1_email.sql", "alter table users add column email text;\n"),
                (
                    "2_drop_legacy.up.sql",
                    "-- the old code read legacy; gone after the rollout\n-- ballast:phase post\nalter table users drop column legacy;\n",
                ),
                ("2_drop_legacy.down.sql", "alter table users add column legacy text;\n"),
                ("3_nickname.sql", "alter table users add column nickname text;\n"),
            ],
            held: "2_drop_legacy",
            config: "",
            aim: "3_nickname",
        },
        Release {
            layout: "diesel",
            files: vec![
                ("2024-01-01-000001_email/up.sql", "alter table users add column email text;\n"),
                ("2024-01-01-000001_email/down.sql", "alter table users drop column email;\n"),
                (
                    "2024-01-01-000002_drop_legacy/up.sql",
                    "-- ballast:phase post\nalter table users drop column legacy;\n",
                ),
                (
                    "2024-01-01-000002_drop_legacy/down.sql",
                    "alter table users add column legacy text;\n",
                ),
                ("2024-01-01-000003_nickname/up.sql", "alter table users add column nickname text;\n"),
                ("2024-01-01-000003_nickname/down.sql", "alter table users drop column nickname;\n"),
            ],
            held: "20240101000002_drop_legacy",
            config: "",
            aim: "20240101000003_nickname",
        },
        Release {
            layout: "dbmate",
            files: vec![
                (
                    "20240101000001_email.sql",
                    "-- migrate:up\nalter table users add column email text;\n\n-- migrate:down\nalter table users drop column email;\n",
                ),
                (
                    // The mark above dbmate's sections.
                    "20240101000002_drop_legacy.sql",
                    "-- ballast:phase post\n-- migrate:up\nalter table users drop column legacy;\n\n-- migrate:down\nalter table users add column legacy text;\n",
                ),
                (
                    "20240101000003_nickname.sql",
                    "-- migrate:up\nalter table users add column nickname text;\n\n-- migrate:down\nalter table users drop column nickname;\n",
                ),
            ],
            held: "20240101000002_drop_legacy",
            config: "",
            aim: "20240101000003_nickname",
        },
        Release {
            layout: "flyway",
            files: vec![
                ("V1__email.sql", "alter table users add column email text;\n"),
                (
                    "V2__drop_legacy.sql",
                    "alter table users drop column legacy;\n-- ballast:phase post\n",
                ),
                ("V3__nickname.sql", "alter table users add column nickname text;\n"),
            ],
            held: "2_drop_legacy",
            // Flyway applies a migration older than the newest only with outOfOrder.
            config: "[migrations]\nout_of_order = \"apply\"",
            aim: "3_nickname",
        },
    ]
}

#[test]
fn pre_holds_the_contract_step_back_and_post_applies_it_in_every_layout() {
    for release in releases() {
        let p = Project::new();
        p.existing(USERS);
        for (path, text) in &release.files {
            p.migration(path, text);
        }
        let at = format!("{} layout", release.layout);
        if !release.config.is_empty() {
            // Without the tool's own out-of-order setting, pre refuses up front.
            let refused = p.ballast(&["--yes", "deploy", "--phase", "pre"]);
            refused.expect_code(3);
            assert!(
                refused.all().contains("outOfOrder"),
                "{at}: {}",
                refused.all()
            );
            p.write_config(release.config);
        }

        let status = p.ballast(&["status", "--phase", "pre"]);
        status.expect_code(1);
        let out = status.stdout();
        assert!(out.contains("2 pending"), "{at}: {out}");
        assert!(
            out.contains(&format!("→ target {}", release.aim)),
            "{at}: the target is where --phase pre ends: {out}"
        );
        assert!(
            out.contains("held back for after the rollout (phase post)")
                && out.contains(release.held),
            "{at}: {out}"
        );
        let plan = p.ballast(&["plan", "--phase", "pre", "--full"]);
        plan.expect_code(0);
        assert!(
            !plan.stdout().contains("drop column legacy")
                && plan.stdout().contains("add column nickname"),
            "{at}: {}",
            plan.stdout()
        );
        // Without --phase, status names the phase of what is pending.
        let all = p.ballast(&["status"]).stdout();
        assert!(
            all.contains("3 pending")
                && all.contains("phase post (the contract step, after the rollout)"),
            "{at}: {all}"
        );

        let pre = p.ballast(&["--yes", "deploy", "--phase", "pre"]);
        pre.expect_code(0);
        assert!(
            pre.stdout().contains("ballast deploy --phase post"),
            "{at}: the next step is named: {}",
            pre.all()
        );
        assert_eq!(
            columns(&p, "users"),
            "id,name,legacy,email,nickname",
            "{at}"
        );
        assert_eq!(p.sql("select count(legacy) from users"), "200000", "{at}");
        p.ballast(&["status", "--phase", "pre"]).expect_code(0);
        // The held-back one, older than the newest applied, is what post applies.
        let status = p.ballast(&["status"]);
        status.expect_code(1);
        assert!(
            status.stdout().contains("1 pending"),
            "{at}: {}",
            status.all()
        );

        let post = p.ballast(&["--yes", "deploy", "--phase", "post"]);
        post.expect_code(0);
        assert_eq!(columns(&p, "users"), "id,name,email,nickname", "{at}");
        p.ballast(&["status"]).expect_code(0);
        // A contract step in a post migration is a warning: the deploy went on.
        assert!(
            post.stdout().contains("warning [ban-drop-column]"),
            "{at}: {}",
            post.stdout()
        );
    }
}

#[test]
fn the_contract_step_unmarked_is_refused_by_the_lint_with_the_way_out() {
    let p = Project::new();
    p.existing(USERS);
    p.migration(
        "1_drop_legacy.sql",
        "alter table users drop column legacy;\n",
    );
    let refused = p.ballast(&["--yes", "deploy"]);
    refused.expect_code(3);
    assert!(
        refused
            .stdout()
            .contains("mark the migration `-- ballast:phase post`"),
        "{}",
        refused.all()
    );
    assert_eq!(columns(&p, "users"), "id,name,legacy");
    // Marked post, a deploy without --phase would still run it now: refused, saying so.
    p.migration(
        "1_drop_legacy.sql",
        "-- ballast:phase post\nalter table users drop column legacy;\n",
    );
    // --phase means nothing to a pipeline without an upgrade: refused, not ignored.
    let backup = p.ballast(&["--yes", "run", "backup", "--phase", "pre"]);
    backup.expect_code(2);
    assert!(
        backup.stderr().contains("no upgrade stage"),
        "{}",
        backup.all()
    );
    let refused = p.ballast(&["--yes", "deploy"]);
    refused.expect_code(3);
    assert!(
        refused
            .stdout()
            .contains("a deploy without --phase runs it now"),
        "{}",
        refused.all()
    );
    assert_eq!(columns(&p, "users"), "id,name,legacy");

    // A pre migration that needs what a post one creates: the expand step would break.
    let p = Project::new();
    p.existing(USERS);
    p.migration(
        "1_email_v2.sql",
        "-- ballast:phase post\nalter table users add column email_v2 text;\n",
    )
    .migration(
        "2_email_v2_index.sql",
        "-- no-transaction\ncreate index concurrently if not exists users_email_v2 on users (email_v2);\n",
    );
    let check = p.ballast(&["check"]);
    check.expect_code(1);
    assert!(
        check
            .stdout()
            .contains("pre-needs-post  this pre-phase migration uses column email_v2"),
        "{}",
        check.all()
    );
}

#[test]
fn dbmate_sees_the_held_back_migration_pending_and_agrees_after_post() {
    let p = Project::new();
    p.migration(
        "20240101000001_users.sql",
        "-- migrate:up\ncreate table users (id bigint primary key, name text, legacy text);\n\n-- migrate:down\ndrop table users;\n",
    );
    dbmate(&p, &["up"]);
    p.sql(
        "insert into users select g, 'user ' || g, 'old ' || g from generate_series(1, 200000) g",
    );
    p.migration(
        "20240101000002_drop_legacy.sql",
        "-- ballast:phase post\n-- migrate:up\nalter table users drop column legacy;\n\n-- migrate:down\nalter table users add column legacy text;\n",
    )
    .migration(
        "20240101000003_email.sql",
        "-- migrate:up\nalter table users add column email text;\n\n-- migrate:down\nalter table users drop column email;\n",
    );

    p.ballast(&["--yes", "deploy", "--phase", "pre"])
        .expect_code(0);
    assert_eq!(
        p.sql("select string_agg(version, ',' order by version) from schema_migrations"),
        "20240101000001,20240101000003"
    );
    // dbmate reads its ledger as ballast left it: the contract step is pending.
    let said = dbmate(&p, &["status"]);
    assert!(
        said.contains("Applied: 2") && said.contains("Pending: 1"),
        "{said}"
    );

    // The next release's pre deploy keeps holding it back, saying why that is fine.
    let again = p.ballast(&["--yes", "deploy", "--phase", "pre"]);
    again.expect_code(0);
    assert!(
        again.stdout().contains("waits for the contract step"),
        "{}",
        again.all()
    );
    p.ballast(&["--yes", "deploy", "--phase", "post"])
        .expect_code(0);
    assert_eq!(columns(&p, "users"), "id,name,email");
    let said = dbmate(&p, &["status"]);
    assert!(
        said.contains("Applied: 3") && said.contains("Pending: 0"),
        "{said}"
    );
}

#[test]
fn golang_migrates_one_version_cannot_hold_a_migration_back_so_pre_refuses_up_front() {
    let p = Project::new();
    p.migration(
        "1_users.up.sql",
        "create table users (id int, legacy text);\n",
    )
    .migration(
        "2_drop_legacy.up.sql",
        "-- ballast:phase post\nalter table users drop column legacy;\n",
    )
    .migration(
        "3_email.up.sql",
        "alter table users add column email text;\n",
    );
    p.sql("create table users (id int, legacy text)");
    migrated_by_golang_migrate(&p, 1, false);

    let refused = p.ballast(&["--yes", "deploy", "--phase", "pre"]);
    refused.expect_code(3);
    let out = refused.all();
    assert!(
        out.contains("golang-migrate's ledger keeps one version")
            && out.contains("2_drop_legacy")
            && out.contains("3_email"),
        "{out}"
    );
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "1 false"
    );
    // Set to apply out of order or not, its one version cannot keep 2 pending.
    p.write_config("[migrations]\nout_of_order = \"apply\"");
    p.ballast(&["--yes", "deploy", "--phase", "pre"])
        .expect_code(3);
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "1 false"
    );
    p.write_config("");
    assert_eq!(columns(&p, "users"), "id,legacy");
    // plan says the same, read-only.
    p.ballast(&["plan", "--phase", "pre"]).expect_code(3);

    // With the contract step last, pre applies what comes before it.
    std::fs::rename(
        p.path().join("migrations/2_drop_legacy.up.sql"),
        p.path().join("migrations/4_drop_legacy.up.sql"),
    )
    .unwrap();
    p.ballast(&["--yes", "deploy", "--phase", "pre"])
        .expect_code(0);
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "3 false"
    );
    p.ballast(&["--yes", "deploy", "--phase", "post"])
        .expect_code(0);
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "4 false"
    );
    assert_eq!(columns(&p, "users"), "id,email");
}

/// Marks the Alembic revision file `id` (written by `alembic_revision`) phase post.
fn mark_post(versions: &std::path::Path, id: &str) {
    let file = versions.join(format!("{id}_added.py"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("# ballast:phase post\n{text}")).unwrap();
}

#[test]
fn alembic_holds_back_post_revisions_at_the_chains_end_and_refuses_a_pre_one_behind_them() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let expand = "op.execute(\"create table marketplace.expand_done (id int)\")";
    let contract = "op.execute(\"create table marketplace.contract_done (id int)\")";

    // A pre revision after a post one: Alembic cannot skip, so pre refuses up front.
    alembic_revision(
        &versions,
        "c0ffee000001",
        ALEMBIC_HEAD,
        &[contract],
        "op.execute(\"drop table marketplace.contract_done\")",
    );
    mark_post(&versions, "c0ffee000001");
    alembic_revision(
        &versions,
        "c0ffee000002",
        "c0ffee000001",
        &[expand],
        "op.execute(\"drop table marketplace.expand_done\")",
    );
    let refused = p.ballast(&["--yes", "deploy", "--phase", "pre"]);
    refused.expect_code(3);
    assert!(
        refused.all().contains("cannot run revision c0ffee000002")
            && refused.all().contains("down_revision"),
        "{}",
        refused.all()
    );
    assert_eq!(alembic_version(&p), ALEMBIC_HEAD);
    assert!(!p.table_exists("marketplace.contract_done"));

    // Reordered: the expand step first, the contract step last.
    for id in ["c0ffee000001", "c0ffee000002"] {
        std::fs::remove_file(versions.join(format!("{id}_added.py"))).unwrap();
    }
    alembic_revision(
        &versions,
        "c0ffee000001",
        ALEMBIC_HEAD,
        &[expand],
        "op.execute(\"drop table marketplace.expand_done\")",
    );
    alembic_revision(
        &versions,
        "c0ffee000002",
        "c0ffee000001",
        &[contract],
        "op.execute(\"drop table marketplace.contract_done\")",
    );
    mark_post(&versions, "c0ffee000002");
    let status = p.ballast(&["status", "--phase", "pre"]);
    assert!(
        status
            .stdout()
            .contains("held back for after the rollout (phase post): c0ffee000002"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy", "--phase", "pre"])
        .expect_code(0);
    assert_eq!(alembic_version(&p), "c0ffee000001");
    assert!(
        p.table_exists("marketplace.expand_done") && !p.table_exists("marketplace.contract_done")
    );
    // The gate reads Alembic's version table the same way.
    p.ballast(&["wait", "--timeout", "5s"]).expect_code(0);
    let waiting = p.ballast(&["wait", "--phase", "post", "--timeout", "1s"]);
    waiting.expect_code(1);
    assert!(waiting.all().contains("c0ffee000002"), "{}", waiting.all());
    p.ballast(&["--yes", "deploy", "--phase", "post"])
        .expect_code(0);
    assert_eq!(alembic_version(&p), "c0ffee000002");
    assert!(p.table_exists("marketplace.contract_done"));
    // Two heads: nothing is pending towards one target, and the gate is not released.
    alembic_revision(&versions, "c0ffee000003", "c0ffee000002", &[expand], "pass");
    alembic_revision(&versions, "c0ffee000004", "c0ffee000002", &[expand], "pass");
    let two_heads = p.ballast(&["wait", "--timeout", "1s"]);
    two_heads.expect_code(1);
    assert!(
        two_heads.all().contains("needs attention"),
        "{}",
        two_heads.all()
    );
}

/// A project with `1_users` applied and an expand migration and a contract step
/// pending.
fn pending_release() -> Project {
    let p = Project::new();
    p.migration(
        "1_users.sql",
        "create table users (id bigint primary key, legacy text);\n",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.migration("2_email.sql", "alter table users add column email text;\n")
        .migration(
            "3_drop_legacy.sql",
            "-- ballast:phase post\nalter table users drop column legacy;\n",
        );
    p
}

#[test]
fn wait_times_out_with_what_is_pending_and_is_released_within_seconds_of_a_deploy() {
    let p = pending_release();
    let started = Instant::now();
    let timed_out = p.ballast(&["wait", "--timeout", "2s", "--interval", "200ms"]);
    timed_out.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        timed_out.all().contains("timed out after 2s") && timed_out.all().contains("2_email"),
        "{}",
        timed_out.all()
    );
    assert!(
        !timed_out.all().contains("3_drop_legacy"),
        "post is not waited for: {}",
        timed_out.all()
    );

    // Another process deploys the expand step while the gate waits.
    let gate = p
        .command(
            &["--json", "wait", "--timeout", "60s", "--interval", "200ms"],
            &[],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    p.ballast(&["--yes", "deploy", "--phase", "pre"])
        .expect_code(0);
    let deployed = Instant::now();
    let out = gate.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        deployed.elapsed() < Duration::from_secs(5),
        "released {:?} after the deploy",
        deployed.elapsed()
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["outcome"], "waiting");
    assert_eq!(events[0]["pending"], serde_json::json!(["2_email"]));
    assert_eq!(events.last().unwrap()["outcome"], "ready");

    // The contract step stays pending: the gate of phase post still waits.
    p.ballast(&["wait", "--phase", "post", "--timeout", "1s"])
        .expect_code(1);
    p.ballast(&["wait"]).expect_code(0);
}

#[test]
fn wait_refuses_a_database_ahead_of_its_files_and_works_with_a_read_only_role() {
    let p = pending_release();
    p.ballast(&["--yes", "deploy", "--phase", "post"])
        .expect_code(0);
    // A read-only role, as an application pod's may be.
    let role = format!("{}_reader", p.db);
    p.sql(&format!(
        "create role {role} login password 'reader'; grant select on all tables in schema public to {role}"
    ));
    let reader_url = p.url.replacen("postgres@", &format!("{role}:reader@"), 1);
    assert_ne!(reader_url, p.url);
    let ready = p.ballast_with(
        &["wait", "--phase", "post"],
        &[("BALLAST_DATABASE__URL", reader_url.as_str())],
    );
    ready.expect_code(0);
    assert!(ready.all().contains("ready"), "{}", ready.all());

    // The image is older than the database: its files lack 3_drop_legacy.
    std::fs::remove_file(p.path().join("migrations/3_drop_legacy.sql")).unwrap();
    let ahead = p.ballast(&["wait", "--timeout", "5s"]);
    ahead.expect_code(3);
    assert!(
        ahead.all().contains("3_drop_legacy") && ahead.all().contains("older than the database"),
        "{}",
        ahead.all()
    );
}

#[test]
fn wait_never_queues_behind_a_lock_on_the_ledger() {
    let p = pending_release();
    let _holder = Blocker::hold(
        &p.url,
        "lock table public.ballast_migrations in access exclusive mode",
    );
    let mut gate = p
        .command(&["wait", "--timeout", "3s", "--interval", "200ms"], &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // While it waits, no session of it ever waits for a lock.
    let mut looked = 0;
    while gate.try_wait().unwrap().is_none() {
        let waiting = p.sql(
            "select count(*) from pg_locks l join pg_stat_activity a using (pid) where not l.granted and a.application_name like '%(wait)%'",
        );
        assert_eq!(waiting, "0", "the wait queued behind the lock");
        looked += 1;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the wait hangs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(looked > 10, "looked only {looked} times");
    let out = gate.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("public.ballast_migrations is locked by pid"),
        "{text}"
    );
    assert!(text.contains("timed out after 3s"), "{text}");
}
