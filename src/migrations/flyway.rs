//! Flyway's migration files, read as Flyway reads them: `V<version>__<description>.sql`
//! (versioned), `U<version>__<description>.sql` (its undo, ballast's down),
//! `R__<description>.sql` (repeatable: runs again whenever its checksum changes, after
//! the versioned ones); a `<file>.conf` beside a file with `executeInTransaction=false`;
//! and Flyway's checksum of a file (CRC32 over its lines, line breaks left out).
//!
//! What Flyway would do and ballast cannot is refused here, by name: SQL callbacks
//! (`afterMigrate.sql`) and `${placeholders}`, which Flyway replaces before it runs a
//! file.

use std::path::{Path, PathBuf};

use super::Version;

/// What a Flyway file is, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Versioned,
    Undo,
    Repeatable,
    /// A SQL callback (`beforeMigrate.sql`, `afterEachMigrate__x.sql`, ...).
    Callback,
}

/// A Flyway file name, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub kind: Kind,
    /// As written between the prefix and `__` (`1_1`, `2.0`); empty for repeatables
    /// and callbacks.
    pub version: String,
    /// As written after `__`, `_` not yet read as spaces.
    pub description: String,
}

/// The events of a `flyway migrate` (validate runs first, by default) that Flyway runs
/// SQL callbacks on: a file named for one is a callback. Callbacks of other commands
/// (clean, info, repair, ...) never run on a migrate, and are left alone.
const CALLBACKS: [&str; 18] = [
    "beforeConnect",
    "afterConnect",
    "beforeValidate",
    "afterValidate",
    "afterValidateError",
    "createSchema",
    "beforeMigrate",
    "beforeRepeatables",
    "beforeEachMigrate",
    "beforeEachMigrateStatement",
    "afterEachMigrateStatement",
    "afterEachMigrateStatementError",
    "afterEachMigrate",
    "afterEachMigrateError",
    "afterMigrate",
    "afterMigrateApplied",
    "afterVersioned",
    "afterMigrateError",
];

/// Reads `file_name` as Flyway names its files; `None` when it is no Flyway name
/// (then Flyway ignores it, as ballast does).
pub fn name(file_name: &str) -> Option<Name> {
    let stem = file_name.strip_suffix(".sql")?;
    let event = stem.split("__").next().unwrap_or_default();
    if CALLBACKS.contains(&event) {
        return Some(Name {
            kind: Kind::Callback,
            version: String::new(),
            description: stem.to_string(),
        });
    }
    let kind = match stem.chars().next()? {
        'V' => Kind::Versioned,
        'U' => Kind::Undo,
        'R' => Kind::Repeatable,
        _ => return None,
    };
    let (version, description) = match stem[1..].split_once("__") {
        Some(split) => split,
        // `V3.sql`: Flyway reads version 3, with no description.
        None if kind != Kind::Repeatable && Version::flyway(&stem[1..]).is_some() => {
            (&stem[1..], "")
        }
        None => return None,
    };
    Some(Name {
        kind,
        version: version.to_string(),
        description: description.to_string(),
    })
}

/// Why a Flyway file cannot be deployed as Flyway would deploy it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlywayError {
    #[error("{path}: `{version}` is no version Flyway reads (digits, separated by `.` or `_`, like V1__init.sql or V2_1__add_index.sql). Flyway skips such a file without a word (unless validateMigrationNaming is on), so it never ran: rename it, or list it in [migrations] ignore")]
    BadVersion { path: PathBuf, version: String },
    #[error("{path}: a repeatable migration has no version: name it R__<description>.sql")]
    VersionedRepeatable { path: PathBuf },
    #[error("{path}: Flyway runs it as a SQL callback ({event}), which ballast does not run; move it out of the migration folder (or list it in [migrations] ignore) and run it another way")]
    Callback { path: PathBuf, event: String },
    #[error("{path}, line {line}: `{placeholder}` is a Flyway placeholder, which Flyway replaces before it runs the file; ballast runs files as written, so it would run something else. Write the value into the file")]
    Placeholder {
        path: PathBuf,
        line: usize,
        placeholder: String,
    },
    #[error("{path}: `{line}`: ballast reads only executeInTransaction from a Flyway script configuration")]
    Config { path: PathBuf, line: String },
    #[error("{path} holds Flyway migrations ({example}): Flyway reads the folders below its location too, ballast reads the top of the migration folder only, so it would not see them. Move them up into the migration folder")]
    Subfolder { path: PathBuf, example: String },
}

