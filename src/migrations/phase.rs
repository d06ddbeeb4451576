//! Release phases: the expand step of a zero-downtime release runs before the new
//! application version rolls out (`pre`, every migration's phase unless it says
//! otherwise), the contract step after the old version is gone (`post`).
//!
//! A migration says it belongs to the contract step with a line of its own:
//! `-- ballast:phase post` in a SQL file (any layout), `# ballast:phase post` in an
//! Alembic revision file. `-- ballast:phase pre` is allowed and means the default. Any
//! other word is an error: a misspelt `post` read as `pre` would drop a column while
//! the old code still reads it.

use std::fmt;

/// When in a release a migration runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the rollout (expand): what the new code needs and the old code tolerates.
    #[default]
    Pre,
    /// After the rollout (contract): what only the old code still needed goes.
    Post,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }

    /// Whether a deploy of phase `deploying` runs a migration of this phase: `pre`
    /// holds `post` back; `post` runs both (what is still pending of the expand step
    /// comes first, in the files' order).
    pub fn runs_in(self, deploying: Phase) -> bool {
        self == Phase::Pre || deploying == Phase::Post
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A phase marker that names no phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: `{text}` names no phase: write `{comment} ballast:phase post` (after the rollout) or `{comment} ballast:phase pre` (before it, the default)")]
pub struct PhaseError {
    pub line: usize,
    pub text: String,
    /// `--` or `#`.
    pub comment: &'static str,
}

/// The phase a file's text declares with a line `<comment> ballast:phase <phase>`
/// (`comment`: `--` for SQL, `#` for Python); `pre` without one. The last marker wins.
pub fn declared(text: &str, comment: &'static str) -> Result<Phase, PhaseError> {
    let mut phase = Phase::Pre;
    for (n, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix(comment) else {
            continue;
        };
        // `ballast:phase post`, and the near misses a person writes (`ballast: phase
        // post`, `ballast phase: post`): read alike, never taken for no mark.
        let Some(value) = rest
            .trim()
            .strip_prefix("ballast")
            .map(|r| r.trim_start().trim_start_matches(':').trim_start())
            .and_then(|r| r.strip_prefix("phase"))
            .map(|r| r.trim_start().trim_start_matches(':'))
        else {
            continue;
        };
        phase = match value.trim().to_ascii_lowercase().as_str() {
            "pre" => Phase::Pre,
            "post" => Phase::Post,
            _ => {
                return Err(PhaseError {
                    line: n + 1,
                    text: line.trim().to_string(),
                    comment,
                })
            }
        };
    }
    Ok(phase)
}

/// The marker a person adds to a file to make it a contract-step migration.
pub fn marker(comment: &str) -> String {
    format!("{comment} ballast:phase post")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_line_anywhere_sets_the_phase_and_none_means_pre() {
        assert_eq!(
            declared("alter table t drop column c;", "--"),
            Ok(Phase::Pre)
        );
        assert_eq!(
            declared(
                "-- drop the old column\n-- ballast:phase post\nalter table t drop column c;",
                "--"
            ),
            Ok(Phase::Post)
        );
        assert_eq!(declared("--ballast:phase   POST\n", "--"), Ok(Phase::Post));
        assert_eq!(declared("-- ballast: phase post\n", "--"), Ok(Phase::Post));
        assert_eq!(declared("-- ballast phase: post\n", "--"), Ok(Phase::Post));
        assert_eq!(
            declared("-- ballast:allow ban-drop-column\n", "--"),
            Ok(Phase::Pre)
        );
        assert_eq!(declared("# ballast:phase post\n", "#"), Ok(Phase::Post));
        assert_eq!(
            declared("# ballast:phase post\n", "--"),
            Ok(Phase::Pre),
            "a Python comment in SQL is no marker"
        );
        assert_eq!(declared("-- ballast:phase pre\n", "--"), Ok(Phase::Pre));
        assert_eq!(
            declared("select '-- ballast:phase post';\n", "--"),
            Ok(Phase::Pre),
            "only a line of its own"
        );
    }

    #[test]
    fn a_misspelt_phase_is_an_error_naming_the_line() {
        let err = declared("select 1;\n-- ballast:phase psot\n", "--").unwrap_err();
        assert_eq!(err.line, 2);
        let text = err.to_string();
        assert!(text.contains("line 2") && text.contains("psot"), "{text}");
        assert!(text.contains("-- ballast:phase post"), "{text}");
        let err = declared("# ballast:phase\n", "#").unwrap_err();
        assert!(err.to_string().contains("# ballast:phase post"), "{err}");
    }

    #[test]
    fn pre_holds_post_back_and_post_runs_both() {
        assert!(Phase::Pre.runs_in(Phase::Pre));
        assert!(!Phase::Post.runs_in(Phase::Pre));
        assert!(Phase::Pre.runs_in(Phase::Post));
        assert!(Phase::Post.runs_in(Phase::Post));
    }
}
