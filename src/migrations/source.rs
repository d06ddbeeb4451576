//! Reading a migration folder.
//!
//! Layouts accepted, side by side in one folder:
//! - sqlx: `<version>_<name>.up.sql` with an optional `<version>_<name>.down.sql`,
//!   or a single `<version>_<name>.sql` (no down);
//! - diesel: a folder `<version>_<name>/` holding `up.sql`, optional `down.sql` and an
//!   optional `metadata.toml` whose `run_in_transaction = false` marks a migration that
//!   must run outside a transaction.
//!
//! A first line `-- no-transaction` marks the same thing in any layout. Other files
//! (README, .keep) are ignored; a `.sql` file whose name has no version is an error,
//! because silently skipping it would skip a migration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::checksum::checksum;
use super::version::Version;

#[derive(Debug, Clone)]
pub struct Migration {
    pub version: Version,
    /// The name as written, after the version: `create_users`.
    pub name: String,
    /// The file (or diesel folder's `up.sql`) that runs.
    pub up_path: PathBuf,
    pub up_sql: String,
    pub down_sql: Option<String>,
    pub checksum: String,
    /// False for `-- no-transaction` / `run_in_transaction = false`.
    pub transactional: bool,
}

impl Migration {
    /// `20240101120000_create_users`, as a person reads it.
    pub fn label(&self) -> String {
        format!("{}_{}", self.version, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("migration folder {path} does not exist (migrations.dir); create it or point migrations.dir at your migrations")]
    MissingDir { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the name must start with a version, like 20240101120000_create_users.sql or 0001_init.up.sql")]
    BadName { path: PathBuf },
    #[error(
        "version {version} is used twice: {first} and {second}; give one of them a new version"
    )]
    Duplicate {
        version: Version,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{path}: a down file without its up file")]
    DownWithoutUp { path: PathBuf },
    #[error("{path}: the diesel-style folder has no up.sql")]
    MissingUp { path: PathBuf },
    #[error("{path}, line {line}: `{statement}` inside a migration that runs in the deploy transaction would commit or abort it early; remove it (ballast wraps the migration in a transaction), or mark the file `-- no-transaction`")]
    TransactionControl {
        path: PathBuf,
        line: usize,
        statement: String,
    },
    #[error("{path}: invalid metadata.toml: {message}")]
    Metadata { path: PathBuf, message: String },
}

/// All migrations in `dir`, in version order, refusing a transactional one that holds
/// `BEGIN`/`COMMIT`: it would end the deploy's transaction early.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, SourceError> {
    let migrations = read_dir(dir)?;
    for m in migrations.iter().filter(|m| m.transactional) {
        if let Some(statement) = super::split::transaction_control(&m.up_sql) {
            return Err(SourceError::TransactionControl {
                path: m.up_path.clone(),
                line: statement.line,
                statement: statement.sql,
            });
        }
    }
    Ok(migrations)
}

/// All migrations in `dir`, in version order, whatever SQL they hold: for the lint,
/// which reports a `BEGIN` in a transactional migration as one finding among others.
pub fn read_dir(dir: &Path) -> Result<Vec<Migration>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io { path, source }
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort();

    let mut ups: BTreeMap<Version, Migration> = BTreeMap::new();
    let mut downs: Vec<(Version, String, PathBuf)> = Vec::new();
    for path in entries {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if file_name.starts_with('.') {
            continue;
        }
        let found = if path.is_dir() {
            Some(read_diesel_folder(&path, file_name)?)
        } else if let Some(stem) = file_name.strip_suffix(".down.sql") {
            let (version, name) = split_name(stem).ok_or_else(|| bad_name(&path))?;
            let sql = std::fs::read_to_string(&path).map_err(io(&path))?;
            downs.push((version, sql, path.clone()));
            let _ = name;
            None
        } else if let Some(stem) = file_name.strip_suffix(".sql") {
            let stem = stem.strip_suffix(".up").unwrap_or(stem);
            let (version, name) = split_name(stem).ok_or_else(|| bad_name(&path))?;
            let sql = std::fs::read_to_string(&path).map_err(io(&path))?;
            Some(migration(version, name, path.clone(), sql, None, true))
        } else {
            None // README.md, .keep and friends
        };
        if let Some(m) = found {
            if let Some(first) = ups.get(&m.version) {
                return Err(SourceError::Duplicate {
                    version: m.version.clone(),
                    first: first.up_path.clone(),
                    second: m.up_path,
                });
            }
            ups.insert(m.version.clone(), m);
        }
    }
    for (version, sql, path) in downs {
        match ups.get_mut(&version) {
            Some(m) => m.down_sql = Some(sql),
            None => return Err(SourceError::DownWithoutUp { path }),
        }
    }
    Ok(ups.into_values().collect())
}

