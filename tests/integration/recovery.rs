//! The recovery ladder: after a failure that left changes, the downgrade rung, then the
//! restore rung, each proven by where the database ended (migrations and schema).

use crate::harness::{Project, FAILING_VERIFY};

/// Two migrations with down files, then a verify check that fails after they commit.
fn committed_then_verify_fails(p: &Project) {
    p.migration(
        "1_accounts.sql",
        "create table accounts (id bigint primary key, email text not null);\n\
         insert into accounts select g, 'a' || g || '@example.com' from generate_series(1, 5) g;",
    )
    .migration("1_accounts.down.sql", "drop table accounts;")
    .migration(
        "2_orders.sql",
        "create table orders (id bigint primary key, account_id bigint references accounts (id));\n\
         create index orders_account_idx on orders (account_id);",
    )
    .migration("2_orders.down.sql", "drop table orders;");
    p.write_config(
        "[[verify.checks]]\nname = \"orders has a row\"\nsql = \"select count(*) > 0 from orders\"\n",
    );
}

#[test]
fn a_verify_failure_after_commit_is_undone_by_the_downgrade_rung_exactly() {
    let p = Project::new();
    p.existing("create table kept (id int); insert into kept values (1)");
    let before = p.schema_dump("public");
    committed_then_verify_fails(&p);
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("check `orders has a row` returned false"),
        "{out}"
    );
    assert!(out.contains("downgrade (recovery)"), "{out}");
    assert!(out.contains("undone by their downgrades"), "{out}");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(
        p.schema_dump("public"),
        before,
        "the schema is exactly as found"
    );
    assert_eq!(p.sql("select count(*) from kept"), "1");
    // The journal says what each rung did.
    let history = p.ballast(&["--json", "history"]);
    assert!(
        history.stdout().contains("downgrade (recovery)"),
        "{}",
        history.stdout()
    );
}

#[test]
fn a_downgrade_that_fails_hands_over_to_the_restore_rung() {
    let p = Project::new();
    p.existing("create table kept (id int); insert into kept values (1), (2)");
    let before = p.schema_dump("public");
    committed_then_verify_fails(&p);
    // The newest down file raises: nothing of the downgrade's batch is undone.
    p.migration("2_orders.down.sql", "drop table orders;\nselect 1 / 0;");
    p.on_failure(true, "auto");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("the downgrade failed"), "{out}");
    assert!(out.contains("restore (recovery)"), "{out}");
    // The rows the restore throws away: the migration's, not ballast's bookkeeping.
    assert!(
        out.contains("5 rows written in 1 table since the backup (public.accounts 5)"),
        "{out}"
    );
    assert!(out.contains("restored from this run's backup"), "{out}");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(p.schema_dump("public"), before);
    assert_eq!(p.sql("select count(*) from kept"), "2");
}

#[test]
fn a_downgrade_that_leaves_the_schema_different_is_not_called_a_recovery() {
    let p = Project::new();
    committed_then_verify_fails(&p);
    // This down file forgets the table it should drop (it only unhooks it from
    // accounts, so 1's down can run); its ledger row goes anyway.
    p.migration(
        "2_orders.down.sql",
        "alter table orders drop constraint orders_account_id_fkey;\ndrop index orders_account_idx;",
    );
    p.on_failure(true, "ask");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(4);
    let out = run.stdout();
    assert!(
        out.contains("the database is not where the run started"),
        "{out}"
    );
    assert!(out.contains("+ relation public.orders"), "{out}");
    // restore = "ask" with no terminal: the writes it would lose are still counted
    // (accounts' rows went with its table; ballast's bookkeeping is no loss).
    assert!(out.contains("no terminal to ask"), "{out}");
    assert!(
        out.contains("would lose no rows written since the backup"),
        "{out}"
    );
    assert!(p.table_exists("public.orders"));
}

#[test]
fn with_the_downgrade_off_the_ladder_goes_to_the_restore_policy() {
    let p = Project::new();
    committed_then_verify_fails(&p);
    p.on_failure(false, "never");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(4);
    let out = run.stdout();
    assert!(out.contains("[on_failure] downgrade is false"), "{out}");
    assert!(out.contains("NOT recovered"), "{out}");
    assert_eq!(p.ledger_versions(), ["1", "2"]);
}

/// A table of notes, then a migration that drops it (its down creates it again, the
/// same but empty) and a verify check that fails after it commits.
fn drops_a_table_then_verify_fails(p: &Project) {
    p.notes_dropped_by_a_migration();
    p.write_config(FAILING_VERIFY);
}

#[test]
fn a_downgrade_cannot_bring_back_dropped_data_so_the_restore_rung_does() {
    let p = Project::new();
    drops_a_table_then_verify_fails(&p);
    let before = p.schema_dump("public");
    p.on_failure(true, "auto");
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    let out = run.stdout();
    run.expect_code(1);
    assert!(
        out.contains("the downgrade brought the schema back")
            && out.contains(
                "but not the data the run's migrations destroyed or may have changed (1 drop_notes: DROP TABLE notes)"
            ),
        "{out}"
    );
    assert!(out.contains("restored from this run's backup"), "{out}");
    assert_eq!(p.schema_dump("public"), before);
    assert_eq!(p.sql("select body from notes"), "remember me");
}

