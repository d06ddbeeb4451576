//! The ledgers other migration tools keep, read and written exactly as each tool does,
//! so that the tool and ballast agree at every moment: sqlx's `_sqlx_migrations`,
//! diesel's `__diesel_schema_migrations`, dbmate's `schema_migrations` (a row per
//! migration) and golang-migrate's table of the same name, told apart by its `dirty`
//! column, which holds one row: the current version, and whether a migration to it
//! stopped half-way; and Flyway's `flyway_schema_history`, a row per run of a
//! migration, numbered by `installed_rank` (a repeatable migration gets a new row each
//! time it runs again), with Flyway's CRC32 checksum.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha384};
use sqlx::postgres::PgConnection;
use sqlx::Row;

use super::error::DbError;
use super::ledger::{table_exists, AppliedRow};
use super::quote_ident;
use crate::migrations::{flyway, Migration, Tool};

/// The table `tool` keeps its ledger in.
pub fn table(tool: Tool) -> &'static str {
    match tool {
        Tool::Sqlx => "_sqlx_migrations",
        Tool::Diesel => "__diesel_schema_migrations",
        Tool::Dbmate | Tool::GolangMigrate => "schema_migrations",
        Tool::Flyway => "flyway_schema_history",
    }
}

/// A tool's ledger found in the database: which tool, and the schema its table is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub tool: Tool,
    pub schema: String,
}

/// The tools' ledgers the database holds in `schema` (ballast's `database.schema`)
/// and in the session's `current_schema()`, where the tools themselves keep theirs
/// (they name their table without a schema); `schema`'s first.
pub async fn find(conn: &mut PgConnection, schema: &str) -> Result<Vec<Found>, DbError> {
    let mut schemas = vec![schema.to_string()];
    let current = home(&mut *conn, schema).await?;
    if current != schema {
        schemas.push(current);
    }
    let mut found = Vec::new();
    for schema in schemas {
        for tool in [Tool::Sqlx, Tool::Diesel, Tool::Dbmate, Tool::Flyway] {
            if !table_exists(&mut *conn, &schema, table(tool)).await? {
                continue;
            }
            let tool = match tool == Tool::Dbmate
                && has_column(conn, &schema, table(tool), "dirty").await?
            {
                true => Tool::GolangMigrate,
                false => tool,
            };
            found.push(Found {
                tool,
                schema: schema.clone(),
            });
        }
    }
    Ok(found)
}

/// Where a tool connecting as this session creates its ledger: `current_schema()`,
/// the first schema of the search path that exists (`schema` when none does).
pub async fn home(conn: &mut PgConnection, schema: &str) -> Result<String, DbError> {
    let current: Option<String> = sqlx::query_scalar("select current_schema()::text")
        .fetch_one(conn)
        .await
        .map_err(|e| DbError::query("reading the session's current schema", &e))?;
    Ok(current.unwrap_or_else(|| schema.to_string()))
}

async fn has_column(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    column: &str,
) -> Result<bool, DbError> {
    sqlx::query_scalar(
        "select exists (select 1 from pg_attribute a join pg_class c on c.oid = a.attrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relname = $2 and a.attname = $3 and not a.attisdropped)",
    )
    .bind(schema)
    .bind(table)
    .bind(column)
    .fetch_one(conn)
    .await
    .map_err(|e| DbError::query(format!("reading the columns of {schema}.{table}"), &e))
}

