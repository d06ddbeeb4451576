//! The terminal reporter: stage lines and the plan on stdout, progress bars on stderr,
//! and a closing summary that says plainly what changed. Marks are coloured on a
//! terminal (never with NO_COLOR); without a terminal on stderr (a log file, a
//! CronJob), progress becomes a line every `--progress-interval` instead of bars.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use console::style;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::{stdout_line, Verbosity};
use crate::events::{Event, Outcome, Reporter, RunSummary, Severity, StageRecord};
use crate::text::{human_bytes, human_duration, short_list};

/// Migrations whose SQL the preview shows before it lists the rest by name.
const SQL_PREVIEW_MIGRATIONS: usize = 10;
/// Lines of SQL shown per migration before the preview summarizes.
const SQL_PREVIEW_LINES: usize = 12;

pub struct HumanReporter {
    verbosity: Verbosity,
    /// Show every line of SQL (`ballast plan --full`).
    full_sql: bool,
    bars: MultiProgress,
    state: Mutex<Bars>,
    /// Without a terminal on stderr: how often a progress line is written.
    log_every: Option<Duration>,
}

#[derive(Default)]
struct Bars {
    /// Bytes moving: a dump being written, or a backup being restored.
    transfer: Option<ProgressBar>,
    migrations: Option<ProgressBar>,
    /// The progress-line equivalent when stderr is not a terminal.
    logged: Option<Logged>,
}

/// What is moving, for progress lines: since when, and when it was last written.
struct Logged {
    what: &'static str,
    total: Option<u64>,
    started: Instant,
    last: Instant,
}

impl Logged {
    fn new(what: &'static str, total: Option<u64>) -> Logged {
        let now = Instant::now();
        Logged {
            what,
            total,
            started: now,
            last: now,
        }
    }

    /// A line when `every` has passed since the last one.
    fn tick(&mut self, every: Duration, done: u64) -> Option<String> {
        if self.last.elapsed() < every {
            return None;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let of = match self.total {
            Some(total) if total > 0 => format!(
                " of {} ({}%)",
                human_bytes(total),
                (done.min(total) * 100) / total
            ),
            _ => String::new(),
        };
        Some(format!(
            "  … {}: {}{of}, {}/s, {}",
            self.what,
            human_bytes(done),
            human_bytes((done as f64 / secs) as u64),
            human_duration(self.started.elapsed().as_millis() as u64)
        ))
    }
}

impl HumanReporter {
    pub fn new(verbosity: Verbosity, full_sql: bool, progress_interval: Duration) -> HumanReporter {
        use std::io::IsTerminal;
        let target = if verbosity == Verbosity::Quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr() // hidden by indicatif when stderr is not a terminal
        };
        let log_every = (verbosity >= Verbosity::Normal && !std::io::stderr().is_terminal())
            .then_some(progress_interval);
        HumanReporter {
            verbosity,
            full_sql,
            bars: MultiProgress::with_draw_target(target),
            state: Mutex::new(Bars::default()),
            log_every,
        }
    }

    /// Starts progress lines for `what` (when they are wanted at all).
    fn log_start(&self, bars: &mut Bars, what: &'static str, total: Option<u64>) {
        if self.log_every.is_some() {
            bars.logged = Some(Logged::new(what, total));
        }
    }

    /// A progress line, if one is due.
    fn log_tick(&self, bars: &mut Bars, done: u64) {
        if let (Some(every), Some(logged)) = (self.log_every, bars.logged.as_mut()) {
            if let Some(line) = logged.tick(every, done) {
                super::stderr_line(&line);
            }
        }
    }

    fn line(&self, text: &str) {
        self.bars.suspend(|| stdout_line(text));
    }

