//! An Alembic target at one moment: the project's revision graph (from the probe) and
//! the database's revisions (read directly from the version table), with the
//! diagnoses every Alembic user meets, worded so a person can act on them.

use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;

use super::process::Runner;
use super::reach::{self, Reach, VersionTable, Witness};
use super::{AlembicError, Graph, Revision};
use crate::config::Settings;
use crate::db::{ledger, quote_ident, DbError};
use crate::events::{Events, Severity};
use crate::plan::{Plan, PlannedMigration};

#[derive(Debug, Clone)]
pub struct AlembicSnapshot {
    pub graph: Graph,
    /// The version table's rows; `None` when the table does not exist.
    pub current: Option<Vec<String>>,
    /// Where the version table is (env.py says, when the probe ran).
    pub version: VersionTable,
    /// Where Alembic's own connection goes, when the probe ran env.py.
    pub reach: Reach,
    /// Why no Alembic child may change the database: env.py connects elsewhere, could
    /// not be run, or keeps the version table where the settings do not say.
    pub refusal: Option<String>,
    /// Tables in the version schema besides ballast's own (when the version table is
    /// missing, these say the schema was built some other way).
    pub other_tables: Vec<String>,
    /// For each unknown revision, the nearest ancestor the files know, when ballast's
    /// journal recorded the run that applied it.
    pub nearest_known: Vec<(String, String)>,
    /// An upgrade's goal short of the head (`upgrade` with `to`); `None`: the head.
    pub goal: Option<String>,
    /// Pending revisions a `--phase pre` deploy leaves for after the rollout
    /// ([`crate::engine::Snapshot::in_phase`]); never ancestors of what it runs.
    pub held_back: Vec<String>,
}

impl AlembicSnapshot {
    pub fn current(&self) -> &[String] {
        self.current.as_deref().unwrap_or(&[])
    }

    /// The head a deploy goes to, when there is exactly one (or the goal set by
    /// [`crate::engine::Snapshot::aimed_at`]).
    pub fn target(&self) -> Option<&str> {
        if let Some(goal) = &self.goal {
            return Some(goal);
        }
        match self.graph.heads.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Revisions in the database that no file has.
    pub fn unknown(&self) -> Vec<&String> {
        self.current()
            .iter()
            .filter(|r| self.graph.get(r).is_none())
            .collect()
    }

    pub fn pending(&self) -> Vec<&Revision> {
        let mut pending = match self.target() {
            Some(target) if self.unknown().is_empty() => {
                self.graph.pending(self.current(), &[target.to_string()])
            }
            _ => Vec::new(),
        };
        pending.retain(|r| !self.held_back.contains(&r.revision));
        pending
    }

    /// No version table but tables beside where it should be: a schema built some
    /// other way. Not said on a guess of where it should be (the proof before the
    /// first change tells, and the upgrade asks again then).
    fn version_table_missing_with_tables(&self) -> bool {
        self.current.is_none() && !self.other_tables.is_empty() && !self.version.guessed
    }

    pub fn is_blocked(&self) -> bool {
        self.refusal.is_some()
            || self.target().is_none()
            || !self.unknown().is_empty()
            || self.version_table_missing_with_tables()
    }

    pub fn current_label(&self) -> Option<String> {
        let current = self.current();
        (!current.is_empty()).then(|| current.join("+"))
    }

    pub fn head_label(&self) -> Option<String> {
        (!self.graph.heads.is_empty()).then(|| self.graph.heads.join("+"))
    }

    /// Why a downgrade to `to` (`None`: base) would fail or undo nothing, one line per
    /// revision on the way; empty when it can run.
    pub fn downgrade_problems(&self, to: Option<&str>) -> Vec<String> {
        self.graph
            .undone_by_downgrade(self.current(), to)
            .iter()
            .filter_map(|r| r.undo_problem())
            .collect()
    }

    /// Whether Alembic running `revisions` (upgrading or downgrading) and stopped
    /// mid-way leaves only whole revisions done, which its version table records: no
    /// revision commits by itself. (With one transaction for the whole run, nothing
    /// stays; with one per revision, the revisions before the stopped one.)
    pub fn stops_cleanly<'r>(&self, mut revisions: impl Iterator<Item = &'r str>) -> bool {
        revisions.all(|revision| {
            !self
                .graph
                .get(revision)
                .is_some_and(|r| commits_by_itself(&r.path))
        })
    }

    /// One transaction for the whole upgrade (Alembic's default), or one per revision.
    pub fn per_migration(&self) -> bool {
        // Unknown counts as per revision: partial progress is then expected, and is
        // read back from the version table either way.
        self.graph.transaction_per_migration != Some(false)
    }

