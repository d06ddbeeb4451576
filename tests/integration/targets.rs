//! `--targets`: one pipeline over many databases, each in its own ballast process, with
//! a closing table and the worst exit code.

use crate::harness::{cluster, psql, Project, Run};

/// A project whose targets file names its own database and two more (`a`, `b`, `c`;
/// `b` already has the table the migration creates, so its deploy fails).
fn three_targets() -> (Project, Vec<String>) {
    let p = Project::new();
    p.migration(
        "1_orders.sql",
        "create table orders (id bigint primary key);",
    )
    .migration("1_orders.down.sql", "drop table orders;");
    let mut urls = vec![p.url.clone()];
    for suffix in ["b", "c"] {
        let db = format!("{}_{suffix}", p.db);
        psql(&cluster().url("postgres"), &format!("create database {db}"));
        urls.push(cluster().url(&db));
    }
    psql(&urls[1], "create table orders (id int)");
    // Its own table, not the migrations' work: recorded so, the deploy then fails on it.
    p.ballast_with(
        &["--yes", "baseline", "none"],
        &[("BALLAST_DATABASE__URL", urls[1].as_str())],
    )
    .expect_code(0);
    let file = format!(
        "[[target]]\nname = \"a\"\ndatabase.url = \"{}\"\n\n[[target]]\nname = \"b\"\nurl_env = \"B_URL\"\n\n[[target]]\nname = \"c\"\ndatabase.url = \"{}\"\n",
        urls[0], urls[2]
    );
    std::fs::write(p.path().join("targets.toml"), file).unwrap();
    (p, urls)
}

/// ballast over `targets.toml`, with b's URL in the environment its `url_env` names.
fn run_targets(p: &Project, urls: &[String], args: &[&str]) -> Run {
    p.ballast_with(
        &[&["--targets", "targets.toml"], args].concat(),
        &[("B_URL", urls[1].as_str())],
    )
}

fn applied(url: &str) -> String {
    psql(
        url,
        "select count(*) from information_schema.tables where table_name = 'ballast_migrations'",
    )
}

#[test]
fn one_failing_target_of_three_with_keep_going() {
    let (p, urls) = three_targets();
    let run = run_targets(
        &p,
        &urls,
        &["--yes", "--parallel", "2", "--keep-going", "deploy"],
    );
    let out = run.stdout();
    assert_eq!(
        run.code(),
        1,
        "the worst target's code: {out}\n{}",
        run.stderr()
    );
    // Every line says whose it is.
    assert!(out.contains("[a] ✓ deploy succeeded"), "{out}");
    assert!(out.contains("[c] ✓ deploy succeeded"), "{out}");
    assert!(out.contains("[b] ✗ deploy failed at upgrade"), "{out}");
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("target "))
        .collect();
    assert!(
        table[1].starts_with("a ")
            && table[1].contains("succeeded")
            && table[1].contains("none → 1_orders"),
        "{table:?}"
    );
    assert!(
        table[2].starts_with("b ") && table[2].contains("failed-unchanged"),
        "{table:?}"
    );
    assert!(
        table[3].starts_with("c ")
            && table[3].contains("succeeded")
            && table[3].contains(".dump.gz"),
        "{table:?}"
    );
    assert!(out.contains("✗ 1 of 3 targets did not succeed: b"), "{out}");
    assert_eq!(applied(&urls[0]), "1");
    assert_eq!(applied(&urls[2]), "1");
    assert_eq!(
        psql(
            &urls[1],
            "select count(*) from information_schema.columns where table_name = 'orders'"
        ),
        "1",
        "b is as it was"
    );
}

#[test]
fn after_a_failure_no_further_target_starts_by_default() {
    let (p, urls) = three_targets();
    let run = run_targets(&p, &urls, &["--yes", "--parallel", "1", "deploy"]);
    let out = run.stdout();
    assert_eq!(run.code(), 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("c ") && l.contains("not-started")),
        "{out}"
    );
    assert!(
        out.contains("c: not started: an earlier target failed"),
        "{out}"
    );
    assert_eq!(applied(&urls[2]), "0", "c was never touched");
}

#[test]
fn json_lines_carry_their_target_and_end_with_the_table() {
    let (p, urls) = three_targets();
    let run = run_targets(&p, &urls, &["--yes", "--json", "--keep-going", "deploy"]);
    assert_eq!(run.code(), 1);
    let lines: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "targets_finished");
    assert_eq!(last["exit_code"], 1);
    let outcomes: Vec<(&str, &str)> = last["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap(),
                t["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("a", "succeeded"),
            ("b", "failed-unchanged"),
            ("c", "succeeded")
        ]
    );
    for line in &lines[..lines.len() - 1] {
        assert_eq!(line["v"], 1);
        assert!(
            ["a", "b", "c"].contains(&line["target_name"].as_str().unwrap_or_default()),
            "{line}"
        );
    }
}

#[test]
fn one_target_alone_and_a_bad_targets_file() {
    let (p, urls) = three_targets();
    // A retry (or a Kubernetes pod) runs one target by name.
    let one = run_targets(&p, &urls, &["--yes", "--target", "c", "deploy"]);
    one.expect_code(0);
    assert_eq!(applied(&urls[2]), "1");
    assert_eq!(applied(&urls[0]), "0", "only c");
    // b's url_env is not set: that target says so and changes nothing.
    let missing = p.ballast(&[
        "--yes",
        "--targets",
        "targets.toml",
        "--target",
        "b",
        "status",
    ]);
    missing.expect_code(2);
    assert!(
        missing.stderr().contains("B_URL, which is not set"),
        "{}",
        missing.stderr()
    );
    std::fs::write(
        p.path().join("bad.toml"),
        "[[target]]\nname = \"x\"\ndatabase.nope = 1\n",
    )
    .unwrap();
    let bad = p.ballast(&["--yes", "--targets", "bad.toml", "deploy"]);
    bad.expect_code(2);
    assert!(
        bad.stderr().contains("target x: unknown field `nope`"),
        "{}",
        bad.stderr()
    );
    let wrong_command = p.ballast(&["--targets", "targets.toml", "history"]);
    wrong_command.expect_code(2);
}

#[test]
fn a_share_of_the_targets_for_one_pod_of_an_indexed_job() {
    let (p, urls) = three_targets();
    // Pod 0 of 2 takes the targets at positions 0 and 2: a and c (b fails elsewhere).
    let run = run_targets(&p, &urls, &["--yes", "--shard", "0/2", "deploy"]);
    let out = run.stdout();
    run.expect_code(0);
    assert!(out.contains("✓ all 2 targets succeeded"), "{out}");
    assert!(!out.contains("[b]"), "{out}");
    assert_eq!(applied(&urls[0]), "1");
    assert_eq!(applied(&urls[2]), "1");
    let bad = p.ballast(&["--targets", "targets.toml", "--shard", "2/2", "deploy"]);
    bad.expect_code(2);
    assert!(bad.stderr().contains("INDEX/COUNT"), "{}", bad.stderr());
}
