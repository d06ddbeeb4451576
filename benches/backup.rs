//! `ballast backup` against the shell pipelines it replaces, on generated data.
//!
//! `cargo bench --bench backup [-- SIZE_MB]` (default 1024). One throwaway cluster,
//! one generated database of text, numbers, JSON and timestamps (not blank filler),
//! then, in the same run: `pg_dump -Fc -Z0 > /dev/null` (the floor), `pg_dump -Fc -Z0
//! | gzip -6 > file` (the script ballast replaces), `ballast` to local storage (plain,
//! and sealed with age right after it) and to an S3 server (moto, when
//! scripts/ensure-moto installed it). Reports wall time, output
//! size and ballast's peak RSS (GNU time). Compare ratios, not seconds: the machine is
//! shared.

use std::path::Path;
use std::process::{Command, Stdio};
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
    let floor = timed(&format!("pg_dump -Fc -Z0 -d '{url}' > /dev/null"));
    let gz_file = d.join("dump.gz");
    let gzip = timed(&format!(
        "pg_dump -Fc -Z0 -d '{url}' | gzip -6 > '{}'",
        gz_file.display()
    ));
    let gzip_size = std::fs::metadata(&gz_file).unwrap().len();

    std::fs::write(
        d.join("only-backup.toml"),
        "[[stages]]\nkind = \"backup\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("deploy.toml"),
        format!("[database]\nurl = \"{url}\"\n[backup]\ndir = \"local\"\n"),
    )
    .unwrap();
    let (local, local_rss) = ballast(d, &[]);
    let local_size = dir_size(&d.join("local"));
    std::fs::remove_dir_all(d.join("local")).unwrap();
    // Sealed with age, right after the plain one: what encryption adds.
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let key_file = d.join("key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&key_file, identity.to_string().expose_secret()).unwrap();
    }
    let plain_config = format!("[database]\nurl = \"{url}\"\n[backup]\ndir = \"local\"\n");
    let sealed_config = format!(
        "{plain_config}age_recipients = [\"{recipient}\"]\nage_identity_file = \"{}\"\n",
        key_file.display()
    );
    std::fs::write(d.join("deploy.toml"), &sealed_config).unwrap();
    let (sealed, sealed_rss) = ballast(d, &[]);
    let sealed_size = dir_size(&d.join("local"));
    std::fs::remove_dir_all(d.join("local")).unwrap();
    // The whole `ballast backup` command (dump, then verify every byte, then prune),
    // plain and sealed (verified with the identity: decrypted and inflated).
    std::fs::write(d.join("deploy.toml"), &plain_config).unwrap();
    let (command, command_rss) = ballast_command(d, &["--yes", "-q", "backup"]);
    // Reading that backup back: `verify-backup` (hash, inflate on several threads,
    // pg_restore --list) against a bare single-threaded `gunzip` of the same object.
    let object = std::fs::read_dir(d.join("local"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".dump.gz"))
        .unwrap();
    let gunzip = timed(&format!("gunzip -c '{}' > /dev/null", object.display()));
    let (verify, _) = ballast_command(d, &["-q", "verify-backup"]);
    std::fs::remove_dir_all(d.join("local")).unwrap();
    std::fs::write(d.join("deploy.toml"), &sealed_config).unwrap();
    let (sealed_command, sealed_command_rss) = ballast_command(d, &["--yes", "-q", "backup"]);
    std::fs::remove_dir_all(d.join("local")).unwrap();
    std::fs::write(d.join("deploy.toml"), &plain_config).unwrap();
    let (fast, fast_rss) = ballast(d, &["--set", "backup.compression_level=1"]);
    let fast_size = dir_size(&d.join("local"));

    println!();
    println!(
        "{:<44} {:>9} {:>8} {:>10} {:>9}",
        "", "wall", "vs gzip", "size", "peak RSS"
    );
    let dash = || "-".to_string();
    row(
        "pg_dump -Fc -Z0 > /dev/null (floor)",
        floor,
        gzip,
        dash(),
        dash(),
    );
    row(
        "pg_dump -Fc -Z0 | gzip -6 > file",
        gzip,
        gzip,
        mib(gzip_size),
        dash(),
    );
    row(
        "ballast backup, local folder",
        local,
        gzip,
        vs_gzip(local_size, gzip_size),
        mib(local_rss),
    );
    row(
        "ballast backup, local, sealed with age",
        sealed,
        gzip,
        vs_gzip(sealed_size, gzip_size),
        mib(sealed_rss),
    );
    row(
        "`ballast backup` (dump, verify, prune)",
        command,
        gzip,
        dash(),
        mib(command_rss),
    );
    row(
        "`ballast backup`, sealed with age",
        sealed_command,
        gzip,
        dash(),
        mib(sealed_command_rss),
    );
    row(
        "ballast backup, local, compression_level 1",
        fast,
        gzip,
        vs_gzip(fast_size, gzip_size),
        mib(fast_rss),
    );
    let moto = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/moto_server");
    if moto.is_file() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        sh(&format!(
            "curl -s -X PUT http://127.0.0.1:{port}/bench >/dev/null"
        ));
        std::fs::write(
            d.join("deploy.toml"),
            format!(
                "[database]\nurl = \"{url}\"\n[backup]\ndir = \"local\"\n[backup.s3]\nbucket = \"bench\"\nendpoint = \"http://127.0.0.1:{port}\"\nforce_path_style = true\n"
            ),
        )
        .unwrap();
        let (s3, s3_rss) = ballast(d, &[]);
        row(
            "ballast backup, S3 (moto on loopback)",
            s3,
            gzip,
            dash(),
            mib(s3_rss),
        );
        let _ = server.kill();
        let _ = server.wait();
    }
    println!(
        "\nsealed with age: {:.2}x the plain local backup's time; the whole command sealed {:.2}x the plain command's",
        sealed / local,
        sealed_command / command
    );
    println!(
        "verify-backup {:.1} s (process start, SHA-256, inflate, pg_restore --list) vs gunzip -c > /dev/null {:.1} s: {:.2}x",
        verify,
        gunzip,
        gunzip / verify
    );
    println!(
        "\ndatabase {} ; dump floor {:.0} MB/s of database",
        mib(db_bytes),
        db_bytes as f64 / 1e6 / floor
    );
}