    /// The plan: pending revisions with their files' checksums. The SQL is rendered
    /// separately (offline mode is slow); the hash pins the revisions and the files.
    pub fn plan(&self) -> Plan {
        let per_migration = self.per_migration();
        let files: Vec<(&Revision, Vec<u8>, bool)> = self
            .pending()
            .into_iter()
            .map(|rev| {
                let text = std::fs::read(&rev.path).unwrap_or_default();
                let autocommit = String::from_utf8_lossy(&text).contains("autocommit_block");
                (rev, text, autocommit)
            })
            .collect();
        let autocommits: Vec<usize> = (0..files.len()).filter(|&i| files[i].2).collect();
        let planned = files
            .iter()
            .enumerate()
            .map(|(i, (rev, text, autocommit))| {
                let id = |j: usize| files[j].0.revision.clone();
                // An autocommit block commits the deploy transaction so far, and
                // Alembic opens a new one after it: say where each revision commits.
                let mode = if *autocommit {
                    "commits what ran before it, runs outside a transaction".to_string()
                } else if per_migration {
                    "its own transaction".to_string()
                } else if let Some(&j) = autocommits.iter().find(|&&j| j > i) {
                    format!(
                        "in the deploy transaction, committed when {}'s autocommit block starts",
                        id(j)
                    )
                } else if let Some(&j) = autocommits.iter().rev().find(|&&j| j < i) {
                    format!(
                        "in the transaction opened after {}'s autocommit block",
                        id(j)
                    )
                } else {
                    "in the deploy transaction".to_string()
                };
                PlannedMigration {
                    version: rev.revision.clone(),
                    name: rev.message.clone(),
                    checksum: hex::encode(Sha256::digest(text)),
                    transactional: !autocommit && !per_migration,
                    file: rev.path.clone(),
                    sql: String::new(),
                    mode: Some(mode),
                    // Alembic decides its own transactions (an enum value added by
                    // one revision and used by the next fails there as in plain
                    // alembic; transaction_per_migration is the project's cure).
                    commits_after: None,
                    phase: rev.phase,
                }
            })
            .collect();
        Plan::from_planned(planned)
    }

    /// Emits a diagnosis for each blocker; returns how many there were.
    pub fn diagnose(&self, events: &Events) -> usize {
        let mut blockers = 0;
        if let Some(refusal) = &self.refusal {
            blockers += 1;
            let elsewhere = self.reach.reached().is_some_and(|r| !r.reaches_witness);
            events.diagnose(
                Severity::Error,
                refusal.clone(),
                elsewhere.then(|| reach::HINT.to_string()),
            );
        }
        let heads = &self.graph.heads;
        if heads.is_empty() {
            blockers += 1;
            events.diagnose(
                Severity::Error,
                format!(
                    "the Alembic project has no revisions in {}",
                    self.graph.script_location
                ),
                Some("check migrations.alembic_ini and the ini's script_location".into()),
            );
        }
        if heads.len() > 1 {
            blockers += 1;
            events.diagnose(
                Severity::Error,
                format!(
                    "the project has {} heads ({}): `upgrade head` would not know which to take",
                    heads.len(),
                    heads.join(", ")
                ),
                Some(format!(
                    "merge them into one: `alembic merge -m \"merge heads\" {}`, review the merge revision, then deploy",
                    heads.join(" ")
                )),
            );
        }
        for revision in self.unknown() {
            blockers += 1;
            let ancestor = self
                .nearest_known
                .iter()
                .find(|(unknown, _)| unknown == revision)
                .map(|(_, known)| {
                    format!(
                        " Its nearest known ancestor is {} (ballast's journal has the run that applied {revision} on top of it): after checking the schema, `ballast stamp {known}` and deploy again.",
                        self.graph.get(known).map(Revision::label).unwrap_or_else(|| known.clone())
                    )
                })
                .unwrap_or_default();
            events.diagnose(
                Severity::Error,
                format!(
                    "the database is at revision {revision} ({}), which no file in {} has: Alembic would stop with \"Can't locate revision identified by '{revision}'\"",
                    self.version, self.graph.script_location
                ),
                Some(format!(
                    "deploy from the branch or release that has {revision}; if its file was removed on purpose, check the schema and `ballast stamp` the revision it matches (it asks first and is journaled; nothing stamps by itself).{ancestor}"
                )),
            );
        }
        if self.version_table_missing_with_tables() {
            blockers += 1;
            events.diagnose(
                Severity::Error,
                format!(
                    "{} does not exist, but the schema already has {} table(s) ({}): the database was built without Alembic, or its version table is elsewhere",
                    self.version,
                    self.other_tables.len(),
                    crate::text::short_list(&self.other_tables)
                ),
                Some("if migrations.version_schema and version_table are right, find the revision the schema matches and run `ballast stamp <revision>` (it asks first and is journaled; nothing stamps by itself); an upgrade now would try to create tables that exist".into()),
            );
        }
        blockers
    }
}

