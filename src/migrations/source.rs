//! Reading a migration folder, in the layout [`super::layout`] decides.
//!
//! sqlx and diesel layouts (also side by side in one folder, as ballast has always
//! read them; see [`Layout::Mixed`]):
//! - sqlx: `<version>_<name>.up.sql` with an optional `<version>_<name>.down.sql`,
//!   or a single `<version>_<name>.sql` (no down);
//! - diesel: a folder `<version>_<name>/` holding `up.sql`, optional `down.sql` and an
//!   optional `metadata.toml` whose `run_in_transaction = false` marks a migration that
//!   must run outside a transaction.
//!
//! dbmate: `<version>_<name>.sql` holding a `-- migrate:up` section and a
//! `-- migrate:down` one (dbmate wants it, empty or not), each with its own
//! `transaction:false` option.
//!
//! A first line `-- no-transaction` marks the same thing in any layout. Other files
//! (README, .keep) are ignored; a `.sql` file whose name has no version is an error,
//! because silently skipping it would skip a migration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::checksum::checksum;
use super::flyway;
use super::layout::{self, Layout, LayoutError, SectionError, Seen, Tool};
use super::phase::{self, Phase, PhaseError};
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
    /// False for `-- no-transaction` / `run_in_transaction = false` /
    /// dbmate's `-- migrate:up transaction:false`.
    pub transactional: bool,
    /// False when the whole migration runs outside a transaction (diesel's
    /// `metadata.toml`) or dbmate's down section says `transaction:false`; a down
    /// file's own `-- no-transaction` first line says it too.
    pub down_transactional: bool,
    /// When in a release it runs: `-- ballast:phase post` anywhere in its file (a
    /// line of its own) makes it part of the contract step ([`super::phase`]).
    pub phase: Phase,
}

impl Migration {
    /// `20240101120000_create_users`, as a person reads it.
    pub fn label(&self) -> String {
        match self.version.is_repeatable() {
            // `R__views`: the version already holds the name.
            true => self.version.to_string(),
            false => format!("{}_{}", self.version, self.name),
        }
    }

    /// Why it has no down that could undo it: no down file, or an empty one.
    pub fn down_problem(&self) -> Option<&'static str> {
        match &self.down_sql {
            None => Some("it has no down file"),
            Some(down) if super::split::split_statements(down).is_empty() => {
                Some("its down file is empty")
            }
            Some(_) => None,
        }
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
    #[error("{path}: the name must start with a version, like 20240101120000_create_users.sql or 0001_init.up.sql; if it is not a migration, list it in [migrations] ignore (e.g. ignore = [\"*seed*.sql\"])")]
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
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Flyway(#[from] flyway::FlywayError),
    #[error("{path} mixes statements PostgreSQL runs only outside a transaction (CREATE INDEX CONCURRENTLY, ...) with others: Flyway refuses such a migration (unless its `mixed` setting is on), and so does ballast. Put the others in a file of their own, or give it a script configuration {path}.conf with executeInTransaction=false")]
    FlywayMixed { path: PathBuf },
    #[error("{path}: {error}")]
    Sections { path: PathBuf, error: SectionError },
    #[error("{path}, {error}")]
    Phase { path: PathBuf, error: PhaseError },
}

/// A migration folder as read: its migrations in version order, what else it holds,
/// and the layout they were read in.
#[derive(Debug)]
pub struct Folder {
    pub migrations: Vec<Migration>,
    pub ignored: Vec<Ignored>,
    pub layout: Layout,
}

/// An entry of the migrations folder that is no migration, and why it is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub name: String,
    pub why: &'static str,
}

/// [`read_folder`], refusing a transactional migration that holds `BEGIN`/`COMMIT`
/// ([`refuse_transaction_control`]).
pub fn load_folder(
    dir: &Path,
    ignore: &[String],
    layout: Option<Tool>,
) -> Result<Folder, SourceError> {
    let folder = read_folder(dir, ignore, layout)?;
    refuse_transaction_control(&folder.migrations)?;
    Ok(folder)
}

