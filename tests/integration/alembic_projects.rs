//! Alembic projects as people write them, not as our fixture does: an env.py that
//! takes its URL from the ini instead of `DATABASE_URL`, a version table that is not
//! in ballast's schema, revisions that commit by themselves.

use crate::harness::{alembic_python, alembic_revision, alembic_version, Project, ALEMBIC_HEAD};

/// Rewrites the copied fixture's env.py as many projects have it: the URL from the
/// ini's `sqlalchemy.url` (here `url`), never from `DATABASE_URL`.
pub(crate) fn env_py_takes_the_ini_url(p: &Project, url: &str) {
    let env = p.path().join("app/alembic/env.py");
    let text = std::fs::read_to_string(&env).unwrap();
    let from_ini = "def database_url():\n    url = config.get_main_option(\"sqlalchemy.url\")\n    scheme, rest = url.split(\"://\", 1)";
    let replaced = text.replace(
        "def database_url():\n    url = os.environ[\"DATABASE_URL\"]\n    scheme, rest = url.split(\"://\", 1)",
        from_ini,
    );
    assert!(
        replaced.contains(from_ini),
        "the fixture's env.py changed shape"
    );
    std::fs::write(&env, replaced).unwrap();
    let ini = p.path().join("app/alembic.ini");
    let text = std::fs::read_to_string(&ini).unwrap();
    std::fs::write(
        &ini,
        text.replace(
            "prepend_sys_path = .\n",
            &format!("prepend_sys_path = .\nsqlalchemy.url = {url}\n"),
        ),
    )
    .unwrap();
}

/// deploy.toml for the fixture project with `[database]` and `[migrations]` lines of
/// the test's own (no `version_schema` unless given).
fn alembic_settings(p: &Project, database: &str, migrations: &str) {
    p.write_config(&format!(
        "{database}\n[migrations]\nengine = \"alembic\"\nalembic_ini = \"app/alembic.ini\"\npython = \"{}\"\n{migrations}\n",
        alembic_python().display()
    ));
}

pub(crate) fn marketplace_tables(p: &Project) -> String {
    p.sql("select count(*) from pg_tables where schemaname = 'marketplace'")
}

