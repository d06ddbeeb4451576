//! A throwaway PostgreSQL cluster from the installed server binaries.
//!
//! Used by `ballast demo` (the embedded default: a full deploy without any database
//! of your own) and by the test suite. The cluster lives in a temporary folder, listens
//! on 127.0.0.1 on a free port, trusts local connections, and skips fsync: it is for
//! trying things, never for data you want to keep. As root, it runs as the `postgres`
//! OS user, because PostgreSQL refuses to run as root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct ScratchCluster {
    base: PathBuf,
    bindir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    running: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("no PostgreSQL server binaries found (tried `pg_config --bindir` and /usr/lib/postgresql/*/bin); install the postgresql package")]
    NoBinaries,
    #[error("{step} failed: {message}")]
    Step { step: String, message: String },
}

impl ScratchCluster {
    /// initdb + start; about a second.
    pub fn start() -> Result<ScratchCluster, ScratchError> {
        let bindir = find_bindir().ok_or(ScratchError::NoBinaries)?;
        let as_postgres_user = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let base = tempfile::Builder::new()
            .prefix("ballast-pg-")
            .tempdir()
            .map_err(|e| step("creating a temporary folder", e))?
            .keep();
        let mut cluster = ScratchCluster {
            base,
            bindir,
            port: 0,
            as_postgres_user,
            running: false,
        };
        if as_postgres_user {
            cluster.run(
                "chown",
                &["-R", "postgres:", cluster.base.to_str().unwrap_or_default()],
                false,
            )?;
        }
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            true,
        )?;
        let mut last_error = None;
        for _ in 0..5 {
            cluster.port = free_port().map_err(|e| step("finding a free port", e))?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(e) => last_error = Some(e), // most likely a port taken in between: try another
            }
        }
        Err(last_error.expect("five attempts"))
    }

    /// Starts the server on its port (again, after [`Self::stop_server`]).
    pub fn start_server(&mut self) -> Result<(), ScratchError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.base.display()
        );
        let log = self.base.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                log.to_str().unwrap_or_default(),
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
            true,
        )?;
        self.running = true;
        Ok(())
    }

    /// Fast shutdown, keeping the data: what a crash or an operator's `pg_ctl stop`
    /// looks like to clients (fault-injection tests).
    pub fn stop_server(&mut self) {
        if self.running {
            let _ = std::process::Command::new("sh")
                .args(["-c", &self.stop_command()])
                .output();
            self.running = false;
        }
    }

    /// A URL for `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// Stops the server and removes its folder when the process `pid` exits, even if
    /// it never gets to run destructors (test binaries keep clusters in statics).
    pub fn stop_when_process_exits(&self, pid: u32) -> std::io::Result<()> {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{base}'",
            stop = self.stop_command(),
            base = self.base.display()
        );
        std::process::Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(|_| ())
    }

    /// Fast shutdown: what a crash or an operator's `pg_ctl stop` looks like to clients.
    pub fn stop(&mut self) {
        if self.running {
            let _ = std::process::Command::new("sh")
                .args(["-c", &self.stop_command()])
                .output();
            self.running = false;
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }

    fn stop_command(&self) -> String {
        let pg_ctl = self.bindir.join("pg_ctl");
        let cmd = format!(
            "{} -D '{}' -m fast -w stop",
            pg_ctl.display(),
            self.data_dir()
        );
        if self.as_postgres_user {
            format!("runuser -u postgres -- {cmd}")
        } else {
            cmd
        }
    }

    fn data_dir(&self) -> String {
        self.base.join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str], server_binary: bool) -> Result<(), ScratchError> {
        // A plain name (not a Path) so duct looks it up on PATH.
        let program_path = if server_binary {
            self.bindir.join(program).display().to_string()
        } else {
            program.to_string()
        };
        let expression = if server_binary && self.as_postgres_user {
            let mut full = vec![
                "-u".to_string(),
                "postgres".into(),
                "--".into(),
                program_path,
            ];
            full.extend(args.iter().map(|a| a.to_string()));
            duct::cmd("runuser", full)
        } else {
            duct::cmd(program_path, args)
        };
        let out = expression
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .map_err(|e| step(program, e))?;
        if !out.status.success() {
            return Err(ScratchError::Step {
                step: program.into(),
                message: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            });
        }
        Ok(())
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn step(what: &str, e: std::io::Error) -> ScratchError {
    ScratchError::Step {
        step: what.into(),
        message: e.to_string(),
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn find_bindir() -> Option<PathBuf> {
    if let Ok(out) = duct::cmd!("pg_config", "--bindir")
        .stderr_null()
        .stdout_capture()
        .unchecked()
        .run()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}
