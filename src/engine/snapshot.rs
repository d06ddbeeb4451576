//! [`Snapshot`]: everything known about a target's migrations at one moment, the
//! one place that dispatches on the engine, and [`snapshot`], where the configured
//! engine is opened.

use sqlx::postgres::PgConnection;

use super::alembic::{AlembicError, AlembicSnapshot};
use super::sql::state::compare;
use super::sql::SqlSnapshot;
use crate::config::{EngineKind, Settings};
use crate::db::{ledger, DbError};
use crate::migrations::{Migration, SourceError};
use crate::plan::Plan;

/// Everything known about a target's migrations at one moment, per engine.
#[derive(Debug, Clone)]
pub enum Snapshot {
    Sql(SqlSnapshot),
    Alembic(AlembicSnapshot),
}

impl Snapshot {
    /// The same state with the upgrade's goal set to `to` (a migration's version or
    /// label, or a revision) instead of the head: what is pending, the plan and
    /// verify's "at the target" stop there. `Err` when no migration is `to`.
    pub fn aimed_at(&self, to: &str) -> Result<Snapshot, String> {
        let to = self.resolve_target(to)?;
        let to = to.as_str();
        match self {
            Snapshot::Sql(s) => {
                let mut aimed = s.clone();
                if to == "base" {
                    aimed.state.pending.clear();
                    return Ok(Snapshot::Sql(aimed));
                }
                let at = s
                    .source
                    .iter()
                    .position(|m| m.version.to_string() == to || m.label() == to)
                    .ok_or_else(|| format!("no migration `{to}` in the migrations folder"))?;
                aimed.state.pending.retain(|&i| i <= at);
                Ok(Snapshot::Sql(aimed))
            }
            Snapshot::Alembic(a) => {
                let mut aimed = a.clone();
                aimed.goal = Some(to.to_string());
                Ok(Snapshot::Alembic(aimed))
            }
        }
    }

    /// The migration or revision `to` names, from this state (`base` for none): `-N`
    /// counts back from what is applied; for Alembic the start of a revision id is
    /// enough and an unknown one is refused. The sql engine's versions and labels are
    /// checked where they are used.
    pub fn resolve_target(&self, to: &str) -> Result<String, String> {
        match self {
            Snapshot::Sql(s) => match crate::migrations::steps_back(to) {
                Some(steps) => s.steps_back(steps, to),
                None => Ok(to.to_string()),
            },
            Snapshot::Alembic(a) => Ok(a
                .graph
                .resolve(a.current(), to)?
                .unwrap_or_else(|| "base".into())),
        }
    }

    /// Everything the project could execute, as text: every migration's up and down
    /// (SQL files), or every revision file and env.py (Alembic). Unreadable files are
    /// skipped.
    pub fn source_texts(&self) -> Vec<String> {
        match self {
            Snapshot::Sql(s) => s
                .source
                .iter()
                .flat_map(|m| std::iter::once(m.up_sql.clone()).chain(m.down_sql.clone()))
                .collect(),
            Snapshot::Alembic(a) => a
                .graph
                .revisions
                .iter()
                .map(|r| r.path.as_str())
                .chain(std::iter::once(a.graph.env_py.as_str()))
                .filter_map(|path| std::fs::read_to_string(path).ok())
                .collect(),
        }
    }

    /// The newest applied migration or revision, or `None` before the first.
    pub fn current_label(&self) -> Option<String> {
        match self {
            Snapshot::Sql(s) => s.current_label(),
            Snapshot::Alembic(a) => a.current_label(),
        }
    }

    /// The newest applied migration's version (a revision for Alembic, when there is
    /// one head in the table), as `upgrade`/`downgrade`'s `to` takes it.
    pub fn current_version(&self) -> Option<String> {
        match self {
            Snapshot::Sql(s) => s.state.current.as_ref().map(|v| v.to_string()),
            Snapshot::Alembic(a) => match a.current() {
                [one] => Some(one.clone()),
                _ => None,
            },
        }
    }

    /// Where a full deploy ends.
    pub fn head_label(&self) -> Option<String> {
        match self {
            Snapshot::Sql(s) => s.head_label(),
            Snapshot::Alembic(a) => a.head_label(),
        }
    }

    pub fn pending_labels(&self) -> Vec<String> {
        match self {
            Snapshot::Sql(s) => s.pending().iter().map(|m| m.label()).collect(),
            Snapshot::Alembic(a) => a.pending().iter().map(|r| r.label()).collect(),
        }
    }

    pub fn pending_count(&self) -> usize {
        match self {
            Snapshot::Sql(s) => s.state.pending.len(),
            Snapshot::Alembic(a) => a.pending().len(),
        }
    }

    pub fn applied_count(&self) -> usize {
        match self {
            Snapshot::Sql(s) => s.state.applied_count,
            Snapshot::Alembic(a) => a.graph.ancestry(a.current()).len(),
        }
    }

    /// A deploy may proceed only from a clean state.
    /// Why the migration `version` (applied or pending) has no downgrade that could undo
    /// it, read from its files: no down file or an empty one, a `downgrade()` that is
    /// missing, empty or raises. `None` when it has one (or no such migration).
    pub fn undo_problem(&self, version: &str) -> Option<String> {
        match self {
            Snapshot::Sql(s) => {
                let m = s.source.iter().find(|m| m.version.to_string() == version)?;
                m.down_problem().map(|p| format!("{}: {p}", m.label()))
            }
            Snapshot::Alembic(a) => a.graph.get(version)?.undo_problem(),
        }
    }

