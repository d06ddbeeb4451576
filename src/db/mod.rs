//! PostgreSQL access: connections, ballast's own tables, and the deploy lock.
//!
//! ballast keeps two tables in the configured schema: `ballast_migrations` (the
//! ledger of applied migrations) and `ballast_journal` (runs and stage outcomes).
//! Read-only commands only ever read them, and never create them.

mod connect;
mod error;
pub mod journal_table;
pub mod ledger;
pub mod lock;
pub mod schema_shape;
pub mod table_writes;

pub use connect::{close, connect, server_info, ServerInfo};
pub use error::{DbError, SqlFailure};

/// Quotes an identifier for SQL (`"marketplace"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
