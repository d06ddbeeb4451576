//! Adopting databases other tools migrated: their layouts and their ledgers, read and
//! written as each tool does, with the real dbmate running next to ballast.

use std::path::PathBuf;
use std::process::{Command, Output};

use sha2::{Digest, Sha384};

use crate::harness::Project;

/// The dbmate binary scripts/ensure-dbmate installs.
pub(crate) fn dbmate_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/dbmate/node_modules/@dbmate/linux-x64/bin/dbmate");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/ensure-dbmate (scripts/test does)",
        bin.display()
    );
    bin
}

/// Runs the real dbmate on the project's folder and database; panics unless it exits 0.
pub(crate) fn dbmate(p: &Project, args: &[&str]) -> String {
    let out: Output = Command::new(dbmate_bin())
        .args(["--no-dump-schema", "--migrations-dir", "migrations"])
        .args(args)
        .current_dir(p.path())
        .env("DATABASE_URL", format!("{}?sslmode=disable", p.url))
        .output()
        .expect("run dbmate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dbmate {args:?}: {text}");
    text
}

const DBMATE_ONE: &str = "-- migrate:up\ncreate table shop (id bigint primary key, name text);\n\n-- migrate:down\ndrop table shop;\n";
const DBMATE_TWO: &str = "-- migrate:up transaction:false\ncreate index concurrently shop_name on shop (name);\n\n-- migrate:down\ndrop index shop_name;\n";

