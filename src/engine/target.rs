//! Why a target (`head`, `-1`, a revision or the start of one, a version) names no
//! migration: a typo must never undo everything, so each of these refuses.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`{to}` steps back from the current revision, and none is applied")]
    NothingApplied { to: String },
    #[error("`{to}` steps back from one current revision, and the database is at {heads}: name the revision to go back to")]
    SeveralCurrent { to: String, heads: String },
    #[error("`{to}` goes back past base: {applied} applied")]
    PastBase {
        to: String,
        /// "1 migration is", "3 revisions are".
        applied: String,
    },
    #[error("`{to}` would step back through the merge {merge}: name the revision to go back to")]
    ThroughMerge { to: String, merge: String },
    #[error("`{to}`: revision {revision} is not in {place}")]
    MissingRevision {
        to: String,
        revision: String,
        place: String,
    },
    #[error(
        "no revision `{to}` in {place} (the start of a revision id needs at least 4 characters)"
    )]
    TooShort { to: String, place: String },
    #[error("no {what} `{to}` in {place}")]
    Unknown {
        to: String,
        /// "revision" or "migration".
        what: &'static str,
        place: String,
    },
    #[error("`{to}` is the start of {} revisions ({}): give more of it", .candidates.len(), .candidates.join(", "))]
    Ambiguous { to: String, candidates: Vec<String> },
}

impl TargetError {
    /// "1 migration is" / "3 revisions are", for [`TargetError::PastBase`].
    pub fn applied(n: usize, noun: &str) -> String {
        match n {
            1 => format!("1 {noun} is"),
            n => format!("{n} {noun}s are"),
        }
    }
}
