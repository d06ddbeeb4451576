//! Configuration: raw TOML shapes, layered loading, and resolved settings.
//!
//! Parse first, resolve second: [`raw`] mirrors the files and rejects unknown keys,
//! [`load`] stacks the layers (defaults < `--config` file < `config/<env>.toml` <
//! environment < flags) and [`settings`] turns the result into validated values.

mod duration;
mod load;
mod raw;
mod settings;
pub mod targets;

pub use duration::{parse_duration, to_pg_millis, DurationError};
pub use load::{load, ConfigError, LoadOptions, DEFAULTS};
pub use raw::RawConfig;
pub use settings::{
    AlembicSettings, BackupSettings, BlockerPolicy, CopyPlace, DatabaseSettings, EngineKind,
    LedgerChoice, MigrationSettings, ObjectLock, RehearseLimits, RehearseSettings, Retention,
    S3Settings, Settings, SqlCheck,
};
