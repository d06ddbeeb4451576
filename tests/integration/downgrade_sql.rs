//! The `downgrade` stage on the `sql` engine: down files run newest first, their ledger
//! rows go with them, and every refusal and failure leaves the database where the
//! message says.

use crate::harness::Project;

/// Three migrations in every layout, each with a down file.
fn three_with_downs(p: &Project) {
    p.migration("1_customers.up.sql", "create table customers (id bigint primary key, email text not null);")
        .migration("1_customers.down.sql", "drop table customers;")
        .migration("2_orders.up.sql", "create table orders (id bigint primary key, customer_id bigint references customers (id));\ncreate index orders_customer_idx on orders (customer_id);")
        .migration("2_orders.down.sql", "drop table orders;")
        .migration("3_order_total/up.sql", "alter table orders add column total_cents bigint;")
        .migration("3_order_total/down.sql", "alter table orders drop column total_cents;");
}

#[test]
fn downgrade_to_a_version_undoes_the_newer_ones_and_restores_the_schema() {
    let p = Project::new();
    p.migration(
        "1_customers.up.sql",
        "create table customers (id bigint primary key, email text not null);",
    )
    .migration("1_customers.down.sql", "drop table customers;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let before = p.schema_dump("public");
    three_with_downs(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);

    p.downgrade_pipeline("back", Some("1"), false);
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("2 migrations undone (3_order_total, 2_orders)")
            && out.contains("now at 1_customers"),
        "{out}"
    );
    assert!(
        out.contains("downgrading 3_order_total (1/2)")
            && out.contains("downgrading 2_orders (2/2)"),
        "{out}"
    );
    assert!(!p.table_exists("public.orders"));
    assert!(p.table_exists("public.customers"));
    assert_eq!(p.ledger_versions(), ["1"]);
    assert_eq!(p.schema_dump("public"), before);
    let status = p.ballast(&["status"]);
    status.expect_code(1);
    assert!(
        status.stdout().contains("1 applied, 2 pending"),
        "{}",
        status.stdout()
    );

    // Nothing newer is left: a skip, not an error.
    let again = p.ballast(&["--yes", "run", "back"]);
    again.expect_code(0);
    assert!(
        again.stdout().contains("already at 1_customers"),
        "{}",
        again.stdout()
    );
    // And the undone migrations deploy again.
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
}

