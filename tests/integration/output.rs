//! What people and programs read: the human report (snapshot), JSON lines, secrets.

use crate::harness::{snapshot_filters as filters, Project};

#[test]
fn human_report_of_a_deploy() {
    let p = Project::new();
    p.migration(
        "1_customers.sql",
        "create table customers (id bigint primary key);",
    )
    .migration(
        "2_index.sql",
        "-- no-transaction\ncreate index concurrently if not exists customers_id_idx on customers (id);",
    );
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    filters(&p).bind(|| insta::assert_snapshot!("deploy_success", run.stdout()));
}

#[test]
fn human_report_of_a_failed_deploy() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);")
        .migration("2_bad.sql", "create table a (id int);");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(1);
    filters(&p).bind(|| insta::assert_snapshot!("deploy_failed", run.stdout()));
}

#[test]
fn json_output_is_one_object_per_line() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let run = p.ballast(&["--yes", "--json", "deploy"]);
    run.expect_code(0);
    let events: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert!(
        kinds.contains(&"plan")
            && kinds.contains(&"backup_finished")
            && kinds.contains(&"committed")
    );
    let last = events.last().unwrap();
    assert_eq!(last["outcome"], "succeeded");
    assert_eq!(last["exit_code"], 0);
}

#[test]
fn passwords_never_appear_in_output_journal_or_manifest() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    // Local connections are trusted, so any password connects; the point is where it shows.
    let secret = "Sup3rS3cretPw";
    let url = p.url.replace("postgres@", &format!("postgres:{secret}@"));
    std::fs::write(p.path().join("deploy.toml"), "").unwrap();
    let run = p.ballast_with(&["--yes", "deploy"], &[("DATABASE_URL", &url)]);
    run.expect_code(0);
    assert!(!run.all().contains(secret));
    assert!(run.stdout().contains("postgres:***@"), "{}", run.stdout());
    let json = p.ballast_with(&["--yes", "--json", "status"], &[("DATABASE_URL", &url)]);
    assert!(!json.all().contains(secret));
    for file in std::fs::read_dir(p.path().join("backups")).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(secret));
    }
    assert!(!p
        .sql("select string_agg(detail::text, '') from ballast_journal")
        .contains(secret));

    // A wrong host's error names the target without the password.
    let bad = format!("postgres://app:{secret}@127.0.0.1:1/nowhere");
    let run = p.ballast_with(&["status"], &[("DATABASE_URL", &bad)]);
    assert_ne!(run.code(), 0);
    assert!(!run.all().contains(secret), "{}", run.all());
    assert!(run.all().contains("app:***@127.0.0.1:1"), "{}", run.all());
}

/// Listing columns are padded to the id's width, which varies with the test's db name.
fn table_filters(p: &Project) -> insta::Settings {
    let mut settings = filters(p);
    settings.add_filter(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}\S*", "[when]");
    settings.add_filter(r"(\S) {2,}", "$1  ");
    settings.add_filter(r"_\d{14}\b", "_[stamp]");
    settings
}

#[test]
fn human_report_of_the_backup_catalogue() {
    let p = Project::new();
    p.sql("create table t (id int); insert into t select generate_series(1, 100)");
    p.ballast(&["--yes", "backup"]).expect_code(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.bare_backup();
    let listing = p.ballast(&["backups"]);
    listing.expect_code(0);
    let prune = p.ballast(&["prune"]);
    prune.expect_code(0);
    let both = format!(
        "$ ballast backups\n{}\n$ ballast prune\n{}",
        listing.stdout(),
        prune.stdout()
    );
    table_filters(&p).bind(|| insta::assert_snapshot!("backup_catalogue", both));
}

#[test]
fn human_report_of_a_restore() {
    let p = Project::new();
    p.sql("create table t (id int); insert into t select generate_series(1, 100)");
    p.ballast(&["--yes", "backup"]).expect_code(0);
    p.sql("delete from t where id > 40");
    let run = p.ballast(&["--yes", "restore", "latest"]);
    run.expect_code(0);
    table_filters(&p).bind(|| insta::assert_snapshot!("restore_in_place", run.stdout()));
}

#[test]
fn human_report_of_an_alembic_deploy() {
    let p = Project::new();
    p.alembic();
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(0);
    let mut settings = filters(&p);
    settings.add_filter(r"\[sql: [^\]]*\]", "[sql]");
    settings.bind(|| insta::assert_snapshot!("alembic_deploy", run.stdout()));
}
