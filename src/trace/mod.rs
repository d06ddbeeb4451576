//! The trace of a plan run on a copy of production (a rehearsal): what each statement
//! took, the rows it touched, the locks its session held and for how long, the tables
//! it rewrote. The engine records its statements through a [`Tracer`]; a [`sampler`]
//! watches the locks of every session from a second connection (the only view of
//! Alembic's session, and of a statement that commits by itself); [`measure`] turns
//! both into the report, [`limits`] judges it, [`html`] draws it.

pub mod compare;
pub mod html;
pub mod limits;
pub mod measure;
mod recording;
pub mod report;
pub mod sampler;

pub use measure::measure;
pub use recording::{Applier, Recording, Tracer};
pub use report::{
    describe, Comparison, Exceeded, HeldLock, Rehearsal, Report, TableHold, TracedStatement,
    Verdict,
};
