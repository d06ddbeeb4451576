//! `init`: writes a commented `deploy.toml` for the project in the current folder: the
//! Alembic project or the migration folder it finds (and the folder's layout), and with
//! a database URL the ledger it finds there. Never overwrites a file.

use std::path::{Path, PathBuf};

use crate::cli::GlobalArgs;
use crate::config::{self, LoadOptions};
use crate::db::{self, ledger, tool_ledger};
use crate::exit_code;
use crate::migrations::{Layout, Tool};
use crate::report::stdout_line;

/// The folders a migration tool puts its migrations in by default, in the order looked
/// (Flyway's: `db/migration` in a Java project's resources, `sql` for its CLI).
const FOLDERS: [&str; 6] = [
    "migrations",
    "db/migrations",
    "database/migrations",
    "src/main/resources/db/migration",
    "db/migration",
    "sql",
];

/// What `init` found in the project folder and the database.
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    /// `alembic.ini`, relative to the project folder.
    pub alembic_ini: Option<String>,
    /// A virtualenv's python beside it (`.venv/bin/python`).
    pub python: Option<String>,
    /// The migration folder, its layout and how many migrations it holds.
    pub folder: Option<(String, Layout, usize)>,
    /// A tool's file in the project saying which tool writes the folder
    /// (`Cargo.toml` naming sqlx, `diesel.toml`).
    pub tool_hint: Option<(Tool, &'static str)>,
    /// The database's URL as it may be written in a file (no password), when given.
    pub url: Option<String>,
    /// The URL was given with a password: it goes in the environment, not the file.
    pub url_has_secret: bool,
    /// The ledgers found in the database, with their rows: a tool's, or ballast's
    /// (more than one: the person must say which is in use).
    pub ledgers: Vec<(String, i64)>,
    /// `database.schema` as the environment sets it, when a database was read.
    pub schema: Option<String>,
    /// Where Alembic's version table is, when the database has one.
    pub version_schema: Option<String>,
}

pub async fn run(g: &GlobalArgs, url: Option<&str>) -> i32 {
    let path = g
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("deploy.toml"));
    if path.exists() {
        return super::fail(
            g,
            &format!(
                "{} exists: init never overwrites a file (move it away to write a new one, or edit it)",
                path.display()
            ),
            exit_code::USAGE,
        );
    }
    let project = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    };
    let mut found = look(&project);
    let url = url
        .map(str::to_string)
        .or_else(|| std::env::var("DATABASE_URL").ok());
    if let Some(url) = url {
        if let Err(message) = read_database(&url, &mut found).await {
            return super::fail(g, &message, exit_code::USAGE);
        }
    }
    for line in said(&found) {
        stdout_line(&line);
    }
    if let Err(e) = std::fs::write(&path, render(&found)) {
        return super::fail(
            g,
            &format!("cannot write {}: {e}", path.display()),
            exit_code::USAGE,
        );
    }
    stdout_line(&format!(
        "wrote {}: check it, then run `ballast status`",
        path.display()
    ));
    exit_code::SUCCESS
}

/// The project's files: an Alembic project, or a migration folder and its layout.
pub fn look(project: &Path) -> Found {
    let mut found = Found::default();
    if project.join("alembic.ini").is_file() {
        found.alembic_ini = Some("alembic.ini".into());
        found.python = [".venv/bin/python", "venv/bin/python"]
            .into_iter()
            .find(|p| project.join(p).is_file())
            .map(str::to_string);
        return found;
    }
    for folder in FOLDERS {
        let dir = project.join(folder);
        if !dir.is_dir() {
            continue;
        }
        if let Ok(read) = crate::migrations::read_folder(&dir, &[], None) {
            if !read.migrations.is_empty() {
                found.folder = Some((folder.to_string(), read.layout, read.migrations.len()));
                break;
            }
        }
    }
    let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap_or_default();
    let flyway_conf = [
        "flyway.toml",
        "flyway.conf",
        "conf/flyway.toml",
        "conf/flyway.conf",
    ]
    .into_iter()
    .find(|f| project.join(f).is_file());
    found.tool_hint = if project.join("diesel.toml").is_file() {
        Some((Tool::Diesel, "diesel.toml"))
    } else if let Some(conf) = flyway_conf {
        Some((Tool::Flyway, conf))
    } else if depends_on_sqlx(&cargo) {
        Some((Tool::Sqlx, "Cargo.toml depends on sqlx"))
    } else {
        None
    };
    found
}