/// The advisory locks `tool` takes while it migrates the database `database` (its
/// ledger in `schema`), as `pg_advisory_lock(bigint)` keys, from each tool's code:
/// sqlx's `0x3d32ad9e * crc32(database)`; golang-migrate's salted CRC32 of
/// `schema\0table\0database` (v4.15 on) and of the database alone (before);
/// Flyway's `77431708279161 + hashCode("schema"."flyway_schema_history")`. dbmate and
/// diesel take none.
pub fn lock_keys(tool: Tool, database: &str, schema: &str) -> Vec<i64> {
    let crc = |text: &str| crc32fast::hash(text.as_bytes());
    match tool {
        Tool::Sqlx => vec![0x3d32_ad9e_i64 * crc(database) as i64],
        Tool::GolangMigrate => {
            const SALT: u32 = 1_486_364_155;
            let joined = format!("{schema}\0{}\0{database}", table(tool));
            vec![
                crc(&joined).wrapping_mul(SALT) as i64,
                crc(database).wrapping_mul(SALT) as i64,
            ]
        }
        Tool::Flyway => {
            // Java's String.hashCode over UTF-16 code units.
            let qualified = format!("\"{schema}\".\"{}\"", table(tool));
            let hash = qualified
                .encode_utf16()
                .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
            vec![77_431_708_279_161 + hash as i64]
        }
        Tool::Diesel | Tool::Dbmate => Vec::new(),
    }
}

/// The checksum `tool` keeps of a migration, as it computes it (`None`: it keeps none):
/// sqlx's is the SHA-384 of the up file's bytes, in hex here; Flyway's its CRC32 of
/// the file's lines, the integer written out.
pub fn checksum(tool: Tool, m: &Migration) -> Option<String> {
    match tool {
        Tool::Sqlx => Some(hex::encode(Sha384::digest(m.up_sql.as_bytes()))),
        Tool::Flyway => Some(flyway::checksum(&m.up_sql).to_string()),
        Tool::Diesel | Tool::Dbmate | Tool::GolangMigrate => None,
    }
}

/// The version as `tool` writes it: the file's own prefix (dbmate keeps leading zeros;
/// diesel drops the dashes of `2019-01-01-000000`; sqlx reads an integer; Flyway
/// writes `1_1` as `1.1`, and a repeatable migration has none: empty here).
pub fn written_version(tool: Tool, m: &Migration) -> String {
    let entry = match tool {
        // diesel's up.sql sits in the migration's folder.
        Tool::Diesel => m.up_path.parent().and_then(|p| p.file_name()),
        Tool::Sqlx | Tool::Dbmate | Tool::GolangMigrate | Tool::Flyway => m.up_path.file_name(),
    };
    let name = entry.map(|n| n.to_string_lossy()).unwrap_or_default();
    let prefix = name.split('_').next().unwrap_or_default();
    match tool {
        Tool::Diesel => prefix.replace('-', ""),
        Tool::Sqlx | Tool::GolangMigrate => m.version.to_string(),
        Tool::Dbmate => prefix.to_string(),
        Tool::Flyway => flyway::name(&name)
            .map(|n| n.written_version())
            .unwrap_or_default(),
    }
}

/// sqlx's description: the file's name after the version, `_` read as spaces.
fn sqlx_description(m: &Migration) -> String {
    m.name.replace('_', " ")
}

/// Creates `tool`'s table as the tool does, when missing.
pub async fn ensure(conn: &mut PgConnection, schema: &str, tool: Tool) -> Result<(), DbError> {
    let t = format!("{}.{}", quote_ident(schema), table(tool));
    let sql = match tool {
        Tool::Sqlx => format!(
            "create table if not exists {t} (
                 version bigint primary key,
                 description text not null,
                 installed_on timestamptz not null default now(),
                 success boolean not null,
                 checksum bytea not null,
                 execution_time bigint not null
             )"
        ),
        Tool::Diesel => format!(
            "create table if not exists {t} (
                 version varchar(50) primary key not null,
                 run_on timestamp not null default current_timestamp
             )"
        ),
        Tool::Dbmate => format!("create table if not exists {t} (version varchar primary key)"),
        Tool::GolangMigrate => format!(
            "create table if not exists {t} (version bigint not null primary key, dirty boolean not null)"
        ),
        // As Flyway's PostgreSQL support creates it, with its primary key and index.
        Tool::Flyway => format!(
            "create table if not exists {t} (
                 installed_rank integer not null,
                 version varchar(50),
                 description varchar(200) not null,
                 type varchar(20) not null,
                 script varchar(1000) not null,
                 checksum integer,
                 installed_by varchar(100) not null,
                 installed_on timestamp not null default now(),
                 execution_time integer not null,
                 success boolean not null,
                 constraint flyway_schema_history_pk primary key (installed_rank)
             );
             create index if not exists flyway_schema_history_s_idx on {t} (success)"
        ),
    };
    // `if not exists` says NOTICE when it exists: not worth a line in the log.
    sqlx::raw_sql(&format!("set local client_min_messages = warning; {sql}"))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| {
            DbError::query(
                format!("creating {}'s ledger {schema}.{}", tool, table(tool)),
                &e,
            )
        })
}

