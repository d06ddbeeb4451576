//! Backups: `pg_dump` streamed through gzip into storage, with a manifest beside it.
//!
//! An artifact is a compressed dump plus its manifest. The dump is written under a
//! temporary name and only renamed into place once pg_dump exited 0 and the
//! compressor finished; the manifest is written last. No manifest, no backup.

mod dump;
mod error;
mod hashing;
mod in_order;
mod members;

mod pg_dump;
pub mod replace;
pub mod restore;
pub mod restore_db;
pub mod retention;
pub mod sessions;
pub mod target;
mod verify;

pub use crate::storage::manifest::Manifest;
pub use dump::{part_size_for, take, Artifact, DumpRequest};
pub use error::BackupError;
pub use pg_dump::{client_version, PgDumpVersion};
pub use verify::{pg_restore_for, verify, verify_and_record, Verified, VerifyError};
