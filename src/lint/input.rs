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
    /// Source whose `ballast:allow` comments cover the whole migration (an Alembic
    /// revision's Python file, whose comments never reach the rendered SQL).
    pub whole_allows: String,
    /// The release phase it belongs to: a breaking change is the expected contract
    /// step in a `post` migration, and a `pre` one must not need what a `post` one
    /// creates.
    pub phase: crate::migrations::Phase,
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

impl LintInput {
    /// A migration of the `sql` engine, as it will run.
    pub fn from_sql(m: &crate::migrations::Migration) -> LintInput {
        let downgrade = match &m.down_sql {
            None => Downgrade::Missing,
            Some(sql) if only_comments(sql) => Downgrade::Empty,
            Some(_) => Downgrade::Present,
        };
        LintInput {
            label: m.label(),
            file: m.up_path.display().to_string(),
            sql: m.up_sql.clone(),
            transactional: m.transactional,
            downgrade,
            whole_allows: String::new(),
            phase: m.phase,
        }
    }

    /// How a person marks this migration's file as the contract step: `# ...` in an
    /// Alembic revision (Python), `-- ...` in SQL.
    pub fn phase_marker(&self) -> String {
        crate::migrations::phase::marker(match self.file.ends_with(".py") {
            true => "#",
            false => "--",
        })
    }
}

/// Whether SQL is empty but for whitespace and `--` comments.
fn only_comments(sql: &str) -> bool {
    sql.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with("--"))
}
