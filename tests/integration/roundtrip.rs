//! `ballast run roundtrip`: the newest migration up, down and up again on a throwaway
//! database, the schema compared at each step.

use crate::harness::{alembic_revision, alembic_version, Project, ALEMBIC_HEAD};

fn three_migrations(p: &Project) {
    p.migration("1_t.sql", "create table t (id bigint primary key);")
        .migration("1_t.down.sql", "drop table t;")
        .migration("2_u.sql", "create table u (id bigint primary key);")
        .migration("2_u.down.sql", "drop table u;")
        .migration(
            "3_note.sql",
            "alter table t add column note text;\ncreate index t_note_idx on t (note);",
        );
}

#[test]
fn a_round_trip_whose_downgrade_undoes_the_newest_migration_passes() {
    let p = Project::new();
    three_migrations(&p);
    p.migration(
        "3_note.down.sql",
        "drop index t_note_idx;\nalter table t drop column note;",
    );
    let run = p.ballast(&["--yes", "run", "roundtrip"]);
    let out = run.stdout();
    run.expect_code(0);
    for step in [
        "round trip 1/4: upgrade to 2",
        "round trip 2/4: upgrade 3_note",
        "round trip 3/4: downgrade 3_note",
        "round trip 4/4: upgrade 3_note again",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    assert!(
        out.contains("its downgrade restored the schema exactly"),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
    assert!(
        p.backup_files().is_empty(),
        "no backup of a throwaway database"
    );
}

#[test]
fn a_downgrade_that_forgets_a_column_fails_the_round_trip_and_names_it() {
    let p = Project::new();
    three_migrations(&p);
    p.migration("3_note.down.sql", "drop index t_note_idx;");
    let run = p.ballast(&["--yes", "run", "roundtrip"]);
    let out = run.stdout();
    assert_ne!(run.code(), 0, "{out}");
    assert!(
        out.contains("the downgrade of 3_note does not undo its upgrade"),
        "{out}"
    );
    assert!(out.contains("+ column public.t.note"), "{out}");
}

#[test]
fn with_only_the_newest_pending_the_downgrade_goes_back_to_what_was_applied() {
    let p = Project::new();
    three_migrations(&p);
    p.migration(
        "3_note.down.sql",
        "drop index t_note_idx;\nalter table t drop column note;",
    );
    // Deployed up to 2 first (3's files kept aside meanwhile).
    let aside = |from: &str, to: &str| {
        for file in ["3_note.sql", "3_note.down.sql"] {
            std::fs::rename(p.path().join(from).join(file), p.path().join(to).join(file)).unwrap();
        }
    };
    aside("migrations", "");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    aside("", "migrations");
    let run = p.ballast(&["--yes", "run", "roundtrip"]);
    let out = run.stdout();
    run.expect_code(0);
    assert!(
        out.contains("round trip 1/4: nothing to apply before the newest"),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), ["1", "2", "3"]);
    // Up to date: nothing round-trips, and it never says it succeeded.
    let again = p.ballast(&["--yes", "run", "roundtrip"]);
    again.expect_code(3);
    assert!(
        again
            .all()
            .contains("nothing pending, so nothing to round-trip"),
        "{}",
        again.all()
    );
    assert!(!again.all().contains("succeeded"), "{}", again.all());
}

#[test]
fn a_newest_migration_without_a_down_is_refused_before_anything_is_applied() {
    let p = Project::new();
    three_migrations(&p);
    let run = p.ballast(&["--yes", "run", "roundtrip"]);
    run.expect_code(3);
    assert!(
        run.all()
            .contains("its downgrade cannot undo it: 3_note: it has no down file"),
        "{}",
        run.all()
    );
    assert!(p.ledger_versions().is_empty(), "{:?}", p.ledger_versions());
}

#[test]
fn an_alembic_revision_whose_downgrade_raises_is_refused_before_anything_is_applied() {
    let p = Project::new();
    let versions = p.alembic();
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &["op.execute(\"create table marketplace.r (id int)\")"],
        "raise NotImplementedError()",
    );
    let run = p.ballast(&["--yes", "run", "roundtrip"]);
    run.expect_code(3);
    assert!(
        run.all().contains("its downgrade() raises"),
        "{}",
        run.all()
    );
    assert_eq!(
        p.sql("select count(*) from pg_tables where schemaname = 'marketplace'"),
        "0"
    );
}

#[test]
fn an_alembic_project_round_trips_its_newest_revision() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &["op.create_table(\"reviews\", sa.Column(\"id\", sa.Integer()), schema=\"marketplace\")"],
        "op.drop_table(\"reviews\", schema=\"marketplace\")",
    );
    let run = p.ballast(&["--yes", "run", "roundtrip"]);
    let out = run.stdout();
    run.expect_code(0);
    assert!(
        out.contains("round trip 3/4: downgrade a7000000000a"),
        "{out}"
    );
    assert_eq!(alembic_version(&p), "a7000000000a");

    // A revision whose downgrade leaves its table behind fails it.
    alembic_revision(
        &versions,
        "b8000000000b",
        "a7000000000a",
        &["op.create_table(\"flags\", sa.Column(\"id\", sa.Integer()), schema=\"marketplace\")"],
        "op.execute(\"select 1\")",
    );
    let run = p.ballast(&["--yes", "run", "roundtrip"]);
    let out = run.stdout();
    assert_ne!(run.code(), 0, "{out}");
    assert!(out.contains("+ relation marketplace.flags"), "{out}");
}
