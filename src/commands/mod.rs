//! One function per command; each returns the process exit code.

mod backups;
mod check;
mod common;
mod demo;
mod history;
mod init;
mod inspect;
mod pipeline_run;
mod restore;
mod targets;
mod wait;

use crate::cli::{Cli, Command};

pub(crate) use common::{events, fail, load_settings};

pub async fn run(cli: Cli) -> i32 {
    crate::interrupt::install();
    let g = &cli.global;
    let fans_out = matches!(
        cli.command,
        Command::Deploy { .. } | Command::Run { .. } | Command::Backup
    );
    if g.targets.is_some() && g.target.is_none() && !fans_out {
        return fail(
            g,
            "--targets runs deploy, run and backup on every target; for another command name one with --target NAME",
            crate::exit_code::USAGE,
        );
    }
    if g.non_interactive {
        crate::report::set_non_interactive();
    }
    // NO_COLOR (no-color.org): no colour whatever the terminal says.
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    match &cli.command {
        Command::Deploy { phase } => pipeline_run::run(g, "deploy", phase.phase).await,
        Command::Run { name, phase } => pipeline_run::run(g, name, phase.phase).await,
        Command::Rehearse {
            from,
            report,
            phase,
        } => pipeline_run::rehearse(g, from.as_deref(), report.as_deref(), phase.phase).await,
        Command::Backup => pipeline_run::run(g, "backup", None).await,
        Command::Status { phase } => inspect::status(g, phase.phase).await,
        Command::Plan { full, phase } => inspect::plan(g, *full, phase.phase).await,
        Command::Wait {
            phase,
            timeout,
            interval,
        } => wait::run(g, *phase, *timeout, *interval).await,
        Command::History { limit, run } => history::run(g, *limit, run.as_deref()).await,
        Command::Backups => backups::list(g).await,
        Command::VerifyBackup {
            id,
            identity,
            restore,
        } => backups::verify_one(g, id.as_deref(), identity.as_deref(), *restore).await,
        Command::Prune => backups::prune_old(g).await,
        Command::Restore {
            id,
            into,
            end_sessions,
            identity,
        } => {
            restore::run(
                g,
                id.as_deref(),
                into.as_deref(),
                *end_sessions,
                identity.as_deref(),
            )
            .await
        }
        Command::Demo { dir, keep } => demo::run(g, dir, *keep).await,
        Command::Init { url } => init::run(g, url.as_deref()).await,
        Command::Stamp { revision } => {
            pipeline_run::single(g, crate::pipeline::StageKind::Stamp, revision).await
        }
        Command::Baseline { version } => {
            pipeline_run::single(g, crate::pipeline::StageKind::Baseline, version).await
        }
        Command::Check { format, all, rules } => check::run(g, *format, *all, *rules).await,
        Command::Completions { shell } => completions(*shell),
    }
}

/// Writes the completion script for `shell` (generated into memory first: a closed
/// pipe must not panic).
fn completions(shell: clap_complete::Shell) -> i32 {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ballast", &mut script);
    let mut out = std::io::stdout().lock();
    let _ = std::io::Write::write_all(&mut out, &script);
    crate::exit_code::SUCCESS
}