    fn normal(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            self.line(text);
        }
    }

    fn bar(&self, len: Option<u64>, template: &str) -> ProgressBar {
        let bar = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars.add(bar)
    }

    fn finding(&self, f: &crate::lint::Finding) {
        let (mark, level) = match f.level {
            crate::lint::Level::Error => ("✗", "error"),
            _ => ("!", "warning"),
        };
        let text = format!(
            "  {mark} {level} [{}] {} line {}: {}\n      fix: {}",
            f.rule, f.migration, f.line, f.message, f.fix
        );
        if f.level == crate::lint::Level::Error {
            self.line(&text);
        } else {
            self.normal(&text);
        }
    }

    /// Where `ballast wait` stands.
    fn wait(
        &self,
        phase: crate::migrations::Phase,
        outcome: crate::events::WaitOutcome,
        pending: &[String],
        unknown: &[String],
        unread: Option<&str>,
        elapsed_ms: u64,
    ) {
        use crate::events::WaitOutcome;
        let what = match phase {
            crate::migrations::Phase::Pre => "of the expand step (phase pre)",
            crate::migrations::Phase::Post => "at all",
        };
        let after = humantime::format_duration(std::time::Duration::from_secs(elapsed_ms / 1000));
        match outcome {
            WaitOutcome::Waiting => match unread {
                Some(why) => self.normal(&format!("  waiting: {why}")),
                None => self.normal(&format!(
                    "  waiting for {} to be applied: {}",
                    crate::text::migrations_count(pending.len()),
                    short_list(pending)
                )),
            },
            WaitOutcome::Ready => self.line(&format!(
                "ready: nothing {what} is pending (after {after})"
            )),
            WaitOutcome::TimedOut => {
                let pending = match pending.is_empty() {
                    true => String::new(),
                    false => format!(": still pending {what}: {}", short_list(pending)),
                };
                let unread = unread
                    .map(|why| format!("; the last look could not read the state ({why})"))
                    .unwrap_or_default();
                self.line(&format!("timed out after {after}{pending}{unread}"))
            }
            WaitOutcome::Ahead => self.line(&format!(
                "the database has {} these migration files do not know: {}. The application's image is older than the database: do not start it on this schema blind (deploy the release that has them, or roll the database back)",
                crate::text::migrations_count(unknown.len()),
                short_list(unknown)
            )),
        }
    }

    /// What `--phase pre` leaves for after the rollout.
    fn held_back(&self, held_back: &[String]) {
        if !held_back.is_empty() {
            self.normal(&format!(
                "  held back for after the rollout (phase post): {}; `ballast deploy --phase post` applies them",
                short_list(held_back)
            ));
        }
    }

    fn plan(&self, plan: &crate::plan::Plan) {
        if plan.is_empty() {
            self.normal("  nothing to apply: the database is up to date");
            return;
        }
        let count = plan.migrations.len();
        self.normal(&format!(
            "  plan {}: {} migration{}",
            plan.short_hash(),
            count,
            if count == 1 { "" } else { "s" }
        ));
        for (n, m) in plan.migrations.iter().enumerate() {
            // A long plan lists every migration but shows SQL for the first few only.
            if !self.full_sql && n == SQL_PREVIEW_MIGRATIONS {
                self.normal(&format!(
                    "  … and {} more: {} (ballast plan --full shows their SQL)",
                    count - n,
                    short_list(
                        &plan.migrations[n..]
                            .iter()
                            .map(|m| format!("{}_{}", m.version, m.name))
                            .collect::<Vec<_>>()
                    )
                ));
                break;
            }
            let mode = match &m.mode {
                Some(mode) => mode.as_str(),
                None if m.transactional => "in the deploy transaction",
                None => "no transaction: runs alone, commits as it goes",
            };
            let label = match m.mode {
                Some(_) => format!("{} {}", m.version, m.name),
                None => format!("{}_{}", m.version, m.name),
            };
            let phase = match m.phase {
                crate::migrations::Phase::Post => "phase post; ",
                crate::migrations::Phase::Pre => "",
            };
            match &m.commits_after {
                Some(why) => self.normal(&format!(
                    "  - {label}  ({phase}{mode}, which commits right after it: {why}; the migrations after it run in a new one)"
                )),
                None => self.normal(&format!("  - {label}  ({phase}{mode})")),
            }
            self.normal(&format!("    {}", m.file));
            let lines: Vec<&str> = m.sql.lines().filter(|l| !l.trim().is_empty()).collect();
            let shown = if self.full_sql {
                lines.len()
            } else {
                lines.len().min(SQL_PREVIEW_LINES)
            };
            for l in &lines[..shown] {
                self.normal(&format!("    | {l}"));
            }
            if shown < lines.len() {
                self.normal(&format!(
                    "    | … {} more lines (ballast plan --full shows all)",
                    lines.len() - shown
                ));
            }
        }
    }

    fn summary(&self, s: &RunSummary) {
        if self.verbosity >= Verbosity::Normal {
            self.line("");
            // The failure's reason follows in full: its row says it short.
            for line in stage_table(&s.stages, s.error.as_deref()) {
                self.line(&line);
            }
            self.line("");
        }
        let headline = headline(s);
        let headline = match s.outcome {
            Outcome::Succeeded => style(headline).green().bold(),
            Outcome::FailedNotRecovered => style(headline).red().bold().reverse(),
            _ => style(headline).red().bold(),
        };
        self.line(&headline.to_string());
        if let Some(error) = &s.error {
            self.line(&format!("  reason: {error}"));
        }
        if s.outcome != Outcome::Succeeded {
            let still: Vec<&str> = s
                .applied
                .iter()
                .filter(|v| !s.undone.contains(v))
                .map(String::as_str)
                .collect();
            if !still.is_empty() {
                self.line(&format!(
                    "  committed and still applied: {}",
                    still.join(", ")
                ));
            }
            if !s.undone.is_empty() {
                self.line(&format!(
                    "  committed, then undone by the recovery ladder: {}",
                    s.undone.join(", ")
                ));
            }
        }
        if !s.rolled_back.is_empty() {
            self.line(&format!(
                "  rolled back (not applied): {}",
                s.rolled_back.join(", ")
            ));
        }
        if let Some(backup) = &s.backup {
            self.line(&format!("  backup: {backup}"));
        }
        for step in &s.next_steps {
            self.line(&format!("  next: {step}"));
        }
        self.line(&format!(
            "  run {} · {} · exit {}",
            s.run_id,
            human_duration(s.duration_ms),
            s.exit_code
        ));
    }
}