/// Whether a Cargo.toml names the `sqlx` crate as a dependency (`sqlx = ...`,
/// `[dependencies.sqlx]`), not merely mentions it.
fn depends_on_sqlx(cargo: &str) -> bool {
    cargo.lines().map(str::trim).any(|line| {
        let key = line.split(['=', ']']).next().unwrap_or_default().trim();
        key == "sqlx" || key.ends_with("dependencies.sqlx")
    })
}

/// What the database holds: its ledger (a tool's, or ballast's), or Alembic's version
/// table. Reads only.
async fn read_database(url: &str, found: &mut Found) -> Result<(), String> {
    let mut options = LoadOptions::from_process(None, None, Vec::new());
    options
        .environment
        .retain(|(key, _)| key != "DATABASE_URL" && key != "BALLAST_DATABASE__URL");
    options
        .environment
        .push(("DATABASE_URL".into(), url.to_string()));
    let settings = config::load(&options).map_err(|e| e.to_string())?;
    let redacted = settings.database.display_url();
    found.url_has_secret = redacted != url;
    found.url = Some(redacted);
    let mut conn = db::connect(&settings.database, "init")
        .await
        .map_err(|e| e.to_string())?;
    let schema = settings.database.schema.clone();
    let result = async {
        let mut ledgers = Vec::new();
        for f in tool_ledger::find(&mut conn, &schema).await? {
            let rows = tool_ledger::applied(&mut conn, &f.schema, f.tool)
                .await?
                .len() as i64;
            ledgers.push((f.tool.name().to_string(), rows));
        }
        let own = ledger::applied(&mut conn, &schema).await?.len() as i64;
        if ledgers.is_empty() && ledger::table_exists(&mut conn, &schema, ledger::TABLE).await? {
            ledgers.push(("ballast".to_string(), own));
        }
        let version_schema: Option<String> = sqlx::query_scalar(
            "select n.nspname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relname = 'alembic_version' and c.relkind = 'r' order by 1 limit 1",
        )
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| db::DbError::query("looking for alembic_version", &e))?;
        Ok::<_, db::DbError>((ledgers, version_schema))
    }
    .await;
    db::close(conn).await;
    let (ledgers, version_schema) = result.map_err(|e| e.to_string())?;
    found.ledgers = ledgers;
    found.version_schema = version_schema;
    found.schema = Some(schema);
    Ok(())
}

/// What init tells the person it found, a line each.
pub fn said(found: &Found) -> Vec<String> {
    let mut lines = Vec::new();
    match (&found.alembic_ini, &found.folder) {
        (Some(ini), _) => lines.push(format!("found an Alembic project: {ini}")),
        (None, Some((dir, layout, n))) => lines.push(format!(
            "found {n} migration(s) in {dir}/, {layout} layout"
        )),
        (None, None) => lines.push(format!(
            "found no Alembic project and no migration folder ({}): writing the sql engine's defaults",
            FOLDERS.join(", ")
        )),
    }
    if let Some((tool, why)) = found.tool_hint {
        lines.push(format!("the project uses {tool} ({why})"));
    }
    for (name, rows) in &found.ledgers {
        lines.push(format!(
            "found {name}'s ledger in the database ({rows} row(s))"
        ));
    }
    if found.ledgers.len() > 1 {
        lines.push(
            "the database holds more than one ledger: set [migrations] ledger to the one in use (ballast refuses to guess)".into(),
        );
    }
    if found.ledgers.is_empty() && found.url.is_some() {
        lines.push("found no ledger in the database".into());
    }
    if let Some(schema) = &found.version_schema {
        lines.push(format!("found Alembic's version table in schema {schema}"));
    }
    lines
}

