//! Flyway projects: `V`/`U`/`R` files read as Flyway reads them, and its
//! `flyway_schema_history` written row for row as Flyway writes it.

use crate::harness::Project;

/// Flyway's checksum of a file: CRC32 over its lines without their line breaks, as a
/// signed integer (computed here apart from ballast's own code).
fn crc(text: &str) -> i32 {
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    crc32fast::hash(&bytes) as i32
}

const V1: &str = "create table shop (id bigint primary key, name text);\n";
const V1_1: &str = "alter table shop add column price numeric;\n";
const U1_1: &str = "alter table shop drop column price;\n";
const VIEW: &str = "create or replace view shop_names as select name from shop;\n";

/// A database Flyway baselined at version 1 (`flyway baseline`): its table `shop`, and a
/// history with only the BASELINE row.
fn baselined_at_1(p: &Project) {
    p.sql("create table shop (id bigint primary key, name text)");
    p.sql(
        "create table flyway_schema_history (installed_rank int not null primary key, version varchar(50), \
         description varchar(200) not null, type varchar(20) not null, script varchar(1000) not null, \
         checksum int, installed_by varchar(100) not null, installed_on timestamp not null default now(), \
         execution_time int not null, success boolean not null); \
         insert into flyway_schema_history values \
         (1, '1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', null, 'postgres', now(), 0, true)",
    );
}

fn history(p: &Project) -> String {
    p.sql(
        "select string_agg(concat_ws('|', installed_rank, coalesce(version, '-'), description, type, script, checksum, installed_by = current_user, success), E'\\n' order by installed_rank) from flyway_schema_history",
    )
}

#[test]
fn a_flyway_folder_is_deployed_and_its_history_written_as_flyway_writes_it() {
    let p = Project::new();
    p.migration("V1__create_shop.sql", V1)
        .migration("V1_1__add_price.sql", V1_1)
        .migration("U1_1__add_price.sql", U1_1)
        .migration("R__shop_names.sql", VIEW);
    let status = p.ballast(&["status"]);
    assert!(
        status.stdout().contains("0 applied, 3 pending")
            && status.stdout().contains("files: flyway layout")
            && status.stdout().contains(
                "flyway's ledger public.flyway_schema_history (no ledger in the database yet"
            ),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        history(&p),
        format!(
            "1|1|create shop|SQL|V1__create_shop.sql|{}|t|t\n\
             2|1.1|add price|SQL|V1_1__add_price.sql|{}|t|t\n\
             3|-|shop names|SQL|R__shop_names.sql|{}|t|t",
            crc(V1),
            crc(V1_1),
            crc(VIEW)
        )
    );
    assert_eq!(p.sql("select count(*) from shop_names"), "0");
    p.ballast(&["status"]).expect_code(0);

    // The repeatable migration changed: it runs again, after the versioned ones, and
    // gets a new row; the old row stays, as Flyway keeps it.
    let view2 = "create or replace view shop_names as select name, price from shop;\n";
    p.migration("R__shop_names.sql", view2);
    p.migration(
        "V2__add_stock.sql",
        "alter table shop add column stock int;\n",
    );
    let status = p.ballast(&["status"]);
    assert!(
        status
            .stdout()
            .contains("pending: 2_add_stock, R__shop_names"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(coalesce(version, script), ',' order by installed_rank) from flyway_schema_history where installed_rank > 3"),
        "2,R__shop_names.sql"
    );
    assert_eq!(
        p.sql("select checksum from flyway_schema_history where installed_rank = 5"),
        crc(view2).to_string()
    );
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'shop_names'"),
        "2"
    );

    // Undo files are the downs: back to 1.1 runs none (V2 and R__ have no undo file).
    p.downgrade_pipeline("back", Some("1.1"), false);
    let run = p.ballast(&["--yes", "run", "back"]);
    assert_ne!(run.code(), 0, "{}", run.all());
    assert!(run.all().contains("no down file"), "{}", run.all());
}

