//! The `sql` engine's view of a target: its migration files, ballast's ledger rows,
//! and their comparison.

use crate::db::ledger;
use crate::migrations::Migration;
use crate::migrations::Tool;
use crate::plan::Plan;

use super::state::State;
use crate::events::{Events, Severity};

/// The `sql` engine's view: files, ledger rows, and their comparison.
#[derive(Debug, Clone)]
pub struct SqlSnapshot {
    pub source: Vec<Migration>,
    pub applied: Vec<ledger::AppliedRow>,
    pub state: State,
    /// What the migrations folder holds besides migrations (`status -v` lists it).
    pub ignored: Vec<crate::migrations::Ignored>,
    /// How the folder was read.
    pub layout: crate::migrations::Layout,
    /// Where applied migrations are recorded, and how that was settled.
    pub ledger: super::ledger::Settled,
    /// The schema the ledger is in (`database.schema`).
    pub schema: String,
}

/// Where a ledger row stands in the order the folder's tool runs its migrations:
/// see [`SqlSnapshot::order_key`].
pub type OrderKey = (usize, u8, Option<crate::migrations::Version>);

impl SqlSnapshot {
    /// Where the migration of `version` (as a ledger row or a person writes it) stands
    /// in the order the folder's tool runs them: its file's place in the folder (in
    /// diesel's text order, that is not always the versions' numeric order); a version
    /// without a file just before the first file with a greater version; what is no
    /// version after everything.
    pub fn order_key(&self, version: &str) -> OrderKey {
        let Some(v) = crate::migrations::Version::parse(version) else {
            return (usize::MAX, 2, None);
        };
        match self.source.iter().position(|m| m.version == v) {
            Some(i) => (i, 1, None),
            None => {
                let before = self.source.iter().filter(|m| m.version < v).count();
                (before, 0, Some(v))
            }
        }
    }

    /// The label of the migration `steps` back from the newest applied one (`base`
    /// when that is all of them); `to` is how the user wrote it, for the error.
    pub(in crate::engine) fn steps_back(
        &self,
        steps: usize,
        to: &str,
    ) -> Result<String, crate::engine::goal::GoalError> {
        let mut applied: Vec<(OrderKey, &ledger::AppliedRow)> = self
            .applied
            .iter()
            .filter(|r| {
                crate::migrations::Version::parse(&r.version).is_some_and(|v| !v.is_repeatable())
            })
            .map(|r| (self.order_key(&r.version), r))
            .collect();
        applied.sort_by(|a, b| b.0.cmp(&a.0));
        match applied.get(steps) {
            Some((_, row)) => Ok(self.row_label(row)),
            None if steps == applied.len() => Ok("base".into()),
            None => Err(crate::engine::goal::GoalError::PastBase {
                to: to.into(),
                applied: crate::engine::goal::GoalError::applied(applied.len(), "migration"),
            }),
        }
    }

    /// A ledger row as a person reads it: its file's label (`3_add_orders`), else
    /// what the row keeps (a dbmate row keeps its version alone).
    pub fn row_label(&self, row: &ledger::AppliedRow) -> String {
        let file = crate::migrations::Version::parse(&row.version)
            .and_then(|v| self.source.iter().find(|m| m.version == v));
        match (file, row.name.is_empty()) {
            (Some(m), _) => m.label(),
            (None, true) => row.version.clone(),
            (None, false) => format!("{}_{}", row.version, row.name),
        }
    }

    /// The ledger row of `version` (ballast's canonical form: the ledger may keep it
    /// as its tool writes it, `0001` or `20190101000000`).
    pub fn applied_row(&self, version: &str) -> Option<&ledger::AppliedRow> {
        let wanted = crate::migrations::Version::parse(version)?;
        self.applied
            .iter()
            .find(|row| crate::migrations::Version::parse(&row.version).as_ref() == Some(&wanted))
    }

    pub fn pending(&self) -> Vec<&Migration> {
        self.state
            .pending
            .iter()
            .map(|&i| &self.source[i])
            .collect()
    }

    pub fn plan(&self) -> Plan {
        Plan::new(&self.pending())
    }

    /// Label of the newest applied migration (`3_add_orders`), or `None` before the first.
    pub fn current_label(&self) -> Option<String> {
        let current = self.state.current.as_ref()?;
        self.source
            .iter()
            .find(|m| &m.version == current)
            .map(Migration::label)
    }

