//! From a [`Recording`] to the rehearsal's [`Report`]: each statement with its time,
//! rows, the locks it took and how long each was held (until its transaction ended),
//! the tables it rewrote; then per migration and for the whole run, the longest
//! `ACCESS EXCLUSIVE` lock and the longest write-blocking lock per table.
//!
//! A lock is the statement's that first held it in its transaction. Where the engine
//! ran the statement itself (the sql engine), its own session read the locks after
//! each statement: exact. Where only the sampler saw them (Alembic's session, a
//! statement that commits by itself), a lock is held from the statement that was
//! running when it was first seen to the last look that saw it: exact to the
//! sampling interval.

use std::collections::{BTreeMap, HashSet};

use super::recording::{Ran, Recording};
use super::report::{HeldLock, MigrationTotals, Report, TableHold, TracedStatement};
use crate::lint::locks::LockMode;

/// Whether a lock of this mode (as `pg_locks` names it) makes writers wait.
pub fn blocks_writes(mode: &str) -> bool {
    LockMode::from_pg_name(mode).is_some_and(|m| m.conflicts_with(LockMode::RowExclusive))
}

/// A lock a statement took: (oid, mode, from, to), in the recording's milliseconds.
type Hold = (u32, String, f64, f64);

/// A session's lock as the sampler sees it: (session, oid, mode).
type Held = (i32, u32, String);

/// A statement as the measure sees it, whoever ran it, with the locks it took.
struct Span {
    migration: String,
    line: Option<usize>,
    sql: String,
    pid: Option<i32>,
    /// The sql engine's transaction; `None` for a sampled statement.
    tx: Option<usize>,
    /// The server's start time of a sampled statement (the same at every look).
    server_start: Option<f64>,
    started: f64,
    ended: f64,
    rows: Option<u64>,
    exact_locks: Vec<(u32, String)>,
    rewrote: Vec<u32>,
    error: Option<String>,
    holds: Vec<Hold>,
}

/// What a statement too short for the sampler to see running is called, when the
/// locks it took were seen.
const UNSEEN: &str = "(a statement too short to be seen running)";

/// The report of `recording`; `bookkeeping`: `schema.table` of the tables that keep
/// migration state (the ledger, Alembic's version table), left out. Locks on tables
/// the plan itself creates are left out too: no one else can be using them.
pub fn measure(recording: &Recording, bookkeeping: &[String]) -> Report {
    let skip = |name: &str| {
        let bare = name.replace('"', "");
        bookkeeping.iter().any(|b| b.replace('"', "") == bare)
    };
    let existed = |oid: &u32| {
        recording.filenodes_before.is_empty() || recording.filenodes_before.contains_key(oid)
    };
    let sampled_only = recording.ran.is_empty();
    let mut spans: Vec<Span> = match sampled_only {
        false => {
            let mut spans: Vec<Span> = recording.ran.iter().map(span_of_ran).collect();
            exact_holds(recording, &mut spans);
            spans
        }
        true => {
            let mut spans = sampled_spans(recording, &skip);
            sampled_holds(recording, &mut spans);
            attribute_rewrites(recording, &mut spans);
            spans
        }
    };
    spans.sort_by(|a, b| a.started.total_cmp(&b.started));
    let t0 = spans
        .iter()
        .map(|s| s.started)
        .fold(recording.started_ms, f64::min);
    let ended = spans
        .iter()
        .flat_map(|s| std::iter::once(s.ended).chain(s.holds.iter().map(|h| h.3)))
        .chain(recording.tx_ended_ms.iter().copied())
        .fold(t0, f64::max);
    let last_of_tx = |tx: Option<usize>| {
        tx.and_then(|tx| spans.iter().rev().find(|s| s.tx == Some(tx)))
            .map(|s| s.migration.clone())
    };
    let ms = |t: f64| (t - t0).max(0.0).round() as u64;
    let statements: Vec<TracedStatement> = spans
        .iter()
        .map(|span| {
            let until = last_of_tx(span.tx).filter(|m| *m != span.migration);
            let locks: Vec<HeldLock> = span
                .holds
                .iter()
                .filter(|(oid, ..)| existed(oid))
                .filter_map(|(oid, mode, from, to)| {
                    let relation = recording.names.get(oid)?;
                    (!skip(relation)).then(|| HeldLock {
                        relation: relation.clone(),
                        mode: mode.clone(),
                        held_ms: (to - from).max(0.0).round() as u64,
                        from_ms: ms(*from),
                        until: until.clone(),
                    })
                })
                .collect();
            TracedStatement {
                migration: span.migration.clone(),
                line: span.line,
                sql: short_sql(&span.sql),
                started_ms: ms(span.started),
                duration_ms: (span.ended - span.started).max(0.0).round() as u64,
                rows: span.rows,
                locks: strongest(locks),
                rewrites: span
                    .rewrote
                    .iter()
                    .filter(|oid| existed(oid))
                    .filter_map(|oid| recording.names.get(oid))
                    .filter(|name| !skip(name))
                    .cloned()
                    .collect(),
                error: span.error.clone(),
            }
        })
        .collect();
    let mut migrations: Vec<MigrationTotals> = Vec::new();
    for statement in &statements {
        if !migrations
            .iter()
            .any(|m| m.migration == statement.migration)
        {
            let mine: Vec<TracedStatement> = statements
                .iter()
                .filter(|s| s.migration == statement.migration)
                .cloned()
                .collect();
            migrations.push(MigrationTotals {
                migration: statement.migration.clone(),
                duration_ms: mine.iter().map(|s| s.duration_ms).sum(),
                longest_exclusive: longest(&mine, |m| m == "AccessExclusiveLock"),
                longest_write_block: longest(&mine, blocks_writes),
                rewrites: dedup(mine.iter().flat_map(|s| s.rewrites.clone())),
            });
        }
    }
    Report {
        longest_exclusive: longest(&statements, |m| m == "AccessExclusiveLock"),
        longest_write_block: longest(&statements, blocks_writes),
        duration_ms: (ended - t0).max(0.0).round() as u64,
        sample_interval_ms: recording.sample_interval_ms,
        statements,
        migrations,
    }
}

