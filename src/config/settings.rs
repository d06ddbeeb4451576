//! Resolved, validated settings: what the rest of ballast reads.

use crate::migrations::Tool;
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
    /// `[lint]`: rule levels after `disable` and `levels`.
    pub lint: crate::lint::LintSettings,
    /// `[rehearse]`: where a rehearsal's copy lives, its limits.
    pub rehearse: RehearseSettings,
}

/// `[rehearse]`.
#[derive(Clone, Default)]
pub struct RehearseSettings {
    pub copy: CopyPlace,
    /// The deploy pipeline rehearses right after its backup, before the question.
    pub before_deploy: bool,
    pub limits: RehearseLimits,
}

/// `[rehearse]`'s limits, each optional: the longest ACCESS EXCLUSIVE lock, the longest
/// write-blocking lock, the whole plan's time on the copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RehearseLimits {
    pub max_exclusive_lock: Option<Duration>,
    pub max_write_block: Option<Duration>,
    pub max_duration: Option<Duration>,
}

/// Where a rehearsal's copy of the target is made.
#[derive(Clone, Default)]
pub enum CopyPlace {
    /// A new database on the target's server.
    #[default]
    Beside,
    /// A new database beside this one, on another server (`[rehearse] url`).
    Elsewhere(DatabaseSettings),
    /// A throwaway server started from the installed binaries (`url = "local"`).
    Local,
}

// Hand-written so a `{:?}` can never print the password.
impl std::fmt::Debug for RehearseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let copy = match &self.copy {
            CopyPlace::Beside => "beside the target".to_string(),
            CopyPlace::Elsewhere(db) => db.display_url(),
            CopyPlace::Local => "local".to_string(),
        };
        f.debug_struct("RehearseSettings")
            .field("copy", &copy)
            .field("before_deploy", &self.before_deploy)
            .field("limits", &self.limits)
            .finish()
    }
}

#[derive(Clone)]
pub struct DatabaseSettings {
    url: Option<String>,
    pub schema: String,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    /// How long a deploy waits for another deploy's lock before refusing.
    pub lock_wait: Duration,
    /// How many times a transactional batch that hit lock_timeout (55P03), and so
    /// rolled back whole, is tried again before the run fails.
    pub lock_retries: u32,
    /// The wait before the first retry; it doubles for each next one (jittered).
    pub lock_retry_wait: Duration,
    /// How long application sessions may queue behind a statement of ballast's that
    /// waits for a lock before the lock-queue guard cancels it (and the step is tried
    /// again). Zero turns the guard off.
    pub lock_queue_limit: Duration,
    /// How long one step may go on trying for its locks, retries and waits included.
    pub lock_budget: Duration,
    /// What the preflight does about a session that holds a lock on a table the plan
    /// changes, with a query running for longer than a short re-check.
    pub blocker_policy: BlockerPolicy,
    /// The preflight warns of transactions open longer than this.
    pub long_transaction: Duration,
    pub application_name: String,
}

