//! Backups sealed with age (src/backup/seal.rs) and kept private: what is stored holds
//! no plaintext, opens with any one recipient's identity and with a second age
//! implementation (pyrage), and is refused, with the recipients named, without one.
//! Local files are 0600 in a 0700 folder whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::ExposeSecret;

use crate::harness::{cluster, psql, Project};

/// A row no backup may carry in the clear.
const MARKER: &str = "customer-secret-4242";

/// An age identity file in the project, and its recipient (public key).
fn key(p: &Project, name: &str) -> (PathBuf, String) {
    let identity = age::x25519::Identity::generate();
    let path = p.path().join(name);
    std::fs::write(
        &path,
        format!(
            "# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    (path, identity.to_public().to_string())
}

fn seed(p: &Project) {
    p.sql(&format!(
        "create table customers (id int primary key, note text); \
         insert into customers select g, '{MARKER}-' || g from generate_series(1, 20000) g"
    ));
}

fn sealed_config(recipients: &[&str]) -> String {
    let list: Vec<String> = recipients.iter().map(|r| format!("\"{r}\"")).collect();
    format!("[backup]\nage_recipients = [{}]\n", list.join(", "))
}

/// What `script` prints, run by the test venv's Python (scripts/ensure-moto and
/// ensure-pyrage) with `args`; a failure shows its stderr.
fn venv_python(script: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What a second age implementation makes of `sealed`: pyrage decrypts with
/// `identity` (an age identity file, or an OpenSSH private key), gunzip decompresses;
/// the pg_dump archive's first bytes.
fn pyrage_opens(sealed: &[u8], identity: &Path, dir: &Path) -> Vec<u8> {
    let input = dir.join("sealed.bin");
    std::fs::write(&input, sealed).unwrap();
    venv_python(
        "import gzip, sys, pyrage\n\
         text = open(sys.argv[1]).read()\n\
         ssh = text.startswith('-----BEGIN OPENSSH')\n\
         key = pyrage.ssh.Identity.from_buffer(text.encode()) if ssh else pyrage.x25519.Identity.from_str([l for l in text.splitlines() if l.startswith('AGE-SECRET-KEY-')][0])\n\
         plain = pyrage.decrypt(open(sys.argv[2], 'rb').read(), [key])\n\
         sys.stdout.buffer.write(gzip.decompress(plain)[:16])",
        &[identity.as_os_str(), input.as_os_str()],
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_sealed_backup_round_trips_on_local_storage_with_any_one_recipient() {
    let p = Project::new();
    seed(&p);
    let (ops, ops_key) = key(&p, "ops.txt");
    let (dr, dr_key) = key(&p, "dr.txt");
    let (stranger, _) = key(&p, "stranger.txt");
    p.write_config(&sealed_config(&[&ops_key, &dr_key]));
    p.ballast(&["backup"]).expect_code(0);
    let manifest = p.newest_backup();
    let id = manifest["id"].as_str().unwrap().to_string();
    assert_eq!(manifest["object"], format!("{id}.dump.gz.age"));
    assert_eq!(manifest["sealed"]["scheme"], "age");
    assert_eq!(
        manifest["sealed"]["recipients"],
        serde_json::json!([ops_key, dr_key])
    );
    let listing = p.ballast(&["backups"]).stdout();
    let short = format!("{}…{} +1", &ops_key[..8], &ops_key[ops_key.len() - 4..]);
    assert!(listing.contains(&short), "{listing}");

    let object = p.path().join("backups").join(format!("{id}.dump.gz.age"));
    let stored = std::fs::read(&object).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        !contains(&stored, MARKER.as_bytes()),
        "plaintext rows stored"
    );
    assert!(!contains(&stored, b"PGDMP"), "a plaintext archive stored");
    assert!(!contains(&stored, b"AGE-SECRET-KEY"), "a secret key stored");
    assert_eq!(&pyrage_opens(&stored, &dr, p.path())[..5], b"PGDMP");

    // Without an identity: what is stored is checked, and said to be only that.
    let unopened = p.ballast(&["verify-backup", &id]);
    unopened.expect_code(0);
    assert!(
        unopened.stdout().contains("contents were not checked"),
        "{}",
        unopened.stdout()
    );
    let opened = p.ballast(&["verify-backup", &id, "--identity", ops.to_str().unwrap()]);
    opened.expect_code(0);
    assert!(opened.stdout().contains("is sound"), "{}", opened.stdout());

    // A restore without the identity, or with a stranger's: refused, nothing made.
    let drill = format!("{}_drill", p.db);
    let refused = p.ballast(&["--yes", "restore", &id, "--into", &drill]);
    refused.expect_code(3);
    assert!(
        refused.stderr().contains(&ops_key) && refused.stderr().contains("--identity"),
        "{}",
        refused.stderr()
    );
    let wrong = p.ballast(&[
        "--yes",
        "restore",
        &id,
        "--into",
        &drill,
        "--identity",
        stranger.to_str().unwrap(),
    ]);
    wrong.expect_code(3);
    assert!(
        wrong.stderr().contains("none of the identities"),
        "{}",
        wrong.stderr()
    );
    let exists = format!("select count(*) from pg_database where datname = '{drill}'");
    assert_eq!(psql(&cluster().url("postgres"), &exists), "0");
    // Each recipient alone restores it, identical.
    for (n, identity) in [&ops, &dr].into_iter().enumerate() {
        let into = format!("{drill}{n}");
        p.ballast(&[
            "--yes",
            "restore",
            &id,
            "--into",
            &into,
            "--identity",
            identity.to_str().unwrap(),
        ])
        .expect_code(0);
        assert_eq!(
            psql(
                &cluster().url(&into),
                &format!("select count(*) from customers where note like '{MARKER}-%'")
            ),
            "20000"
        );
    }

    // One byte flipped in storage: corrupt, and no restore.
    let mut damaged = stored.clone();
    let n = damaged.len();
    damaged[n / 2] ^= 0x20;
    std::fs::write(&object, &damaged).unwrap();
    let corrupt = p.ballast(&["verify-backup", &id, "--identity", ops.to_str().unwrap()]);
    corrupt.expect_code(1);
    assert!(corrupt.stderr().contains("corrupt"), "{}", corrupt.stderr());
    let no_restore = p.ballast(&[
        "--yes",
        "restore",
        &id,
        "--into",
        &format!("{drill}_x"),
        "--identity",
        ops.to_str().unwrap(),
    ]);
    no_restore.expect_code(3);
    assert!(
        no_restore.stdout().contains("corrupt") || no_restore.stderr().contains("corrupt"),
        "{}",
        no_restore.stdout()
    );
}

#[test]
fn a_sealed_backup_round_trips_on_s3() {
    let p = Project::new();
    seed(&p);
    let (ops, ops_key) = key(&p, "ops.txt");
    let bucket = p.with_s3("");
    // with_s3 writes [backup.s3]; the recipients go in [backup], above it.
    let config = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    let config = config.replacen(
        "[backup.s3]",
        &format!("{}\n[backup.s3]", sealed_config(&[&ops_key])),
        1,
    );
    std::fs::write(p.path().join("deploy.toml"), config).unwrap();
    p.ballast(&["backup"]).expect_code(0);
    let manifest = p.newest_backup();
    let id = manifest["id"].as_str().unwrap().to_string();
    let key_name = format!("shop/{id}.dump.gz.age");
    assert!(
        crate::harness::s3().keys(&bucket).contains(&key_name),
        "{:?}",
        crate::harness::s3().keys(&bucket)
    );
    let stored = crate::harness::s3().object(&bucket, &key_name);
    assert_eq!(
        stored.len() as u64,
        manifest["compressed_bytes"].as_u64().unwrap()
    );
    assert!(
        !contains(&stored, MARKER.as_bytes()),
        "plaintext rows stored"
    );
    assert_eq!(&pyrage_opens(&stored, &ops, p.path())[..5], b"PGDMP");
    p.ballast(&["verify-backup", &id, "--identity", ops.to_str().unwrap()])
        .expect_code(0);
    let drill = format!("{}_drill", p.db);
    p.ballast(&["--yes", "restore", &id, "--into", &drill])
        .expect_code(3);
    p.ballast_with(
        &["--yes", "restore", &id, "--into", &drill],
        &[("BALLAST_BACKUP__AGE_IDENTITY_FILE", ops.to_str().unwrap())],
    )
    .expect_code(0);
    assert_eq!(
        psql(&cluster().url(&drill), "select count(*) from customers"),
        "20000"
    );
}

#[test]
fn local_backups_are_private_whatever_the_umask() {
    for umask in ["000", "022"] {
        let p = Project::new();
        p.sql("create table t (id int)");
        let run = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" backup"))
            .arg(env!("CARGO_BIN_EXE_ballast"))
            .current_dir(p.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stdout)
        );
        let dir = p.path().join("backups");
        assert_eq!(mode(&dir), 0o700, "umask {umask}: the folder");
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.len() >= 3, "{files:?}");
        for file in &files {
            assert_eq!(mode(file), 0o600, "umask {umask}: {}", file.display());
        }
    }
    // A folder others can read is used, with a warning that says so.
    let p = Project::new();
    p.sql("create table t (id int)");
    let dir = p.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = p.ballast(&["backup"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("is not private") && run.stdout().contains("0755"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_sealed_upload_that_dies_part_way_leaves_nothing_that_looks_like_a_backup() {
    let p = Project::new();
    // Several 8 MiB parts are uploaded or uploading when pg_dump dies.
    p.sql("create table big (id int, note text); insert into big select g, md5(g::text) || md5((g * 3)::text) || md5((g * 7)::text) from generate_series(1, 400000) g");
    let (_, recipient) = key(&p, "ops.txt");
    // [backup] after [backup.s3]: TOML allows the parent table to come second.
    let fake = p.fake_pg_dump("pg_dump \"$@\" | head -c 40000000\nkill -KILL $$");
    let bucket = p.with_s3(&format!("{fake}\nage_recipients = [\"{recipient}\"]\n"));
    let run = p.ballast(&["backup"]);
    run.expect_code(1);
    crate::s3::assert_killed_and_aborted(&run, &bucket);
}

#[test]
fn ctrl_c_during_a_sealed_restore_leaves_the_target_untouched() {
    let p = Project::new();
    seed(&p);
    let (ops, recipient) = key(&p, "ops.txt");
    p.write_config(&sealed_config(&[&recipient]));
    p.ballast(&["backup"]).expect_code(0);
    let id = p.newest_backup()["id"].as_str().unwrap().to_string();
    p.sql("delete from customers where id > 10");
    let child = crate::faults::paused_at(
        &p,
        &["--yes", "restore", &id, "--identity", ops.to_str().unwrap()],
        "restore",
    );
    let out = crate::faults::signal(child, "INT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("was not touched"), "{stderr}");
    assert_eq!(p.sql("select count(*) from customers"), "10");
    // The next restore, with the identity, finishes.
    p.ballast(&["--yes", "restore", &id, "--identity", ops.to_str().unwrap()])
        .expect_code(0);
    assert_eq!(p.sql("select count(*) from customers"), "20000");
}

#[test]
fn object_lock_keeps_backups_from_early_deletion_and_prune_says_until_when() {
    let p = Project::new();
    p.sql("create table t (id int)");
    let s3 = crate::harness::s3();
    // A bucket without Object Lock: refused before anything is dumped.
    let plain = p.with_s3("object_lock_days = 3\n");
    let refused = p.ballast(&["backup"]);
    assert_ne!(refused.code(), 0);
    assert!(
        refused.stdout().contains("Object Lock") && refused.stdout().contains("object_lock_days"),
        "{}",
        refused.stdout()
    );
    assert!(s3.keys(&plain).is_empty(), "{:?}", s3.keys(&plain));

    let bucket = format!("locked-{}", p.db.replace('_', "-"));
    s3.create_locked_bucket(&bucket);
    let config = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    std::fs::write(
        p.path().join("deploy.toml"),
        config.replace(
            &format!("bucket = \"{plain}\""),
            &format!("bucket = \"{bucket}\""),
        ) + "object_lock_mode = \"governance\"\n[backup]\nkeep_last = 1\nkeep_days = 0\n",
    )
    .unwrap();
    p.ballast(&["backup"]).expect_code(0);
    p.ballast(&["backup"]).expect_code(0);
    let manifest = p.newest_backup();
    let until = manifest["locked_until"].as_str().unwrap().to_string();
    let id = manifest["id"].as_str().unwrap();
    for key in [
        format!("shop/{id}.dump.gz"),
        format!("shop/{id}.manifest.json"),
    ] {
        let lock = object_lock_of(&s3.endpoint, &bucket, &key);
        assert!(lock.starts_with("GOVERNANCE "), "{key}: {lock}");
        assert!(lock.contains(&until[..10]), "{key}: {lock} (until {until})");
    }
    // Retention would delete the older backup; the lock keeps it, and prune says so.
    let prune = p.ballast(&["--yes", "prune"]);
    prune.expect_code(0);
    assert!(
        prune.stdout().contains("locked by S3 Object Lock until"),
        "{}",
        prune.stdout()
    );
    assert_eq!(
        p.ballast(&["--json", "backups"]).stdout().lines().count(),
        2
    );
}

/// `MODE RETAIN_UNTIL` of an object, read back with the S3 API (boto3's HeadObject:
/// moto's GetObjectRetention answers 500).
fn object_lock_of(endpoint: &str, bucket: &str, key: &str) -> String {
    let out = venv_python(
        "import sys, boto3\n\
         s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='t', aws_secret_access_key='t', region_name='us-east-1')\n\
         h = s3.head_object(Bucket=sys.argv[2], Key=sys.argv[3])\n\
         print(h.get('ObjectLockMode'), h.get('ObjectLockRetainUntilDate').isoformat())",
        &[endpoint.as_ref(), bucket.as_ref(), key.as_ref()],
    );
    String::from_utf8_lossy(&out).trim().to_string()
}

/// An ed25519 SSH key pair made by the test venv's `cryptography` (moto needs it):
/// the private key file (OpenSSH format, no passphrase) and the public line.
fn ssh_key(p: &Project, name: &str) -> (PathBuf, String) {
    let path = p.path().join(name);
    let public = venv_python(
        "import sys\n\
         from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey\n\
         from cryptography.hazmat.primitives import serialization as s\n\
         key = Ed25519PrivateKey.generate()\n\
         open(sys.argv[1], 'wb').write(key.private_bytes(s.Encoding.PEM, s.PrivateFormat.OpenSSH, s.NoEncryption()))\n\
         print(key.public_key().public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH).decode() + ' ops@test')",
        &[path.as_os_str()],
    );
    (path, String::from_utf8_lossy(&public).trim().to_string())
}

#[test]
fn an_ssh_ed25519_key_seals_and_opens_a_backup() {
    let p = Project::new();
    seed(&p);
    let (private, public) = ssh_key(&p, "id_ed25519");
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    p.write_config(&sealed_config(&[&public]));
    p.ballast(&["backup"]).expect_code(0);
    let manifest = p.newest_backup();
    assert_eq!(
        manifest["sealed"]["recipients"],
        serde_json::json!([public])
    );
    let id = manifest["id"].as_str().unwrap().to_string();
    let stored = std::fs::read(p.path().join("backups").join(format!("{id}.dump.gz.age"))).unwrap();
    assert_eq!(&pyrage_opens(&stored, &private, p.path())[..5], b"PGDMP");
    let drill = format!("{}_drill", p.db);
    p.ballast(&[
        "--yes",
        "restore",
        &id,
        "--into",
        &drill,
        "--identity",
        private.to_str().unwrap(),
    ])
    .expect_code(0);
    assert_eq!(
        psql(&cluster().url(&drill), "select count(*) from customers"),
        "20000"
    );
    // A key behind a passphrase cannot be asked for unattended: said, nothing done.
    let locked = p.path().join("id_locked");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret words", "-f"])
        .arg(&locked)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(made.success());
    let refused = p.ballast(&["verify-backup", &id, "--identity", locked.to_str().unwrap()]);
    refused.expect_code(2);
    assert!(
        refused.stderr().contains("passphrase"),
        "{}",
        refused.stderr()
    );
}

#[test]
fn the_preflight_says_when_the_restore_rung_could_not_read_a_sealed_backup() {
    let p = Project::new();
    p.sql("create table t (id int)");
    p.ballast(&["--yes", "baseline", "none"]).expect_code(0);
    p.migration("1_a.sql", "create table a (id int);");
    p.on_failure(false, "auto");
    let (ops, recipient) = key(&p, "ops.txt");
    p.write_config(&sealed_config(&[&recipient]));
    let check = p.ballast(&["check"]);
    assert!(
        check.stdout().contains("no identity is configured"),
        "{}",
        check.stdout()
    );
    // An identity file that cannot be read: the rung could not restore; refused.
    p.write_config(&format!(
        "{}age_identity_file = \"missing-key.txt\"\n",
        sealed_config(&[&recipient])
    ));
    let refused = p.ballast(&["--yes", "deploy"]);
    refused.expect_code(3);
    assert!(
        refused.stdout().contains("missing-key.txt"),
        "{}",
        refused.stdout()
    );
    assert!(p.ledger_versions().is_empty());
    p.write_config(&format!(
        "{}age_identity_file = \"{}\"\n",
        sealed_config(&[&recipient]),
        ops.display()
    ));
    p.ballast(&["--yes", "deploy"]).expect_code(0);
}
