//! The deploy pipeline end to end on SQL migration folders.

use crate::harness::Project;

fn three_migrations(p: &Project) {
    p.migration("1_customers.sql", "create table customers (id bigint primary key, email text not null);")
        .migration("2_orders.up.sql", "create table orders (id bigint primary key, customer_id bigint references customers (id));")
        .migration("2_orders.down.sql", "drop table orders;")
        .migration("3_order_total/up.sql", "alter table orders add column total_cents bigint not null default 0;");
}

#[test]
fn clean_deploy_applies_all_and_records_them() {
    let p = Project::new();
    three_migrations(&p);
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(p.table_exists("public.customers") && p.table_exists("public.orders"));
    assert_eq!(p.sql("select count(*) from information_schema.columns where table_name = 'orders' and column_name = 'total_cents'"), "1");
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
    let rows = p.sql("select count(*) from ballast_migrations where checksum ~ '^[0-9a-f]{64}$' and duration_ms >= 0 and run_id is not null and transactional");
    assert_eq!(rows, "3");
    assert_eq!(p.sql("select status from ballast_journal"), "succeeded");
}

#[test]
fn second_deploy_is_a_no_op_without_backup() {
    let p = Project::new();
    three_migrations(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let backups = p.backup_files();
    assert_eq!(backups.len(), 2, "one dump and one manifest: {backups:?}");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("nothing to apply"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        p.backup_files(),
        backups,
        "a deploy with nothing pending takes no backup"
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
}

#[test]
fn failing_third_migration_leaves_none_of_the_batch_applied() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);")
        .migration("2_b.sql", "create table b (id int);")
        .migration(
            "3_broken.sql",
            "create table c (id int);\n\ninsert into no_such_table values (1);\n",
        );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("migration 3_broken failed"), "{out}");
    assert!(out.contains("line 3"), "the error names the line: {out}");
    assert!(out.contains("42P01"), "the error names the SQLSTATE: {out}");
    assert!(
        out.contains("rolled back 3 migration(s), none of them applied"),
        "{out}"
    );
    assert!(out.contains("nothing changed"), "{out}");
    assert!(
        !p.table_exists("public.a") && !p.table_exists("public.b") && !p.table_exists("public.c")
    );
    assert!(p.ledger_versions().is_empty());
    assert_eq!(
        p.sql("select status || ' ' || failed_stage from ballast_journal"),
        "failed-unchanged upgrade"
    );
}

#[test]
fn edited_applied_migration_blocks_the_deploy() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.migration("1_a.sql", "create table a (id bigint);")
        .migration("2_b.sql", "create table b (id int);");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout()
            .contains("drift: migration 1_a was edited after it was applied"),
        "{}",
        run.stdout()
    );
    assert!(
        !p.table_exists("public.b"),
        "nothing of the new plan may run"
    );

    // Whitespace and line endings are not drift.
    p.migration("1_a.sql", "create table a (id int);   \r\n\r\n");
    std::fs::remove_file(p.path().join("migrations/2_b.sql")).unwrap();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
}

#[test]
fn applied_version_without_file_is_diagnosed() {
    let p = Project::new();
    p.migration("1_a.sql", "select 1;")
        .migration("2_b.sql", "select 2;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    std::fs::remove_file(p.path().join("migrations/2_b.sql")).unwrap();
    p.migration("3_c.sql", "create table c (id int);");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout()
            .contains("unknown version: 2_b is applied in the database"),
        "{}",
        run.stdout()
    );
    assert!(!p.table_exists("public.c"));
}

#[test]
fn no_terminal_and_no_yes_refuses_with_nothing_changed() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let run = p.ballast(&["deploy"]);
    run.expect_code(3);
    assert!(run.stdout().contains("pass --yes"), "{}", run.stdout());
    assert!(!p.table_exists("public.a"));
    assert!(
        !p.table_exists("public.ballast_migrations"),
        "a refused run creates nothing"
    );
    assert!(p.backup_files().is_empty(), "no backup before confirmation");
}

#[test]
fn no_transaction_migration_creates_index_concurrently() {
    let p = Project::new();
    p.migration("1_t.sql", "create table t (id int, email text);")
        .migration("2_idx.sql", "-- no-transaction\ncreate index concurrently t_email_idx on t (email);\ncreate index concurrently t_id_idx on t (id);\n")
        .migration("3_more.sql", "alter table t add column note text;");
    // Two statements in one no-transaction migration: the lint says so, as a warning
    // (both can run twice, so a half-done migration is finished by the next deploy;
    // the unit tests have the error for statements that cannot).
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("warning [multiple-statements-without-transaction]"),
        "{}",
        run.stdout()
    );
    assert_eq!(p.sql("select count(*) from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname in ('t_email_idx', 't_id_idx') and i.indisvalid"), "2");
    assert_eq!(
        p.sql("select transactional from ballast_migrations where version = '2'"),
        "f"
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
}