#[test]
fn an_undo_file_rolls_a_flyway_migration_back_and_its_row_goes() {
    let p = Project::new();
    p.migration("V1__create_shop.sql", V1)
        .migration("V1_1__add_price.sql", V1_1)
        .migration("U1_1__add_price.sql", U1_1);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.downgrade_pipeline("back", Some("1"), false);
    p.ballast(&["--yes", "run", "back"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(version, ',' order by installed_rank) from flyway_schema_history"),
        "1"
    );
    assert_eq!(
        p.sql("select count(*) from information_schema.columns where table_name = 'shop' and column_name = 'price'"),
        "0"
    );
    // Applied again: a new row, numbered after the last (as Flyway numbers them).
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(installed_rank || ':' || version, ',' order by installed_rank) from flyway_schema_history"),
        "1:1,2:1.1"
    );
}

#[test]
fn a_database_flyway_baselined_counts_what_is_below_the_baseline_as_applied() {
    let p = Project::new();
    baselined_at_1(&p);
    p.migration("V1__create_shop.sql", V1)
        .migration("V1_1__add_price.sql", V1_1);
    let status = p.ballast(&["status"]);
    assert!(
        status.stdout().contains("1 applied, 1 pending"),
        "{}",
        status.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(installed_rank || ':' || version || ':' || type, ',' order by installed_rank) from flyway_schema_history"),
        "1:1:BASELINE,2:1.1:SQL"
    );
}

#[test]
fn what_flyway_would_refuse_or_run_differently_is_refused_with_the_file_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "V1a__x.sql",
            "select 1;\n",
            "`1a` is no version Flyway reads",
        ),
        (
            "afterMigrate.sql",
            "select 1;\n",
            "Flyway runs it as a SQL callback (afterMigrate)",
        ),
        (
            "V2__grant.sql",
            "grant select on shop to ${reader};\n",
            "`${reader}` is a Flyway placeholder",
        ),
        (
            "V2__idx.sql",
            "set lock_timeout = '1s';\ncreate index concurrently shop_name on shop (name);\n",
            "Flyway refuses such a migration",
        ),
        ("2_plain.sql", "select 1;\n", "mixes flyway files"),
    ];
    for (file, sql, said) in cases {
        let p = Project::new();
        p.migration("V1__create_shop.sql", V1).migration(file, sql);
        let run = p.ballast(&["--yes", "deploy"]);
        run.expect_code(2);
        assert!(
            run.all().contains(said) && run.all().contains(file.trim_end_matches(".sql")),
            "{file}: {}",
            run.all()
        );
        assert!(!p.table_exists("public.shop"), "{file}: nothing ran");
    }
}

#[test]
fn a_flyway_migration_of_concurrent_statements_only_runs_outside_a_transaction() {
    let p = Project::new();
    p.migration("V1__create_shop.sql", V1).migration(
        "V2__idx.sql",
        "create index concurrently shop_name on shop (name);\n",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.sql("select to_regclass('shop_name') is not null"), "t");
    assert_eq!(
        p.sql("select string_agg(version, ',' order by installed_rank) from flyway_schema_history"),
        "1,2"
    );
    // A script configuration says so too, for statements PostgreSQL would allow.
    p.migration("V3__vacuum.sql", "insert into shop values (1, 'a');\n")
        .migration("V3__vacuum.sql.conf", "executeInTransaction=false\n");
    let plan = p.ballast(&["plan"]);
    assert!(
        plan.stdout()
            .contains("3_vacuum  (no transaction: runs alone, commits as it goes)"),
        "{}",
        plan.stdout()
    );
}

