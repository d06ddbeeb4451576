//! The backup stage: streamed, checksummed, restorable, and never partial.

use std::os::unix::fs::PermissionsExt;

use sha2::{Digest, Sha256};

use crate::harness::{cluster, psql, Project};

#[test]
fn backup_restores_with_gunzip_and_pg_restore() {
    let p = Project::new();
    // Several MiB: the dump is compressed as several gzip members, in parallel.
    p.existing("create table kept (id int primary key, note text); insert into kept select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 100000) g");
    p.migration("1_new.sql", "create table added (id int);");
    p.ballast(&["--yes", "deploy"]).expect_code(0);

    let files = p.backup_files();
    let dump = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with(".dump.gz"))
        .expect("a dump");
    let manifest_path = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with(".manifest.json"))
        .expect("a manifest");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_path).unwrap()).unwrap();
    let bytes = std::fs::read(dump).unwrap();
    assert_eq!(
        manifest["sha256"],
        hex::encode(Sha256::digest(&bytes)),
        "manifest checksum matches the object"
    );
    assert_eq!(manifest["compressed_bytes"], bytes.len() as u64);
    assert_eq!(manifest["database"], p.db.as_str());
    assert!(
        manifest["revision"].is_null(),
        "taken before the first migration"
    );

    let restored = format!("{}_restored", p.db);
    psql(
        &cluster().url("postgres"),
        &format!("create database {restored}"),
    );
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gunzip -c '{}' | pg_restore --no-owner -d '{}'",
            dump.display(),
            cluster().url(&restored)
        ))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        psql(&cluster().url(&restored), "select count(*) from kept"),
        "100000"
    );
    assert!(
        manifest["raw_bytes"].as_u64().unwrap() > 4 << 20,
        "large enough for several gzip members"
    );
    assert_eq!(
        psql(
            &cluster().url(&restored),
            "select to_regclass('public.added') is null"
        ),
        "t",
        "the backup predates the upgrade"
    );
}

#[test]
fn killed_pg_dump_leaves_no_backup_and_no_upgrade() {
    let p = Project::new();
    p.migration("1_new.sql", "create table added (id int);");
    // A pg_dump that writes real output and is then killed, like an OOM kill mid-dump.
    p.write_config(&p.fake_pg_dump(
        "pg_dump \"$@\" | head -c 4096
kill -KILL $$",
    ));
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    assert!(
        run.stdout().contains("pg_dump failed (killed by signal 9)"),
        "{}",
        run.stdout()
    );
    assert!(
        p.backup_files().is_empty(),
        "no file that looks like a backup: {:?}",
        p.backup_files()
    );
    assert!(!p.table_exists("public.added"), "the upgrade never started");
}

#[test]
fn pg_dump_older_than_the_server_is_refused_before_dumping() {
    let p = Project::new();
    p.migration("1_new.sql", "create table added (id int);");
    let wrapper = p.path().join("old_pg_dump.sh");
    std::fs::write(&wrapper, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.write_config(&format!("[backup]\npg_dump = \"{}\"\n", wrapper.display()));
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    assert!(
        run.stdout()
            .contains("pg_dump 9.6.24 is older than the server"),
        "{}",
        run.stdout()
    );
    assert!(p.backup_files().is_empty());
    assert!(!p.table_exists("public.added"));
}

#[test]
fn backup_command_works_outside_a_deploy() {
    let p = Project::new();
    p.sql("create table t (id int)");
    let run = p.ballast(&["backup"]);
    run.expect_code(0);
    let files = p.backup_files();
    assert_eq!(
        files.len(),
        3,
        "dump, manifest, verification record: {files:?}"
    );
    assert!(
        run.stdout().contains("read back: SHA-256 matches"),
        "{}",
        run.stdout()
    );
    assert!(
        !p.table_exists("public.ballast_migrations"),
        "a backup does not create ballast's tables"
    );
}

#[test]
fn empty_dump_is_a_failure_not_a_backup() {
    let p = Project::new();
    p.migration("1_new.sql", "create table added (id int);");
    p.write_config(&p.fake_pg_dump("exit 0"));
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    assert!(
        run.stdout().contains("pg_dump wrote nothing"),
        "{}",
        run.stdout()
    );
    assert!(p.backup_files().is_empty());
    assert!(!p.table_exists("public.added"));
}

#[test]
fn day_old_partial_files_of_killed_runs_are_cleaned_up() {
    let p = Project::new();
    p.sql("create table t (id int)");
    let dir = p.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let (old, fresh) = (
        dir.join(".old.dump.gz.partial"),
        dir.join(".running.dump.gz.partial"),
    );
    std::fs::write(&old, b"half a dump").unwrap();
    std::fs::write(&fresh, b"another run, still going").unwrap();
    let status = std::process::Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(status.success());
    let run = p.ballast(&["--yes", "backup"]);
    run.expect_code(0);
    assert!(!old.exists(), "{}", run.stdout());
    assert!(
        fresh.exists(),
        "a young partial file may belong to a running backup"
    );
}

#[test]
fn a_backup_run_does_not_pretend_it_read_the_migration_state() {
    let p = Project::new();
    let run = p.ballast(&["--yes", "backup"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("backup succeeded: the migration state was not read"),
        "{out}"
    );
    assert!(!out.contains("0 applied"), "{out}");
}
