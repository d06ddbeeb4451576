//! Unattended runs: scheduled jobs and CI never wait for input, and what they print
//! suits a log rather than a terminal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Project;

/// `args` run by ballast inside a pseudo-terminal (`script`), as at a keyboard; killed
/// after `limit`. Returns (exit code, or None when it had to be killed; output).
fn at_a_terminal(p: &Project, args: &[&str], limit: Duration) -> (Option<i32>, String) {
    at_a_terminal_with(p, p.command(args, &[]), limit)
}

/// [`at_a_terminal`] for a command already built (its program, arguments and
/// environment are carried into the terminal).
fn at_a_terminal_with(p: &Project, inner: Command, limit: Duration) -> (Option<i32>, String) {
    let mut line = vec![inner.get_program().to_string_lossy().into_owned()];
    line.extend(inner.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = line.iter().map(|a| format!("'{a}'")).collect();
    let mut outer = Command::new("script");
    outer
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .current_dir(p.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => outer.env(key, value),
            None => outer.env_remove(key),
        };
    }
    let mut child = outer.spawn().unwrap();
    // Keep stdin open (a person who has not answered yet).
    let _stdin = child.stdin.take();
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn at_a_terminal_non_interactive_never_asks() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);");
    // The terminal is real: without the flag, the deploy waits at its question.
    let (code, out) = at_a_terminal(&p, &["deploy"], Duration::from_secs(10));
    assert_eq!(code, None, "it waited for an answer:\n{out}");
    assert!(out.contains("Deploy to database"), "{out}");
    // With it, the run refuses at once, changing nothing, and says how to go on.
    let (code, out) = at_a_terminal(
        &p,
        &["--non-interactive", "deploy"],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("pass --yes"), "{out}");
    assert!(!p.table_exists("public.a"));
    // And with --yes it deploys.
    let (code, out) = at_a_terminal(
        &p,
        &["--non-interactive", "--yes", "deploy"],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(p.table_exists("public.a"));
}

#[test]
fn colour_on_a_terminal_and_never_with_no_color() {
    let p = Project::new();
    let (code, out) = at_a_terminal(&p, &["--yes", "deploy"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    // The harness sets NO_COLOR=1 for every run: no escape codes even at a terminal.
    assert!(!out.contains("\u{1b}["), "{out:?}");
    let mut inner = p.command(&["--yes", "deploy"], &[]);
    inner.env_remove("NO_COLOR");
    let (code, out) = at_a_terminal_with(&p, inner, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\u{1b}[32m"), "green at a terminal: {out:?}");
}

#[test]
fn without_a_terminal_progress_is_written_as_lines() {
    let p = Project::new();
    p.sql("create table big as select g as id, md5(g::text) || md5((g * 7)::text) as body from generate_series(1, 200000) g");
    let run = p.ballast(&["--progress-interval", "0s", "backup"]);
    run.expect_code(0);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("… dump:")).collect();
    assert!(!lines.is_empty(), "no progress line: {stderr}");
    assert!(
        lines[0].contains("/s,"),
        "bytes, rate and time: {}",
        lines[0]
    );
    assert!(
        !stderr.contains('\r'),
        "no bar redraws in a log: {stderr:?}"
    );
}

#[test]
fn the_question_names_the_change_the_pipeline_makes() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);")
        .migration("1_a.down.sql", "drop table a;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.pipeline(
        "back",
        "[[stages]]\nkind = \"state-check\"\n[[stages]]\nkind = \"confirm\"\n[[stages]]\nkind = \"downgrade\"\nto = \"base\"\n",
    );
    let (code, out) = at_a_terminal(&p, &["run", "back"], Duration::from_secs(10));
    assert_eq!(code, None, "it waits for the answer: {out}");
    assert!(out.contains("Downgrade database"), "{out}");
    assert!(out.contains("from 1_a to base?"), "{out}");
    assert!(p.table_exists("public.a"), "nothing done before the answer");
    // The shipped rollback's `-1` is named as the migration it is.
    let (code, out) = at_a_terminal(&p, &["run", "rollback"], Duration::from_secs(10));
    assert_eq!(code, None, "it waits for the answer: {out}");
    assert!(out.contains("from 1_a to base (-1)?"), "{out}");
    assert!(p.table_exists("public.a"));
}

#[test]
fn the_question_of_a_pre_phase_deploy_says_the_contract_step_is_held_back() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id int);")
        .migration("2_b.sql", "-- ballast:phase post\ncreate table b (id int);");
    let (code, out) = at_a_terminal(&p, &["deploy", "--phase", "pre"], Duration::from_secs(10));
    assert_eq!(code, None, "it waited for an answer:\n{out}");
    assert!(
        out.contains(
            "→ 1_a, 1 migration (the expand step: migrations marked phase post are held back)?"
        ),
        "{out}"
    );
    assert!(!p.table_exists("public.a"));
}

#[test]
fn with_a_rehearsal_before_the_deploy_the_question_shows_its_numbers() {
    let p = Project::new();
    p.existing("create table t (id int); insert into t select generate_series(1, 20000);");
    p.migration("1_b.sql", "alter table t add column b int;");
    p.write_config("[rehearse]\nbefore_deploy = true\n");
    let (code, out) = at_a_terminal(&p, &["deploy"], Duration::from_secs(12));
    assert_eq!(code, None, "it waited for an answer:\n{out}");
    assert!(
        out.contains("→ 1_b, 1 migration (rehearsed on a copy: ")
            && out.contains("ACCESS EXCLUSIVE public.t up to ")
            && out.contains("writes blocked public.t up to "),
        "{out}"
    );
    assert_eq!(p.sql("select count(*) from information_schema.columns where table_name = 't' and column_name = 'b'"), "0");
}