impl HumanReporter {
    /// A diagnosis line: details only with -v; errors always; the rest unless -q.
    fn diagnosis(&self, severity: Severity, message: &str, hint: Option<&str>) {
        if severity == Severity::Detail && self.verbosity < Verbosity::Verbose {
            return;
        }
        let tag = match severity {
            Severity::Detail | Severity::Info => "  ".to_string(),
            Severity::Warning => format!("  {} ", style("warning:").yellow()),
            Severity::Error => format!("  {} ", style("error:").red().bold()),
        };
        if severity == Severity::Error || self.verbosity >= Verbosity::Normal {
            self.line(&format!("{tag}{message}"));
            if let Some(hint) = hint {
                self.line(&format!("    → {hint}"));
            }
        }
    }

    /// Backup and restore progress: a bar on a terminal, lines in a log.
    fn transfer(&self, bars: &mut Bars, event: &Event) {
        match event {
            Event::BackupStarted {
                path,
                database_bytes,
            } => {
                self.normal(&format!(
                    "  writing {path} (database is {})",
                    human_bytes(*database_bytes as u64)
                ));
                bars.transfer = Some(self.bar(
                    None,
                    "  {spinner} dump {bytes} read · {binary_bytes_per_sec} · {elapsed}",
                ));
                self.log_start(bars, "dump", None);
            }
            Event::BackupProgress { raw_bytes } => {
                if let Some(bar) = &bars.transfer {
                    bar.set_position(*raw_bytes);
                }
                self.log_tick(bars, *raw_bytes);
            }
            Event::BackupFinished {
                id,
                raw_bytes,
                compressed_bytes,
                sha256,
                ..
            } => {
                if let Some(bar) = bars.transfer.take() {
                    bar.finish_and_clear();
                }
                bars.logged = None;
                self.normal(&format!(
                    "  backup {id}: {} dumped, {} compressed, sha256 {}",
                    human_bytes(*raw_bytes),
                    human_bytes(*compressed_bytes),
                    &sha256[..16]
                ));
            }
            Event::RestoreStarted {
                id,
                database,
                raw_bytes,
            } => {
                self.normal(&format!("  restoring {id} into {database}"));
                bars.transfer = Some(self.bar(
                    Some(*raw_bytes),
                    "  {bar:30} {bytes}/{total_bytes} restored · {binary_bytes_per_sec} · {eta} left",
                ));
                self.log_start(bars, "restore", Some(*raw_bytes));
            }
            Event::RestoreProgress { raw_bytes } => {
                if let Some(bar) = &bars.transfer {
                    bar.set_position(*raw_bytes);
                }
                self.log_tick(bars, *raw_bytes);
            }
            Event::RestoreFinished {
                database,
                tables,
                rows,
            } => {
                if let Some(bar) = bars.transfer.take() {
                    bar.finish_and_clear();
                }
                bars.logged = None;
                let noun = if *tables == 1 { "table" } else { "tables" };
                self.normal(&format!(
                    "  restored {database}: {rows} rows in {tables} {noun}"
                ));
            }
            _ => {}
        }
    }