impl Name {
    /// The migration's version (versioned and undo files), or its repeatable key.
    pub fn version(&self, path: &Path) -> Result<Version, FlywayError> {
        match self.kind {
            Kind::Repeatable if !self.version.is_empty() => Err(FlywayError::VersionedRepeatable {
                path: path.to_path_buf(),
            }),
            Kind::Repeatable => {
                Version::repeatable(&self.description).ok_or(FlywayError::BadVersion {
                    path: path.to_path_buf(),
                    version: String::new(),
                })
            }
            Kind::Callback => Err(FlywayError::Callback {
                path: path.to_path_buf(),
                event: self.description.clone(),
            }),
            Kind::Versioned | Kind::Undo => {
                Version::flyway(&self.version).ok_or_else(|| FlywayError::BadVersion {
                    path: path.to_path_buf(),
                    version: self.version.clone(),
                })
            }
        }
    }

    /// The version as Flyway writes it in its history table: `_` read as `.`.
    pub fn written_version(&self) -> String {
        self.version.replace('_', ".")
    }

    /// The description as Flyway writes it: `_` read as spaces; past its column's 200
    /// characters, the first 197 and `...`.
    pub fn written_description(&self) -> String {
        let description = self.description.replace('_', " ");
        match description.chars().count() > 200 {
            true => description.chars().take(197).chain("...".chars()).collect(),
            false => description,
        }
    }
}

/// Refuses `${...}` in a file Flyway would replace placeholders in.
pub fn refuse_placeholders(path: &Path, text: &str) -> Result<(), FlywayError> {
    for (index, line) in text.lines().enumerate() {
        let Some(start) = line.find("${") else {
            continue;
        };
        let rest = &line[start..];
        let placeholder = match rest.find('}') {
            Some(end) => &rest[..=end],
            None => rest,
        };
        return Err(FlywayError::Placeholder {
            path: path.to_path_buf(),
            line: index + 1,
            placeholder: placeholder.to_string(),
        });
    }
    Ok(())
}

/// Whether the file's script configuration (`<file>.conf` beside it) says
/// `executeInTransaction=false`. `None`: the file has none.
pub fn execute_in_transaction(conf: &Path, text: &str) -> Result<Option<bool>, FlywayError> {
    let mut setting = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("executeInTransaction", value)) if value.eq_ignore_ascii_case("true") => {
                setting = Some(true)
            }
            Some(("executeInTransaction", value)) if value.eq_ignore_ascii_case("false") => {
                setting = Some(false)
            }
            _ => {
                return Err(FlywayError::Config {
                    path: conf.to_path_buf(),
                    line: line.to_string(),
                })
            }
        }
    }
    Ok(setting)
}

