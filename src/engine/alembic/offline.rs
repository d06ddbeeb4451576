//! The SQL of a plan, from Alembic's offline mode (`upgrade START:TARGET --sql`), cut
//! per revision at the `-- Running upgrade … -> REV` comments Alembic writes.
//!
//! A revision that cannot render offline (a data migration that reads rows) stops
//! Alembic; that revision is marked as such, and rendering goes on from it, so the
//! rest of the plan still shows its SQL.

use std::collections::HashMap;

use super::process::Runner;
use super::snapshot::AlembicSnapshot;
use crate::plan::{Plan, READ_FROM_FILE, UNRENDERED};

/// Fills in `plan`'s SQL. Never fails: what cannot be rendered says why in its place.
pub async fn render(runner: &Runner, snap: &AlembicSnapshot, plan: &mut Plan) {
    // Nothing pending, nothing to render: no Alembic process at all.
    if plan.is_empty() {
        return;
    }
    let Some(target) = snap.target() else { return };
    let wanted: Vec<String> = plan.migrations.iter().map(|m| m.version.clone()).collect();
    let mut sql: HashMap<String, String> = HashMap::new();
    let mut start: Option<String> = match snap.current() {
        [] => None,
        [one] => Some(one.clone()),
        // Unmerged branches in the database: offline mode takes one starting point.
        _ => {
            fill(
                plan,
                &sql,
                "offline SQL is not available while the database is on several branches",
            );
            return;
        }
    };
    // Each failure moves the start past one revision: at most one run per revision.
    for _ in 0..=wanted.len() {
        let range = match &start {
            Some(s) => format!("{s}:{target}"),
            None => target.to_string(),
        };
        let run = match runner.alembic(&["upgrade", &range, "--sql"]).await {
            Ok(run) => run,
            Err(e) => {
                fill(plan, &sql, &e.to_string());
                return;
            }
        };
        for (revision, text) in sections(&run.stdout) {
            sql.entry(revision).or_insert(text);
        }
        if run.success {
            break;
        }
        // The revision alembic was in when it stopped: its section is incomplete.
        let Some(failed) = last_started(&format!("{}\n{}", run.stderr, run.stdout)) else {
            fill(plan, &sql, &run.reason());
            return;
        };
        // What the file hands op.execute() literally can still be read (and linted).
        let literal = snap
            .graph
            .get(&failed)
            .map(|r| r.literal_sql.clone())
            .unwrap_or_default();
        let read = match literal.is_empty() {
            true => String::new(),
            false => format!("{READ_FROM_FILE}{};", literal.join(";\n\n")),
        };
        sql.insert(
            failed.clone(),
            format!(
                "{UNRENDERED}{}\n-- (it probably reads data; it runs online as usual){read}",
                run.reason()
            ),
        );
        if failed == target {
            break;
        }
        start = Some(failed);
    }
    fill(plan, &sql, "offline mode did not reach this revision");
}

fn fill(plan: &mut Plan, sql: &HashMap<String, String>, missing: &str) {
    for m in &mut plan.migrations {
        m.sql = sql
            .get(&m.version)
            .cloned()
            .unwrap_or_else(|| format!("-- SQL not available: {missing}"));
    }
}

/// `(revision, its SQL)` in the order of the script; what precedes the first marker
/// (the version table's creation, `BEGIN;`) belongs to the first revision.
fn sections(script: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut preamble = String::new();
    for line in script.lines() {
        if let Some(revision) = line
            .strip_prefix("-- Running upgrade ")
            .and_then(upgraded_to)
        {
            let text = if out.is_empty() {
                std::mem::take(&mut preamble)
            } else {
                String::new()
            };
            out.push((revision, text));
            continue;
        }
        match out.last_mut() {
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {
                preamble.push_str(line);
                preamble.push('\n');
            }
        }
    }
    for (_, text) in &mut out {
        *text = text.trim().to_string();
    }
    out
}

/// The revision of the last `Running upgrade X -> REV` log line.
fn last_started(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| l.split_once("Running upgrade ").map(|(_, rest)| rest))
        .filter_map(upgraded_to)
        .next_back()
}

/// `X -> REV, message` (or `X, Y -> REV`) → `REV`.
pub fn upgraded_to(text: &str) -> Option<String> {
    let (_, to) = text.split_once("-> ")?;
    let revision = to
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()?
        .trim();
    (!revision.is_empty()).then(|| revision.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "BEGIN;\n\nCREATE TABLE marketplace.alembic_version (version_num VARCHAR(32) NOT NULL);\n\n-- Running upgrade  -> a1\n\nCREATE TABLE marketplace.sellers (id BIGSERIAL);\n\nINSERT INTO marketplace.alembic_version (version_num) VALUES ('a1');\n\n-- Running upgrade c3a, c3b -> d4\n\nUPDATE marketplace.alembic_version SET version_num='d4';\n\nCOMMIT;\n";

    #[test]
    fn the_script_is_cut_per_revision() {
        let s = sections(SCRIPT);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "a1");
        assert!(s[0].1.starts_with("BEGIN;"), "{}", s[0].1);
        assert!(s[0].1.contains("CREATE TABLE marketplace.sellers"));
        assert_eq!(s[1].0, "d4");
        assert!(s[1].1.ends_with("COMMIT;"));
    }

    #[test]
    fn the_revision_alembic_stopped_in_is_the_last_started() {
        let log = "INFO  [alembic.runtime.migration] Running upgrade d4 -> e5, index\nINFO  [alembic.runtime.migration] Running upgrade e5 -> f6, backfill\nTraceback …";
        assert_eq!(last_started(log).as_deref(), Some("f6"));
        assert_eq!(upgraded_to(" -> a1, first").as_deref(), Some("a1"));
    }
}