/// The file: the keys for what was found, commented, and the rest left to the defaults.
pub fn render(found: &Found) -> String {
    let mut out = String::from(
        "# deploy.toml, written by `ballast init` from what it found; check each key.\n\
         # Every key, with its default: deploy.example.toml.\n\n[database]\n",
    );
    match (&found.url, found.url_has_secret) {
        (Some(url), false) => out.push_str(&format!("url = \"{url}\"\n")),
        (Some(url), true) => out.push_str(&format!(
            "# The URL has a password: keep it in the environment (DATABASE_URL or\n\
             # BALLAST_DATABASE__URL), never in this file. Without it:\n# url = \"{url}\"\n"
        )),
        (None, _) => out.push_str(
            "# The target; or DATABASE_URL / BALLAST_DATABASE__URL in the environment.\n\
             # url = \"postgres://app@db.internal:5432/shop\"\n",
        ),
    }
    out.push_str(&format!(
        "# Where ballast keeps its own tables (ballast_migrations, ballast_journal).\nschema = \"{}\"\n\n[migrations]\n",
        found.schema.as_deref().unwrap_or("public")
    ));
    if let Some(ini) = &found.alembic_ini {
        out.push_str(&format!("engine = \"alembic\"\nalembic_ini = \"{ini}\"\n"));
        let python = found.python.as_deref().unwrap_or("python3");
        out.push_str(&format!(
            "# The interpreter with the project's packages (alembic, its driver, its models).\npython = \"{python}\"\n"
        ));
        if let Some(schema) = &found.version_schema {
            out.push_str(&format!(
                "# Where the database keeps alembic_version.\nversion_schema = \"{schema}\"\n"
            ));
        }
    } else {
        let (dir, layout) = match &found.folder {
            Some((dir, layout, _)) => (dir.as_str(), Some(*layout)),
            None => ("migrations", None),
        };
        out.push_str(&format!("engine = \"sql\"\ndir = \"{dir}\"\n"));
        out.push_str(
            "# How the files are named and split: auto, sqlx, diesel, dbmate, golang-migrate or flyway.\n",
        );
        match layout.and_then(Layout::tool) {
            Some(tool) => out.push_str(&format!("layout = \"{tool}\"\n")),
            None => out.push_str("layout = \"auto\"\n"),
        }
        out.push_str(
            "# Where applied migrations are recorded: auto, ballast, or the tool's own table\n\
             # (sqlx, diesel, dbmate, golang-migrate, flyway), written exactly as the tool writes it.\n",
        );
        if found.ledgers.len() > 1 {
            let names: Vec<&str> = found.ledgers.iter().map(|(n, _)| n.as_str()).collect();
            out.push_str(&format!(
                "# The database holds {}: set the one in use (auto refuses to guess).\n",
                names.join(" and ")
            ));
        }
        out.push_str(&format!("ledger = \"{}\"\n", ledger_key(found)));
    }
    out.push_str(
        "\n[backup]\n# Where backups and the run journal go (or [backup.s3]).\ndir = \"backups\"\n",
    );
    out
}

