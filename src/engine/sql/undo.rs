//! The `sql` engine's undo: runs the down files of applied migrations, newest first,
//! and deletes their ledger rows. The `downgrade` stage holds the deploy lock.
//!
//! Everything that would make a down unsafe is found before anything runs, for every
//! migration on the way: no down file, no migration file at all, a file edited since it
//! was applied (its down belongs to other SQL), an empty down, `BEGIN`/`COMMIT` in a
//! down that runs in a transaction. Then, as the upgrade applies: consecutive
//! transactional downs run in ONE transaction with the deletion of their ledger rows,
//! so a failure leaves none of them undone; a `-- no-transaction` down runs alone,
//! statement by statement, and its row is deleted when it completes. A failure says
//! which migrations were undone before it and which are still applied.

use std::collections::HashSet;

use sqlx::postgres::PgConnection;
use sqlx::Executor;

use super::alone::{run_alone, statement_failed, INTERRUPTED};
use super::ledger::Ledger;
use super::transaction::{in_one_transaction, Body, Ended};
use super::SqlSnapshot;
use crate::db::ledger::AppliedRow;
use crate::db::{DbError, SqlFailure};
use crate::engine::change::{ChangeError, Report, RunFacts, Stop, StoppedAt};
use crate::engine::goal::UndoRefused;
use crate::events::{Events, Severity};
use crate::migrations::source::marked_no_transaction;
use crate::migrations::split::transaction_control;
use crate::migrations::{Migration, Version};

/// Where the downgrade goes.
#[derive(Debug, Clone)]
pub enum UndoGoal {
    /// The stage's `to`: undo every applied migration newer than this version (or
    /// `VERSION_NAME` label); `base` undoes them all.
    To(String),
    /// No `to` (the recovery ladder): undo what is applied now and was not in the
    /// run's starting state, i.e. exactly what this run applied.
    Start(Box<SqlSnapshot>),
}

/// The refusal a downgrade to `target` would meet, read from the files and the ledger
/// alone (a pipeline asks before its backup).
pub fn refusal(snap: &SqlSnapshot, target: &UndoGoal) -> Option<UndoRefused> {
    plan(snap, target).err()
}

/// Undoes `undo`'s steps, newest first; the labels undone, or what stopped it with
/// what was undone before.
pub async fn run(
    conn: &mut PgConnection,
    undo: &Undo,
    run: &RunFacts,
) -> Result<Vec<String>, ChangeError> {
    let mut progress = Progress {
        started: 0,
        total: undo.steps.len(),
        undone: Vec::new(),
        unknown: Vec::new(),
        report: Report::default(),
    };
    for batch in crate::migrations::batches(&undo.steps, |s| s.transactional) {
        let done = if crate::interrupt::requested() {
            Err(stop(INTERRUPTED))
        } else if batch[0].transactional {
            undo_together(conn, batch, &mut progress, run).await
        } else {
            undo_alone(conn, &batch[0], &mut progress, run).await
        };
        if let Err(stopped) = done {
            return Err(ChangeError {
                message: progress.account(&stopped.message, &undo.steps),
                report: progress.report,
                ..stopped
            });
        }
    }
    Ok(progress.undone)
}

/// One migration to undo, checked and ready to run.
#[derive(Debug, Clone)]
pub struct Step {
    /// The ledger row's version as stored: the row this step deletes.
    version: String,
    /// The migration's version as ballast's own record stores it.
    own_version: String,
    /// The ledger the row is in.
    ledger: Ledger,
    /// The applied version just before it (golang-migrate's row goes back to it).
    previous: Option<String>,
    label: String,
    down_sql: String,
    /// Where the down file is, for messages (when it has the expected name).
    down_file: Option<String>,
    transactional: bool,
    /// For a down run alone: the statement to start at (counted from 0).
    from_statement: usize,
}

impl Step {
    /// Deletes the step's ledger row (and ballast's record of it).
    async fn remove_row(&self, conn: &mut PgConnection, schema: &str) -> Result<bool, DbError> {
        self.ledger
            .remove(
                conn,
                schema,
                &self.own_version,
                &self.version,
                self.previous.as_deref(),
            )
            .await
    }
}