#[test]
fn downgrade_without_to_goes_back_to_where_the_run_started() {
    let p = Project::new();
    p.migration(
        "1_customers.up.sql",
        "create table customers (id bigint primary key, email text not null);",
    )
    .migration("1_customers.down.sql", "drop table customers;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let before = p.schema_dump("public");
    three_with_downs(&p);
    std::fs::write(
        p.path().join("round-trip.toml"),
        "[[stages]]\nkind = \"state-check\"\n\n[[stages]]\nkind = \"upgrade\"\n\n[[stages]]\nkind = \"downgrade\"\n",
    )
    .unwrap();
    let run = p.ballast(&["--yes", "run", "./round-trip.toml"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("2 migrations undone (3_order_total, 2_orders)"),
        "{}",
        run.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1"]);
    assert_eq!(p.schema_dump("public"), before);
}

#[test]
fn a_missing_down_file_refuses_and_changes_nothing() {
    let p = Project::new();
    three_with_downs(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    std::fs::remove_file(p.path().join("migrations/2_orders.down.sql")).unwrap();
    let before = p.schema_dump("public");

    p.downgrade_pipeline("back", Some("1"), false);
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(3);
    let out = run.stdout();
    assert!(
        out.contains("2_orders: it has no down file")
            && out.contains("nothing was changed, restore the run's backup instead"),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
    assert_eq!(p.schema_dump("public"), before);

    // A version nobody knows is refused too, never read as "undo everything".
    p.downgrade_pipeline("typo", Some("7"), false);
    let run = p.ballast(&["--yes", "run", "typo"]);
    run.expect_code(3);
    assert!(
        run.stdout()
            .contains("no migration file and no applied migration has version 7"),
        "{}",
        run.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
}

#[test]
fn a_failing_down_rolls_back_its_whole_batch() {
    let p = Project::new();
    three_with_downs(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // 3's down runs first and succeeds; 2's fails, in the same transaction.
    p.migration(
        "2_orders.down.sql",
        "drop index orders_customer_idx;\n\ninsert into no_such_table values (1);\n",
    );
    let before = p.schema_dump("public");

    p.downgrade_pipeline("back", Some("1"), false);
    let run = p.ballast(&["--yes", "run", "back"]);
    // It failed, and the database is provably where it was: exit 1, not 4.
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("the down of 2_orders failed")
            && out.contains("2_orders.down.sql, line 3")
            && out.contains("42P01"),
        "{out}"
    );
    assert!(
        out.contains("nothing of 3_order_total, 2_orders was undone")
            && out.contains("nothing was undone before it"),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
    assert_eq!(p.schema_dump("public"), before);
    assert_eq!(
        p.sql("select status from ballast_journal order by started_at desc limit 1"),
        "failed-unchanged"
    );
}

#[test]
fn a_no_transaction_down_drops_an_index_concurrently() {
    let p = Project::new();
    p.migration("1_t.up.sql", "create table t (id bigint, note text);")
        .migration("1_t.down.sql", "drop table t;")
        .migration(
            "2_t_id_idx.up.sql",
            "-- no-transaction\ncreate index concurrently if not exists t_id_idx on t (id);\n",
        )
        .migration(
            "2_t_id_idx.down.sql",
            "-- no-transaction\ndrop index concurrently if exists t_id_idx;\n",
        )
        .migration("3_flag.up.sql", "alter table t add column flag boolean;")
        .migration("3_flag.down.sql", "alter table t drop column flag;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.t_id_idx"));

    p.downgrade_pipeline("back", Some("1"), false);
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("2 migrations undone (3_flag, 2_t_id_idx)"),
        "{}",
        run.stdout()
    );
    assert!(!p.table_exists("public.t_id_idx"));
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 't' and column_name = 'flag'"),
        "0"
    );
    assert_eq!(p.ledger_versions(), ["1"]);
}

#[test]
fn a_failure_after_a_committed_down_says_what_was_undone() {
    let p = Project::new();
    p.migration("1_t.up.sql", "create table t (id bigint);")
        .migration("1_t.down.sql", "drop table t;")
        .migration("2_u.up.sql", "create table u (id bigint);")
        .migration("2_u.down.sql", "drop table no_such_table;")
        .migration(
            "3_t_id_idx.up.sql",
            "-- no-transaction\ncreate index concurrently if not exists t_id_idx on t (id);\n",
        )
        .migration(
            "3_t_id_idx.down.sql",
            "-- no-transaction\ndrop index concurrently if exists t_id_idx;\n",
        );
    p.ballast(&["--yes", "deploy"]).expect_code(0);

    p.downgrade_pipeline("back", Some("1"), false);
    let run = p.ballast(&["--yes", "run", "back"]);
    // 3 was undone and stays undone: the run changed the database and did not get
    // back to where it started, so it must not say "nothing changed".
    run.expect_code(4);
    let out = run.stdout();
    assert!(
        out.contains("the down of 2_u failed")
            && out.contains("undone before it (committed): 3_t_id_idx")
            && out.contains("still applied: 2_u"),
        "{out}"
    );
    assert!(!out.contains("nothing changed"), "{out}");
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    assert!(!p.table_exists("public.t_id_idx"));
}

#[test]
fn a_verify_after_a_downgrade_checks_the_version_it_went_to() {
    let p = Project::new();
    three_with_downs(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    for (name, to) in [("back1", "1"), ("tobase", "base")] {
        p.downgrade_pipeline(name, Some(to), true);
    }
    let run = p.ballast(&["--yes", "run", "back1"]);
    run.expect_code(0);
    assert!(run.stdout().contains("✓ verify"), "{}", run.stdout());
    assert_eq!(p.ledger_versions(), ["1"]);
    p.ballast(&["--yes", "run", "tobase"]).expect_code(0);
    assert!(p.ledger_versions().is_empty());
}

#[test]
fn the_shipped_rollback_pipeline_undoes_the_newest_migration_after_a_backup() {
    let p = Project::new();
    three_with_downs(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // Without a terminal or --yes it asks nobody and changes nothing.
    p.ballast(&["run", "rollback"]).expect_code(3);
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
    let run = p.ballast(&["--yes", "run", "rollback"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(out.contains("✓ backup"), "{out}");
    assert!(out.contains("1 migration undone (3_order_total)"), "{out}");
    assert!(out.contains("✓ verify"), "{out}");
    assert!(
        out.contains("✓ rollback succeeded: version 3_order_total → 2_orders\n"),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), ["1", "2"]);
}

#[test]
fn a_rollback_refused_for_a_reason_the_state_shows_takes_no_backup() {
    let p = Project::new();
    three_with_downs(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let backups = p.backup_files().len();
    // The newest migration's down file is gone: known before anything runs.
    let down = p.path().join("migrations/3_order_total/down.sql");
    assert!(down.exists(), "the fixture's layout changed");
    std::fs::remove_file(&down).unwrap();
    let run = p.ballast(&["--yes", "run", "rollback"]);
    run.expect_code(3);
    assert!(run.all().contains("it has no down file"), "{}", run.all());
    assert_eq!(p.backup_files().len(), backups, "no backup taken");
    assert!(!run.stdout().contains("✓ backup"), "{}", run.stdout());
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
}

#[test]
fn minus_one_refuses_when_another_deploy_moved_the_database_after_it_was_read() {
    let p = Project::new();
    three_with_downs(&p);
    let third = p.path().join("migrations/3_order_total");
    let aside = p.path().join("3_order_total");
    std::fs::rename(&third, &aside).unwrap();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    std::fs::rename(&aside, &third).unwrap();
    // Between the state check (at 2_orders) and the downgrade, another deploy applies 3.
    p.pipeline(
        "racy",
        &format!(
            "[[stages]]\nkind = \"state-check\"\n[[stages]]\nkind = \"shell\"\ncommand = \"{} --yes deploy\"\n\
             [[stages]]\nkind = \"downgrade\"\nto = \"-1\"\n",
            env!("CARGO_BIN_EXE_ballast")
        ),
    );
    let run = p.ballast(&["--yes", "run", "racy"]);
    run.expect_code(3);
    assert!(
        run.stdout()
            .contains("changed since the run read it (2_orders then, 3_order_total now)"),
        "{}",
        run.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"], "nothing undone");
}

#[test]
fn downgrade_minus_n_counts_back_from_the_newest_applied() {
    let p = Project::new();
    three_with_downs(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    for (name, to) in [("minus1", "-1"), ("minus5", "-5"), ("minus2", "-2")] {
        p.downgrade_pipeline(name, Some(to), true);
    }
    let run = p.ballast(&["--yes", "run", "minus1"]);
    run.expect_code(0);
    assert!(run.stdout().contains("✓ verify"), "{}", run.stdout());
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    // More steps than applied migrations: refused, nothing undone.
    let run = p.ballast(&["--yes", "run", "minus5"]);
    run.expect_code(3);
    assert!(
        run.stdout()
            .contains("`-5` goes back past base: 2 migrations are applied"),
        "{}",
        run.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    // Exactly as many: back to base.
    p.ballast(&["--yes", "run", "minus2"]).expect_code(0);
    assert!(p.ledger_versions().is_empty());
    assert!(!p.table_exists("public.customers"));
}
