//! The `sql` engine: a folder of SQL migration files, applied by ballast itself and
//! recorded in its ledger (`ballast_migrations`).

mod snapshot;
pub mod state;

pub use snapshot::SqlSnapshot;