/// `database.blocker_policy`: a long query holding a lock the plan needs is waited for
/// within `lock_budget` (the lock-queue guard keeps the application from queueing
/// behind the wait), or refused up front. An idle transaction holding one is always
/// refused: nothing says it will ever end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockerPolicy {
    Wait,
    Refuse,
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

    /// Whether `other` (a URL, its password redacted or not) names this very database:
    /// the same host, port, socket folder and database name, whatever the user or options.
    /// A URL that does not parse is given the benefit of the doubt.
    pub fn same_database(&self, other: &str) -> bool {
        let key = |u: &str| {
            url::Url::parse(u).ok().map(|u| {
                let socket = u
                    .query_pairs()
                    .find(|(k, _)| k == "host")
                    .map(|(_, v)| v.into_owned());
                // This machine, however it is written.
                let host = match u.host_str().unwrap_or("").to_ascii_lowercase().as_str() {
                    "localhost" | "127.0.0.1" | "[::1]" | "::1" => "localhost".to_string(),
                    other => other.to_string(),
                };
                (host, u.port().unwrap_or(5432), u.path().to_string(), socket)
            })
        };
        match (self.url.as_deref().and_then(key), key(other)) {
            (Some(this), Some(that)) => this == that,
            _ => true,
        }
    }

    /// The database the URL names (empty when it names none: the server's default).
    pub fn database_name(&self) -> String {
        self.url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.path().trim_start_matches('/').to_string())
            .unwrap_or_default()
    }

    /// Everything but the URL as here: a rehearsal's throwaway server.
    pub fn with_url(&self, url: String) -> DatabaseSettings {
        DatabaseSettings {
            url: Some(url),
            ..self.clone()
        }
    }

    /// The same server and credentials, another database (restore's new database,
    /// the maintenance database for renames).
    pub fn for_database(&self, database: &str) -> DatabaseSettings {
        let url = self
            .url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .map(|mut u| {
                u.set_path(&format!("/{database}"));
                // A `dbname` parameter would override the path (libpq and sqlx honour it).
                let kept: Vec<(String, String)> = u
                    .query_pairs()
                    .filter(|(k, _)| k != "dbname")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if kept.is_empty() {
                    u.set_query(None);
                } else {
                    u.query_pairs_mut().clear().extend_pairs(kept);
                }
                u.to_string()
            });
        DatabaseSettings {
            url,
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Sql,
    Alembic,
}

#[derive(Debug, Clone)]
pub struct MigrationSettings {
    pub engine: EngineKind,
    /// The `sql` engine's folder.
    pub dir: PathBuf,
    /// `[migrations] ignore`: entries of that folder that are no migrations.
    pub ignore: Vec<String>,
    /// `[migrations] layout`: the tool whose files the folder holds (`None`: `auto`,
    /// decided from the files).
    pub layout: Option<Tool>,
    /// `[migrations] ledger`: where applied migrations are recorded.
    pub ledger: LedgerChoice,
    /// `[migrations] out_of_order`: whether a pending migration older than the newest
    /// applied one is applied (`None`: `auto`, as the ledger's tool does).
    pub out_of_order: Option<bool>,
    /// The `alembic` engine's project (set when engine = "alembic").
    pub alembic: Option<AlembicSettings>,
}

/// `[migrations] ledger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerChoice {
    /// The tool's ledger found in the database; on a database with none, the
    /// layout's tool's when only that tool writes such files, else ballast's.
    Auto,
    /// `ballast_migrations`.
    Ballast,
    /// The tool's own table, written as the tool writes it.
    Tool(Tool),
}

/// `[migrations]` for an Alembic project.
#[derive(Debug, Clone)]
pub struct AlembicSettings {
    pub ini: PathBuf,
    /// The interpreter alembic runs under (`python -m alembic`): a venv's python, or a
    /// name looked up on PATH.
    pub python: PathBuf,
    /// Where alembic runs: the ini's folder unless set.
    pub working_dir: PathBuf,
    /// Where the version table is, when set: otherwise found (env.py says, through the
    /// probe; or the catalog), see [`crate::engine::alembic::reach::version_table`].
    pub version_schema: Option<String>,
    pub version_table: Option<String>,
    /// `[migrations.env]`: extra variables for the alembic process.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// The local backup folder (storage when `s3` is not set; the journal file always).
    pub dir: PathBuf,
    pub pg_dump: PathBuf,
    /// gzip level, 1 (fast) to 9 (small).
    pub compression_level: u32,
    /// Retention for `prune`.
    pub retention: Retention,
    /// An in-place restore ends the sessions still connected to the target at its
    /// rename (pg_terminate_backend) instead of refusing to replace a database in use.
    pub restore_ends_sessions: bool,
    /// Seal every backup with age to these recipients (`backup.age_recipients`).
    pub age_recipients: Option<crate::seal::Recipients>,
    /// The age identity file that reads sealed backups (`backup.age_identity_file`,
    /// or `--identity`).
    pub age_identity_file: Option<PathBuf>,
    pub s3: Option<S3Settings>,
}

/// `[backup.s3]`: an S3-protocol bucket. Credentials come from the AWS chain only.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Key prefix, empty or ending in `/`.
    pub prefix: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    pub storage_class: Option<String>,
    pub server_side_encryption: Option<String>,
    pub kms_key_id: Option<String>,
    /// Unfinished multipart uploads older than this under the prefix are aborted.
    pub stale_upload_after: Duration,
    /// S3 Object Lock retention set on every backup's objects.
    pub object_lock: Option<ObjectLock>,
}

/// `backup.s3.object_lock_days` and `object_lock_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    pub days: u32,
    /// Compliance: nobody, not even the account's root, deletes it early. Governance:
    /// a role with `s3:BypassGovernanceRetention` can.
    pub compliance: bool,
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
    let within = |p: Option<String>| resolve_path(&config_dir, &p.unwrap_or_default());
    let database = resolve_database(raw.database, &bad)?;
    let migrations = resolve_migrations(raw.migrations, &within, &bad)?;
    let backup = resolve_backup(raw.backup, &within, &bad)?;
    let verify_checks = raw
        .verify
        .checks
        .into_iter()
        .map(|c| SqlCheck {
            name: c.name,
            sql: c.sql,
        })
        .collect();
    let lint = resolve_lint(raw.lint, &bad)?;
    let rehearse = resolve_rehearse(raw.rehearse, &database, &bad)?;
    Ok(Settings {
        config_dir,
        config_file,
        sources,
        database,
        migrations,
        backup,
        verify_checks,
        lint,
        rehearse,
    })
}

