//! The `alembic` engine: an Alembic project driven as a subprocess (`python -m
//! alembic`, through duct), its revision graph read with Alembic's own API by a small
//! probe script, and the database's revision read directly with sqlx. ballast hands
//! env.py `DATABASE_URL`, and proves (`reach`) that Alembic's connection goes to the
//! database it backed up before any Alembic child changes anything.

pub mod graph;
pub mod lint_input;
pub mod offline;
pub mod process;
pub mod reach;
pub mod run;
pub mod snapshot;

pub use graph::{Graph, Revision};
pub use snapshot::AlembicSnapshot;

#[derive(Debug, thiserror::Error)]
pub enum AlembicError {
    #[error("cannot run {python} for the Alembic project: {source}; set migrations.python to the project's interpreter (a venv's bin/python)")]
    Python {
        python: String,
        source: std::io::Error,
    },
    #[error("reading the Alembic project {ini} failed: {message}")]
    Project { ini: String, message: String },
    #[error(transparent)]
    Db(Box<crate::db::DbError>),
}

impl From<crate::db::DbError> for AlembicError {
    fn from(e: crate::db::DbError) -> Self {
        AlembicError::Db(Box::new(e))
    }
}
