//! Comparing the migration files with the ledger: pending, drift, unknown, out of order;
//! and Flyway's repeatable migrations, pending again whenever their file changed.
//!
//! Pure logic over what the engine read; the `state-check` stage turns the result into
//! diagnoses and `status` into a summary.

use crate::db::ledger::AppliedRow;
use crate::migrations::{Migration, Version};

/// A migration whose file changed after it was applied.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drift {
    pub version: String,
    pub name: String,
    pub file: String,
    pub applied_checksum: String,
    pub file_checksum: String,
    pub applied_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    /// Index into the source list, in order.
    pub pending: Vec<usize>,
    pub drift: Vec<Drift>,
    /// Applied versions with no file: deleted, renamed, or from another branch.
    pub unknown: Vec<AppliedRow>,
    /// Pending migrations older than the newest applied one (a branch merged late).
    pub out_of_order: Vec<usize>,
    /// Why those are applied where they stand rather than refused (the ledger's tool
    /// applies them too, or the settings say so); `None`: they block the deploy.
    pub out_of_order_applied: Option<String>,
    /// Why a post-phase migration may stay pending while newer ones are applied, and
    /// be applied later where it stands (the ledger records it, and its tool would
    /// apply it too); `None`: it cannot be held back behind a newer one.
    pub post_out_of_order: Option<String>,
    /// Pending migrations a `--phase pre` deploy leaves for after the rollout.
    pub held_back: Vec<usize>,
    /// Index into the source list of every post-phase migration.
    pub post: Vec<usize>,
    /// Rows the tool left for a migration that failed half-way (sqlx's dirty rows).
    pub failed: Vec<AppliedRow>,
    /// Tables in the schema of a database with no ledger at all, while migrations are
    /// pending: whether those migrations built them, nothing says.
    pub untracked: Vec<String>,
    /// The newest applied version that has a file (repeatable migrations have none).
    pub current: Option<Version>,
    pub applied_count: usize,
}

impl State {
    /// A deploy may proceed only from a clean state.
    pub fn is_blocked(&self) -> bool {
        !self.drift.is_empty()
            || !self.unknown.is_empty()
            || self.out_of_order_blocking() > 0
            || !self.failed.is_empty()
            || !self.untracked.is_empty()
    }

    /// Why the out-of-order migration at `index` is applied where it stands (see
    /// [`State::out_of_order_applied`], [`State::post_out_of_order`]); `None`: it
    /// blocks the deploy.
    pub fn out_of_order_reason(&self, index: usize) -> Option<&str> {
        self.out_of_order_applied.as_deref().or(self
            .post
            .contains(&index)
            .then_some(self.post_out_of_order.as_deref())
            .flatten())
    }

    /// How many out-of-order migrations block the deploy.
    pub fn out_of_order_blocking(&self) -> usize {
        self.out_of_order
            .iter()
            .filter(|&&i| self.out_of_order_reason(i).is_none())
            .count()
    }
}