    /// The run's frame: its header, a line per stage, the closing report.
    fn run_progress(&self, bars: &mut Bars, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                pipeline,
                target,
                schema,
            } => {
                self.normal(&format!(
                    "ballast {pipeline} · {target} (schema {schema}) · run {run_id}"
                ));
            }
            Event::StageStarted { stage } => self.normal(&format!("▸ {stage}")),
            Event::StageSkipped { stage, reason } => {
                self.normal(&format!("- {stage} skipped: {reason}"))
            }
            Event::StageFinished {
                stage,
                duration_ms,
                summary,
            } => {
                self.normal(&format!(
                    "{} {stage} ({}) {summary}",
                    style("✓").green(),
                    human_duration(*duration_ms)
                ));
            }
            Event::StageFailed {
                stage,
                duration_ms,
                error,
            } => {
                for bar in [bars.transfer.take(), bars.migrations.take()]
                    .into_iter()
                    .flatten()
                {
                    bar.abandon();
                }
                bars.logged = None;
                // A long error (a refusal naming many migrations) is said in full
                // once, in the closing report (its reason, or its table's row).
                self.line(&format!(
                    "{} {stage} failed ({}): {}",
                    style("✗").red().bold(),
                    human_duration(*duration_ms),
                    cut(error, "in full in the closing report")
                ));
            }
            Event::RunFinished(summary) => {
                for bar in [bars.transfer.take(), bars.migrations.take()]
                    .into_iter()
                    .flatten()
                {
                    bar.finish_and_clear();
                }
                self.summary(summary)
            }
            _ => {}
        }
    }

    /// The database `ballast restore` put back, and its rows per table.
    fn restored(&self, restored: &crate::events::Restored) {
        self.line(&format!(
            "✓ restored into {}; rows per table:",
            restored.database
        ));
        for (table, n) in &restored.row_counts {
            self.line(&format!("  {table:<40} {n:>12}"));
        }
    }

    /// Migration progress: a bar on a terminal, lines in a log, each one with -v.
    fn migration(&self, bars: &mut Bars, event: &Event) {
        match event {
            Event::MigrationStarted {
                index,
                total,
                version,
                name,
                ..
            } => {
                let bar = bars.migrations.get_or_insert_with(|| {
                    self.bar(
                        Some(*total as u64),
                        "  {bar:30} {pos}/{len} migrations · {msg}",
                    )
                });
                bar.set_position(*index as u64);
                bar.set_message(format!("{version}_{name}"));
                if let Some(every) = self.log_every {
                    let logged = bars
                        .logged
                        .get_or_insert_with(|| Logged::new("migrations", None));
                    if *index == 0 || logged.last.elapsed() >= every {
                        logged.last = Instant::now();
                        super::stderr_line(&format!(
                            "  … migration {}/{total}: {version}_{name}, {}",
                            index + 1,
                            human_duration(logged.started.elapsed().as_millis() as u64)
                        ));
                    }
                }
            }
            Event::MigrationApplied {
                index,
                total,
                version,
                name,
                duration_ms,
            } => {
                if let Some(bar) = &bars.migrations {
                    bar.set_position(*index as u64 + 1);
                    if index + 1 == *total {
                        bar.finish_and_clear();
                        bars.migrations = None;
                    }
                }
                if self.verbosity >= Verbosity::Verbose {
                    self.line(&format!(
                        "  applied {version}_{name} ({})",
                        human_duration(*duration_ms)
                    ));
                }
            }
            _ => {}
        }
    }
}