/// Runs the one-stage backup pipeline under GNU time; returns (seconds, peak RSS bytes).
fn ballast(dir: &Path, extra: &[&str]) -> (f64, u64) {
    let args: Vec<&str> = extra
        .iter()
        .copied()
        .chain(["--yes", "-q", "run", "only-backup.toml"])
        .collect();
    ballast_command(dir, &args)
}

/// Runs `ballast ARGS` under GNU time; returns (seconds, peak RSS bytes).
fn ballast_command(dir: &Path, args: &[&str]) -> (f64, u64) {
    let rss_file = dir.join("rss");
    let t = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .status()
        .unwrap();
    let seconds = t.elapsed().as_secs_f64();
    assert!(status.success(), "ballast backup failed");
    let kib: u64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    (seconds, kib * 1024)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".dump.gz") || name.ends_with(".dump.gz.age")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// One line of the results table; the speed column is relative to the gzip pipeline.
fn row(label: &str, seconds: f64, gzip_seconds: f64, size: String, rss: String) {
    let speed = format!("{:.2}x", gzip_seconds / seconds);
    println!("{label:<44} {seconds:>8.1}s {speed:>8} {size:>10} {rss:>9}");
}

/// `383 MiB (-0.5%)`: an output size and how it compares with gzip -6's.
fn vs_gzip(size: u64, gzip_size: u64) -> String {
    format!(
        "{} ({:+.1}%)",
        mib(size),
        100.0 * (size as f64 / gzip_size as f64 - 1.0)
    )
}
