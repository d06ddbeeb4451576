//! The one runner: a pipeline's stages in order, then an honest account of what
//! happened; when a stage fails, the recovery ladder and the failure hooks. The only
//! caller of `stages::run`.

mod hooks;
mod record;
pub mod recovery;
mod run;

pub use run::run;
