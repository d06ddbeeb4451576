//! Bad config is an error that names the file and the key, and changes nothing.

use crate::harness::Project;

#[test]
fn unknown_key_names_file_line_and_key() {
    let p = Project::new();
    p.write_config("[backup]\ndirr = \"x\"\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    let err = run.stderr();
    assert!(err.contains("deploy.toml") && err.contains("dirr"), "{err}");
    assert!(err.contains("line 8"), "{err}");
}

#[test]
fn wrong_type_names_the_key() {
    let p = Project::new();
    p.write_config("[migrations]\ndir = 5\n");
    let run = p.ballast(&["status"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("dir") && run.stderr().contains("invalid type"),
        "{}",
        run.stderr()
    );
}

#[test]
fn bad_duration_names_key_and_origin() {
    let p = Project::new();
    let run = p.ballast_with(&["status"], &[("BALLAST_DATABASE__LOCK_TIMEOUT", "5")]);
    run.expect_code(2);
    let err = run.stderr();
    assert!(
        err.contains("database.lock_timeout") && err.contains("BALLAST_DATABASE__LOCK_TIMEOUT"),
        "{err}"
    );
}

#[test]
fn unknown_environment_variable_is_named() {
    let p = Project::new();
    let run = p.ballast_with(&["status"], &[("BALLAST_DATABSE__URL", "postgres://x")]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("BALLAST_DATABSE__URL"),
        "{}",
        run.stderr()
    );
}

#[test]
fn missing_url_says_where_to_set_it() {
    let p = Project::new();
    std::fs::write(p.path().join("deploy.toml"), "[backup]\ndir = \"b\"\n").unwrap();
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("DATABASE_URL") && run.stderr().contains("database.url"),
        "{}",
        run.stderr()
    );
}

#[test]
fn layers_apply_in_order() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    // File says a missing folder; config/staging.toml fixes it; env beats both for backups.
    p.write_config("[migrations]\ndir = \"nowhere\"\n");
    std::fs::create_dir(p.path().join("config")).unwrap();
    std::fs::write(
        p.path().join("config/staging.toml"),
        "[migrations]\ndir = \"migrations\"\n[backup]\ndir = \"file-backups\"\n",
    )
    .unwrap();
    let env_dir = p.path().join("env-backups");
    let run = p.ballast_with(
        &["--yes", "--env", "staging", "deploy"],
        &[("BALLAST_BACKUP__DIR", env_dir.to_str().unwrap())],
    );
    run.expect_code(0);
    assert!(env_dir.join("journal.jsonl").is_file());
    assert!(!p.path().join("file-backups").exists());

    // DATABASE_URL is used when the file has none; BALLAST_DATABASE__URL beats it.
    std::fs::write(p.path().join("deploy.toml"), "").unwrap();
    let run = p.ballast_with(
        &["status"],
        &[
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("BALLAST_DATABASE__URL", &p.url),
        ],
    );
    run.expect_code(0);
}

