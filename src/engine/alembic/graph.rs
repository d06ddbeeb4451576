//! The revision graph as the probe read it, and the questions asked of it: which
//! revisions are pending from a set of current ones, and in what order they run.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::engine::goal::GoalError;

/// Why the probe's report of the graph could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("unreadable probe output ({error}): {output}")]
    Unreadable {
        error: serde_json::Error,
        output: String,
    },
    /// What the probe itself said went wrong (Alembic's own error).
    #[error("{0}")]
    Said(String),
    #[error("{0}")]
    Shape(serde_json::Error),
    #[error("{path}, {error}")]
    Phase {
        path: String,
        error: crate::migrations::phase::PhaseError,
    },
}

/// How a revision's `downgrade()` looks without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Downgrade {
    Ok,
    /// No `downgrade` function at all.
    Missing,
    /// Only `pass` or a docstring.
    Empty,
    /// Raises at its top level (`raise NotImplementedError`).
    Raises,
    Unreadable,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Revision {
    pub revision: String,
    pub down_revisions: Vec<String>,
    #[serde(default)]
    pub branch_labels: Vec<String>,
    pub message: String,
    pub path: String,
    pub is_merge: bool,
    pub downgrade: Downgrade,
    /// The file says `ballast:allow missing-downgrade` (or `all`): an empty
    /// `downgrade()` is deliberate (a data migration with nothing to undo).
    #[serde(default)]
    pub allows_missing_downgrade: bool,
    /// The SQL `upgrade()` passes `op.execute` as a literal, in the file's order.
    #[serde(default)]
    pub literal_sql: Vec<String>,
    /// `# ballast:phase post` in its file: part of the contract step (read by
    /// [`Graph::parse`], not the probe).
    #[serde(skip)]
    pub phase: crate::migrations::Phase,
}

impl Revision {
    /// `a1f0c2d3e4b5 (create sellers)`.
    pub fn label(&self) -> String {
        if self.message.is_empty() {
            self.revision.clone()
        } else {
            format!("{} ({})", self.revision, self.message)
        }
    }

    /// [`Self::downgrade_problem`], naming the revision and its file.
    pub fn undo_problem(&self) -> Option<String> {
        self.downgrade_problem()
            .map(|p| format!("{}: {p} ({})", self.label(), self.path))
    }

    /// Whether stepping down through this revision is known to fail or to do nothing
    /// it should (a merge point's empty downgrade is normal).
    pub fn downgrade_problem(&self) -> Option<&'static str> {
        match self.downgrade {
            Downgrade::Ok => None,
            // Deliberate: the recovery ladder still proves the schema came back, and
            // climbs to the restore rung when it did not.
            Downgrade::Empty if self.is_merge || self.allows_missing_downgrade => None,
            Downgrade::Empty => Some("its downgrade() is empty: it would not undo anything"),
            Downgrade::Missing => Some("it has no downgrade() function"),
            Downgrade::Raises => Some("its downgrade() raises"),
            Downgrade::Unreadable => Some("its file could not be parsed"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Graph {
    pub alembic_version: String,
    pub script_location: String,
    pub heads: Vec<String>,
    /// Base first, every revision after all of its parents.
    pub revisions: Vec<Revision>,
    pub env_py: String,
    /// From env.py's `configure(transaction_per_migration=…)`; `None` when it is not a
    /// literal ballast can read.
    pub transaction_per_migration: Option<bool>,
}

impl Graph {
    pub fn parse(json: &str) -> Result<Graph, ProbeError> {
        let value: serde_json::Value =
            serde_json::from_str(json.trim()).map_err(|e| ProbeError::Unreadable {
                error: e,
                output: json.trim().to_string(),
            })?;
        if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
            return Err(ProbeError::Said(error.to_string()));
        }
        let mut graph: Graph = serde_json::from_value(value).map_err(ProbeError::Shape)?;
        for revision in &mut graph.revisions {
            // A file that cannot be read as text (a sourceless .pyc) says no phase:
            // never taken for pre, which would run a contract step before the rollout.
            let text = std::fs::read_to_string(&revision.path).map_err(|e| {
                ProbeError::Said(format!(
                    "cannot read {} for its `# ballast:phase` mark: {e}",
                    revision.path
                ))
            })?;
            revision.phase = crate::migrations::phase::declared(&text, "#").map_err(|error| {
                ProbeError::Phase {
                    path: revision.path.clone(),
                    error,
                }
            })?;
        }
        graph.revisions = topological(graph.revisions);
        Ok(graph)
    }

    pub fn get(&self, revision: &str) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.revision == revision)
    }

