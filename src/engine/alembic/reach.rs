//! Where Alembic's own connection goes. env.py builds it, and many projects build it
//! from the ini's `sqlalchemy.url` or their own settings rather than `DATABASE_URL`:
//! alembic would then migrate a database ballast never backed up. So before an
//! Alembic child changes anything, the probe runs env.py online the way `alembic
//! current` does (no migration, no version table created) and, on Alembic's
//! connection, looks for ballast's *witness*: a session of ballast's with a one-off
//! application name. Seen in the same database means the same server and database
//! (pid and name together are unique to this moment); anything else is a refusal
//! that names both databases. The same probe says where env.py keeps the version
//! table, which is then read there and never assumed.

use serde::Deserialize;
use sqlx::postgres::PgConnection;

use crate::config::{AlembicSettings, DatabaseSettings};
use crate::db::DbError;

/// What the probe saw on Alembic's connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Reached {
    pub database: String,
    pub user: String,
    /// `127.0.0.1 port 5432`, or `a local socket port 5432`.
    pub server: String,
    pub application_name: String,
    /// Whether ballast's witness session is connected to this very database. When
    /// not, the probe stopped env.py there, and the version table is not known.
    pub reaches_witness: bool,
    #[serde(default)]
    pub version_table: Option<String>,
    /// As env.py configures it, or the connection's current schema (Alembic's default).
    #[serde(default)]
    pub version_table_schema: Option<String>,
    #[serde(default)]
    pub transaction_per_migration: bool,
}

/// What is known of Alembic's connection in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Not asked: `status`, `plan` and `check` never run env.py (it may write).
    NotProbed,
    Probed(Reached),
    /// env.py failed online (or gave Alembic no connection): nothing is proven.
    Failed(String),
}

impl Reach {
    /// From the probe's JSON (its `connection` or `connection_error`).
    pub fn parse(json: &str) -> Reach {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(json.trim()) else {
            return Reach::NotProbed;
        };
        if let Some(error) = value.get("connection_error").and_then(|e| e.as_str()) {
            return Reach::Failed(error.to_string());
        }
        match value.get("connection") {
            Some(facts) => serde_json::from_value(facts.clone())
                .map(Reach::Probed)
                .unwrap_or_else(|e| Reach::Failed(format!("unreadable probe output: {e}"))),
            None => Reach::NotProbed,
        }
    }

    pub fn reached(&self) -> Option<&Reached> {
        match self {
            Reach::Probed(reached) => Some(reached),
            _ => None,
        }
    }

    /// Why no Alembic child may change the database: `ours` is ballast's database as
    /// it names it (its URL, password redacted). `None` when the probe proved the same
    /// database, or was not asked.
    pub fn refusal(&self, ours: &str) -> Option<String> {
        match self {
            Reach::NotProbed => None,
            Reach::Failed(reason) => Some(format!(
                "ballast cannot prove alembic connects to the database it backs up ({ours}): running env.py online (as `alembic current` does) failed: {reason}"
            )),
            Reach::Probed(reached) if reached.reaches_witness => None,
            Reach::Probed(reached) => Some(format!(
                "alembic's env.py connects to database `{}` on {} (as user {}), not to the database ballast backs up and checks ({ours}): alembic would change a database with no backup (env.py must take its URL from DATABASE_URL, which ballast sets)",
                reached.database, reached.server, reached.user
            )),
        }
    }
}

/// The hint that goes with a refusal.
pub const HINT: &str = "make env.py take its URL from DATABASE_URL, which ballast sets to database.url (for example `url = os.environ[\"DATABASE_URL\"]` before create_engine, or `config.set_main_option(\"sqlalchemy.url\", os.environ[\"DATABASE_URL\"])`), or set database.url to the database env.py uses; nothing was changed";

/// The same, in a few words, for a refusal from inside an Alembic child.
pub const HINT_SHORT: &str =
    "env.py must take its URL from DATABASE_URL, which ballast sets to database.url";

/// A session of ballast's that Alembic's connection must see: its pid and its
/// one-off application name. Held open while the probe runs.
pub struct Witness {
    pub conn: PgConnection,
    pub pid: i32,
    pub application_name: String,
}

impl Witness {
    pub async fn open(db: &DatabaseSettings) -> Result<Witness, DbError> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        // ` (probe 1a2b3c4d)` fits the room session names keep for their role.
        let mut conn = crate::db::connect(db, &format!("probe {}", &nonce[..8])).await?;
        let (pid, application_name): (i32, String) =
            sqlx::query_as("select pg_backend_pid(), current_setting('application_name')")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| DbError::query("reading the probe session", &e))?;
        Ok(Witness {
            conn,
            pid,
            application_name,
        })
    }

    pub async fn close(self) {
        use sqlx::Connection;
        let _ = self.conn.close().await;
    }
}

/// `schema.table`, where Alembic keeps the revisions it applied. Equal when it is the
/// same table, however it was found.
#[derive(Debug, Clone, Eq)]
pub struct VersionTable {
    pub schema: String,
    pub table: String,
    /// Not configured, not found, not said by env.py: where Alembic would create it by
    /// default, a guess (the proof before the first change says).
    pub guessed: bool,
}

impl VersionTable {
    /// Where the settings say it is (`None` for the sql engine): `version_schema`, or a
    /// guess at Alembic's default, never `database.schema` (ballast's own tables').
    pub fn configured(settings: &crate::config::Settings) -> Option<VersionTable> {
        let alembic = settings.migrations.alembic.as_ref()?;
        Some(VersionTable {
            guessed: alembic.version_schema.is_none(),
            schema: settings.lint_schema().to_string(),
            table: alembic
                .version_table
                .clone()
                .unwrap_or_else(|| "alembic_version".into()),
        })
    }
}

