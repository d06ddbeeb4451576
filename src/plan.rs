//! The plan: exactly which migrations will run, and a hash that pins it.
//!
//! The preview shows a plan and the upgrade re-computes it under the deploy lock; if
//! the hashes differ, what would run is not what was shown, and the run refuses.

use sha2::{Digest, Sha256};

use crate::migrations::Migration;

/// The first line of a revision offline mode could not render (its reason follows).
pub const UNRENDERED: &str = "-- offline mode cannot render this revision: ";
/// What precedes the `op.execute()` SQL read from such a revision's file.
pub const READ_FROM_FILE: &str = "\n-- its op.execute() SQL, read from the file:\n";

/// Whether `sql` is what offline mode put in place of a revision it could not render.
pub fn is_unrendered(sql: &str) -> bool {
    sql.starts_with(UNRENDERED)
}

/// The revisions of `plan` whose SQL could not be rendered, so the lint read nothing of
/// them: `rev (message): why`, for `check`, `plan` and the preview to name.
pub fn unrendered(plan: &Plan) -> Vec<String> {
    plan.migrations
        .iter()
        .filter_map(|m| {
            let first = m.sql.lines().next()?;
            let why = first
                .strip_prefix(UNRENDERED)
                .or_else(|| first.strip_prefix("-- SQL not available: "))?;
            let partly = m.sql.contains(READ_FROM_FILE);
            Some(match partly {
                true => format!(
                    "{} ({}) was linted only from the SQL its file hands op.execute(): offline mode cannot render it ({why}); review the rest of its file by hand",
                    m.version, m.name
                ),
                false => format!(
                    "{} ({}) was not linted: offline mode cannot render it ({why}); it runs online as usual, so review its file by hand",
                    m.version, m.name
                ),
            })
        })
        .collect()
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedMigration {
    pub version: String,
    pub name: String,
    pub checksum: String,
    pub transactional: bool,
    pub file: String,
    pub sql: String,
    /// How it runs, when the engine says more than `transactional` can (Alembic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Why the deploy transaction commits right after this migration (and the next
    /// ones run in a new one): see [`crate::migrations::commit_point`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commits_after: Option<String>,
    /// The release phase it belongs to (`post`: the contract step).
    pub phase: crate::migrations::Phase,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub migrations: Vec<PlannedMigration>,
    pub hash: String,
}

impl Plan {
    pub fn new(pending: &[&Migration]) -> Plan {
        Plan::from_planned(
            pending
                .iter()
                .map(|m| PlannedMigration {
                    version: m.version.to_string(),
                    name: m.name.clone(),
                    checksum: m.checksum.clone(),
                    transactional: m.transactional,
                    file: m.up_path.display().to_string(),
                    sql: m.up_sql.clone(),
                    mode: None,
                    commits_after: m
                        .transactional
                        .then(|| crate::migrations::commit_point::commit_after(&m.up_sql))
                        .flatten(),
                    phase: m.phase,
                })
                .collect(),
        )
    }

    /// Pins `migrations` as they are now (SQL filled in later is not part of the hash).
    pub fn from_planned(migrations: Vec<PlannedMigration>) -> Plan {
        let mut hasher = Sha256::new();
        for m in &migrations {
            // Length-prefixed fields: no two different plans can hash alike by concatenation.
            for field in [&m.version, &m.name, &m.checksum] {
                hasher.update((field.len() as u64).to_le_bytes());
                hasher.update(field.as_bytes());
            }
            hasher.update([m.transactional as u8]);
            // The checksum ignores trailing whitespace; what runs is the raw text, and
            // the plan pins exactly what runs.
            hasher.update(Sha256::digest(m.sql.as_bytes()));
        }
        Plan {
            migrations,
            hash: hex::encode(hasher.finalize()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    /// The first 12 hex digits, for people.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }

    pub fn target(&self) -> Option<&PlannedMigration> {
        self.migrations.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::{checksum::checksum, Version};

    fn m(v: &str, sql: &str, transactional: bool) -> Migration {
        Migration {
            version: Version::parse(v).unwrap(),
            name: "x".into(),
            up_path: "x.sql".into(),
            up_sql: sql.into(),
            down_sql: None,
            checksum: checksum(sql),
            transactional,
            down_transactional: true,
            phase: crate::migrations::Phase::Pre,
        }
    }

    #[test]
    fn hash_changes_with_content_order_and_mode() {
        let (a, b) = (m("1", "select 1", true), m("2", "select 2", true));
        let base = Plan::new(&[&a, &b]).hash;
        assert_eq!(base, Plan::new(&[&a, &b]).hash);
        assert_ne!(base, Plan::new(&[&b, &a]).hash);
        assert_ne!(base, Plan::new(&[&a, &m("2", "select 3", true)]).hash);
        assert_ne!(base, Plan::new(&[&a, &m("2", "select 2", false)]).hash);
        assert_ne!(base, Plan::new(&[&a]).hash);
    }
}
