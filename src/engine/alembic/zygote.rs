//! The Python processes behind a run's Alembic commands. Python's start-up and the
//! imports of Alembic and SQLAlchemy cost more than most migrations (about 0.3 s, and
//! a deploy asks the project four times: graph, offline SQL, proof, upgrade), so one
//! *zygote* per project (`zygote.py`) imports them once and forks a child for each
//! command. A child is what a fresh `python -c CODE ARGS` would be (its own process,
//! environment, arguments, exit status, and the SIGINT ballast sends it), minus the
//! imports; the zygote opens no connection, so a child inherits none.
//!
//! The zygote is started by a thread that lives exactly as long as it does (the
//! parent-death signal fires when the spawning thread ends, see [`crate::children`]),
//! and idles between commands. One that died is replaced by the next command.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

const ZYGOTE: &str = include_str!("zygote.py");

/// What a zygote is started with: children of one zygote differ only in what a
/// [`Request`] sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub python: PathBuf,
    pub dir: PathBuf,
    /// On top of ballast's own environment, at the interpreter's start (where
    /// `PYTHONPATH` and the like take effect).
    pub env: Vec<(String, String)>,
}

/// One command: `python -c CODE ARGV...` with `env` on top of the zygote's.
pub struct Request<'a> {
    pub code: &'a str,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    /// The child's stderr goes to its stdout, in the order written.
    pub merge: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

/// How a command ended.
#[derive(Debug)]
pub struct Ended {
    pub success: bool,
    /// As Rust's `ExitStatus` says it: `exit status: 1`, `signal: 2`.
    pub status: String,
}

/// Idle zygotes, one per [`Key`]; a command takes one out while it runs.
static IDLE: Mutex<Vec<Zygote>> = Mutex::new(Vec::new());

struct Zygote {
    key: Key,
    stdin: ChildStdin,
    lines: Receiver<Line>,
}

enum Line {
    Read(Stream, Vec<u8>),
    Closed(Stream),
    /// The zygote itself ended (its status).
    Exited(String),
}

/// Runs one command in a child of `key`'s zygote (started if need be). `started` hears
/// the child's pid before it runs anything; `line` each line it writes, without its
/// newline. Blocking: call from a blocking task.
pub fn run(
    key: &Key,
    request: &Request<'_>,
    started: impl FnOnce(u32),
    mut line: impl FnMut(Stream, &[u8]),
) -> std::io::Result<Ended> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let env: serde_json::Map<String, serde_json::Value> = request
        .env
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let mut order = serde_json::json!({
        "nonce": nonce,
        "code": request.code,
        "argv": request.argv,
        "env": env,
        "merge": request.merge,
    })
    .to_string();
    order.push('\n');
    let since = std::time::Instant::now();
    let mut zygote = take(key)?;
    if zygote.send(&order).is_err() {
        // It died while idle: nothing ran, a fresh one takes the command.
        zygote = start(key)?;
        zygote.send(&order)?;
    }
    let mut started = Some(started);
    let marker = format!("\x1eballast {nonce} ");
    let mut ended: [Option<String>; 2] = [None, None];
    let mut closed = [false, false];
    let mut exited = None;
    while ended.iter().any(Option::is_none) {
        let Ok(next) = zygote.lines.recv() else { break };
        match next {
            Line::Read(stream, bytes) => {
                let (text, said) = split_marker(&bytes, marker.as_bytes());
                // A marker's line is the child's only when it wrote before the marker.
                if said.is_none() || !text.is_empty() {
                    line(stream, text);
                }
                match said.and_then(|s| s.split_once(' ')) {
                    Some(("started", pid)) => {
                        if let (Some(tell), Ok(pid)) = (started.take(), pid.parse()) {
                            tell(pid);
                        }
                    }
                    Some(("ended", code)) => ended[stream as usize] = Some(code.to_string()),
                    _ => {}
                }
            }
            Line::Closed(stream) => {
                closed[stream as usize] = true;
                if closed.iter().all(|c| *c) && exited.is_some() {
                    break;
                }
            }
            Line::Exited(status) => {
                exited = Some(status);
                if closed.iter().all(|c| *c) {
                    break;
                }
            }
        }
    }
    match &ended {
        [Some(code), Some(_)] => {
            idle(zygote);
            tracing::debug!(
                "python child {:?} ended {code} after {} ms",
                request.argv,
                since.elapsed().as_millis()
            );
            let code: i32 = code.parse().unwrap_or(-1);
            Ok(Ended {
                success: code == 0,
                status: match code {
                    0.. => format!("exit status: {code}"),
                    signal => format!("signal: {}", -signal),
                },
            })
        }
        // The zygote died: Python could not start it (its output says why), or it was
        // killed. Dropped here, so the next command starts a fresh one.
        _ => Ok(Ended {
            success: false,
            status: exited.unwrap_or_else(|| "the Python process ended".to_string()),
        }),
    }
}