/// A checked downgrade.
#[derive(Debug)]
pub struct Undo {
    /// Newest first.
    pub steps: Vec<Step>,
    /// Where the database is once every step ran.
    pub ends_at: String,
    /// The skip reason when there is nothing to undo.
    pub already: String,
}

impl Undo {
    /// Starts the first step, a down run alone, at the statement where an earlier
    /// attempt stopped; false when the first step is not that down.
    pub fn resume_at(&mut self, at: &StoppedAt) -> bool {
        match self.steps.first_mut() {
            Some(step) if !step.transactional && step.version == at.version => {
                step.from_statement = at.statement;
                true
            }
            _ => false,
        }
    }
}

/// What to undo and in which order, or the refusal (every offending migration named).
pub fn plan(snap: &SqlSnapshot, target: &UndoGoal) -> Result<Undo, UndoRefused> {
    let rows = rows_to_undo(snap, target)?;
    let mut steps = Vec::new();
    let mut problems = Vec::new();
    for row in &rows {
        match step(snap, row) {
            Ok(step) => steps.push(step),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        let goal = match target {
            UndoGoal::To(to) => format!("downgrade to {to}"),
            UndoGoal::Start(_) => "go back to where the run started".to_string(),
        };
        return Err(UndoRefused::Unsafe {
            goal,
            problems,
            instead: "restore the run's backup instead",
        });
    }
    let undone: HashSet<&str> = rows.iter().map(|r| r.version.as_str()).collect();
    let left: Vec<AppliedRow> = snap
        .applied
        .iter()
        .filter(|r| !undone.contains(r.version.as_str()))
        .cloned()
        .collect();
    let ends_at = label_of_newest(snap, &left);
    let already = match target {
        UndoGoal::To(to)
            if *to == ends_at || Version::parse(to).is_some_and(|v| is_at(&left, &v)) =>
        {
            format!("already at {ends_at}")
        }
        UndoGoal::To(to) => format!("already at {ends_at}: nothing applied is newer than {to}"),
        UndoGoal::Start(start) if same_versions(&start.applied, &snap.applied) => {
            format!("already at {ends_at}, where the run started")
        }
        UndoGoal::Start(_) => {
            format!("already at {ends_at}: nothing applied since the run started is left")
        }
    };
    Ok(Undo {
        steps,
        ends_at,
        already,
    })
}

/// The applied rows the target undoes, newest first.
fn rows_to_undo<'a>(
    snap: &'a SqlSnapshot,
    target: &UndoGoal,
) -> Result<Vec<&'a AppliedRow>, UndoRefused> {
    let mut rows: Vec<&AppliedRow> = match target {
        UndoGoal::Start(start) => {
            let before: HashSet<&str> = start.applied.iter().map(|r| r.version.as_str()).collect();
            snap.applied
                .iter()
                .filter(|r| !before.contains(r.version.as_str()))
                .collect()
        }
        UndoGoal::To(to) => {
            // In the order the folder's tool runs them (diesel's is text order). A
            // row that is no version counts as newer and the checks below refuse it
            // (no file has it).
            // Flyway's repeatable migrations stay: they have no version to go back
            // past, and Flyway's own undo leaves them as they are.
            let to = target_version(snap, to)?.map(|v| snap.order_key(v.as_str()));
            snap.applied
                .iter()
                .filter(|r| !Version::parse(&r.version).is_some_and(|v| v.is_repeatable()))
                .filter(|r| {
                    to.as_ref()
                        .is_none_or(|to| snap.order_key(&r.version) > *to)
                })
                .collect()
        }
    };
    rows.sort_by_key(|r| std::cmp::Reverse(snap.order_key(&r.version)));
    Ok(rows)
}

