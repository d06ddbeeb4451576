//! A deploy of one release phase ([`crate::migrations::phase`]): `--phase pre` runs the
//! pending expand-step migrations and holds the contract step (`post`) back;
//! `--phase post` runs everything pending. Holding a migration back while a newer one
//! runs leaves it pending out of order; where the ledger cannot record that, or the
//! team's tool would refuse to apply it later, the deploy refuses up front and says
//! what works instead.

use std::collections::HashSet;

use super::alembic::Graph;
use super::Snapshot;
use crate::migrations::Phase;

/// Why a `--phase pre` deploy cannot hold the contract step back. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldBackError {
    #[error("--phase pre would apply {newer} and hold back the older post-phase {held}, leaving it pending out of order, and {why}. Give {held} a version after every pre-phase migration of this release (rename its file), or deploy without --phase once the old code is gone")]
    OutOfOrder {
        held: String,
        newer: String,
        /// Why the ledger cannot keep it pending that way.
        why: String,
    },
    #[error("--phase pre cannot run revision {pre} without {post}, a post-phase revision it comes after (Alembic applies a revision only after every revision before it in the chain). Put the pre-phase revision first: make {post_id}'s down_revision the newest pre-phase revision, or mark {pre_id} `# ballast:phase post` too; or deploy without --phase once the old code is gone")]
    BehindPost {
        pre: String,
        post: String,
        pre_id: String,
        post_id: String,
    },
    #[error("--phase pre would end on several revisions ({tops}), on separate branches: Alembic upgrades to one; merge them (alembic merge) or give them one line")]
    SeveralTops { tops: String },
}

impl Snapshot {
    /// The same state aimed at the upgrade's `goal` (the head without one), and cut
    /// to `phase`: what a run's upgrade applies. The error says why it cannot be.
    pub fn aimed(&self, goal: Option<&str>, phase: Option<Phase>) -> Result<Snapshot, String> {
        let aimed = match goal {
            Some(goal) => self.aimed_at(goal).map_err(|e| e.to_string())?,
            None => self.clone(),
        };
        aimed.in_phase(phase).map_err(|e| e.to_string())
    }

    /// The same state, aimed at what a deploy of `phase` runs: the post-phase
    /// migrations held back for `pre`; everything for `post`, or without a phase.
    pub fn in_phase(&self, phase: Option<Phase>) -> Result<Snapshot, HoldBackError> {
        let Some(phase @ Phase::Pre) = phase else {
            return Ok(self.clone());
        };
        match self {
            Snapshot::Sql(s) => {
                let mut cut = s.clone();
                let (kept, held): (Vec<usize>, Vec<usize>) = s
                    .state
                    .pending
                    .iter()
                    .partition(|&&i| s.source[i].phase.runs_in(phase));
                if let (Some(&first_held), Some(&last_kept)) = (held.first(), kept.last()) {
                    if first_held < last_kept && s.state.post_out_of_order.is_none() {
                        return Err(HoldBackError::OutOfOrder {
                            held: s.source[first_held].label(),
                            newer: s.source[last_kept].label(),
                            why: s.why_not_held(),
                        });
                    }
                }
                cut.state.pending = kept;
                cut.state.held_back = held;
                Ok(Snapshot::Sql(cut))
            }
            Snapshot::Alembic(a) => {
                if !a.unknown().is_empty() {
                    return Ok(self.clone());
                }
                let mut cut = a.clone();
                // Towards the goal, or every head (post-phase revisions may be on a
                // branch of their own: then the pre line's top is the goal).
                let heads = match a.target() {
                    Some(target) => vec![target.to_string()],
                    None => a.graph.heads.clone(),
                };
                let pending = a.graph.pending(a.current(), &heads);
                let ids: Vec<String> = pending.iter().map(|r| r.revision.clone()).collect();
                let held: Vec<String> = pending
                    .iter()
                    .filter(|r| !r.phase.runs_in(phase))
                    .map(|r| r.revision.clone())
                    .collect();
                let run: Vec<String> = ids.iter().filter(|r| !held.contains(r)).cloned().collect();
                if let Some(goal) = pre_goal(&a.graph, &ids, &run, &held)? {
                    cut.goal = Some(goal);
                }
                cut.held_back = held;
                Ok(Snapshot::Alembic(cut))
            }
        }
    }

    /// Where a deploy of this state ends, as a label: the head, or with the contract
    /// step held back, the last migration that runs (what is applied, when none does).
    pub fn aim_label(&self) -> Option<String> {
        if self.held_back_labels().is_empty() {
            return self.head_label();
        }
        self.pending_labels().pop().or_else(|| self.current_label())
    }

    /// The pending migrations a `--phase pre` deploy leaves for later (see
    /// [`Snapshot::in_phase`]), as labels.
    pub fn held_back_labels(&self) -> Vec<String> {
        match self {
            Snapshot::Sql(s) => s
                .state
                .held_back
                .iter()
                .map(|&i| s.source[i].label())
                .collect(),
            Snapshot::Alembic(a) => a
                .held_back
                .iter()
                .map(|id| a.graph.get(id).map(|r| r.label()).unwrap_or(id.clone()))
                .collect(),
        }
    }

    /// The pending migrations of the contract step, as labels (a subset of
    /// [`Snapshot::pending_labels`]).
    pub fn pending_post_labels(&self) -> Vec<String> {
        match self {
            Snapshot::Sql(s) => s
                .pending()
                .iter()
                .filter(|m| m.phase == Phase::Post)
                .map(|m| m.label())
                .collect(),
            Snapshot::Alembic(a) => a
                .pending()
                .iter()
                .filter(|r| r.phase == Phase::Post)
                .map(|r| r.label())
                .collect(),
        }
    }
}

