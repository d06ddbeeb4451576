//! Which ledger the sql engine keeps for a target: ballast's own `ballast_migrations`,
//! or the team's tool's table written exactly as the tool writes it
//! ([`crate::db::tool_ledger`]). With a tool's ledger, ballast's own table stays beside
//! it as ballast's record (which run applied what, for resume and the journal); the
//! tool's ledger is the truth of what is applied.

use sqlx::postgres::PgConnection;

use crate::config::{LedgerChoice, Settings};
use crate::db::ledger::{self, AppliedRow, NewRow};
use crate::db::{tool_ledger, DbError};
use crate::migrations::{Folder, Layout, Migration, Tool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ledger {
    Ballast,
    /// The tool's table, in `schema`: where it was found, else where the tool itself
    /// would create it with this connection (`current_schema()`, the first schema of
    /// the search path), which is not always ballast's `database.schema`.
    Tool {
        tool: Tool,
        schema: String,
    },
}

/// Why the ledger could not be settled: the run stops before reading anything more.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the database holds two migration ledgers, {first} and {second}: ballast cannot tell which one is true. Drop the stale one, or set [migrations] ledger to the one in use")]
    Two { first: String, second: String },
    #[error("[migrations] ledger = \"{tool}\", but {table} is {other}'s ledger (a table of the same name, kept the way {other} keeps it): writing it as {tool} would break it for {other}. Set ledger = \"{other}\" if {other} migrated this database")]
    Other {
        tool: Tool,
        table: String,
        other: Tool,
    },
    #[error("the ledger is {ledger}, but the migration folder is laid out {layout}: {tool} would not read these files as they are. Set [migrations] layout = \"{tool}\" (and fix the files it names), or [migrations] ledger to the tool that wrote the folder")]
    Layout {
        ledger: String,
        layout: Layout,
        tool: Tool,
    },
    #[error("{label}: sqlx keeps versions as 64-bit integers, and {version} is not one; rename the file with a version sqlx can keep")]
    SqlxVersion { label: String, version: String },
    #[error("{problem}, so ballast cannot tell what is applied: nothing was changed. {grant}")]
    CannotRead { problem: String, grant: String },
    #[error("the ledger is {ledger} ({why}), but that table is {state} while ballast's own ledger {own} records {count} applied migration(s): reading it, ballast would run them all again. Nothing was changed. If {tool} keeps this database's history, copy those rows into its ledger first; if ballast's ledger is the true one, set [migrations] ledger = \"ballast\"")]
    Empty {
        ledger: String,
        why: &'static str,
        state: &'static str,
        own: String,
        count: usize,
        tool: Tool,
    },
}