    /// Label of the newest migration file: where a full deploy ends.
    pub fn head_label(&self) -> Option<String> {
        self.source.last().map(Migration::label)
    }

    /// Emits a diagnosis for each blocker (drift, unknown versions, out of order);
    /// returns how many there were.
    pub fn diagnose(&self, events: &Events) -> usize {
        let snap = self;
        let state = &snap.state;
        for d in &state.drift {
            events.diagnose(
            Severity::Error,
            format!(
                "drift: migration {}_{} was edited after it was applied on {} ({})",
                d.version, d.name, d.applied_at, d.file
            ),
            Some(format!(
                "restore the file as it was applied (checksum {}…, now {}…) and put the change in a new migration",
                short(&d.applied_checksum),
                short(&d.file_checksum)
            )),
        );
        }
        if !state.untracked.is_empty() {
            let n = state.untracked.len();
            let shown: Vec<&str> = state.untracked.iter().take(5).map(String::as_str).collect();
            let more = if n > 5 {
                format!(" and {} more", n - 5)
            } else {
                String::new()
            };
            events.diagnose(
                Severity::Error,
                format!(
                    "{n} table(s) ({}{more}) but no ledger in schema {}: nothing records which of the {} pending migration(s) built them, and running one again on what it built would fail, or do its work twice",
                    shown.join(", "),
                    self.schema,
                    state.pending.len()
                ),
                Some("if the migrations up to VERSION built them (another tool, or by hand), record that: `ballast baseline VERSION`; if none of them did, `ballast baseline none`; then deploy".into()),
            );
        }
        for row in &state.failed {
            let (message, hint) = self.failed_row(row);
            events.diagnose(Severity::Error, message, Some(hint));
        }
        for row in &state.unknown {
            let when = match row.applied_at {
                Some(at) => format!(" (on {})", at.to_rfc3339()),
                None => String::new(),
            };
            let label = self.row_label(row);
            events.diagnose(
            Severity::Error,
            format!(
                "unknown version: {label} is applied in the database{when} but has no file in the migration folder"
            ),
            Some("deploy from the branch that has this migration, or restore its file; if it was deleted on purpose, remove its row from the ledger by hand".into()),
        );
        }
        for &i in &state.out_of_order {
            let m = &snap.source[i];
            let what = format!(
                "{} is pending but older than the newest applied migration {}",
                m.label(),
                snap.current_label().unwrap_or_default()
            );
            let held = state.post.contains(&i);
            match state.out_of_order_reason(i) {
                // Held back by an earlier `--phase pre` deploy, as phases mean it.
                Some(why) if held => events.diagnose(
                    Severity::Info,
                    format!("{} (phase post) waits for the contract step, behind newer migrations; it is applied where it stands ({why})", m.label()),
                    None,
                ),
                Some(why) => events.diagnose(
                    Severity::Warning,
                    format!("out of order: {what}; it is applied where it stands ({why})"),
                    Some(
                        "check that it does not depend on what the newer migrations changed".into(),
                    ),
                ),
                None => events.diagnose(
                    Severity::Error,
                    format!("out of order: {what}"),
                    Some(self.out_of_order_fix()),
                ),
            }
        }
        state.drift.len()
            + state.unknown.len()
            + state.out_of_order_blocking()
            + state.failed.len()
            + usize::from(!state.untracked.is_empty())
    }

    /// What works for a migration merged out of order, as this target keeps its ledger.
    fn out_of_order_fix(&self) -> String {
        let rename = "give it a version newer than every applied migration (rename the file) so every database applies migrations in one order";
        match self.ledger.ledger.tool() {
            Some(Tool::Flyway) => format!("{rename}; Flyway refuses it too (unless its outOfOrder setting is on, then set [migrations] out_of_order = \"apply\" as well)"),
            Some(Tool::GolangMigrate) => format!("{rename}: golang-migrate's one version cannot record it where it stands"),
            _ => format!("{rename}; or, when it must keep its name (it is published), set [migrations] out_of_order = \"apply\" to apply it where it stands, as sqlx, diesel and dbmate do"),
        }
    }