/// The rows of `tool`'s ledger. sqlx's failed rows (`success = false`) are returned
/// too, with `failed` set: sqlx calls such a database dirty.
pub async fn applied(
    conn: &mut PgConnection,
    schema: &str,
    tool: Tool,
) -> Result<Vec<AppliedRow>, DbError> {
    let t = format!("{}.{}", quote_ident(schema), table(tool));
    let sql = match tool {
        Tool::Sqlx => format!(
            "select version::text, description, encode(checksum, 'hex'), installed_on, \
             execution_time / 1000000, not success from {t}"
        ),
        Tool::Diesel => format!(
            "select version::text, ''::text, ''::text, run_on at time zone 'UTC', 0::bigint, false from {t}"
        ),
        Tool::Dbmate => format!(
            "select version::text, ''::text, ''::text, null::timestamptz, 0::bigint, false from {t}"
        ),
        // Its one row: the current version, `dirty` when a migration to it stopped
        // half-way (the engine reads every file up to it as applied).
        Tool::GolangMigrate => format!(
            "select version::text, ''::text, ''::text, null::timestamptz, 0::bigint, dirty from {t}"
        ),
        Tool::Flyway => return Ok(flyway_history(conn, schema).await?.rows),
    };
    let rows = sqlx::query(&sql).fetch_all(conn).await.map_err(|e| {
        DbError::query(
            format!("reading {}'s ledger {schema}.{}", tool, table(tool)),
            &e,
        )
    })?;
    Ok(rows
        .into_iter()
        .map(|r| AppliedRow {
            version: r.get(0),
            name: r.get::<String, _>(1).replace(' ', "_"),
            checksum: r.get(2),
            applied_at: r.get::<Option<DateTime<Utc>>, _>(3),
            run_id: String::new(),
            duration_ms: r.get(4),
            failed: r.get(5),
        })
        .collect())
}