fn read_diesel_folder(path: &Path, folder_name: &str) -> Result<Migration, SourceError> {
    let (version, name) = split_name(folder_name).ok_or_else(|| bad_name(path))?;
    let up_path = path.join("up.sql");
    if !up_path.is_file() {
        return Err(SourceError::MissingUp {
            path: path.to_path_buf(),
        });
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| SourceError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let up = read(&up_path)?;
    let down_path = path.join("down.sql");
    let down = if down_path.is_file() {
        Some(read(&down_path)?)
    } else {
        None
    };
    let metadata_path = path.join("metadata.toml");
    let mut transactional = true;
    if metadata_path.is_file() {
        #[derive(serde::Deserialize)]
        struct Metadata {
            run_in_transaction: Option<bool>,
        }
        let metadata: Metadata =
            toml::from_str(&read(&metadata_path)?).map_err(|e| SourceError::Metadata {
                path: metadata_path.clone(),
                message: e.message().to_string(),
            })?;
        transactional = metadata.run_in_transaction.unwrap_or(true);
    }
    Ok(migration(version, name, up_path, up, down, transactional))
}

fn migration(
    version: Version,
    name: String,
    up_path: PathBuf,
    up_sql: String,
    down_sql: Option<String>,
    transactional: bool,
) -> Migration {
    let marked = marked_no_transaction(&up_sql);
    Migration {
        checksum: checksum(&up_sql),
        version,
        name,
        up_path,
        up_sql,
        down_sql,
        transactional: transactional && !marked,
    }
}

/// Whether the file's first line is `-- no-transaction` (up and down files alike).
pub fn marked_no_transaction(sql: &str) -> bool {
    sql.trim_start_matches('\u{feff}')
        .lines()
        .next()
        .is_some_and(|l| l.trim().eq_ignore_ascii_case("-- no-transaction"))
}

/// `0001_create_users` → (1, "create_users"); diesel's `2019-01-01-000000_x` too.
fn split_name(stem: &str) -> Option<(Version, String)> {
    let (prefix, name) = stem.split_once('_')?;
    Some((Version::parse(prefix)?, name.to_string()))
}

fn bad_name(path: &Path) -> SourceError {
    SourceError::BadName {
        path: path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_every_layout_in_version_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "10_late.sql", "select 10;");
        write(d, "2_users.up.sql", "create table users (id int);");
        write(d, "2_users.down.sql", "drop table users;");
        write(d, "1_init.sql", "select 1;");
        write(
            d,
            "2019-01-01-000000_diesel/up.sql",
            "create index concurrently i on users (id);",
        );
        write(d, "2019-01-01-000000_diesel/down.sql", "drop index i;");
        write(
            d,
            "2019-01-01-000000_diesel/metadata.toml",
            "run_in_transaction = false\n",
        );
        write(d, "README.md", "not a migration");

        let all = load_dir(d).unwrap();
        let labels: Vec<String> = all.iter().map(Migration::label).collect();
        assert_eq!(
            labels,
            ["1_init", "2_users", "10_late", "20190101000000_diesel"]
        );
        assert_eq!(all[1].down_sql.as_deref(), Some("drop table users;"));
        assert!(!all[3].transactional);
        assert!(all[0].transactional);
    }

    #[test]
    fn no_transaction_marker_on_first_line() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "1_idx.sql",
            "-- no-transaction\ncreate index concurrently i on t (x);",
        );
        assert!(!load_dir(tmp.path()).unwrap()[0].transactional);
    }

    #[test]
    fn transaction_control_in_a_transactional_migration_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "1_a.sql",
            "begin;\ncreate table a (id int);\ncommit;\n",
        );
        let err = load_dir(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("`begin;`"), "{err}");

        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "1_f.sql",
            "create function f() returns int language sql begin atomic select 1; end;",
        );
        write(
            tmp.path(),
            "2_g.sql",
            "-- no-transaction\nbegin;\nselect 1;\ncommit;",
        );
        load_dir(tmp.path()).expect("BEGIN ATOMIC bodies and no-transaction files are fine");
    }

    #[test]
    fn duplicate_versions_are_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "001_a.sql", "select 1;");
        write(tmp.path(), "1_b.sql", "select 1;");
        let err = load_dir(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("version 1 is used twice"), "{err}");
    }

    #[test]
    fn sql_file_without_version_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "create_users.sql", "select 1;");
        let err = load_dir(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("create_users.sql"), "{err}");
    }

    #[test]
    fn missing_folder_names_the_key() {
        let err = load_dir(Path::new("/nonexistent/ballast"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("migrations.dir"), "{err}");
    }
}