/// The version `to` names (`None` for `base`), refusing one that is neither applied
/// nor a migration file: a typo must never undo everything.
fn target_version(snap: &SqlSnapshot, to: &str) -> Result<Option<Version>, UndoRefused> {
    if to.eq_ignore_ascii_case("base") {
        return Ok(None);
    }
    let (prefix, name) = match to.split_once('_') {
        Some((prefix, name)) => (prefix, Some(name)),
        None => (to, None),
    };
    let Some(version) = Version::parse(prefix) else {
        return Err(UndoRefused::NotAVersion { to: to.into() });
    };
    let file = snap.source.iter().find(|m| m.version == version);
    if let (Some(file), Some(name)) = (file, name) {
        if file.name != name {
            return Err(UndoRefused::OtherName {
                to: to.into(),
                version: version.to_string(),
                label: file.label(),
            });
        }
    }
    if file.is_none() && !is_at(&snap.applied, &version) {
        let applied: Vec<String> = sorted_labels(snap);
        return Err(UndoRefused::NoSuchVersion {
            to: to.into(),
            version: version.to_string(),
            applied: match applied.is_empty() {
                true => "none".to_string(),
                false => applied.join(", "),
            },
        });
    }
    Ok(Some(version))
}

/// Checks one applied row's down and makes it a step; `Err` names what is wrong.
fn step(snap: &SqlSnapshot, row: &AppliedRow) -> Result<Step, String> {
    let file =
        Version::parse(&row.version).and_then(|v| snap.source.iter().find(|m| m.version == v));
    let Some(m) = file else {
        return Err(format!(
            "{} is applied but its migration file is gone, so there is no down to run",
            snap.row_label(row)
        ));
    };
    let mut wrong = Vec::new();
    let ledger = snap.ledger.ledger.clone();
    if ledger.tool() == Some(crate::migrations::Tool::Flyway) && row.applied_at.is_none() {
        // Counted as applied by Flyway's BASELINE row: Flyway never ran it, and keeps
        // no row of it to take back.
        return Err(format!(
            "{} is at or below Flyway's baseline: Flyway never ran it and keeps no row of it, so a downgrade cannot go below the baseline",
            m.label()
        ));
    }
    if ledger
        .checksum_of(m)
        .is_some_and(|checksum| checksum != row.checksum)
    {
        wrong.push(format!(
            "{} changed since it was applied, so its down may not undo what ran",
            m.up_path.display()
        ));
    }
    let down_file = down_file(m);
    let down_sql = m.down_sql.clone().unwrap_or_default();
    let transactional = down_runs_in_transaction(m, &down_sql);
    if let Some(problem) = m.down_problem() {
        wrong.push(problem.to_string());
    } else if let Some(statement) = transaction_control(&down_sql).filter(|_| transactional) {
        wrong.push(format!(
            "`{}` on line {} of its down file would end the downgrade's transaction early \
             (remove it, or make `-- no-transaction` the file's first line)",
            statement.sql, statement.line
        ));
    }
    if !wrong.is_empty() {
        return Err(format!("{}: {}", m.label(), wrong.join(", and ")));
    }
    let previous = snap
        .applied
        .iter()
        .filter_map(|r| Version::parse(&r.version).map(|v| (v, r)))
        .filter(|(v, _)| *v < m.version)
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, r)| r.version.clone());
    Ok(Step {
        version: row.version.clone(),
        own_version: m.version.to_string(),
        ledger,
        previous,
        label: m.label(),
        down_sql,
        down_file,
        transactional,
        from_statement: 0,
    })
}

/// A down runs outside a transaction when its own first line says `-- no-transaction`,
/// or when diesel's `metadata.toml` says `run_in_transaction = false`: that is about the
/// whole migration, and it is the case when the up runs alone without the marker.
fn down_runs_in_transaction(m: &Migration, down_sql: &str) -> bool {
    m.down_transactional && !marked_no_transaction(down_sql)
}

