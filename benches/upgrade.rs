//! The upgrade stage on many small migrations, against `psql -1` over the same files.
//!
//! `cargo bench --bench upgrade [-- N]` (default 200 migrations, 3 rounds each).
//! Both run against the same throwaway cluster in the same run; the machine is shared
//! and noisy, so compare the ratio, not the seconds.

use std::process::{Command, Stdio};
use std::time::Instant;

use ballast::scratch::ScratchCluster;

fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let rounds = 3;
    let cluster = ScratchCluster::start().expect("start a throwaway PostgreSQL");
    let project = tempfile::tempdir().unwrap();
    let migrations = project.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    let mut all = String::new();
    for i in 1..=count {
        let sql = format!(
            "create table t{i} (id bigint primary key, note text not null default '');\n\
             insert into t{i} (id) values (1), (2), (3);\ncreate index t{i}_note_idx on t{i} (note);\n"
        );
        std::fs::write(migrations.join(format!("{i:04}_table_{i}.sql")), &sql).unwrap();
        all.push_str(&sql);
    }
    let all_path = project.path().join("all.sql");
    std::fs::write(&all_path, all).unwrap();

    let mut baseline = Vec::new();
    let mut upgrade = Vec::new();
    let mut whole = Vec::new();
    for round in 0..rounds {
        let base_db = format!("base_{round}");
        createdb(&cluster, &base_db);
        let t = Instant::now();
        let status = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-1",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &cluster.url(&base_db),
                "-f",
            ])
            .arg(&all_path)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        baseline.push(t.elapsed().as_secs_f64());

        let db = format!("ballast_{round}");
        createdb(&cluster, &db);
        std::fs::write(
            project.path().join("deploy.toml"),
            format!(
                "[database]\nurl = \"{}\"\n[backup]\ndir = \"backups-{round}\"\n",
                cluster.url(&db)
            ),
        )
        .unwrap();
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["--yes", "--json", "deploy"])
            .current_dir(project.path())
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        whole.push(t.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let ms = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "stage_finished" && e["stage"] == "upgrade")
            .and_then(|e| e["duration_ms"].as_u64())
            .expect("an upgrade stage_finished event");
        upgrade.push(ms as f64 / 1000.0);
    }
    let (b, u, w) = (
        median(&mut baseline),
        median(&mut upgrade),
        median(&mut whole),
    );
    println!("{count} migrations, median of {rounds} rounds");
    println!("  psql -1 (baseline)          {b:.3} s");
    println!(
        "  ballast upgrade stage       {u:.3} s   ({:.2}x baseline)",
        u / b
    );
    println!("  ballast deploy, whole run   {w:.3} s   ({:.2}x baseline; includes backup, checks, process start)", w / b);
}

fn createdb(cluster: &ScratchCluster, name: &str) {
    let status = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-d",
            &cluster.url("postgres"),
            "-c",
            &format!("create database {name}"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}