/// Refuses a transactional migration that holds `BEGIN`/`COMMIT`: it would end the
/// deploy's transaction early.
pub fn refuse_transaction_control(migrations: &[Migration]) -> Result<(), SourceError> {
    for m in migrations.iter().filter(|m| m.transactional) {
        if let Some(statement) = super::split::transaction_control(&m.up_sql) {
            return Err(SourceError::TransactionControl {
                path: m.up_path.clone(),
                line: statement.line,
                statement: statement.sql,
            });
        }
    }
    Ok(())
}

/// Migrations a tool runs as written, each file one query (golang-migrate): those
/// that cannot run inside a transaction run alone (their downs too); the others keep
/// ballast's one transaction, which is as atomic as the tool's one query. A file
/// wrapped in its own `BEGIN;` ... `COMMIT;` (as golang-migrate's docs advise) runs in
/// ballast's transaction without them: the same atomic unit. One that controls its
/// transaction any other way is refused by [`refuse_transaction_control`].
pub fn run_as_written(migrations: &mut [Migration]) {
    for m in migrations {
        if let Some(unwrapped) = super::split::unwrap_transaction(&m.up_sql) {
            m.up_sql = unwrapped;
        }
        if let Some(unwrapped) = m
            .down_sql
            .as_deref()
            .and_then(super::split::unwrap_transaction)
        {
            m.down_sql = Some(unwrapped);
        }
        m.transactional = m.transactional && !outside_a_transaction(&m.up_sql);
        m.down_transactional = m
            .down_sql
            .as_deref()
            .is_none_or(|down| !outside_a_transaction(down));
    }
}

/// A statement PostgreSQL refuses in a transaction block. SQL the parser cannot read
/// is left in the transaction (the lint reports it).
fn outside_a_transaction(sql: &str) -> bool {
    statements_outside(sql).0 > 0
}

/// How many of the statements of `sql` PostgreSQL refuses in a transaction block, and
/// how many there are (none read when the parser cannot read it).
fn statements_outside(sql: &str) -> (usize, usize) {
    let Ok(parsed) = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT) else {
        return (0, 0);
    };
    let stmts = &parsed.protobuf.stmts;
    let outside = stmts
        .iter()
        .filter(|raw| {
            raw.stmt
                .as_ref()
                .and_then(|s| s.node.as_ref())
                .is_some_and(|node| crate::lint::nodes::never_in_a_transaction(node).is_some())
        })
        .count();
    (outside, stmts.len())
}

/// Whether a Flyway migration runs in a transaction, as Flyway decides: its script
/// configuration says so, else PostgreSQL's own rule: outside one when every
/// statement must be; a file mixing both is refused, as Flyway refuses it.
fn flyway_transactional(path: &Path, sql: &str) -> Result<bool, SourceError> {
    let conf = PathBuf::from(format!("{}.conf", path.display()));
    if conf.is_file() {
        let text = std::fs::read_to_string(&conf).map_err(|source| SourceError::Io {
            path: conf.clone(),
            source,
        })?;
        if let Some(set) = flyway::execute_in_transaction(&conf, &text)? {
            return Ok(set);
        }
    }
    match statements_outside(sql) {
        (0, _) => Ok(true),
        (outside, total) if outside == total => Ok(false),
        _ => Err(SourceError::FlywayMixed {
            path: path.to_path_buf(),
        }),
    }
}

