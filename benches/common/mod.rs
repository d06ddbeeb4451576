//! What the benchmarks share: the generated database (text, numbers, JSON and
//! timestamps, not blank filler; about 3.2 million rows at the default 1024 MB) and
//! the shell helpers that time commands.

#![allow(dead_code)]

use std::process::Command;
use std::time::Instant;

use ballast::scratch::ScratchCluster;

/// Creates database `bench` on `cluster` with one `events` table of about `size_mb`
/// megabytes; returns its URL and its size.
pub fn generated_database(cluster: &ScratchCluster, size_mb: u64) -> (String, u64) {
    let url = cluster.url("bench");
    sh(&format!(
        "psql -X -q -d '{}' -c 'create database bench'",
        cluster.url("postgres")
    ));
    // ~330 bytes a row on disk: words, numbers, a JSON document, timestamps.
    let rows = size_mb * 1024 * 1024 / 330;
    let t = Instant::now();
    sh(&format!(
        "psql -X -q -d '{url}' <<'SQL'
create table events (
    id bigint primary key, customer text, amount numeric(12,2), quantity int,
    happened timestamptz, note text, payload jsonb);
insert into events
select g,
       'customer-' || (random() * 100000)::int,
       (random() * 10000)::numeric(12,2),
       (random() * 50)::int,
       now() - random() * interval '900 days',
       substr(md5(random()::text) || ' ' || md5(random()::text) || ' order shipped to '
              || (array['Lyon','Porto','Riga','Quito','Osaka','Perth'])[1 + (random() * 5)::int], 1, 40 + (random() * 60)::int),
       jsonb_build_object('sku', md5(random()::text), 'tags', jsonb_build_array(md5(g::text), (random() * 1000)::int),
                          'ok', random() > 0.5, 'score', random())
from generate_series(1, {rows}) g;
SQL"
    ));
    let db_bytes: u64 = output(&format!(
        "psql -X -A -t -d '{url}' -c \"select pg_database_size('bench')\""
    ))
    .trim()
    .parse()
    .unwrap();
    println!(
        "generated {} ({rows} rows) in {:.0} s",
        mib(db_bytes),
        t.elapsed().as_secs_f64()
    );
    (url, db_bytes)
}

pub fn timed(script: &str) -> f64 {
    let t = Instant::now();
    sh(script);
    t.elapsed().as_secs_f64()
}

pub fn sh(script: &str) {
    let status = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .status()
        .unwrap();
    assert!(status.success(), "failed: {script}");
}

pub fn output(script: &str) -> String {
    String::from_utf8(
        Command::new("bash")
            .args(["-c", script])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

pub fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1048576.0)
}
