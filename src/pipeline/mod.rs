//! Pipelines: declared stage lists, the run context they share, and the one runner.
//!
//! [`definition`] reads `pipelines/<name>.toml` (built-in or beside the config);
//! [`context`] is what stages hand each other; [`runner`] runs the stages in order and,
//! when one fails, works out honestly what changed and runs the failure hooks.

pub mod context;
pub mod definition;
pub mod journal;
pub mod outcome;
pub mod proof;

pub use context::{RestoreChoice, RunContext, RunOptions};
pub use definition::{
    InvalidIndexPolicy, Pipeline, PipelineError, RestorePolicy, StageKind, StageSpec,
};
pub use outcome::{StageError, StageOutcome};