    /// `revisions` and all their ancestors.
    pub fn ancestry(&self, revisions: &[String]) -> HashSet<String> {
        let by_id: HashMap<&str, &Revision> = self
            .revisions
            .iter()
            .map(|r| (r.revision.as_str(), r))
            .collect();
        let mut seen = HashSet::new();
        let mut stack: Vec<String> = revisions.to_vec();
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(rev) = by_id.get(id.as_str()) {
                stack.extend(rev.down_revisions.iter().cloned());
            }
        }
        seen
    }

    /// The revisions an upgrade from `current` to `targets` (one, or every head)
    /// runs, in the order it runs them.
    pub fn pending(&self, current: &[String], targets: &[String]) -> Vec<&Revision> {
        let done = self.ancestry(current);
        let wanted = self.ancestry(targets);
        self.revisions
            .iter()
            .filter(|r| wanted.contains(&r.revision) && !done.contains(&r.revision))
            .collect()
    }

    /// The revision `to` names, from `current`: `None` for base. `to` is a revision id
    /// or the start of one (as Alembic takes it), `base`, or `-N`: N steps back from
    /// the one current revision, refused across a merge (which parent?). `Err` says why
    /// it names none: a typo must never undo everything.
    pub fn resolve(&self, current: &[String], to: &str) -> Result<Option<String>, GoalError> {
        if to == "base" {
            return Ok(None);
        }
        if let Some(steps) = crate::migrations::steps_back(to) {
            let mut at = match current {
                [one] => one.clone(),
                [] => return Err(GoalError::NothingApplied { to: to.into() }),
                many => {
                    return Err(GoalError::SeveralCurrent {
                        to: to.into(),
                        heads: many.join(" + "),
                    })
                }
            };
            for step in 1..=steps {
                let rev = self.get(&at).ok_or_else(|| GoalError::MissingRevision {
                    to: to.into(),
                    revision: at.clone(),
                    place: self.script_location.clone(),
                })?;
                match rev.down_revisions.as_slice() {
                    [] if step == steps => return Ok(None),
                    [] => {
                        return Err(GoalError::PastBase {
                            to: to.into(),
                            applied: GoalError::applied(step, "revision"),
                        })
                    }
                    [parent] => at = parent.clone(),
                    _ => {
                        return Err(GoalError::ThroughMerge {
                            to: to.into(),
                            merge: rev.label(),
                        })
                    }
                }
            }
            return Ok(Some(at));
        }
        if self.get(to).is_some() {
            return Ok(Some(to.to_string()));
        }
        let starting: Vec<&str> = self
            .revisions
            .iter()
            .map(|r| r.revision.as_str())
            .filter(|r| r.starts_with(to))
            .collect();
        match starting.as_slice() {
            // As Alembic: a start of at least 4 characters, so a stray letter names
            // nothing.
            [_, ..] if to.chars().count() < 4 => Err(GoalError::TooShort {
                to: to.into(),
                place: self.script_location.clone(),
            }),
            [one] => Ok(Some(one.to_string())),
            [] => Err(GoalError::Unknown {
                to: to.into(),
                what: "revision",
                place: self.script_location.clone(),
            }),
            many => Err(GoalError::Ambiguous {
                to: to.into(),
                candidates: many.iter().map(|r| r.to_string()).collect(),
            }),
        }
    }

    /// The revisions a downgrade from `current` to `target` undoes, newest first.
    pub fn undone_by_downgrade(&self, current: &[String], target: Option<&str>) -> Vec<&Revision> {
        let kept = match target {
            Some(t) => self.ancestry(&[t.to_string()]),
            None => HashSet::new(),
        };
        let now = self.ancestry(current);
        self.revisions
            .iter()
            .rev()
            .filter(|r| now.contains(&r.revision) && !kept.contains(&r.revision))
            .collect()
    }
}

