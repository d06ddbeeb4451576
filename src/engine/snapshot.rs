//! [`Snapshot`]: everything known about a target's migrations at one moment, the
//! one place that dispatches on the engine, and [`snapshot`], where the configured
//! engine is opened.

use sqlx::postgres::PgConnection;

use super::alembic;
use super::alembic::{AlembicError, AlembicSnapshot};
use super::change::{ChangeError, Report, RunFacts, StoppedAt};
use super::goal::{GoalError, UndoRefused};
use super::sql::{self, undo::UndoGoal, SqlSnapshot};
use crate::config::Settings;
use crate::db::DbError;
use crate::migrations::{Migration, SourceError};
use crate::plan::Plan;

/// Everything known about a target's migrations at one moment, per engine.
// A few per run, never in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Snapshot {
    Sql(SqlSnapshot),
    Alembic(AlembicSnapshot),
}

impl Snapshot {
    /// The same state with the upgrade's goal set to `to` (a migration's version or
    /// label, or a revision) instead of the head: what is pending, the plan and
    /// verify's "at the target" stop there. `Err` when no migration is `to`.
    pub fn aimed_at(&self, to: &str) -> Result<Snapshot, GoalError> {
        let to = self.resolve_goal(to)?;
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
                    .ok_or_else(|| GoalError::Unknown {
                        to: to.into(),
                        what: "migration",
                        place: "the migrations folder".into(),
                    })?;
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
    pub fn resolve_goal(&self, to: &str) -> Result<String, GoalError> {
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

    /// `Some((problem, the GRANT that fixes it))` when the role cannot create and
    /// write ballast's tables in `schema`, or the engine's own (Alembic's version
    /// table).
    pub async fn missing_privileges(
        &self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> Result<Option<(String, String)>, DbError> {
        let ours = crate::db::privileges::missing_privileges(&mut *conn, schema).await?;
        match self {
            _ if ours.is_some() => Ok(ours),
            Snapshot::Alembic(a) => alembic::snapshot::missing_privileges(conn, &a.version).await,
            Snapshot::Sql(s) => match &s.ledger.ledger {
                sql::ledger::Ledger::Tool { tool, schema } => {
                    if let Some(missing) =
                        crate::db::privileges::missing_on_schema(&mut *conn, schema).await?
                    {
                        return Ok(Some(missing));
                    }
                    let table = crate::db::tool_ledger::table(*tool);
                    // A downgrade deletes rows; golang-migrate's SetVersion empties
                    // its table first.
                    let needed = match tool {
                        crate::migrations::Tool::GolangMigrate => {
                            "SELECT, INSERT, DELETE, TRUNCATE"
                        }
                        _ => "SELECT, INSERT, DELETE",
                    };
                    crate::db::privileges::missing_on_table(conn, schema, table, needed).await
                }
                sql::ledger::Ledger::Ballast => Ok(None),
            },
        }
    }

    /// Emits a diagnosis for each blocker; returns how many there were.
    pub fn diagnose(&self, events: &crate::events::Events) -> usize {
        match self {
            Snapshot::Sql(s) => s.diagnose(events),
            Snapshot::Alembic(a) => a.diagnose(events),
        }
    }

    /// How the engine read the target (the sql engine: the folder's layout and the
    /// ledger, and how each was decided), and whether that is worth saying without
    /// `-v` (a tool's layout or ledger is involved).
    pub fn reading(&self) -> Option<(String, bool)> {
        match self {
            Snapshot::Sql(s) => Some(s.reading()),
            Snapshot::Alembic(_) => None,
        }
    }

    /// Details shown with `-v` besides the state (the sql engine: files it left alone).
    pub fn notes(&self) -> Vec<String> {
        match self {
            Snapshot::Sql(s) => s.notes(),
            Snapshot::Alembic(_) => Vec::new(),
        }
    }

    /// How the verify stage says the state was proven, `aim` being "at the head" or
    /// "at the target".
    pub fn proof_words(&self, aim: &str) -> String {
        match self {
            Snapshot::Sql(_) => "checksums match".to_string(),
            Snapshot::Alembic(_) => format!("the version table is {aim}"),
        }
    }

    /// Whether what a run can execute drops or truncates with CASCADE (or cannot be
    /// read): the sql engine's ups and downs, Alembic's rendered `plan` (none yet:
    /// unknown, so yes).
    pub fn may_cascade(&self, plan: Option<&Plan>) -> bool {
        use crate::migrations::data_effects::{cascades, has_statements};
        match self {
            Snapshot::Sql(s) => s
                .source
                .iter()
                .any(|m| cascades(&m.up_sql) || m.down_sql.as_deref().is_some_and(cascades)),
            Snapshot::Alembic(_) => match plan {
                // A revision offline mode could not render is not known not to.
                Some(plan) => plan
                    .migrations
                    .iter()
                    .any(|m| cascades(&m.sql) || !has_statements(&m.sql)),
                None => true,
            },
        }
    }

    /// The application name of the sessions that apply the plan when they are not
    /// ballast's own (Alembic's child, named by its guard); `None`: the engine applies
    /// it on the session it is given.
    pub fn applying_application(&self, settings: &Settings) -> Option<String> {
        match self {
            Snapshot::Sql(_) => None,
            Snapshot::Alembic(_) => Some(alembic::process::application_name(&settings.database)),
        }
    }

    /// Whether the engine's record of what is applied says which run applied it
    /// (ballast's ledger does; Alembic's version table holds only the revision).
    pub fn records_runs(&self) -> bool {
        matches!(self, Snapshot::Sql(_))
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

    /// What the database has applied that no file here knows (a newer release's
    /// migrations, seen from an older release's files), as labels.
    pub fn unknown_applied(&self) -> Vec<String> {
        match self {
            Snapshot::Sql(s) => s.state.unknown.iter().map(|row| s.row_label(row)).collect(),
            Snapshot::Alembic(a) => a.unknown().into_iter().cloned().collect(),
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
                    alembic::lint_input::lint_input(planned, revision, &a.version, source)
                })
                .collect(),
        }
    }

    /// Whether the migration `version` (with this checksum, as ballast takes it) is
    /// applied: its row is in the ledger, and its file, unchanged since, is the one
    /// applied (where the ledger keeps a checksum).
    pub fn has_applied(&self, version: &str, checksum: &str) -> bool {
        match self {
            Snapshot::Sql(s) => {
                let file = s.source.iter().find(|m| m.version.as_str() == version);
                s.applied_row(version).is_some()
                    && file.is_some_and(|m| m.checksum == checksum)
                    && !s.state.drift.iter().any(|d| d.version == version)
            }
            Snapshot::Alembic(a) => a.graph.ancestry(a.current()).contains(version),
        }
    }

    /// Whether `version` is applied (whatever its checksum).
    pub fn is_applied(&self, version: &str) -> bool {
        match self {
            Snapshot::Sql(s) => s.applied_row(version).is_some(),
            Snapshot::Alembic(a) => a.graph.ancestry(a.current()).contains(version),
        }
    }

    /// The tool's ledger the sql engine keeps (`schema.table`), when it keeps one.
    pub fn tool_ledger_table(&self) -> Option<String> {
        match self {
            Snapshot::Sql(s) => s
                .ledger
                .ledger
                .tool()
                .map(|_| s.ledger.ledger.qualified(&s.schema)),
            Snapshot::Alembic(_) => None,
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
    #[error(transparent)]
    Ledger(#[from] sql::ledger::LedgerError),
}

impl EngineError {
    /// A refusal about the database (the ledger it holds), not about the settings or
    /// the files: exit 3 wherever it stops a command, as in a deploy.
    pub fn is_refusal(&self) -> bool {
        match self {
            EngineError::Ledger(e) => !e.is_config(),
            EngineError::Db(e) => e.refusal().is_some(),
            EngineError::Source(_) | EngineError::Alembic(_) => false,
        }
    }
}

impl From<sql::ledger::ResolveError> for EngineError {
    fn from(e: sql::ledger::ResolveError) -> Self {
        match e {
            sql::ledger::ResolveError::Ledger(e) => EngineError::Ledger(e),
            sql::ledger::ResolveError::Db(e) => EngineError::Db(e),
        }
    }
}

/// One step of an upgrade: what the stage runs, and tries again after a lock timeout,
/// as a whole or (a migration run alone) from the statement that stopped.
#[derive(Debug, Clone)]
pub struct ApplyStep {
    /// The step's first pending migration, and how many it runs.
    first: usize,
    count: usize,
    /// The label of a migration that runs outside a transaction (it can stop half-way:
    /// the journal names it while it runs).
    alone: Option<String>,
    /// For a migration run alone: the statement to start at (counted from 0).
    from_statement: usize,
}

impl ApplyStep {
    pub fn runs_alone(&self) -> Option<&str> {
        self.alone.as_deref()
    }

    /// The same step, started at the statement of its migration run alone where an
    /// attempt stopped ([`crate::engine::change::Report::stopped_at_statement`]).
    pub fn resumed_at(&self, at: &StoppedAt) -> ApplyStep {
        ApplyStep {
            from_statement: at.statement,
            ..self.clone()
        }
    }
}

/// What a downgrade will undo, checked before anything runs.
#[derive(Debug)]
pub enum UndoPlan {
    Sql(crate::engine::sql::undo::Undo),
    Alembic {
        /// Where it goes (`None`: base).
        to: Option<String>,
        /// Revision and message, newest first.
        undone: Vec<(String, String)>,
    },
}

impl UndoPlan {
    pub fn is_empty(&self) -> bool {
        match self {
            UndoPlan::Sql(undo) => undo.steps.is_empty(),
            UndoPlan::Alembic { undone, .. } => undone.is_empty(),
        }
    }

    /// Starts the plan's first step at the statement where an earlier attempt's down
    /// run alone stopped ([`crate::engine::change::Report::stopped_at_statement`]);
    /// false when that down is not the plan's first step (the database moved).
    pub fn resume_at(&mut self, at: &StoppedAt) -> bool {
        match self {
            UndoPlan::Sql(undo) => undo.resume_at(at),
            UndoPlan::Alembic { .. } => false,
        }
    }

    /// Why there is nothing to undo.
    pub fn already(&self) -> String {
        match self {
            UndoPlan::Sql(undo) => undo.already.clone(),
            UndoPlan::Alembic { to, .. } => {
                format!("already at {}", to.as_deref().unwrap_or("base"))
            }
        }
    }
}

impl Snapshot {
    /// The upgrade's steps in order: the sql engine's transactional migrations in one
    /// batch (cut after each version in `cut_after`, e.g. an enum value a later one
    /// uses) and each `no-transaction` migration alone; Alembic's one `alembic
    /// upgrade`.
    pub fn apply_steps(&self, cut_after: &[String]) -> Vec<ApplyStep> {
        match self {
            Snapshot::Sql(s) => {
                let pending: Vec<&Migration> = s.pending();
                let cut = |m: &&Migration| cut_after.contains(&m.version.to_string());
                let mut first = 0;
                crate::migrations::batches_cut(&pending, |m| m.transactional, cut)
                    .into_iter()
                    .map(|batch| {
                        let step = ApplyStep {
                            first,
                            count: batch.len(),
                            alone: (!batch[0].transactional).then(|| batch[0].label()),
                            from_statement: 0,
                        };
                        first += batch.len();
                        step
                    })
                    .collect()
            }
            Snapshot::Alembic(a) => vec![ApplyStep {
                first: 0,
                count: a.pending().len(),
                alone: None,
                from_statement: 0,
            }],
        }
    }

    /// Whether stopping a step of the upgrade mid-way (the lock-queue guard's cancel) leaves it where
    /// it can go on from ([`crate::engine::change::Report::goes_on`]): a transactional
    /// batch rolls back whole; a migration run alone stops between two statements
    /// (the guard never cancels one that commits in parts,
    /// [`crate::migrations::in_parts`]); Alembic rolls back whole or commits whole
    /// revisions, unless a revision commits by itself. The guard cancels only such a
    /// step; another would fail half-done, so it is only watched.
    pub fn apply_stops_cleanly(&self) -> bool {
        match self {
            Snapshot::Sql(_) => true,
            Snapshot::Alembic(a) => {
                a.stops_cleanly(a.pending().iter().map(|r| r.revision.as_str()))
            }
        }
    }

    /// As [`Snapshot::apply_stops_cleanly`], for an undo: stopped mid-way, it leaves
    /// nothing half-done, so it can be planned again from where it stopped.
    pub fn undo_stops_cleanly(&self, plan: &UndoPlan) -> bool {
        match (self, plan) {
            // A down run alone stops between two statements, as an up does.
            (_, UndoPlan::Sql(_)) => true,
            (Snapshot::Alembic(a), UndoPlan::Alembic { undone, .. }) => {
                a.stops_cleanly(undone.iter().map(|(revision, _)| revision.as_str()))
            }
            (Snapshot::Sql(_), UndoPlan::Alembic { .. }) => false,
        }
    }

    /// Runs one step of [`Snapshot::apply_steps`] (the sql engine on `conn`, Alembic
    /// as its own child). The report says what committed, also inside the error.
    pub async fn apply(
        &self,
        step: &ApplyStep,
        conn: &mut PgConnection,
        run: &RunFacts,
    ) -> Result<Report, ChangeError> {
        match self {
            Snapshot::Sql(s) => {
                let pending = s.pending();
                let total = pending.len();
                let batch = &pending[step.first..step.first + step.count];
                let ledger = &s.ledger.ledger;
                match step.alone {
                    Some(_) => {
                        let from = step.from_statement;
                        sql::apply::alone(conn, batch[0], from, step.first, total, ledger, run)
                            .await
                    }
                    None => sql::apply::batch(conn, batch, step.first, total, ledger, run).await,
                }
            }
            Snapshot::Alembic(a) => {
                // Alembic ran as a child for as long as it took: the run's own idle
                // session may not have survived it (idle timeouts), so it is replaced.
                let mut result = alembic::run::upgrade(a, run).await;
                match &mut result {
                    Ok(report) => report.connection_lost = true,
                    Err(e) => e.report.connection_lost = true,
                }
                result
            }
        }
    }

    /// What a downgrade to `to` undoes (`to` resolved by [`Snapshot::resolve_goal`];
    /// `None`: back to `start`, the run's starting state), or why it must not run.
    pub fn undo_plan(
        &self,
        to: Option<&str>,
        start: Option<&Snapshot>,
    ) -> Result<UndoPlan, UndoRefused> {
        match self {
            Snapshot::Sql(s) => {
                let target = match (to, start) {
                    (Some(to), _) => UndoGoal::To(to.to_string()),
                    (None, Some(Snapshot::Sql(start))) => UndoGoal::Start(Box::new(start.clone())),
                    (None, _) => return Err(UndoRefused::NoStart),
                };
                sql::undo::plan(s, &target).map(UndoPlan::Sql)
            }
            Snapshot::Alembic(a) => {
                let to = match to {
                    Some(to) => Some(to.to_string()),
                    None => start.and_then(Snapshot::current_label),
                };
                let to = to.filter(|t| t != "base");
                let undone = alembic::run::downgrade_plan(a, to.as_deref())?;
                Ok(UndoPlan::Alembic { to, undone })
            }
        }
    }

    /// The refusal a downgrade to `to` (as the user wrote it) would meet, known from
    /// this state alone: a pipeline whose first change is a downgrade refuses in its
    /// state check, before its backup.
    pub fn undo_refusal(&self, to: &str) -> Option<String> {
        let named = match self.resolve_goal(to) {
            Ok(named) => named,
            Err(e) => return Some(format!("cannot downgrade: {e}; nothing was changed")),
        };
        match self {
            Snapshot::Alembic(a) => {
                let to = Some(named.as_str()).filter(|t| *t != "base");
                let problems = a.downgrade_problems(to);
                (!problems.is_empty()).then(|| {
                    format!(
                        "cannot downgrade to {}: {}; nothing was changed",
                        to.unwrap_or("base"),
                        problems.join("; ")
                    )
                })
            }
            Snapshot::Sql(s) => sql::undo::refusal(s, &UndoGoal::To(named)).map(|e| e.to_string()),
        }
    }

    /// Runs a checked downgrade: a one-line summary of what it undid, and a report of
    /// what else the run must know (the undone migrations are in the summary only).
    pub async fn undo(
        &self,
        plan: &UndoPlan,
        conn: &mut PgConnection,
        run: &RunFacts,
    ) -> Result<(String, Report), ChangeError> {
        let started = std::time::Instant::now();
        match (self, plan) {
            (Snapshot::Sql(_), UndoPlan::Sql(undo)) => {
                let undone = sql::undo::run(conn, undo, run).await?;
                let summary = format!(
                    "{} undone ({}) in {}; now at {}",
                    crate::text::migrations_count(undone.len()),
                    undone.join(", "),
                    crate::text::human_duration(started.elapsed().as_millis() as u64),
                    undo.ends_at
                );
                Ok((summary, Report::default()))
            }
            (Snapshot::Alembic(a), UndoPlan::Alembic { to, undone }) => {
                let reverted = alembic::run::downgrade(a, to.as_deref(), undone, run)
                    .await
                    .map_err(|mut e| {
                        e.report.connection_lost = true;
                        e
                    })?;
                let summary = format!(
                    "downgraded to {}: {} reverted ({})",
                    to.as_deref().unwrap_or("base"),
                    reverted.revisions.len(),
                    reverted.revisions.join(", ")
                );
                // As after an upgrade: the run's idle session is replaced.
                let report = Report {
                    connection_lost: true,
                    ..Report::default()
                };
                Ok((summary, report))
            }
            _ => Err(ChangeError::refused(
                "the downgrade was planned for another engine",
            )),
        }
    }
}
