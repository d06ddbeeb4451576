//! `deploy`, `run NAME`, `backup` and `stamp`: each is "run a pipeline" (and so is
//! `restore`, through [`run_pipeline`]).

use crate::cli::GlobalArgs;
use crate::config::Settings;
use crate::events::RunSummary;
use crate::exit_code;
use crate::migrations::Phase;
use crate::pipeline::{Pipeline, RestoreChoice, RunContext, RunOptions, StageKind, StageSpec};

/// Runs pipeline `name`; `phase`: the release phase its upgrade runs (`--phase`).
pub async fn run(g: &GlobalArgs, name: &str, phase: Option<Phase>) -> i32 {
    if let (Some(file), None) = (&g.targets, &g.target) {
        return super::targets::run_all(g, file).await;
    }
    match super::load_settings(g) {
        Ok(settings) => run_with(g, settings, name, phase).await,
        Err(code) => code,
    }
}

/// Runs pipeline `name` on already-loaded settings (also `demo`'s way in).
pub async fn run_with(g: &GlobalArgs, settings: Settings, name: &str, phase: Option<Phase>) -> i32 {
    if let Err(e) = settings.database.url() {
        return super::fail(g, &e.to_string(), exit_code::USAGE);
    }
    let pipeline = match Pipeline::find(name, &settings.config_dir) {
        Ok(p) => p,
        Err(e) => return super::fail(g, &e.to_string(), exit_code::USAGE),
    };
    // A phase cuts what an upgrade stage applies; anywhere else it would be ignored,
    // or (a round trip) disagree with what it checks.
    let kinds: Vec<StageKind> = pipeline.stages.iter().map(|s| s.kind).collect();
    if phase.is_some()
        && (!kinds.contains(&StageKind::Upgrade) || kinds.contains(&StageKind::Roundtrip))
    {
        return super::fail(
            g,
            &format!(
                "--phase chooses what an upgrade applies; pipeline {} has no upgrade stage (or is a round trip): run it without --phase",
                pipeline.name
            ),
            exit_code::USAGE,
        );
    }
    let pipeline = match settings.rehearse.before_deploy {
        true => pipeline.rehearsing_before_the_question(),
        false => pipeline,
    };
    run_pipeline(g, settings, pipeline, None, options(g, phase))
        .await
        .exit_code
}

/// How the person started the run: `--yes`, `--allow-risky`, `--phase`.
pub(super) fn options(g: &GlobalArgs, phase: Option<Phase>) -> RunOptions {
    RunOptions {
        assume_yes: g.yes,
        allow_risky: g.allow_risky,
        phase,
        ..RunOptions::default()
    }
}

/// `ballast rehearse [--from ID] [--report FILE.html] [--phase P]`.
pub async fn rehearse(
    g: &GlobalArgs,
    from: Option<&str>,
    report: Option<&std::path::Path>,
    phase: Option<Phase>,
) -> i32 {
    let settings = match super::load_settings(g) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    if let Err(e) = settings.database.url() {
        return super::fail(g, &e.to_string(), exit_code::USAGE);
    }
    let mut rerun = "rehearse".to_string();
    if let Some(from) = from {
        rerun.push_str(&format!(" --from {from}"));
    }
    if let Some(phase) = phase {
        rerun.push_str(&format!(" --phase {}", phase.name()));
    }
    let pipeline = Pipeline::rehearse(rerun, from.is_none());
    let options = RunOptions {
        rehearse_from: from.map(str::to_string),
        rehearsal_report: report.map(std::path::Path::to_path_buf),
        ..options(g, phase)
    };
    run_pipeline(g, settings, pipeline, None, options)
        .await
        .exit_code
}

/// `stamp REV` and `baseline VERSION`: a one-stage pipeline, so each is journaled like
/// any run.
pub async fn single(g: &GlobalArgs, kind: StageKind, to: &str) -> i32 {
    let settings = match super::load_settings(g) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    if let Err(e) = settings.database.url() {
        return super::fail(g, &e.to_string(), exit_code::USAGE);
    }
    let name = kind.name();
    let pipeline = Pipeline::single(
        name,
        format!("{name} {to}"),
        StageSpec::built(kind, None, Some(to.to_string())),
    );
    run_pipeline(g, settings, pipeline, None, options(g, None))
        .await
        .exit_code
}

/// Runs `pipeline` (for `ballast restore`, on the backup the person chose) and writes
/// `--summary-file`.
pub(super) async fn run_pipeline(
    g: &GlobalArgs,
    settings: Settings,
    pipeline: Pipeline,
    restore: Option<RestoreChoice>,
    options: RunOptions,
) -> RunSummary {
    let events = super::events(g, false);
    let mut ctx = RunContext::new(settings, options, events, &pipeline.name);
    if let Some(choice) = restore {
        ctx.choose_backup(choice);
    }
    let summary = crate::runner::run(&pipeline, &mut ctx).await;
    ctx.reset_conn().await;
    if let Some(path) = &g.summary_file {
        if let Err(e) = std::fs::write(path, serde_json::to_vec(&summary).unwrap_or_default()) {
            crate::report::stderr_line(&format!(
                "ballast: cannot write the summary file {}: {e}",
                path.display()
            ));
        }
    }
    summary
}
