//! Rendering events: for people ([`human`]) and for programs ([`json`]).

pub mod human;
pub mod json;
mod output;
pub mod prompt;
pub mod rehearsal;

pub use human::HumanReporter;
pub use json::{print_event, JsonReporter};
pub use output::{interactive, set_non_interactive, stderr_line, stdout_line, Verbosity};
