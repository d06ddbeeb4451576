//! The run context: what stages hand each other during one run.

use sqlx::postgres::PgConnection;
use uuid::Uuid;

use crate::backup::Artifact;
use crate::config::Settings;
use crate::db::lock::DeployLock;
use crate::db::schema_shape::{self, SchemaShape};
use crate::db::table_writes::TableWrites;
use crate::db::{self, DbError, ServerInfo};
use crate::engine::change::{Before, Report, RunFacts, Stop};
use crate::engine::{Engine, Snapshot};
use crate::events::Events;
use crate::pipeline::journal::Journal;
use crate::plan::Plan;
use crate::storage::{Listed, Storage, StorageError};

/// How the person started the run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--yes`: skip the confirmation prompt.
    pub assume_yes: bool,
    /// `--allow-risky`: deploy despite error-level lint findings.
    pub allow_risky: bool,
    /// `--phase`: the release phase whose migrations the upgrade runs (`None`: all).
    pub phase: Option<crate::migrations::Phase>,
    /// `ballast rehearse --from`: the backup a rehearsal restores (`latest`, or an id)
    /// instead of this run's.
    pub rehearse_from: Option<String>,
    /// `ballast rehearse --report FILE.html`: where the rehearsal's page goes.
    pub rehearsal_report: Option<std::path::PathBuf>,
}

pub struct RunContext {
    settings: Settings,
    options: RunOptions,
    run_id: Uuid,
    events: Events,
    pub(in crate::pipeline) journal: Journal,
    conn: Option<PgConnection>,
    storage: Option<Storage>,
    server: Option<ServerInfo>,
    /// The state as the run found it (first snapshot taken).
    start: Option<Snapshot>,
    /// The plan the preview showed; the upgrade re-checks it under the lock.
    plan: Option<Plan>,
    backup: Option<Artifact>,
    /// The pipeline has a backup stage (the preflight checks pg_dump and storage).
    takes_backup: bool,
    /// The pipeline's recovery ladder may restore this run's backup.
    restores_on_failure: bool,
    /// The pipeline's first changing stage and its `to`: the confirmation asks about it,
    /// and a backup before it takes the deploy lock, so the restore point is the state
    /// the change starts from.
    first_change: Option<(crate::pipeline::StageKind, Option<String>)>,
    /// The lint's findings on the previewed plan.
    findings: Vec<crate::lint::Finding>,
    /// Versions committed by this run, in order.
    committed: Vec<String>,
    /// Versions whose transaction rolled back.
    rolled_back: Vec<String>,
    /// Set when the upgrade started changing the database.
    upgrade_started: bool,
    /// Set when a commit's outcome is unknown (the connection died during COMMIT).
    outcome_unknown: bool,
    /// The versions of an upgrade batch whose COMMIT got no answer: the runner looks
    /// them up in the ledger before it decides anything.
    commit_unknown: Vec<String>,
    /// The backend pid of the session that sent that COMMIT: it may still be
    /// finishing it, and the ledger tells only once it has ended.
    commit_unknown_pid: Option<i32>,
    /// The backend pid of the changing session (see [`RunContext::begin_changing`]).
    session_pid: Option<i32>,
    /// Changes left that are not whole migrations (also listed in `committed`).
    partial: Vec<PartialChange>,
    /// The schema's shape right before the upgrade changed anything: a recovery rung
    /// claims "back where the run started" only when the shape matches it again.
    schema_before: Option<SchemaShape>,
    /// The schemas that shape covers (`None`: all of them).
    shape_scope: Option<schema_shape::Scope>,
    /// Rows written per table when the backup started, to tell what a restore loses.
    writes_at_backup: Option<TableWrites>,
    /// Where the upgrade goes when not to the head: the pipeline's upgrade stage's `to`
    /// (preview, upgrade and verify all aim there).
    upgrade_goal: Option<String>,
    /// The deploy lock, from the first stage that changes the database to the run's
    /// end (`stages::deploy_lock::hold` takes it, the runner releases it).
    deploy_lock: Option<DeployLock>,
    /// The main session is changing the database: a new one is readied the same way
    /// (see [`RunContext::begin_changing`]).
    changing: bool,
    /// `ballast restore`: the backup a person chose to put back, and where.
    restore_choice: Option<RestoreChoice>,
    /// The revision the target was at, read by a run without a state check (a restore
    /// in place reads it before it replaces the target).
    revision_found: Option<Option<String>>,
    /// A restore replaced the target: the revision the restored database is at.
    replaced_with: Option<Option<String>>,
    /// What is left for a person to do, whatever the outcome (drop the database a
    /// restore kept aside).
    next_steps: Vec<String>,
    /// The rehearsal's numbers, for the question.
    rehearsed: Option<String>,
    /// The pipeline has a rehearse stage.
    rehearses: bool,
    /// The configured engine, opened with the run: it keeps what does not change
    /// within a run (Alembic's graph, and where its connection was proven to go).
    engine: Engine,
}