#[test]
fn a_failed_flyway_row_is_explained_with_the_repair_that_clears_it() {
    let p = Project::new();
    p.migration("V1__create_shop.sql", V1).migration(
        "V2__add_stock.sql",
        "alter table shop add column stock int;\n",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("update flyway_schema_history set success = false where version = '2'");
    p.migration("V3__more.sql", "select 1;\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("says migration 2 failed") && run.stdout().contains("flyway repair"),
        "{}",
        run.stdout()
    );
}

#[test]
fn the_recovery_ladder_undoes_a_flyway_deploy_with_its_undo_files() {
    let p = Project::new();
    p.migration("V1__create_shop.sql", V1);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.migration("V1_1__add_price.sql", V1_1)
        .migration("U1_1__add_price.sql", U1_1)
        .migration(
            "V2__idx.sql",
            "create index concurrently shop_name on shop (name);\n",
        )
        .migration("U2__idx.sql", "drop index concurrently shop_name;\n");
    p.write_config(
        "[[verify.checks]]\nname = \"shop has a row\"\nsql = \"select count(*) > 0 from shop\"\n",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("downgrade (recovery)") && out.contains("back where the run started"),
        "{out}"
    );
    assert_eq!(
        p.sql("select string_agg(version, ',' order by installed_rank) from flyway_schema_history"),
        "1"
    );
    assert_eq!(p.sql("select to_regclass('shop_name') is null"), "t");
}

#[test]
fn a_changed_or_missing_flyway_file_is_seen_in_flyways_own_checksums() {
    let p = Project::new();
    p.migration("V1__create_shop.sql", V1).migration(
        "V2__add_stock.sql",
        "alter table shop add column stock int;\n",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // Line endings are no change to Flyway, nor to ballast reading its ledger.
    p.migration("V1__create_shop.sql", &V1.replace('\n', "\r\n"));
    p.ballast(&["status"]).expect_code(0);
    // A changed statement is.
    p.migration(
        "V1__create_shop.sql",
        &V1.replace("name text", "name varchar"),
    );
    p.migration("V3__more.sql", "create table more (id int);\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout().contains("V1__create_shop.sql")
            && run.stdout().contains(&crc(V1).to_string()[..6]),
        "the checksum Flyway recorded: {}",
        run.stdout()
    );
    assert!(!p.table_exists("public.more"));
    // A row whose file is gone.
    p.migration("V1__create_shop.sql", V1);
    std::fs::remove_file(p.path().join("migrations/V2__add_stock.sql")).unwrap();
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(run.stdout().contains("2_add_stock"), "{}", run.stdout());
    assert!(!p.table_exists("public.more"));
}

#[test]
fn a_repeatable_migration_stays_through_a_downgrade_and_the_baseline_is_a_floor() {
    let p = Project::new();
    p.migration("V1__create_shop.sql", V1)
        .migration("V1_1__add_price.sql", V1_1)
        .migration("U1_1__add_price.sql", U1_1)
        .migration("R__shop_names.sql", VIEW)
        // Flyway reads `V2.sql` as version 2 with no description.
        .migration("V2.sql", "alter table shop add column stock int;\n")
        .migration("U2.sql", "alter table shop drop column stock;\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(coalesce(version, '-') || ':' || description, ',' order by installed_rank) from flyway_schema_history"),
        "1:create shop,1.1:add price,2:,-:shop names"
    );
    p.downgrade_pipeline("back", Some("1"), false);
    p.ballast(&["--yes", "run", "back"]).expect_code(0);
    assert_eq!(
        p.sql("select string_agg(coalesce(version, script), ',' order by installed_rank) from flyway_schema_history"),
        "1,R__shop_names.sql"
    );

    // Below Flyway's baseline nothing can be undone: Flyway never ran it.
    let p = Project::new();
    baselined_at_1(&p);
    p.migration("V1__create_shop.sql", V1)
        .migration("U1__create_shop.sql", "drop table shop;\n");
    p.downgrade_pipeline("back", Some("base"), false);
    let run = p.ballast(&["--yes", "run", "back"]);
    assert_ne!(run.code(), 0, "{}", run.all());
    assert!(
        run.all().contains("below Flyway's baseline"),
        "{}",
        run.all()
    );
    assert!(p.table_exists("public.shop"));
    assert_eq!(
        p.sql("select count(*) from flyway_schema_history where type = 'BASELINE'"),
        "1"
    );
}
