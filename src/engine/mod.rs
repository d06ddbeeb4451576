//! Engines: small questions about one target's migrations, and the changes that
//! answer them. The `sql` engine answers from the migration folder and ballast's
//! ledger; the `alembic` engine from the project's revision graph and its version
//! table. Stages ask through [`Snapshot`]; the pipeline runner decides the order.
//!
//! Nothing here imports `pipeline`, `stages`, `runner` or `commands` (a test in
//! `tests/integration/layers.rs` holds it to that).

pub mod alembic;
pub mod change;
pub mod goal;
mod opened;
pub mod phase;
mod snapshot;
pub mod sql;

pub use opened::Engine;
pub use snapshot::{ApplyStep, EngineError, Snapshot, UndoPlan};
