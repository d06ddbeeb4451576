//! `ballast check`: the lint and the preflight for CI, in its three formats.

use crate::harness::Project;

/// A project whose only config is the migration folder (no database).
fn offline(p: &Project) {
    std::fs::write(
        p.path().join("deploy.toml"),
        "[migrations]\ndir = \"migrations\"\n",
    )
    .unwrap();
}

#[test]
fn without_a_database_every_migration_is_linted_and_errors_fail() {
    let p = Project::new();
    offline(&p);
    p.migration(
        "1_orders.sql",
        "create table orders (id bigint primary key, customer_id bigint);",
    )
    .migration("1_orders.down.sql", "drop table orders;")
    .migration(
        "2_index.sql",
        "-- a comment\ncreate index orders_customer_idx on orders (customer_id);",
    )
    .migration("2_index.down.sql", "drop index orders_customer_idx;");
    let run = p.ballast(&["check"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("2_index ("), "grouped by migration: {out}");
    assert!(
        out.contains("line 2    require-concurrent-index-creation"),
        "{out}"
    );
    assert!(out.contains("fix: use CREATE INDEX CONCURRENTLY"), "{out}");
    assert!(out.contains("1 error"), "{out}");

    let github = p.ballast(&["check", "--format", "github"]);
    github.expect_code(1);
    assert!(
        github
            .stdout()
            .lines()
            .any(|l| l.starts_with("::error file=")
                && l.contains("2_index.sql,line=2,title=require-concurrent-index-creation::")),
        "{}",
        github.stdout()
    );
    let json = p.ballast(&["--json", "check"]);
    json.expect_code(1);
    let last: serde_json::Value =
        serde_json::from_str(json.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "check_finished");
    assert_eq!(last["errors"], 1);
}

#[test]
fn allow_comments_and_config_levels_are_honoured() {
    let p = Project::new();
    offline(&p);
    p.migration(
        "1_index.sql",
        "-- reviewed: the table is tiny\n-- ballast:allow require-concurrent-index-creation\ncreate index i on orders (customer_id);",
    );
    p.migration("1_index.down.sql", "drop index i;");
    p.ballast(&["check"]).expect_code(0);
    p.migration("2_drop.sql", "alter table orders drop column note;");
    p.migration(
        "2_drop.down.sql",
        "alter table orders add column note text;",
    );
    p.ballast(&["check"]).expect_code(1);
    std::fs::write(
        p.path().join("deploy.toml"),
        "[migrations]\ndir = \"migrations\"\n[lint]\nlevels = { ban-drop-column = \"warning\" }\n",
    )
    .unwrap();
    let run = p.ballast(&["check"]);
    run.expect_code(0);
    assert!(run.stdout().contains("! warning"), "{}", run.stdout());
    std::fs::write(
        p.path().join("deploy.toml"),
        "[migrations]\ndir = \"migrations\"\n[lint]\ndisable = [\"ban-drop-colum\"]\n",
    )
    .unwrap();
    let typo = p.ballast(&["check"]);
    typo.expect_code(2);
    assert!(
        typo.stderr().contains("no lint rule `ban-drop-colum`"),
        "{}",
        typo.stderr()
    );
}

#[test]
fn with_a_database_only_pending_migrations_count_and_empty_tables_are_safe() {
    let p = Project::new();
    p.migration(
        "1_orders.sql",
        "create table orders (id bigint primary key, customer_id bigint);",
    )
    .migration("1_orders.down.sql", "drop table orders;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.migration(
        "2_index.sql",
        "create index orders_customer_idx on orders (customer_id);",
    )
    .migration("2_index.down.sql", "drop index orders_customer_idx;");
    // The table is empty: nothing to wait for.
    let run = p.ballast(&["check"]);
    run.expect_code(0);
    assert!(run.stdout().contains("preflight:"), "{}", run.stdout());
    assert!(run.stdout().contains("✓ pg_dump"), "{}", run.stdout());
    p.sql("insert into orders values (1, 1)");
    let run = p.ballast(&["check"]);
    run.expect_code(1);
    assert!(
        run.stdout().contains("require-concurrent-index-creation"),
        "{}",
        run.stdout()
    );
    // `plan` shows it under the SQL.
    let plan = p.ballast(&["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout()
            .contains("✗ error [require-concurrent-index-creation] 2_index line 1"),
        "{}",
        plan.stdout()
    );
    // And the deploy stops at confirm for it, unless --allow-risky.
    p.ballast(&["--yes", "deploy"]).expect_code(3);
    p.ballast(&["--yes", "--allow-risky", "deploy"])
        .expect_code(0);
}

#[test]
fn preflight_names_an_old_pg_dump_and_unwritable_storage() {
    let p = Project::new();
    p.migration("1_t.sql", "create table t (id bigint primary key);")
        .migration("1_t.down.sql", "drop table t;");
    let config = p.fake_pg_dump("exec pg_dump \"$@\"");
    let blocked = p.path().join("not-a-folder");
    std::fs::write(&blocked, "a file where the backup folder should be").unwrap();
    p.write_config(&format!("{config}dir = \"{}\"\n", blocked.display()));
    // The stand-in answers --version like the real one would; make it an old one.
    let script = p.path().join("fake_pg_dump.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    let run = p.ballast(&["check"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("✗ pg_dump") && out.contains("older than the server"),
        "{out}"
    );
    assert!(out.contains("✗ storage"), "{out}");
    assert!(out.contains("preflight failed"), "{out}");
    let deploy = p.ballast(&["--yes", "deploy"]);
    deploy.expect_code(3);
    assert!(
        deploy.stdout().contains("preflight pg_dump"),
        "{}",
        deploy.stdout()
    );
    assert!(!p.table_exists("public.t"));
}

#[test]
fn the_rules_are_listed() {
    let p = Project::new();
    let run = p.ballast(&["check", "--rules"]);
    run.expect_code(0);
    let out = run.stdout();
    for id in [
        "require-concurrent-index-creation",
        "ban-drop-column",
        "concurrently-in-transaction",
        "prefer-bigint-keys",
        "missing-downgrade",
    ] {
        assert!(out.contains(id), "{id}: {out}");
    }
    assert!(out.lines().count() >= 29, "{out}");
}

#[test]
fn an_alembic_project_is_linted_from_offline_sql_and_python_comments_allow() {
    let p = Project::new();
    let versions = p.alembic();
    let run = p.ballast(&["check", "--all"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("f6a0b1c2d3e4 (backfill seller slugs (data migration))")
            && out.contains("missing-downgrade"),
        "{out}"
    );
    assert!(out.contains("0 errors, 1 warning"), "{out}");
    // A risky revision, then its reviewed allowance in the Python file.
    let risky = versions.join("a7000000000a_index.py");
    let text = "\"\"\"index sellers by name\n\nRevision ID: a7000000000a\nRevises: f6a0b1c2d3e4\n\"\"\"\nfrom alembic import op\n\nrevision = \"a7000000000a\"\ndown_revision = \"f6a0b1c2d3e4\"\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    op.create_index(\"ix_sellers_name\", \"sellers\", [\"name\"], schema=\"marketplace\")\n\n\ndef downgrade():\n    op.drop_index(\"ix_sellers_name\", \"sellers\", schema=\"marketplace\")\n";
    std::fs::write(&risky, text).unwrap();
    let run = p.ballast(&["check", "--all"]);
    run.expect_code(1);
    assert!(
        run.stdout().contains("require-concurrent-index-creation"),
        "{}",
        run.stdout()
    );
    std::fs::write(
        &risky,
        text.replace(
            "def upgrade():",
            "# sellers is small; reviewed 2026-11-25\n# ballast:allow require-concurrent-index-creation\ndef upgrade():",
        ),
    )
    .unwrap();
    p.ballast(&["check", "--all"]).expect_code(0);
}

#[test]
fn preflight_probes_s3_storage_and_names_a_running_deploy() {
    let p = Project::new();
    p.migration("1_t.sql", "create table t (id bigint primary key);")
        .migration("1_t.down.sql", "drop table t;");
    let bucket = p.with_s3("");
    let _deploy = crate::harness::Blocker::hold(
        &p.url,
        &format!(
            "select pg_advisory_lock({}, {})",
            ballast::db::lock::LOCK_CLASS,
            ballast::db::lock::key_for("public")
        ),
    );
    let run = p.ballast(&["check"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains(&format!(
            "✓ storage            s3://{bucket}/shop/ is writable"
        )),
        "{out}"
    );
    assert!(
        out.contains("! deploy lock") && out.contains("held by pid"),
        "{out}"
    );
    assert!(!out.contains("long transactions"), "{out}");
    assert!(
        crate::harness::s3().keys(&bucket).is_empty(),
        "the probe object is gone"
    );
    // The session holding the lock has had its transaction open for a while.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = p.ballast(&["--set", "database.long_transaction=1s", "check"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("! long transactions")
            && run
                .stdout()
                .contains("(blocker) has had a transaction open for 00:00:0"),
        "{}",
        run.stdout()
    );
}

#[test]
fn what_the_database_declares_counts_and_a_refused_migration_hides_nothing() {
    let p = Project::new();
    p.migration(
        "1_accounts.sql",
        "create table accounts (id bigint primary key, email text);\n\
         create table orders (id bigint primary key, account_id bigint);\n\
         create index orders_account_idx on orders (account_id);\n\
         alter table accounts add constraint accounts_email_nn check (email is not null) not valid;",
    )
    .migration("1_accounts.down.sql", "drop table orders;\ndrop table accounts;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("insert into accounts values (1, 'a@example.com'); insert into orders values (1, 1)");
    // The database has the index the foreign key needs; an earlier pending migration
    // validates the check that lets SET NOT NULL skip its scan.
    p.migration(
        "2_validate.sql",
        "alter table accounts validate constraint accounts_email_nn;",
    )
    .migration("2_validate.down.sql", "select 1;")
    .migration(
        "3_not_null.sql",
        "alter table accounts alter column email set not null;\n\
         alter table orders add constraint orders_account_fk foreign key (account_id) references accounts (id) not valid;",
    )
    .migration(
        "3_not_null.down.sql",
        "alter table orders drop constraint orders_account_fk;\nalter table accounts alter column email drop not null;",
    );
    let run = p.ballast(&["check"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(!out.contains("set-not-null"), "{out}");
    assert!(!out.contains("foreign-key-without-index"), "{out}");

    // A transactional migration with BEGIN is refused by the deploy; check still lints
    // every migration and reports it among the others.
    p.migration(
        "4_tx.sql",
        "begin;\nupdate accounts set email = lower(email);\ncommit;",
    )
    .migration("4_tx.down.sql", "select 1;")
    .migration(
        "5_index.sql",
        "create index accounts_email_idx on accounts (email);",
    )
    .migration("5_index.down.sql", "drop index accounts_email_idx;");
    let run = p.ballast(&["check"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("transaction-control-in-migration"), "{out}");
    assert!(out.contains("require-concurrent-index-creation"), "{out}");
    assert!(out.contains("would commit or abort it early"), "{out}");
    let offline = p.ballast(&["check", "--all"]);
    offline.expect_code(1);
    assert!(
        offline
            .stdout()
            .contains("require-concurrent-index-creation"),
        "{}",
        offline.stdout()
    );
}