/// What a snapshot asks the project (a Python process each time it asks), and what it
/// reuses from earlier in the same run. The default reads the graph and runs no env.py
/// (`status`, `plan` and `check`: env.py may write).
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe<'a> {
    /// Run env.py online against a witness session (see [`reach`]), unless `reach`
    /// is known.
    pub prove: bool,
    /// What a proof earlier in this run found (env.py and its environment are the same).
    pub reach: Option<&'a Reach>,
    /// The revision graph this run read already: the files a run plans with are read
    /// once (each revision's text is still read, and checksummed, by every plan).
    pub graph: Option<&'a Graph>,
}

/// Reads the project's graph and the database's revisions. Writes nothing (env.py,
/// which `Probe::Prove` runs as `alembic current` does, is the project's own).
pub async fn snapshot(
    settings: &Settings,
    conn: &mut PgConnection,
    probe: Probe<'_>,
) -> Result<AlembicSnapshot, AlembicError> {
    let alembic = settings
        .migrations
        .alembic
        .as_ref()
        .expect("the alembic engine has alembic settings");
    let runner = Runner::new(settings, None);
    let (graph, reach) = match (probe.reach, probe.prove, probe.graph) {
        (None, true, _) => {
            let witness = Witness::open(&settings.database).await?;
            let read = read_graph(&runner, Some(&witness)).await;
            witness.close().await;
            let (graph, reach) = read?;
            // Asked and not answered is not proven. What env.py said is shown without
            // a secret of ballast's URL (the JSON escaping may have hidden one from the
            // scrub of the raw output).
            let secrets = settings
                .database
                .url()
                .ok()
                .and_then(|url| crate::redact::split_secrets(url).ok())
                .map(|split| split.secrets)
                .unwrap_or_default();
            let reach = match reach {
                Reach::NotProbed => {
                    Reach::Failed("the probe said nothing of env.py's connection".into())
                }
                Reach::Failed(why) => Reach::Failed(crate::redact::scrub(&why, &secrets)),
                proven => proven,
            };
            (graph, reach)
        }
        (reach, _, graph) => {
            let graph = match graph {
                Some(graph) => graph.clone(),
                None => read_graph(&runner, None).await?.0,
            };
            (graph, reach.cloned().unwrap_or(Reach::NotProbed))
        }
    };
    let mut refusal = reach.refusal(&settings.database.display_url());
    let version = match reach::version_table(conn, alembic, &reach).await {
        Ok(version) => version,
        Err(reach::Located::Disagrees { configured, found }) => {
            let message = reach::Located::Disagrees {
                configured,
                found: found.clone(),
            }
            .to_string();
            refusal.get_or_insert(message);
            found
        }
        Err(reach::Located::Db(e)) => return Err(e.into()),
    };
    let current = current_revisions(conn, &version).await?;
    let other_tables = if current.is_none() {
        tables_in(conn, &version.schema).await?
    } else {
        Vec::new()
    };
    let mut nearest_known = Vec::new();
    for revision in current.iter().flatten() {
        if graph.get(revision).is_none() {
            let schema = &settings.database.schema;
            if let Some(known) = nearest_known_in_journal(conn, schema, &graph, revision).await? {
                nearest_known.push((revision.clone(), known));
            }
        }
    }
    Ok(AlembicSnapshot {
        graph,
        current,
        version,
        reach,
        refusal,
        other_tables,
        nearest_known,
        goal: None,
        held_back: Vec::new(),
    })
}

/// Whether the revision file at `path` commits part of its work by itself
/// (`op.get_bind().commit()`, an autocommit block), whatever transaction Alembic keeps.
pub fn commits_by_itself(path: &str) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|text| text.contains("autocommit_block") || text.contains(".commit("))
}

/// The newest run that applied `revision`, read back from it: the revision it applied
/// before, or the one it started from, that the files still have.
async fn nearest_known_in_journal(
    conn: &mut PgConnection,
    schema: &str,
    graph: &Graph,
    revision: &str,
) -> Result<Option<String>, DbError> {
    if !ledger::table_exists(&mut *conn, schema, crate::db::journal_table::TABLE).await? {
        return Ok(None);
    }
    let sql = format!(
        "select detail from {}.{} where detail->'applied' ? $1 order by started_at desc",
        quote_ident(schema),
        crate::db::journal_table::TABLE
    );
    let runs: Vec<serde_json::Value> = sqlx::query_scalar(&sql)
        .bind(revision)
        .fetch_all(conn)
        .await
        .map_err(|e| DbError::query("reading the run journal", &e))?;
    for run in runs {
        let applied: Vec<String> =
            serde_json::from_value(run["applied"].clone()).unwrap_or_default();
        let start: Vec<String> = run["start_version"]
            .as_str()
            .map(|s| s.split('+').map(str::to_string).collect())
            .unwrap_or_default();
        let before = applied.iter().position(|a| a == revision).unwrap_or(0);
        let candidates = applied[..before].iter().rev().chain(start.iter());
        if let Some(known) = candidates.into_iter().find(|c| graph.get(c).is_some()) {
            return Ok(Some(known.clone()));
        }
    }
    Ok(None)
}

