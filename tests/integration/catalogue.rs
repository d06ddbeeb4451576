//! `backups`, `verify-backup` and `prune`, on local storage and on S3.

use crate::harness::{s3, Project};

fn ids(p: &Project) -> Vec<String> {
    let run = p.ballast(&["--json", "backups"]);
    run.expect_code(0);
    run.stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["manifest"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn list_then_verify_marks_a_backup_verified() {
    let p = Project::new();
    // Several MiB, so verify reads several gzip members.
    p.sql("create table t (id int, note text); insert into t select g, md5(g::text) || md5((g * 3)::text) from generate_series(1, 100000) g");
    p.bare_backup();
    let listing = p.ballast(&["backups"]);
    assert!(
        listing.stdout().contains(&p.db) && listing.stdout().contains(" no "),
        "{}",
        listing.stdout()
    );
    let run = p.ballast(&["verify-backup"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("SHA-256 matches the manifest"),
        "{}",
        run.stdout()
    );
    assert!(p.ballast(&["backups"]).stdout().contains(" yes "));
}

#[test]
fn corrupt_and_truncated_objects_fail_verification() {
    let p = Project::new();
    p.sql("create table t (id int, note text); insert into t select g, md5(g::text) from generate_series(1, 5000) g");
    p.bare_backup();
    let id = ids(&p).remove(0);
    let object = p.path().join("backups").join(format!("{id}.dump.gz"));
    let good = std::fs::read(&object).unwrap();
    // Verified while sound...
    p.ballast(&["verify-backup", &id]).expect_code(0);
    assert!(p.ballast(&["backups"]).stdout().contains(" yes "));

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    std::fs::write(&object, &flipped).unwrap();
    let run = p.ballast(&["verify-backup", &id]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains(&format!("backup {id} is corrupt: its SHA-256 is")),
        "{}",
        run.stderr()
    );

    std::fs::write(&object, &good[..good.len() / 3]).unwrap();
    let run = p.ballast(&["verify-backup", &id]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("truncated or replaced"),
        "{}",
        run.stderr()
    );
    assert!(
        p.ballast(&["backups"]).stdout().contains(" no "),
        "...and no longer once found corrupt: prune never counts it as good"
    );
}

#[test]
fn unknown_backup_id_is_named() {
    let p = Project::new();
    let run = p.ballast(&["verify-backup", "nope"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("no backup `nope`"),
        "{}",
        run.stderr()
    );
}

#[test]
fn verify_streams_from_s3() {
    let p = Project::new();
    p.sql("create table t (id int, note text); insert into t select g, md5(g::text) from generate_series(1, 5000) g");
    let bucket = p.with_s3("");
    p.bare_backup();
    p.ballast(&["verify-backup"]).expect_code(0);
    assert!(s3()
        .keys(&bucket)
        .iter()
        .any(|k| k.ends_with(".verified.json")));
    let listing = p.ballast(&["backups"]);
    assert!(
        listing.stdout().contains(" yes ")
            && listing.stdout().contains(&format!("s3://{bucket}/shop/")),
        "{}",
        listing.stdout()
    );
}

#[test]
fn prune_counts_only_verified_and_keeps_the_newest_verified() {
    let p = Project::new();
    p.sql("create table t (id int)");
    p.write_config("[backup]\nkeep_last = 1\nkeep_days = 0\n");
    for _ in 0..3 {
        p.bare_backup();
        std::thread::sleep(std::time::Duration::from_millis(1100)); // distinct ids
    }
    let all = ids(&p); // newest first
    assert_eq!(all.len(), 3);
    // Only the oldest is verified: it is the newest verified, so it stays.
    p.ballast(&["verify-backup", &all[2]]).expect_code(0);
    let run = p.ballast(&["--yes", "prune"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains(&format!("keep    {}  (the newest verified backup)", all[2])),
        "{}",
        run.stdout()
    );
    assert_eq!(
        ids(&p).len(),
        3,
        "unverified backups are neither counted nor deleted"
    );

    for id in &all[..2] {
        p.ballast(&["verify-backup", id]).expect_code(0);
    }
    let dry = p.ballast(&["prune"]);
    dry.expect_code(0);
    assert!(
        dry.stdout().contains("dry run: nothing deleted"),
        "{}",
        dry.stdout()
    );
    assert_eq!(ids(&p).len(), 3);
    p.ballast(&["--yes", "prune"]).expect_code(0);
    assert_eq!(ids(&p), [all[0].clone()]);
}