/// The migrations in `dir`, and what else is there, left alone as the layout's own
/// tool leaves it: files that are not `.sql` (a README); `.sql` files with no
/// `<version>_` prefix (sqlx ignores them); in a diesel folder (one with migration
/// folders), top-level files without a version (diesel reads folders only); folders
/// without a version; and whatever matches a `[migrations] ignore` pattern (`*` and
/// `?` wildcards, matched against the name within the folder). A `.sql` file named
/// like `data_seed.sql` in a sqlx folder stays an error, as sqlx has it: it may be a
/// migration with a mistyped version. `layout`: the configured one (`None`: decided
/// from the files). Whatever SQL the migrations hold (the lint reports a `BEGIN` in a
/// transactional one as one finding among others; [`load_folder`] refuses it).
pub fn read_folder(
    dir: &Path,
    ignore: &[String],
    layout: Option<Tool>,
) -> Result<Folder, SourceError> {
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
    let name_of = |path: &Path| {
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string()
    };
    let diesel = entries
        .iter()
        .any(|p| p.is_dir() && split_name(&name_of(p)).is_some());
    // A SQL callback's name (`afterMigrate.sql`) means something only beside Flyway's
    // migrations.
    let flyway = entries.iter().any(|p| {
        !p.is_dir() && flyway::name(&name_of(p)).is_some_and(|n| n.kind != flyway::Kind::Callback)
    });

    let mut candidates = Vec::new();
    let mut ignored = Vec::new();
    for path in entries {
        let file_name = name_of(&path);
        let file_name = file_name.as_str();
        if file_name.starts_with('.') {
            continue;
        }
        let versioned = file_name
            .split_once('_')
            .is_some_and(|(prefix, _)| Version::from_prefix(prefix).is_some());
        let flyway_named = !path.is_dir()
            && flyway::name(file_name).is_some_and(|n| flyway || n.kind != flyway::Kind::Callback);
        let why = if ignore.iter().any(|pattern| wildcard(pattern, file_name)) {
            Some("it matches [migrations] ignore")
        } else if flyway_named {
            None
        } else if file_name.ends_with(".sql.conf") {
            Some("a script configuration (Flyway's), read with its migration")
        } else if path.is_dir() && !versioned {
            Some("a folder without a version is not a migration")
        } else if !path.is_dir() && !file_name.ends_with(".sql") {
            Some("not a .sql file")
        } else if !path.is_dir() && !file_name.contains('_') {
            Some("no <version>_ prefix (sqlx leaves such files alone too)")
        } else if !path.is_dir() && diesel && !versioned {
            Some("a file without a version in a diesel folder (diesel reads folders only)")
        } else {
            None
        };
        if let Some(why) = why {
            ignored.push(Ignored {
                name: file_name.to_string(),
                why,
            });
            continue;
        }
        let text = match path.is_dir() {
            true => None,
            false => Some(std::fs::read_to_string(&path).map_err(io(&path))?),
        };
        candidates.push((path, text));
    }
    let mut seen = Seen::default();
    for (path, text) in &candidates {
        match text {
            None => seen.folders.push(path.clone()),
            Some(_) if flyway && flyway::name(&name_of(path)).is_some() => {
                seen.flyway.push(path.clone())
            }
            Some(text) if layout::has_dbmate_up(text) => seen.sectioned.push(path.clone()),
            Some(_) => seen.plain.push(path.clone()),
        }
    }
    let decided = layout::decide(dir, &seen, layout)?;
    if decided == Layout::Of(Tool::Flyway) {
        refuse_flyway_below(dir, ignore)?;
    }

    let mut ups: BTreeMap<Version, Migration> = BTreeMap::new();
    // A down's text and file, and whether it runs in a transaction when its layout
    // says so on its own (Flyway's undo files).
    let mut downs: Vec<(Version, String, PathBuf, Option<bool>)> = Vec::new();
    for (path, text) in candidates {
        let file_name = name_of(&path);
        let file_name = file_name.as_str();
        // The marker may stand anywhere in the file (above dbmate's `-- migrate:up`
        // too); a diesel folder's is in its up.sql.
        let declared = text.as_deref().map(|text| phase::declared(text, "--"));
        let found = if decided == Layout::Of(Tool::Flyway) {
            let text = text.unwrap_or_default();
            match flyway_migration(&path, file_name, text)? {
                Flyway::Up(m) => Some(m),
                Flyway::Undo(version, sql, transactional) => {
                    downs.push((version, sql, path.clone(), Some(transactional)));
                    None
                }
            }
        } else if decided == Layout::Of(Tool::Dbmate) {
            let text = text.unwrap_or_default();
            let stem = file_name.strip_suffix(".sql").unwrap_or(file_name);
            let (version, name) = split_name(stem).ok_or_else(|| bad_name(&path))?;
            Some(dbmate_migration(version, name, path.clone(), &text)?)
        } else if path.is_dir() {
            Some(read_diesel_folder(&path, file_name)?)
        } else if let Some(stem) = file_name.strip_suffix(".down.sql") {
            let (version, _) = split_name(stem).ok_or_else(|| bad_name(&path))?;
            downs.push((version, text.unwrap_or_default(), path.clone(), None));
            None
        } else if let Some(stem) = file_name.strip_suffix(".sql") {
            let stem = stem.strip_suffix(".up").unwrap_or(stem);
            let (version, name) = split_name(stem).ok_or_else(|| bad_name(&path))?;
            let sql = text.unwrap_or_default();
            Some(migration(version, name, path.clone(), sql, None, true))
        } else {
            None
        };
        if let Some(mut m) = found {
            let declared = declared.unwrap_or_else(|| phase::declared(&m.up_sql, "--"));
            m.phase = declared.map_err(|error| SourceError::Phase {
                path: m.up_path.clone(),
                error,
            })?;
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
    for (version, sql, path, transactional) in downs {
        match ups.get_mut(&version) {
            Some(m) => {
                m.down_sql = Some(sql);
                m.down_transactional = transactional.unwrap_or(m.down_transactional);
            }
            None => return Err(SourceError::DownWithoutUp { path }),
        }
    }
    let mut migrations: Vec<Migration> = ups.into_values().collect();
    if decided == Layout::Of(Tool::Diesel) {
        // diesel runs its migrations in the order of their versions as text (the
        // folder name's prefix, dashes removed), not as numbers: a 18-digit
        // `2024-01-01-000000-0000` comes before `20240102000000`.
        migrations.sort_by_cached_key(|m| {
            m.up_path
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| {
                    n.to_string_lossy()
                        .split('_')
                        .next()
                        .unwrap_or_default()
                        .replace('-', "")
                })
                .unwrap_or_default()
        });
    }
    Ok(Folder {
        migrations,
        ignored,
        layout: decided,
    })
}

/// Refuses Flyway migrations in a folder below `dir`: Flyway reads them (its
/// locations are read recursively), ballast would not see them.
fn refuse_flyway_below(dir: &Path, ignore: &[String]) -> Result<(), SourceError> {
    fn below(dir: &Path) -> Option<PathBuf> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        entries.into_iter().find_map(|path| match path.is_dir() {
            true => below(&path),
            false => path
                .file_name()
                .and_then(|n| flyway::name(&n.to_string_lossy()))
                .filter(|n| n.kind != flyway::Kind::Callback)
                .map(|_| path.clone()),
        })
    }
    let subfolders = std::fs::read_dir(dir)
        .map_err(|source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.is_dir()
                && !name.starts_with('.')
                && !ignore.iter().any(|pattern| wildcard(pattern, &name))
        });
    for sub in subfolders {
        if let Some(file) = below(&sub) {
            return Err(flyway::FlywayError::Subfolder {
                path: sub,
                example: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            }
            .into());
        }
    }
    Ok(())
}

