//! The manifest: what a backup is, written beside it as JSON, last.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub id: String,
    /// The dump object's file name, beside the manifest.
    pub object: String,
    pub format: String,
    pub database: String,
    pub host: String,
    pub server_version: String,
    /// The server's major version (15 for 15.4); restore checks the target can take it.
    #[serde(default)]
    pub server_major: Option<u32>,
    pub pg_dump_version: String,
    /// The newest applied migration when the backup was taken.
    pub revision: Option<String>,
    pub schema: String,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    /// SHA-256 of the object as stored (compressed).
    pub sha256: String,
    pub started_at: String,
    pub finished_at: String,
    pub run_id: String,
    pub tool: String,
    /// `pg_stat_user_tables` writes (inserts + updates + deletes) when the backup was
    /// taken; a restore compares it with the live value to say what it would lose.
    #[serde(default)]
    pub write_counter: Option<i64>,
    /// How the object is sealed (encrypted); `None`: plain gzip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
    /// Until when S3 Object Lock keeps the dump and this manifest from being deleted
    /// (RFC 3339); `None` when not locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
}

/// A backup sealed with age: who can read it. Public keys only, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// `age` (age-encryption.org/v1).
    pub scheme: String,
    /// The recipients' public keys (`age1...`): any one's identity reads it.
    pub recipients: Vec<String>,
}

pub const FORMAT: &str = "pg_dump custom format (uncompressed), gzip";
pub const SEALED_FORMAT: &str = "pg_dump custom format (uncompressed), gzip, age";
