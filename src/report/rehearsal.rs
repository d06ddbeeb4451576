//! A rehearsal for people: a table per migration (each statement's time, rows, the
//! locks it held and the tables it rewrote), the longest locks per table, the lint
//! beside the measure, and the verdict; and the one line the deploy's question shows.

use crate::text::human_duration;
use crate::trace::report::{Rehearsal, TableHold};

/// The report, line by line.
pub fn lines(r: &Rehearsal) -> Vec<String> {
    let mut out = vec![format!(
        "rehearsal on a copy ({}) of backup {}: restored in {} ({} tables, {} rows), the plan ran in {}",
        r.copy,
        r.backup,
        human_duration(r.restore_ms),
        r.tables,
        r.rows,
        human_duration(r.report.duration_ms)
    )];
    for migration in &r.report.migrations {
        out.push(format!(
            "  {}  {}",
            migration.migration,
            human_duration(migration.duration_ms)
        ));
        for s in r
            .report
            .statements
            .iter()
            .filter(|s| s.migration == migration.migration)
        {
            let line = s.line.map(|l| format!("line {l}")).unwrap_or_default();
            let rows = s.rows.map(|n| format!("{n} rows")).unwrap_or_default();
            out.push(format!(
                "    {line:<9} {:>8}  {rows:<12} {}",
                human_duration(s.duration_ms),
                s.sql
            ));
            for lock in &s.locks {
                out.push(format!(
                    "    {:<9} {:>8}  {:<12} {} on {}{}",
                    "",
                    human_duration(lock.held_ms),
                    "lock",
                    lock.mode,
                    lock.relation,
                    lock.until
                        .as_deref()
                        .map(|u| format!(" (held until {u} committed: one transaction)"))
                        .unwrap_or_default()
                ));
            }
            if !s.rewrites.is_empty() {
                out.push(format!(
                    "    {:<9} {:>8}  {:<12} {}",
                    "",
                    "",
                    "rewrote",
                    s.rewrites.join(", ")
                ));
            }
            if let Some(error) = &s.error {
                out.push(format!("    {:<9} {:>8}  failed: {error}", "", ""));
            }
        }
    }
    out.push(format!(
        "  longest ACCESS EXCLUSIVE per table: {}",
        holds(&r.report.longest_exclusive)
    ));
    out.push(format!(
        "  longest write-blocking lock per table: {}",
        holds(&r.report.longest_write_block)
    ));
    let lint = &r.lint;
    let mut said = format!(
        "  the lint and the rehearsal agree on {} statement{}",
        lint.agreed,
        plural(lint.agreed)
    );
    if !lint.lint_only.is_empty() {
        said.push_str(&format!(
            "; the lint said, not measured: {}",
            lint.lint_only
                .iter()
                .map(|d| format!("{}{} {}", d.migration, at(d.line), d.what))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !lint.rehearsal_only.is_empty() {
        said.push_str(&format!(
            "; measured, not in the lint: {}",
            lint.rehearsal_only
                .iter()
                .map(|d| format!("{}{} {}", d.migration, at(d.line), d.what))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    out.push(said);
    out
}

/// The numbers the deploy's question shows: "rehearsed: 2.4 s, AccessExclusiveLock
/// on public.orders up to 2.3 s, writes blocked up to 2.3 s".
pub fn summary(r: &Rehearsal) -> String {
    let longest = |holds: &[TableHold]| {
        holds
            .first()
            .map(|h| format!("{} up to {}", h.relation, human_duration(h.held_ms)))
            .unwrap_or_else(|| "none".into())
    };
    format!(
        "rehearsed on a copy: {}, ACCESS EXCLUSIVE {}, writes blocked {}",
        human_duration(r.report.duration_ms),
        longest(&r.report.longest_exclusive),
        longest(&r.report.longest_write_block)
    )
}

fn holds(holds: &[TableHold]) -> String {
    if holds.is_empty() {
        return "none".into();
    }
    holds
        .iter()
        .map(|h| {
            format!(
                "{} {} ({}{})",
                h.relation,
                human_duration(h.held_ms),
                h.migration,
                at(h.line)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn at(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
