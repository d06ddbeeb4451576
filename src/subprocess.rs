//! Running the team's own commands (hooks, `shell` stages) through duct.
//!
//! Output is captured (stderr merged into stdout, so the order is kept), stdin is
//! closed so a hook can never wait for input, and a hook that hangs is killed: at its
//! time limit, or (a `shell` stage) when ballast is asked to stop.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long a hook (and, unless it says otherwise, a `shell` stage) may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// When a command is killed before it ends.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Killed when ballast is interrupted (Ctrl-C, SIGTERM): a stage of the run. Hooks
    /// run after an interrupted run too, to say so: they keep running.
    pub stop_on_interrupt: bool,
}

impl Limits {
    pub const HOOK: Limits = Limits {
        timeout: HOOK_TIMEOUT,
        stop_on_interrupt: false,
    };
}

pub struct CommandOutput {
    pub success: bool,
    pub status: String,
    pub output: String,
}

impl CommandOutput {
    /// The last lines of output, for an error message.
    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self.output.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" / ")
    }
}

/// Runs `command` through `sh -c` in `dir`; `stdin` is what it reads (nothing: closed).
pub async fn run_shell(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
    limits: Limits,
) -> std::io::Result<CommandOutput> {
    // Output goes to a file, not a pipe: a hook that starts something in the
    // background (`notify &`) would hold a pipe open and hang us after it exits.
    let log = tempfile::NamedTempFile::new()?;
    let mut expression = duct::cmd!("sh", "-c", command).dir(dir);
    expression = match stdin {
        Some(bytes) => expression.stdin_bytes(bytes),
        None => expression.stdin_null(),
    };
    let mut expression = expression
        .stderr_to_stdout()
        .stdout_path(log.path())
        .before_spawn(crate::children::duct_hook)
        .unchecked();
    for (key, value) in env {
        expression = expression.env(key, value);
    }
    tokio::task::spawn_blocking(move || {
        let handle = expression.start()?;
        let started = Instant::now();
        let status = loop {
            if let Some(out) = handle.try_wait()? {
                break Ok(out.status);
            }
            let interrupted = limits.stop_on_interrupt && crate::interrupt::requested();
            if interrupted || started.elapsed() > limits.timeout {
                // The hook leads a process group of its own (crate::children): end
                // what it started too.
                for pid in handle.pids() {
                    // SAFETY: killpg(2) on the group of a process we spawned.
                    unsafe {
                        libc::killpg(pid as libc::pid_t, libc::SIGKILL);
                    }
                }
                handle.kill()?;
                break Err(if interrupted {
                    "stopped: ballast was interrupted".to_string()
                } else {
                    format!(
                        "killed after {}",
                        humantime::format_duration(limits.timeout)
                    )
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output =
            String::from_utf8_lossy(&std::fs::read(log.path()).unwrap_or_default()).into_owned();
        Ok(match status {
            Ok(status) => CommandOutput {
                success: status.success(),
                status: status.to_string(),
                output,
            },
            Err(killed) => CommandOutput {
                success: false,
                status: killed,
                output,
            },
        })
    })
    .await
    .map_err(std::io::Error::other)?
}