/// `bytes` before the marker, and what the marker line says after it.
fn split_marker<'a>(bytes: &'a [u8], marker: &[u8]) -> (&'a [u8], Option<&'a str>) {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    match trimmed.windows(marker.len()).position(|w| w == marker) {
        Some(at) => (
            &trimmed[..at],
            std::str::from_utf8(&trimmed[at + marker.len()..]).ok(),
        ),
        None => (trimmed, None),
    }
}

impl Zygote {
    fn send(&mut self, order: &str) -> std::io::Result<()> {
        self.stdin.write_all(order.as_bytes())?;
        self.stdin.flush()
    }
}

fn take(key: &Key) -> std::io::Result<Zygote> {
    let found = {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter()
            .position(|z| z.key == *key)
            .map(|at| idle.swap_remove(at))
    };
    match found {
        Some(zygote) => Ok(zygote),
        None => start(key),
    }
}

fn idle(zygote: Zygote) {
    IDLE.lock().unwrap_or_else(|e| e.into_inner()).push(zygote);
}

/// Starts `key`'s zygote now, so that its imports overlap with what the run does
/// before its first Alembic command. Nothing is said of a failure: that command
/// meets it and reports it.
pub fn warm(key: &Key) {
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    if idle.iter().any(|z| z.key == *key) {
        return;
    }
    if let Ok(zygote) = start(key) {
        idle.push(zygote);
    }
}

fn start(key: &Key) -> std::io::Result<Zygote> {
    let (lines, read) = channel();
    let (handed, handles) = channel();
    let owner = key.clone();
    let exits = lines.clone();
    std::thread::Builder::new()
        .name("alembic-zygote".into())
        .spawn(move || {
            let mut command = Command::new(&owner.python);
            command
                .arg("-c")
                .arg(ZYGOTE)
                .current_dir(&owner.dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in &owner.env {
                command.env(k, v);
            }
            crate::children::prepare(&mut command);
            match command.spawn() {
                Err(e) => {
                    let _ = handed.send(Err(e));
                }
                Ok(mut child) => {
                    tracing::debug!("started the project's Python (pid {})", child.id());
                    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
                    let _ = handed.send(Ok(pipes));
                    // This thread holds the zygote's life: it ends when the zygote does.
                    let status = match child.wait() {
                        Ok(status) => status.to_string(),
                        Err(e) => e.to_string(),
                    };
                    let _ = exits.send(Line::Exited(status));
                }
            }
        })?;
    let pipes = handles
        .recv()
        .map_err(|_| std::io::Error::other("the zygote's thread ended"))??;
    let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
        return Err(std::io::Error::other("the zygote's pipes were not opened"));
    };
    forward(stdout, Stream::Out, lines.clone())?;
    forward(stderr, Stream::Err, lines)?;
    Ok(Zygote {
        key: key.clone(),
        stdin,
        lines: read,
    })
}

/// Reads `from` line by line (bytes: a migration may print anything) into `to`.
fn forward(
    from: impl Read + Send + 'static,
    stream: Stream,
    to: Sender<Line>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("alembic-output".into())
        .spawn(move || {
            let mut reader = BufReader::new(from);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if to.send(Line::Read(stream, line)).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = to.send(Line::Closed(stream));
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_marker;

    #[test]
    fn a_marker_is_found_after_a_line_the_child_left_unfinished() {
        let marker = b"\x1eballast n1 ";
        assert_eq!(
            split_marker(b"\x1eballast n1 ended 0\n", marker),
            (&b""[..], Some("ended 0"))
        );
        assert_eq!(
            split_marker(b"no newline\x1eballast n1 ended 3\n", marker),
            (&b"no newline"[..], Some("ended 3"))
        );
        assert_eq!(split_marker(b"INFO x\n", marker), (&b"INFO x"[..], None));
        // Another command's marker is output, not a marker of this one.
        assert_eq!(split_marker(b"\x1eballast n2 ended 0\n", marker).1, None);
    }
}