#[test]
fn a_database_dbmate_migrated_is_deployed_by_ballast_and_dbmate_agrees_both_ways() {
    let p = Project::new();
    p.migration("20240101000000_shop.sql", DBMATE_ONE);
    dbmate(&p, &["up"]);
    p.migration("20240102000000_shop_name.sql", DBMATE_TWO);

    let status = p.ballast(&["status"]);
    status.expect_code(1);
    let out = status.stdout();
    assert!(out.contains("1 applied, 1 pending"), "{out}");
    assert!(
        out.contains("files: dbmate layout")
            && out.contains("dbmate's ledger public.schema_migrations (found in the database)"),
        "{out}"
    );

    let deploy = p.ballast(&["--yes", "deploy"]);
    deploy.expect_code(0);
    // The down section never ran; the up ran outside a transaction, as dbmate would.
    assert!(p.table_exists("public.shop"));
    assert_eq!(
        p.sql("select indexrelid::regclass::text from pg_index where indexrelid = 'shop_name'::regclass"),
        "shop_name"
    );
    assert_eq!(
        p.sql("select string_agg(version, ',' order by version) from schema_migrations"),
        "20240101000000,20240102000000"
    );
    let said = dbmate(&p, &["status"]);
    assert!(
        said.contains("Applied: 2") && said.contains("Pending: 0"),
        "{said}"
    );

    // dbmate rolls back what ballast applied; ballast sees it and applies it again.
    dbmate(&p, &["rollback"]);
    assert_eq!(p.sql("select to_regclass('shop_name') is null"), "t");
    let status = p.ballast(&["status"]);
    assert!(
        status.stdout().contains("1 applied, 1 pending"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);

    // ballast rolls back; dbmate sees it pending.
    p.ballast(&["--yes", "run", "rollback"]).expect_code(0);
    let said = dbmate(&p, &["status"]);
    assert!(
        said.contains("Applied: 1") && said.contains("Pending: 1"),
        "{said}"
    );
    assert_eq!(p.sql("select to_regclass('shop_name') is null"), "t");
}

#[test]
fn on_an_empty_database_a_dbmate_folder_gets_dbmates_ledger_and_only_its_up_sections_run() {
    let p = Project::new();
    p.migration("20240101000000_shop.sql", DBMATE_ONE);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // The file as one migration would have dropped the table right after creating it.
    assert!(p.table_exists("public.shop"));
    assert_eq!(
        p.sql("select version from schema_migrations"),
        "20240101000000"
    );
    let said = dbmate(&p, &["status"]);
    assert!(
        said.contains("Applied: 1") && said.contains("Pending: 0"),
        "{said}"
    );
    // ballast's own record of which run applied it stays beside the tool's ledger.
    assert_eq!(p.sql("select count(*) from ballast_migrations"), "1");
}

/// `_sqlx_migrations` as sqlx-cli creates it, with `files` applied by "sqlx": each
/// file's SQL run and its row written with sqlx's checksum (SHA-384 of the bytes).
fn migrated_by_sqlx(p: &Project, files: &[(&str, &str)]) {
    p.sql(
        "create table _sqlx_migrations (version bigint primary key, description text not null, \
         installed_on timestamptz not null default now(), success boolean not null, \
         checksum bytea not null, execution_time bigint not null)",
    );
    for (file, sql) in files {
        p.migration(file, sql);
        p.sql(sql);
        let (version, rest) = file.split_once('_').unwrap();
        let description = rest.trim_end_matches(".sql").replace('_', " ");
        let checksum = hex::encode(Sha384::digest(sql.as_bytes()));
        p.sql(&format!(
            "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
             values ({version}, '{description}', true, '\\x{checksum}', 1000)"
        ));
    }
}

#[test]
fn a_database_sqlx_migrated_is_deployed_from_its_ledger_and_written_as_sqlx_writes_it() {
    let p = Project::new();
    migrated_by_sqlx(&p, &[("1_create_a.sql", "create table a (id int);\n")]);
    let b = "create table b (id int);\n";
    p.migration("2_create_b.sql", b);

    let status = p.ballast(&["status"]);
    let out = status.stdout();
    assert!(out.contains("1 applied, 1 pending"), "{out}");
    assert!(
        out.contains("sqlx's ledger public._sqlx_migrations (found in the database)"),
        "{out}"
    );

    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.b"));
    assert_eq!(
        p.sql("select description || ' ' || success || ' ' || encode(checksum, 'hex') || ' ' || (execution_time >= 0) from _sqlx_migrations where version = 2"),
        format!("create b true {} true", hex::encode(Sha384::digest(b.as_bytes())))
    );
    p.ballast(&["status"]).expect_code(0);

    // sqlx's checksum is over the file's bytes: an edit is drift, in sqlx's terms.
    p.migration("1_create_a.sql", "create table a (id bigint);\n");
    let status = p.ballast(&["status"]);
    status.expect_code(1);
    assert!(
        status.stdout().contains("drift: migration 1_create_a"),
        "{}",
        status.stdout()
    );
    p.migration("1_create_a.sql", "create table a (id int);\n");

    // A row whose file is gone: named as sqlx describes it.
    p.sql("insert into _sqlx_migrations values (9, 'gone away', now(), true, '\\x00', 1)");
    let status = p.ballast(&["status"]);
    status.expect_code(1);
    assert!(
        status
            .stdout()
            .contains("unknown version: 9_gone_away is applied in the database"),
        "{}",
        status.stdout()
    );
    p.sql("delete from _sqlx_migrations where version = 9");

    // A row sqlx left for a migration that failed: sqlx calls the database dirty.
    p.sql("insert into _sqlx_migrations values (3, 'c', now(), false, '\\x00', -1)");
    p.migration("3_c.sql", "create table c (id int);\n");
    p.migration("4_d.sql", "create table d (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout()
            .contains("says migration 3 failed (success = false)"),
        "{}",
        run.stdout()
    );
    assert!(!p.table_exists("public.d"));
}

#[test]
fn a_sqlx_rollback_by_ballast_deletes_sqlxs_row() {
    let p = Project::new();
    p.write_config("[migrations]\nledger = \"sqlx\"\n");
    p.migration("1_a.up.sql", "create table a (id int);\n")
        .migration("1_a.down.sql", "drop table a;\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.sql("select count(*) from _sqlx_migrations"), "1");
    p.ballast(&["--yes", "run", "rollback"]).expect_code(0);
    assert_eq!(p.sql("select count(*) from _sqlx_migrations"), "0");
    assert!(!p.table_exists("public.a"));
}

#[test]
fn ledgers_ballast_cannot_trust_stop_the_run_before_anything_changes() {
    // Two tools' ledgers: which one is true?
    let p = Project::new();
    migrated_by_sqlx(&p, &[("1_a.sql", "create table a (id int);\n")]);
    p.sql("create table schema_migrations (version varchar primary key)");
    p.migration("2_b.sql", "create table b (id int);\n");
    // status refuses as deploy does (exit 3: the database, not the settings).
    p.ballast(&["status"]).expect_code(3);
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("_sqlx_migrations")
            && run.stdout().contains("public.schema_migrations"),
        "{}",
        run.stdout()
    );
    assert!(!p.table_exists("public.b"));

    // A ledger the role may not read: the GRANT that fixes it.
    let p = Project::new();
    migrated_by_sqlx(&p, &[("1_a.sql", "create table a (id int);\n")]);
    let role = format!("r_{}", p.db);
    p.sql(&format!(
        "create role {role} login; grant usage, create on schema public to {role}; revoke all on _sqlx_migrations from {role}"
    ));
    let url = p.url.replace("postgres@", &format!("{role}@"));
    let run = p.ballast_with(&["status"], &[("BALLAST_DATABASE__URL", url.as_str())]);
    assert!(
        run.all().contains(&format!(
            "GRANT SELECT ON \"public\".\"_sqlx_migrations\" TO {role}"
        )),
        "{}",
        run.all()
    );

    // ledger = "sqlx" set on a database ballast's own ledger already tracks.
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.write_config("[migrations]\nledger = \"sqlx\"\n");
    p.migration("2_b.sql", "create table b (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("would run them all again"),
        "{}",
        run.stdout()
    );
    assert!(!p.table_exists("public.b"));
}

#[test]
fn folders_no_tool_would_read_are_refused_with_the_files_named() {
    // dbmate files beside a plain one: dbmate would refuse the plain one.
    let p = Project::new();
    p.migration("20240101000000_shop.sql", DBMATE_ONE)
        .migration("20240102000000_plain.sql", "create table plain (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    assert!(
        run.all().contains("20240102000000_plain.sql") && run.all().contains("-- migrate:up"),
        "{}",
        run.all()
    );
    assert!(!p.table_exists("public.shop"));

    // A dbmate file whose statements come before its up section.
    let p = Project::new();
    p.migration(
        "20240101000000_shop.sql",
        "create table early (id int);\n-- migrate:up\ncreate table shop (id int);\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    assert!(
        run.all().contains("line 1") && run.all().contains("before `-- migrate:up`"),
        "{}",
        run.all()
    );

    // A version sqlx could not keep: refused before anything runs.
    let p = Project::new();
    p.write_config("[migrations]\nledger = \"sqlx\"\n");
    p.migration(
        "99999999999999999999_big.sql",
        "-- no-transaction\ncreate table big (id int);\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    assert!(run.all().contains("64-bit integers"), "{}", run.all());
    assert!(!p.table_exists("public.big"));

    // The ledger found is dbmate's, the files are not.
    let p = Project::new();
    p.sql("create table schema_migrations (version varchar primary key)");
    p.migration("1_a.sql", "create table a (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    assert!(run.all().contains("layout = \"dbmate\""), "{}", run.all());
    assert!(!p.table_exists("public.a"));
}

#[test]
fn a_diesel_folder_keeps_diesels_ledger_as_diesel_writes_it() {
    // "Migrated by diesel": its table and row, as diesel's migration harness has them.
    let p = Project::new();
    p.sql(
        "create table __diesel_schema_migrations (version varchar(50) primary key not null, \
         run_on timestamp not null default current_timestamp); \
         create table a (id int); insert into __diesel_schema_migrations (version) values ('20190101000000')",
    );
    p.migration(
        "2019-01-01-000000_create_a/up.sql",
        "create table a (id int);\n",
    )
    .migration("2019-01-01-000000_create_a/down.sql", "drop table a;\n")
    .migration(
        "2019-01-02-000000_create_b/up.sql",
        "create table b (id int);\n",
    )
    .migration("2019-01-02-000000_create_b/down.sql", "drop table b;\n");
    let status = p.ballast(&["status"]);
    assert!(
        status.stdout().contains("1 applied, 1 pending")
            && status
                .stdout()
                .contains("diesel's ledger public.__diesel_schema_migrations"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(version, ',' order by version) from __diesel_schema_migrations where run_on is not null"),
        "20190101000000,20190102000000",
        "diesel's version: the folder's prefix without its dashes"
    );
    p.ballast(&["--yes", "run", "rollback"]).expect_code(0);
    assert_eq!(
        p.sql("select count(*) from __diesel_schema_migrations"),
        "1"
    );
    assert!(!p.table_exists("public.b"));
}

#[test]
fn the_recovery_ladder_undoes_a_dbmate_deploy_in_dbmates_ledger() {
    let p = Project::new();
    p.migration("20240101000000_shop.sql", DBMATE_ONE);
    dbmate(&p, &["up"]);
    p.migration("20240102000000_shop_name.sql", DBMATE_TWO).migration(
        "20240103000000_orders.sql",
        "-- migrate:up\ncreate table orders (id bigint primary key);\n-- migrate:down\ndrop table orders;\n",
    );
    p.write_config("[[verify.checks]]\nname = \"orders has a row\"\nsql = \"select count(*) > 0 from orders\"\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("downgrade (recovery)"), "{out}");
    assert!(out.contains("back where the run started"), "{out}");
    assert_eq!(
        p.sql("select string_agg(version, ',') from schema_migrations"),
        "20240101000000"
    );
    assert!(!p.table_exists("public.orders"));
    let said = dbmate(&p, &["status"]);
    assert!(
        said.contains("Applied: 1") && said.contains("Pending: 2"),
        "{said}"
    );
}

#[test]
fn init_writes_down_the_folder_layout_and_ledger_it_finds_and_never_overwrites() {
    let p = Project::new();
    std::fs::remove_file(p.path().join("deploy.toml")).unwrap();
    let folder = p.path().join("db/migrations");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("20240101000000_shop.sql"), DBMATE_ONE).unwrap();
    p.sql("create table schema_migrations (version varchar primary key); insert into schema_migrations values ('20240101000000'); create table shop (id bigint primary key, name text)");
    std::fs::write(folder.join("20240102000000_shop_name.sql"), DBMATE_TWO).unwrap();

    let init = p.ballast(&["init", "--url", &p.url]);
    init.expect_code(0);
    let out = init.stdout();
    assert!(
        out.contains("found 2 migration(s) in db/migrations/, dbmate layout"),
        "{out}"
    );
    assert!(
        out.contains("found dbmate's ledger in the database (1 row(s))"),
        "{out}"
    );
    let written = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    for line in [
        "dir = \"db/migrations\"",
        "layout = \"dbmate\"",
        "ledger = \"dbmate\"",
    ] {
        assert!(written.contains(line), "{line} missing from:\n{written}");
    }
    // The file it wrote works as it is.
    let status = p.ballast(&["status"]);
    assert!(
        status.stdout().contains("1 applied, 1 pending"),
        "{}",
        status.all()
    );

    let again = p.ballast(&["init", "--url", &p.url]);
    again.expect_code(2);
    assert!(
        again.stderr().contains("never overwrites"),
        "{}",
        again.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(p.path().join("deploy.toml")).unwrap(),
        written
    );
}

/// golang-migrate's table as its postgres driver creates it, at `version`.
pub(crate) fn migrated_by_golang_migrate(p: &Project, version: i64, dirty: bool) {
    p.sql(&format!(
        "create table schema_migrations (version bigint not null primary key, dirty boolean not null); \
         insert into schema_migrations values ({version}, {dirty})"
    ));
}

#[test]
fn a_database_golang_migrate_migrated_is_deployed_file_by_file_as_written() {
    let p = Project::new();
    p.migration("1_a.up.sql", "create table a (id int);\n")
        .migration("1_a.down.sql", "drop table a;\n")
        // As golang-migrate users write them: several statements, and a statement
        // that cannot run in a transaction, neither marked for ballast.
        .migration(
            "2_b.up.sql",
            "create table b (id int);\ninsert into b values (1);\n",
        )
        .migration("2_b.down.sql", "drop table b;\n")
        .migration(
            "3_b_id.up.sql",
            "create index concurrently b_id on b (id);\n",
        )
        .migration("3_b_id.down.sql", "drop index concurrently b_id;\n");
    p.sql("create table a (id int)");
    migrated_by_golang_migrate(&p, 1, false);

    let status = p.ballast(&["status"]);
    let out = status.stdout();
    assert!(out.contains("1 applied, 2 pending"), "{out}");
    assert!(
        out.contains("files: golang-migrate layout")
            && out.contains(
                "golang-migrate's ledger public.schema_migrations (found in the database)"
            ),
        "{out}"
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.sql("select count(*) from b"), "1");
    assert_eq!(p.sql("select to_regclass('b_id') is not null"), "t");
    // One row, the current version, clean: what golang-migrate's `version` prints.
    assert_eq!(
        p.sql("select string_agg(version || ' ' || dirty, ',') from schema_migrations"),
        "3 false"
    );

    p.ballast(&["--yes", "run", "rollback"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(version || ' ' || dirty, ',') from schema_migrations"),
        "2 false"
    );
    assert_eq!(p.sql("select to_regclass('b_id') is null"), "t");

    // A file wrapped in its own transaction, as golang-migrate's docs advise: it runs
    // in ballast's transaction, the same atomic unit; a failure in it leaves nothing.
    p.migration(
        "4_c.up.sql",
        "BEGIN;\ncreate table c (id int);\ninsert into c values (1);\nCOMMIT;\n",
    )
    .migration(
        "5_d.up.sql",
        "BEGIN;\ncreate table d (id int);\ninsert into missing values (1);\nCOMMIT;\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    assert!(
        run.all().contains("5_d.up.sql, line 3"),
        "the line in the file: {}",
        run.all()
    );
    assert!(!p.table_exists("public.c") && !p.table_exists("public.d"));
    p.migration("5_d.up.sql", "BEGIN;\ncreate table d (id int);\nCOMMIT;\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.sql("select count(*) from c"), "1");
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "5 false"
    );

    // One that commits half-way: refused, with the statement named.
    p.migration(
        "6_e.up.sql",
        "BEGIN;\ncreate table e (id int);\nCOMMIT;\ncreate table f (id int);\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    assert!(
        run.all().contains("6_e.up.sql, line 1: `BEGIN"),
        "{}",
        run.all()
    );
    assert!(!p.table_exists("public.e"));
}

#[test]
fn a_dirty_golang_migrate_version_is_explained_and_nothing_runs() {
    let p = Project::new();
    p.migration("1_a.up.sql", "create table a (id int);\n")
        .migration("2_b.up.sql", "create table b (id int);\n")
        .migration("3_c.up.sql", "create table c (id int);\n");
    p.sql("create table a (id int)");
    migrated_by_golang_migrate(&p, 2, true);
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    let out = run.stdout();
    assert!(
        out.contains("says version 2 is dirty: a migration stopped half-way"),
        "{out}"
    );
    assert!(
        out.contains("force 2` if it is now complete") && out.contains("force 1` if you undid it"),
        "{out}"
    );
    assert!(!p.table_exists("public.c"));
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "2 true"
    );
}

#[test]
fn a_golang_migrate_file_that_fails_at_once_leaves_the_version_clean() {
    let p = Project::new();
    p.migration("1_a.up.sql", "create table a (id int);\n")
        .migration(
            "2_idx.up.sql",
            "create index concurrently idx on missing (id);\n",
        );
    p.sql("create table a (id int)");
    migrated_by_golang_migrate(&p, 1, false);
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    // It was marked dirty before it ran; nothing of it ran, so the mark is gone.
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "1 false"
    );
    p.ballast(&["status"]).expect_code(1);
}

#[test]
fn a_new_database_of_a_golang_migrate_project_gets_golang_migrates_table() {
    let p = Project::new();
    p.write_config("[migrations]\nlayout = \"golang-migrate\"\n");
    p.migration("1_a.up.sql", "create table a (id int);\n")
        .migration("1_a.down.sql", "drop table a;\n")
        .migration("2_b.up.sql", "create table b (id int);\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "2 false"
    );
    assert_eq!(
        p.sql("select data_type from information_schema.columns where table_name = 'schema_migrations' and column_name = 'version'"),
        "bigint"
    );
}

#[test]
fn a_schema_with_tables_and_no_ledger_is_never_migrated_blindly_and_baseline_adopts_it() {
    let p = Project::new();
    // Built by migration 1, by some other means; nothing recorded it.
    p.sql("create table a (id int); insert into a values (1)");
    p.migration("1_a.sql", "create table a (id int);\n")
        .migration("2_b.sql", "create table b (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    let out = run.stdout();
    assert!(
        out.contains("1 table(s) (a) but no ledger in schema public"),
        "{out}"
    );
    assert!(
        out.contains("ballast baseline VERSION") && out.contains("ballast baseline none"),
        "{out}"
    );
    assert!(!p.table_exists("public.b"));
    p.ballast(&["status"]).expect_code(1);

    // Asks first; no terminal and no --yes: nothing recorded.
    let asked = p.ballast(&["baseline", "1"]);
    asked.expect_code(3);
    assert!(asked.stdout().contains("pass --yes"), "{}", asked.stdout());
    assert!(!p.table_exists("public.ballast_migrations"));
    // A version that is no file.
    let wrong = p.ballast(&["--yes", "baseline", "7"]);
    wrong.expect_code(2);
    assert!(
        wrong.stdout().contains("no migration 7 among the files"),
        "{}",
        wrong.stdout()
    );

    let baseline = p.ballast(&["--yes", "baseline", "1"]);
    baseline.expect_code(0);
    assert!(
        baseline
            .stdout()
            .contains("records the 1 migration(s) up to 1_a as applied; none was run"),
        "{}",
        baseline.stdout()
    );
    assert_eq!(p.ledger_versions(), ["1"]);
    assert_eq!(p.sql("select count(*) from a"), "1", "nothing ran");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.b"));
    assert_eq!(p.ledger_versions(), ["1", "2"]);
    // Journaled like any run; and only once.
    assert!(p.ballast(&["history"]).stdout().contains(" baseline "));
    let again = p.ballast(&["--yes", "baseline", "none"]);
    again.expect_code(3);
    assert!(
        again
            .stdout()
            .contains("already records 2 applied migration(s)"),
        "{}",
        again.stdout()
    );
}

#[test]
fn baseline_writes_the_ledger_the_folders_tool_keeps() {
    let p = Project::new();
    p.migration("20240101000000_shop.sql", DBMATE_ONE)
        .migration("20240102000000_shop_name.sql", DBMATE_TWO);
    p.sql("create table shop (id bigint primary key, name text)");
    p.ballast(&["--yes", "deploy"]).expect_code(3);
    p.ballast(&["--yes", "baseline", "20240101000000"])
        .expect_code(0);
    let said = dbmate(&p, &["status"]);
    assert!(
        said.contains("Applied: 1") && said.contains("Pending: 1"),
        "{said}"
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let said = dbmate(&p, &["status"]);
    assert!(
        said.contains("Applied: 2") && said.contains("Pending: 0"),
        "{said}"
    );
}

#[test]
fn tables_in_the_search_path_count_when_ballasts_own_schema_is_elsewhere() {
    let p = Project::new();
    p.write_config("schema = \"ballast\"\n");
    p.sql("create table a (id int)");
    p.migration("1_a.sql", "create table a (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout()
            .contains("1 table(s) (public.a) but no ledger in schema ballast"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_tools_ledger_is_kept_where_the_tool_keeps_it_when_ballasts_schema_is_elsewhere() {
    // sqlx-cli wrote public._sqlx_migrations (the search path's first schema); ballast
    // keeps its own tables in schema ballast.
    let p = Project::new();
    migrated_by_sqlx(&p, &[("1_a.sql", "create table a (id int);\n")]);
    p.write_config("schema = \"ballast\"\n");
    p.migration("2_b.sql", "create table b (id int);\n");
    let status = p.ballast(&["status"]);
    assert!(
        status.stdout().contains("1 applied, 1 pending")
            && status
                .stdout()
                .contains("sqlx's ledger public._sqlx_migrations (found in the database)"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql(
            "select string_agg(version::text, ',' order by version) from public._sqlx_migrations"
        ),
        "1,2"
    );
    assert_eq!(
        p.sql("select to_regclass('ballast._sqlx_migrations') is null"),
        "t"
    );
    assert_eq!(
        p.sql("select count(*) from ballast.ballast_migrations"),
        "1"
    );

    // A new database of a diesel project: diesel's table where diesel would make it.
    let p = Project::new();
    p.write_config("schema = \"ballast\"\n");
    p.migration("2024-01-01-000000_a/up.sql", "create table a (id int);\n")
        .migration("2024-01-01-000000_a/down.sql", "drop table a;\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select version from public.__diesel_schema_migrations"),
        "20240101000000"
    );
    p.ballast(&["--yes", "run", "rollback"]).expect_code(0);
    assert_eq!(
        p.sql("select count(*) from public.__diesel_schema_migrations"),
        "0"
    );
}

#[test]
fn an_empty_tool_table_beside_ballasts_ledger_is_refused_not_read_as_nothing_applied() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // Another framework's empty table of the same name (Rails keeps one like dbmate's).
    p.sql("create table schema_migrations (version varchar primary key)");
    p.migration("2_b.sql", "create table b (id int);\n");
    for args in [&["status"][..], &["--yes", "deploy"][..]] {
        let run = p.ballast(args);
        run.expect_code(3);
        assert!(
            run.all().contains("public.schema_migrations")
                && run.all().contains("is empty while ballast's own ledger")
                && run.all().contains("ledger = \"ballast\""),
            "{}",
            run.all()
        );
    }
    assert!(!p.table_exists("public.b"));
    p.write_config("[migrations]\nledger = \"ballast\"\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.b"));
}

#[test]
fn a_first_deploy_that_rolled_back_keeps_the_folders_tool_ledger_for_the_next() {
    let p = Project::new();
    p.migration("2024-01-01-000000_a/up.sql", "create table a (id int);\n")
        .migration("2024-01-01-000000_a/down.sql", "drop table a;\n")
        .migration(
            "2024-01-02-000000_b/up.sql",
            "create table b (id int);\ninsert into nope values (1);\n",
        )
        .migration("2024-01-02-000000_b/down.sql", "drop table b;\n");
    p.ballast(&["--yes", "deploy"]).expect_code(1);
    // ballast's own tables stay (made before the batch), the batch rolled back.
    assert!(p.table_exists("public.ballast_migrations"));
    assert!(!p.table_exists("public.a"));
    p.migration("2024-01-02-000000_b/up.sql", "create table b (id int);\n");
    let status = p.ballast(&["status"]);
    assert!(
        status
            .stdout()
            .contains("diesel's ledger public.__diesel_schema_migrations"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select count(*) from __diesel_schema_migrations"),
        "2"
    );
}

#[test]
fn a_role_that_can_read_but_not_write_the_tools_ledger_is_refused_with_the_grant_it_lacks() {
    let p = Project::new();
    migrated_by_sqlx(&p, &[("1_a.sql", "create table a (id int);\n")]);
    p.migration("2_b.sql", "create table b (id int);\n");
    p.ballast(&["status"]).expect_code(1);
    let role = format!("w_{}", p.db);
    p.sql(&format!(
        "create role {role} login; grant usage, create on schema public to {role}; \
         grant select on all tables in schema public to {role}"
    ));
    let url = p.url.replace("postgres@", &format!("{role}@"));
    let run = p.ballast_with(
        &["--yes", "deploy"],
        &[("BALLAST_DATABASE__URL", url.as_str())],
    );
    run.expect_code(3);
    assert!(
        run.all().contains(&format!(
            "GRANT INSERT, DELETE ON \"public\".\"_sqlx_migrations\" TO {role}"
        )),
        "{}",
        run.all()
    );
    assert!(!p.table_exists("public.b"));
}

#[test]
fn dbmates_and_golang_migrates_tables_are_never_written_as_the_other() {
    let p = Project::new();
    p.write_config("[migrations]\nledger = \"dbmate\"\n");
    p.migration(
        "20240101000000_a.sql",
        "-- migrate:up\ncreate table a (id int);\n-- migrate:down\ndrop table a;\n",
    );
    migrated_by_golang_migrate(&p, 20240101000000, false);
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    assert!(
        run.all().contains("is golang-migrate's ledger")
            && run.all().contains("ledger = \"golang-migrate\""),
        "{}",
        run.all()
    );
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "20240101000000 false"
    );

    // A dbmate file without a down section: dbmate 2.x refuses it, so does ballast.
    let p = Project::new();
    p.migration(
        "20240101000000_a.sql",
        "-- migrate:up\ncreate table a (id int);\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    assert!(
        run.all().contains("no `-- migrate:down` line"),
        "{}",
        run.all()
    );
    assert!(!p.table_exists("public.a"));
}

#[test]
fn a_golang_migrate_down_outside_a_transaction_marks_the_version_it_goes_back_to_dirty() {
    let p = Project::new();
    p.migration("1_a.up.sql", "create table a (id int);\n")
        .migration("1_a.down.sql", "drop table a;\n")
        .migration(
            "2_idx.up.sql",
            "create index concurrently a_id on a (id);\ncreate index concurrently a_id2 on a (id);\n",
        )
        // The second statement fails: golang-migrate leaves version 1 dirty.
        .migration(
            "2_idx.down.sql",
            "drop index concurrently a_id;\ndrop index concurrently missing_idx;\n",
        );
    p.write_config("[migrations]\nlayout = \"golang-migrate\"\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "2 false"
    );
    let run = p.ballast(&["--yes", "run", "rollback"]);
    assert_ne!(run.code(), 0, "{}", run.all());
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "1 true",
        "{}",
        run.all()
    );
    let status = p.ballast(&["status"]);
    assert!(
        status.all().contains("version 1 is dirty") && status.all().contains("force 1"),
        "{}",
        status.all()
    );

    // A down whose first statement fails changed nothing: the version stays clean.
    let p = Project::new();
    p.migration("1_a.up.sql", "create table a (id int);\n")
        .migration("1_a.down.sql", "drop table a;\n")
        .migration(
            "2_idx.up.sql",
            "create index concurrently a_id on a (id);\n",
        )
        .migration("2_idx.down.sql", "drop index concurrently missing_idx;\n");
    p.write_config("[migrations]\nlayout = \"golang-migrate\"\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let run = p.ballast(&["--yes", "run", "rollback"]);
    assert_ne!(run.code(), 0, "{}", run.all());
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "2 false"
    );
    // And a down that runs through leaves version 1, clean.
    p.migration("2_idx.down.sql", "drop index concurrently a_id;\n");
    p.ballast(&["--yes", "run", "rollback"]).expect_code(0);
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "1 false"
    );

    // A down to no version at all that stops half-way: golang-migrate's (-1, dirty),
    // said as such (not as migration 1), with both ways out.
    let p = Project::new();
    p.write_config("[migrations]\nlayout = \"golang-migrate\"\n");
    p.migration("1_idx.up.sql", "create table a (id int);\n")
        .migration(
            "1_idx.down.sql",
            "-- no-transaction\ndrop table a;\ndrop index concurrently missing_idx;\n",
        );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let run = p.ballast(&["--yes", "run", "rollback"]);
    assert_ne!(run.code(), 0, "{}", run.all());
    assert_eq!(
        p.sql("select version || ' ' || dirty from schema_migrations"),
        "-1 true"
    );
    let status = p.ballast(&["status"]);
    assert!(
        status
            .all()
            .contains("says no version is applied, and dirty")
            && status
                .all()
                .contains("force -1` once you have finished the down")
            && status.all().contains("or `force 1` once you have put back")
            && !status.all().contains("unknown version"),
        "{}",
        status.all()
    );
}

#[test]
fn a_diesel_folder_runs_in_diesels_text_order_and_a_later_file_is_not_out_of_order() {
    let p = Project::new();
    // Text order (diesel's): 202601010000000000 < 20260120162913 < 20260301000000;
    // as numbers, the 18-digit version would be the newest.
    p.migration(
        "2026-01-01-000000-0000_a/up.sql",
        "create table a (id int);\n",
    )
    .migration("2026-01-01-000000-0000_a/down.sql", "drop table a;\n")
    .migration(
        "20260120162913_b/up.sql",
        "alter table a add column b int;\n",
    )
    .migration(
        "20260120162913_b/down.sql",
        "alter table a drop column b;\n",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.migration(
        "20260301000000_c/up.sql",
        "alter table a add column c int;\n",
    )
    .migration(
        "20260301000000_c/down.sql",
        "alter table a drop column c;\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(!run.all().contains("out of order"), "{}", run.all());
    // Back one step undoes the newest in diesel's order: c, then b.
    p.downgrade_pipeline("back", Some("-1"), false);
    p.ballast(&["--yes", "run", "back"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(version, ',' order by version) from __diesel_schema_migrations"),
        "202601010000000000,20260120162913"
    );
}

#[test]
fn a_late_merged_migration_is_applied_where_the_tool_would_apply_it_and_refused_where_not() {
    // sqlx runs every pending file, older ones too: so does ballast with its ledger.
    let p = Project::new();
    migrated_by_sqlx(
        &p,
        &[
            ("1_a.sql", "create table a (id int);\n"),
            ("3_c.sql", "create table c (id int);\n"),
        ],
    );
    p.migration("2_b.sql", "create table b (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert!(
        run.all().contains(
            "out of order: 2_b is pending but older than the newest applied migration 3_c"
        ) && run.all().contains("sqlx applies such a migration too"),
        "{}",
        run.all()
    );
    assert!(p.table_exists("public.b"));

    // ballast's own ledger keeps one order: refused, with what works.
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);\n")
        .migration("3_c.sql", "create table c (id int);\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.migration("2_b.sql", "create table b (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.all().contains("out_of_order = \"apply\""),
        "{}",
        run.all()
    );
    assert!(!p.table_exists("public.b"));
    p.write_config("[migrations]\nout_of_order = \"apply\"\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.b"));
}

#[test]
fn what_ballast_wrote_beside_a_tools_ledger_never_outvotes_the_tool() {
    // dbmate rolls back everything ballast applied: its empty table is the truth.
    let p = Project::new();
    p.migration("20240101000000_shop.sql", DBMATE_ONE);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    dbmate(&p, &["rollback"]);
    let status = p.ballast(&["status"]);
    status.expect_code(1);
    assert!(
        status.stdout().contains("0 applied, 1 pending"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.shop"));

    // The tool's schema wiped (ballast's own tables elsewhere): everything is pending
    // again, never "all applied" from ballast's record.
    let p = Project::new();
    p.write_config("schema = \"ballast\"\n");
    p.migration("2024-01-01-000000_a/up.sql", "create table a (id int);\n")
        .migration("2024-01-01-000000_a/down.sql", "drop table a;\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("drop schema public cascade; create schema public");
    let status = p.ballast(&["status"]);
    assert!(
        status.stdout().contains("0 applied, 1 pending")
            && status
                .stdout()
                .contains("diesel's ledger public.__diesel_schema_migrations"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.a"));
}

#[test]
fn a_deploy_waits_for_the_tools_own_lock_and_never_migrates_beside_it() {
    let p = Project::new();
    migrated_by_sqlx(&p, &[("1_a.sql", "create table a (id int);\n")]);
    p.migration("2_b.sql", "create table b (id int);\n");
    // `sqlx migrate run` holds this while it migrates (sqlx-postgres's lock id).
    let key = 0x3d32_ad9e_i64 * crc32fast::hash(p.db.as_bytes()) as i64;
    let sqlx_running =
        crate::harness::Blocker::hold(&p.url, &format!("select pg_advisory_lock({key})"));
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.all().contains("application \"blocker\"")
            && run
                .all()
                .contains("the lock sqlx takes while it migrates this database is held by pid"),
        "{}",
        run.all()
    );
    assert!(!p.table_exists("public.b"));
    // "sqlx" finishes: its session ends (pg_sleep would not notice its client gone).
    drop(sqlx_running);
    p.sql("select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'blocker'");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.b"));
}
