//! `ballast rehearse` and the `rehearse` stage: the plan run on a restored copy of the
//! target, traced (durations, rows, locks and how long each was held, rewrites), the
//! copy dropped, the target never touched; limits that refuse a deploy before the
//! target is touched.

use crate::harness::{cluster, psql, Project, Run};

/// A million orders (and 200,000 customers), as ballast found them.
fn populated(p: &Project) {
    p.existing(
        "create table orders (id bigint primary key, customer int not null, amount int not null);
         insert into orders select g, g % 200000, g % 1000 from generate_series(1, 1000000) g;
         create table customers (id int primary key, tier text);
         insert into customers select g, null from generate_series(0, 199999) g;
         analyze;",
    );
}

/// The plan of the main test: a rewrite and a backfill in one transaction, an index
/// built concurrently alone, then a column added in a transaction of its own.
fn four_migrations(p: &Project) {
    p.migration(
        "1_retype_orders.sql",
        "alter table orders alter column amount type bigint;\n",
    )
    .migration(
        "2_backfill_tiers.sql",
        "update customers set tier = 'basic';\n",
    )
    .migration(
        "3_index_customer.sql",
        "-- no-transaction\ncreate index concurrently orders_customer_idx on orders (customer);\n",
    )
    .migration(
        "4_add_note.sql",
        "alter table orders add column note text;\n",
    );
}

/// The `rehearsal` event of a `--json` run.
pub fn rehearsal_event(run: &Run) -> serde_json::Value {
    run.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "rehearsal")
        .unwrap_or_else(|| panic!("no rehearsal event:\n{}", run.all()))
}

/// The statements of `migration` in a rehearsal event.
fn statements<'a>(event: &'a serde_json::Value, migration: &str) -> Vec<&'a serde_json::Value> {
    event["statements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["migration"] == migration)
        .collect()
}

