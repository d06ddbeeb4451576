//! The `sql` engine's view of a target: its migration files, ballast's ledger rows,
//! and their comparison.

use crate::db::ledger;
use crate::migrations::Migration;
use crate::plan::Plan;

use super::state::State;

/// The `sql` engine's view: files, ledger rows, and their comparison.
#[derive(Debug, Clone)]
pub struct SqlSnapshot {
    pub source: Vec<Migration>,
    pub applied: Vec<ledger::AppliedRow>,
    pub state: State,
    /// What the migrations folder holds besides migrations (`status -v` lists it).
    pub ignored: Vec<crate::migrations::Ignored>,
}

impl SqlSnapshot {
    /// The label of the migration `steps` back from the newest applied one (`base`
    /// when that is all of them); `to` is how the user wrote it, for the error.
    pub(in crate::engine) fn steps_back(&self, steps: usize, to: &str) -> Result<String, String> {
        let mut applied: Vec<(crate::migrations::Version, &ledger::AppliedRow)> = self
            .applied
            .iter()
            .filter_map(|r| crate::migrations::Version::parse(&r.version).map(|v| (v, r)))
            .collect();
        applied.sort_by(|a, b| b.0.cmp(&a.0));
        match applied.get(steps) {
            Some((_, row)) => Ok(format!("{}_{}", row.version, row.name)),
            None if steps == applied.len() => Ok("base".into()),
            None => Err(format!(
                "`{to}` goes back past base: {} migration{} applied",
                applied.len(),
                if applied.len() == 1 { " is" } else { "s are" }
            )),
        }
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
}