/// A Flyway file, read: a migration (versioned or repeatable), or an undo file (the
/// down of its version).
enum Flyway {
    Up(Migration),
    /// Its version, its text, whether it runs in a transaction.
    Undo(Version, String, bool),
}

fn flyway_migration(path: &Path, file_name: &str, text: String) -> Result<Flyway, SourceError> {
    let name = flyway::name(file_name).ok_or_else(|| bad_name(path))?;
    let version = name.version(path)?;
    flyway::refuse_placeholders(path, &text)?;
    let transactional = flyway_transactional(path, &text)?;
    if name.kind == flyway::Kind::Undo {
        return Ok(Flyway::Undo(version, text, transactional));
    }
    let mut m = migration(
        version,
        name.description,
        path.to_path_buf(),
        text,
        None,
        transactional,
    );
    m.transactional = transactional && m.transactional;
    Ok(Flyway::Up(m))
}

/// A dbmate file: its up section runs, its down section undoes it.
fn dbmate_migration(
    version: Version,
    name: String,
    path: PathBuf,
    text: &str,
) -> Result<Migration, SourceError> {
    let sections = layout::dbmate_sections(text).map_err(|error| SourceError::Sections {
        path: path.clone(),
        error,
    })?;
    let mut m = migration(version, name, path, sections.up, Some(sections.down), true);
    m.transactional = m.transactional && sections.up_transactional;
    m.down_transactional = sections.down_transactional;
    Ok(m)
}