/// The project alone, as if no revision were applied (`check` without a database).
pub async fn files_only(settings: &Settings) -> Result<AlembicSnapshot, AlembicError> {
    Ok(AlembicSnapshot {
        graph: read_graph(&Runner::new(settings, None), None).await?.0,
        current: None,
        version: VersionTable::configured(settings)
            .expect("the alembic engine has alembic settings"),
        reach: Reach::NotProbed,
        refusal: None,
        other_tables: Vec::new(),
        nearest_known: Vec::new(),
        goal: None,
        held_back: Vec::new(),
    })
}

/// The graph and, with a witness, where env.py's connection goes.
pub async fn read_graph(
    runner: &Runner,
    witness: Option<&Witness>,
) -> Result<(Graph, Reach), AlembicError> {
    let probed = runner.probe(witness).await?;
    let project = |message: String| AlembicError::Project {
        ini: runner.ini(),
        message,
    };
    if !probed.success && probed.stdout.trim().is_empty() {
        let reason = probed.reason();
        let hint = if reason.contains("No module named") {
            "; is Alembic installed for migrations.python (the project's venv)?"
        } else {
            ""
        };
        return Err(project(format!("{reason}{hint}")));
    }
    let mut graph = Graph::parse(&probed.stdout).map_err(|e| project(e.to_string()))?;
    let reach = Reach::parse(&probed.stdout);
    // What env.py passed to configure() when it ran beats a guess from its text.
    if graph.transaction_per_migration.is_none() {
        graph.transaction_per_migration = reach.reached().map(|r| r.transaction_per_migration);
    }
    Ok((graph, reach))
}

/// The version table's rows (several while branches are unmerged), or `None` when it
/// does not exist.
pub async fn current_revisions(
    conn: &mut PgConnection,
    version: &VersionTable,
) -> Result<Option<Vec<String>>, DbError> {
    let (schema, table) = (&version.schema, &version.table);
    if !ledger::table_exists(&mut *conn, schema, table).await? {
        return Ok(None);
    }
    let sql = format!(
        "select version_num::text from {}.{} order by 1",
        quote_ident(schema),
        quote_ident(table)
    );
    sqlx::query_scalar(&sql)
        .fetch_all(conn)
        .await
        .map(Some)
        .map_err(|e| {
            let mut failure = crate::db::SqlFailure::from_sqlx(&e);
            if failure.sqlstate.as_deref() == Some("42501") {
                failure.hint = Some(format!(
                    "GRANT USAGE ON SCHEMA {s} TO <deploy role>; GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.{t} TO <deploy role>;",
                    s = quote_ident(schema),
                    t = quote_ident(table)
                ));
            }
            DbError::Query {
                context: format!("reading {schema}.{table}"),
                failure,
            }
        })
}

async fn tables_in(conn: &mut PgConnection, schema: &str) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "select tablename::text from pg_tables where schemaname = $1 \
         and tablename not like 'ballast\\_%' order by 1",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_err(|e| DbError::query(format!("listing the tables of schema {schema}"), &e))
}

/// `Some((problem, the GRANT that fixes it))` when the role cannot write the version
/// table (or create it).
pub async fn missing_privileges(
    conn: &mut PgConnection,
    version: &VersionTable,
) -> Result<Option<(String, String)>, DbError> {
    let (schema, table) = (&version.schema, &version.table);
    if !ledger::table_exists(&mut *conn, schema, table).await? {
        // The schema's own privileges: may the role create the table there.
        return crate::db::privileges::missing_on_schema(conn, schema).await;
    }
    let (user, usage): (String, bool) =
        sqlx::query_as("select current_user::text, has_schema_privilege($1, 'USAGE')")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| DbError::query("checking privileges on the version table", &e))?;
    if !usage {
        return Ok(Some((
            format!("role {user} cannot reach schema {schema} (it lacks USAGE)"),
            format!("GRANT USAGE ON SCHEMA {} TO {user};", quote_ident(schema)),
        )));
    }
    crate::db::privileges::missing_on_table(conn, schema, table, "SELECT, INSERT, UPDATE, DELETE")
        .await
}
