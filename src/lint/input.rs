//! What the lint reads: one migration's SQL and what the engine knows about it.

/// How a migration's downgrade looks, as far as the engine can tell without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downgrade {
    /// Present and not empty.
    Present,
    /// None at all (no `.down.sql`; no `downgrade()`).
    Missing,
    /// Present but does nothing (an empty file; `pass`).
    Empty,
    /// Raises (an Alembic `downgrade()` that raises).
    Raises,
    /// Not applicable (an Alembic merge point, whose empty downgrade is normal).
    NotNeeded,
}

#[derive(Debug, Clone)]
pub struct LintInput {
    /// `3_add_orders` or an Alembic revision `a1f0c2d3e4b5 (create sellers)`.
    pub label: String,
    /// The file to point at.
    pub file: String,
    /// The SQL that will run (for Alembic, offline mode's rendering).
    pub sql: String,
    /// Runs inside a transaction (with its neighbours or alone).
    pub transactional: bool,
    pub downgrade: Downgrade,
}

impl LintInput {
    /// 1-based line of byte `offset` in the SQL.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.sql.len());
        self.sql.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
}