/// A statement's locks without those another of its locks on the same table covers
/// (a stronger mode held at least as long), longest first: a rewrite's
/// `AccessExclusiveLock` says all its `ShareLock` would.
fn strongest(locks: Vec<HeldLock>) -> Vec<HeldLock> {
    let rank = |mode: &str| LockMode::from_pg_name(mode);
    let covered = |l: &HeldLock| {
        locks.iter().any(|o| {
            o.relation == l.relation && rank(&o.mode) > rank(&l.mode) && o.held_ms >= l.held_ms
        })
    };
    let mut kept: Vec<HeldLock> = locks.iter().filter(|l| !covered(l)).cloned().collect();
    kept.sort_by(|a, b| b.held_ms.cmp(&a.held_ms).then(a.relation.cmp(&b.relation)));
    kept
}

fn span_of_ran(ran: &Ran) -> Span {
    Span {
        migration: ran.migration.clone(),
        line: Some(ran.line),
        sql: ran.sql.clone(),
        pid: None,
        tx: Some(ran.tx),
        server_start: None,
        started: ran.started_ms,
        ended: ran.ended_ms,
        rows: ran.rows,
        exact_locks: ran.locks_after.clone(),
        rewrote: ran.rewrote.clone(),
        error: ran.error.clone(),
        holds: Vec::new(),
    }
}

/// The sql engine's statements: a lock is the first statement's of its transaction
/// that held it (its own session read them after each statement, or the sampler saw
/// the engine's session hold it while the statement ran), held from that statement's
/// start to the transaction's end.
fn exact_holds(recording: &Recording, spans: &mut [Span]) {
    let mut taken: HashSet<(usize, u32, String)> = HashSet::new();
    for span in spans.iter_mut() {
        let tx = span.tx.unwrap_or(usize::MAX);
        let sampled = recording
            .samples
            .iter()
            .filter(|s| s.at_ms >= span.started && s.at_ms <= span.ended)
            .flat_map(|s| s.locks.iter())
            .filter(|l| recording.applier.runs(&l.session))
            .map(|l| (l.oid, l.mode.clone()));
        let seen: Vec<(u32, String)> = span.exact_locks.iter().cloned().chain(sampled).collect();
        let end = span
            .tx
            .and_then(|tx| recording.tx_ended_ms.get(tx).copied())
            .unwrap_or(span.ended)
            .max(span.ended);
        for (oid, mode) in seen {
            if taken.insert((tx, oid, mode.clone())) {
                span.holds.push((oid, mode, span.started, end));
            }
        }
    }
}