/// Orders revisions so each comes after its parents, keeping the probe's order
/// otherwise (so the result is stable).
fn topological(revisions: Vec<Revision>) -> Vec<Revision> {
    let ids: HashSet<String> = revisions.iter().map(|r| r.revision.clone()).collect();
    let mut placed: HashSet<String> = HashSet::new();
    let mut remaining = revisions;
    let mut ordered = Vec::with_capacity(remaining.len());
    while !remaining.is_empty() {
        let before = remaining.len();
        let mut rest = Vec::new();
        for rev in remaining {
            let ready = rev
                .down_revisions
                .iter()
                .all(|d| placed.contains(d) || !ids.contains(d));
            if ready {
                placed.insert(rev.revision.clone());
                ordered.push(rev);
            } else {
                rest.push(rev);
            }
        }
        if rest.len() == before {
            ordered.extend(rest); // a cycle: Alembic refuses those itself
            break;
        }
        remaining = rest;
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(id: &str, downs: &[&str]) -> Revision {
        Revision {
            revision: id.into(),
            down_revisions: downs.iter().map(|d| d.to_string()).collect(),
            branch_labels: vec![],
            message: String::new(),
            path: String::new(),
            is_merge: downs.len() > 1,
            downgrade: Downgrade::Ok,
            allows_missing_downgrade: false,
            literal_sql: Vec::new(),
            phase: crate::migrations::Phase::Pre,
        }
    }

    fn graph(revisions: Vec<Revision>) -> Graph {
        Graph {
            alembic_version: "1".into(),
            script_location: String::new(),
            heads: vec![],
            revisions: topological(revisions),
            env_py: String::new(),
            transaction_per_migration: Some(false),
        }
    }

    fn ids(revs: Vec<&Revision>) -> Vec<&str> {
        revs.iter().map(|r| r.revision.as_str()).collect()
    }

    #[test]
    fn a_downgrade_target_is_resolved_from_the_current_revision() {
        // a1 ← b2 ← (c3, c4) ← d5 (merge) ← e6
        let g = graph(vec![
            rev("a1aa", &[]),
            rev("b2bb", &["a1aa"]),
            rev("c3cc", &["b2bb"]),
            rev("c4cc", &["b2bb"]),
            rev("d5dd", &["c3cc", "c4cc"]),
            rev("e6ee", &["d5dd"]),
        ]);
        let at = |r: &str| vec![r.to_string()];
        assert_eq!(g.resolve(&at("e6ee"), "-1"), Ok(Some("d5dd".into())));
        assert_eq!(g.resolve(&at("b2bb"), "-1"), Ok(Some("a1aa".into())));
        assert_eq!(g.resolve(&at("b2bb"), "-2"), Ok(None), "back to base");
        assert!(g
            .resolve(&at("b2bb"), "-3")
            .unwrap_err()
            .to_string()
            .contains("past base"));
        assert!(g
            .resolve(&at("e6ee"), "-2")
            .unwrap_err()
            .to_string()
            .contains("through the merge d5dd"));
        assert!(g
            .resolve(&[], "-1")
            .unwrap_err()
            .to_string()
            .contains("none is applied"));
        assert!(g
            .resolve(&[at("c3cc"), at("c4cc")].concat(), "-1")
            .unwrap_err()
            .to_string()
            .contains("c3cc + c4cc"));
        assert_eq!(g.resolve(&at("e6ee"), "base"), Ok(None));
        assert_eq!(g.resolve(&at("e6ee"), "d5dd"), Ok(Some("d5dd".into())));
        assert!(g
            .resolve(&at("e6ee"), "d5")
            .unwrap_err()
            .to_string()
            .contains("at least 4 characters"));
        assert!(g
            .resolve(&at("e6ee"), "c")
            .unwrap_err()
            .to_string()
            .contains("at least 4 characters"));
        let long = graph(vec![rev("ab12cd34", &[]), rev("ab12ef56", &["ab12cd34"])]);
        let head = at("ab12ef56");
        assert_eq!(
            long.resolve(&head, "ab12c"),
            Ok(Some("ab12cd34".into())),
            "a unique start"
        );
        assert!(long
            .resolve(&head, "ab12")
            .unwrap_err()
            .to_string()
            .contains("start of 2 revisions"));
        assert!(g
            .resolve(&at("e6ee"), "zz")
            .unwrap_err()
            .to_string()
            .contains("no revision `zz`"));
        assert!(g.resolve(&at("e6ee"), "").is_err());
    }

    #[test]
    fn pending_runs_parents_first_through_a_merge() {
        // Listed out of order on purpose: the merge before one of its parents.
        let g = graph(vec![
            rev("a", &[]),
            rev("b", &["a"]),
            rev("m", &["c1", "c2"]),
            rev("c1", &["b"]),
            rev("c2", &["b"]),
            rev("e", &["m"]),
        ]);
        assert_eq!(
            ids(g.pending(&[], &["e".into()])),
            ["a", "b", "c1", "c2", "m", "e"]
        );
        assert_eq!(
            ids(g.pending(&["b".into()], &["e".into()])),
            ["c1", "c2", "m", "e"]
        );
        // Half the branches applied (two rows in the version table).
        assert_eq!(
            ids(g.pending(&["c1".into()], &["e".into()])),
            ["c2", "m", "e"]
        );
        assert!(g.pending(&["e".into()], &["e".into()]).is_empty());
    }

    #[test]
    fn downgrade_undoes_newest_first_down_to_the_target() {
        let g = graph(vec![rev("a", &[]), rev("b", &["a"]), rev("c", &["b"])]);
        assert_eq!(
            ids(g.undone_by_downgrade(&["c".into()], Some("a"))),
            ["c", "b"]
        );
        assert_eq!(
            ids(g.undone_by_downgrade(&["c".into()], None)),
            ["c", "b", "a"]
        );
    }

    #[test]
    fn a_merges_empty_downgrade_is_fine_anothers_is_not() {
        let mut merge = rev("m", &["a", "b"]);
        merge.downgrade = Downgrade::Empty;
        assert!(merge.downgrade_problem().is_none());
        let mut plain = rev("p", &["a"]);
        plain.downgrade = Downgrade::Raises;
        assert!(plain.downgrade_problem().is_some());
        plain.downgrade = Downgrade::Empty;
        assert!(plain.downgrade_problem().is_some());
    }

    #[test]
    fn an_empty_downgrade_the_file_allows_steps_back() {
        let mut data = rev("d", &["a"]);
        data.downgrade = Downgrade::Empty;
        data.allows_missing_downgrade = true;
        assert!(data.downgrade_problem().is_none());
        // Allowed or not, one that raises or is missing cannot run.
        data.downgrade = Downgrade::Raises;
        assert!(data.downgrade_problem().is_some());
    }

    #[test]
    fn probe_errors_are_reported_as_such() {
        let err = Graph::parse(r#"{"error": "CommandError: No 'script_location' key found"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("script_location"), "{err}");
    }
}