#[test]
fn without_a_restore_a_structural_downgrade_over_dropped_data_is_not_recovered() {
    let p = Project::new();
    drops_a_table_then_verify_fails(&p);
    p.on_failure(true, "never");
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    let out = run.stdout();
    run.expect_code(4);
    assert!(out.contains("DROP TABLE notes"), "{out}");
    assert!(out.contains("only this run's backup has it"), "{out}");
    assert!(
        out.contains("pg_restore"),
        "the account says how to restore: {out}"
    );
    // The schema is back (the downgrade ran); the notes are not, and the account says
    // where the run ended rather than where it was before the downgrade.
    assert!(p.ledger_versions().is_empty());
    assert_eq!(p.sql("select count(*) from notes"), "0");
    assert!(
        out.contains("NOT recovered: without any migration applied"),
        "{out}"
    );
    assert!(!out.contains("or undo the committed migrations"), "{out}");
}

#[test]
fn rows_an_undone_migration_changed_are_named_in_the_recovery() {
    let p = Project::new();
    p.existing(
        "create table kept (id int primary key, status text); insert into kept values (1, 'new')",
    );
    p.migration(
        "1_statuses.sql",
        "alter table kept add column legacy boolean;\nupdate kept set status = 'open' where status = 'new';",
    )
    .migration(
        "1_statuses.down.sql",
        "update kept set status = 'new' where status = 'open';\nalter table kept drop column legacy;",
    );
    p.write_config(FAILING_VERIFY);
    let run = p.ballast(&["--yes", "deploy"]);
    let out = run.stdout();
    run.expect_code(1);
    assert!(out.contains("undone by their downgrades"), "{out}");
    assert!(
        out.contains("rows the migrations changed (1 statuses: UPDATE kept) are as their down files left them"),
        "{out}"
    );
    assert_eq!(p.sql("select status from kept"), "new");
}

#[test]
fn a_cascade_into_another_schema_is_seen_by_the_proof() {
    let p = Project::new();
    p.migration(
        "1_a.sql",
        "create table a (v int); create view a_v as select v from a;",
    )
    .migration("1_a.down.sql", "drop view a_v; drop table a;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // Another team's view on ours, in a schema no migration names.
    p.sql("create schema reporting; create view reporting.dash as select * from public.a_v");
    p.migration(
        "2_b.sql",
        "drop view a_v cascade; create view a_v as select v, 1 as one from a;",
    )
    .migration(
        "2_b.down.sql",
        "drop view a_v; create view a_v as select v from a;",
    );
    p.write_config(FAILING_VERIFY);
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    let out = run.stdout();
    assert_eq!(
        run.code(),
        4,
        "the downgrade cannot bring reporting.dash back: {out}"
    );
    assert!(out.contains("- relation reporting.dash"), "{out}");
}

#[test]
fn code_whose_effect_on_rows_cannot_be_read_is_no_proven_recovery() {
    let p = Project::new();
    p.existing("create table kept (id serial primary key, status text); insert into kept (status) select 'status-' || g from generate_series(1, 5) g");
    p.migration(
        "1_x.sql",
        "alter table kept alter column status type varchar(3) using left(status, 3);\n\
         select setval('kept_id_seq', 1, false);\n\
         do $$ begin delete from kept where id > 3; end $$;",
    )
    .migration(
        "1_x.down.sql",
        "alter table kept alter column status type text;",
    );
    p.write_config(FAILING_VERIFY);
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    let out = run.stdout();
    assert_eq!(run.code(), 4, "{out}");
    for opaque in [
        "ALTER COLUMN kept.status TYPE ... USING (values rewritten), whose effect on rows cannot be read",
        "SELECT setval(...)",
        "DO block",
    ] {
        assert!(out.contains(opaque), "{opaque}: {out}");
    }
    assert!(!out.contains("undone by their downgrades"), "{out}");
}

#[test]
fn alembic_recoveries_name_real_caveats_only() {
    use crate::harness::{alembic_config, alembic_revision, ALEMBIC_HEAD};
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("create table marketplace.keep (id int, note text); insert into marketplace.keep values (1, 'a'), (2, 'b')");
    p.write_config(&format!(
        "{}\n[[verify.checks]]\nname = \"never\"\nsql = \"select false\"\n",
        alembic_config("")
    ));
    // A plain revision: recovered, and the version table's UPDATE is no caveat.
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &["op.add_column(\"keep\", sa.Column(\"extra\", sa.Integer()), schema=\"marketplace\")"],
        "op.drop_column(\"keep\", \"extra\", schema=\"marketplace\")",
    );
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    let out = run.stdout();
    assert_eq!(run.code(), 1, "{out}");
    assert!(out.contains("undone by their downgrades"), "{out}");
    assert!(!out.contains("rows the migrations changed"), "{out}");
    // A data revision offline mode cannot render: nothing is proven about its rows.
    std::fs::remove_file(versions.join("a7000000000a_added.py")).unwrap();
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &[
            "n = op.get_bind().execute(sa.text(\"select count(*) from marketplace.keep\")).scalar()",
            "op.execute(\"delete from marketplace.keep\")",
        ],
        "op.execute(\"select 1\")",
    );
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    let out = run.stdout();
    assert_eq!(run.code(), 4, "{out}");
    assert!(
        out.contains("its SQL could not be rendered offline"),
        "{out}"
    );
    assert_eq!(p.sql("select count(*) from marketplace.keep"), "0");
}