/// The locks a statement held on `relation` in `mode`: their held_ms.
fn held(statement: &serde_json::Value, relation: &str, mode: &str) -> Option<u64> {
    statement["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == relation && l["mode"] == mode)
        .map(|l| l["held_ms"].as_u64().unwrap())
}

/// Rehearsal copies of the project's database still there.
pub fn rehearsal_copies(p: &Project) -> Vec<String> {
    let names = psql(
        &cluster().url("postgres"),
        &format!(
            "select string_agg(datname, ',') from pg_database where datname like '{}\\_\\_ballast\\_rehearsal\\_%'",
            p.db
        ),
    );
    names
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_rehearsal_measures_locks_rewrites_and_rows_on_a_copy_and_leaves_the_target_alone() {
    let p = Project::new();
    populated(&p);
    four_migrations(&p);
    let page = p.path().join("rehearsal.html");
    let run = p.ballast(&["--json", "rehearse", "--report", page.to_str().unwrap()]);
    run.expect_code(0);
    let event = rehearsal_event(&run);
    assert_eq!(event["verdict"]["ok"], true, "{event:#}");
    assert!(event["rows"].as_i64().unwrap() >= 1_200_000, "{event:#}");

    // The type change rewrote orders under ACCESS EXCLUSIVE, held until the
    // backfill sharing its transaction committed.
    let retype = statements(&event, "1_retype_orders");
    assert_eq!(retype.len(), 1);
    let retype = retype[0];
    assert_eq!(retype["rewrites"], serde_json::json!(["public.orders"]));
    let exclusive = held(retype, "public.orders", "AccessExclusiveLock").expect("no lock");
    let backfill = statements(&event, "2_backfill_tiers")[0];
    assert_eq!(backfill["rows"], 200_000);
    let retype_ms = retype["duration_ms"].as_u64().unwrap();
    let backfill_ms = backfill["duration_ms"].as_u64().unwrap();
    assert!(
        exclusive >= retype_ms + backfill_ms && retype_ms > 50,
        "held {exclusive} ms, the statements took {retype_ms} + {backfill_ms} ms"
    );
    let lock = &retype["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mode"] == "AccessExclusiveLock")
        .unwrap();
    assert_eq!(lock["until"], "2_backfill_tiers", "{lock:#}");

    // The index built concurrently, alone: no write-blocking lock held on orders.
    let index = statements(&event, "3_index_customer")[0];
    assert!(
        held(index, "public.orders", "ShareUpdateExclusiveLock").is_some(),
        "{index:#}"
    );
    for mode in [
        "ShareLock",
        "ShareRowExclusiveLock",
        "ExclusiveLock",
        "AccessExclusiveLock",
    ] {
        assert!(held(index, "public.orders", mode).is_none(), "{index:#}");
    }
    assert_eq!(index["rewrites"], serde_json::json!([]));

    // A column without a default: milliseconds, no rewrite.
    let note = statements(&event, "4_add_note")[0];
    let quick = held(note, "public.orders", "AccessExclusiveLock").expect("no lock");
    assert!(quick < exclusive / 5 && quick < 1000, "held {quick} ms");
    assert_eq!(note["rewrites"], serde_json::json!([]));

    // The run's maxima name the rewrite's lock.
    assert_eq!(event["longest_exclusive"][0]["relation"], "public.orders");
    assert_eq!(event["longest_exclusive"][0]["held_ms"], exclusive);
    assert_eq!(
        event["longest_exclusive"][0]["migration"],
        "1_retype_orders"
    );

    // The target: untouched. The copy: gone. The backup: recorded as restored.
    assert_eq!(p.ledger_versions(), Vec::<String>::new());
    assert_eq!(
        p.sql("select data_type from information_schema.columns where table_name = 'orders' and column_name = 'amount'"),
        "integer"
    );
    assert!(!p.table_exists("orders_customer_idx"));
    assert!(
        rehearsal_copies(&p).is_empty(),
        "{:?}",
        rehearsal_copies(&p)
    );
    let id = event["backup"].as_str().unwrap();
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path().join(format!("backups/{id}.verified.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(record["restore_drill"]["by"], "rehearsal");
    assert_eq!(record["restore_drill"]["rows"], event["rows"]);
    assert_eq!(
        record["restore_drill"]["row_counts"]["public.orders"],
        1_000_000
    );

    // The page: self-contained, and once Chromium ran its script, one bar per lock held.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "the page fetches"
    );
    let locks: usize = event["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["locks"].as_array().unwrap().len())
        .sum();
    let drawn = chromium_dom(&page);
    assert_eq!(drawn.matches("class=\"lock\"").count(), locks, "{drawn}");
    assert!(drawn.contains("public.orders") && drawn.contains("Within the limits"));
}

/// The page's DOM after headless Chromium (Debian's package) ran its script.
fn chromium_dom(page: &std::path::Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (scripts/ensure-chromium installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_deploy_over_a_rehearsal_limit_is_refused_before_the_target_is_touched() {
    let p = Project::new();
    populated(&p);
    p.migration(
        "1_retype_orders.sql",
        "alter table orders alter column amount type bigint;\n",
    );
    p.write_config("[rehearse]\nbefore_deploy = true\nmax_exclusive_lock = \"20ms\"\n");
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    run.expect_code(3);
    let out = run.all();
    // The backup, then the rehearsal, before the question.
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("no {s}:\n{out}"));
    assert!(at("▸ backup") < at("▸ rehearse"), "{out}");
    assert!(
        !out.contains("▸ confirm") && !out.contains("▸ upgrade"),
        "{out}"
    );
    assert!(
        out.contains("1_retype_orders line 1 (alter table orders alter column amount type bigint;) held AccessExclusiveLock on public.orders for")
            && out.contains("rehearse.max_exclusive_lock is 20 ms")
            && out.contains("the lint's safe way: add a new column of type int8"),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), Vec::<String>::new());
    assert_eq!(
        p.sql("select data_type from information_schema.columns where table_name = 'orders' and column_name = 'amount'"),
        "integer"
    );
    assert!(rehearsal_copies(&p).is_empty());

    // Under its limits, the deploy goes on and applies the plan it rehearsed.
    p.write_config(
        "[rehearse]\nbefore_deploy = true\nmax_exclusive_lock = \"10m\"\nmax_write_block = \"10m\"\nmax_duration = \"10m\"\n",
    );
    let run = p.ballast(&["--yes", "--allow-risky", "deploy"]);
    run.expect_code(0);
    let out = run.all();
    assert!(
        out.find("▸ rehearse").unwrap() < out.find("▸ confirm").unwrap(),
        "{out}"
    );
    assert_eq!(p.ledger_versions(), vec!["1".to_string()]);
    assert_eq!(
        p.sql("select data_type from information_schema.columns where table_name = 'orders' and column_name = 'amount'"),
        "bigint"
    );
    assert!(rehearsal_copies(&p).is_empty());
}

#[test]
fn a_plan_that_fails_on_the_copy_stops_the_deploy_naming_the_statement() {
    let p = Project::new();
    p.existing(
        "create table customers (id int primary key, tier text);
         insert into customers select g, case when g % 10 = 0 then null else 'basic' end from generate_series(1, 100000) g;",
    );
    p.migration("1_notes.sql", "create table notes (id int);\n")
        .migration(
            "2_tier_required.sql",
            "alter table customers add column since date;\nalter table customers add constraint tier_set check (tier is not null);\n",
        );
    p.write_config("[rehearse]\nbefore_deploy = true\n");
    let run = p.ballast(&["--yes", "deploy"]);
    run.expect_code(3);
    let out = run.all();
    assert!(
        out.contains("the plan failed on the rehearsal's copy")
            && out.contains("2_tier_required")
            && out.contains("statement 2 of 2, line 2")
            && out.contains("tier_set"),
        "{out}"
    );
    assert!(!out.contains("▸ upgrade"), "{out}");
    assert!(!p.table_exists("public.notes"));
    assert_eq!(p.ledger_versions(), Vec::<String>::new());
    assert!(rehearsal_copies(&p).is_empty());
    // `ballast rehearse` says the same, in its event too.
    let run = p.ballast(&["--json", "rehearse"]);
    run.expect_code(3);
    let event = rehearsal_event(&run);
    assert_eq!(event["verdict"]["ok"], false);
    assert!(event["verdict"]["failed"]
        .as_str()
        .unwrap()
        .contains("tier_set"));
    let failed: Vec<_> = statements(&event, "2_tier_required");
    assert_eq!(failed.len(), 2, "{event:#}");
    assert!(failed[1]["error"].as_str().unwrap().contains("tier_set"));
    assert!(failed[1]["rows"].is_null());
}

#[test]
fn a_role_that_may_not_create_databases_is_told_the_grant_or_the_other_server() {
    let p = Project::new();
    let role = format!("{}_plain", p.db);
    let admin = cluster().url("postgres");
    psql(&admin, &format!("create role {role} login"));
    psql(&admin, &format!("alter database {} owner to {role}", p.db));
    psql(&p.url, &format!("alter schema public owner to {role}"));
    let url = p.url.replace("postgres@", &format!("{role}@"));
    std::fs::write(
        p.path().join("deploy.toml"),
        format!("[database]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    psql(&url, "create table t (id int)");
    p.ballast(&["--yes", "baseline", "none"]).expect_code(0);
    p.migration("1_a.sql", "alter table t add column b int;\n");
    let run = p.ballast(&["rehearse"]);
    run.expect_code(3);
    let out = run.all();
    assert!(
        out.contains("this role may not create databases")
            && out.contains(&format!("ALTER ROLE \"{role}\" CREATEDB"))
            && out.contains("[rehearse] url")
            && out.contains("nothing was made"),
        "{out}"
    );
    // Refused by the preflight: before the backup, let alone the restore.
    assert!(
        !out.contains("restoring") && !out.contains("▸ backup"),
        "{out}"
    );
    assert!(rehearsal_copies(&p).is_empty());
}

#[test]
fn not_enough_room_is_said_before_the_restore_starts() {
    let p = Project::new();
    p.existing("create table t (id int); insert into t select generate_series(1, 1000);");
    p.migration("1_a.sql", "alter table t add column b int;\n");
    let run = p.ballast_with(&["rehearse"], &[("BALLAST_FAULT_FREE_BYTES", "4096")]);
    run.expect_code(3);
    let out = run.all();
    assert!(
        out.contains("not enough room for the rehearsal's copy")
            && out.contains("4.00 KiB free")
            && out.contains("nothing was made"),
        "{out}"
    );
    assert!(
        !out.contains("restoring") && !out.contains("▸ backup"),
        "{out}"
    );
    assert!(rehearsal_copies(&p).is_empty());
    // `--from` a backup there is: the preflight refuses all the same.
    p.ballast(&["backup"]).expect_code(0);
    let run = p.ballast_with(
        &["rehearse", "--from", "latest"],
        &[("BALLAST_FAULT_FREE_BYTES", "4096")],
    );
    run.expect_code(3);
    assert!(run.all().contains("not enough room") && !run.all().contains("restoring"));
}

#[test]
fn a_rehearsal_stopped_by_ctrl_c_or_sigkill_leaves_no_copy_after_the_next_run() {
    use crate::faults::{paused_at, signal};
    let p = Project::new();
    p.existing("create table t (id int); insert into t select generate_series(1, 50000);");
    p.migration("1_a.sql", "alter table t add column b int;\n");
    let again = |point: &str| {
        let _ = std::fs::remove_file(p.path().join(format!("paused-at-{point}")));
    };
    // Ctrl-C while the plan is traced on the copy: the copy is dropped on the way out.
    let child = paused_at(&p, &["rehearse"], "rehearsal");
    assert_eq!(rehearsal_copies(&p).len(), 1);
    let out = signal(child, "INT");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rehearsal_copies(&p).is_empty(),
        "{:?}",
        rehearsal_copies(&p)
    );
    // SIGKILL there, and Ctrl-C and SIGKILL during the restore: a copy may stay,
    // marked safe to drop, and the next rehearsal drops it.
    for (point, sig) in [
        ("rehearsal", "KILL"),
        ("restore", "INT"),
        ("restore", "KILL"),
    ] {
        again(point);
        let child = paused_at(&p, &["rehearse"], point);
        let out = signal(child, sig);
        assert_ne!(out.status.code(), Some(0), "{point} {sig}");
        assert!(
            rehearsal_copies(&p).len() <= 1,
            "{point} {sig}: {:?}",
            rehearsal_copies(&p)
        );
    }
    let left = rehearsal_copies(&p);
    assert_eq!(
        left.len(),
        1,
        "the last SIGKILL during the restore left its copy"
    );
    crate::faults::sessions_gone(&p);
    let run = p.ballast(&["rehearse"]);
    run.expect_code(0);
    assert!(
        run.all().contains(&format!("dropped {}", left[0])),
        "{}",
        run.all()
    );
    assert!(
        rehearsal_copies(&p).is_empty(),
        "{:?}",
        rehearsal_copies(&p)
    );
    assert_eq!(p.ledger_versions(), Vec::<String>::new());
}

#[test]
fn an_alembic_revision_that_rewrites_is_traced_from_a_second_connection() {
    use crate::harness::{alembic_revision, alembic_version, ALEMBIC_HEAD};
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.sql(
        "insert into marketplace.sellers values (1, 'one');
         insert into marketplace.products (id, seller_id, title)
           select g, 1, 'product ' || g from generate_series(1, 300000) g;",
    );
    alembic_revision(
        &versions,
        "aa00000000a1",
        ALEMBIC_HEAD,
        &[
            "op.execute(\"ALTER TABLE marketplace.products ALTER COLUMN title TYPE varchar(300) USING title || ''\")",
            "op.execute(\"ALTER TABLE marketplace.products ADD COLUMN note text\")",
        ],
        "op.execute(\"ALTER TABLE marketplace.products DROP COLUMN note\")",
    );
    let run = p.ballast(&["--json", "rehearse"]);
    run.expect_code(0);
    let event = rehearsal_event(&run);
    let statements = event["statements"].as_array().unwrap();
    let retype = statements
        .iter()
        .find(|s| {
            s["sql"]
                .as_str()
                .unwrap()
                .contains("ALTER COLUMN title TYPE")
        })
        .unwrap_or_else(|| panic!("the rewrite was not seen: {event:#}"));
    assert!(
        retype["migration"]
            .as_str()
            .unwrap()
            .starts_with("aa00000000a1"),
        "{retype:#}"
    );
    assert!(
        retype["line"].is_null() && retype["rows"].is_null(),
        "{retype:#}"
    );
    assert_eq!(
        retype["rewrites"],
        serde_json::json!(["marketplace.products"]),
        "{event:#}"
    );
    let exclusive = held(retype, "marketplace.products", "AccessExclusiveLock").expect("no lock");
    assert!(
        exclusive >= retype["duration_ms"].as_u64().unwrap() && exclusive > 20,
        "{retype:#}"
    );
    assert_eq!(
        event["longest_exclusive"][0]["relation"],
        "marketplace.products"
    );
    // Alembic's bookkeeping is not the migration's.
    assert!(
        !event.to_string().contains("alembic_version\""),
        "{event:#}"
    );
    // The target stays where it was; no copy is left.
    assert_eq!(alembic_version(&p), ALEMBIC_HEAD);
    assert!(rehearsal_copies(&p).is_empty());
}

#[test]
fn the_copy_can_live_on_another_server_or_a_throwaway_local_one() {
    let p = Project::new();
    p.existing("create table t (id int); insert into t select generate_series(1, 20000);");
    // A role of the target's server only: its GRANT cannot be restored elsewhere.
    let reader = format!("{}_reader", p.db);
    psql(&cluster().url("postgres"), &format!("create role {reader}"));
    p.sql(&format!("grant select on t to {reader}"));
    p.migration("1_a.sql", "alter table t alter column id type bigint;\n");
    let staging = ballast::scratch::ScratchCluster::start().expect("a second server");
    p.write_config(&format!(
        "[rehearse]\nurl = \"{}\"\n",
        staging.url("postgres")
    ));
    let run = p.ballast(&["--json", "rehearse"]);
    run.expect_code(0);
    let event = rehearsal_event(&run);
    // Made beside the staging server's database, and dropped there.
    assert!(
        event["copy"]
            .as_str()
            .unwrap()
            .starts_with("postgres__ballast_rehearsal_"),
        "{event:#}"
    );
    assert_eq!(
        event["statements"][0]["rewrites"],
        serde_json::json!(["public.t"])
    );
    let left = psql(
        &staging.url("postgres"),
        "select count(*) from pg_database where datname like '%ballast_rehearsal%'",
    );
    assert_eq!(left, "0");
    assert!(rehearsal_copies(&p).is_empty());

    p.write_config("[rehearse]\nurl = \"local\"\n");
    let run = p.ballast(&["--json", "rehearse", "--from", "latest"]);
    run.expect_code(0);
    let event = rehearsal_event(&run);
    assert!(
        event["copy"]
            .as_str()
            .unwrap()
            .ends_with("on a throwaway local server"),
        "{event:#}"
    );
    assert_eq!(
        event["statements"][0]["rewrites"],
        serde_json::json!(["public.t"])
    );
    assert!(rehearsal_copies(&p).is_empty());
    assert_eq!(p.ledger_versions(), Vec::<String>::new());
}

#[test]
fn an_older_backup_rehearses_its_own_plan_and_says_so() {
    let p = Project::new();
    p.existing("create table t (id int);");
    p.ballast(&["backup"]).expect_code(0);
    let older = p.newest_backup()["id"].as_str().unwrap().to_string();
    p.migration("1_a.sql", "alter table t add column a int;\n");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    p.migration("2_b.sql", "alter table t add column b int;\n");
    let run = p.ballast(&["--json", "rehearse", "--from", &older]);
    run.expect_code(0);
    let event = rehearsal_event(&run);
    assert_eq!(event["backup"], older.as_str());
    assert_eq!(
        event["migrations_rehearsed"],
        serde_json::json!(["1_a", "2_b"])
    );
    assert!(
        run.stdout()
            .contains("had 2 migrations pending where the target has 1"),
        "{}",
        run.all()
    );
    // An id storage does not have: a usage error, nothing made.
    let run = p.ballast(&["rehearse", "--from", "nope"]);
    run.expect_code(2);
    assert!(run.all().contains("nope"), "{}", run.all());
    assert!(rehearsal_copies(&p).is_empty());
}

#[test]
fn a_table_the_plan_creates_is_no_one_elses_so_its_locks_break_no_limit() {
    let p = Project::new();
    p.existing("create table t (id int); insert into t select generate_series(1, 300000);");
    p.migration(
        "1_copy.sql",
        "create table t_copy (id int);\ninsert into t_copy select id from t;\nalter table t_copy alter column id type bigint;\n",
    );
    p.write_config("[rehearse]\nmax_exclusive_lock = \"50ms\"\n");
    let run = p.ballast(&["--json", "rehearse"]);
    run.expect_code(0);
    let event = rehearsal_event(&run);
    assert!(!event.to_string().contains("public.t_copy"), "{event:#}");
    assert_eq!(event["statements"][1]["rows"], 300_000);
}

#[test]
fn an_alembic_lock_held_past_its_statement_is_measured_to_the_end() {
    use crate::harness::{alembic_revision, ALEMBIC_HEAD};
    let p = Project::new();
    let versions = p.alembic();
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    alembic_revision(
        &versions,
        "bb00000000b1",
        ALEMBIC_HEAD,
        &[
            "op.execute(\"ALTER TABLE marketplace.sellers ADD COLUMN since date\")",
            "__import__('time').sleep(1.5)",
        ],
        "op.execute(\"ALTER TABLE marketplace.sellers DROP COLUMN since\")",
    );
    p.write_config(&crate::harness::alembic_config(
        "[rehearse]\nmax_exclusive_lock = \"500ms\"\n",
    ));
    let run = p.ballast(&["--json", "rehearse"]);
    run.expect_code(3);
    let event = rehearsal_event(&run);
    let exceeded = &event["verdict"]["exceeded"][0];
    assert_eq!(exceeded["relation"], "marketplace.sellers", "{event:#}");
    assert!(
        exceeded["measured_ms"].as_u64().unwrap() >= 1400,
        "{event:#}"
    );
    assert!(exceeded["migration"]
        .as_str()
        .unwrap()
        .starts_with("bb00000000b1"));
    assert!(event["duration_ms"].as_u64().unwrap() >= 1400, "{event:#}");
    // Only Alembic's session: no autovacuum, no ballast session among the statements.
    for statement in event["statements"].as_array().unwrap() {
        let sql = statement["sql"].as_str().unwrap();
        assert!(
            !sql.contains("autovacuum") && !sql.contains("pg_stat_activity"),
            "{event:#}"
        );
    }
}

#[test]
fn an_env_py_that_connects_to_the_target_is_refused_on_the_copy_and_the_target_is_untouched() {
    use crate::alembic_projects::{env_py_takes_the_ini_url, marketplace_tables};
    let p = Project::new();
    p.alembic();
    // env.py ignores the URL ballast gives it and takes the ini's: the target itself.
    env_py_takes_the_ini_url(&p, &p.url);
    let run = p.ballast(&["rehearse"]);
    run.expect_code(3);
    let out = run.all();
    assert!(
        out.contains(&format!("connects to database `{}`", p.db)) && out.contains("on the copy"),
        "{out}"
    );
    assert_eq!(marketplace_tables(&p), "0", "nothing ran on the target");
    assert!(rehearsal_copies(&p).is_empty());
}
