//! How a migration folder is laid out, and by which tool: decided from the files
//! (`[migrations] layout = "auto"`) or set. The layout says how files are named and
//! split; the tool it names also keeps a ledger ([`Tool::ledger_table`]).

use std::path::{Path, PathBuf};

/// A migration tool whose files (and ledger) ballast reads and writes as it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Sqlx,
    Diesel,
    Dbmate,
    /// Its files are named as sqlx's reversible ones: the ledger found settles it.
    GolangMigrate,
    Flyway,
}

impl Tool {
    pub const ALL: [Tool; 5] = [
        Tool::Sqlx,
        Tool::Diesel,
        Tool::Dbmate,
        Tool::GolangMigrate,
        Tool::Flyway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::Dbmate => "dbmate",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Flyway => "flyway",
        }
    }

    /// Whether the tool applies a pending migration older than the newest applied one
    /// (sqlx, diesel and dbmate run every pending file; golang-migrate's one version
    /// cannot say, and Flyway refuses unless its `outOfOrder` is on).
    pub fn applies_out_of_order(self) -> bool {
        match self {
            Tool::Sqlx | Tool::Diesel | Tool::Dbmate => true,
            Tool::GolangMigrate | Tool::Flyway => false,
        }
    }

    pub fn from_name(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The folder's layout, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One tool's files only.
    Of(Tool),
    /// sqlx's files and diesel's folders side by side: ballast reads it (as it always
    /// has), but neither tool could, so only ballast's own ledger goes with it.
    Mixed,
}

impl Layout {
    pub fn tool(self) -> Option<Tool> {
        match self {
            Layout::Of(tool) => Some(tool),
            Layout::Mixed => None,
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::Of(tool) => write!(f, "{tool}"),
            Layout::Mixed => f.write_str("sqlx files and diesel folders side by side"),
        }
    }
}

/// What the folder's versioned entries look like, for [`decide`].
#[derive(Debug, Default)]
pub struct Seen {
    /// `<version>_<name>/` folders (diesel).
    pub folders: Vec<PathBuf>,
    /// `<version>_<name>.sql` files with a `-- migrate:up` line (dbmate).
    pub sectioned: Vec<PathBuf>,
    /// Other `<version>_<name>[.up|.down].sql` files (sqlx).
    pub plain: Vec<PathBuf>,
    /// `V<version>__<description>.sql`, `U...`, `R__...` (Flyway).
    pub flyway: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{dir} mixes {tool} files ({how}, like {first}) and {other} ({example}): {tool} would not read the second as its own. Use one layout per folder (move the others, or list them in [migrations] ignore)")]
    Mixed {
        dir: PathBuf,
        tool: Tool,
        how: &'static str,
        first: String,
        other: &'static str,
        example: String,
    },
    #[error("{path}: [migrations] layout = \"{layout}\" does not read {what}; set the layout that wrote the folder (or \"auto\")")]
    NotOfLayout {
        path: PathBuf,
        layout: Tool,
        what: &'static str,
    },
}

/// The layout of a folder holding `seen`: the configured one (`Some`), checked against
/// the files; or decided from them. A folder with nothing versioned is sqlx's.
pub fn decide(dir: &Path, seen: &Seen, configured: Option<Tool>) -> Result<Layout, LayoutError> {
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if let Some(tool) = configured {
        let stray = match tool {
            Tool::Sqlx => seen
                .folders
                .first()
                .map(|p| (p, "a migration folder (diesel's)"))
                .or(seen
                    .sectioned
                    .first()
                    .map(|p| (p, "`-- migrate:up` sections (dbmate's)"))),
            Tool::Diesel => seen
                .plain
                .first()
                .or(seen.sectioned.first())
                .map(|p| (p, "a migration file outside a folder (sqlx's or dbmate's)")),
            Tool::Dbmate => seen
                .folders
                .first()
                .map(|p| (p, "a migration folder (diesel's)"))
                .or(seen
                    .plain
                    .first()
                    .map(|p| (p, "a file without a `-- migrate:up` line"))),
            Tool::GolangMigrate => seen
                .folders
                .first()
                .map(|p| (p, "a migration folder (diesel's)"))
                .or(seen.sectioned.first().map(|p| (p, "`-- migrate:up` sections (dbmate's)")))
                .or(seen
                    .plain
                    .iter()
                    .find(|p| !is_up_or_down(p))
                    .map(|p| (p, "a file not named <version>_<title>.up.sql or .down.sql (golang-migrate skips it)"))),
            Tool::Flyway => seen
                .folders
                .first()
                .map(|p| (p, "a migration folder (diesel's)"))
                .or(seen.sectioned.first().or(seen.plain.first()).map(|p| {
                    (p, "a file not named V<version>__<description>.sql, U... or R__... (Flyway's names)")
                })),
        };
        if tool != Tool::Flyway {
            if let Some(path) = seen.flyway.first() {
                return Err(LayoutError::NotOfLayout {
                    path: path.clone(),
                    layout: tool,
                    what: "Flyway's file names (V<version>__<description>.sql)",
                });
            }
        }
        return match stray {
            Some((path, what)) => Err(LayoutError::NotOfLayout {
                path: path.clone(),
                layout: tool,
                what,
            }),
            None => Ok(Layout::Of(tool)),
        };
    }
    let others = |plain: &'static str| {
        seen.plain
            .first()
            .map(|p| (plain, p))
            .or(seen.folders.first().map(|p| ("diesel folders", p)))
    };
    let alone = [
        (
            Tool::Flyway,
            "named V<version>__<description>.sql",
            &seen.flyway,
            others("other files").or(seen.sectioned.first().map(|p| ("dbmate files", p))),
        ),
        (
            Tool::Dbmate,
            "with `-- migrate:up`",
            &seen.sectioned,
            others("files without it"),
        ),
    ];
    for (tool, how, files, other) in alone {
        let Some(first) = files.first() else {
            continue;
        };
        if let Some((other, example)) = other {
            return Err(LayoutError::Mixed {
                dir: dir.to_path_buf(),
                tool,
                how,
                first: name(first),
                other,
                example: name(example),
            });
        }
        return Ok(Layout::Of(tool));
    }
    Ok(match (seen.folders.is_empty(), seen.plain.is_empty()) {
        (false, false) => Layout::Mixed,
        (false, true) => Layout::Of(Tool::Diesel),
        (true, _) => Layout::Of(Tool::Sqlx),
    })
}