impl super::sql::SqlSnapshot {
    /// Why this target's ledger cannot keep a migration pending behind newer ones.
    fn why_not_held(&self) -> String {
        use crate::migrations::Tool;
        match (self.ledger.ledger.tool(), self.state.out_of_order_applied.is_some()) {
            (Some(Tool::GolangMigrate), _) => "golang-migrate's ledger keeps one version: it would say the held-back migration is applied".into(),
            (Some(Tool::Flyway), _) => "Flyway refuses to apply it later unless its outOfOrder setting is on (with it on, set [migrations] out_of_order = \"apply\" too)".into(),
            _ => "[migrations] out_of_order = \"refuse\" forbids that".into(),
        }
    }
}

/// Where an Alembic `--phase pre` upgrade stops: `None` when it leaves the goal as it
/// was (everything pending runs, or nothing does), else the one revision every
/// revision of `run` leads to. `pending`: the revisions an upgrade to the goal runs;
/// `held`: the post-phase ones among them.
fn pre_goal(
    graph: &Graph,
    pending: &[String],
    run: &[String],
    held: &[String],
) -> Result<Option<String>, HoldBackError> {
    if held.is_empty() || run.is_empty() {
        return Ok(None);
    }
    let pending: HashSet<&String> = pending.iter().collect();
    for id in run {
        let before = graph.ancestry(std::slice::from_ref(id));
        if let Some(post) = held.iter().find(|h| before.contains(*h)) {
            let label = |id: &str| graph.get(id).map(|r| r.label()).unwrap_or(id.into());
            return Err(HoldBackError::BehindPost {
                pre: label(id),
                post: label(post),
                pre_id: id.clone(),
                post_id: post.clone(),
            });
        }
    }
    // The tops: revisions of `run` no other revision of `run` comes after.
    let tops: Vec<&String> = run
        .iter()
        .filter(|id| {
            !run.iter().any(|other| {
                other != *id && graph.ancestry(std::slice::from_ref(other)).contains(*id)
            })
        })
        .filter(|id| pending.contains(id))
        .collect();
    match tops.as_slice() {
        [one] => Ok(Some((*one).clone())),
        many => Err(HoldBackError::SeveralTops {
            tops: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::alembic::graph::Revision;

    fn graph(revs: &[(&str, &[&str], Phase)]) -> Graph {
        Graph {
            alembic_version: "1.13".into(),
            script_location: "alembic".into(),
            heads: Vec::new(),
            revisions: revs
                .iter()
                .map(|(id, downs, phase)| Revision {
                    revision: id.to_string(),
                    down_revisions: downs.iter().map(|d| d.to_string()).collect(),
                    branch_labels: Vec::new(),
                    message: String::new(),
                    path: String::new(),
                    is_merge: downs.len() > 1,
                    downgrade: crate::engine::alembic::graph::Downgrade::Ok,
                    allows_missing_downgrade: false,
                    literal_sql: Vec::new(),
                    phase: *phase,
                })
                .collect(),
            env_py: String::new(),
            transaction_per_migration: None,
        }
    }

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_alembic_pre_upgrade_stops_before_the_post_revisions_at_the_chains_end() {
        use Phase::*;
        let g = graph(&[("a", &[], Pre), ("b", &["a"], Pre), ("c", &["b"], Post)]);
        let goal = pre_goal(
            &g,
            &strings(&["a", "b", "c"]),
            &strings(&["a", "b"]),
            &strings(&["c"]),
        );
        assert_eq!(goal, Ok(Some("b".into())));
        // Nothing held back, or nothing to run: the goal stays.
        assert_eq!(
            pre_goal(&g, &strings(&["a", "b"]), &strings(&["a", "b"]), &[]),
            Ok(None)
        );
        assert_eq!(
            pre_goal(&g, &strings(&["c"]), &[], &strings(&["c"])),
            Ok(None)
        );
    }

    #[test]
    fn a_pre_revision_after_a_post_one_in_the_chain_is_refused_naming_both() {
        use Phase::*;
        let g = graph(&[("a", &[], Pre), ("b", &["a"], Post), ("c", &["b"], Pre)]);
        let err = pre_goal(
            &g,
            &strings(&["a", "b", "c"]),
            &strings(&["a", "c"]),
            &strings(&["b"]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, HoldBackError::BehindPost { pre_id, post_id, .. } if pre_id == "c" && post_id == "b")
        );
        assert!(err.to_string().contains("down_revision"), "{err}");
    }

    #[test]
    fn post_revisions_on_a_branch_of_their_own_leave_the_pre_line_to_run() {
        use Phase::*;
        // a → b (pre), and a → p (post): the pre line's top is b.
        let g = graph(&[("a", &[], Pre), ("b", &["a"], Pre), ("p", &["a"], Post)]);
        let goal = pre_goal(
            &g,
            &strings(&["b", "p"]),
            &strings(&["b"]),
            &strings(&["p"]),
        );
        assert_eq!(goal, Ok(Some("b".into())));
        // Two pre branches: Alembic upgrades to one revision.
        let g = graph(&[
            ("a", &[], Pre),
            ("b", &["a"], Pre),
            ("d", &["a"], Pre),
            ("p", &["b"], Post),
        ]);
        let err = pre_goal(
            &g,
            &strings(&["b", "d", "p"]),
            &strings(&["b", "d"]),
            &strings(&["p"]),
        );
        assert!(
            matches!(err, Err(HoldBackError::SeveralTops { .. })),
            "{err:?}"
        );
    }
}
