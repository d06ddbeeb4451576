//! Rendering events: for people ([`human`]) and for programs ([`json`]).

pub mod human;
pub mod json;
mod output;
pub mod prompt;

pub use human::HumanReporter;
pub use json::JsonReporter;
pub use output::{interactive, stderr_line, stdout_line, Verbosity};
