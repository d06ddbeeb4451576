//! Running `python -m alembic …` (and the probe) for the configured project.
//!
//! The target's URL travels as `DATABASE_URL` and the ini as `ALEMBIC_CONFIG`, in the
//! environment (never on a command line, where every user can read it), with
//! `[migrations.env]` on top. `PGOPTIONS` hands alembic's own connection ballast's
//! `lock_timeout` and `statement_timeout`: libpq applies it to every session, so the
//! project's env.py needs no hook.

use super::zygote::{self, Request, Stream};
use super::AlembicError;
use crate::config::{to_pg_millis, Settings};
use crate::redact::{scrub, split_secrets};

/// Runs first in every Python process ballast starts: the project's folder last on the
/// path, and the connection guard (see the file).
const GUARD: &str = include_str!("guard.py");
const PROBE: &str = include_str!("probe.py");

/// After [`GUARD`]: `python -c LAUNCHER ARGS` runs alembic as its `alembic` command
/// does (`python -m alembic` would put the project's folder first on the path, where a
/// package named `alembic/` shadows the library). A connection the guard refuses ends
/// it with a `ballast-refused:` line, before anything ran on that connection.
const LAUNCHER: &str = "from alembic.config import main as _alembic_main\n\
try:\n    _alembic_main(argv=sys.argv[1:], prog='alembic')\n\
except BaseException as _error:\n    _elsewhere = ballast_elsewhere(_error)\n    \
if _elsewhere is None:\n        raise\n    \
print(f'ballast-refused: {_elsewhere}', file=sys.stderr, flush=True)\n    sys.exit(3)\n";

/// The line the launcher writes when the guard refused a connection.
const REFUSED: &str = "ballast-refused: ";

/// A finished alembic command.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    /// stderr, where alembic logs (`Running upgrade …`, tracebacks, `FAILED:`).
    pub stderr: String,
}

impl Finished {
    /// Why the guard refused a connection of this child, when it did: nothing ran on
    /// that connection.
    pub fn refused(&self) -> Option<String> {
        format!("{}\n{}", self.stdout, self.stderr)
            .lines()
            .find_map(|l| l.trim().strip_prefix(REFUSED).map(str::to_string))
    }

    /// The lines that say why it failed: alembic's `FAILED:` line, or a traceback's last.
    pub fn reason(&self) -> String {
        let text = format!("{}\n{}", self.stdout, self.stderr);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if let Some(failed) = lines.iter().find(|l| l.starts_with("FAILED:")) {
            return failed.trim().to_string();
        }
        // A traceback ends in `module.ExceptionName: message`, which SQLAlchemy
        // follows with `[SQL: …]` and a link; the exception and its SQL say it all.
        let exception = lines.iter().rposition(|l| is_exception_line(l));
        match exception {
            Some(at) => {
                let mut reason = lines[at].trim().to_string();
                if let Some(sql) = lines[at + 1..].iter().find(|l| l.starts_with("[SQL: ")) {
                    let sql: String = sql.chars().take(300).collect();
                    reason = format!("{reason} {sql}");
                }
                reason
            }
            None => lines
                .iter()
                .rev()
                .find(|l| !l.starts_with("INFO ") && !l.starts_with("  "))
                .map(|l| l.trim().to_string())
                .unwrap_or_else(|| self.status.clone()),
        }
    }
}

/// `psycopg.errors.LockNotAvailable: …` or `KeyError: 'x'`: a dotted name, then ": ".
fn is_exception_line(line: &str) -> bool {
    let Some((name, _)) = line.split_once(": ") else {
        return false;
    };
    !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        && name.rsplit('.').next().is_some_and(|last| {
            last.ends_with("Error")
                || last.ends_with("Exception")
                || last.ends_with("Exit")
                || last.ends_with("Interrupt")
        })
}

/// The application name of Alembic's sessions (libpq's `PGAPPNAME`): how the
/// lock-queue guard ([`crate::db::lock_queue`]) tells them from the application's.
pub fn application_name(db: &crate::config::DatabaseSettings) -> String {
    format!(
        "{} (alembic)",
        crate::db::session_base(&db.application_name)
    )
}