#[test]
fn missing_env_overlay_is_an_error() {
    let p = Project::new();
    let run = p.ballast(&["--env", "prod", "status"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("config/prod.toml"),
        "{}",
        run.stderr()
    );
}

#[test]
fn deploy_works_with_config_from_another_folder() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let elsewhere = tempfile::tempdir().unwrap();
    let config = p.path().join("deploy.toml");
    let mut cmd = p.command(
        &["--yes", "--config", config.to_str().unwrap(), "deploy"],
        &[],
    );
    let out = cmd.current_dir(elsewhere.path()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(p.table_exists("public.a"));
    assert!(
        p.path().join("backups").is_dir(),
        "relative paths start at the config file's folder"
    );
}

#[test]
fn set_flags_are_the_top_layer_and_are_checked() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let flag_dir = p.path().join("flag-backups");
    let env_dir = p.path().join("env-backups");
    let set = format!("backup.dir={}", flag_dir.display());
    let run = p.ballast_with(
        &["--yes", "--set", &set, "deploy"],
        &[("BALLAST_BACKUP__DIR", env_dir.to_str().unwrap())],
    );
    run.expect_code(0);
    assert!(flag_dir.join("journal.jsonl").is_file() && !env_dir.exists());

    let run = p.ballast(&["--set", "database.lock_timeout=5", "status"]);
    run.expect_code(2);
    assert!(
        run.stderr()
            .contains("database.lock_timeout (from --set database.lock_timeout)"),
        "{}",
        run.stderr()
    );
    let run = p.ballast(&["--set", "database.lock_timout=5s", "status"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("--set database.lock_timout=5s")
            && run.stderr().contains("lock_timout"),
        "{}",
        run.stderr()
    );
    let run = p.ballast(&[
        "--set",
        "database.url=postgres://app:hunter2@db/x",
        "status",
    ]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("visible to every user") && !run.stderr().contains("hunter2"),
        "{}",
        run.stderr()
    );
}

#[test]
fn s3_settings_are_checked() {
    let p = Project::new();
    p.write_config("[backup.s3]\nprefix = \"x/\"\n");
    let run = p.ballast(&["backups"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("backup.s3.bucket") && run.stderr().contains("required"),
        "{}",
        run.stderr()
    );
    p.write_config("[backup.s3]\nbucket = \"b\"\nkms_key_id = \"k\"\n");
    let run = p.ballast(&["backups"]);
    run.expect_code(2);
    assert!(run.stderr().contains("aws:kms"), "{}", run.stderr());
    p.write_config("[backup.s3]\nbucket = \"b\"\naccess_key = \"AKIA...\"\n");
    let run = p.ballast(&["backups"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("access_key"),
        "credentials are not config: {}",
        run.stderr()
    );
}

#[test]
fn alembic_settings_are_checked() {
    let p = Project::new();
    p.write_config("[migrations]\nengine = \"flyway\"\n");
    let run = p.ballast(&["status"]);
    run.expect_code(2);
    assert!(run.stderr().contains("sql, alembic"), "{}", run.stderr());
    p.write_config("[migrations]\nengine = \"alembic\"\nversion_schema = \"market place\"\n");
    let run = p.ballast(&["status"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("migrations.version_schema"),
        "{}",
        run.stderr()
    );
}

#[test]
fn migrations_env_reaches_the_alembic_process_with_its_case() {
    let p = Project::new();
    p.alembic();
    let env_py = p.path().join("app/alembic/env.py");
    let text = std::fs::read_to_string(&env_py).unwrap();
    std::fs::write(
        &env_py,
        text.replacen(
            "config = context.config",
            "assert os.environ.get(\"SHOP_Marker\") == \"present\", \"SHOP_Marker is not set\"\nconfig = context.config",
            1,
        ),
    )
    .unwrap();
    // env.py fails before alembic could change anything: the proof of its connection
    // fails first, and the run is refused with env.py's own words.
    let refused = p.ballast(&["--yes", "deploy"]);
    refused.expect_code(3);
    assert!(
        refused.all().contains("SHOP_Marker is not set"),
        "{}",
        refused.all()
    );
    p.write_config(&crate::harness::alembic_config(
        "[migrations.env]\nSHOP_Marker = \"present\"\n",
    ));
    p.ballast(&["--yes", "deploy"]).expect_code(0);
}

#[test]
fn a_file_ballast_cannot_read_as_a_migration_is_a_config_error_for_every_command() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);")
        .migration("data_seed.sql", "insert into a values (1);");
    // The same exit code, whichever command meets it first; nothing changed.
    for args in [&["status"][..], &["--yes", "deploy"][..]] {
        let run = p.ballast(args);
        run.expect_code(2);
        assert!(
            run.all().contains("data_seed.sql"),
            "{args:?}: {}",
            run.all()
        );
    }
    assert!(!p.table_exists("public.a"));
}

#[test]
fn files_that_are_no_migrations_are_left_alone_and_named_by_status_v() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);")
        .migration("README.md", "# our migrations")
        .migration("seed.sql", "insert into a values (1);")
        .migration("data_seed.sql", "insert into a values (2);");
    p.write_config("[migrations]\nignore = [\"*seed*.sql\"]\n");
    let status = p.ballast(&["-v", "status"]);
    status.expect_code(1);
    let out = status.all();
    assert!(out.contains("1 pending"), "{out}");
    assert!(
        out.contains(
            "left alone in the migrations folder: data_seed.sql (it matches [migrations] ignore)"
        ),
        "{out}"
    );
    assert!(
        out.contains("left alone in the migrations folder: README.md (not a .sql file)"),
        "{out}"
    );
    assert!(
        !p.ballast(&["status"]).all().contains("left alone"),
        "only with -v"
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.ledger_versions(), ["1"]);
}