/// Statements seen only by the sampler (Alembic): each distinct running statement of
/// the sessions that run the plan (one statement: one server start time), from its
/// start to the last look that saw it running, with the migration that had started
/// by then.
fn sampled_spans(recording: &Recording, skip: &dyn Fn(&str) -> bool) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for sample in &recording.samples {
        for statement in &sample.statements {
            if statement.state != "active"
                || !recording.applier.runs(&statement.session)
                || is_chatter(&statement.query, skip)
            {
                continue;
            }
            let pid = Some(statement.session.pid);
            let same = spans.iter_mut().rev().find(|s| {
                s.pid == pid
                    && s.server_start
                        .is_some_and(|at| (at - statement.started_at).abs() < 0.01)
            });
            match same {
                Some(span) => span.ended = span.ended.max(sample.at_ms),
                None => {
                    let started = sample.at_ms - statement.running_ms;
                    spans.push(Span {
                        migration: migration_at(recording, started),
                        line: None,
                        sql: statement.query.clone(),
                        pid,
                        tx: None,
                        server_start: Some(statement.started_at),
                        started,
                        ended: sample.at_ms,
                        rows: None,
                        exact_locks: Vec::new(),
                        rewrote: Vec::new(),
                        error: None,
                        holds: Vec::new(),
                    })
                }
            }
        }
    }
    spans
}

/// The migration that had started by `at` (the engine's marks), else the first.
fn migration_at(recording: &Recording, at: f64) -> String {
    recording
        .migrations
        .iter()
        .rev()
        .find(|(started, _)| *started <= at + 5.0)
        .or(recording.migrations.first())
        .map(|(_, label)| label.clone())
        .unwrap_or_default()
}

/// A statement of a driver's or a tool's own (transaction control, settings, catalog
/// and version-table reads), not the migration's.
fn is_chatter(query: &str, skip: &dyn Fn(&str) -> bool) -> bool {
    let q = query.trim_start().to_ascii_lowercase();
    let words = [
        "begin",
        "commit",
        "rollback",
        "set ",
        "show ",
        "reset ",
        "select pg_catalog",
        "select current_",
        "select version()",
        "select pg_advisory",
        "select relname",
        "select n.nspname",
        "select c.relname",
        "savepoint",
        "release ",
    ];
    q.is_empty()
        || words.iter().any(|w| q.starts_with(w))
        || (q.contains("alembic_version") && !q.contains("create table"))
        || q.split(|c: char| c.is_whitespace() || c == '"').any(skip)
}

/// Locks seen only by the sampler: each run of consecutive looks that saw a session
/// of the plan hold it is one hold, the statement's that session was running when it
/// was first seen. A lock first seen between the statements seen running was taken
/// by one too short to be seen: it is that unseen statement's, never dropped.
fn sampled_holds(recording: &Recording, spans: &mut Vec<Span>) {
    // Every look sees every lock: one held at a look and gone at the next was
    // released between them, however long the sampler took to look again.
    let slack = recording.sample_interval_ms.max(1.0) * 2.0;
    let mut open: BTreeMap<Held, (f64, f64)> = BTreeMap::new();
    let mut closed: Vec<(Held, (f64, f64))> = Vec::new();
    for sample in &recording.samples {
        let present: Vec<Held> = sample
            .locks
            .iter()
            .filter(|l| recording.applier.runs(&l.session))
            .map(|l| (l.session.pid, l.oid, l.mode.clone()))
            .collect();
        let gone: Vec<Held> = open
            .keys()
            .filter(|k| !present.contains(k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(run) = open.remove(&key) {
                closed.push((key, run));
            }
        }
        for key in present {
            open.entry(key)
                .and_modify(|run| run.1 = sample.at_ms)
                .or_insert((sample.at_ms, sample.at_ms));
        }
    }
    closed.extend(open);
    for ((pid, oid, mode), (first, last)) in closed {
        let running = spans
            .iter()
            .position(|s| s.pid == Some(pid) && s.started <= first && first <= s.ended + slack);
        let at = match running {
            Some(at) => at,
            None => {
                // One unseen statement per migration and session at that moment.
                let migration = migration_at(recording, first);
                let unseen = spans.iter().position(|s| {
                    s.pid == Some(pid)
                        && s.sql == UNSEEN
                        && s.migration == migration
                        && (first - s.ended).abs() <= slack
                });
                match unseen {
                    Some(at) => at,
                    None => {
                        spans.push(Span {
                            migration,
                            line: None,
                            sql: UNSEEN.to_string(),
                            pid: Some(pid),
                            tx: None,
                            server_start: None,
                            started: first,
                            ended: first,
                            rows: None,
                            exact_locks: Vec::new(),
                            rewrote: Vec::new(),
                            error: None,
                            holds: Vec::new(),
                        });
                        spans.len() - 1
                    }
                }
            }
        };
        let from = spans[at].started.min(first);
        spans[at].holds.push((oid, mode, from, last));
    }
}

/// Alembic: the relations whose storage differs after the plan, each given to the
/// statement that held it `AccessExclusiveLock` longest (else the last one).
fn attribute_rewrites(recording: &Recording, spans: &mut [Span]) {
    for (oid, after) in &recording.filenodes_after {
        let Some(before) = recording.filenodes_before.get(oid) else {
            continue;
        };
        if *before == 0 || before == after {
            continue;
        }
        let holder = spans
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.holds.iter().map(move |h| (i, h)))
            .filter(|(_, (o, mode, _, _))| o == oid && mode == "AccessExclusiveLock")
            .max_by(|a, b| (a.1 .3 - a.1 .2).total_cmp(&(b.1 .3 - b.1 .2)))
            .map(|(i, _)| i);
        let last = spans
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.started.total_cmp(&b.1.started))
            .map(|(i, _)| i);
        if let Some(i) = holder.or(last) {
            spans[i].rewrote.push(*oid);
        }
    }
}

