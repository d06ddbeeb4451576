//! The `sql` engine's migration files: discovery, version order, checksums, statements.
//!
//! A folder is read in the layouts sqlx and diesel write (see [`source`]); versions
//! are ordered as those tools order them ([`version`]); each migration's checksum is
//! taken over its normalized text ([`checksum`]), so line endings and trailing
//! whitespace never count as drift.

pub mod checksum;
pub mod source;
pub mod split;
pub mod version;

pub use source::{load_dir, read_dir, Migration, SourceError};
pub use version::Version;