#[test]
fn diesel_metadata_marks_a_migration_non_transactional() {
    let p = Project::new();
    p.migration("2024-01-01-000000_t/up.sql", "create table t (id int);")
        .migration(
            "2024-01-02-000000_idx/up.sql",
            "create index concurrently if not exists t_idx on t (id);",
        )
        .migration(
            "2024-01-02-000000_idx/metadata.toml",
            "run_in_transaction = false\n",
        );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.ledger_versions(), ["20240101000000", "20240102000000"]);
}

#[test]
fn failure_after_a_committed_no_transaction_step_is_not_called_rolled_back() {
    let p = Project::new();
    p.migration("1_t.sql", "create table t (id int);")
        .migration(
            "2_idx.sql",
            "-- no-transaction\ncreate index concurrently if not exists t_idx on t (id);",
        )
        .migration("3_broken.sql", "alter table nope add column x int;");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(4);
    let out = run.stdout();
    assert!(out.contains("NOT recovered"), "{out}");
    assert!(out.contains("committed and still applied: 1, 2"), "{out}");
    assert!(out.contains("rolled back (not applied): 3"), "{out}");
    assert!(
        out.contains("pg_restore"),
        "says how to restore the backup: {out}"
    );
    assert_eq!(p.ledger_versions(), ["1", "2"]);
}

#[test]
fn versions_run_in_numeric_order() {
    let p = Project::new();
    p.migration("1_t.sql", "create table t (seq serial, step int);")
        .migration("2_two.sql", "insert into t (step) values (2);")
        .migration("10_ten.sql", "insert into t (step) values (10);");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(step::text, ',' order by seq) from t"),
        "2,10"
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "10"]);
}

#[test]
fn verify_runs_user_checks() {
    let p = Project::new();
    p.migration("1_t.sql", "create table t (id int);");
    p.write_config(
        "[[verify.checks]]\nname = \"t is empty\"\nsql = \"select count(*) = 1 from t\"\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(4);
    assert!(
        run.stdout().contains("check `t is empty` returned false"),
        "{}",
        run.stdout()
    );
}

#[test]
fn failure_hooks_get_the_run_facts() {
    let p = Project::new();
    p.migration("1_broken.sql", "select from nowhere;");
    p.pipeline(
        "deploy",
        "[[stages]]\nkind = \"preview\"\n[[stages]]\nkind = \"upgrade\"\n\n[on_failure]\nhooks = [\"echo stage=$BALLAST_FAILED_STAGE outcome=$BALLAST_OUTCOME run=$BALLAST_RUN_ID > hook.out\"]\n",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(1);
    let hook = std::fs::read_to_string(p.path().join("hook.out")).unwrap();
    assert!(
        hook.starts_with("stage=upgrade outcome=failed-unchanged run="),
        "{hook}"
    );
}

#[test]
fn notify_hooks_run_after_every_run_with_the_summary_on_stdin() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    p.pipeline(
        "deploy",
        "[[stages]]\nkind = \"preview\"\n[[stages]]\nkind = \"upgrade\"\n\n[on_failure]\nhooks = [\"echo failed >> hooks.out\"]\n\n[notify]\nhooks = [\"cat > summary.json; echo notified $BALLAST_OUTCOME >> hooks.out\"]\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    let hooks = std::fs::read_to_string(p.path().join("hooks.out")).unwrap();
    assert_eq!(hooks, "notified succeeded\n", "no failure hook on success");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["outcome"], "succeeded");
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["applied"], serde_json::json!(["1"]));
    assert!(
        run.stdout().contains(summary["run_id"].as_str().unwrap()),
        "the same run"
    );

    // A failing run: the failure hooks first, then the notify hooks.
    p.migration("2_broken.sql", "select from nowhere;");
    p.ballast(&["--yes", "deploy"]).expect_code(1);
    let hooks = std::fs::read_to_string(p.path().join("hooks.out")).unwrap();
    assert_eq!(
        hooks,
        "notified succeeded\nfailed\nnotified failed-unchanged\n"
    );
}

#[test]
fn plan_changed_after_preview_is_refused() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    // Someone edits the migration between the preview and the upgrade.
    p.pipeline(
        "deploy",
        "[[stages]]\nkind = \"preview\"\n[[stages]]\nkind = \"shell\"\ncommand = \"echo 'create table b (id int);' > migrations/1_a.sql\"\n[[stages]]\nkind = \"upgrade\"\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("the plan changed since the preview"),
        "{}",
        run.stdout()
    );
    assert!(!p.table_exists("public.a") && !p.table_exists("public.b"));
}