/// `<version>_<title>.up.sql` or `.down.sql`: the only files golang-migrate reads.
pub fn is_up_or_down(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(".up.sql") || name.ends_with(".down.sql")
}

/// A dbmate migration file, split: the up section (with the lines before it blanked,
/// so line numbers still point into the file), the down section, and whether each
/// runs in a transaction (`transaction:false` on its marker line says not).
#[derive(Debug, PartialEq, Eq)]
pub struct Sections {
    pub up: String,
    pub up_transactional: bool,
    /// Empty when the migration cannot be undone (dbmate still wants the line).
    pub down: String,
    pub down_transactional: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SectionError {
    #[error("no `-- migrate:up` line: dbmate needs one to start the migration's up section")]
    NoUp,
    #[error("no `-- migrate:down` line: dbmate (2.x) refuses a migration without a down section (\"dbmate requires each migration to define a down block\"); add one, empty if the migration cannot be undone")]
    NoDown,
    #[error("line {line}: `{text}` comes before `-- migrate:up`; dbmate runs nothing outside the up and down sections, so move it into one")]
    BeforeUp { line: usize, text: String },
    #[error("line {line}: a second `-- migrate:{which}`")]
    Twice { line: usize, which: &'static str },
    #[error("line {line}: `-- migrate:down` comes before `-- migrate:up`")]
    DownFirst { line: usize },
    #[error("line {line}: `{option}`: dbmate's transaction option is transaction:true or transaction:false")]
    Option { line: usize, option: String },
}

/// Splits a dbmate file's text at its `-- migrate:up` and `-- migrate:down` lines.
pub fn dbmate_sections(text: &str) -> Result<Sections, SectionError> {
    if !has_dbmate_up(text) {
        return Err(SectionError::NoUp);
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut up: Option<(usize, bool)> = None;
    let mut down: Option<(usize, bool)> = None;
    for (i, line) in lines.iter().enumerate() {
        let Some((which, options)) = marker(line) else {
            let text = line.trim();
            if up.is_none() && !text.is_empty() && !text.starts_with("--") {
                return Err(SectionError::BeforeUp {
                    line: i + 1,
                    text: text.chars().take(60).collect(),
                });
            }
            continue;
        };
        let transactional = transaction_option(options, i + 1)?;
        let slot = match which {
            "up" => &mut up,
            _ if up.is_none() => return Err(SectionError::DownFirst { line: i + 1 }),
            _ => &mut down,
        };
        if slot.is_some() {
            return Err(SectionError::Twice {
                line: i + 1,
                which: if which == "up" { "up" } else { "down" },
            });
        }
        *slot = Some((i, transactional));
    }
    let (up_at, up_transactional) = up.ok_or(SectionError::NoUp)?;
    let (down_at, down_transactional) = down.ok_or(SectionError::NoDown)?;
    let blank = "\n".repeat(up_at + 1);
    Ok(Sections {
        up: blank + &lines[up_at + 1..down_at].concat(),
        up_transactional,
        down: lines[down_at + 1..].concat(),
        down_transactional,
    })
}

/// `-- migrate:up transaction:false` → ("up", "transaction:false").
fn marker(line: &str) -> Option<(&'static str, &str)> {
    let rest = line
        .trim_end()
        .strip_prefix("--")?
        .trim_start()
        .strip_prefix("migrate:")?;
    let (which, options) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    match which {
        "up" => Some(("up", options)),
        "down" => Some(("down", options)),
        _ => None,
    }
}

fn transaction_option(options: &str, line: usize) -> Result<bool, SectionError> {
    let mut transactional = true;
    for option in options.split_whitespace() {
        match option {
            "transaction:false" => transactional = false,
            "transaction:true" => transactional = true,
            // dbmate reads other options, and ignores what it does not know.
            other if !other.starts_with("transaction:") => {}
            other => {
                return Err(SectionError::Option {
                    line,
                    option: other.to_string(),
                })
            }
        }
    }
    Ok(transactional)
}

/// Whether `text` has a dbmate up marker (the test `auto` decides by).
pub fn has_dbmate_up(text: &str) -> bool {
    text.lines()
        .any(|l| marker(l).is_some_and(|(w, _)| w == "up"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dbmate_file_splits_into_its_sections_with_their_options() {
        let text = "-- a comment\n-- migrate:up transaction:false\ncreate index concurrently i on t (id);\n\n-- migrate:down\ndrop index i;\n";
        let s = dbmate_sections(text).unwrap();
        assert_eq!(s.up, "\n\ncreate index concurrently i on t (id);\n\n");
        assert!(!s.up_transactional);
        assert_eq!(s.down, "drop index i;\n");
        assert!(s.down_transactional);
        // Line numbers of the up section still point into the file.
        assert_eq!(s.up.lines().position(|l| l.contains("create")), Some(2));
    }

    #[test]
    fn a_dbmate_file_needs_a_down_section_as_dbmate_does_but_it_may_be_empty() {
        assert_eq!(
            dbmate_sections("-- migrate:up\ncreate table t (id int);\n"),
            Err(SectionError::NoDown)
        );
        let s =
            dbmate_sections("-- migrate:up\ncreate table t (id int);\n-- migrate:down\n").unwrap();
        assert_eq!(s.down, "");
        assert!(s.up_transactional);
    }

    #[test]
    fn what_dbmate_would_refuse_or_misread_is_refused() {
        assert_eq!(
            dbmate_sections("create table t (id int);\n"),
            Err(SectionError::NoUp)
        );
        assert!(matches!(
            dbmate_sections("create table t (id int);\n-- migrate:up\nselect 1;\n"),
            Err(SectionError::BeforeUp { line: 1, .. })
        ));
        assert!(matches!(
            dbmate_sections("-- migrate:down\ndrop table t;\n-- migrate:up\nselect 1;\n"),
            Err(SectionError::DownFirst { line: 1 })
        ));
        assert!(matches!(
            dbmate_sections("-- migrate:up\nselect 1;\n-- migrate:up\nselect 2;\n"),
            Err(SectionError::Twice { line: 3, .. })
        ));
        assert!(matches!(
            dbmate_sections("-- migrate:up transaction:maybe\nselect 1;\n-- migrate:down\n"),
            Err(SectionError::Option { line: 1, .. })
        ));
    }

    fn seen(folders: &[&str], sectioned: &[&str], plain: &[&str]) -> Seen {
        let paths = |names: &[&str]| names.iter().map(PathBuf::from).collect();
        Seen {
            folders: paths(folders),
            sectioned: paths(sectioned),
            plain: paths(plain),
            flyway: Vec::new(),
        }
    }

    #[test]
    fn auto_decides_from_the_files() {
        let dir = Path::new("m");
        let decide = |s: Seen| decide(dir, &s, None);
        assert_eq!(
            decide(seen(&[], &[], &["1_a.sql"])).unwrap(),
            Layout::Of(Tool::Sqlx)
        );
        assert_eq!(
            decide(seen(&["1_a"], &[], &[])).unwrap(),
            Layout::Of(Tool::Diesel)
        );
        assert_eq!(
            decide(seen(&[], &["1_a.sql"], &[])).unwrap(),
            Layout::Of(Tool::Dbmate)
        );
        assert_eq!(
            decide(seen(&["1_a"], &[], &["2_b.sql"])).unwrap(),
            Layout::Mixed
        );
        assert_eq!(decide(seen(&[], &[], &[])).unwrap(), Layout::Of(Tool::Sqlx));
        let mixed = decide(seen(&[], &["1_a.sql"], &["2_b.sql"])).unwrap_err();
        assert!(mixed.to_string().contains("2_b.sql"), "{mixed}");
    }

    #[test]
    fn a_set_layout_refuses_files_it_does_not_read() {
        let dir = Path::new("m");
        let err = decide(dir, &seen(&[], &[], &["1_a.sql"]), Some(Tool::Dbmate)).unwrap_err();
        assert!(err.to_string().contains("1_a.sql"), "{err}");
        let err = decide(dir, &seen(&["1_a"], &[], &[]), Some(Tool::Sqlx)).unwrap_err();
        assert!(err.to_string().contains("diesel"), "{err}");
        assert!(decide(dir, &seen(&[], &[], &["1_a.up.sql"]), Some(Tool::Sqlx)).is_ok());
    }
}