fn resolve_rehearse(
    raw: super::raw::RawRehearse,
    database: &DatabaseSettings,
    bad: Bad,
) -> Result<RehearseSettings, ConfigError> {
    let limit = |key: &str, value: Option<String>| -> Result<Option<Duration>, ConfigError> {
        value
            .map(|v| parse_duration(&v).map_err(|e| bad(key, e.to_string())))
            .transpose()
    };
    let copy = match raw.url.as_deref().filter(|u| !u.is_empty()) {
        None => CopyPlace::Beside,
        Some("local") => CopyPlace::Local,
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            CopyPlace::Elsewhere(DatabaseSettings {
                url: Some(url.to_string()),
                ..database.clone()
            })
        }
        Some(url) => {
            return Err(bad(
                "rehearse.url",
                format!(
                    "`{}` is neither a postgres:// URL nor `local`",
                    redact_url(url)
                ),
            ))
        }
    };
    Ok(RehearseSettings {
        copy,
        before_deploy: raw.before_deploy.unwrap_or(false),
        limits: RehearseLimits {
            max_exclusive_lock: limit("rehearse.max_exclusive_lock", raw.max_exclusive_lock)?,
            max_write_block: limit("rehearse.max_write_block", raw.max_write_block)?,
            max_duration: limit("rehearse.max_duration", raw.max_duration)?,
        },
    })
}

/// How a key's bad value is reported (with where the value came from).
type Bad<'a> = &'a dyn Fn(&str, String) -> ConfigError;
/// A path from the config, relative to the config's folder.
type Within<'a> = &'a dyn Fn(Option<String>) -> PathBuf;

fn resolve_database(
    db: super::raw::RawDatabase,
    bad: Bad,
) -> Result<DatabaseSettings, ConfigError> {
    let duration = |key: &str, value: Option<String>| -> Result<Duration, ConfigError> {
        let value = value.unwrap_or_default();
        parse_duration(&value).map_err(|e| bad(key, e.to_string()))
    };
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
    Ok(DatabaseSettings {
        url: db.url.filter(|u| !u.is_empty()),
        schema,
        lock_timeout: duration("database.lock_timeout", db.lock_timeout)?,
        statement_timeout: duration("database.statement_timeout", db.statement_timeout)?,
        lock_wait: duration("database.lock_wait", db.lock_wait)?,
        long_transaction: duration("database.long_transaction", db.long_transaction)?,
        lock_retries: db.lock_retries.unwrap_or(0),
        lock_retry_wait: duration("database.lock_retry_wait", db.lock_retry_wait)?,
        lock_queue_limit: duration("database.lock_queue_limit", db.lock_queue_limit)?,
        lock_budget: duration("database.lock_budget", db.lock_budget)?,
        blocker_policy: match db.blocker_policy.as_deref().unwrap_or("wait") {
            "wait" => BlockerPolicy::Wait,
            "refuse" => BlockerPolicy::Refuse,
            other => {
                return Err(bad(
                    "database.blocker_policy",
                    format!("`{other}` is not one of: wait, refuse"),
                ))
            }
        },
        application_name: db.application_name.unwrap_or_default(),
    })
}

