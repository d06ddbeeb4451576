//! The `sql` engine: a folder of SQL migration files, applied by ballast itself and
//! recorded in its ledger (`ballast_migrations`).

mod alone;
pub mod apply;
mod snapshot;
pub mod state;
mod transaction;
pub mod undo;

pub use snapshot::SqlSnapshot;