/// How to start alembic for one target.
#[derive(Clone)]
pub struct Runner {
    /// The Python that runs the project's Alembic (see [`zygote`]).
    zygote: zygote::Key,
    ini: std::path::PathBuf,
    env: Vec<(String, String)>,
    secrets: Vec<String>,
}

impl Runner {
    /// `server_major`, when known, allows settings only newer servers accept.
    pub fn new(settings: &Settings, server_major: Option<u32>) -> Runner {
        let alembic = settings
            .migrations
            .alembic
            .as_ref()
            .expect("the alembic engine has alembic settings");
        let mut env = Vec::new();
        let mut secrets = Vec::new();
        if let Ok(url) = settings.database.url() {
            if let Ok(split) = split_secrets(url) {
                secrets = split.secrets;
            }
            env.push(("DATABASE_URL".to_string(), url.to_string()));
        }
        env.push((
            "ALEMBIC_CONFIG".to_string(),
            alembic.ini.display().to_string(),
        ));
        let db = &settings.database;
        let mut options = std::env::var("PGOPTIONS").unwrap_or_default();
        options.push_str(&format!(
            " -c lock_timeout={} -c statement_timeout={}",
            to_pg_millis(db.lock_timeout),
            to_pg_millis(db.statement_timeout)
        ));
        if server_major.is_some_and(|m| m >= 14) {
            // A killed ballast (and so a killed alembic) never leaves locks held.
            options.push_str(" -c client_connection_check_interval=1000");
        }
        env.push(("PGOPTIONS".to_string(), options.trim().to_string()));
        env.push(("PGAPPNAME".to_string(), application_name(db)));
        for (key, value) in &alembic.env {
            env.push((key.clone(), value.clone()));
        }
        Runner {
            zygote: zygote::Key {
                python: alembic.python.clone(),
                dir: alembic.working_dir.clone(),
                env: alembic.env.clone(),
            },
            ini: alembic.ini.clone(),
            env,
            secrets,
        }
    }

    pub fn ini(&self) -> String {
        self.ini.display().to_string()
    }

    /// This runner, its children's connections held to `witness` (see guard.py).
    pub fn guarded(&self, witness: &super::reach::Witness) -> Runner {
        let mut runner = self.clone();
        runner
            .env
            .push(("BALLAST_WITNESS_PID".into(), witness.pid.to_string()));
        runner.env.push((
            "BALLAST_WITNESS_NAME".into(),
            witness.application_name.clone(),
        ));
        runner
    }

    /// This runner, its children refused any connection (offline rendering).
    pub fn offline(&self) -> Runner {
        let mut runner = self.clone();
        runner.env.push(("BALLAST_NO_CONNECT".into(), "1".into()));
        runner
    }

    fn missing(&self, source: std::io::Error) -> AlembicError {
        AlembicError::Python {
            python: self.zygote.python.display().to_string(),
            source,
        }
    }

    /// Runs alembic with ARGS to the end, capturing both streams.
    pub async fn alembic(&self, args: &[&str]) -> Result<Finished, AlembicError> {
        self.capture(format!("{GUARD}\n{LAUNCHER}"), args).await
    }

    /// The probe script's JSON: the revision graph and, with a witness, where env.py's
    /// connection goes ([`super::reach`]).
    pub async fn probe(
        &self,
        witness: Option<&super::reach::Witness>,
    ) -> Result<Finished, AlembicError> {
        let runner = match witness {
            Some(witness) => self.guarded(witness),
            // The graph is read from files: any connection is a mistake.
            None => self.offline(),
        };
        runner.capture(format!("{GUARD}\n{PROBE}"), &[]).await
    }