fn resolve_migrations(
    m: super::raw::RawMigrations,
    within: Within,
    bad: Bad,
) -> Result<MigrationSettings, ConfigError> {
    let engine = match m.engine.as_deref().unwrap_or("sql") {
        "sql" => EngineKind::Sql,
        "alembic" => EngineKind::Alembic,
        other => {
            return Err(bad(
                "migrations.engine",
                format!("unknown engine `{other}`; the engines are: sql, alembic"),
            ))
        }
    };
    let alembic = match engine {
        EngineKind::Sql => None,
        EngineKind::Alembic => {
            let ini = within(Some(m.alembic_ini.unwrap_or_else(|| "alembic.ini".into())));
            let python = m.python.unwrap_or_else(|| "python3".into());
            let python = if python.contains('/') {
                within(Some(python))
            } else {
                PathBuf::from(python)
            };
            let working_dir = match m.working_dir {
                Some(dir) => within(Some(dir)),
                None => ini.parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            // Never `database.schema` by default: that is ballast's own tables' schema,
            // and Alembic's is wherever env.py puts it.
            let version_schema = m.version_schema;
            if let Some(schema) = version_schema
                .as_deref()
                .filter(|s| !is_plain_identifier(s))
            {
                return Err(bad(
                    "migrations.version_schema",
                    format!("`{schema}` is not a plain schema name"),
                ));
            }
            let version_table = m.version_table;
            if let Some(table) = version_table.as_deref().filter(|t| !is_plain_identifier(t)) {
                return Err(bad(
                    "migrations.version_table",
                    format!("`{table}` is not a plain table name"),
                ));
            }
            Some(AlembicSettings {
                ini,
                python,
                working_dir,
                version_schema,
                version_table,
                env: m.env.unwrap_or_default().into_iter().collect(),
            })
        }
    };
    let tools = || {
        Tool::ALL
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let layout = match m.layout.as_deref().unwrap_or("auto") {
        "auto" => None,
        name => Some(Tool::from_name(name).ok_or_else(|| {
            bad(
                "migrations.layout",
                format!(
                    "unknown layout `{name}`; the layouts are: auto, {}",
                    tools()
                ),
            )
        })?),
    };
    let ledger = match m.ledger.as_deref().unwrap_or("auto") {
        "auto" => LedgerChoice::Auto,
        "ballast" => LedgerChoice::Ballast,
        name => LedgerChoice::Tool(Tool::from_name(name).ok_or_else(|| {
            bad(
                "migrations.ledger",
                format!(
                    "unknown ledger `{name}`; the ledgers are: auto, ballast, {}",
                    tools()
                ),
            )
        })?),
    };
    let out_of_order = match m.out_of_order.as_deref().unwrap_or("auto") {
        "auto" => None,
        "refuse" => Some(false),
        "apply" => Some(true),
        other => {
            return Err(bad(
                "migrations.out_of_order",
                format!("unknown value `{other}`; it is auto, refuse or apply"),
            ))
        }
    };
    Ok(MigrationSettings {
        engine,
        dir: within(m.dir),
        ignore: m.ignore.unwrap_or_default(),
        layout,
        ledger,
        out_of_order,
        alembic,
    })
}

fn resolve_backup(
    raw: super::raw::RawBackup,
    within: Within,
    bad: Bad,
) -> Result<BackupSettings, ConfigError> {
    let pg_dump = raw.pg_dump.unwrap_or_else(|| "pg_dump".into());
    let pg_dump = if pg_dump.contains('/') {
        within(Some(pg_dump))
    } else {
        PathBuf::from(pg_dump)
    };
    let compression_level = raw.compression_level.unwrap_or(2);
    if !(1..=9).contains(&compression_level) {
        return Err(bad(
            "backup.compression_level",
            format!("{compression_level} is not a gzip level (1-9)"),
        ));
    }
    let s3 = match raw.s3 {
        None => None,
        Some(s3) => Some(resolve_s3(s3, bad)?),
    };
    let retention = Retention {
        keep_last: raw.keep_last.unwrap_or(7),
        keep_days: raw.keep_days.unwrap_or(14),
    };
    let age_recipients = crate::seal::Recipients::parse(&raw.age_recipients.unwrap_or_default())
        .map_err(|e| bad("backup.age_recipients", e.to_string()))?;
    Ok(BackupSettings {
        dir: within(raw.dir),
        pg_dump,
        compression_level,
        retention,
        restore_ends_sessions: raw.restore_ends_sessions.unwrap_or(false),
        age_recipients,
        age_identity_file: raw.age_identity_file.map(|f| within(Some(f))),
        s3,
    })
}

fn resolve_lint(
    raw: super::raw::RawLint,
    bad: Bad,
) -> Result<crate::lint::LintSettings, ConfigError> {
    let mut lint_levels = Vec::new();
    for id in raw.disable.unwrap_or_default() {
        known_rule(&id, "lint.disable", bad)?;
        lint_levels.push((id, crate::lint::Level::Off));
    }
    for (id, level) in raw.levels.unwrap_or_default() {
        let key = format!("lint.levels.{id}");
        known_rule(&id, &key, bad)?;
        let Some(level) = crate::lint::Level::parse(&level) else {
            return Err(bad(
                &key,
                format!("`{level}` is not a level: error, warning or off"),
            ));
        };
        lint_levels.push((id, level));
    }

    Ok(crate::lint::LintSettings {
        levels: lint_levels,
        ..Default::default()
    })
}

fn resolve_s3(
    raw: super::raw::RawS3,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<S3Settings, ConfigError> {
    let bucket = raw.bucket.filter(|b| !b.is_empty()).ok_or_else(|| {
        bad(
            "backup.s3.bucket",
            "is required when [backup.s3] is present".into(),
        )
    })?;
    let mut prefix = raw.prefix.unwrap_or_default();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    if raw.kms_key_id.is_some() && raw.server_side_encryption.as_deref() != Some("aws:kms") {
        return Err(bad(
            "backup.s3.kms_key_id",
            "needs server_side_encryption = \"aws:kms\"".into(),
        ));
    }
    let stale = raw.stale_upload_after.unwrap_or_else(|| "24h".into());
    let stale_upload_after = super::duration::parse_duration(&stale)
        .map_err(|e| bad("backup.s3.stale_upload_after", e.to_string()))?;
    let object_lock = match (raw.object_lock_days, raw.object_lock_mode.as_deref()) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(bad(
                "backup.s3.object_lock_mode",
                "needs object_lock_days (how long each backup stays locked)".into(),
            ))
        }
        (Some(0), _) => {
            return Err(bad(
                "backup.s3.object_lock_days",
                "must be at least 1 (remove it to lock nothing)".into(),
            ))
        }
        (Some(days), mode) => Some(ObjectLock {
            days,
            compliance: match mode.unwrap_or("governance") {
                "governance" => false,
                "compliance" => true,
                other => {
                    return Err(bad(
                        "backup.s3.object_lock_mode",
                        format!("`{other}` is not \"governance\" or \"compliance\""),
                    ))
                }
            },
        }),
    };
    Ok(S3Settings {
        bucket,
        prefix,
        region: raw.region.unwrap_or_else(|| "us-east-1".into()),
        endpoint: raw.endpoint.filter(|e| !e.is_empty()),
        force_path_style: raw.force_path_style.unwrap_or(false),
        storage_class: raw.storage_class,
        server_side_encryption: raw.server_side_encryption,
        kms_key_id: raw.kms_key_id,
        stale_upload_after,
        object_lock,
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

impl Settings {
    /// The schema objects are expected in (the lint's `require-schema-qualified`) when
    /// nothing better is known: the Alembic version schema as configured (`public`,
    /// which the rule leaves alone, when it is not: `database.schema` is ballast's own
    /// tables' schema, not the project's), or `database.schema`. A snapshot knows
    /// better: [`crate::engine::Snapshot::lint_schema`].
    pub fn lint_schema(&self) -> &str {
        match &self.migrations.alembic {
            Some(alembic) => alembic.version_schema.as_deref().unwrap_or("public"),
            None => &self.database.schema,
        }
    }
}

/// A rule id in `[lint]` must name a rule: a typo would silently change nothing.
fn known_rule(
    id: &str,
    key: &str,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    match crate::lint::rules::meta(id) {
        Some(_) => Ok(()),
        None => Err(bad(
            key,
            format!("no lint rule `{id}`; `ballast check --rules` lists them"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseSettings;
    use std::time::Duration;

    fn at(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: Some(url.into()),
            schema: "public".into(),
            lock_timeout: Duration::ZERO,
            statement_timeout: Duration::ZERO,
            lock_wait: Duration::ZERO,
            long_transaction: Duration::ZERO,
            lock_retries: 0,
            lock_retry_wait: Duration::ZERO,
            lock_queue_limit: Duration::ZERO,
            lock_budget: Duration::ZERO,
            blocker_policy: super::BlockerPolicy::Wait,
            application_name: "ballast".into(),
        }
    }

    #[test]
    fn the_same_database_is_host_port_socket_and_name() {
        let db = at("postgres://app:secret@db.internal:5432/shop?sslmode=require");
        assert!(db.same_database("postgres://deployer:***@db.internal/shop"));
        assert!(!db.same_database("postgres://app@db.internal:5432/shop_staging"));
        assert!(!db.same_database("postgres://app@db.internal:6432/shop"));
        assert!(!db.same_database("postgres://app@replica.internal/shop"));
        assert!(db.same_database("postgres://app@DB.Internal/shop"));
        let local = at("postgres://app@localhost:5433/shop");
        assert!(local.same_database("postgres://app@127.0.0.1:5433/shop"));
        assert!(local.same_database("postgres://app@[::1]:5433/shop"));
        let socket = at("postgres:///shop?host=/var/run/postgresql");
        assert!(socket.same_database("postgres:///shop?host=/var/run/postgresql"));
        assert!(!socket.same_database("postgres:///shop?host=/tmp"));
        assert!(db.same_database("<no database url>"), "unparsable: kept");
    }
}

/// How many verified backups `prune` keeps: the newest `keep_last`, and any younger
/// than `keep_days` days.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Keep this many newest verified backups.
    pub keep_last: u32,
    /// Keep verified backups younger than this many days.
    pub keep_days: u32,
}