/// The ledger to write down: the one found in the database, else the project's
/// tool's when the folder is laid out as that tool writes it, else `auto`.
fn ledger_key(found: &Found) -> String {
    let layout = found.folder.as_ref().map(|(_, layout, _)| *layout);
    match (found.ledgers.as_slice(), found.tool_hint) {
        ([(name, _)], _) => name.clone(),
        ([], Some((tool, _))) if layout.is_none_or(|l| l == Layout::Of(tool)) => {
            tool.name().to_string()
        }
        _ => "auto".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dbmate_folder_with_its_ledger_is_written_down_as_found() {
        let found = Found {
            folder: Some(("db/migrations".into(), Layout::Of(Tool::Dbmate), 3)),
            url: Some("postgres://app@db/shop".into()),
            ledgers: vec![("dbmate".into(), 3)],
            schema: Some("app".into()),
            ..Found::default()
        };
        let text = render(&found);
        assert!(text.contains("dir = \"db/migrations\""), "{text}");
        assert!(text.contains("layout = \"dbmate\""), "{text}");
        assert!(text.contains("ledger = \"dbmate\""), "{text}");
        assert!(
            text.contains("schema = \"app\""),
            "the schema init read: {text}"
        );
        assert!(
            text.contains("\nurl = \"postgres://app@db/shop\""),
            "{text}"
        );
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(parsed["migrations"]["engine"].as_str(), Some("sql"));
    }

    #[test]
    fn two_ledgers_are_named_and_left_for_the_person_to_choose() {
        let found = Found {
            folder: Some(("migrations".into(), Layout::Of(Tool::Sqlx), 2)),
            url: Some("postgres://app@db/shop".into()),
            ledgers: vec![("sqlx".into(), 2), ("diesel".into(), 1)],
            ..Found::default()
        };
        let text = render(&found);
        assert!(text.contains("ledger = \"auto\""), "{text}");
        assert!(text.contains("sqlx and diesel"), "{text}");
        assert!(said(&found)
            .iter()
            .any(|l| l.contains("more than one ledger")));
    }

    #[test]
    fn a_flyway_project_is_found_in_flyways_own_folders() {
        let project = tempfile::tempdir().unwrap();
        let sql = project.path().join("sql");
        std::fs::create_dir_all(&sql).unwrap();
        std::fs::write(sql.join("V1__init.sql"), "create table a (id int);\n").unwrap();
        std::fs::write(sql.join("R__views.sql"), "select 1;\n").unwrap();
        std::fs::write(project.path().join("flyway.toml"), "").unwrap();
        let found = look(project.path());
        assert_eq!(
            found.folder,
            Some(("sql".to_string(), Layout::Of(Tool::Flyway), 2))
        );
        assert_eq!(found.tool_hint, Some((Tool::Flyway, "flyway.toml")));
        let text = render(&found);
        assert!(
            text.contains("dir = \"sql\"")
                && text.contains("layout = \"flyway\"")
                && text.contains("ledger = \"flyway\""),
            "{text}"
        );
    }

    #[test]
    fn a_url_with_a_password_stays_out_of_the_file() {
        let found = Found {
            url: Some("postgres://app:***@db/shop".into()),
            url_has_secret: true,
            ..Found::default()
        };
        let text = render(&found);
        assert!(!text.contains("\nurl ="), "{text}");
        assert!(text.contains("keep it in the environment"), "{text}");
    }

    #[test]
    fn a_sqlx_project_gets_sqlxs_ledger_for_its_new_databases() {
        let found = Found {
            folder: Some(("migrations".into(), Layout::Of(Tool::Sqlx), 2)),
            tool_hint: Some((Tool::Sqlx, "Cargo.toml depends on sqlx")),
            ..Found::default()
        };
        assert!(render(&found).contains("ledger = \"sqlx\""));
        let diesel_folder = Found {
            folder: Some(("migrations".into(), Layout::Of(Tool::Diesel), 2)),
            ..found
        };
        assert!(
            render(&diesel_folder).contains("ledger = \"auto\""),
            "sqlx in Cargo.toml says nothing of a diesel folder's ledger"
        );
        assert!(depends_on_sqlx(
            "[dependencies]\nsqlx = { version = \"0.8\" }\n"
        ));
        assert!(depends_on_sqlx("[dependencies.sqlx]\nversion = \"0.8\"\n"));
        assert!(!depends_on_sqlx(
            "[dependencies]\nsea-orm = { features = [\"sqlx-postgres\"] }\n"
        ));
        let alembic = Found {
            alembic_ini: Some("alembic.ini".into()),
            version_schema: Some("marketplace".into()),
            ..Found::default()
        };
        let text = render(&alembic);
        assert!(
            text.contains("engine = \"alembic\"")
                && text.contains("version_schema = \"marketplace\""),
            "{text}"
        );
        toml::from_str::<toml::Value>(&text).unwrap();
    }
}