    /// What `status -v` shows besides the state: what the folder holds besides
    /// migrations.
    pub fn notes(&self) -> Vec<String> {
        self.ignored
            .iter()
            .map(|entry| {
                format!(
                    "left alone in the migrations folder: {} ({})",
                    entry.name, entry.why
                )
            })
            .collect()
    }

    /// A row the tool left for a migration that stopped half-way, in words: what it
    /// means, what to check, and the command that clears it.
    fn failed_row(&self, row: &ledger::AppliedRow) -> (String, String) {
        let table = self.ledger.ledger.qualified(&self.schema);
        let file = crate::migrations::Version::parse(&row.version)
            .and_then(|v| self.source.iter().find(|m| m.version == v));
        let what = file
            .map(|m| m.up_path.display().to_string())
            .unwrap_or_else(|| format!("the migration of version {}", row.version));
        if self.ledger.ledger.tool() == Some(Tool::Flyway) {
            return (
                format!(
                    "{} says migration {} failed (success = false): Flyway will not migrate this database until the row is repaired",
                    self.ledger.ledger.describe(&self.schema),
                    row.version
                ),
                format!(
                    "check what {what} left in the database and undo it by hand, then remove the failed row: `flyway repair` (or delete from {table} where version = '{}' and not success)",
                    row.version
                ),
            );
        }
        if self.ledger.ledger.tool() != Some(Tool::GolangMigrate) {
            return (
                format!(
                    "{} says migration {} failed (success = false): sqlx calls this database dirty and will not migrate it",
                    self.ledger.ledger.describe(&self.schema),
                    row.version
                ),
                format!(
                    "check what {what} left in the database and undo it by hand, then delete its row: delete from {table} where version = {}",
                    row.version
                ),
            );
        }
        let previous = self
            .applied
            .iter()
            .filter(|r| !r.failed)
            .filter_map(|r| crate::migrations::Version::parse(&r.version))
            .max()
            .map(|v| v.to_string());
        let dir = file
            .and_then(|m| m.up_path.parent())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "migrations".into());
        let back = previous.as_deref().unwrap_or("-1");
        let migrate = format!("migrate -path {dir} -database \"$DATABASE_URL\"");
        // A down marks the version it goes back to: the one after the dirty version.
        let at = crate::migrations::Version::parse(&row.version);
        let after = self
            .source
            .iter()
            .filter(|m| !m.version.is_repeatable())
            .find(|m| at.as_ref().is_none_or(|at| &m.version > at));
        let down = match after {
            Some(next) => format!(
                "; if it was the down of {} that stopped (it marks the version it goes back to), `{migrate} force {}` once you have put back what it undid, or `force {}` once you have finished the down",
                next.label(),
                next.version,
                row.version
            ),
            None => String::new(),
        };
        if at.is_none() {
            // `-1`: a down to no version at all stopped half-way.
            return (
                format!(
                    "golang-migrate's ledger {table} says no version is applied, and dirty: a down to nothing stopped half-way, so part of it may be undone and part not"
                ),
                format!(
                    "look at what the down did; then clear the mark: `{migrate} force -1` once you have finished the down by hand{}",
                    after
                        .map(|first| format!(", or `force {}` once you have put back what it undid", first.version))
                        .unwrap_or_default()
                ),
            );
        }
        (
            format!(
                "golang-migrate's ledger {table} says version {} is dirty: a migration stopped half-way (golang-migrate marks a version dirty before it runs a file, and clean once the file ran), so part of {what}, or of the down of the version after it, may be in the database and part not",
                row.version
            ),
            format!(
                "look at what {what} did and finish or undo it by hand; then clear the mark: `{migrate} force {}` if it is now complete, or `force {back}` if you undid it (the next deploy then applies it){down}",
                row.version
            ),
        )
    }

    /// What `status` says of how it read the target: the folder's layout and the
    /// ledger, with how each was decided; and whether a tool is involved (then it is
    /// said without `-v`).
    pub fn reading(&self) -> (String, bool) {
        let tool = self.ledger.ledger != super::ledger::Ledger::Ballast
            || self.layout.tool().is_some_and(|t| t != Tool::Sqlx);
        (
            format!(
                "files: {} layout; applied migrations: {} ({})",
                self.layout,
                self.ledger.ledger.describe(&self.schema),
                self.ledger.why
            ),
            tool,
        )
    }
}

/// The first 12 characters of a checksum (a hand-edited ledger row may be shorter).
fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}
