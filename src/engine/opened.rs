//! [`Engine`]: the configured engine, opened once per run. The one `match` on the
//! settings' engine kind is here; everything after it asks the engine or its
//! [`Snapshot`]. It keeps what does not change within a run: for Alembic, the
//! revision graph and where its connection was proven to go.

use sqlx::postgres::PgConnection;

use super::alembic::reach::{Reach, VersionTable};
use super::alembic::snapshot::Probe;
use super::alembic::Graph;
use super::sql::ledger::{Ledger, Settled};
use super::sql::state::compare;
use super::sql::SqlSnapshot;
use super::{EngineError, Snapshot};
use crate::config::{EngineKind, LedgerChoice, Settings};
use crate::db::{ledger, tool_ledger, DbError};
use crate::migrations::{Layout, Tool};

pub enum Engine {
    Sql,
    Alembic(Box<AlembicMemory>),
}

/// What one run learnt of its Alembic project, reused by every later snapshot.
#[derive(Default)]
pub struct AlembicMemory {
    /// Where Alembic's own connection goes, proven once per run by the first stage
    /// about to run an Alembic child (env.py and its environment do not change within
    /// a run).
    reach: Option<Reach>,
    /// Where that proof found the version table.
    version: Option<VersionTable>,
    /// The revision graph, read once per run.
    graph: Option<Graph>,
}

impl Engine {
    pub fn open(settings: &Settings) -> Engine {
        match settings.migrations.engine {
            EngineKind::Sql => Engine::Sql,
            EngineKind::Alembic => {
                // Every use of an Alembic engine asks the project (its graph at least).
                super::alembic::process::Runner::new(settings, None).warm();
                Engine::Alembic(Box::default())
            }
        }
    }

    /// Reads the target's migrations as the engine sees them. Writes nothing. `prove`:
    /// a stage is about to run an Alembic child, so the first such snapshot of the run
    /// proves where Alembic's connection goes ([`super::alembic::reach`]).
    pub async fn snapshot(
        &mut self,
        settings: &Settings,
        conn: &mut PgConnection,
        prove: bool,
    ) -> Result<Snapshot, EngineError> {
        match self {
            Engine::Sql => {
                let m = &settings.migrations;
                let mut folder = crate::migrations::read_folder(&m.dir, &m.ignore, m.layout)?;
                let schema = &settings.database.schema;
                let settled = Ledger::settle(settings, &folder, &mut *conn).await?;
                if settled.ledger.tool() == Some(Tool::GolangMigrate) {
                    // golang-migrate runs each file as written: one that cannot run in
                    // a transaction (or opens its own) runs alone here too.
                    folder.layout = Layout::Of(Tool::GolangMigrate);
                    crate::migrations::run_as_written(&mut folder.migrations);
                }
                crate::migrations::refuse_transaction_control(&folder.migrations)?;
                let applied = settled
                    .ledger
                    .applied(conn, schema, &folder.migrations)
                    .await?;
                let mut state = compare(&folder.migrations, &applied, |m| {
                    settled.ledger.checksum_of(m)
                });
                state.out_of_order_applied =
                    match (settings.migrations.out_of_order, settled.ledger.tool()) {
                        (Some(true), _) => {
                            Some("[migrations] out_of_order = \"apply\"".to_string())
                        }
                        (None, Some(tool)) if tool.applies_out_of_order() => {
                            Some(format!("{tool} applies such a migration too"))
                        }
                        _ => None,
                    };
                state.post_out_of_order =
                    match (settings.migrations.out_of_order, settled.ledger.tool()) {
                        (Some(false), _) => None,
                        // Its one version cannot keep an older migration pending, set
                        // to apply out of order or not.
                        (_, Some(Tool::GolangMigrate)) => None,
                        // ballast's own ledger records each migration: the contract
                        // step is held back behind newer ones by design.
                        (None, None) => Some("ballast's ledger records each migration".into()),
                        _ => state.out_of_order_applied.clone(),
                    };
                if applied.is_empty() && !state.pending.is_empty() {
                    state.untracked =
                        super::sql::ledger::untracked_tables(&mut *conn, schema, &settled.ledger)
                            .await?;
                }
                Ok(Snapshot::Sql(SqlSnapshot {
                    source: folder.migrations,
                    applied,
                    state,
                    ignored: folder.ignored,
                    layout: folder.layout,
                    ledger: settled,
                    schema: schema.clone(),
                }))
            }
            Engine::Alembic(memory) => {
                let probe = Probe {
                    prove,
                    reach: memory.reach.as_ref(),
                    graph: memory.graph.as_ref(),
                };
                let snap = super::alembic::snapshot::snapshot(settings, conn, probe).await?;
                if matches!(snap.reach, Reach::Probed(_)) {
                    memory.reach = Some(snap.reach.clone());
                    memory.version = Some(snap.version.clone());
                }
                if memory.graph.is_none() {
                    memory.graph = Some(snap.graph.clone());
                }
                Ok(Snapshot::Alembic(snap))
            }
        }
    }

