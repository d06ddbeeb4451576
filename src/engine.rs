//! The `sql` engine: small questions about one target's migrations, answered from the
//! migration folder and ballast's ledger. The pipeline runner decides the order.

use sqlx::postgres::PgConnection;

use crate::config::Settings;
use crate::db::{ledger, DbError};
use crate::migrations::{load_dir, Migration, SourceError};
use crate::plan::Plan;
use crate::state::{compare, State};

/// Everything known about a target's migrations at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub source: Vec<Migration>,
    pub applied: Vec<ledger::AppliedRow>,
    pub state: State,
}

impl Snapshot {
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

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Db(#[from] DbError),
}

pub fn source(settings: &Settings) -> Result<Vec<Migration>, SourceError> {
    load_dir(&settings.migrations.dir)
}

/// Reads files and ledger and compares them. Writes nothing.
pub async fn snapshot(
    settings: &Settings,
    conn: &mut PgConnection,
) -> Result<Snapshot, EngineError> {
    let source = source(settings)?;
    let applied = ledger::applied(conn, &settings.database.schema).await?;
    let state = compare(&source, &applied);
    Ok(Snapshot {
        source,
        applied,
        state,
    })
}