/// Flyway's checksum of a file's text: CRC32 over each line's UTF-8 bytes, line
/// breaks (`\n`, `\r\n`, `\r`) left out and a leading byte-order mark dropped, as a
/// signed 32-bit integer (how its history table keeps it).
pub fn checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = crc32fast::Hasher::new();
    for line in text.split('\n') {
        for part in line.split('\r') {
            crc.update(part.as_bytes());
        }
    }
    crc.finalize() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_flyway_reads_them() {
        assert_eq!(
            name("V1_1__add_index.sql"),
            Some(Name {
                kind: Kind::Versioned,
                version: "1_1".into(),
                description: "add_index".into()
            })
        );
        let undo = name("U2__drop.sql").unwrap();
        assert_eq!((undo.kind, undo.version.as_str()), (Kind::Undo, "2"));
        let repeatable = name("R__views.sql").unwrap();
        assert_eq!(repeatable.kind, Kind::Repeatable);
        assert_eq!(
            repeatable.version(Path::new("R__views.sql")).unwrap(),
            Version::repeatable("views").unwrap()
        );
        assert_eq!(name("afterMigrate.sql").unwrap().kind, Kind::Callback);
        assert_eq!(
            name("beforeEachMigrate__log.sql").unwrap().kind,
            Kind::Callback
        );
        assert_eq!(name("V1_init.sql"), None, "no `__`: Flyway ignores it");
        let bare = name("V3.sql").unwrap();
        assert_eq!(
            (bare.version.as_str(), bare.description.as_str()),
            ("3", "")
        );
        assert_eq!(name("VERSION.sql"), None);
        assert_eq!(name("beforeValidate.sql").unwrap().kind, Kind::Callback);
        assert_eq!(
            name("afterEachMigrateError__log.sql").unwrap().kind,
            Kind::Callback
        );
        assert_eq!(name("beforeClean.sql"), None, "never runs on a migrate");
        assert_eq!(name("1_init.sql"), None);
        assert_eq!(name("V1__init.txt"), None);
        let written = name("V1_1__add_an_index.sql").unwrap();
        assert_eq!(written.written_version(), "1.1");
        assert_eq!(written.written_description(), "add an index");
        let long = name(&format!("V2__{}.sql", "x".repeat(250))).unwrap();
        assert_eq!(
            long.written_description(),
            format!("{}...", "x".repeat(197))
        );
    }

    #[test]
    fn a_bad_version_and_a_callback_are_refused_with_the_file_named() {
        let path = Path::new("V1a__x.sql");
        assert!(matches!(
            name("V1a__x.sql").unwrap().version(path),
            Err(FlywayError::BadVersion { version, .. }) if version == "1a"
        ));
        assert!(matches!(
            name("afterMigrate.sql")
                .unwrap()
                .version(Path::new("afterMigrate.sql")),
            Err(FlywayError::Callback { .. })
        ));
        assert!(matches!(
            name("R1__x.sql").unwrap().version(Path::new("R1__x.sql")),
            Err(FlywayError::VersionedRepeatable { .. })
        ));
    }

    #[test]
    fn placeholders_are_refused_and_dollar_quotes_are_not() {
        let path = Path::new("V1__x.sql");
        assert_eq!(
            refuse_placeholders(path, "select 1;\ngrant select on t to ${reader};\n"),
            Err(FlywayError::Placeholder {
                path: path.into(),
                line: 2,
                placeholder: "${reader}".into()
            })
        );
        assert_eq!(
            refuse_placeholders(path, "do $$ begin perform 1; end $$;\n"),
            Ok(())
        );
    }

    #[test]
    fn a_script_configuration_says_whether_the_file_runs_in_a_transaction() {
        let conf = Path::new("V1__x.sql.conf");
        assert_eq!(
            execute_in_transaction(conf, "# why\nexecuteInTransaction=false\n"),
            Ok(Some(false))
        );
        assert_eq!(execute_in_transaction(conf, ""), Ok(None));
        assert!(execute_in_transaction(conf, "encoding=ISO-8859-1\n").is_err());
    }

    #[test]
    fn the_checksum_leaves_line_breaks_and_the_bom_out() {
        let lf = checksum("create table a (id int);\nselect 1;\n");
        assert_eq!(lf, checksum("create table a (id int);\r\nselect 1;\r\n"));
        assert_eq!(lf, checksum("\u{feff}create table a (id int);\nselect 1;"));
        assert_ne!(lf, checksum("create table a (id int);\nselect 2;\n"));
        // CRC32 of the bytes with the line breaks removed, as a signed integer.
        let crc = crc32fast::hash(b"create table a (id int);select 1;") as i32;
        assert_eq!(lf, crc);
    }
}
