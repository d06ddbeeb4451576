//! `ballast rehearse` on the backup benchmark's database, its time split into the
//! restore and the plan's run, against `pg_restore` of the same dump into an empty
//! database in the same run (the floor a restore cannot beat).
//!
//! `cargo bench --bench rehearse [-- SIZE_MB]` (default 1024: about 3.2 million rows).
//! The plan: a column added (milliseconds) and a type change that rewrites the table.
//! Compare ratios, not seconds: the machine is shared.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ballast::scratch::ScratchCluster;

mod common;
use common::{mib, sh, timed};

fn main() {
    let size_mb: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let cluster = ScratchCluster::start().expect("start a throwaway PostgreSQL");
    let (url, db_bytes) = common::generated_database(&cluster, size_mb);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("migrations")).unwrap();
    std::fs::write(
        d.join("deploy.toml"),
        format!("[database]\nurl = \"{url}\"\n[backup]\ndir = \"local\"\n"),
    )
    .unwrap();
    ballast(d, &["--yes", "-q", "baseline", "none"]);
    std::fs::write(
        d.join("migrations/1_add_note.sql"),
        "alter table events add column reviewed_at timestamptz;\n",
    )
    .unwrap();
    std::fs::write(
        d.join("migrations/2_widen_quantity.sql"),
        "alter table events alter column quantity type bigint;\n",
    )
    .unwrap();
    ballast(d, &["--yes", "-q", "backup"]);
    let dump = std::fs::read_dir(d.join("local"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".dump.gz"))
        .expect("the backup");

    let admin = cluster.url("postgres");
    let mut pg_restore = Vec::new();
    let mut restores = Vec::new();
    let mut runs = Vec::new();
    let mut wholes = Vec::new();
    for round in 0..3 {
        // The floor: the same dump, gunzipped into pg_restore, into an empty database.
        sh(&format!(
            "psql -X -q -d '{admin}' -c 'create database floor'"
        ));
        let floor_url = cluster.url("floor");
        pg_restore.push(timed(&format!(
            "gunzip -c '{}' | pg_restore --single-transaction --exit-on-error --no-owner -d '{floor_url}'",
            dump.display()
        )));
        sh(&format!("psql -X -q -d '{admin}' -c 'drop database floor'"));
        let t = Instant::now();
        let out = ballast(d, &["--json", "rehearse", "--from", "latest"]);
        wholes.push(t.elapsed().as_secs_f64());
        let event: serde_json::Value = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "rehearsal")
            .expect("a rehearsal event");
        restores.push(event["restore_ms"].as_f64().unwrap() / 1000.0);
        runs.push(event["duration_ms"].as_f64().unwrap() / 1000.0);
        println!(
            "round {round}: pg_restore {:.1} s; rehearsal restore {:.1} s ({:.2}x), plan {:.1} s, whole command {:.1} s",
            pg_restore[round],
            restores[round],
            restores[round] / pg_restore[round],
            runs[round],
            wholes[round]
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (floor, restore, run, whole) = (
        median(&mut pg_restore),
        median(&mut restores),
        median(&mut runs),
        median(&mut wholes),
    );
    println!(
        "\ndatabase {}; medians of 3: pg_restore {floor:.1} s; rehearsal: restore {restore:.1} s ({:.2}x pg_restore; the goal is 1.3x at most), plan on the copy {run:.1} s, whole command {whole:.1} s",
        mib(db_bytes),
        restore / floor
    );
}

/// Runs `ballast ARGS` in `dir`; its stdout.
fn ballast(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ballast {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
