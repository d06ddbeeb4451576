//! Statements that commit in parts. Run on its own, a statement is its own transaction:
//! stopped anywhere (a cancel, a lock timeout), nothing of it stays, so it can simply
//! be run again. Not these: `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`,
//! `REINDEX ... CONCURRENTLY`, `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`
//! and `VACUUM` commit several transactions of their own, and one stopped half-way
//! can leave its work half-done (an INVALID index, a partition half-detached). So may
//! a procedure (`CALL`: run outside a transaction block, its body may `COMMIT`, as a
//! batched backfill does) and a `DO` block that commits. The
//! lock-queue guard never cancels such a statement, and a stop in one is not gone on
//! from as if nothing of it ran.
//!
//! Read from the text alone, because the guard judges the statement the server shows
//! (`pg_stat_activity.query`, cut at `track_activity_query_size`): a statement that
//! merely mentions the word counts too, which errs on the side of not cancelling.

/// Whether `statement` may commit part of its work and stop half-way.
pub fn commits_in_parts(statement: &str) -> bool {
    let lower = statement.to_ascii_lowercase();
    let words = || {
        lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
    };
    let commits = || words().any(|w| w == "commit" || w == "rollback");
    words().any(|w| w == "concurrently")
        || match first_word(&lower) {
            Some("vacuum" | "call") => true,
            Some("do") => commits(),
            _ => false,
        }
}

/// The first word of the statement, past comments and blanks.
fn first_word(lower: &str) -> Option<&str> {
    let mut rest = lower.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    rest.split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::commits_in_parts;

    #[test]
    fn concurrent_index_work_and_vacuum_commit_in_parts() {
        for statement in [
            "create index concurrently hot_v on hot (v)",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)",
            "drop index concurrently if exists i",
            "reindex index concurrently i",
            "alter table m detach partition m_2020 concurrently",
            "-- maintenance\nVACUUM (analyze) hot",
            "/* x */ vacuum",
            "call backfill_in_batches(1000)",
            "do $$ begin for i in 1..10 loop update t set v = i; commit; end loop; end $$",
        ] {
            assert!(commits_in_parts(statement), "{statement}");
        }
    }

    #[test]
    fn ordinary_statements_are_one_transaction() {
        for statement in [
            "alter table hot add column flag boolean",
            "create index hot_v on hot (v)",
            "alter type mood add value 'meh'",
            "update jobs set vacuumed = true",
            "create table concurrently_seen (id int)",
            "analyze hot",
            "do $$ begin if not exists (select 1 from pg_type where typname = 'mood') then create type mood as enum ('ok'); end if; end $$",
        ] {
            assert!(!commits_in_parts(statement), "{statement}");
        }
    }
}