    async fn capture(&self, code: String, args: &[&str]) -> Result<Finished, AlembicError> {
        let runner = self.clone();
        let argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (ended, stdout, stderr) = tokio::task::spawn_blocking(move || {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let request = Request {
                code: &code,
                argv: &argv,
                env: &runner.env,
                merge: false,
            };
            let ended = zygote::run(
                &runner.zygote,
                &request,
                |_| {},
                |stream, line| {
                    let to = match stream {
                        Stream::Out => &mut stdout,
                        Stream::Err => &mut stderr,
                    };
                    to.extend_from_slice(line);
                    to.push(b'\n');
                },
            );
            (ended, stdout, stderr)
        })
        .await
        .map_err(|e| self.missing(std::io::Error::other(e)))?;
        let ended = ended.map_err(|e| self.missing(e))?;
        Ok(Finished {
            success: ended.success,
            status: ended.status,
            stdout: scrub(&String::from_utf8_lossy(&stdout), &self.secrets),
            stderr: scrub(&String::from_utf8_lossy(&stderr), &self.secrets),
        })
    }

    /// Runs alembic with ARGS, calling `on_line` with each line of its log as it comes
    /// (stderr merged into stdout, in order). Blocking: call from a blocking task.
    pub fn alembic_streaming(
        &self,
        args: &[&str],
        mut on_line: impl FnMut(&str),
    ) -> Result<Finished, AlembicError> {
        let code = format!("{GUARD}\n{LAUNCHER}");
        let argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let request = Request {
            code: &code,
            argv: &argv,
            env: &self.env,
            merge: true,
        };
        let mut lines = Vec::new();
        let ended = zygote::run(
            &self.zygote,
            &request,
            // A Ctrl-C while Alembic runs reaches it as SIGINT: its driver cancels the
            // statement and the transaction rolls back.
            |pid| {
                crate::interrupt::set_canceller(Some(crate::interrupt::Canceller::Children(vec![
                    pid,
                ])))
            },
            // Bytes, not a String: a log line that is not UTF-8 (a migration printing
            // Latin-1 data) is shown as best it can be, and never stops the reading.
            |_, line| {
                let text = String::from_utf8_lossy(line);
                let clean = scrub(text.trim_end(), &self.secrets);
                on_line(&clean);
                lines.push(clean);
            },
        );
        crate::interrupt::set_canceller(None);
        let ended = ended.map_err(|e| self.missing(e))?;
        Ok(Finished {
            success: ended.success,
            status: ended.status,
            stdout: lines.join("\n"),
            stderr: String::new(),
        })
    }

    /// Starts this project's Python now, so that its imports overlap with the run's
    /// work before its first Alembic command (see [`zygote::warm`]).
    pub fn warm(&self) {
        zygote::warm(&self.zygote);
    }
}

#[cfg(test)]
mod tests {
    use super::Finished;

    #[test]
    fn the_reason_is_alembics_failed_line_or_the_tracebacks_last() {
        let failed = Finished {
            success: false,
            status: "exit status: 255".into(),
            stdout: String::new(),
            stderr: "INFO  [alembic] x\nFAILED: Can't locate revision identified by 'zz'\n".into(),
        };
        assert_eq!(
            failed.reason(),
            "FAILED: Can't locate revision identified by 'zz'"
        );
        let traceback = Finished {
            success: false,
            status: "exit status: 1".into(),
            stdout: String::new(),
            stderr: "Traceback (most recent call last):\n  File \"x.py\", line 1\n    boom()\npsycopg.errors.LockNotAvailable: canceling statement due to lock timeout\n".into(),
        };
        assert_eq!(
            traceback.reason(),
            "psycopg.errors.LockNotAvailable: canceling statement due to lock timeout"
        );
        let sqlalchemy = Finished {
            success: false,
            status: "exit status: 1".into(),
            stdout: String::new(),
            stderr: "sqlalchemy.exc.OperationalError: (psycopg.errors.LockNotAvailable) canceling statement due to lock timeout\n[SQL: ALTER TABLE marketplace.sellers ADD COLUMN rating INTEGER]\n(Background on this error at: https://sqlalche.me/e/21/e3q8)\n".into(),
        };
        assert_eq!(
            sqlalchemy.reason(),
            "sqlalchemy.exc.OperationalError: (psycopg.errors.LockNotAvailable) canceling statement due to lock timeout [SQL: ALTER TABLE marketplace.sellers ADD COLUMN rating INTEGER]"
        );
    }
}