/// The down file beside the up (`N_x.down.sql`, or diesel's `down.sql`). The source
/// pairs them by version only, so a down under another name is not found here.
fn down_file(m: &Migration) -> Option<String> {
    let up = &m.up_path;
    let name = up.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let down = if name == "up.sql" {
        up.with_file_name("down.sql")
    } else {
        let stem = name.strip_suffix(".sql").unwrap_or(name);
        let stem = stem.strip_suffix(".up").unwrap_or(stem);
        up.with_file_name(format!("{stem}.down.sql"))
    };
    down.is_file().then(|| down.display().to_string())
}

fn is_at(rows: &[AppliedRow], version: &Version) -> bool {
    rows.iter()
        .any(|r| Version::parse(&r.version).as_ref() == Some(version))
}

fn same_versions(a: &[AppliedRow], b: &[AppliedRow]) -> bool {
    let set = |rows: &[AppliedRow]| -> HashSet<String> {
        rows.iter().map(|r| r.version.clone()).collect()
    };
    set(a) == set(b)
}

/// `3_add_orders` for the newest row, `base (nothing applied)` for none.
fn label_of_newest(snap: &SqlSnapshot, rows: &[AppliedRow]) -> String {
    match rows.iter().max_by_key(|r| snap.order_key(&r.version)) {
        Some(row) => snap.row_label(row),
        None => "base (nothing applied)".to_string(),
    }
}

fn sorted_labels(snap: &SqlSnapshot) -> Vec<String> {
    let mut rows: Vec<&AppliedRow> = snap.applied.iter().collect();
    rows.sort_by_key(|r| snap.order_key(&r.version));
    rows.iter().map(|r| snap.row_label(r)).collect()
}

/// What has happened so far, for the progress lines and an honest failure.
struct Progress {
    started: usize,
    total: usize,
    /// Labels whose undo committed, in order.
    undone: Vec<String>,
    /// Labels whose COMMIT got no answer: undone or not, unknown until checked.
    unknown: Vec<String>,
    /// What changed that is not a whole undo, and whether what committed is unknown.
    report: Report,
}

impl Progress {
    fn start(&mut self, events: &Events, step: &Step) {
        self.started += 1;
        events.diagnose(
            Severity::Info,
            format!(
                "downgrading {} ({}/{})",
                step.label, self.started, self.total
            ),
            None,
        );
    }

    fn committed(&mut self, events: &Events, steps: &[Step]) {
        for step in steps {
            events.diagnose(Severity::Info, format!("undone {}", step.label), None);
            self.undone.push(step.label.clone());
        }
    }

    /// The failure `stop`, then what was undone before it and what is still applied.
    fn account(&self, stop: &str, steps: &[Step]) -> String {
        let before = if self.undone.is_empty() {
            "nothing was undone before it".to_string()
        } else {
            format!("undone before it (committed): {}", self.undone.join(", "))
        };
        let unknown = &self.unknown;
        let still: Vec<&str> = steps
            .iter()
            .map(|s| s.label.as_str())
            .filter(|l| !self.undone.iter().chain(unknown).any(|u| u == l))
            .collect();
        let still = if still.is_empty() {
            String::new()
        } else {
            format!("; still applied: {}", still.join(", "))
        };
        format!("{stop}; {before}{still}")
    }
}