#[test]
fn a_shell_stage_shows_its_output_and_is_killed_at_its_timeout() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);")
        .migration("1_a.down.sql", "drop table a;");
    p.pipeline(
        "smoke",
        "[[stages]]\nkind = \"state-check\"\n[[stages]]\nkind = \"upgrade\"\n\
         [[stages]]\nkind = \"shell\"\nname = \"smoke test\"\ncommand = \"echo checking the shop; echo all good\"\n\
         [[stages]]\nkind = \"shell\"\nname = \"slow check\"\ncommand = \"echo waiting; sleep 30\"\ntimeout = \"1s\"\n",
    );
    let started = std::time::Instant::now();
    let run = p.ballast(&["--yes", "run", "smoke"]);
    // The slow check failed after the upgrade committed: the ladder undid it.
    run.expect_code(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let out = run.stdout();
    assert!(out.contains("  | checking the shop\n  | all good"), "{out}");
    assert!(out.contains("✓ smoke test"), "{out}");
    assert!(
        out.contains("`echo waiting; sleep 30` failed (killed after 1s): waiting"),
        "{out}"
    );
    assert!(!p.table_exists("public.a"));
}

#[test]
fn missing_privileges_name_the_grant() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let role = format!("{}_app", p.db);
    p.sql(&format!("create role {role} login"));
    p.sql(&format!(
        "revoke create on schema public from public; grant usage on schema public to {role}"
    ));
    let url = p.url.replace("postgres@", &format!("{role}@"));
    std::fs::write(p.path().join("deploy.toml"), "").unwrap();
    let run = p.ballast_with(&["--yes", "deploy"], &[("DATABASE_URL", &url)]);
    run.expect_code(3);
    let out = run.stdout();
    assert!(
        out.contains(&format!(
            "role {role} lacks USAGE and CREATE on schema public"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "GRANT USAGE, CREATE ON SCHEMA \"public\" TO {role};"
        )),
        "{out}"
    );
    assert!(!p.table_exists("public.a"));
}

#[test]
fn run_takes_a_pipeline_path() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    std::fs::write(
        p.path().join("only-upgrade.toml"),
        "[[stages]]\nkind = \"upgrade\"\n[[stages]]\nkind = \"verify\"\n",
    )
    .unwrap();
    // It changes the database and never asks: it runs only when --yes says so.
    let refused = p.ballast(&["run", "./only-upgrade.toml"]);
    refused.expect_code(3);
    assert!(
        refused.stdout().contains("has no confirm stage"),
        "{}",
        refused.stdout()
    );
    assert!(!p.table_exists("public.a"));
    p.ballast(&["--yes", "run", "./only-upgrade.toml"])
        .expect_code(0);
    assert!(p.table_exists("public.a"));
    assert!(
        p.backup_files().is_empty(),
        "this pipeline has no backup stage"
    );
    // "Run it again" names the file as it was given (no pipeline is named `only-upgrade`).
    p.migration("2_b.sql", "select 1/0;");
    let failed = p.ballast(&["--yes", "run", "./only-upgrade.toml"]);
    failed.expect_code(1);
    assert!(
        failed
            .stdout()
            .contains("then run `ballast run ./only-upgrade.toml` again"),
        "{}",
        failed.stdout()
    );
    std::fs::remove_file(p.path().join("migrations/2_b.sql")).unwrap();
    let run = p.ballast(&["run", "nope"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("no pipeline named `nope`"),
        "{}",
        run.stderr()
    );
}

