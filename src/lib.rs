//! ballast: safe PostgreSQL schema deploys.
//!
//! A deploy is a pipeline of stages ([`pipeline`], [`stages`]) run against one target
//! configured through layered [`config`]. The `sql` [`engine`] reads a migration folder
//! ([`migrations`]) and ballast's ledger ([`db`]); [`backup`] streams pg_dump to
//! storage; stages emit [`events`] that [`report`]ers render; the [`journal`] keeps
//! every run. [`exit_code`] is the contract with schedulers.

pub mod backup;
pub mod children;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod disk;
pub mod engine;
pub mod events;
pub mod exit_code;
pub mod faults;
pub mod interrupt;
pub mod lint;
pub mod logging;
pub mod migrations;
pub mod pipeline;
pub mod plan;
pub mod preflight;
pub mod redact;
pub mod rehearse;
pub mod report;
pub mod resume;
pub mod runner;
pub mod scratch;
pub mod seal;
pub mod stages;
pub mod storage;
pub mod subprocess;
pub mod text;
pub mod trace;