#[test]
fn an_env_py_that_connects_to_another_database_is_refused_before_anything_changes() {
    let p = Project::new();
    p.alembic();
    let other = Project::new();
    env_py_takes_the_ini_url(&p, &other.url);
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    let out = run.all();
    assert!(
        out.contains(&format!(
            "alembic's env.py connects to database `{}`",
            other.db
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "not to the database ballast backs up and checks (postgres://postgres@127.0.0.1:"
        ) && out.contains(&format!("/{}): alembic would change", p.db)),
        "the refusal names ballast's database too: {out}"
    );
    assert!(out.contains("DATABASE_URL"), "says what to change: {out}");
    // Refused by the upgrade, the first stage to run alembic (the backup of ours was
    // taken). The probe stopped env.py at its first connection: not even its `create
    // schema` ran in the other database; nothing ran in ours.
    assert!(out.contains("upgrade        refused"), "{out}");
    assert_eq!(
        other.sql("select count(*) from pg_namespace where nspname = 'marketplace'"),
        "0"
    );
    assert_eq!(marketplace_tables(&p), "0");
    // Every other Alembic child is held to the same proof.
    let stamp = p.ballast(&["--yes", "stamp", "head"]);
    stamp.expect_code(3);
    assert!(
        stamp.all().contains("connects to database"),
        "{}",
        stamp.all()
    );
}

#[test]
fn a_downgrade_through_an_env_py_that_connects_elsewhere_is_refused() {
    let p = Project::new();
    let versions = p.alembic();
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &["op.execute(\"create table marketplace.audit (id int)\")"],
        "op.execute(\"drop table marketplace.audit\")",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let other = Project::new();
    env_py_takes_the_ini_url(&p, &other.url);
    p.downgrade_pipeline("back", Some(ALEMBIC_HEAD), true);
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(3);
    assert!(
        run.all()
            .contains(&format!("connects to database `{}`", other.db)),
        "{}",
        run.all()
    );
    assert_eq!(alembic_version(&p), "a7000000000a");
    assert!(p.table_exists("marketplace.audit"));
}

#[test]
fn an_env_py_that_takes_the_ini_url_of_the_same_database_deploys() {
    let p = Project::new();
    p.alembic();
    // The same database, written another way, with an application name of its own.
    let same = format!("{}?application_name=shop-migrations", p.url);
    env_py_takes_the_ini_url(&p, &same);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(alembic_version(&p), ALEMBIC_HEAD);
}

#[test]
fn the_version_table_is_where_env_py_keeps_it_not_in_ballasts_schema() {
    let p = Project::new();
    p.alembic();
    // ballast's own tables in `ballast`; env.py keeps Alembic's in `marketplace`.
    alembic_settings(&p, "schema = \"ballast\"", "");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    assert_eq!(alembic_version(&p), ALEMBIC_HEAD);
    assert_eq!(
        p.sql("select count(*) from pg_tables where tablename = 'alembic_version'"),
        "1",
        "one version table, env.py's"
    );
    assert_eq!(
        p.sql("select count(*) from ballast.ballast_journal where status = 'succeeded'"),
        "1"
    );
    // The next deploy finds nothing to do, and status (which never runs env.py) finds
    // the same table.
    let again = p.ballast(&["--yes", "deploy"]);
    again.expect_code(0);
    assert!(
        again.stdout().contains("0 migrations pending"),
        "{}",
        again.stdout()
    );
    let status = p.ballast(&["status"]);
    status.expect_code(0);
    assert!(
        status.stdout().contains(ALEMBIC_HEAD),
        "{}",
        status.stdout()
    );
}

#[test]
fn a_version_schema_setting_that_disagrees_with_env_py_is_refused() {
    let p = Project::new();
    p.alembic();
    alembic_settings(
        &p,
        "schema = \"marketplace\"",
        "version_schema = \"public\"",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    let out = run.all();
    assert!(
        out.contains(
            "the project's env.py keeps Alembic's version table in marketplace.alembic_version"
        ),
        "{out}"
    );
    assert!(out.contains("version_schema = \"marketplace\""), "{out}");
    assert_eq!(marketplace_tables(&p), "0");
}

#[test]
fn a_revision_that_commits_by_itself_is_never_reported_as_nothing_committed() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // a7 commits the deploy transaction and builds an index outside any; b8 fails, and
    // its rollback takes the version table's a7 row with it: the index stays.
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &[
            "op.get_bind().commit()",
            "with op.get_context().autocommit_block():\n        op.execute(\"create index concurrently ix_sellers_name_a7 on marketplace.sellers (name)\")",
        ],
        "op.execute(\"drop index marketplace.ix_sellers_name_a7\")",
    );
    alembic_revision(
        &versions,
        "b8000000000b",
        "a7000000000a",
        &["op.execute(\"alter table marketplace.nope add column x int\")"],
        "pass",
    );
    p.on_failure(true, "auto");
    let run = p.ballast(&["--yes", "deploy"]);
    let out = run.all();
    assert!(!out.contains("nothing committed"), "{out}");
    assert!(!out.contains("rolled back (not applied)"), "{out}");
    assert!(
        out.contains("marketplace.alembic_version records none of them, but the schema is not as the upgrade found it"),
        "{out}"
    );
    assert!(
        out.contains("ix_sellers_name_a7"),
        "names the change: {out}"
    );
    // The ladder restored the backup: back where the run started, and said so.
    run.expect_code(1);
    assert_eq!(alembic_version(&p), ALEMBIC_HEAD);
    assert_eq!(
        p.sql("select count(*) from pg_indexes where indexname = 'ix_sellers_name_a7'"),
        "0"
    );
}

