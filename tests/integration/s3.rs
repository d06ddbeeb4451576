//! Backups to an S3-protocol server (moto on loopback): streamed, complete or absent.

use crate::harness::{s3, Project};

#[test]
fn deploy_backs_up_to_s3_with_manifest_last() {
    let p = Project::new();
    p.existing("create table kept (id int, note text); insert into kept select g, md5(g::text) from generate_series(1, 20000) g");
    p.migration("1_a.sql", "create table a (id int);");
    let bucket = p.with_s3("");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    let keys = s3().keys(&bucket);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("shop/") && k.ends_with(".dump.gz")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.ends_with(".manifest.json")),
        "{keys:?}"
    );
    assert!(
        run.stdout().contains(&format!("s3://{bucket}/shop/")),
        "{}",
        run.stdout()
    );
    assert_eq!(s3().unfinished_uploads(&bucket), 0);
    assert!(
        p.backup_files().is_empty(),
        "nothing but the journal locally"
    );
}

#[test]
fn killed_pg_dump_aborts_the_upload_and_lists_nothing() {
    let p = Project::new();
    p.existing("create table kept (id int, note text); insert into kept select g, md5(g::text) from generate_series(1, 20000) g");
    p.migration("1_a.sql", "create table a (id int);");
    // [backup] after [backup.s3]: TOML allows the parent table to come second.
    let bucket = p.with_s3(&p.fake_pg_dump("pg_dump \"$@\" | head -c 100000\nkill -KILL $$"));
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    assert_killed_and_aborted(&run, &bucket);
    assert!(!p.table_exists("public.a"));
}

#[test]
fn stale_unfinished_uploads_are_cleaned_up_by_the_next_backup() {
    let p = Project::new();
    let bucket = p.with_s3("stale_upload_after = \"0s\"\n");
    let (status, body) = s3().http(
        "POST",
        &format!("/{bucket}/shop/left-behind.dump.gz?uploads"),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(s3().unfinished_uploads(&bucket), 1);
    let run = p.ballast(&["backup"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains(
            "cleaned up an unfinished backup left by an earlier run: shop/left-behind.dump.gz"
        ),
        "{}",
        run.stdout()
    );
    assert_eq!(s3().unfinished_uploads(&bucket), 0);
}

#[test]
fn killed_pg_dump_with_parts_in_flight_leaves_no_upload() {
    let p = Project::new();
    // Enough text that several 8 MiB parts are uploaded or uploading when pg_dump dies.
    p.sql("create table big (id int, note text); insert into big select g, md5(g::text) || md5((g * 3)::text) || md5((g * 7)::text) from generate_series(1, 400000) g");
    // [backup] after [backup.s3]: TOML allows the parent table to come second.
    let bucket = p.with_s3(&p.fake_pg_dump("pg_dump \"$@\" | head -c 40000000\nkill -KILL $$"));
    let run = p.ballast(&["backup"]);
    run.expect_code(1);
    assert_killed_and_aborted(&run, &bucket);
}

/// pg_dump died, and the bucket holds neither an object nor an unfinished upload.
#[track_caller]
pub fn assert_killed_and_aborted(run: &crate::harness::Run, bucket: &str) {
    assert!(
        run.stdout().contains("killed by signal 9"),
        "{}",
        run.stdout()
    );
    assert!(s3().keys(bucket).is_empty(), "{:?}", s3().keys(bucket));
    assert_eq!(
        s3().unfinished_uploads(bucket),
        0,
        "the multipart upload was aborted"
    );
}