    /// The schema the project's objects are expected in (the lint's
    /// `require-schema-qualified`): where Alembic keeps its version table, found, or
    /// `database.schema` for the sql engine.
    pub fn lint_schema(&self, settings: &Settings) -> String {
        match self {
            Snapshot::Sql(_) => settings.database.schema.clone(),
            Snapshot::Alembic(a) => a.version.schema.clone(),
        }
    }

    /// Where Alembic keeps its version table; `None` for the sql engine.
    pub fn alembic_version_table(&self) -> Option<crate::engine::alembic::reach::VersionTable> {
        match self {
            Snapshot::Sql(_) => None,
            Snapshot::Alembic(a) => Some(a.version.clone()),
        }
    }

    /// Why this engine must not change the database at all now (Alembic: its
    /// connection goes elsewhere, or was not proven), with what to do.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Snapshot::Sql(_) => None,
            Snapshot::Alembic(a) => a.refusal.clone(),
        }
    }

    pub fn is_blocked(&self) -> bool {
        match self {
            Snapshot::Sql(s) => s.state.is_blocked(),
            Snapshot::Alembic(a) => a.is_blocked(),
        }
    }

    /// The plan; for Alembic without SQL yet (see [`crate::engine::alembic::offline`]).
    pub fn plan(&self) -> Plan {
        match self {
            Snapshot::Sql(s) => s.plan(),
            Snapshot::Alembic(a) => a.plan(),
        }
    }

    /// The plan with the SQL each migration will run (for Alembic, rendered by
    /// offline mode: a subprocess per call, so only the preview and `plan` ask).
    pub async fn plan_with_sql(&self, settings: &Settings) -> Plan {
        let mut plan = self.plan();
        if let Snapshot::Alembic(a) = self {
            // Offline mode: any connection env.py would open is refused (see guard.py).
            let runner = crate::engine::alembic::process::Runner::new(settings, None).offline();
            crate::engine::alembic::offline::render(&runner, a, &mut plan).await;
        }
        plan
    }

    /// What the lint reads for `plan`'s migrations (the plan with its SQL).
    pub fn lint_inputs(&self, plan: &Plan) -> Vec<crate::lint::LintInput> {
        use crate::lint::LintInput;
        match self {
            Snapshot::Sql(s) => s
                .pending()
                .into_iter()
                .filter(|m| {
                    plan.migrations
                        .iter()
                        .any(|p| p.version == m.version.to_string())
                })
                .map(LintInput::from_sql)
                .collect(),
            Snapshot::Alembic(a) => plan
                .migrations
                .iter()
                .map(|planned| {
                    let revision = a.graph.get(&planned.version);
                    let source = std::fs::read_to_string(&planned.file).unwrap_or_default();
                    LintInput::from_alembic(planned, revision, &a.version, source)
                })
                .collect(),
        }
    }

    /// Whether the migration `version` (with this checksum) is applied.
    pub fn has_applied(&self, version: &str, checksum: &str) -> bool {
        match self {
            Snapshot::Sql(s) => s
                .applied
                .iter()
                .any(|a| a.version == version && a.checksum == checksum),
            Snapshot::Alembic(a) => a.graph.ancestry(a.current()).contains(version),
        }
    }

    /// Whether `version` is applied (whatever its checksum).
    pub fn is_applied(&self, version: &str) -> bool {
        match self {
            Snapshot::Sql(s) => s.applied.iter().any(|a| a.version == version),
            Snapshot::Alembic(a) => a.graph.ancestry(a.current()).contains(version),
        }
    }

    /// What is applied, comparable across snapshots: equal means nothing changed.
    pub fn fingerprint(&self) -> Vec<String> {
        let mut rows: Vec<String> = match self {
            Snapshot::Sql(s) => s
                .applied
                .iter()
                .map(|r| format!("{}:{}", r.version, r.checksum))
                .collect(),
            Snapshot::Alembic(a) => a.current().to_vec(),
        };
        rows.sort();
        rows
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Alembic(#[from] AlembicError),
}

pub fn source(
    settings: &Settings,
) -> Result<(Vec<Migration>, Vec<crate::migrations::Ignored>), SourceError> {
    crate::migrations::load_folder(&settings.migrations.dir, &settings.migrations.ignore)
}

/// Reads the target's migrations as its engine sees them. Writes nothing.
pub async fn snapshot(
    settings: &Settings,
    conn: &mut PgConnection,
    probe: crate::engine::alembic::snapshot::Probe<'_>,
) -> Result<Snapshot, EngineError> {
    Ok(match settings.migrations.engine {
        EngineKind::Sql => {
            let (source, ignored) = source(settings)?;
            let applied = ledger::applied(conn, &settings.database.schema).await?;
            let state = compare(&source, &applied);
            Snapshot::Sql(SqlSnapshot {
                source,
                applied,
                state,
                ignored,
            })
        }
        EngineKind::Alembic => Snapshot::Alembic(
            crate::engine::alembic::snapshot::snapshot(settings, conn, probe).await?,
        ),
    })
}

/// The target's revision read from the database alone (a scheduled backup or a
/// restore needs no migration files): the newest ledger row, or the Alembic version
/// table's rows joined with `+`.
pub async fn current_revision(
    settings: &Settings,
    conn: &mut PgConnection,
) -> Result<Option<String>, DbError> {
    Ok(match &settings.migrations.alembic {
        Some(alembic) => {
            let version =
                crate::engine::alembic::reach::version_table_unprobed(conn, alembic).await?;
            crate::engine::alembic::snapshot::current_revisions(conn, &version)
                .await?
                .filter(|rows| !rows.is_empty())
                .map(|rows| rows.join("+"))
        }
        None => {
            let applied = ledger::applied(conn, &settings.database.schema).await?;
            ledger::newest(&applied).map(|row| format!("{}_{}", row.version, row.name))
        }
    })
}