pub use crate::engine::change::PartialChange;

/// The backup `ballast restore` puts back, as the person chose it, and where.
#[derive(Debug, Clone)]
pub struct RestoreChoice {
    pub backup: Listed,
    /// `--into`: a new database; `None`: in place of the configured target.
    pub into: Option<String>,
}

impl RunContext {
    pub fn new(
        settings: Settings,
        options: RunOptions,
        events: Events,
        pipeline: &str,
    ) -> RunContext {
        let run_id = Uuid::new_v4();
        let journal = Journal::new(
            settings.backup.dir.clone(),
            &run_id.to_string(),
            pipeline,
            &settings.database.display_url(),
            &settings.database.schema,
        );
        let engine = Engine::open(&settings);
        RunContext {
            settings,
            options,
            run_id,
            events,
            journal,
            conn: None,
            storage: None,
            server: None,
            start: None,
            plan: None,
            backup: None,
            findings: Vec::new(),
            takes_backup: false,
            restores_on_failure: false,
            first_change: None,
            committed: Vec::new(),
            rolled_back: Vec::new(),
            upgrade_started: false,
            outcome_unknown: false,
            commit_unknown: Vec::new(),
            commit_unknown_pid: None,
            session_pid: None,
            partial: Vec::new(),
            schema_before: None,
            shape_scope: None,
            writes_at_backup: None,
            deploy_lock: None,
            changing: false,
            upgrade_goal: None,
            restore_choice: None,
            revision_found: None,
            replaced_with: None,
            next_steps: Vec::new(),
            rehearsed: None,
            rehearses: false,
            engine,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// Where the run's events go (cheap to clone: clones share the reporter).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The state as the run found it (its first snapshot), once read.
    pub fn start(&self) -> Option<&Snapshot> {
        self.start.as_ref()
    }

    /// The plan the preview showed (or the upgrade found, without a preview).
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// The lint's findings on the previewed plan.
    pub fn findings(&self) -> &[crate::lint::Finding] {
        &self.findings
    }

    /// This run's backup, once taken.
    pub fn backup(&self) -> Option<&Artifact> {
        self.backup.as_ref()
    }

    /// The pipeline has a backup stage (the preflight checks pg_dump and storage).
    pub fn takes_backup(&self) -> bool {
        self.takes_backup
    }

    /// Whether the pipeline's recovery ladder may restore this run's backup.
    pub fn restores_on_failure(&self) -> bool {
        self.restores_on_failure
    }

    /// The pipeline's first changing stage and its `to`.
    pub fn first_change(&self) -> Option<&(crate::pipeline::StageKind, Option<String>)> {
        self.first_change.as_ref()
    }

    /// Versions committed by this run, in order (and what else changed, in words).
    pub fn committed(&self) -> &[String] {
        &self.committed
    }

    /// Versions whose transaction rolled back.
    pub fn rolled_back(&self) -> &[String] {
        &self.rolled_back
    }

    /// Changes left that are not whole migrations.
    pub fn partial(&self) -> &[PartialChange] {
        &self.partial
    }

    /// Whether a changing stage began changing the database (from then on the
    /// runner proves "unchanged" from the database rather than assume it).
    pub fn changes_started(&self) -> bool {
        self.upgrade_started
    }

    /// Whether a COMMIT's outcome is unknown (the connection died during it).
    pub fn outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// The schema's shape right before the upgrade changed anything.
    pub fn schema_before(&self) -> Option<&SchemaShape> {
        self.schema_before.as_ref()
    }

    /// Rows written per table when the backup started.
    pub fn writes_at_backup(&self) -> Option<&TableWrites> {
        self.writes_at_backup.as_ref()
    }

    /// Where the upgrade goes when not to the head.
    pub fn upgrade_goal(&self) -> Option<&str> {
        self.upgrade_goal.as_deref()
    }

    /// The backup `ballast restore` puts back, and where.
    pub fn restore_choice(&self) -> Option<&RestoreChoice> {
        self.restore_choice.as_ref()
    }

    /// The revision the target was at, when a stage other than the state check read
    /// it (`Some(None)`: no revision).
    pub fn revision_found(&self) -> Option<&Option<String>> {
        self.revision_found.as_ref()
    }

    /// The revision of the database a restore put in the target's place.
    pub fn replaced_with(&self) -> Option<&Option<String>> {
        self.replaced_with.as_ref()
    }

    /// What is left for a person to do, whatever the outcome.
    /// What the rehearsal measured, in one line (none ran: `None`).
    pub fn rehearsal(&self) -> Option<&str> {
        self.rehearsed.as_deref()
    }

    /// Whether the pipeline rehearses (its preflight checks the copy can be made).
    pub fn rehearses(&self) -> bool {
        self.rehearses
    }

    pub fn set_rehearsal(&mut self, summary: String) {
        self.rehearsed = Some(summary);
    }

    pub fn next_steps(&self) -> &[String] {
        &self.next_steps
    }

    /// Server facts, when the run has connected.
    pub fn server_known(&self) -> Option<&ServerInfo> {
        self.server.as_ref()
    }

    /// The person chose the backup to put back (`ballast restore`), and where.
    pub fn choose_backup(&mut self, choice: RestoreChoice) {
        self.restore_choice = Some(choice);
    }

    /// The target was at `revision` before the run changed it (read without a state
    /// check).
    pub fn found_at(&mut self, revision: Option<String>) {
        self.revision_found = Some(revision);
    }

    /// A restore replaced the target with a database at `revision`.
    pub fn target_replaced(&mut self, revision: Option<String>) {
        self.replaced_with = Some(revision);
    }

    /// Something a person must do after the run, whatever its outcome.
    pub fn leave_next_step(&mut self, step: String) {
        self.next_steps.push(step);
    }

    /// The run is about to run `pipeline`: what its stages need to know of it (it
    /// takes a backup; its first change; where preview, upgrade and verify aim: an
    /// upgrade's `to`, or the `to` of a pipeline that only downgrades).
    pub fn set_course(&mut self, pipeline: &crate::pipeline::Pipeline) {
        use crate::pipeline::StageKind;
        self.takes_backup = pipeline.takes_backup();
        self.rehearses = pipeline.rehearses();
        self.restores_on_failure = pipeline.restores_on_failure();
        self.first_change = pipeline.first_change().map(|s| (s.kind, s.to.clone()));
        let to_of = |kind| {
            pipeline
                .stages
                .iter()
                .find(|s| s.kind == kind)
                .map(|s| s.to.clone())
        };
        self.upgrade_goal = match (to_of(StageKind::Upgrade), to_of(StageKind::Downgrade)) {
            (Some(to), _) => to,
            // A relative `-1` is resolved against the state the downgrade stage finds,
            // which then puts the migration it named here.
            (None, Some(to)) => to,
            (None, None) => None,
        };
    }

    /// The upgrade (and verify) aim at `goal` from now on (`None`: the head); what
    /// they aimed at before.
    pub fn aim_upgrade(&mut self, goal: Option<String>) -> Option<String> {
        std::mem::replace(&mut self.upgrade_goal, goal)
    }

    /// The preview showed `plan`, and the lint found `findings` in it.
    pub fn previewed(&mut self, plan: Plan, findings: Vec<crate::lint::Finding>) {
        self.plan = Some(plan);
        self.findings = findings;
    }

    /// The upgrade found `plan` with no preview before it.
    pub fn planned_without_preview(&mut self, plan: Plan) {
        if self.plan.is_none() {
            self.plan = Some(plan);
        }
    }

    /// The plan no longer holds (the round trip's second upgrade plans anew).
    pub fn forget_plan(&mut self) {
        self.plan = None;
    }

    /// The backup is about to start: rows written per table until now (`None`: not
    /// measured), to tell later what a restore would lose.
    pub fn measured_writes(&mut self, writes: Option<TableWrites>) {
        self.writes_at_backup = writes;
    }

    /// This run's backup is written and verified.
    pub fn backed_up(&mut self, artifact: Artifact) {
        self.backup = Some(artifact);
    }

    /// A changing stage began changing the database.
    pub fn mark_changes_started(&mut self) {
        self.upgrade_started = true;
    }

    /// The schema shape is read over `scope` from now on.
    pub fn scope_shape_to(&mut self, scope: schema_shape::Scope) {
        self.shape_scope = Some(scope);
    }

    /// The INVALID index `name` was dropped: no longer a change left behind.
    pub fn invalid_index_dropped(&mut self, name: &str) {
        self.partial
            .retain(|p| !matches!(p, PartialChange::InvalidIndex { name: n, .. } if n == name));
        self.committed
            .retain(|c| !c.starts_with(&format!("INVALID index {name} ")));
    }

    /// The versions whose COMMIT got no answer and the pid of the session that sent
    /// it, handed to the runner to settle (they are forgotten here).
    pub fn take_unknown_commit(&mut self) -> (Vec<String>, Option<i32>) {
        (
            std::mem::take(&mut self.commit_unknown),
            self.commit_unknown_pid.take(),
        )
    }

    /// The runner read the ledger again: what committed is known.
    pub fn outcome_settled(&mut self) {
        self.outcome_unknown = false;
    }

    /// The deploy lock's place: the stage that takes it puts it here, the runner
    /// releases it at the end, an in-place restore lets it go just for the rename.
    pub fn deploy_lock_slot(&mut self) -> &mut Option<DeployLock> {
        &mut self.deploy_lock
    }

    /// A stage (or a recovery rung) ended: journaled as it is reported.
    pub fn journal_stage(&mut self, record: &crate::events::StageRecord) {
        self.journal.stage(record);
    }

    /// The run's main connection, opened on first use.
    pub async fn conn(&mut self) -> Result<&mut PgConnection, DbError> {
        if self.conn.is_none() {
            let mut conn = db::connect(&self.settings.database, "deploy").await?;
            self.server = Some(db::server_info(&mut conn).await?);
            if self.changing {
                self.session_pid =
                    db::prepare_changing_session(&mut conn, &self.settings.database).await;
            }
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connection opened above"))
    }

    /// The backup storage, opened on first use and shared by every stage of the run
    /// (one S3 client and connection pool per run).
    pub async fn storage(&mut self) -> Result<Storage, StorageError> {
        if self.storage.is_none() {
            self.storage = Some(Storage::open(&self.settings.backup).await?);
        }
        Ok(self.storage.clone().expect("opened above"))
    }

    /// Server facts (connects if needed).
    pub async fn server(&mut self) -> Result<ServerInfo, DbError> {
        self.conn().await?;
        Ok(self.server.clone().expect("set when connecting"))
    }

    /// Drops the main connection (after an error that may have left it unusable). A
    /// Ctrl-C no longer cancels by its pid: the next session registers its own.
    pub async fn reset_conn(&mut self) {
        if let Some(conn) = self.conn.take() {
            crate::interrupt::forget_backend();
            db::close(conn).await;
        }
    }

    /// The main session is about to change the database, and so is every session that
    /// replaces it until [`RunContext::end_changing`]: see
    /// [`db::prepare_changing_session`].
    pub async fn begin_changing(&mut self) -> Result<(), DbError> {
        self.changing = true;
        let database = self.settings.database.clone();
        let conn = self.conn().await?;
        self.session_pid = db::prepare_changing_session(conn, &database).await;
        Ok(())
    }

    /// The changing stage ended: a Ctrl-C no longer cancels a statement.
    pub fn end_changing(&mut self) {
        self.changing = false;
        crate::interrupt::set_canceller(None);
    }

    /// Lets the deploy lock go (the run's end).
    pub async fn release_deploy_lock(&mut self) {
        if let Some(lock) = self.deploy_lock.take() {
            lock.release().await;
        }
    }

    /// A transaction over `versions` committed: they are applied.
    pub fn record_committed(&mut self, versions: Vec<String>) {
        // A batch retried after a lock timeout rolled back before it committed.
        self.rolled_back.retain(|v| !versions.contains(v));
        // Committed again (the round trip's second upgrade): listed once, last.
        self.committed.retain(|v| !versions.contains(v));
        self.committed.extend(versions.iter().cloned());
        self.events
            .emit(crate::events::Event::Committed { versions });
    }

    /// A transaction over `versions` rolled back: none of them is applied.
    pub fn record_rolled_back(&mut self, versions: Vec<String>) {
        for v in &versions {
            if !self.rolled_back.contains(v) {
                self.rolled_back.push(v.clone());
            }
        }
        self.events
            .emit(crate::events::Event::RolledBack { versions });
    }

    /// Something changed that is not a whole migration (a half-run no-transaction
    /// migration, an INVALID index): reported with the committed work, so the run can
    /// never call itself unchanged.
    pub fn record_partial_change(&mut self, what: String) {
        self.committed.push(what.clone());
        self.partial.push(PartialChange::Other(what));
    }

    /// A failed `CREATE INDEX CONCURRENTLY` in `migration` left the INVALID index `name`.
    pub fn record_invalid_index(&mut self, name: String, migration: String) {
        self.committed.push(format!(
            "INVALID index {name} left by {migration} (drop it with DROP INDEX CONCURRENTLY {name})"
        ));
        self.partial
            .push(PartialChange::InvalidIndex { name, migration });
    }

    /// What an engine is told about this run before it changes the database.
    pub async fn run_facts(&mut self) -> Result<RunFacts, DbError> {
        let server_major = self.server().await?.major;
        let before = self.schema_before.clone().map(|shape| Before {
            shape,
            scope: self.shape_scope.clone(),
            bookkeeping: self.bookkeeping_tables(),
            writes_at_backup: self.writes_at_backup.clone(),
        });
        Ok(RunFacts {
            run_id: self.run_id,
            settings: self.settings.clone(),
            events: self.events.clone(),
            server_major,
            before,
            trace: None,
        })
    }

    /// An engine's change ended (applied, or stopped): records what its report says
    /// committed, what rolled back, what it left half-done.
    pub async fn record_change(&mut self, report: Report) {
        if !report.committed.is_empty() {
            self.record_committed(report.committed);
        }
        for partial in report.partial {
            match partial {
                PartialChange::Other(what) => self.record_partial_change(what),
                PartialChange::InvalidIndex { name, migration } => {
                    self.record_invalid_index(name, migration)
                }
            }
        }
        if !report.rolled_back.is_empty() {
            self.record_rolled_back(report.rolled_back);
        }
        if !report.commit_unknown.is_empty() {
            self.commit_unknown.extend(report.commit_unknown);
            // That session may still be finishing the COMMIT.
            self.commit_unknown_pid = self.session_pid;
        }
        self.outcome_unknown |= report.outcome_unknown;
        if report.connection_lost {
            self.reset_conn().await;
        }
    }

    /// The stage error for an engine's change that stopped: a refusal only while the
    /// run has changed nothing.
    pub fn stage_error(&self, kind: Stop, message: String) -> crate::pipeline::StageError {
        use crate::pipeline::StageError;
        let unchanged = self.committed.is_empty() && !self.outcome_unknown;
        match kind {
            Stop::Refused if unchanged => StageError::Refused(message),
            _ => StageError::Failed(message),
        }
    }

    /// `schema.table` of the tables that hold migration state rather than schema:
    /// ballast's ledger and journal, and Alembic's version table.
    pub fn bookkeeping_tables(&self) -> Vec<String> {
        let schema = &self.settings.database.schema;
        let mut tables = vec![
            format!("{schema}.{}", crate::db::ledger::TABLE),
            format!("{schema}.{}", crate::db::journal_table::TABLE),
        ];
        tables.extend(self.engine.own_tables(&self.settings, self.start.as_ref()));
        tables
    }

    /// Takes the shape the recovery ladder must bring the schema back to, scoped to the
    /// schemas this run can change: its own, the version table's, the search path's,
    /// and any that `snap`'s migration files name.
    pub async fn take_schema_before(&mut self, snap: &Snapshot) -> Result<(), DbError> {
        self.shape_scope = Some(self.scope_of(snap).await?);
        self.schema_before = Some(self.schema_shape().await?);
        Ok(())
    }

    /// What this run can change: its own schema, the version table's, the search
    /// path's, and whatever `snap`'s migration files name.
    pub async fn scope_of(&mut self, snap: &Snapshot) -> Result<schema_shape::Scope, DbError> {
        let mut always = vec![self.settings.database.schema.clone()];
        always.extend(self.engine.own_schemas(&self.settings, self.start.as_ref()));
        let search_path: Vec<String> =
            sqlx::query_scalar("select unnest(current_schemas(false))::text")
                .fetch_all(self.conn().await?)
                .await
                .map_err(|e| DbError::query("reading the search path", &e))?;
        always.extend(search_path);
        Ok(schema_shape::Scope {
            always,
            texts: snap.source_texts(),
            everything: snap.may_cascade(self.plan.as_ref()),
        })
    }

    /// The schema's shape now, without the bookkeeping tables.
    pub async fn schema_shape(&mut self) -> Result<SchemaShape, DbError> {
        let bookkeeping = self.bookkeeping_tables();
        let scope = self.shape_scope.clone();
        SchemaShape::read(self.conn().await?, &bookkeeping, scope.as_ref()).await
    }

    /// A fresh snapshot aimed at the upgrade's goal (the head without one).
    pub async fn goal_snapshot(&mut self) -> Result<Snapshot, crate::pipeline::StageError> {
        let snap = self.snapshot().await?;
        self.aimed(snap)
    }

    /// [`RunContext::goal_snapshot`], proving Alembic's connection first.
    pub async fn proven_goal_snapshot(&mut self) -> Result<Snapshot, crate::pipeline::StageError> {
        let snap = self.proven_snapshot().await?;
        self.aimed(snap)
    }

    /// `snap` aimed at the upgrade's goal, and cut to the run's phase.
    fn aimed(&self, snap: Snapshot) -> Result<Snapshot, crate::pipeline::StageError> {
        snap.aimed(self.upgrade_goal.as_deref(), self.options.phase)
            .map_err(crate::pipeline::StageError::Refused)
    }

    /// `snap` cut to the run's release phase (`--phase`; without one, as it is).
    pub fn phased(&self, snap: Snapshot) -> Result<Snapshot, crate::pipeline::StageError> {
        snap.in_phase(self.options.phase)
            .map_err(|e| crate::pipeline::StageError::Refused(e.to_string()))
    }

    /// The target's revision read from the database alone (a restore needs no
    /// migration files).
    pub async fn current_revision(&mut self) -> Result<Option<String>, DbError> {
        self.conn().await?;
        let conn = self.conn.as_mut().expect("connected above");
        self.engine.current_revision(&self.settings, conn).await
    }

    /// A fresh snapshot; the first one taken is kept as the run's starting state. It
    /// runs no env.py (which may write, and a refused run must change nothing) unless
    /// an earlier stage proved Alembic's connection.
    pub async fn snapshot(&mut self) -> Result<Snapshot, crate::engine::EngineError> {
        self.snapshot_proving(false).await
    }

    /// A fresh snapshot for a stage about to run an Alembic child: the first one of the
    /// run proves where Alembic's connection goes ([`crate::engine::alembic::reach`]).
    pub async fn proven_snapshot(&mut self) -> Result<Snapshot, crate::engine::EngineError> {
        self.snapshot_proving(true).await
    }

    async fn snapshot_proving(
        &mut self,
        prove: bool,
    ) -> Result<Snapshot, crate::engine::EngineError> {
        self.conn().await?;
        let conn = self.conn.as_mut().expect("opened above");
        let snap = self.engine.snapshot(&self.settings, conn, prove).await?;
        if self.start.is_none() {
            self.start = Some(snap.clone());
        }
        Ok(snap)
    }

    /// The run's facts as environment variables, for hooks and `shell` stages.
    pub fn hook_env(&self, summary: Option<&crate::events::RunSummary>) -> Vec<(String, String)> {
        let ctx = self;
        let mut env = vec![
            ("BALLAST_RUN_ID".to_string(), ctx.run_id.to_string()),
            (
                "BALLAST_DATABASE".to_string(),
                ctx.settings.database.display_url(),
            ),
            (
                "BALLAST_BACKUP".to_string(),
                ctx.backup
                    .as_ref()
                    .map(|a| a.location.clone())
                    .unwrap_or_default(),
            ),
        ];
        if let Some(s) = summary {
            env.push(("BALLAST_PIPELINE".into(), s.pipeline.clone()));
            env.push((
                "BALLAST_FAILED_STAGE".into(),
                s.failed_stage.clone().unwrap_or_default(),
            ));
            env.push((
                "BALLAST_OUTCOME".into(),
                serde_json::to_value(s.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ));
            env.push(("BALLAST_EXIT_CODE".into(), s.exit_code.to_string()));
        }
        env
    }
}