impl LedgerError {
    /// The folder and the settings disagree (exit 2); the rest is about the database
    /// (a refusal, exit 3).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            LedgerError::Layout { .. }
                | LedgerError::SqlxVersion { .. }
                | LedgerError::Other { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The ledger settled for a target, and how it was settled (for `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub ledger: Ledger,
    pub why: &'static str,
}

impl Ledger {
    /// Settles the ledger for the folder's `layout`, from the settings and what the
    /// database holds (read only). `auto`: the tool's ledger found in the database;
    /// none found, ballast's when it records anything; on a database with neither,
    /// the layout's tool's when only that tool writes such a folder (diesel's folders,
    /// dbmate's sections), else ballast's: `<version>_<name>.sql` files are what every
    /// hand-kept folder looks like, and sqlx's ledger is then `ledger = "sqlx"` away.
    pub async fn settle(
        settings: &Settings,
        folder: &Folder,
        conn: &mut PgConnection,
    ) -> Result<Settled, ResolveError> {
        let layout = folder.layout;
        let schema = &settings.database.schema;
        let found = tool_ledger::find(&mut *conn, schema).await?;
        let settled = match settings.migrations.ledger {
            LedgerChoice::Ballast => Settled {
                ledger: Ledger::Ballast,
                why: "set in [migrations] ledger",
            },
            LedgerChoice::Tool(tool) => {
                let settled = Settled {
                    ledger: chosen(tool, schema, &found, conn).await?,
                    why: "set in [migrations] ledger",
                };
                refuse_empty(&settled, schema, conn).await?;
                settled
            }
            LedgerChoice::Auto => auto(schema, layout, &found, conn).await?,
        };
        if let Ledger::Tool { tool, schema: at } = &settled.ledger {
            let table = tool_ledger::table(*tool);
            if let Some((problem, grant)) =
                crate::db::privileges::missing_on_table(&mut *conn, at, table, "SELECT").await?
            {
                return Err(LedgerError::CannotRead { problem, grant }.into());
            }
            if *tool == Tool::Sqlx {
                let too_big = folder
                    .migrations
                    .iter()
                    .find(|m| m.version.as_str().parse::<i64>().is_err());
                if let Some(m) = too_big {
                    return Err(LedgerError::SqlxVersion {
                        label: m.label(),
                        version: m.version.to_string(),
                    }
                    .into());
                }
            }
            if !fits(*tool, folder) {
                return Err(LedgerError::Layout {
                    ledger: settled.ledger.describe(schema),
                    layout,
                    tool: *tool,
                }
                .into());
            }
        }
        Ok(settled)
    }

    /// The tool whose ledger this is (`None`: ballast's own).
    pub fn tool(&self) -> Option<Tool> {
        match self {
            Ledger::Ballast => None,
            Ledger::Tool { tool, .. } => Some(*tool),
        }
    }

    /// `sqlx's ledger public._sqlx_migrations`, `ballast's ledger public.ballast_migrations`
    /// (`own`: ballast's schema).
    pub fn describe(&self, own: &str) -> String {
        match self {
            Ledger::Ballast => format!("ballast's ledger {}", self.qualified(own)),
            Ledger::Tool { tool, .. } => format!("{tool}'s ledger {}", self.qualified(own)),
        }
    }

    /// The table that says what is applied, with its schema (`own`: ballast's).
    pub fn qualified(&self, own: &str) -> String {
        match self {
            Ledger::Ballast => format!("{own}.{}", ledger::TABLE),
            Ledger::Tool { tool, schema } => format!("{schema}.{}", tool_ledger::table(*tool)),
        }
    }

    /// What is applied, as the ledger says: a row per migration (golang-migrate's one
    /// row, its current version, stands for every file up to it).
    pub async fn applied(
        &self,
        conn: &mut PgConnection,
        own: &str,
        source: &[Migration],
    ) -> Result<Vec<AppliedRow>, DbError> {
        match self {
            Ledger::Ballast => ledger::applied(conn, own).await,
            Ledger::Tool { tool, schema } => {
                if !ledger::table_exists(&mut *conn, schema, tool_ledger::table(*tool)).await? {
                    return Ok(Vec::new());
                }
                if *tool == Tool::Flyway {
                    let history = tool_ledger::flyway_history(conn, schema).await?;
                    return Ok(below_baseline(history, source));
                }
                let rows = tool_ledger::applied(conn, schema, *tool).await?;
                Ok(match tool {
                    Tool::GolangMigrate => up_to_current(rows, source),
                    _ => rows,
                })
            }
        }
    }

    /// A migration that runs outside a transaction is about to start (`down`: its
    /// down): golang-migrate marks the version it goes to dirty first (committed),
    /// so a run stopped half-way says so to the tool as well. Returns the row it
    /// replaced, for [`Ledger::not_started`].
    pub async fn starting_alone(
        &self,
        conn: &mut PgConnection,
        version: &str,
    ) -> Result<Option<AppliedRow>, DbError> {
        let Ledger::Tool {
            tool: Tool::GolangMigrate,
            schema,
        } = self
        else {
            return Ok(None);
        };
        let prior = tool_ledger::applied(&mut *conn, schema, Tool::GolangMigrate)
            .await?
            .pop();
        tool_ledger::set_version(conn, schema, Some(version), true).await?;
        Ok(prior)
    }

    /// The migration [`Ledger::starting_alone`] marked ran no statement: the mark goes,
    /// `prior` is back.
    pub async fn not_started(
        &self,
        conn: &mut PgConnection,
        prior: Option<AppliedRow>,
    ) -> Result<(), DbError> {
        let Ledger::Tool {
            tool: Tool::GolangMigrate,
            schema,
        } = self
        else {
            return Ok(());
        };
        let version = prior.as_ref().map(|row| row.version.as_str());
        let dirty = prior.as_ref().is_some_and(|row| row.failed);
        tool_ledger::set_version(conn, schema, version, dirty).await
    }

    /// What to do by hand when a migration (`version`, as this ledger stores it) ran
    /// but its bookkeeping failed: `up`, it ran up (its row belongs in the ledger);
    /// else its down ran and `previous` is the version the ledger should say.
    pub fn by_hand(
        &self,
        own: &str,
        dir: &std::path::Path,
        version: &str,
        up: bool,
        previous: Option<&str>,
    ) -> String {
        let table = self.qualified(own);
        match (self.tool(), up) {
            (Some(Tool::GolangMigrate), _) => format!(
                "set golang-migrate's version with `migrate -path {} -database \"$DATABASE_URL\" force {}`",
                dir.display(),
                match up {
                    true => version,
                    false => previous.unwrap_or(NO_VERSION),
                }
            ),
            (_, true) => format!("insert its row into {table} by hand"),
            (_, false) => {
                format!("delete its row by hand (delete from {table} where version = '{version}')")
            }
        }
    }

    /// The checksum this ledger keeps of `m` (`None`: it keeps none, so no drift can
    /// be seen in it).
    pub fn checksum_of(&self, m: &Migration) -> Option<String> {
        match self {
            Ledger::Ballast => Some(m.checksum.clone()),
            Ledger::Tool { tool, .. } => tool_ledger::checksum(*tool, m),
        }
    }

    /// Creates the tool's table as the tool does, when missing (ballast's own tables
    /// are created by the upgrade stage).
    pub async fn ensure(&self, conn: &mut PgConnection) -> Result<(), DbError> {
        match self {
            Ledger::Ballast => Ok(()),
            Ledger::Tool { tool, schema } => tool_ledger::ensure(conn, schema, *tool).await,
        }
    }

    /// Records `m` as applied: in the tool's ledger as the tool does, and in ballast's
    /// own record in `own` (the run that applied it).
    pub async fn record(
        &self,
        conn: &mut PgConnection,
        own: &str,
        m: &Migration,
        row: NewRow<'_>,
    ) -> Result<(), DbError> {
        if let Ledger::Tool { tool, schema } = self {
            tool_ledger::record(&mut *conn, schema, *tool, m, row.duration_ms).await?;
        }
        let beside = match self {
            Ledger::Ballast => None,
            Ledger::Tool { .. } => Some(self.qualified(own)),
        };
        ledger::record(conn, own, row, beside.as_deref()).await
    }

    /// Deletes a migration's row, as a downgrade does: `stored`, the version as this
    /// ledger stores it; `own_version`, as ballast's record (in `own`) does;
    /// `previous`, the applied version before it (golang-migrate's row becomes that
    /// one). False when the ledger had none.
    pub async fn remove(
        &self,
        conn: &mut PgConnection,
        own: &str,
        own_version: &str,
        stored: &str,
        previous: Option<&str>,
    ) -> Result<bool, DbError> {
        let removed = ledger::remove(&mut *conn, own, own_version).await?;
        match self {
            Ledger::Ballast => Ok(removed),
            Ledger::Tool {
                tool: Tool::GolangMigrate,
                schema,
            } => {
                // Its row is the version undone, or the dirty mark a down outside a
                // transaction set on the version it goes back to.
                let mark = previous.unwrap_or(NO_VERSION);
                let rows = tool_ledger::applied(&mut *conn, schema, Tool::GolangMigrate).await?;
                if !rows
                    .iter()
                    .any(|row| row.version == stored || (row.failed && row.version == mark))
                {
                    return Ok(false);
                }
                tool_ledger::set_version(conn, schema, previous, false).await?;
                Ok(true)
            }
            Ledger::Tool { tool, schema } => tool_ledger::remove(conn, schema, *tool, stored).await,
        }
    }
}