#[test]
fn an_empty_downgrade_the_revision_allows_does_not_block_a_rollback() {
    let p = Project::new();
    let versions = p.alembic();
    // A backfill: nothing to undo, and the file says so, as the lint's fix asks.
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &[
            "# ballast:allow missing-downgrade: a backfill has nothing to undo",
            "op.execute(\"update marketplace.sellers set name = name\")",
        ],
        "pass",
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(alembic_version(&p), "a7000000000a");
    p.downgrade_pipeline("back", Some(ALEMBIC_HEAD), true);
    let run = p.ballast(&["--yes", "run", "back"]);
    run.expect_code(0);
    assert_eq!(alembic_version(&p), ALEMBIC_HEAD);
    // Without the comment, the same empty downgrade is refused up front.
    let file = versions.join("a7000000000a_added.py");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("ballast:allow missing-downgrade", "nothing"),
    )
    .unwrap();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let refused = p.ballast(&["--yes", "run", "back"]);
    refused.expect_code(3);
    assert!(
        refused.all().contains("its downgrade() is empty"),
        "{}",
        refused.all()
    );
    assert_eq!(alembic_version(&p), "a7000000000a");
}

#[test]
fn a_script_location_that_is_a_package_named_alembic_does_not_shadow_the_library() {
    let p = Project::new();
    p.alembic();
    // alembic.ini beside a package `alembic/`: `python -m alembic`, or a probe with the
    // project's folder first on the path, would import it instead of the library.
    std::fs::write(p.path().join("app/alembic/__init__.py"), "").unwrap();
    let status = p.ballast(&["status"]);
    status.expect_code(1);
    assert!(status.stdout().contains("7 pending"), "{}", status.all());
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(alembic_version(&p), ALEMBIC_HEAD);
}

#[test]
fn a_revision_offline_mode_cannot_render_is_named_as_not_linted() {
    let p = Project::new();
    p.alembic();
    // f6, a data migration, reads rows: offline mode cannot render it.
    let said = "f6a0b1c2d3e4 (backfill seller slugs (data migration)) was not linted";
    for args in [&["check"][..], &["check", "--all"][..], &["plan"][..]] {
        let run = p.ballast(args);
        assert!(run.all().contains(said), "{args:?}: {}", run.all());
    }
    let json = p.ballast(&["--json", "check"]);
    let line = json
        .stdout()
        .lines()
        .find(|l| l.contains("not linted"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no JSON line names it: {}", json.stdout()));
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["check"]["status"], "warning", "{line}");
    assert!(
        value["check"]["detail"].as_str().unwrap().contains(said),
        "{line}"
    );
}

#[test]
fn ballasts_own_schema_is_not_taken_for_the_projects() {
    let p = Project::new();
    let versions = p.alembic();
    // env.py as the template has it: the version table in the default schema.
    let env = p.path().join("app/alembic/env.py");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, text.replace("version_table_schema=SCHEMA,", "")).unwrap();
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &["op.execute(\"create table notes (id bigint primary key)\")"],
        "op.execute(\"drop table notes\")",
    );
    // ballast's journal in `ballast`: no reason to want the project's tables there.
    alembic_settings(&p, "schema = \"ballast\"", "");
    let plan = p.ballast(&["plan"]);
    assert!(
        !plan.all().contains("require-schema-qualified"),
        "{}",
        plan.all()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert!(p.table_exists("public.notes"));
    assert_eq!(
        p.sql("select string_agg(version_num, '+') from public.alembic_version"),
        "a7000000000a"
    );
}

#[test]
fn what_an_unrenderable_revision_hands_op_execute_is_still_linted() {
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("insert into marketplace.sellers (name) values ('ada')");
    // It reads rows (offline mode stops there), and drops a column running code reads.
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &[
            "rows = op.get_bind().execute(sa.text(\"select id from marketplace.sellers\")).fetchall()",
            "op.execute(\"alter table marketplace.sellers drop column slug\")",
        ],
        "pass",
    );
    let check = p.ballast(&["check"]);
    let out = check.all();
    assert!(out.contains("ban-drop-column"), "{out}");
    assert!(
        out.contains("a7000000000a (added by a test a7000000000a) was linted only from the SQL its file hands op.execute()"),
        "{out}"
    );
    check.expect_code(1);
}

