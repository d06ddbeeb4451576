//! The fault the other fault tests cannot make: the connection dies after ballast sent
//! COMMIT, so the server commits and ballast never hears it. A small proxy between
//! ballast and PostgreSQL swallows the answer; ballast must find out from the ledger
//! what happened, not guess.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::faults::paused_at;
use crate::harness::Project;

/// The first message of a connection that asks for TLS (or GSSAPI) first; another
/// untyped startup message follows once the server answered `N`.
const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;

/// A TCP proxy to PostgreSQL that forwards every byte both ways, and, once armed, loses
/// the answer to the next simple-query `COMMIT`: it forwards the COMMIT, stops relaying
/// the server's replies on that connection, gives the server time to commit, then
/// shuts both sockets. It reads only the client's side of the wire protocol (an
/// untyped startup message, then type byte + int32 length + body); the URL it is given
/// to use says `sslmode=disable`, so that side is never encrypted.
struct LossyProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    /// Set once it has swallowed a COMMIT's answer.
    fired: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl LossyProxy {
    fn start(upstream: u16) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = LossyProxy {
            port: listener.local_addr().unwrap().port(),
            armed: Arc::new(AtomicBool::new(false)),
            fired: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
        };
        let (armed, fired, stopped) = (
            proxy.armed.clone(),
            proxy.fired.clone(),
            proxy.stopped.clone(),
        );
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let (Ok(client), Ok(server)) =
                    (client, TcpStream::connect(("127.0.0.1", upstream)))
                else {
                    continue;
                };
                let mute = Arc::new(AtomicBool::new(false));
                let (server_side, client_side, muted) = (
                    server.try_clone().unwrap(),
                    client.try_clone().unwrap(),
                    mute.clone(),
                );
                thread::spawn(move || relay_server(server_side, client_side, &muted));
                let (armed, fired) = (armed.clone(), fired.clone());
                thread::spawn(move || relay_client(client, server, &mute, &armed, &fired));
            }
        });
        proxy
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        // Wakes the accept loop so it sees the flag and ends.
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Server to client, byte for byte, until the connection ends or `mute` is set: what
/// the server says after that (the COMMIT's answer) is dropped.
fn relay_server(mut server: TcpStream, mut client: TcpStream, mute: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = server.read(&mut buf) {
        if mute.load(Ordering::SeqCst) || client.write_all(&buf[..n]).is_err() {
            return;
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}

/// Client to server, message by message, watching for the COMMIT to lose.
fn relay_client(
    mut client: TcpStream,
    mut server: TcpStream,
    mute: &AtomicBool,
    armed: &AtomicBool,
    fired: &AtomicBool,
) {
    let mut forward = |message: &[u8]| server.write_all(message).is_ok();
    loop {
        let Some(startup) = read_message(&mut client, false) else {
            return;
        };
        if !forward(&startup) {
            return;
        }
        let code = u32::from_be_bytes(startup[4..8].try_into().unwrap());
        if code != SSL_REQUEST && code != GSSENC_REQUEST {
            break;
        }
    }
    while let Some(message) = read_message(&mut client, true) {
        let commit = message[0] == b'Q' && is_commit(&message[5..]);
        if commit && armed.swap(false, Ordering::SeqCst) {
            mute.store(true, Ordering::SeqCst);
            let _ = forward(&message);
            thread::sleep(Duration::from_millis(300));
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            fired.store(true, Ordering::SeqCst);
            return;
        }
        if !forward(&message) {
            return;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// One whole message, header included (`typed`: a type byte before the length).
fn read_message(stream: &mut TcpStream, typed: bool) -> Option<Vec<u8>> {
    let head_len = if typed { 5 } else { 4 };
    let mut message = vec![0u8; head_len];
    stream.read_exact(&mut message).ok()?;
    let len = u32::from_be_bytes(message[head_len - 4..].try_into().unwrap()) as usize;
    message.resize(head_len - 4 + len, 0);
    stream.read_exact(&mut message[head_len..]).ok()?;
    Some(message)
}

/// A simple query's text (NUL-terminated) is `COMMIT`, however written.
fn is_commit(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(body));
    text.trim()
        .trim_end_matches(';')
        .trim()
        .eq_ignore_ascii_case("commit")
}

/// Points the project's deploy.toml (as the harness wrote it) at `proxy` instead of
/// the server, without TLS so the proxy can read the protocol.
fn through(p: &Project, proxy: &LossyProxy) {
    let mut url = url::Url::parse(&p.url).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    url.set_query(Some("sslmode=disable"));
    let config = p.path().join("deploy.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&p.url), "{text}");
    std::fs::write(&config, text.replace(&p.url, url.as_str())).unwrap();
}

fn upstream_port(p: &Project) -> u16 {
    url::Url::parse(&p.url).unwrap().port().unwrap()
}

/// `ballast --yes [extra] deploy` through a proxy that loses the answer to the upgrade's
/// COMMIT; its exit code and stdout.
fn deploy_losing_the_commit(p: &Project, extra: &[&str]) -> (Option<i32>, String) {
    let proxy = LossyProxy::start(upstream_port(p));
    through(p, &proxy);
    let args: Vec<&str> = ["--yes"]
        .iter()
        .chain(extra)
        .chain(&["deploy"])
        .copied()
        .collect();
    let child = paused_at(p, &args, "upgrade-transaction");
    proxy.arm();
    std::fs::remove_file(p.path().join("paused-at-upgrade-transaction")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        proxy.fired(),
        "the proxy saw no COMMIT to lose: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server did commit, and ballast was not told.
    assert!(
        stdout.contains("whether they were applied is unknown until checked"),
        "{stdout}"
    );
    (out.status.code(), stdout)
}

#[test]
fn a_commit_whose_answer_is_lost_is_found_applied_and_undone_by_the_ladder() {
    let p = Project::new();
    p.existing("create table kept (id int); insert into kept values (1)");
    let before = p.schema_dump("public");
    p.migration("1_a.sql", "create table a (id bigint primary key);")
        .migration("1_a.down.sql", "drop table a;")
        .migration("2_b.sql", "create table b (id bigint primary key);")
        .migration("2_b.down.sql", "drop table b;");
    let (code, out) = deploy_losing_the_commit(&p, &[]);
    assert!(
        out.contains("the connection failed during COMMIT of 1, 2"),
        "{out}"
    );
    // It read the ledger again, found both applied (the server had committed), and the
    // ladder's downgrade undid them.
    assert!(
        out.contains("✓ downgrade (recovery)") && out.contains("2 migrations undone (2_b, 1_a)"),
        "{out}"
    );
    assert!(out.contains("undone by their downgrades"), "{out}");
    // What the ledger said is reported as a fact, and the account says the changes
    // were made and undone, not that nothing changed.
    assert!(
        out.contains("the COMMIT of 1, 2 took effect: the ledger read afterwards has them"),
        "{out}"
    );
    assert!(
        out.contains("committed, then undone by the recovery ladder: 1, 2"),
        "{out}"
    );
    assert!(out.contains("its changes were undone"), "{out}");
    assert!(!out.contains("nothing changed"), "{out}");
    assert_eq!(code, Some(1), "{out}");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(
        p.schema_dump("public"),
        before,
        "the schema is exactly as found"
    );
    assert_eq!(p.sql("select count(*) from kept"), "1");
    assert_eq!(
        p.sql("select status from ballast_journal where pipeline = 'deploy'"),
        "failed-unchanged"
    );
}

#[test]
fn a_lost_commit_that_destroyed_data_is_not_called_recovered_by_a_downgrade() {
    let p = Project::new();
    p.notes_dropped_by_a_migration();
    p.on_failure(true, "never");
    let (code, out) = deploy_losing_the_commit(&p, &["--allow-risky"]);
    // The commit took effect and the downgrade ran: the table is back, its row is not.
    assert!(out.contains("1 migration undone (1_drop_notes)"), "{out}");
    assert!(p.ledger_versions().is_empty());
    assert_eq!(p.sql("select count(*) from notes"), "0");
    // As when the COMMIT's answer arrives (recovery.rs): the downgrade brings the
    // table back empty, which is no recovery, and there is no restore to climb to.
    assert!(out.contains("only this run's backup has it"), "{out}");
    assert!(!out.contains("undone by their downgrades"), "{out}");
    assert_eq!(code, Some(4), "{out}");
    assert_eq!(
        p.sql("select status from ballast_journal where pipeline = 'deploy'"),
        "failed-not-recovered"
    );
}

#[test]
fn a_downgrade_whose_commit_answer_is_lost_is_never_called_rolled_back() {
    let p = Project::new();
    p.migration("1_a.sql", "create table a (id bigint primary key);")
        .migration("1_a.down.sql", "drop table a;");
    p.ballast(&["--yes", "deploy"]).expect_code(0);
    assert_eq!(p.ledger_versions(), ["1"]);
    let proxy = LossyProxy::start(upstream_port(&p));
    through(&p, &proxy);
    let child = paused_at(&p, &["--yes", "run", "rollback"], "downgrade-transaction");
    proxy.arm();
    std::fs::remove_file(p.path().join("paused-at-downgrade-transaction")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(proxy.fired(), "the proxy saw no COMMIT to lose: {stdout}");
    assert!(
        stdout.contains("whether they were undone is unknown until checked"),
        "{stdout}"
    );
    // The server did commit the downgrade. An undo whose COMMIT went unanswered is
    // never settled as an apply's would be ("did not take effect" because the ledger
    // no longer has the version), and the person is told to look.
    assert!(p.ledger_versions().is_empty());
    assert!(!stdout.contains("did not take effect"), "{stdout}");
    assert!(!stdout.contains("nothing changed"), "{stdout}");
    assert!(stdout.contains("a COMMIT was interrupted"), "{stdout}");
    assert_ne!(out.status.code(), Some(0), "{stdout}");
}