/// Consecutive transactional downs and their ledger rows, in one transaction.
async fn undo_together(
    conn: &mut PgConnection,
    batch: &[Step],
    progress: &mut Progress,
    run: &RunFacts,
) -> Result<(), ChangeError> {
    let labels: Vec<&str> = batch.iter().map(|s| s.label.as_str()).collect();
    let nothing_undone = if batch.len() == 1 {
        format!(
            "its transaction rolled back, so {} was not undone",
            labels[0]
        )
    } else {
        format!(
            "the transaction rolled back, so nothing of {} was undone",
            labels.join(", ")
        )
    };
    let mut body = Downs {
        batch,
        progress: &mut *progress,
        run,
    };
    match in_one_transaction(conn, "beginning the downgrade transaction", &mut body).await {
        Ended::Committed => {
            progress.committed(&run.events, batch);
            Ok(())
        }
        Ended::NotBegun(e) => Err(e.into()),
        Ended::BodyFailed {
            error,
            connection_lost,
        } => {
            progress.report.connection_lost |= connection_lost;
            Err(ChangeError {
                message: format!("{error}; {nothing_undone}"),
                ..error
            })
        }
        Ended::CommitFailed(failure) => {
            Err(stop(format!("COMMIT failed: {failure}; {nothing_undone}")))
        }
        Ended::CommitUnknown(failure) => {
            // Not the report's `commit_unknown`: that is an apply's, settled by finding
            // the versions in the ledger; here the runner reads the state afresh.
            progress.report.outcome_unknown = true;
            progress.report.connection_lost = true;
            progress
                .unknown
                .extend(labels.iter().map(|l| l.to_string()));
            Err(stop(format!(
                "the connection failed during COMMIT of the downgrade of {}: {failure}; whether they were undone is unknown until checked (`ballast status`)",
                labels.join(", ")
            )))
        }
    }
}

/// The downs of a batch and the deletion of their ledger rows, inside the open
/// transaction.
struct Downs<'a> {
    batch: &'a [Step],
    progress: &'a mut Progress,
    run: &'a RunFacts,
}

