//! What people and programs read: the human report (snapshot), JSON lines, secrets.

use crate::harness::{snapshot_filters as filters, Project, FAILING_VERIFY};

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

/// docs/json-events.md read back: event name → (field, always) rows; the fields every
/// line may carry are under "".
fn documented_events() -> std::collections::BTreeMap<String, Vec<(String, bool)>> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json-events.md"))
        .unwrap();
    let mut events: std::collections::BTreeMap<String, Vec<(String, bool)>> = Default::default();
    let mut current = String::new();
    events.insert(current.clone(), Vec::new());
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("### `") {
            current = heading.split('`').next().unwrap().to_string();
            events.entry(current.clone()).or_default();
        } else if line.starts_with("## ") && !line.starts_with("## Versioning") {
            // Back to prose: tables belong to the event headings below.
        } else if let Some(row) = line.strip_prefix("| `") {
            let cells: Vec<&str> = row.split(" | ").collect();
            let field = cells[0].trim_end_matches('`').to_string();
            let always = cells.get(2).map(|c| c.trim()) == Some("yes");
            events.get_mut(&current).unwrap().push((field, always));
        }
    }
    events
}

#[test]
fn json_lines_match_the_documented_schema() {
    let documented = documented_events();
    let common: Vec<&str> = documented[""].iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(common, ["v", "event", "target_name"]);
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);")
        .migration("1_a.down.sql", "drop table a;");
    let mut lines = Vec::new();
    let mut collect = |args: &[&str], code: i32| {
        let run = p.ballast(args);
        assert_eq!(run.code(), code, "{args:?}: {}", run.all());
        lines.extend(run.stdout().lines().map(str::to_string));
    };
    collect(&["--json", "status"], 1);
    collect(&["--json", "plan"], 0);
    collect(&["--yes", "--json", "deploy"], 0);
    collect(&["--json", "wait"], 0);
    // A failure after the commit: the ladder's rung, its stage records, next steps.
    p.migration("2_b.sql", "create table b (id int);")
        .migration("2_b.down.sql", "drop table b;");
    collect(&["--json", "rehearse", "--from", "latest"], 0);
    p.write_config(FAILING_VERIFY);
    collect(&["--yes", "--json", "deploy"], 1);
    collect(&["--json", "backups"], 0);
    collect(&["--json", "history"], 0);
    collect(&["--json", "check"], 0);
    collect(
        &[
            "--json",
            "--set",
            "database.url=postgres://nobody@127.0.0.1:1/x",
            "status",
        ],
        2,
    );
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let object = value.as_object().unwrap();
        assert_eq!(value["v"], 1, "{line}");
        let event = value["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event: {line}"));
        let fields = documented
            .get(event)
            .unwrap_or_else(|| panic!("event `{event}` is not documented: {line}"));
        for key in object.keys() {
            assert!(
                common.contains(&key.as_str()) || fields.iter().any(|(f, _)| f == key),
                "field `{key}` of `{event}` is not documented: {line}"
            );
        }
        for (field, always) in fields {
            assert!(
                !always || object.contains_key(field),
                "`{event}` lacks its always-present field `{field}`: {line}"
            );
        }
        seen.insert(event.to_string());
    }
    for expected in [
        "run_started",
        "stage_started",
        "stage_finished",
        "stage_failed",
        "state",
        "plan",
        "backup_started",
        "backup_finished",
        "committed",
        "run_finished",
        "backup",
        "run",
        "check_finished",
        "error",
        "wait",
        "rehearsal",
    ] {
        assert!(
            seen.contains(expected),
            "no `{expected}` line was checked: {seen:?}"
        );
    }
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    let p = Project::new();
    let bash = p.ballast(&["completions", "bash"]);
    bash.expect_code(0);
    assert!(bash.stdout().contains("_ballast()") && bash.stdout().contains("deploy"));
    let checked = std::process::Command::new("bash")
        .args(["-n", "-c", &bash.stdout()])
        .status()
        .unwrap();
    assert!(checked.success(), "the bash script parses");
    assert!(p
        .ballast(&["completions", "zsh"])
        .stdout()
        .starts_with("#compdef ballast"));
    assert!(p
        .ballast(&["completions", "fish"])
        .stdout()
        .contains("complete -c ballast"));
}
