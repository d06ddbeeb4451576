//! Shared test helpers: one throwaway PostgreSQL per test binary, a fresh database and
//! project folder per test, and the real `ballast` binary run as a user would run it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ballast::scratch::ScratchCluster;

static CLUSTER: OnceLock<ScratchCluster> = OnceLock::new();
static S3: OnceLock<S3Server> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn cluster() -> &'static ScratchCluster {
    CLUSTER.get_or_init(|| {
        let cluster = ScratchCluster::start().expect("start a throwaway PostgreSQL");
        cluster
            .stop_when_process_exits(std::process::id())
            .expect("start the cluster's watchdog");
        cluster
    })
}

/// A test's own database and project folder (deploy.toml, migrations/, backups/).
pub struct Project {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub url: String,
}

impl Project {
    pub fn new() -> Project {
        Project::on(cluster())
    }

    /// A project on a cluster of the test's own (one it may stop and start).
    pub fn on(cluster: &ScratchCluster) -> Project {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let db = format!("t{}_{n}", std::process::id());
        psql(&cluster.url("postgres"), &format!("create database {db}"));
        let url = cluster.url(&db);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        let project = Project { dir, db, url };
        project.write_config("");
        project
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies the fixture Alembic project to `app/` and points deploy.toml at it
    /// (schema `marketplace`, the venv scripts/ensure-alembic made). Returns the
    /// copy's `versions/` folder, for tests that add or remove revisions.
    pub fn alembic(&self) -> PathBuf {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alembic/marketplace");
        let app = self.path().join("app");
        copy_tree(&fixture, &app);
        self.write_config(&alembic_config(""));
        app.join("alembic/versions")
    }

    /// deploy.toml with this test's database and `extra` appended.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "[database]\nurl = \"{}\"\nlock_timeout = \"2s\"\nlock_wait = \"3s\"\nlock_retries = 1\nlock_retry_wait = \"500ms\"\n{extra}\n",
            self.url
        );
        std::fs::write(self.path().join("deploy.toml"), text).unwrap();
    }

    /// A schema the database had before ballast: `sql` runs, then `ballast baseline
    /// none` records that none of the migrations built it (a deploy refuses a schema
    /// with tables and no ledger).
    pub fn existing(&self, sql: &str) {
        self.sql(sql);
        self.ballast(&["--yes", "baseline", "none"]).expect_code(0);
    }

    pub fn migration(&self, relative: &str, sql: &str) -> &Project {
        let path = self.path().join("migrations").join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, sql).unwrap();
        self
    }

    /// Runs `ballast ARGS` in the project folder, with stdin closed (no terminal) and a
    /// clean environment for ballast's own variables.
    pub fn ballast(&self, args: &[&str]) -> Run {
        self.ballast_with(args, &[])
    }

    pub fn ballast_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args, env);
        Run(cmd.output().expect("run ballast"))
    }

    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ballast"));
        cmd.args(args)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .env_remove("DATABASE_URL")
            .env("NO_COLOR", "1")
            // For the S3 test server, which accepts any credentials.
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (key, _) in std::env::vars() {
            if key.starts_with("BALLAST_") {
                cmd.env_remove(key);
            }
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Config lines for a pg_dump stand-in: `--version` answers like the real one,
    /// anything else runs `body` (a shell fragment that may call the real pg_dump "$@").
    pub fn fake_pg_dump(&self, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let script = self.path().join("fake_pg_dump.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncase \"$*\" in *--version*) exec pg_dump --version;; esac\n{body}\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        format!("[backup]\npg_dump = \"{}\"\n", script.display())
    }

    /// A backup only, not verified (`ballast backup` also verifies and prunes).
    pub fn bare_backup(&self) {
        let pipeline = self.path().join("bare-backup.toml");
        std::fs::write(&pipeline, "[[stages]]\nkind = \"backup\"\n").unwrap();
        self.ballast(&["run", pipeline.to_str().unwrap()])
            .expect_code(0);
    }

    pub fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    pub fn table_exists(&self, name: &str) -> bool {
        self.sql(&format!("select to_regclass('{name}') is not null")) == "t"
    }

    /// `pg_dump --schema-only` of one schema, ballast's own tables left out: what a
    /// recovery must bring back exactly. Without the `\restrict` key pg_dump 13.22,
    /// 14.19, 15.14, 16.10, 17.6 and later write, which is random on every dump.
    pub fn schema_dump(&self, schema: &str) -> String {
        let out = Command::new("pg_dump")
            .args(["--schema-only", "--no-owner", "--schema", schema])
            .arg(format!("--exclude-table={schema}.ballast_*"))
            .args(["-d", &self.url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes `pipelines/NAME.toml` beside the project's config (`ballast run NAME`; a
    /// built-in name is overridden).
    pub fn pipeline(&self, name: &str, toml: &str) {
        std::fs::create_dir_all(self.path().join("pipelines")).unwrap();
        std::fs::write(self.path().join(format!("pipelines/{name}.toml")), toml).unwrap();
    }

    /// `pipelines/NAME.toml`: a downgrade stage (to `to`, or without one back to where
    /// the run started), with a state check before it and a verify after it when
    /// `checked`.
    pub fn downgrade_pipeline(&self, name: &str, to: Option<&str>, checked: bool) {
        let to = to.map(|v| format!("to = \"{v}\"\n")).unwrap_or_default();
        let downgrade = format!("[[stages]]\nkind = \"downgrade\"\n{to}");
        self.pipeline(
            name,
            &if checked {
                format!("[[stages]]\nkind = \"state-check\"\n{downgrade}[[stages]]\nkind = \"verify\"\n")
            } else {
                downgrade
            },
        );
    }

    /// Writes the built-in deploy pipeline into the project's `pipelines/` with its
    /// `[on_failure] downgrade` and `restore` set.
    pub fn on_failure(&self, downgrade: bool, restore: &str) {
        let builtin = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/pipelines/deploy.toml"
        ))
        .unwrap();
        self.pipeline(
            "deploy",
            &builtin
                .replace("downgrade = true", &format!("downgrade = {downgrade}"))
                .replace("restore = \"never\"", &format!("restore = \"{restore}\"")),
        );
    }

    /// A table `notes` with one row, and a migration `1_drop_notes` that drops it,
    /// whose down file creates it again, the same but empty: a downgrade that brings
    /// the structure back and not the data.
    pub fn notes_dropped_by_a_migration(&self) {
        self.existing("create table notes (id int primary key, body text); insert into notes values (1, 'remember me')");
        self.migration("1_drop_notes.sql", "drop table notes;")
            .migration(
                "1_drop_notes.down.sql",
                "create table notes (id int primary key, body text);",
            );
    }

    pub fn ledger_versions(&self) -> Vec<String> {
        if !self.table_exists("public.ballast_migrations") {
            return Vec::new();
        }
        let out = self
            .sql("select version from public.ballast_migrations order by length(version), version");
        out.lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The newest backup's manifest, from `ballast --json backups`.
    pub fn newest_backup(&self) -> serde_json::Value {
        let run = self.ballast(&["--json", "backups"]);
        let first = run.stdout().lines().next().expect("a backup").to_string();
        serde_json::from_str::<serde_json::Value>(&first).unwrap()["manifest"].clone()
    }

    pub fn backup_files(&self) -> Vec<PathBuf> {
        let dir = self.path().join("backups");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        };
        files.retain(|p| !p.ends_with("journal.jsonl"));
        files.sort();
        files
    }
}

/// Runs one statement with psql and returns its unaligned, tuples-only output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed on `{sql}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code; output:\n{}",
            self.all()
        );
        self
    }
}

