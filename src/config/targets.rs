//! The targets file (`--targets FILE`): one `[[target]]` per database, each an overlay
//! on the config in the same shape as deploy.toml, plus its `name` and, to keep
//! passwords out of the file, `url_env` (the environment variable holding its URL).
//!
//! ```toml
//! [[target]]
//! name = "acme"
//! url_env = "ACME_DATABASE_URL"
//! database.schema = "acme"
//!
//! [[target]]
//! name = "globex"
//! database.url = "postgres://deploy@db-2.internal/globex"
//! ```

use std::path::{Path, PathBuf};

use super::raw::RawConfig;

/// One target: its name and the config layer it lays over deploy.toml.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub layer: toml::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("cannot read the targets file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("in the targets file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Reads and checks the whole file: names present and unique, every overlay a valid
/// piece of config. `url_env` is resolved later, by the run of that target.
pub fn read(path: &Path) -> Result<Vec<Target>, TargetsError> {
    let text = std::fs::read_to_string(path).map_err(|source| TargetsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Vec<Target>, TargetsError> {
    let invalid = |message: String| TargetsError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let file: toml::Value =
        toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().into()))?;
    let table = file
        .as_table()
        .ok_or_else(|| invalid("expected [[target]] tables".into()))?;
    if let Some(other) = table.keys().find(|k| *k != "target") {
        return Err(invalid(format!(
            "unknown key `{other}`: the file holds [[target]] tables only"
        )));
    }
    let entries = table
        .get("target")
        .and_then(toml::Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("no [[target]] in it".into()))?;
    let mut targets: Vec<Target> = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let mut layer = entry
            .as_table()
            .cloned()
            .ok_or_else(|| invalid(format!("target #{} is not a table", n + 1)))?;
        let name = match layer.remove("name") {
            Some(toml::Value::String(name)) if valid_name(&name) => name,
            Some(toml::Value::String(name)) => {
                return Err(invalid(format!(
                    "target name `{name}`: use letters, digits, `-`, `_` and `.` only"
                )))
            }
            _ => return Err(invalid(format!("target #{} has no `name`", n + 1))),
        };
        if targets.iter().any(|t| t.name == name) {
            return Err(invalid(format!("two targets are named `{name}`")));
        }
        if let Some(url_env) = layer.get("url_env") {
            if !url_env.is_str() {
                return Err(invalid(format!(
                    "target {name}: `url_env` is the name of an environment variable"
                )));
            }
            let has_url = layer.get("database").and_then(|d| d.get("url")).is_some();
            if has_url {
                return Err(invalid(format!(
                    "target {name} has both `url_env` and `database.url`: keep one"
                )));
            }
        }
        // The rest must be config, checked like any layer.
        let mut as_config = layer.clone();
        as_config.remove("url_env");
        toml::Value::Table(as_config)
            .try_into::<RawConfig>()
            .map_err(|e| invalid(format!("target {name}: {}", e.to_string().trim_end())))?;
        targets.push(Target {
            name,
            layer: toml::Value::Table(layer),
        });
    }
    Ok(targets)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A target's `url_env` names a variable the environment does not have.
#[derive(Debug, thiserror::Error)]
#[error("target {target}: its url_env names {var}, which is not set in the environment")]
pub struct UnsetUrlEnv {
    target: String,
    var: String,
}

impl Target {
    /// The overlay as config: `url_env` replaced by `database.url` read from the
    /// environment (`environment` is injected for tests).
    pub fn config_layer(
        &self,
        environment: &[(String, String)],
    ) -> Result<toml::Value, UnsetUrlEnv> {
        let mut layer = self.layer.as_table().cloned().unwrap_or_default();
        if let Some(toml::Value::String(var)) = layer.remove("url_env") {
            let url = environment
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| UnsetUrlEnv {
                    target: self.name.clone(),
                    var: var.clone(),
                })?;
            let database = layer
                .entry("database")
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if let Some(table) = database.as_table_mut() {
                table.insert("url".into(), toml::Value::String(url));
            }
        }
        Ok(toml::Value::Table(layer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<Target>, String> {
        parse(Path::new("targets.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn targets_are_named_overlays_checked_like_config() {
        let targets = parsed(
            "[[target]]\nname = \"acme\"\nurl_env = \"ACME_URL\"\ndatabase.schema = \"acme\"\n\n[[target]]\nname = \"globex\"\ndatabase.url = \"postgres://x@h/g\"\n",
        )
        .unwrap();
        assert_eq!(targets.len(), 2);
        let layer = targets[0]
            .config_layer(&[("ACME_URL".into(), "postgres://a@h/acme".into())])
            .unwrap();
        assert_eq!(
            layer["database"]["url"].as_str(),
            Some("postgres://a@h/acme")
        );
        assert_eq!(layer["database"]["schema"].as_str(), Some("acme"));
        assert!(layer.get("url_env").is_none());
        assert!(targets[0]
            .config_layer(&[])
            .unwrap_err()
            .to_string()
            .contains("ACME_URL, which is not set"));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            ("", "no [[target]]"),
            ("[[target]]\ndatabase.schema = \"x\"\n", "has no `name`"),
            (
                "[[target]]\nname = \"a\"\n[[target]]\nname = \"a\"\n",
                "two targets are named `a`",
            ),
            ("[[target]]\nname = \"a b\"\n", "letters, digits"),
            (
                "[[target]]\nname = \"a\"\ndatabase.nope = 1\n",
                "target a: unknown field `nope`",
            ),
            (
                "[[target]]\nname = \"a\"\nurl_env = \"U\"\ndatabase.url = \"postgres://h/d\"\n",
                "keep one",
            ),
            ("[database]\nurl = \"x\"\n", "unknown key `database`"),
        ];
        for (text, expected) in cases {
            let error = parsed(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