/// The ledger `[migrations] ledger = "<tool>"` names: the tool's table where it was
/// found, else where the tool would create it. A table of that name kept by the other
/// tool that uses it (dbmate's and golang-migrate's `schema_migrations`) is a refusal:
/// writing it as the named tool would break it for the one that made it.
async fn chosen(
    tool: Tool,
    schema: &str,
    found: &[tool_ledger::Found],
    conn: &mut PgConnection,
) -> Result<Ledger, ResolveError> {
    let table = tool_ledger::table(tool);
    let same_table: Vec<_> = found
        .iter()
        .filter(|f| tool_ledger::table(f.tool) == table)
        .collect();
    if let Some(other) = same_table.iter().find(|f| f.tool != tool) {
        return Err(LedgerError::Other {
            tool,
            table: format!("{}.{table}", other.schema),
            other: other.tool,
        }
        .into());
    }
    match same_table.as_slice() {
        [] => Ok(Ledger::Tool {
            tool,
            schema: tool_ledger::home(conn, schema).await?,
        }),
        [one] => Ok(Ledger::Tool {
            tool,
            schema: one.schema.clone(),
        }),
        [first, second, ..] => Err(two(schema, first, second)),
    }
}

fn two(schema: &str, first: &tool_ledger::Found, second: &tool_ledger::Found) -> ResolveError {
    let describe = |f: &tool_ledger::Found| {
        Ledger::Tool {
            tool: f.tool,
            schema: f.schema.clone(),
        }
        .describe(schema)
    };
    LedgerError::Two {
        first: describe(first),
        second: describe(second),
    }
    .into()
}