/// Per table, the longest lock whose mode `wanted` accepts, longest first.
fn longest(statements: &[TracedStatement], wanted: impl Fn(&str) -> bool) -> Vec<TableHold> {
    let mut best: BTreeMap<String, TableHold> = BTreeMap::new();
    for statement in statements {
        for lock in statement.locks.iter().filter(|l| wanted(&l.mode)) {
            let hold = TableHold {
                relation: lock.relation.clone(),
                mode: lock.mode.clone(),
                held_ms: lock.held_ms,
                migration: statement.migration.clone(),
                line: statement.line,
            };
            match best.get(&lock.relation) {
                Some(known) if known.held_ms >= hold.held_ms => {}
                _ => {
                    best.insert(lock.relation.clone(), hold);
                }
            }
        }
    }
    let mut out: Vec<TableHold> = best.into_values().collect();
    out.sort_by(|a, b| b.held_ms.cmp(&a.held_ms).then(a.relation.cmp(&b.relation)));
    out
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The statement's first line, at most 100 characters.
fn short_sql(sql: &str) -> String {
    let first = sql
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .unwrap_or("");
    match first.chars().count() > 100 {
        true => format!("{}…", first.chars().take(99).collect::<String>()),
        false => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::recording::{Ran, Recording, Sample};
    use super::measure;
    use crate::db::held_locks::{OtherLock, OtherStatement, Session};

    fn session(pid: i32) -> Session {
        Session {
            pid,
            application_name: "app".into(),
            backend_type: "client backend".into(),
        }
    }

    fn ran(migration: &str, tx: usize, at: (f64, f64), locks: &[(u32, &str)]) -> Ran {
        Ran {
            migration: migration.into(),
            line: 1,
            sql: format!("-- {migration}\nalter table x"),
            tx,
            started_ms: at.0,
            ended_ms: at.1,
            rows: Some(0),
            locks_after: locks.iter().map(|(o, m)| (*o, m.to_string())).collect(),
            rewrote: Vec::new(),
            error: None,
        }
    }

    fn named(recording: &mut Recording) {
        for (oid, name) in [
            (1, "public.orders"),
            (2, "public.customers"),
            (9, "public.ballast_migrations"),
        ] {
            recording.names.insert(oid, name.into());
        }
    }

    #[test]
    fn a_lock_is_held_from_the_statement_that_took_it_to_its_transactions_end() {
        let mut recording = Recording::default();
        named(&mut recording);
        let mut retype = ran(
            "1_retype",
            0,
            (0.0, 100.0),
            &[(1, "AccessExclusiveLock"), (1, "ShareLock")],
        );
        retype.rewrote = vec![1];
        recording.ran = vec![
            retype,
            // The second statement still holds the first one's lock: it is the first's.
            ran(
                "2_backfill",
                0,
                (100.0, 300.0),
                &[
                    (1, "AccessExclusiveLock"),
                    (2, "RowExclusiveLock"),
                    (9, "RowExclusiveLock"),
                ],
            ),
            ran("3_note", 1, (320.0, 321.0), &[(1, "AccessExclusiveLock")]),
        ];
        recording.tx_ended_ms = vec![310.0, 322.0];
        let report = measure(&recording, &["public.ballast_migrations".to_string()]);
        let first = &report.statements[0];
        assert_eq!(first.sql, "alter table x");
        assert_eq!(first.rewrites, ["public.orders"]);
        // The ShareLock its AccessExclusiveLock covers is left out.
        assert_eq!(first.locks.len(), 1, "{:?}", first.locks);
        assert_eq!(first.locks[0].mode, "AccessExclusiveLock");
        assert_eq!(first.locks[0].held_ms, 310);
        assert_eq!(first.locks[0].until.as_deref(), Some("2_backfill"));
        let second = &report.statements[1];
        assert_eq!(
            second.locks.len(),
            1,
            "the ledger is bookkeeping: {:?}",
            second.locks
        );
        assert_eq!(
            (second.locks[0].relation.as_str(), second.locks[0].held_ms),
            ("public.customers", 210)
        );
        assert_eq!(second.locks[0].until, None);
        assert_eq!(report.statements[2].locks[0].held_ms, 2);
        assert_eq!(report.longest_exclusive.len(), 1);
        assert_eq!(
            (
                report.longest_exclusive[0].held_ms,
                report.longest_exclusive[0].migration.as_str()
            ),
            (310, "1_retype")
        );
        // RowExclusiveLock blocks no writer.
        assert_eq!(report.longest_write_block.len(), 1);
        assert_eq!(report.migrations.len(), 3);
        assert_eq!(report.migrations[2].longest_exclusive[0].held_ms, 2);
        assert_eq!(report.duration_ms, 322);
    }

    #[test]
    fn a_statement_run_alone_gets_the_locks_the_sampler_saw_while_it_ran() {
        let mut recording = Recording::default();
        named(&mut recording);
        recording.ran = vec![ran("1_index", 0, (0.0, 50.0), &[])];
        recording.tx_ended_ms = vec![50.0];
        recording.samples = [10.0, 20.0, 30.0, 60.0]
            .into_iter()
            .map(|at_ms| Sample {
                at_ms,
                locks: vec![OtherLock {
                    session: session(7),
                    oid: 1,
                    mode: "ShareUpdateExclusiveLock".into(),
                }],
                statements: Vec::new(),
            })
            .collect();
        let report = measure(&recording, &[]);
        let locks = &report.statements[0].locks;
        assert_eq!(locks.len(), 1);
        assert_eq!(
            (locks[0].mode.as_str(), locks[0].held_ms),
            ("ShareUpdateExclusiveLock", 50)
        );
        assert!(report.longest_write_block.is_empty());
    }

    fn look(at_ms: f64, pid: i32, query: &str, running_ms: f64, locks: &[(u32, &str)]) -> Sample {
        Sample {
            at_ms,
            locks: locks
                .iter()
                .map(|(oid, mode)| OtherLock {
                    session: session(pid),
                    oid: *oid,
                    mode: mode.to_string(),
                })
                .collect(),
            statements: vec![OtherStatement {
                session: session(pid),
                query: query.into(),
                state: "active".into(),
                started_at: 1e12 + at_ms - running_ms,
                running_ms,
            }],
        }
    }

    #[test]
    fn alembic_statements_and_locks_are_read_from_the_samples() {
        let mut recording = Recording::default();
        named(&mut recording);
        recording.sample_interval_ms = 5.0;
        recording.migrations = vec![(0.0, "aa01".into()), (200.0, "aa02".into())];
        let alter = "ALTER TABLE orders ALTER COLUMN amount TYPE bigint";
        recording.samples = vec![
            look(5.0, 40, "BEGIN", 0.5, &[]),
            look(20.0, 40, alter, 10.0, &[(1, "AccessExclusiveLock")]),
            look(100.0, 40, alter, 90.0, &[(1, "AccessExclusiveLock")]),
            look(
                150.0,
                40,
                "UPDATE marketplace.alembic_version SET version_num=$1",
                1.0,
                &[(1, "AccessExclusiveLock")],
            ),
            look(
                210.0,
                40,
                "UPDATE customers SET tier = 'x'",
                2.0,
                &[(1, "AccessExclusiveLock"), (2, "RowExclusiveLock")],
            ),
            look(
                240.0,
                40,
                "UPDATE customers SET tier = 'x'",
                32.0,
                &[(1, "AccessExclusiveLock"), (2, "RowExclusiveLock")],
            ),
        ];
        recording.filenodes_before = [(1, 100), (2, 200)].into();
        recording.filenodes_after = [(1, 101), (2, 200)].into();
        let report = measure(&recording, &["marketplace.alembic_version".to_string()]);
        let sqls: Vec<&str> = report.statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sqls, [alter, "UPDATE customers SET tier = 'x'"]);
        let first = &report.statements[0];
        assert_eq!(
            (first.migration.as_str(), first.line, first.rows),
            ("aa01", None, None)
        );
        assert_eq!(first.duration_ms, 90);
        assert_eq!(first.rewrites, ["public.orders"]);
        assert_eq!(first.locks[0].mode, "AccessExclusiveLock");
        assert_eq!(
            first.locks[0].held_ms, 230,
            "from the statement's start to the last look"
        );
        let second = &report.statements[1];
        assert_eq!(second.migration, "aa02");
        assert_eq!(second.locks[0].relation, "public.customers");
    }
}