impl PartialEq for VersionTable {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema && self.table == other.table
    }
}

impl std::fmt::Display for VersionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// Where the version table is: where env.py puts it when the probe ran, otherwise
/// [`version_table_unprobed`]. `Err` when the settings and env.py disagree.
pub async fn version_table(
    conn: &mut PgConnection,
    alembic: &AlembicSettings,
    reach: &Reach,
) -> Result<VersionTable, Located> {
    let table = alembic
        .version_table
        .clone()
        .unwrap_or_else(|| "alembic_version".into());
    let found = reach.reached().and_then(|reached| {
        Some(VersionTable {
            schema: reached.version_table_schema.clone()?,
            table: reached.version_table.clone()?,
            guessed: false,
        })
    });
    if let Some(found) = found {
        let configured_schema = alembic.version_schema.as_deref();
        let disagrees = configured_schema.is_some_and(|s| s != found.schema)
            || alembic
                .version_table
                .as_deref()
                .is_some_and(|t| t != found.table);
        if disagrees {
            let configured = VersionTable {
                schema: configured_schema.unwrap_or(&found.schema).to_string(),
                table,
                guessed: false,
            };
            return Err(Located::Disagrees { configured, found });
        }
        return Ok(found);
    }
    version_table_unprobed(conn, alembic)
        .await
        .map_err(Located::Db)
}

/// Where the version table is without asking env.py: `migrations.version_schema` /
/// `version_table` when set; otherwise the table of that name with a `version_num`
/// column (the search path's first), or, with none, the session's current schema,
/// where Alembic would create it.
pub async fn version_table_unprobed(
    conn: &mut PgConnection,
    alembic: &AlembicSettings,
) -> Result<VersionTable, DbError> {
    let table = alembic
        .version_table
        .clone()
        .unwrap_or_else(|| "alembic_version".into());
    if let Some(schema) = &alembic.version_schema {
        return Ok(VersionTable {
            schema: schema.clone(),
            table,
            guessed: false,
        });
    }
    // A table of that name with a version_num column; without a configured name, also
    // any table of Alembic's shape (version_num its only column: env.py may name it).
    let found: Vec<(String, String)> = sqlx::query_as(
        "select n.nspname::text, c.relname::text from pg_class c \
         join pg_namespace n on n.oid = c.relnamespace \
         join pg_attribute a on a.attrelid = c.oid and a.attname = 'version_num' and not a.attisdropped \
         where c.relkind in ('r', 'p') \
           and (c.relname = $1 or ($2 and (select count(*) from pg_attribute o \
                where o.attrelid = c.oid and o.attnum > 0 and not o.attisdropped) = 1)) \
         order by c.relname = $1 desc, array_position(current_schemas(false), n.nspname) nulls last, 1, 2",
    )
    .bind(&table)
    .bind(alembic.version_table.is_none())
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| DbError::query("looking for Alembic's version table", &e))?;
    if let Some((schema, table)) = found.into_iter().next() {
        return Ok(VersionTable {
            schema,
            table,
            guessed: false,
        });
    }
    let schema = sqlx::query_scalar::<_, Option<String>>("select current_schema()::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| DbError::query("reading the current schema", &e))?
        .unwrap_or_else(|| "public".into());
    Ok(VersionTable {
        schema,
        table,
        guessed: true,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum Located {
    #[error("migrations.version_schema/version_table name {configured}, but the project's env.py keeps Alembic's version table in {found}: ballast would read one table while alembic writes the other; set migrations.version_schema = \"{}\" (and version_table = \"{}\"), or remove them and ballast asks env.py", found.schema, found.table)]
    Disagrees {
        configured: VersionTable,
        found: VersionTable,
    },
    #[error(transparent)]
    Db(DbError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probed(json: &str) -> Reach {
        Reach::parse(json)
    }

    #[test]
    fn a_probe_that_saw_the_witness_proves_the_database() {
        let reach = probed(
            r#"{"heads": [], "connection": {"database": "shop", "user": "deploy", "server": "10.0.0.5 port 5432", "application_name": "x", "reaches_witness": true, "version_table": "alembic_version", "version_table_schema": "marketplace", "transaction_per_migration": false}}"#,
        );
        assert_eq!(reach.refusal("postgres://deploy@db/shop"), None);
        assert_eq!(
            reach.reached().unwrap().version_table_schema.as_deref(),
            Some("marketplace")
        );
    }

    #[test]
    fn a_probe_elsewhere_names_both_databases() {
        let reach = probed(
            r#"{"connection": {"database": "shop_other", "user": "deploy", "server": "10.0.0.9 port 5433", "application_name": "x", "reaches_witness": false, "version_table": "alembic_version", "version_table_schema": null, "transaction_per_migration": false}}"#,
        );
        let refusal = reach.refusal("postgres://deploy@db/shop").unwrap();
        assert!(
            refusal.contains("`shop_other` on 10.0.0.9 port 5433"),
            "{refusal}"
        );
        assert!(refusal.contains("postgres://deploy@db/shop"), "{refusal}");
    }

    #[test]
    fn an_env_py_that_fails_online_proves_nothing() {
        let reach = probed(r#"{"connection_error": "KeyError: 'SETTINGS'"}"#);
        let refusal = reach.refusal("postgres://db/shop").unwrap();
        assert!(refusal.contains("KeyError: 'SETTINGS'"), "{refusal}");
        assert_eq!(probed(r#"{"heads": []}"#), Reach::NotProbed);
        assert_eq!(Reach::NotProbed.refusal("x"), None);
    }
}
