//! The `alembic` engine: an Alembic project driven as a subprocess (`python -m
//! alembic`, through duct), its revision graph read with Alembic's own API by a small
//! probe script, and the database's revision read directly with sqlx. ballast hands
//! env.py `DATABASE_URL`, and proves (`reach`) that Alembic's connection goes to the
//! database it backed up before any Alembic child changes anything.

mod error;
pub mod graph;
pub mod lint_input;
pub mod offline;
pub mod process;
pub mod reach;
pub mod run;
pub mod snapshot;
mod zygote;

pub use error::AlembicError;
pub use graph::{Graph, Revision};
pub use snapshot::AlembicSnapshot;