/// `*` (any run of characters) and `?` (one character) against `name`, whole.
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // matches[i][j]: p[..i] matches n[..j].
    let mut matches = vec![vec![false; n.len() + 1]; p.len() + 1];
    matches[0][0] = true;
    for i in 1..=p.len() {
        matches[i][0] = matches[i - 1][0] && p[i - 1] == '*';
        for j in 1..=n.len() {
            matches[i][j] = match p[i - 1] {
                '*' => matches[i - 1][j] || matches[i][j - 1],
                '?' => matches[i - 1][j - 1],
                c => matches[i - 1][j - 1] && c == n[j - 1],
            };
        }
    }
    matches[p.len()][n.len()]
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
        down_transactional: transactional,
        phase: Phase::Pre,
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
    Some((Version::from_prefix(prefix)?, name.to_string()))
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
    fn a_flyway_folder_reads_versions_undos_repeatables_and_script_configurations() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V1__init.sql", "create table a (id int);\n");
        write(dir.path(), "V1_10__later.sql", "select 1;\n");
        write(
            dir.path(),
            "V1_2__idx.sql",
            "create index concurrently i on a (id);\n",
        );
        write(dir.path(), "U1_2__idx.sql", "drop index concurrently i;\n");
        write(dir.path(), "V2__plain.sql", "select 2;\n");
        write(
            dir.path(),
            "V2__plain.sql.conf",
            "executeInTransaction=false\n",
        );
        write(dir.path(), "R__views.sql", "select 3;\n");
        write(dir.path(), "README.md", "notes\n");
        let folder = read_folder(dir.path(), &[], None).unwrap();
        assert_eq!(folder.layout, Layout::Of(Tool::Flyway));
        let labels: Vec<String> = folder.migrations.iter().map(|m| m.label()).collect();
        assert_eq!(
            labels,
            ["1_init", "1.2_idx", "1.10_later", "2_plain", "R__views"]
        );
        let idx = &folder.migrations[1];
        assert!(
            !idx.transactional && !idx.down_transactional,
            "concurrent only: alone"
        );
        assert_eq!(
            idx.down_sql.as_deref(),
            Some("drop index concurrently i;\n")
        );
        assert!(
            !folder.migrations[3].transactional,
            "its script configuration says so"
        );
        assert!(folder.migrations[0].transactional);
        assert!(folder
            .ignored
            .iter()
            .any(|i| i.name == "V2__plain.sql.conf"));
    }

    #[test]
    fn a_diesel_folder_is_in_diesels_order_its_versions_as_text() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "2026-07-30-140000-0000_late",
            "20260120162913_early",
            "2026-01-01-000000-0000_first",
        ] {
            write(dir.path(), &format!("{name}/up.sql"), "select 1;\n");
        }
        let folder = read_folder(dir.path(), &[], None).unwrap();
        let names: Vec<&str> = folder.migrations.iter().map(|m| m.name.as_str()).collect();
        // As text: 202601010000000000 < 20260120162913 < 202607301400000000; as numbers
        // the 14-digit one would come first.
        assert_eq!(names, ["first", "early", "late"]);
    }

    #[test]
    fn flyway_migrations_in_a_subfolder_are_refused_not_missed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V1__init.sql", "select 1;\n");
        write(dir.path(), "release2/V2__more.sql", "select 2;\n");
        let err = read_folder(dir.path(), &[], None).unwrap_err().to_string();
        assert!(
            err.contains("release2") && err.contains("V2__more.sql"),
            "{err}"
        );
        let ignored = ["release2".to_string()];
        assert!(
            read_folder(dir.path(), &ignored, None).is_ok(),
            "listed in ignore"
        );
        // A subfolder without Flyway's files (notes, a callback) is left alone.
        std::fs::remove_dir_all(dir.path().join("release2")).unwrap();
        write(dir.path(), "docs/README.md", "notes\n");
        assert!(read_folder(dir.path(), &[], None).is_ok());
    }

    #[test]
    fn a_callbacks_name_means_nothing_outside_a_flyway_folder() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "1_init.sql", "select 1;\n");
        write(dir.path(), "afterMigrate.sql", "select 2;\n");
        let folder = read_folder(dir.path(), &[], None).unwrap();
        assert_eq!(folder.layout, Layout::Of(Tool::Sqlx));
        assert!(folder.ignored.iter().any(|i| i.name == "afterMigrate.sql"));
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

        let all = load_folder(d, &[], None).map(|f| f.migrations).unwrap();
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
        assert!(
            !load_folder(tmp.path(), &[], None)
                .map(|f| f.migrations)
                .unwrap()[0]
                .transactional
        );
    }

    #[test]
    fn transaction_control_in_a_transactional_migration_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "1_a.sql",
            "begin;\ncreate table a (id int);\ncommit;\n",
        );
        let err = load_folder(tmp.path(), &[], None)
            .map(|f| f.migrations)
            .unwrap_err()
            .to_string();
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
        load_folder(tmp.path(), &[], None)
            .map(|f| f.migrations)
            .expect("BEGIN ATOMIC bodies and no-transaction files are fine");
    }

    #[test]
    fn duplicate_versions_are_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "001_a.sql", "select 1;");
        write(tmp.path(), "1_b.sql", "select 1;");
        let err = load_folder(tmp.path(), &[], None)
            .map(|f| f.migrations)
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 1 is used twice"), "{err}");
    }

    #[test]
    fn sql_file_without_version_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "create_users.sql", "select 1;");
        let err = load_folder(tmp.path(), &[], None)
            .map(|f| f.migrations)
            .unwrap_err()
            .to_string();
        assert!(err.contains("create_users.sql"), "{err}");
    }

    #[test]
    fn what_the_layouts_tool_ignores_is_left_alone_and_named() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "1_a.sql", "select 1;");
        write(tmp.path(), "README.md", "# migrations");
        write(tmp.path(), "seed.sql", "insert into a values (1);");
        write(tmp.path(), "seeds/users.sql", "insert into a values (2);");
        let Folder {
            migrations,
            ignored,
            ..
        } = read_folder(tmp.path(), &[], None).unwrap();
        assert_eq!(migrations.len(), 1);
        let names: Vec<&str> = ignored.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["README.md", "seed.sql", "seeds"]);
        assert!(ignored[1].why.contains("sqlx"), "{:?}", ignored[1]);
    }

    #[test]
    fn a_versionless_file_is_left_alone_in_a_diesel_folder_and_by_ignore() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "2019-01-01-000000_a/up.sql", "select 1;");
        write(tmp.path(), "data_seed.sql", "insert into a values (1);");
        let Folder {
            migrations,
            ignored,
            ..
        } = read_folder(tmp.path(), &[], None).unwrap();
        assert_eq!(migrations.len(), 1);
        assert!(ignored[0].why.contains("diesel"), "{:?}", ignored);
        // In a sqlx folder it may be a mistyped migration: an error, unless ignored.
        let sqlx = tempfile::tempdir().unwrap();
        write(sqlx.path(), "1_a.sql", "select 1;");
        write(sqlx.path(), "data_seed.sql", "insert into a values (1);");
        let err = load_folder(sqlx.path(), &[], None)
            .map(|f| f.migrations)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[migrations] ignore"), "{err}");
        let ignored = load_folder(sqlx.path(), &["*seed*.sql".into()], None)
            .unwrap()
            .ignored;
        assert_eq!(ignored[0].why, "it matches [migrations] ignore");
    }

    #[test]
    fn wildcards_match_the_whole_name() {
        assert!(wildcard("*seed*.sql", "data_seed.sql"));
        assert!(wildcard("README*", "README.md"));
        assert!(wildcard("?_x.sql", "1_x.sql"));
        assert!(!wildcard("seed", "seeds"));
        assert!(!wildcard("*.sql", "x.sql.bak"));
    }

    #[test]
    fn missing_folder_names_the_key() {
        let err = load_folder(Path::new("/nonexistent/ballast"), &[], None)
            .map(|f| f.migrations)
            .unwrap_err()
            .to_string();
        assert!(err.contains("migrations.dir"), "{err}");
    }
}
