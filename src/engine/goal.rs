//! Why a goal (`head`, `-1`, a revision or the start of one, a version) names no
//! migration: a typo must never undo everything, so each of these refuses.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoalError {
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

impl GoalError {
    /// "1 migration is" / "3 revisions are", for [`GoalError::PastBase`].
    pub fn applied(n: usize, noun: &str) -> String {
        match n {
            1 => format!("1 {noun} is"),
            n => format!("{n} {noun}s are"),
        }
    }
}

/// Why a downgrade must not run: found before anything changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoRefused {
    #[error("`to = \"{to}\"` is not a migration version: give the number its file name starts with (like 0001 or 20240101120000), its label (1_create_users), or \"base\"; nothing was changed")]
    NotAVersion { to: String },
    #[error("`to = \"{to}\"`: version {version} is {label}; nothing was changed")]
    OtherName {
        to: String,
        version: String,
        label: String,
    },
    #[error("cannot downgrade to {to}: no migration file and no applied migration has version {version} (applied: {applied}); nothing was changed")]
    NoSuchVersion {
        to: String,
        version: String,
        applied: String,
    },
    /// Migrations on the way have no safe down (each problem names its migration).
    #[error("cannot {goal}: {}; nothing was changed, {instead}", .problems.join("; "))]
    Unsafe {
        /// "downgrade to 3", "go back to where the run started".
        goal: String,
        problems: Vec<String>,
        /// What to do instead.
        instead: &'static str,
    },
    #[error("no `to` version and no starting state of the sql engine to go back to")]
    NoStart,
}