impl Reporter for HumanReporter {
    fn report(&self, event: &Event) {
        let mut bars = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::RunStarted { .. }
            | Event::StageStarted { .. }
            | Event::StageSkipped { .. }
            | Event::StageFinished { .. }
            | Event::StageFailed { .. }
            | Event::RunFinished(_) => self.run_progress(&mut bars, event),
            Event::Diagnosis {
                severity,
                message,
                hint,
            } => self.diagnosis(*severity, message, hint.as_deref()),
            Event::State {
                current,
                target,
                applied,
                pending,
                pending_migrations,
                pending_post,
                held_back,
            } => {
                let current = current.as_deref().unwrap_or("none");
                if *pending == 0 {
                    self.normal(&format!("  {applied} applied, up to date at {current}"));
                } else {
                    self.normal(&format!(
                        "  {applied} applied, {pending} pending; current {current} → target {}",
                        target.as_deref().unwrap_or("none")
                    ));
                    self.normal(&format!("  pending: {}", short_list(pending_migrations)));
                }
                if !pending_post.is_empty() {
                    self.normal(&format!(
                        "  phase post (the contract step, after the rollout): {}",
                        short_list(pending_post)
                    ));
                }
                self.held_back(held_back);
            }
            Event::Plan { plan, held_back } => {
                if plan.is_empty() && !held_back.is_empty() {
                    self.normal("  nothing to apply before the rollout");
                } else {
                    self.plan(plan);
                }
                self.held_back(held_back);
            }
            Event::Wait {
                phase,
                outcome,
                pending,
                unknown,
                unread,
                elapsed_ms,
            } => self.wait(
                *phase,
                *outcome,
                pending,
                unknown,
                unread.as_deref(),
                *elapsed_ms,
            ),
            Event::Finding { finding } => self.finding(finding),
            Event::BackupStarted { .. }
            | Event::BackupProgress { .. }
            | Event::BackupFinished { .. }
            | Event::RestoreStarted { .. }
            | Event::RestoreProgress { .. }
            | Event::RestoreFinished { .. } => self.transfer(&mut bars, event),
            Event::Restored { restore } => self.restored(restore),
            Event::Rehearsal { rehearsal } => {
                for line in super::rehearsal::lines(rehearsal) {
                    self.normal(&line);
                }
            }
            Event::LockWaiting {
                pid,
                application_name,
            } => self.normal(&format!(
                "  waiting for the deploy lock held by pid {pid} ({application_name})"
            )),
            Event::MigrationStarted { .. } | Event::MigrationApplied { .. } => {
                self.migration(&mut bars, event)
            }
            Event::Committed { versions } => self.normal(&format!(
                "  committed {} migration(s): {}",
                versions.len(),
                short_list(versions)
            )),
            Event::RolledBack { versions } => self.line(&format!(
                "  rolled back {} migration(s), none of them applied: {}",
                versions.len(),
                short_list(versions)
            )),
            Event::CheckPassed { name } => self.normal(&format!("  check passed: {name}")),
            Event::HookFinished {
                command,
                success,
                output,
            } => {
                let status = if *success { "ok" } else { "FAILED" };
                self.line(&format!("  hook {command}: {status}"));
                for l in output.lines().take(20) {
                    self.normal(&format!("    {l}"));
                }
            }
        }
    }
}