/// A tool's ledger that records nothing while ballast's own records applied
/// migrations: reading it would run them all again. Refused, whether it was named
/// in the settings or found (an empty table of the same name, kept by something
/// else: Rails and Ecto keep a `schema_migrations` too).
async fn refuse_empty(
    settled: &Settled,
    own: &str,
    conn: &mut PgConnection,
) -> Result<(), ResolveError> {
    let Ledger::Tool { tool, schema } = &settled.ledger else {
        return Ok(());
    };
    let rows = match ledger::table_exists(&mut *conn, schema, tool_ledger::table(*tool)).await? {
        true => Some(count_rows(conn, schema, *tool).await?),
        false => None,
    };
    if rows.is_some_and(|n| n > 0) {
        return Ok(());
    }
    // Rows ballast wrote beside a tool's ledger are its record, not a ledger: when
    // the tool rolled everything back, its empty table is the truth.
    let recorded = ledger::own_rows(&mut *conn, own).await?;
    if recorded == 0 {
        return Ok(());
    }
    Err(LedgerError::Empty {
        ledger: settled.ledger.describe(own),
        why: settled.why,
        state: match rows {
            Some(_) => "empty",
            None => "missing",
        },
        own: Ledger::Ballast.qualified(own),
        count: recorded as usize,
        tool: *tool,
    }
    .into())
}

/// golang-migrate's "no version", as `force` takes it and its dirty mark stores it.
const NO_VERSION: &str = "-1";

async fn auto(
    schema: &str,
    layout: Layout,
    found: &[tool_ledger::Found],
    conn: &mut PgConnection,
) -> Result<Settled, ResolveError> {
    match found {
        [one] => {
            let settled = Settled {
                ledger: Ledger::Tool {
                    tool: one.tool,
                    schema: one.schema.clone(),
                },
                why: "found in the database",
            };
            refuse_empty(&settled, schema, conn).await?;
            return Ok(settled);
        }
        [first, second, ..] => return Err(two(schema, first, second)),
        [] => {}
    }
    // ballast's table with no row of its own is no ledger: a first deploy whose batch
    // rolled back leaves it (it is created before the batch), but not the tool's
    // table; and rows written beside a tool's ledger that is gone (its schema wiped)
    // say nothing of what this database holds.
    if ledger::own_rows(&mut *conn, schema).await? > 0 {
        return Ok(Settled {
            ledger: Ledger::Ballast,
            why: "found in the database",
        });
    }
    Ok(match layout {
        // golang-migrate's layout is never decided from files alone: it was set.
        Layout::Of(tool @ (Tool::Diesel | Tool::Dbmate | Tool::GolangMigrate | Tool::Flyway)) => {
            Settled {
                ledger: Ledger::Tool {
                    tool,
                    schema: tool_ledger::home(conn, schema).await?,
                },
                why: "no ledger in the database yet: the one the folder's tool keeps",
            }
        }
        Layout::Of(Tool::Sqlx) | Layout::Mixed => Settled {
            ledger: Ledger::Ballast,
            why: "no ledger in the database yet (set [migrations] ledger = \"sqlx\" for sqlx's)",
        },
    })
}

/// How many rows `tool`'s ledger in `schema` holds (its table exists); 1 when the
/// role may not read it (the caller then refuses with the GRANT).
async fn count_rows(conn: &mut PgConnection, schema: &str, tool: Tool) -> Result<i64, DbError> {
    let table = tool_ledger::table(tool);
    if crate::db::privileges::missing_on_table(&mut *conn, schema, table, "SELECT")
        .await?
        .is_some()
    {
        return Ok(1);
    }
    let sql = format!(
        "select count(*) from {}.{table}",
        crate::db::quote_ident(schema)
    );
    sqlx::query_scalar(&sql)
        .fetch_one(conn)
        .await
        .map_err(|e| DbError::query(format!("counting the rows of {schema}.{table}"), &e))
}

