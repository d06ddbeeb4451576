//! Retention: which backups `prune` may delete. Pure logic, tested on its own.
//!
//! Only verified backups count and only verified backups are deleted: an unverified
//! backup proves nothing, so it can neither satisfy `keep_last` nor be trusted to be
//! the last good one. The newest verified backup is never deleted, whatever the rules.
//! Nor is one whose objects S3 Object Lock still protects (its manifest says until
//! when): the store would refuse, and the listing says why it stays.

use chrono::{DateTime, Duration, Utc};

pub use crate::config::Retention;
use crate::storage::Listed;

#[derive(Debug, Default, serde::Serialize)]
pub struct Decision {
    /// (id, why it stays)
    pub keep: Vec<(String, String)>,
    pub delete: Vec<String>,
    /// Unverified backups: neither counted nor deleted.
    pub unverified: Vec<String>,
}

/// `listed` newest first, as storage lists it. Each database's backups are counted on
/// their own: a folder or prefix shared by several databases never lets one database's
/// backups push out another's last good one.
pub fn decide(listed: &[Listed], rules: Retention, now: DateTime<Utc>) -> Decision {
    let mut decision = Decision::default();
    let mut verified_seen: std::collections::HashMap<&str, u32> = Default::default();
    for backup in listed {
        let id = backup.manifest.id.clone();
        if backup.verified_at.is_none() {
            decision.unverified.push(id);
            continue;
        }
        let seen = verified_seen
            .entry(backup.manifest.database.as_str())
            .or_default();
        *seen += 1;
        let verified_seen = *seen;
        let age = DateTime::parse_from_rfc3339(&backup.manifest.started_at)
            .map(|t| now - t.with_timezone(&Utc))
            .unwrap_or(Duration::zero());
        let reason = if verified_seen == 1 {
            Some("the newest verified backup".to_string())
        } else if verified_seen <= rules.keep_last {
            Some(format!("among the newest {} verified", rules.keep_last))
        } else if age < Duration::days(rules.keep_days as i64) {
            Some(format!("younger than {} days", rules.keep_days))
        } else {
            None
        };
        let locked = backup
            .manifest
            .locked_until
            .as_deref()
            .filter(|until| DateTime::parse_from_rfc3339(until).is_ok_and(|t| t > now));
        match (reason, locked) {
            (Some(why), _) => decision.keep.push((id, why)),
            (None, Some(until)) => decision
                .keep
                .push((id, format!("locked by S3 Object Lock until {until}"))),
            (None, None) => decision.delete.push(id),
        }
    }
    decision
}

/// Lists, decides, and (when `delete`) deletes. Manifest first, so a half-deleted
/// backup is never listed.
pub async fn prune(
    storage: &crate::storage::Storage,
    rules: Retention,
    delete: bool,
) -> Result<Decision, crate::storage::StorageError> {
    let listed = storage.list().await?;
    let decision = decide(&listed, rules, Utc::now());
    if delete {
        for id in &decision.delete {
            storage.delete(id).await?;
        }
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::Manifest;

    fn backup(id: &str, days_ago: i64, verified: bool, now: DateTime<Utc>) -> Listed {
        Listed {
            manifest: Manifest {
                manifest_version: 1,
                id: id.into(),
                object: String::new(),
                format: String::new(),
                database: "shop".into(),
                host: String::new(),
                server_version: String::new(),
                pg_dump_version: String::new(),
                revision: None,
                schema: "public".into(),
                raw_bytes: 1,
                compressed_bytes: 1,
                sha256: String::new(),
                started_at: (now - Duration::days(days_ago)).to_rfc3339(),
                finished_at: String::new(),
                run_id: String::new(),
                tool: String::new(),
                server_major: None,
                write_counter: None,
                sealed: None,
                locked_until: None,
            },
            verified_at: verified.then(|| now.to_rfc3339()),
            location: String::new(),
        }
    }

    #[test]
    fn keeps_the_newest_verified_even_when_every_rule_says_delete() {
        let now = Utc::now();
        let listed = [
            backup("new-unverified", 0, false, now),
            backup("old-verified", 400, true, now),
        ];
        let d = decide(
            &listed,
            Retention {
                keep_last: 0,
                keep_days: 0,
            },
            now,
        );
        assert_eq!(d.keep[0].0, "old-verified");
        assert!(d.delete.is_empty());
        assert_eq!(d.unverified, ["new-unverified"]);
    }

    #[test]
    fn each_database_keeps_its_own_newest_verified() {
        let now = Utc::now();
        let mut other = backup("other-db", 400, true, now);
        other.manifest.database = "billing".into();
        let listed = [backup("shop-new", 0, true, now), other];
        let d = decide(
            &listed,
            Retention {
                keep_last: 1,
                keep_days: 0,
            },
            now,
        );
        assert!(d.delete.is_empty(), "{:?}", d.delete);
    }

    #[test]
    fn keep_last_counts_only_verified() {
        let now = Utc::now();
        let listed = [
            backup("a", 1, true, now),
            backup("b", 2, false, now),
            backup("c", 3, true, now),
            backup("d", 4, true, now),
        ];
        let d = decide(
            &listed,
            Retention {
                keep_last: 2,
                keep_days: 0,
            },
            now,
        );
        let kept: Vec<&str> = d.keep.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(kept, ["a", "c"]);
        assert_eq!(d.delete, ["d"]);
    }

    #[test]
    fn keep_days_keeps_recent_ones_beyond_keep_last() {
        let now = Utc::now();
        let listed = [
            backup("a", 1, true, now),
            backup("b", 5, true, now),
            backup("c", 40, true, now),
        ];
        let d = decide(
            &listed,
            Retention {
                keep_last: 1,
                keep_days: 30,
            },
            now,
        );
        assert_eq!(d.delete, ["c"]);
        assert_eq!(d.keep.len(), 2);
    }
}
