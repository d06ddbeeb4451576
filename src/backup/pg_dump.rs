//! Which pg_dump we have, and whether it can dump this server.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::BackupError;

#[derive(Debug, Clone)]
pub struct PgDumpVersion {
    /// `15.18`
    pub version: String,
    pub major: u32,
}

/// What `--version` said, per program, for this process: a deploy asks twice (the
/// preflight, then the backup), and Debian's `pg_dump` is a Perl wrapper that takes a
/// tenth of a second to answer.
static KNOWN: Mutex<Vec<(PathBuf, PgDumpVersion)>> = Mutex::new(Vec::new());

/// A PostgreSQL client tool's version (pg_dump, pg_restore): runs `TOOL --version` and
/// reads `pg_dump (PostgreSQL) 15.18 (Debian …)`, once per program and process.
pub fn client_version(program: &Path) -> Result<PgDumpVersion, BackupError> {
    let known = |k: &Vec<(PathBuf, PgDumpVersion)>| {
        k.iter().find(|(p, _)| p == program).map(|(_, v)| v.clone())
    };
    if let Some(version) = known(&KNOWN.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(version);
    }
    let version = ask_version(program)?;
    KNOWN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((program.to_path_buf(), version.clone()));
    Ok(version)
}

fn ask_version(program: &Path) -> Result<PgDumpVersion, BackupError> {
    let output = duct::cmd(program.as_os_str(), ["--version"])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|source| BackupError::PgDumpMissing {
            program: program.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(BackupError::PgDumpVersion {
            output: format!("{} {stderr}", output.status),
        });
    }
    parse_version(&text).ok_or(BackupError::PgDumpVersion {
        output: text.trim().to_string(),
    })
}

fn parse_version(text: &str) -> Option<PgDumpVersion> {
    let after = text.split(')').nth(1)?.trim();
    let version = after.split_whitespace().next()?.to_string();
    let major = version.split('.').next()?.parse().ok()?;
    Some(PgDumpVersion { version, major })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_debian_and_plain_version_lines() {
        let v = parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n").unwrap();
        assert_eq!((v.version.as_str(), v.major), ("15.18", 15));
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 9.6.24").unwrap().major,
            9
        );
        assert!(parse_version("bash: pg_dump: not found").is_none());
    }
}