/// The S3-protocol test server (moto, installed by scripts/ensure-moto), one per test
/// binary, stopped when the binary exits.
pub struct S3Server {
    pub endpoint: String,
    port: u16,
}

fn moto_server() -> PathBuf {
    let moto = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/moto_server");
    assert!(
        moto.is_file(),
        "{} is missing: run scripts/ensure-moto (scripts/test does)",
        moto.display()
    );
    moto
}

fn wait_listening(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An S3 test server of one test's own, which it may stop and start again (on the
/// same port, empty) without disturbing the other tests.
pub struct OwnS3 {
    pub server: S3Server,
    child: Option<std::process::Child>,
}

impl OwnS3 {
    pub fn start() -> OwnS3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut own = OwnS3 {
            server: S3Server {
                endpoint: format!("http://127.0.0.1:{port}"),
                port,
            },
            child: None,
        };
        own.start_again();
        own
    }

    pub fn start_again(&mut self) {
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &self.server.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        self.child = Some(child);
        wait_listening(self.server.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn s3() -> &'static S3Server {
    S3.get_or_init(|| {
        let moto = moto_server();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // The shell is a watchdog: it stops the server when this test binary exits.
        let script = format!(
            "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & server=$!; \
             while kill -0 {pid} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 0.5; done; kill $server",
            moto.display(),
            pid = std::process::id()
        );
        // Never waited on: the watchdog outlives this binary by design, and init reaps it.
        #[allow(clippy::zombie_processes)]
        Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_listening(port);
        S3Server { endpoint: format!("http://127.0.0.1:{port}"), port }
    })
}

impl S3Server {
    /// One plain HTTP request (moto does not check signatures); returns status and body.
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let (status, body) = self.request(method, path, "", body);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// One plain HTTP request with `headers` (each line ending in \r\n): status and
    /// body bytes.
    fn request(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, Vec<u8>) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let end = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(response.len());
        let status = String::from_utf8_lossy(&response[..end])
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, response.get(end + 4..).unwrap_or_default().to_vec())
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.http("PUT", &format!("/{bucket}"), b"");
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// A bucket made with S3 Object Lock enabled (and so versioning).
    pub fn create_locked_bucket(&self, bucket: &str) {
        let (status, body) = self.request(
            "PUT",
            &format!("/{bucket}"),
            "x-amz-bucket-object-lock-enabled: true\r\n",
            b"",
        );
        assert_eq!(
            status,
            200,
            "create locked bucket {bucket}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Keys in `bucket`, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let (_, body) = self.http("GET", &format!("/{bucket}?list-type=2"), b"");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect();
        keys.sort();
        keys
    }

    /// The bytes of object `key` in `bucket`.
    pub fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let (status, body) = self.request("GET", &format!("/{bucket}/{key}"), "", b"");
        assert_eq!(status, 200, "GET {key}: {}", String::from_utf8_lossy(&body));
        body
    }

    /// Unfinished multipart uploads in `bucket`.
    pub fn unfinished_uploads(&self, bucket: &str) -> usize {
        let (_, body) = self.http("GET", &format!("/{bucket}?uploads"), b"");
        body.matches("<Upload>").count()
    }
}

impl Project {
    /// This project's backups go to a fresh bucket on the S3 test server.
    pub fn with_s3(&self, extra: &str) -> String {
        self.with_s3_on(s3(), extra)
    }

    /// [`Self::with_s3`] on a given server.
    pub fn with_s3_on(&self, server: &S3Server, extra: &str) -> String {
        let bucket = format!("b-{}", self.db.replace('_', "-"));
        server.create_bucket(&bucket);
        self.write_config(&format!(
            "[backup.s3]\nbucket = \"{bucket}\"\nprefix = \"shop/\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\nforce_path_style = true\n{extra}",
            server.endpoint
        ));
        bucket
    }
}

/// Holds `sql`'s locks in an open transaction until dropped.
pub struct Blocker(std::process::Child);

impl Blocker {
    /// A transaction that took the locks of `sql` and sleeps in `pg_sleep`, holding
    /// them, until dropped (or cancelled).
    pub fn hold(url: &str, sql: &str) -> Blocker {
        Blocker::start(
            url,
            &format!("set application_name = 'blocker'; begin; {sql}; select pg_sleep(60);"),
            "application_name = 'blocker' and wait_event = 'PgSleep'",
            "the blocker session never took its locks",
        )
    }

    /// A transaction that ran `sql` (taking its locks) and then does nothing, as an
    /// application that forgot to commit: `idle in transaction`, until dropped.
    pub fn idle_in_transaction(url: &str, sql: &str) -> Blocker {
        Blocker::start(
            url,
            &format!("set application_name = 'blocker'; begin; {sql};"),
            "application_name = 'blocker' and state = 'idle in transaction'",
            "the blocker never went idle in its transaction",
        )
    }

    /// A client connected and idle, in no transaction (an application's pooled
    /// connection), named `application_name`, until dropped.
    pub fn idle(url: &str, application_name: &str) -> Blocker {
        Blocker::start(
            url,
            &format!("set application_name = '{application_name}';"),
            &format!("application_name = '{application_name}' and state = 'idle'"),
            "the idle client never connected",
        )
    }

    /// A psql session fed `script`, once one session of this database matches
    /// `ready` (a `pg_stat_activity` condition).
    fn start(url: &str, script: &str, ready: &str, never: &str) -> Blocker {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-d", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "{script}").unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let count = format!(
            "select count(*) from pg_stat_activity where {ready} and datname = current_database()"
        );
        while psql(url, &count) != "1" {
            assert!(Instant::now() < deadline, "{never}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Blocker(child)
    }
}

impl Drop for Blocker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Filters that make output stable for snapshots: times, ids, sizes, ports, paths.
pub fn snapshot_filters(p: &Project) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    // Leading spaces too: right-aligned time columns change width with the time.
    settings.add_filter(r" *\b\d+(\.\d+)? (ms|s)\b", " [time]");
    settings.add_filter(r" *\b\d+m\d\ds\b", " [time]");
    settings.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[run-id]",
    );
    settings.add_filter(r"plan [0-9a-f]{12}", "plan [hash]");
    settings.add_filter(r"sha256 [0-9a-f]{16}", "sha256 [sha]");
    settings.add_filter(r"\d{8}T\d{6}Z-[0-9a-f]{8}", "[stamp]");
    settings.add_filter(r"\d+(\.\d+)? (B|KiB|MiB)\b", "[size]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    settings.add_filter(&regex_escape(p.path().to_str().unwrap()), "[project]");
    settings.add_filter(&p.db, "[db]");
    settings
}

/// The Python of the Alembic venv scripts/ensure-alembic makes.
pub fn alembic_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/alembic-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/ensure-alembic (scripts/test does)",
        python.display()
    );
    python
}

