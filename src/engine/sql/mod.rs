//! The `sql` engine: a folder of SQL migration files in a tool's layout, applied by
//! ballast itself and recorded in the tool's ledger or ballast's own ([`ledger`]).

mod alone;
pub mod apply;
pub mod ledger;
mod snapshot;
pub mod state;
mod transaction;
pub mod undo;

pub use snapshot::SqlSnapshot;
