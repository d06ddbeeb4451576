//! Stacking the config layers with the `config` crate, and naming the culprit on error.
//!
//! Every file is first parsed on its own into [`RawConfig`], so an unknown key or a
//! wrong type is reported with the file, line and key. Only then are the layers merged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

use super::raw::RawConfig;
use super::settings::{resolve, Settings};

/// The built-in defaults: the lowest layer. `deploy.example.toml` documents each key.
pub const DEFAULTS: &str = r#"
[database]
schema = "public"
lock_timeout = "5s"
statement_timeout = "15m"
lock_wait = "30s"
lock_retries = 10
lock_retry_wait = "500ms"
lock_queue_limit = "100ms"
lock_budget = "3m"
blocker_policy = "wait"
long_transaction = "10m"
application_name = "ballast"

[migrations]
engine = "sql"
dir = "migrations"

[backup]
dir = "backups"
pg_dump = "pg_dump"
"#;

/// What the command line says about where config comes from.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config FILE`; `None` means `./deploy.toml` if it exists.
    pub config_path: Option<PathBuf>,
    /// `--env NAME`: overlay `config/NAME.toml` beside the config file.
    pub env_name: Option<String>,
    /// The process environment (injected so tests need not mutate the real one).
    pub environment: Vec<(String, String)>,
    /// `--set KEY=VALUE` flags: the top layer.
    pub overrides: Vec<String>,
    /// `--targets FILE --target NAME`: that target's overlay, above the environment
    /// and below the flags.
    pub target: Option<(PathBuf, String)>,
}

impl LoadOptions {
    pub fn from_process(
        config_path: Option<PathBuf>,
        env_name: Option<String>,
        overrides: Vec<String>,
    ) -> Self {
        LoadOptions {
            config_path,
            env_name,
            environment: std::env::vars().collect(),
            overrides,
            target: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} not found (given with --config)")]
    MissingFile { path: PathBuf },
    #[error(
        "environment overlay {path} not found (selected with --env {env}); create it or drop --env"
    )]
    MissingEnvFile { path: PathBuf, env: String },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("in config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("--set {flag}: {message}")]
    Flag { flag: String, message: String },
    #[error("{key} (from {origin}): {message}")]
    Value {
        key: String,
        origin: String,
        message: String,
    },
    #[error("config: {0}")]
    Merge(String),
    #[error("{0}")]
    Targets(String),
}

/// One layer as read, kept so a bad value can be traced back to where it was set.
struct Layer {
    origin: String,
    value: toml::Value,
}

/// Loads and resolves the settings from every layer.
pub fn load(options: &LoadOptions) -> Result<Settings, ConfigError> {
    let (config_file, config_dir) = locate_config_file(options)?;
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    let mut layers = Vec::new();

    if let Some(path) = &config_file {
        layers.push(read_layer(path)?);
        builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
    }
    if let Some(env) = &options.env_name {
        let path = config_dir.join("config").join(format!("{env}.toml"));
        if !path.is_file() {
            return Err(ConfigError::MissingEnvFile {
                path,
                env: env.clone(),
            });
        }
        layers.push(read_layer(&path)?);
        builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
    }

    let target = match &options.target {
        Some((path, name)) => Some(target_layer(path, name, &options.environment)?),
        None => None,
    };
    let target_url = target
        .as_ref()
        .is_some_and(|t| lookup(&t.value, "database.url").is_some());
    let env_vars = ballast_env_vars(&options.environment)?;
    let database_url = options
        .environment
        .iter()
        .find(|(k, _)| k == "DATABASE_URL")
        .filter(|_| !target_url);
    if let Some((_, url)) = database_url {
        if !env_vars.contains_key("BALLAST_DATABASE__URL") {
            builder = builder
                .set_override("database.url", url.clone())
                .map_err(|e| ConfigError::Merge(e.to_string()))?;
        }
    }
    builder = builder.add_source(env_source(env_vars.clone()));
    if let Some(target) = target {
        let text = toml::to_string(&target.value).map_err(|e| ConfigError::Merge(e.to_string()))?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
        layers.push(target);
    }
    let flags = parse_overrides(&options.overrides)?;
    for (key, value) in &flags {
        builder = builder
            .set_override(key.as_str(), value.clone())
            .map_err(|e| ConfigError::Merge(e.to_string()))?;
    }

    let raw: RawConfig = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Merge(e.to_string()))?;

    let origin_of = |key: &str| -> String {
        if flags.iter().any(|(k, _)| k == key) {
            return format!("--set {key}");
        }
        if let Some(layer) = layers.last().filter(|l| l.origin.contains("[[target]]")) {
            if lookup(&layer.value, key).is_some() {
                return layer.origin.clone();
            }
        }
        let var = format!("BALLAST_{}", key.replace('.', "__").to_uppercase());
        if env_vars.contains_key(&var) {
            return format!("environment variable {var}");
        }
        if key == "database.url" && database_url.is_some() {
            return "environment variable DATABASE_URL".into();
        }
        layers
            .iter()
            .rev()
            .find(|layer| lookup(&layer.value, key).is_some())
            .map(|layer| layer.origin.clone())
            .unwrap_or_else(|| "built-in defaults".into())
    };
    let mut sources: Vec<String> = vec!["built-in defaults".into()];
    sources.extend(layers.iter().map(|l| l.origin.clone()));
    resolve(raw, config_dir, config_file, sources, &origin_of)
}