/// deploy.toml lines (after `[database]`'s url) for the fixture Alembic project in
/// `app/`; `extra` goes into `[migrations]`.
pub fn alembic_config(extra: &str) -> String {
    format!(
        "schema = \"marketplace\"\n[migrations]\nengine = \"alembic\"\nalembic_ini = \"app/alembic.ini\"\npython = \"{}\"\nversion_schema = \"marketplace\"\n{extra}\n",
        alembic_python().display()
    )
}

/// deploy.toml lines for a verify check that always fails: a failure after the commit.
pub const FAILING_VERIFY: &str = "[[verify.checks]]\nname = \"never\"\nsql = \"select false\"\n";

/// The fixture Alembic project's head revision.
pub const ALEMBIC_HEAD: &str = "f6a0b1c2d3e4";

/// The Alembic version table's rows (`a+b` for several heads).
pub fn alembic_version(p: &Project) -> String {
    p.sql(
        "select string_agg(version_num, '+' order by version_num) from marketplace.alembic_version",
    )
}

/// Writes an Alembic revision `id` on top of `down`; `upgrade` and `downgrade` are
/// Python lines (one statement each) of the two functions' bodies.
pub fn alembic_revision(dir: &Path, id: &str, down: &str, upgrade: &[&str], downgrade: &str) {
    std::fs::write(
        dir.join(format!("{id}_added.py")),
        format!(
            "\"\"\"added by a test {id}\n\nRevision ID: {id}\nRevises: {down}\n\"\"\"\nimport sqlalchemy as sa\nfrom alembic import op\n\nrevision = \"{id}\"\ndown_revision = \"{down}\"\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    {}\n\n\ndef downgrade():\n    {downgrade}\n",
            upgrade.join("\n    ")
        ),
    )
    .unwrap();
}

/// Switches the copied fixture project's env.py to one transaction per revision.
pub fn alembic_per_migration(p: &Project) {
    let env = p.path().join("app/alembic/env.py");
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.contains("transaction_per_migration=False"),
        "the fixture's env.py no longer sets transaction_per_migration"
    );
    std::fs::write(
        &env,
        text.replace(
            "transaction_per_migration=False",
            "transaction_per_migration=True",
        ),
    )
    .unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