/// Whether `tool` reads `folder` as it is: its own layout; golang-migrate, sqlx's
/// reversible naming too (the two share it), as long as every file has `.up.sql`.
fn fits(tool: Tool, folder: &Folder) -> bool {
    match (tool, folder.layout) {
        (Tool::GolangMigrate, Layout::Of(Tool::Sqlx)) => folder
            .migrations
            .iter()
            .all(|m| crate::migrations::layout::is_up_or_down(&m.up_path)),
        (tool, layout) => layout == Layout::Of(tool),
    }
}

/// golang-migrate's one row as a row per file up to it: those below it applied; it
/// too unless dirty (then it stays as a failed row: the migration stopped half-way);
/// a version without a file stays as its row (an unknown version).
fn up_to_current(rows: Vec<AppliedRow>, source: &[Migration]) -> Vec<AppliedRow> {
    let Some(current) = rows.into_iter().next() else {
        return Vec::new();
    };
    let Some(at) = crate::migrations::Version::parse(&current.version) else {
        return vec![current];
    };
    let mut applied: Vec<AppliedRow> = source
        .iter()
        .filter(|m| m.version < at || (m.version == at && !current.failed))
        .map(|m| AppliedRow {
            version: m.version.to_string(),
            name: m.name.clone(),
            ..current.clone()
        })
        .map(|row| AppliedRow {
            failed: false,
            ..row
        })
        .collect();
    if current.failed || !source.iter().any(|m| m.version == at) {
        applied.push(current);
    }
    applied
}

/// Flyway's history with its baseline read as Flyway reads it: every versioned file up
/// to the `BASELINE` row's version counts as applied (Flyway shows them "below
/// baseline" and never runs them), with the file's own checksum (Flyway checks none).
fn below_baseline(history: tool_ledger::FlywayHistory, source: &[Migration]) -> Vec<AppliedRow> {
    let mut rows = history.rows;
    let Some(baseline) = history
        .baseline
        .as_deref()
        .and_then(crate::migrations::Version::parse)
    else {
        return rows;
    };
    for m in source
        .iter()
        .filter(|m| !m.version.is_repeatable() && m.version <= baseline)
    {
        let recorded = rows.iter().any(|row| {
            crate::migrations::Version::parse(&row.version).as_ref() == Some(&m.version)
        });
        if !recorded {
            rows.push(AppliedRow {
                version: m.version.to_string(),
                name: m.name.clone(),
                checksum: tool_ledger::checksum(Tool::Flyway, m).unwrap_or_default(),
                applied_at: None,
                run_id: String::new(),
                duration_ms: 0,
                failed: false,
            });
        }
    }
    rows
}

/// The tables of a database that keeps no ledger at all (neither `ledger`'s table nor
/// ballast's exists in `schema`), in `schema` and in the search path's schemas (where
/// unqualified migrations create theirs): tables something other than these
/// migrations, as far as anything records, put there. An extension's own tables
/// (PostGIS's `spatial_ref_sys`) do not count. Those of `schema` by name, the others
/// qualified. Empty once a ledger exists.
pub async fn untracked_tables(
    conn: &mut PgConnection,
    schema: &str,
    ledger: &Ledger,
) -> Result<Vec<String>, DbError> {
    let tool_table = match ledger {
        Ledger::Ballast => None,
        Ledger::Tool { tool, schema } => Some((schema.as_str(), tool_ledger::table(*tool))),
    };
    for (schema, table) in tool_table.into_iter().chain([(schema, ledger::TABLE)]) {
        if ledger::table_exists(&mut *conn, schema, table).await? {
            return Ok(Vec::new());
        }
    }
    sqlx::query_scalar(
        "select case when n.nspname = $1 then c.relname::text \
                     else n.nspname || '.' || c.relname end \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where (n.nspname = $1 or n.nspname = any (current_schemas(false))) \
         and c.relkind in ('r', 'p') and not c.relispartition \
         and not (n.nspname = $1 and c.relname = $2) \
         and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass \
                         and d.objid = c.oid and d.deptype = 'e') \
         order by n.nspname <> $1, 1",
    )
    .bind(schema)
    .bind(crate::db::journal_table::TABLE)
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query(format!("listing the tables beside schema {schema}"), &e))
}