#[test]
fn error_at_commit_rolls_back_the_whole_batch() {
    let p = Project::new();
    p.migration("1_parent.sql", "create table parent (id int primary key);").migration(
        "2_child.sql",
        "create table child (parent_id int references parent (id) deferrable initially deferred);\n\
         insert into child values (42);",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    assert!(
        run.stdout().contains("COMMIT failed and rolled back"),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains("23503"), "{}", run.stdout());
    assert!(!p.table_exists("public.parent"));
    assert!(p.ledger_versions().is_empty());
}

#[test]
fn failed_create_index_concurrently_reports_the_invalid_index_it_left() {
    let p = Project::new();
    p.existing("create table t (email text); insert into t values ('a'), ('a')");
    p.migration(
        "1_unique.sql",
        "-- no-transaction\ncreate unique index concurrently if not exists t_email_key on t (email);",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    // The ladder drops it ([on_failure] invalid_indexes = "drop"): back at the start.
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("INVALID index public.t_email_key"), "{out}");
    assert!(
        out.contains("dropped the INVALID index public.t_email_key left by 1"),
        "{out}"
    );
    assert!(!p.table_exists("public.t_email_key"));
    assert!(p.ledger_versions().is_empty());
    // The account agrees with itself: nothing is left applied, the change was undone.
    assert!(!out.contains("committed and still applied"), "{out}");
    assert!(out.contains("its changes were undone"), "{out}");
}

#[test]
fn an_enum_value_added_by_one_migration_is_usable_by_the_next_in_the_same_deploy() {
    let p = Project::new();
    p.migration("1_mood.sql", "create type mood as enum ('happy');");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // One transaction for both would fail: unsafe use of new value (SQLSTATE 55P04).
    p.migration("2_calm.sql", "alter type mood add value 'calm';")
        .migration(
            "3_people.sql",
            "create table people (id bigint primary key, mood mood not null default 'calm');",
        );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains(
            "which commits right after it: ALTER TYPE mood ADD VALUE 'calm': a new enum value cannot be used until its transaction commits"
        ),
        "the preview says where the transaction is cut and why: {}",
        run.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
    assert!(p.table_exists("public.people"));
}

#[test]
fn a_deploy_from_an_empty_database_is_not_refused_for_what_its_own_migrations_created() {
    let p = Project::new();
    // Years of history, deployed at once to a new environment: everything the lock and
    // breaking rules would flag touches tables the same plan created moments earlier.
    p.migration(
        "1_accounts.sql",
        "create table accounts (id bigint primary key, email text, nick text);",
    )
    .migration(
        "2_accounts_email.sql",
        "create index accounts_email_idx on accounts (email);",
    )
    .migration("3_drop_email_idx.sql", "drop index accounts_email_idx;")
    .migration(
        "4_rename_nick.sql",
        "alter table accounts rename column nick to handle;",
    )
    .migration(
        "5_drop_handle.sql",
        "alter table accounts drop column handle;",
    )
    .migration("6_tmp.sql", "create table tmp (id int);")
    .migration("7_drop_tmp.sql", "drop table tmp;")
    .migration("8_rename.sql", "alter table accounts rename to users;");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(!run.stdout().contains("error ["), "{}", run.stdout());
    // The same change on a table that existed before the run is still a risk.
    p.sql("insert into users values (1, 'a@example.com')");
    p.migration("9_drop_email.sql", "alter table users drop column email;");
    let refused = p.ballast(&["--yes", "deploy"]);
    refused.expect_code(3);
    assert!(
        refused.stdout().contains("error [ban-drop-column]"),
        "{}",
        refused.stdout()
    );
}

#[test]
fn a_plain_concurrent_index_build_runs_again_over_the_invalid_index_a_failed_build_left() {
    let p = Project::new();
    p.existing("create table t (x int); insert into t values (1), (1)");
    // A failed build (duplicates) leaves an INVALID index of that very name.
    let failed = std::process::Command::new("psql")
        .args([
            "-X",
            "-d",
            &p.url,
            "-c",
            "create unique index concurrently t_x_key on t (x)",
        ])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert_eq!(
        p.sql("select count(*) from pg_index where indexrelid = 't_x_key'::regclass and not indisvalid"),
        "1"
    );
    p.sql("delete from t where ctid = (select max(ctid) from t)");
    p.migration(
        "1_t_x_key.sql",
        "-- no-transaction\ncreate unique index concurrently t_x_key on t (x);",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("dropped the INVALID index public.t_x_key"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        p.sql(
            "select count(*) from pg_index where indexrelid = 't_x_key'::regclass and indisvalid"
        ),
        "1"
    );
}

#[test]
fn a_no_transaction_migration_that_leaves_a_transaction_open_is_never_called_applied() {
    let p = Project::new();
    p.existing(
        "create table t (id int, n int); insert into t select g, 0 from generate_series(1, 10) g;",
    );
    // The lint calls it an error; a person who overrides it gets the truth.
    p.migration(
        "1_open.sql",
        "-- no-transaction\nBEGIN;\nupdate t set n = 1;\n",
    );
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    run.expect_code(1);
    let out = run.all();
    assert!(
        out.contains("left a transaction open: a BEGIN without COMMIT")
            && out.contains("line 2")
            && !out.contains("1 applied"),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), Vec::<String>::new());
    assert_eq!(p.sql("select count(*) from t where n = 1"), "0");
    // What ran before its BEGIN committed: said, and left to the ladder.
    p.migration(
        "1_open.sql",
        "-- no-transaction\nupdate t set n = 2 where id = 1;\nBEGIN;\nupdate t set n = 1;\n",
    );
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    assert_ne!(run.code(), 0, "{}", run.all());
    assert!(
        run.all()
            .contains("its first 1 statement(s), before the BEGIN, committed"),
        "{}",
        run.all()
    );
    assert_eq!(p.ledger_versions(), Vec::<String>::new());
    assert_eq!(p.sql("select count(*) from t where n = 1"), "0");
}