#[test]
fn an_env_py_that_falls_back_to_database_url_when_its_own_url_fails_is_still_refused() {
    let p = Project::new();
    p.alembic();
    let other = Project::new();
    env_py_takes_the_ini_url(&p, &other.url);
    // Its own URL first; DATABASE_URL only if that fails (as wait-for-db loops do). The
    // proof must not be fooled by the fallback it provoked: alembic on its own would
    // migrate `other`.
    let env = p.path().join("app/alembic/env.py");
    let text = std::fs::read_to_string(&env).unwrap();
    let fallback = text.replace(
        "    engine = create_engine(database_url(), poolclass=pool.NullPool)\n    with engine.connect() as connection:",
        "    engine = create_engine(database_url(), poolclass=pool.NullPool)\n    try:\n        engine.connect().close()\n    except Exception:\n        engine = create_engine(os.environ[\"DATABASE_URL\"].replace(\"postgres://\", \"postgresql+psycopg://\"), poolclass=pool.NullPool)\n    with engine.connect() as connection:",
    );
    assert_ne!(fallback, text, "the fixture's env.py changed shape");
    std::fs::write(&env, fallback).unwrap();
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.all()
            .contains(&format!("connects to database `{}`", other.db)),
        "{}",
        run.all()
    );
    assert_eq!(marketplace_tables(&p), "0");
    assert_eq!(
        other.sql("select count(*) from pg_namespace where nspname = 'marketplace'"),
        "0"
    );
}

#[test]
fn tables_in_the_default_schema_do_not_block_a_first_deploy_whose_version_table_is_elsewhere() {
    let p = Project::new();
    p.alembic();
    // An extension's table in public (PostGIS's spatial_ref_sys, say); env.py keeps its
    // version table in `marketplace`, which nothing in deploy.toml says.
    p.sql("create table public.spatial_ref_sys (srid int primary key)");
    alembic_settings(&p, "schema = \"ballast\"", "");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(alembic_version(&p), ALEMBIC_HEAD);
    // Tables where env.py keeps the version table, and no version table: still refused,
    // with the stamp advice, once env.py has said where that is.
    let q = Project::new();
    q.alembic();
    q.sql("create schema marketplace; create table marketplace.sellers (id bigint primary key, name text)");
    alembic_settings(&q, "schema = \"ballast\"", "");
    let run = q.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(run.all().contains("ballast stamp"), "{}", run.all());
    assert!(!q.table_exists("marketplace.alembic_version"));
}

#[test]
fn a_failed_revision_that_commits_by_itself_is_never_called_rolled_back() {
    let p = Project::new();
    let versions = p.alembic();
    crate::harness::alembic_per_migration(&p);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql("insert into marketplace.sellers (name) values ('ada')");
    // Its autocommit block updates rows (no schema change to see), then it fails.
    alembic_revision(
        &versions,
        "a7000000000a",
        ALEMBIC_HEAD,
        &[
            "with op.get_context().autocommit_block():\n        op.execute(\"update marketplace.sellers set name = upper(name)\")",
            "op.execute(\"alter table marketplace.nope add column x int\")",
        ],
        "pass",
    );
    p.on_failure(true, "auto");
    // The lint rightly says so (a half-done migration); deployed anyway, to fail.
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    let out = run.all();
    assert!(
        !out.contains("rolled back (not applied): a7000000000a"),
        "{out}"
    );
    assert!(
        out.contains("a7000000000a commits by itself (an autocommit block or commit()), so part of it may have committed"),
        "{out}"
    );
    // The restore rung brings the rows back as they were.
    run.expect_code(1);
    assert_eq!(p.sql("select name from marketplace.sellers"), "ada");
}

#[test]
fn a_stamp_nobody_confirmed_runs_no_env_py() {
    let p = Project::new();
    p.alembic();
    // The fixture's env.py creates its schema when it connects: asked and not answered
    // (no terminal, no --yes), nothing of it may run.
    let run = p.ballast(&["stamp", "head"]);
    run.expect_code(3);
    assert_eq!(
        p.sql("select count(*) from pg_namespace where nspname = 'marketplace'"),
        "0",
        "{}",
        run.all()
    );
}
