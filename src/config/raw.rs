//! The config file's shape, exactly as written: every table rejects unknown keys.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub migrations: RawMigrations,
    #[serde(default)]
    pub backup: RawBackup,
    #[serde(default)]
    pub verify: RawVerify,
    #[serde(default)]
    pub lint: RawLint,
    #[serde(default)]
    pub rehearse: RawRehearse,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRehearse {
    /// Where the copy lives: a database on another server (the copy is made beside
    /// it), or `local` for a throwaway server; unset: beside the target.
    pub url: Option<String>,
    /// The deploy pipeline rehearses right after its backup, before the question.
    pub before_deploy: Option<bool>,
    pub max_exclusive_lock: Option<String>,
    pub max_write_block: Option<String>,
    pub max_duration: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLint {
    /// Rule ids to turn off.
    pub disable: Option<Vec<String>>,
    /// Rule id → "error" | "warning" | "off".
    pub levels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
    pub schema: Option<String>,
    pub lock_timeout: Option<String>,
    pub statement_timeout: Option<String>,
    pub lock_wait: Option<String>,
    pub long_transaction: Option<String>,
    pub lock_retries: Option<u32>,
    pub lock_retry_wait: Option<String>,
    pub lock_queue_limit: Option<String>,
    pub lock_budget: Option<String>,
    pub blocker_policy: Option<String>,
    pub application_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigrations {
    pub engine: Option<String>,
    pub dir: Option<String>,
    pub alembic_ini: Option<String>,
    pub python: Option<String>,
    pub working_dir: Option<String>,
    pub version_schema: Option<String>,
    pub version_table: Option<String>,
    /// Entries of the migrations folder that are no migrations (`*`, `?` wildcards).
    pub ignore: Option<Vec<String>>,
    /// `auto` or a tool's name: how the folder's files are named and split.
    pub layout: Option<String>,
    /// `auto`, `ballast` or a tool's name: where applied migrations are recorded.
    pub ledger: Option<String>,
    /// `auto`, `refuse` or `apply`: a pending migration older than the newest applied.
    pub out_of_order: Option<String>,
    /// Extra environment for the alembic process (`[migrations.env]`).
    pub env: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    pub dir: Option<String>,
    pub pg_dump: Option<String>,
    pub compression_level: Option<u32>,
    pub keep_last: Option<u32>,
    pub keep_days: Option<u32>,
    pub restore_ends_sessions: Option<bool>,
    pub age_recipients: Option<Vec<String>>,
    pub age_identity_file: Option<String>,
    pub s3: Option<RawS3>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub storage_class: Option<String>,
    pub server_side_encryption: Option<String>,
    pub kms_key_id: Option<String>,
    pub stale_upload_after: Option<String>,
    pub object_lock_days: Option<u32>,
    pub object_lock_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    #[serde(default)]
    pub checks: Vec<RawCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: String,
    pub sql: String,
}
