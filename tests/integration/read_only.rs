//! `status`, `plan` and `history` read; they never write, not even ballast's tables.

use crate::harness::Project;

#[test]
fn status_plan_and_history_create_nothing() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let before = p.sql("select count(*) from pg_class where relnamespace = 'public'::regnamespace");
    p.ballast(&["status"]).expect_code(1);
    p.ballast(&["plan"]).expect_code(0);
    p.ballast(&["history"]).expect_code(0);
    let after = p.sql("select count(*) from pg_class where relnamespace = 'public'::regnamespace");
    assert_eq!(before, after);
    assert!(!p.table_exists("public.ballast_migrations"));
}

#[test]
fn status_exit_code_tracks_pending() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    let run = p.ballast(&["status"]);
    run.expect_code(1);
    assert!(
        run.stdout().contains("0 applied, 1 pending"),
        "{}",
        run.stdout()
    );
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let run = p.ballast(&["status"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("1 applied, up to date at 1_a"),
        "{}",
        run.stdout()
    );
}

#[test]
fn plan_shows_sql_and_summarizes_long_migrations() {
    let p = Project::new();
    let long: String = (1..=40)
        .map(|i| format!("insert into t values ({i});\n"))
        .collect();
    p.migration("1_t.sql", "create table t (id int);")
        .migration("2_fill.sql", &long);
    let run = p.ballast(&["plan"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("| create table t (id int);"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout()
            .contains("28 more lines (ballast plan --full shows all)"),
        "{}",
        run.stdout()
    );
    let full = p.ballast(&["plan", "--full"]);
    assert!(full.stdout().contains("insert into t values (40);"));
}

#[test]
fn history_shows_only_this_databases_runs_from_a_shared_backup_folder() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    p.ballast(&["deploy"]).expect_code(3);
    // Another database journals into the same folder.
    let other = Project::new();
    other.write_config(&format!(
        "[backup]\ndir = \"{}\"\n",
        p.path().join("backups").display()
    ));
    other.ballast(&["--yes", "backup"]).expect_code(0);
    let statuses = |project: &Project| -> Vec<String> {
        project
            .ballast(&["--json", "history"])
            .stdout()
            .lines()
            .map(|l| {
                let run: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {}",
                    run["pipeline"].as_str().unwrap(),
                    run["status"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(statuses(&p), ["deploy refused"]);
    assert_eq!(statuses(&other), ["backup succeeded"]);
}

#[test]
fn history_lists_runs_from_table_and_file() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    p.ballast(&["deploy"]).expect_code(3);
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    let run = p.ballast(&["history"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("succeeded") && out.contains("none → 1_a"),
        "{out}"
    );
    // The refused run predates ballast's tables: only the file has it, and it is shown.
    assert!(
        out.contains("refused") && out.contains("confirm: no terminal"),
        "{out}"
    );
    let json = p.ballast(&["--json", "history"]);
    let statuses: Vec<String> = json
        .stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(statuses, ["succeeded", "refused"]);
}

#[test]
fn output_into_a_closed_pipe_does_not_panic() {
    let p = Project::new();
    // More than a pipe buffer of output, so writes fail after `head` exits.
    let big: String = (1..=4000)
        .map(|i| format!("insert into t values ({i}, 'padding padding padding');\n"))
        .collect();
    p.migration("1_t.sql", "create table t (id int, note text);")
        .migration("2_fill.sql", &big);
    let bin = env!("CARGO_BIN_EXE_ballast");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{bin}' plan --full | head -c 100 >/dev/null; exit ${{PIPESTATUS[0]}}"
        ))
        .current_dir(p.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn long_plans_show_sql_for_the_first_ten_and_name_the_rest() {
    let p = Project::new();
    for i in 1..=25 {
        p.migration(
            &format!("{i}_t{i}.sql"),
            &format!("create table t{i} (id int);"),
        );
    }
    let run = p.ballast(&["plan"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("| create table t10 (id int);")
            && !out.contains("| create table t11 (id int);"),
        "{out}"
    );
    assert!(
        out.contains("… and 15 more: 11_t11, 12_t12, 13_t13 … 24_t24, 25_t25"),
        "{out}"
    );
    assert!(p
        .ballast(&["plan", "--full"])
        .stdout()
        .contains("| create table t25 (id int);"));
}

#[test]
fn history_with_the_database_down_shows_the_local_journal_and_says_so() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    // The same database, unreadable (a role that does not exist: the server refuses).
    let unreadable = p.url.replace("postgres@", "nobody@");
    let run = p.ballast_with(&["history"], &[("BALLAST_DATABASE__URL", &unreadable)]);
    run.expect_code(0);
    assert!(
        run.stderr().contains("the database could not be read"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stdout().contains("deploy"),
        "the local journal's run: {}",
        run.stdout()
    );
}
