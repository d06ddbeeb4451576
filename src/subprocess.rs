//! Running the team's own commands (hooks, `shell` stages) through duct.
//!
//! Output is captured (stderr merged into stdout, so the order is kept), stdin is
//! closed so a hook can never wait for input, and a hook that hangs is killed.

use std::path::Path;
use std::time::{Duration, Instant};

const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

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

pub async fn run_shell(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
) -> std::io::Result<CommandOutput> {
    let mut expression = duct::cmd!("sh", "-c", command)
        .dir(dir)
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked();
    for (key, value) in env {
        expression = expression.env(key, value);
    }
    tokio::task::spawn_blocking(move || {
        let handle = expression.start()?;
        let started = Instant::now();
        loop {
            if let Some(out) = handle.try_wait()? {
                return Ok(CommandOutput {
                    success: out.status.success(),
                    status: out.status.to_string(),
                    output: String::from_utf8_lossy(&out.stdout).into_owned(),
                });
            }
            if started.elapsed() > HOOK_TIMEOUT {
                handle.kill()?;
                return Ok(CommandOutput {
                    success: false,
                    status: format!("killed after {}s", HOOK_TIMEOUT.as_secs()),
                    output: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .map_err(std::io::Error::other)?
}