    /// The project's migrations alone, as if none were applied (`check` without a
    /// database). Unlike a deploy's snapshot, a migration the deploy would refuse to
    /// load is read too, so the lint names it with everything else.
    pub async fn files_only(&self, settings: &Settings) -> Result<Snapshot, EngineError> {
        Ok(match self {
            Engine::Sql => {
                let m = &settings.migrations;
                let folder = crate::migrations::read_folder(&m.dir, &m.ignore, m.layout)?;
                let state = compare(&folder.migrations, &[], |_| None);
                Snapshot::Sql(SqlSnapshot {
                    source: folder.migrations,
                    applied: Vec::new(),
                    state,
                    ignored: folder.ignored,
                    layout: folder.layout,
                    ledger: Settled {
                        ledger: match m.ledger {
                            LedgerChoice::Tool(tool) => Ledger::Tool {
                                tool,
                                schema: settings.database.schema.clone(),
                            },
                            LedgerChoice::Auto | LedgerChoice::Ballast => Ledger::Ballast,
                        },
                        why: "the database was not read",
                    },
                    schema: settings.database.schema.clone(),
                })
            }
            Engine::Alembic(_) => {
                Snapshot::Alembic(super::alembic::snapshot::files_only(settings).await?)
            }
        })
    }

    /// The tables the engine keeps its own state in besides ballast's ledger
    /// (`schema.table`): Alembic's version table, where env.py keeps it once this run
    /// proved Alembic's connection, else as `start` (the run's first snapshot) found
    /// it, else the settings'.
    pub fn own_tables(&self, settings: &Settings, start: Option<&Snapshot>) -> Vec<String> {
        match self {
            Engine::Sql => start
                .and_then(Snapshot::tool_ledger_table)
                .into_iter()
                .collect(),
            Engine::Alembic(_) => self
                .version_table(settings, start)
                .map(|version| vec![version.to_string()])
                .unwrap_or_default(),
        }
    }

    /// The schemas the engine's own tables are in (see [`Engine::own_tables`]).
    pub fn own_schemas(&self, settings: &Settings, start: Option<&Snapshot>) -> Vec<String> {
        self.version_table(settings, start)
            .map(|version| vec![version.schema])
            .unwrap_or_default()
    }

    fn version_table(&self, settings: &Settings, start: Option<&Snapshot>) -> Option<VersionTable> {
        let Engine::Alembic(memory) = self else {
            return None;
        };
        if let Some(version) = &memory.version {
            return Some(version.clone());
        }
        if let Some(version) = start.and_then(Snapshot::alembic_version_table) {
            return Some(version);
        }
        VersionTable::configured(settings)
    }

    /// The target's revision read from the database alone (a scheduled backup or a
    /// restore needs no migration files): the newest ledger row, or the Alembic
    /// version table's rows joined with `+`.
    pub async fn current_revision(
        &self,
        settings: &Settings,
        conn: &mut PgConnection,
    ) -> Result<Option<String>, DbError> {
        Ok(match (self, &settings.migrations.alembic) {
            (Engine::Alembic(_), Some(alembic)) => {
                let version = super::alembic::reach::version_table_unprobed(conn, alembic).await?;
                super::alembic::snapshot::current_revisions(conn, &version)
                    .await?
                    .filter(|rows| !rows.is_empty())
                    .map(|rows| rows.join("+"))
            }
            _ => {
                // No files needed: the tool's ledger found, else ballast's.
                let schema = &settings.database.schema;
                let found = tool_ledger::find(&mut *conn, schema).await?;
                let tool = match (settings.migrations.ledger, found.as_slice()) {
                    (LedgerChoice::Tool(tool), _) => Some(tool),
                    (LedgerChoice::Auto, [one]) => Some(one.tool),
                    _ => None,
                };
                let applied = match tool {
                    // Not found: nothing applied in it yet.
                    Some(tool) => match found.iter().find(|f| f.tool == tool) {
                        Some(f) => {
                            let ledger = Ledger::Tool {
                                tool,
                                schema: f.schema.clone(),
                            };
                            ledger.applied(conn, schema, &[]).await?
                        }
                        None => Vec::new(),
                    },
                    None => ledger::applied(conn, schema).await?,
                };
                ledger::newest(&applied).map(|row| match row.name.is_empty() {
                    true => row.version.clone(),
                    false => format!("{}_{}", row.version, row.name),
                })
            }
        })
    }
}