fn locate_config_file(options: &LoadOptions) -> Result<(Option<PathBuf>, PathBuf), ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match &options.config_path {
        Some(path) => {
            if !path.is_file() {
                return Err(ConfigError::MissingFile { path: path.clone() });
            }
            let path = absolute(&cwd, path);
            let dir = path.parent().map(Path::to_path_buf).unwrap_or(cwd);
            Ok((Some(path), dir))
        }
        None => {
            let default = cwd.join("deploy.toml");
            Ok((default.is_file().then_some(default), cwd))
        }
    }
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

/// Parses one file on its own, so errors name this file, its line and the key.
fn read_layer(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |e: toml::de::Error| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    };
    toml::from_str::<RawConfig>(&text).map_err(invalid)?;
    let value = toml::from_str::<toml::Value>(&text).map_err(invalid)?;
    Ok(Layer {
        origin: path.display().to_string(),
        value,
    })
}

/// The overlay of target `name` in the targets file at `path`.
fn target_layer(
    path: &Path,
    name: &str,
    environment: &[(String, String)],
) -> Result<Layer, ConfigError> {
    let bad = |message: String| ConfigError::Targets(message);
    let targets = super::targets::read(path).map_err(|e| bad(e.to_string()))?;
    let target = targets.iter().find(|t| t.name == name).ok_or_else(|| {
        bad(format!(
            "no target named `{name}` in {} (it has {})",
            path.display(),
            targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    Ok(Layer {
        origin: format!("{} [[target]] {name}", path.display()),
        value: target
            .config_layer(environment)
            .map_err(|e| bad(e.to_string()))?,
    })
}

/// `BALLAST_SECTION__KEY` variables. Variables without `__` (such as `BALLAST_RUN_ID`,
/// which ballast itself hands to hooks) are not config and are left alone.
fn ballast_env_vars(
    environment: &[(String, String)],
) -> Result<HashMap<String, String>, ConfigError> {
    let mut vars = HashMap::new();
    for (name, value) in environment {
        if !name.starts_with("BALLAST_") || !name.contains("__") {
            continue;
        }
        let one: HashMap<String, String> = [(name.clone(), value.clone())].into();
        Config::builder()
            .add_source(env_source(one))
            .build()
            .and_then(|c| c.try_deserialize::<RawConfig>())
            .map_err(|e| ConfigError::Env {
                var: name.clone(),
                message: e.to_string(),
            })?;
        vars.insert(name.clone(), value.clone());
    }
    Ok(vars)
}

/// `--set database.lock_timeout=10s` → ("database.lock_timeout", "10s"), checked
/// against the config's shape like any other layer.
fn parse_overrides(flags: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut parsed = Vec::new();
    for flag in flags {
        // Error messages show the flag, so the URL in it is shown redacted.
        let shown = match flag.split_once('=') {
            Some((key, value)) if key.trim() == "database.url" => {
                format!("{key}={}", crate::redact::redact_url(value))
            }
            _ => flag.clone(),
        };
        let bad = |message: String| ConfigError::Flag {
            flag: shown.clone(),
            message,
        };
        let (key, value) = flag.split_once('=').ok_or_else(|| {
            bad("expected KEY=VALUE, e.g. --set database.lock_timeout=10s".into())
        })?;
        let key = key.trim().to_string();
        if key == "database.url"
            && crate::redact::split_secrets(value).is_ok_and(|s| !s.secrets.is_empty())
        {
            return Err(bad(
                "a password on the command line is visible to every user of this machine (ps); \
                 put the URL in DATABASE_URL or BALLAST_DATABASE__URL instead"
                    .into(),
            ));
        }
        Config::builder()
            .set_override(key.as_str(), value.to_string())
            .and_then(|b| b.build())
            .and_then(|c| c.try_deserialize::<RawConfig>())
            .map_err(|e| bad(e.to_string()))?;
        parsed.push((key, value.to_string()));
    }
    Ok(parsed)
}

fn env_source(vars: HashMap<String, String>) -> Environment {
    Environment::with_prefix("BALLAST")
        .prefix_separator("_")
        .separator("__")
        .source(Some(vars))
}

fn lookup<'a>(value: &'a toml::Value, dotted: &str) -> Option<&'a toml::Value> {
    dotted.split('.').try_fold(value, |v, part| v.get(part))
}