/// Compares the files with the ledger's rows; `checksum_of` gives a file's checksum
/// as the ledger keeps it (`None`: it keeps none, and drift cannot be seen in it).
pub fn compare(
    source: &[Migration],
    applied: &[AppliedRow],
    checksum_of: impl Fn(&Migration) -> Option<String>,
) -> State {
    let mut state = State {
        applied_count: applied.len(),
        failed: applied.iter().filter(|r| r.failed).cloned().collect(),
        ..State::default()
    };
    let applied_by_version: std::collections::HashMap<Version, &AppliedRow> = applied
        .iter()
        .filter_map(|row| Version::parse(&row.version).map(|v| (v, row)))
        .collect();
    for row in applied {
        let known =
            Version::parse(&row.version).is_some_and(|v| source.iter().any(|m| m.version == v));
        // A failed row without a file (golang-migrate's dirty "no version") is said
        // once, as failed.
        if !known && !row.failed {
            state.unknown.push(row.clone());
        }
    }
    // The files are in the order their tool runs them (diesel's is not numeric): a
    // pending file is out of order when an applied one comes after it.
    let newest_applied = source
        .iter()
        .rposition(|m| !m.version.is_repeatable() && applied_by_version.contains_key(&m.version));
    for (index, migration) in source.iter().enumerate() {
        if migration.phase == crate::migrations::Phase::Post {
            state.post.push(index);
        }
        let row = applied_by_version.get(&migration.version);
        if migration.version.is_repeatable() {
            // Flyway's repeatable migration runs again whenever its file changed: a
            // changed checksum makes it pending, not drift.
            let changed = row.is_none_or(|row| {
                !row.failed && checksum_of(migration).is_some_and(|sum| sum != row.checksum)
            });
            if changed {
                state.pending.push(index);
            }
            continue;
        }
        match row {
            Some(row) => {
                state.current = Some(migration.version.clone());
                let file_checksum = checksum_of(migration);
                if let Some(file_checksum) = file_checksum.filter(|sum| *sum != row.checksum) {
                    state.drift.push(Drift {
                        version: migration.version.to_string(),
                        name: migration.name.clone(),
                        file: migration.up_path.display().to_string(),
                        applied_checksum: row.checksum.clone(),
                        file_checksum,
                        applied_at: row
                            .applied_at
                            .map(|at| at.to_rfc3339())
                            .unwrap_or_else(|| "an unrecorded date".into()),
                    });
                }
            }
            None => {
                state.pending.push(index);
                if newest_applied.is_some_and(|newest| index < newest) {
                    state.out_of_order.push(index);
                }
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::checksum::checksum;

    fn migration(v: &str, sql: &str) -> Migration {
        Migration {
            version: Version::parse(v).unwrap(),
            name: format!("m{v}"),
            up_path: format!("{v}_m.sql").into(),
            up_sql: sql.into(),
            down_sql: None,
            checksum: checksum(sql),
            transactional: true,
            down_transactional: true,
            phase: crate::migrations::Phase::Pre,
        }
    }

    #[test]
    fn a_changed_repeatable_migration_is_pending_again_not_drift() {
        let view = |sql: &str| Migration {
            version: Version::repeatable("views").unwrap(),
            name: "views".into(),
            up_path: "R__views.sql".into(),
            ..migration("1", sql)
        };
        let source = vec![migration("1", "a"), migration("2", "b"), view("v2")];
        let applied = vec![row("1", "a"), row("R__views", "v1")];
        let state = compare(&source, &applied, own);
        assert_eq!(state.pending, vec![1, 2], "2, then the changed view");
        assert!(state.drift.is_empty() && state.out_of_order.is_empty());
        assert_eq!(state.current, Some(Version::parse("1").unwrap()));
        let same = vec![row("1", "a"), row("2", "b"), row("R__views", "v2")];
        assert!(compare(&source, &same, own).pending.is_empty());
    }

    /// ballast's own checksum, as its ledger keeps it.
    fn own(m: &Migration) -> Option<String> {
        Some(m.checksum.clone())
    }

    fn row(v: &str, sql: &str) -> AppliedRow {
        AppliedRow {
            version: v.into(),
            name: format!("m{v}"),
            checksum: checksum(sql),
            applied_at: Some(chrono::Utc::now()),
            run_id: "r".into(),
            duration_ms: 1,
            failed: false,
        }
    }

    #[test]
    fn pending_are_the_unapplied_in_order() {
        let source = [
            migration("1", "a"),
            migration("2", "b"),
            migration("3", "c"),
        ];
        let state = compare(&source, &[row("1", "a")], own);
        assert_eq!(state.pending, vec![1, 2]);
        assert_eq!(state.current.as_ref().unwrap().as_str(), "1");
        assert!(!state.is_blocked());
    }

    #[test]
    fn edited_applied_migration_is_drift() {
        let source = [migration("1", "a edited")];
        let state = compare(&source, &[row("1", "a")], own);
        assert_eq!(state.drift.len(), 1);
        assert!(state.is_blocked());
    }

    #[test]
    fn applied_without_file_is_unknown() {
        let state = compare(&[migration("1", "a")], &[row("1", "a"), row("7", "x")], own);
        assert_eq!(state.unknown[0].version, "7");
        assert!(state.is_blocked());
    }

    #[test]
    fn pending_older_than_newest_applied_is_out_of_order() {
        let source = [
            migration("1", "a"),
            migration("2", "b"),
            migration("3", "c"),
        ];
        let state = compare(&source, &[row("1", "a"), row("3", "c")], own);
        assert_eq!(state.out_of_order, vec![1]);
    }

    #[test]
    fn a_ledger_that_keeps_no_checksum_sees_no_drift_and_a_failed_row_blocks() {
        let source = [migration("1", "a edited")];
        let state = compare(&source, &[row("1", "a")], |_| None);
        assert!(state.drift.is_empty());
        let mut dirty = row("1", "a");
        dirty.failed = true;
        let state = compare(&source, &[dirty], |_| None);
        assert_eq!(state.failed.len(), 1);
        assert!(state.is_blocked());
    }
}
