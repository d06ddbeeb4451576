//! Resolved, validated settings: what the rest of ballast reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration::parse_duration;
use super::load::ConfigError;
use super::raw::RawConfig;
use crate::redact::redact_url;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Folder of the config file (or the working directory): relative paths start here,
    /// and a `pipelines/` folder here overrides the built-in pipelines.
    pub config_dir: PathBuf,
    pub config_file: Option<PathBuf>,
    /// The layers that were read, lowest first (for `-v` and error messages).
    pub sources: Vec<String>,
    pub database: DatabaseSettings,
    pub migrations: MigrationSettings,
    pub backup: BackupSettings,
    pub verify_checks: Vec<SqlCheck>,
}

#[derive(Clone)]
pub struct DatabaseSettings {
    url: Option<String>,
    pub schema: String,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    /// How long a deploy waits for another deploy's lock before refusing.
    pub lock_wait: Duration,
    pub application_name: String,
}

// Hand-written so a `{:?}` can never print the password.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("schema", &self.schema)
            .field("lock_timeout", &self.lock_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl DatabaseSettings {
    /// The URL with its secret, for connecting only. Never print it: use [`Self::display_url`].
    pub fn url(&self) -> Result<&str, ConfigError> {
        self.url.as_deref().ok_or_else(|| ConfigError::Value {
            key: "database.url".into(),
            origin: "any layer".into(),
            message: "no database URL is configured: set database.url in deploy.toml, \
                      or DATABASE_URL / BALLAST_DATABASE__URL in the environment"
                .into(),
        })
    }

    pub fn display_url(&self) -> String {
        self.url
            .as_deref()
            .map(redact_url)
            .unwrap_or_else(|| "<no database url>".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Sql,
}

#[derive(Debug, Clone)]
pub struct MigrationSettings {
    pub engine: EngineKind,
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub dir: PathBuf,
    pub pg_dump: PathBuf,
}

/// A user check run by the `verify` stage: the query must return one row, one `true`.
#[derive(Debug, Clone)]
pub struct SqlCheck {
    pub name: String,
    pub sql: String,
}

pub(super) fn resolve(
    raw: RawConfig,
    config_dir: PathBuf,
    config_file: Option<PathBuf>,
    sources: Vec<String>,
    origin_of: &dyn Fn(&str) -> String,
) -> Result<Settings, ConfigError> {
    let bad = |key: &str, message: String| ConfigError::Value {
        key: key.to_string(),
        origin: origin_of(key),
        message,
    };
    let duration = |key: &str, value: Option<String>| -> Result<Duration, ConfigError> {
        let value = value.unwrap_or_default();
        parse_duration(&value).map_err(|m| bad(key, m))
    };
    let db = raw.database;
    let schema = db.schema.unwrap_or_default();
    if !is_plain_identifier(&schema) {
        return Err(bad(
            "database.schema",
            format!("`{schema}` is not a plain schema name (letters, digits, _; at most 63 bytes)"),
        ));
    }
    if let Some(url) = &db.url {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "database.url",
                format!("`{}` is not a postgres:// URL", redact_url(url)),
            ));
        }
    }
    let database = DatabaseSettings {
        url: db.url.filter(|u| !u.is_empty()),
        schema,
        lock_timeout: duration("database.lock_timeout", db.lock_timeout)?,
        statement_timeout: duration("database.statement_timeout", db.statement_timeout)?,
        lock_wait: duration("database.lock_wait", db.lock_wait)?,
        application_name: db.application_name.unwrap_or_default(),
    };

    let engine = match raw.migrations.engine.as_deref().unwrap_or("sql") {
        "sql" => EngineKind::Sql,
        other => {
            return Err(bad(
                "migrations.engine",
                format!("unknown engine `{other}`; the engines are: sql"),
            ))
        }
    };
    let within = |p: Option<String>| resolve_path(&config_dir, &p.unwrap_or_default());
    let migrations = MigrationSettings {
        engine,
        dir: within(raw.migrations.dir),
    };
    let pg_dump = raw.backup.pg_dump.unwrap_or_else(|| "pg_dump".into());
    let pg_dump = if pg_dump.contains('/') {
        within(Some(pg_dump))
    } else {
        PathBuf::from(pg_dump)
    };
    let backup = BackupSettings {
        dir: within(raw.backup.dir),
        pg_dump,
    };

    let verify_checks = raw
        .verify
        .checks
        .into_iter()
        .map(|c| SqlCheck {
            name: c.name,
            sql: c.sql,
        })
        .collect();

    Ok(Settings {
        config_dir,
        config_file,
        sources,
        database,
        migrations,
        backup,
        verify_checks,
    })
}

fn resolve_path(base: &Path, value: &str) -> PathBuf {
    let path = Path::new(value);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// A name usable unquoted in SQL: what ballast accepts for its own schema.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && name.len() <= 63
}