impl Body for Downs<'_> {
    type Error = ChangeError;

    async fn run(&mut self, tx: &mut PgConnection) -> Result<(), ChangeError> {
        let schema = self.run.settings.database.schema.as_str();
        for step in self.batch {
            if crate::interrupt::requested() {
                return Err(stop(INTERRUPTED));
            }
            self.progress.start(&self.run.events, step);
            if let Err(e) = tx.execute(sqlx::raw_sql(&step.down_sql)).await {
                let failure = SqlFailure::from_sqlx(&e);
                // The batch rolls back whole: a lock timeout may be tried again.
                return Err(ChangeError {
                    kind: match failure.is_lock_timeout() {
                        true => Stop::LockTimeout,
                        false => Stop::Failed,
                    },
                    ..stop(down_failed(step, &failure, self.run, None))
                });
            }
            match step.remove_row(tx, schema).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(stop(format!(
                        "the ledger row of {} disappeared during the downgrade (something else changed {})",
                        step.label,
                        step.ledger.qualified(schema)
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        crate::faults::pause("downgrade-transaction");
        Ok(())
    }
}

/// A `no-transaction` down: each statement commits on its own, then the row goes.
async fn undo_alone(
    conn: &mut PgConnection,
    step: &Step,
    progress: &mut Progress,
    run: &RunFacts,
) -> Result<(), ChangeError> {
    let schema = run.settings.database.schema.as_str();
    progress.start(&run.events, step);
    let label = &step.label;
    let from = step.from_statement;
    // golang-migrate marks the version a down goes back to dirty while it runs (an
    // earlier attempt that ran statements before `from` marked it already).
    let back_to = step.previous.as_deref().unwrap_or("-1");
    let prior = match from {
        0 => step.ledger.starting_alone(&mut *conn, back_to).await?,
        _ => None,
    };
    let halted = run_alone(conn, &step.down_sql, from, &run.events, None, None).await?;
    if let Err(halted) = halted {
        let (n, of) = (halted.ran, halted.of);
        if n > 0 {
            progress.report.partial(format!(
                "the down of {label} (statements 1-{n} of {of} only)"
            ));
        } else if let Err(e) = step.ledger.not_started(&mut *conn, prior).await {
            progress.report.partial(format!(
                "the down of {label}: nothing of it ran, but the dirty mark in {} could not be cleared ({e})",
                step.ledger.qualified(schema)
            ));
        }
        let Some((failure, place)) = halted.failure else {
            return Err(stop(match n {
                0 => format!("{INTERRUPTED}; {label} is still applied"),
                _ => format!("{INTERRUPTED}: statements 1-{n} of {label}'s down ran and stay, yet its ledger row stays too, so it is half undone"),
            }));
        };
        let mut fate = vec![if n == 0 {
            format!("it runs outside a transaction and its first statement failed, so {label} is still applied")
        } else {
            format!(
                "it runs outside a transaction: statements 1-{n} of {of} ran and stay, yet its ledger row stays too, so {label} is half undone"
            )
        }];
        // Stopped between two statements (the one that stopped left nothing): going
        // on from that one finishes the down.
        let between =
            halted.failed_whole && matches!(&halted.invalid_left, Ok(left) if left.is_empty());
        if between {
            progress.report.stopped_at_statement = Some(StoppedAt {
                version: step.version.clone(),
                statement: n,
            });
        }
        let lock_stopped_clean = failure.is_lock_timeout() && between;
        // A failed DROP INDEX CONCURRENTLY can leave the index INVALID: a change, and
        // one the run must report.
        match halted.invalid_left {
            Ok(left) => {
                for name in left {
                    fate.push(format!("it left the INVALID index {name}"));
                    progress.report.partial(format!(
                        "INVALID index {name} left by the down of {label} (drop it with DROP INDEX CONCURRENTLY {name})"
                    ));
                }
            }
            Err(_) => progress.report.partial(format!(
                "the down of {label}: could not check for INVALID indexes it may have left (the connection failed)"
            )),
        }
        return Err(ChangeError {
            kind: match lock_stopped_clean {
                true => Stop::LockTimeout,
                false => Stop::Failed,
            },
            ..stop(format!(
                "{}; {}",
                down_failed(step, &failure, run, Some(place)),
                fate.join("; ")
            ))
        });
    }
    // Already gone is fine: nothing else may hold the row once its down ran.
    if let Err(e) = step.remove_row(conn, schema).await {
        progress.report.partial(format!(
            "the down of {label} (ran completely, its ledger row not deleted)"
        ));
        return Err(stop(format!(
            "the down of {label} ran completely but deleting its ledger row failed: {e}; {} before the next deploy",
            step.ledger.by_hand(
                schema,
                &run.settings.migrations.dir,
                &step.version,
                false,
                step.previous.as_deref()
            )
        )));
    }
    progress.committed(&run.events, std::slice::from_ref(step));
    Ok(())
}

/// A stop with `message`; what it left is in the progress's report.
fn stop(message: impl Into<String>) -> ChangeError {
    ChangeError::failed(message, Report::default())
}

/// "the down of 3_add_orders failed (migrations/3_add_orders.down.sql, line 4): ..."
/// plus what to do about lock and statement timeouts.
fn down_failed(
    step: &Step,
    failure: &SqlFailure,
    run: &RunFacts,
    location: Option<String>,
) -> String {
    let subject = format!("the down of {}", step.label);
    let file = step.down_file.as_deref();
    statement_failed(&subject, file, &step.down_sql, failure, run, location)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sql::state::compare;
    use crate::migrations::checksum::checksum;

    /// A migration `v_m{v}` with an up `create table t{v}` and, when given, a down.
    fn m(v: &str, down: Option<&str>) -> Migration {
        let up = format!("create table t{v} (id bigint);");
        Migration {
            version: Version::parse(v).unwrap(),
            name: format!("m{v}"),
            up_path: format!("migrations/{v}_m{v}.up.sql").into(),
            checksum: checksum(&up),
            up_sql: up,
            down_sql: down.map(str::to_string),
            transactional: true,
            down_transactional: true,
            phase: crate::migrations::Phase::Pre,
        }
    }

    fn applied(m: &Migration) -> AppliedRow {
        AppliedRow {
            version: m.version.to_string(),
            name: m.name.clone(),
            checksum: m.checksum.clone(),
            applied_at: Some(chrono::Utc::now()),
            run_id: "r".into(),
            duration_ms: 1,
            failed: false,
        }
    }

    fn snap(source: Vec<Migration>, applied: Vec<AppliedRow>) -> SqlSnapshot {
        let state = compare(&source, &applied, |m| Some(m.checksum.clone()));
        SqlSnapshot {
            source,
            applied,
            state,
            ignored: Vec::new(),
            layout: crate::migrations::Layout::Of(crate::migrations::Tool::Sqlx),
            ledger: crate::engine::sql::ledger::Settled {
                ledger: Ledger::Ballast,
                why: "test",
            },
            schema: "public".into(),
        }
    }

    /// Versions 1, 2 and 10 with downs, all applied.
    fn three_applied() -> SqlSnapshot {
        let source = vec![
            m("1", Some("drop table t1;")),
            m("2", Some("drop table t2;")),
            m("10", Some("drop table t10;")),
        ];
        let rows = source.iter().map(applied).collect();
        snap(source, rows)
    }

    fn labels(undo: &Undo) -> Vec<&str> {
        undo.steps.iter().map(|s| s.label.as_str()).collect()
    }

    fn to(v: &str) -> UndoGoal {
        UndoGoal::To(v.into())
    }

    #[test]
    fn undoes_what_is_newer_than_to_newest_first_in_version_order() {
        let undo = plan(&three_applied(), &to("1")).unwrap();
        assert_eq!(labels(&undo), ["10_m10", "2_m2"]);
        assert_eq!(undo.ends_at, "1_m1");
    }

    #[test]
    fn to_accepts_a_label_leading_zeros_and_base() {
        let snap = three_applied();
        assert_eq!(
            labels(&plan(&snap, &to("0001")).unwrap()),
            ["10_m10", "2_m2"]
        );
        assert_eq!(labels(&plan(&snap, &to("2_m2")).unwrap()), ["10_m10"]);
        let all = plan(&snap, &to("base")).unwrap();
        assert_eq!(labels(&all), ["10_m10", "2_m2", "1_m1"]);
        assert_eq!(all.ends_at, "base (nothing applied)");
    }

    #[test]
    fn without_to_undoes_exactly_what_the_run_applied() {
        let now = three_applied();
        let start = snap(now.source.clone(), vec![applied(&now.source[0])]);
        let undo = plan(&now, &UndoGoal::Start(Box::new(start))).unwrap();
        assert_eq!(labels(&undo), ["10_m10", "2_m2"]);
        assert_eq!(undo.ends_at, "1_m1");
    }

    #[test]
    fn nothing_to_undo_says_where_it_is() {
        let now = three_applied();
        let undo = plan(&now, &to("10")).unwrap();
        assert!(undo.steps.is_empty());
        assert_eq!(undo.already, "already at 10_m10");
        let undo = plan(&now, &UndoGoal::Start(Box::new(now.clone()))).unwrap();
        assert_eq!(undo.already, "already at 10_m10, where the run started");

        // A known version that is not applied yet: nothing newer is applied.
        let mut source = now.source.clone();
        source.push(m("11", Some("drop table t11;")));
        let undo = plan(&snap(source, now.applied.clone()), &to("11")).unwrap();
        assert_eq!(
            undo.already,
            "already at 10_m10: nothing applied is newer than 11"
        );
    }

    #[test]
    fn an_unknown_or_malformed_to_is_refused() {
        let snap = three_applied();
        let err = plan(&snap, &to("7")).unwrap_err().to_string();
        assert!(
            err.contains("no migration file and no applied migration has version 7")
                && err.contains("applied: 1_m1, 2_m2, 10_m10")
                && err.contains("nothing was changed"),
            "{err}"
        );
        let err = plan(&snap, &to("v1")).unwrap_err().to_string();
        assert!(err.contains("is not a migration version"), "{err}");
        let err = plan(&snap, &to("2_other")).unwrap_err().to_string();
        assert!(err.contains("version 2 is 2_m2"), "{err}");
    }

    #[test]
    fn an_applied_version_without_a_file_can_be_the_target() {
        let source = vec![m("2", Some("drop table t2;"))];
        let mut rows = vec![applied(&source[0])];
        rows.push(AppliedRow {
            version: "1".into(),
            name: "gone".into(),
            ..rows[0].clone()
        });
        let undo = plan(&snap(source, rows), &to("1")).unwrap();
        assert_eq!(labels(&undo), ["2_m2"]);
        assert_eq!(undo.ends_at, "1_gone");
    }

    #[test]
    fn every_migration_that_cannot_be_undone_is_named() {
        let mut source = vec![
            m("1", Some("drop table t1;")),
            m("2", None),
            m("3", Some("drop table t3;")),
            m("4", Some("-- nothing to undo\n")),
            m("5", Some("begin;\ndrop table t5;\ncommit;")),
            m("6", Some("drop table t6;")),
        ];
        let mut rows: Vec<AppliedRow> = source.iter().map(applied).collect();
        // 3 was edited after it was applied.
        rows[2].checksum = checksum("something else");
        // 7 is applied, but its file is gone.
        rows.push(AppliedRow {
            version: "7".into(),
            name: "lost".into(),
            ..rows[0].clone()
        });
        source.truncate(6);
        let err = plan(&snap(source, rows), &to("1")).unwrap_err().to_string();
        for expected in [
            "cannot downgrade to 1: ",
            "7_lost is applied but its migration file is gone",
            "5_m5: `begin;` on line 1 of its down file would end the downgrade's transaction early",
            "4_m4: its down file is empty",
            "3_m3: migrations/3_m3.up.sql changed since it was applied",
            "2_m2: it has no down file",
            "nothing was changed, restore the run's backup instead",
        ] {
            assert!(err.contains(expected), "missing `{expected}` in: {err}");
        }
        assert!(!err.contains("6_m6") && !err.contains("1_m1"), "{err}");
    }

    #[test]
    fn begin_is_fine_in_a_no_transaction_down() {
        let source = vec![
            m("1", Some("drop table t1;")),
            m(
                "2",
                Some("-- no-transaction\nbegin;\ndrop index concurrently if exists i;\ncommit;"),
            ),
        ];
        let rows = source.iter().map(applied).collect();
        let undo = plan(&snap(source, rows), &to("1")).unwrap();
        assert!(!undo.steps[0].transactional);
    }

    #[test]
    fn a_down_runs_alone_when_marked_or_when_diesel_metadata_says_so() {
        let mut marked_up_only = m("1", Some("drop table t1;"));
        marked_up_only.up_sql = format!("-- no-transaction\n{}", marked_up_only.up_sql);
        marked_up_only.transactional = false;
        assert!(down_runs_in_transaction(&marked_up_only, "drop table t1;"));
        assert!(!down_runs_in_transaction(
            &marked_up_only,
            "-- no-transaction\ndrop index concurrently i;"
        ));
        let mut by_metadata = m("2", Some("drop index concurrently i;"));
        by_metadata.transactional = false;
        by_metadata.down_transactional = false;
        assert!(!down_runs_in_transaction(
            &by_metadata,
            "drop index concurrently i;"
        ));
    }

    #[test]
    fn no_transaction_downs_split_the_batches() {
        let kinds = [true, true, false, true, false];
        let shapes: Vec<usize> = crate::migrations::batches(&kinds, |t| *t)
            .iter()
            .map(|b| b.len())
            .collect();
        assert_eq!(shapes, [2, 1, 1, 1]);
        assert_eq!(crate::migrations::batches(&[true, true], |t| *t).len(), 1);
    }

    #[test]
    fn a_failure_says_what_was_undone_and_what_is_still_applied() {
        let undo = plan(&three_applied(), &to("base")).unwrap();
        let mut progress = Progress {
            started: 2,
            total: 3,
            undone: vec!["10_m10".into()],
            unknown: Vec::new(),
            report: Report::default(),
        };
        assert_eq!(
            progress.account("the down of 2_m2 failed", &undo.steps),
            "the down of 2_m2 failed; undone before it (committed): 10_m10; still applied: 2_m2, 1_m1"
        );
        progress.undone.clear();
        progress.unknown = vec!["10_m10".into(), "2_m2".into()];
        assert_eq!(
            progress.account("COMMIT lost", &undo.steps),
            "COMMIT lost; nothing was undone before it; still applied: 1_m1"
        );
    }
}