/// The closing report's first line: how the run ended and where the database is.
fn headline(s: &RunSummary) -> String {
    let versions = match (&s.start_version, &s.end_version) {
        _ if !s.state_read => "the migration state was not read".to_string(),
        (None, None) => "without any migration applied".to_string(),
        (a, b) if a == b => format!("at version {}", a.as_deref().unwrap_or("none")),
        (a, b) => format!(
            "version {} → {}",
            a.as_deref().unwrap_or("none"),
            b.as_deref().unwrap_or("none")
        ),
    };
    // "the database is at version 2", or, when it was never read, not a word on it.
    let the_database_is = match s.state_read {
        true => format!("the database is {versions}"),
        false => versions.clone(),
    };
    match s.outcome {
        Outcome::Succeeded => {
            // A stamp is recorded as a change, not as a migration applied.
            let (stamps, applied): (Vec<&String>, Vec<&String>) =
                s.applied.iter().partition(|a| a.starts_with("stamped "));
            let ran = |stage: &str| s.stages.iter().any(|st| st.stage == stage);
            if ran("rehearse") && !ran("upgrade") {
                return format!(
                    "✓ {} succeeded: the target was not changed ({versions})",
                    s.pipeline
                );
            }
            let mut done = match applied.len() {
                // A stamp, a backup, a rollback, a restore: nothing was meant to
                // be applied.
                0 if !stamps.is_empty()
                    || !s.state_read
                    || s.start_version != s.end_version
                    || s.stages.iter().any(|st| st.stage == "restore") =>
                {
                    String::new()
                }
                n => format!("; {n} applied"),
            };
            for stamp in stamps {
                done.push_str(&format!("; {stamp}"));
            }
            format!("✓ {} succeeded: {versions}{done}", s.pipeline)
        }
        // Changes were made, then undone by the recovery ladder.
        Outcome::FailedUnchanged
            if !s.applied.is_empty()
                || s.stages
                    .iter()
                    .any(|st| st.stage.ends_with("(recovery)") && st.status == "ok") =>
        {
            format!(
                    "✗ {} failed at {}: its changes were undone, the database is back where the run found it, {versions}",
                    s.pipeline,
                    s.failed_stage.as_deref().unwrap_or("?")
                )
        }
        Outcome::FailedUnchanged => format!(
            "✗ {} failed at {}: nothing changed; {the_database_is}",
            s.pipeline,
            s.failed_stage.as_deref().unwrap_or("?")
        ),
        Outcome::Refused => format!(
            "✗ {} refused: nothing changed; {the_database_is}",
            s.pipeline
        ),
        Outcome::FailedNotRecovered => format!(
            "✗ {} failed at {} and is NOT recovered: {versions}. A human must look.",
            s.pipeline,
            s.failed_stage.as_deref().unwrap_or("?")
        ),
    }
}

/// The stages of a run as a table: a run's closing report, `history --run`. A detail
/// that is `said_below` (the run's reason, printed in full under the table) is cut to
/// its first words, so a long reason (a refusal naming many migrations) is not read
/// twice.
pub fn stage_table(stages: &[StageRecord], said_below: Option<&str>) -> Vec<String> {
    // As wide as the longest stage name (`downgrade (recovery)`), 14 at least.
    let width = stages
        .iter()
        .map(|st| st.stage.chars().count())
        .max()
        .unwrap_or(0)
        .max(14);
    let mut lines = vec![format!(
        "{:<width$} {:<10} {:>9}  detail",
        "stage", "status", "time"
    )];
    for st in stages {
        let detail = match said_below {
            Some(reason) if reason == st.detail => cut(&st.detail, "the reason, below"),
            _ => st.detail.clone(),
        };
        lines.push(format!(
            "{:<width$} {:<10} {:>9}  {}",
            st.stage,
            st.status,
            human_duration(st.duration_ms),
            detail
        ));
    }
    lines
}

/// A text longer than this (a refusal naming many migrations, say) is cut where it is
/// said in full elsewhere, to its first `SHORT_DETAIL` characters.
const LONG_DETAIL: usize = 240;
const SHORT_DETAIL: usize = 160;

/// `text`, or its first words and where it is said in full (`whole`).
fn cut(text: &str, whole: &str) -> String {
    if text.chars().count() <= LONG_DETAIL {
        return text.to_string();
    }
    let short: String = text.chars().take(SHORT_DETAIL).collect();
    format!("{}… ({whole})", short.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_is_said_in_full_once_and_cut_in_the_table() {
        let long = format!(
            "cannot downgrade: {}",
            (1..=13)
                .map(|i| format!("{i}_migration_number_{i} has no down file"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let stages = [StageRecord {
            stage: "downgrade".into(),
            status: "refused".into(),
            duration_ms: 3,
            detail: long.clone(),
        }];
        let table = stage_table(&stages, Some(&long));
        assert!(table[1].ends_with("… (the reason, below)"), "{}", table[1]);
        assert!(!table[1].contains("13_migration_number_13"));
        // Without the reason below (`history --run`), the table says it all.
        assert!(stage_table(&stages, None)[1].contains("13_migration_number_13"));
        // A short one stays whole.
        let short = "relation \"a\" already exists";
        let stages = [StageRecord {
            detail: short.into(),
            ..stages[0].clone()
        }];
        assert!(stage_table(&stages, Some(short))[1].ends_with(short));
    }
}