/// Records `m` as applied, as `tool` does (inside the migration's transaction when it
/// has one).
pub async fn record(
    conn: &mut PgConnection,
    schema: &str,
    tool: Tool,
    m: &Migration,
    duration_ms: i64,
) -> Result<(), DbError> {
    let t = format!("{}.{}", quote_ident(schema), table(tool));
    let version = written_version(tool, m);
    let result = match tool {
        Tool::Sqlx => {
            let number: i64 = version.parse().map_err(|_| {
                let why =
                    format!("sqlx keeps versions as 64-bit integers, and {version} is not one");
                DbError::query(
                    format!("recording {}", m.label()),
                    &sqlx::Error::Protocol(why),
                )
            })?;
            let checksum = Sha384::digest(m.up_sql.as_bytes()).to_vec();
            sqlx::query(&format!(
                "insert into {t} (version, description, success, checksum, execution_time) \
                 values ($1, $2, true, $3, $4)"
            ))
            .bind(number)
            .bind(sqlx_description(m))
            .bind(checksum)
            .bind(duration_ms.saturating_mul(1_000_000))
            .execute(conn)
            .await
        }
        Tool::Diesel | Tool::Dbmate => {
            sqlx::query(&format!("insert into {t} (version) values ($1)"))
                .bind(&version)
                .execute(conn)
                .await
        }
        Tool::GolangMigrate => return set_version(conn, schema, Some(&version), false).await,
        Tool::Flyway => {
            let file = m
                .up_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let description = flyway::name(&file)
                .map(|n| n.written_description())
                .unwrap_or_default();
            sqlx::query(&format!(
                "insert into {t} (installed_rank, version, description, type, script, checksum, \
                 installed_by, execution_time, success) \
                 select coalesce(max(installed_rank), 0) + 1, nullif($1, ''), $2, 'SQL', $3, $4, \
                 current_user, $5, true from {t}"
            ))
            .bind(&version)
            .bind(description)
            .bind(file)
            .bind(flyway::checksum(&m.up_sql))
            .bind(duration_ms.clamp(0, i32::MAX as i64) as i32)
            .execute(conn)
            .await
        }
    };
    result.map(|_| ()).map_err(|e| {
        DbError::query(
            format!(
                "recording {} in {}'s ledger {schema}.{}",
                m.label(),
                tool,
                table(tool)
            ),
            &e,
        )
    })
}

/// What Flyway's history says is applied, read as Flyway reads it: rows in
/// `installed_rank` order, the last one of a version (or of a repeatable migration's
/// script) standing; an undo row (`UNDO_SQL`) takes its version back out; the schema
/// row Flyway writes when it creates a schema is no migration, and a `DELETE` row
/// (`repair` on a migration whose file is gone) takes its version out. A `BASELINE` row's
/// version is returned apart: Flyway counts every migration up to it as applied.
#[derive(Debug, Default)]
pub struct FlywayHistory {
    pub rows: Vec<AppliedRow>,
    pub baseline: Option<String>,
}

pub async fn flyway_history(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<FlywayHistory, DbError> {
    let t = format!("{}.{}", quote_ident(schema), table(Tool::Flyway));
    let rows = sqlx::query(&format!(
        "select version, description, type, checksum::text, \
         installed_on at time zone 'UTC', execution_time::bigint, success \
         from {t} order by installed_rank"
    ))
    .fetch_all(conn)
    .await
    .map_err(|e| {
        DbError::query(
            format!("reading Flyway's history {schema}.flyway_schema_history"),
            &e,
        )
    })?;
    let mut history = FlywayHistory::default();
    let mut standing: Vec<AppliedRow> = Vec::new();
    for r in rows {
        let version: Option<String> = r.get(0);
        let description: String = r.get(1);
        let kind: String = r.get(2);
        let key = match &version {
            Some(v) => v.clone(),
            // A repeatable migration: Flyway knows it by its description.
            None => match crate::migrations::Version::repeatable(&description) {
                Some(v) => v.to_string(),
                None => continue,
            },
        };
        match kind.as_str() {
            "SCHEMA" => continue,
            "BASELINE" => {
                history.baseline = version;
                continue;
            }
            // An undo (Flyway Teams), or `repair` marking a missing migration deleted.
            k if k.starts_with("UNDO") || k == "DELETE" => {
                standing.retain(|row| row.version != key);
                continue;
            }
            _ => {}
        }
        standing.retain(|row| row.version != key);
        standing.push(AppliedRow {
            version: key,
            name: description.replace(' ', "_"),
            checksum: r.get::<Option<String>, _>(3).unwrap_or_default(),
            applied_at: r.get::<Option<DateTime<Utc>>, _>(4),
            run_id: String::new(),
            duration_ms: r.get(5),
            failed: !r.get::<bool, _>(6),
        });
    }
    history.rows = standing;
    Ok(history)
}

/// golang-migrate's `SetVersion`: its one row becomes `version` (none: no row, nothing
/// applied), `dirty` or not. Emptying the table and writing the row are one statement
/// list, so one implicit transaction when no transaction is open (as golang-migrate
/// does it in one of its own): never a moment with no row.
pub async fn set_version(
    conn: &mut PgConnection,
    schema: &str,
    version: Option<&str>,
    dirty: bool,
) -> Result<(), DbError> {
    let t = format!("{}.{}", quote_ident(schema), table(Tool::GolangMigrate));
    let context = || format!("setting golang-migrate's version in {schema}.schema_migrations");
    let mut sql = format!("truncate {t};");
    if let Some(version) = version {
        let number: i64 = version.parse().map_err(|_| {
            let why = format!(
                "golang-migrate keeps versions as 64-bit integers, and {version} is not one"
            );
            DbError::query(context(), &sqlx::Error::Protocol(why))
        })?;
        sql.push_str(&format!(
            " insert into {t} (version, dirty) values ({number}, {dirty});"
        ));
    }
    sqlx::raw_sql(&sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| DbError::query(context(), &e))
}

/// Deletes the row of `version` (as the ledger stores it), as `tool`'s own rollback
/// does. False when there was none.
pub async fn remove(
    conn: &mut PgConnection,
    schema: &str,
    tool: Tool,
    version: &str,
) -> Result<bool, DbError> {
    // Never Flyway's BASELINE row: that one stands for every version up to it.
    let and = match tool {
        Tool::Flyway => " and type <> 'BASELINE'",
        _ => "",
    };
    super::ledger::delete_version(conn, schema, table(tool), version, and).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(file: &str, sql: &str) -> Migration {
        let stem = file.split('/').next().unwrap().trim_end_matches(".sql");
        let (v, name) = stem.split_once('_').unwrap();
        Migration {
            version: crate::migrations::Version::parse(v).unwrap(),
            name: name.into(),
            up_path: file.into(),
            up_sql: sql.into(),
            down_sql: None,
            checksum: String::new(),
            transactional: true,
            down_transactional: true,
            phase: crate::migrations::Phase::Pre,
        }
    }

    #[test]
    fn the_tools_lock_keys_are_computed_as_each_tool_computes_them() {
        // Flyway's for public, from its code (Java's hashCode of the quoted name).
        assert_eq!(
            lock_keys(Tool::Flyway, "shop", "public"),
            [77_433_833_903_597]
        );
        let sqlx = lock_keys(Tool::Sqlx, "shop", "public");
        assert_eq!(sqlx, [0x3d32_ad9e_i64 * crc32fast::hash(b"shop") as i64]);
        assert_eq!(lock_keys(Tool::GolangMigrate, "shop", "public").len(), 2);
        assert!(lock_keys(Tool::Dbmate, "shop", "public").is_empty());
    }

    #[test]
    fn versions_are_written_as_each_tool_writes_them() {
        let dbmate = m("0001_init.sql", "");
        assert_eq!(written_version(Tool::Dbmate, &dbmate), "0001");
        assert_eq!(written_version(Tool::Sqlx, &m("0001_init.sql", "")), "1");
        let diesel = m("2019-01-01-000000_init/up.sql", "");
        assert_eq!(written_version(Tool::Diesel, &diesel), "20190101000000");
    }

    #[test]
    fn sqlx_checksums_the_files_bytes_with_sha384() {
        // SHA-384 of "select 1;\n", as sqlx stores it (hex here).
        let sum = checksum(Tool::Sqlx, &m("1_a.sql", "select 1;\n")).unwrap();
        assert_eq!(sum.len(), 96);
        assert_ne!(
            sum,
            checksum(Tool::Sqlx, &m("1_a.sql", "select 1;\r\n")).unwrap(),
            "bytes, not normalized text: sqlx sees a changed line ending as a change"
        );
        assert_eq!(checksum(Tool::Dbmate, &m("1_a.sql", "select 1;")), None);
        assert_eq!(
            sqlx_description(&m("1_create_users.sql", "")),
            "create users"
        );
    }
}
