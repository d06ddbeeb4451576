//! Pipeline files: which stages run, in what order, and what happens on failure.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The pipelines shipped inside the binary, so `ballast deploy` works from any folder.
const BUILT_IN: &[(&str, &str)] = &[
    ("deploy", include_str!("../../pipelines/deploy.toml")),
    ("backup", include_str!("../../pipelines/backup.toml")),
    ("roundtrip", include_str!("../../pipelines/roundtrip.toml")),
    ("rollback", include_str!("../../pipelines/rollback.toml")),
];

/// The closed set of stage kinds; kebab-case in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    StateCheck,
    Preview,
    Confirm,
    Backup,
    Upgrade,
    Verify,
    Shell,
    VerifyBackup,
    Prune,
    Restore,
    Downgrade,
    /// Alembic's `stamp`: asks on its own, so it needs no confirm stage before it.
    Stamp,
    /// The sql engine's `baseline`: records migrations as applied without running them;
    /// asks on its own too.
    Baseline,
    /// The CI round trip: the newest migration up, down and up again, the schema
    /// compared at each step.
    Roundtrip,
    /// The plan run on a restored copy of the target and measured; over
    /// `[rehearse]`'s limits, the run stops before the target is touched.
    Rehearse,
}

impl StageKind {
    pub fn name(self) -> &'static str {
        match self {
            StageKind::StateCheck => "state-check",
            StageKind::Preview => "preview",
            StageKind::Confirm => "confirm",
            StageKind::Backup => "backup",
            StageKind::Upgrade => "upgrade",
            StageKind::Verify => "verify",
            StageKind::Shell => "shell",
            StageKind::VerifyBackup => "verify-backup",
            StageKind::Prune => "prune",
            StageKind::Restore => "restore",
            StageKind::Downgrade => "downgrade",
            StageKind::Stamp => "stamp",
            StageKind::Baseline => "baseline",
            StageKind::Roundtrip => "roundtrip",
            StageKind::Rehearse => "rehearse",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub kind: StageKind,
    /// A display name; defaults to the kind.
    pub name: Option<String>,
    /// For `shell` stages: the command, run through `sh -c`.
    pub command: Option<String>,
    /// For `shell` stages: how long the command may run before it is killed
    /// (`"30s"`, `"20m"`; default 5 minutes).
    #[serde(default, deserialize_with = "time_limit")]
    pub timeout: Option<std::time::Duration>,
    /// For `downgrade` stages: the revision to go to (`base` for all the way); without
    /// it, where the run started. For `upgrade`: the migration to stop at (without it,
    /// the head). For `stamp`: the revision to write.
    pub to: Option<String>,
}

impl StageSpec {
    /// A stage built by ballast rather than read from a file: a recovery rung, the
    /// `stamp` command's one stage.
    pub fn built(kind: StageKind, name: Option<&str>, to: Option<String>) -> StageSpec {
        StageSpec {
            kind,
            name: name.map(str::to_string),
            command: None,
            timeout: None,
            to,
        }
    }

    /// A `shell` stage's time limit.
    pub fn shell_timeout(&self) -> std::time::Duration {
        self.timeout.unwrap_or(crate::subprocess::HOOK_TIMEOUT)
    }

    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.kind.name().to_string())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailurePolicy {
    #[serde(default)]
    pub hooks: Vec<String>,
    /// Step back with the engine's downgrade to where the run started, when a failure
    /// left committed migrations behind. The ladder's second rung.
    #[serde(default = "yes")]
    pub downgrade: bool,
    /// Restore this run's backup when a failure left changes behind and the downgrade
    /// is off, impossible or failed. The ladder's third rung.
    #[serde(default)]
    pub restore: RestorePolicy,
    /// What to do with an INVALID index a failed `CREATE INDEX CONCURRENTLY` left.
    #[serde(default)]
    pub invalid_indexes: InvalidIndexPolicy,
}

impl Default for FailurePolicy {
    fn default() -> FailurePolicy {
        FailurePolicy {
            hooks: Vec::new(),
            downgrade: true,
            restore: RestorePolicy::default(),
            invalid_indexes: InvalidIndexPolicy::default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// A `timeout`, read once: a duration, never 0 (a hung command would never stop).
fn time_limit<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    match crate::config::parse_duration(&text).map_err(serde::de::Error::custom)? {
        limit if limit.is_zero() => Err(serde::de::Error::custom(
            "0 would never stop a command that hangs; give a duration",
        )),
        limit => Ok(Some(limit)),
    }
}

/// `[on_failure] invalid_indexes = ...`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidIndexPolicy {
    /// `DROP INDEX CONCURRENTLY` it: it serves no query, slows every write, and makes
    /// the migration's retry fail (or, with `IF NOT EXISTS`, silently keep it invalid).
    #[default]
    Drop,
    /// Ask at a terminal; without one, name it and leave it.
    Ask,
}

/// `[on_failure] restore = ...`: the restore rung of the recovery ladder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestorePolicy {
    /// Never restore; a failure that left changes exits 4 with the steps to take.
    #[default]
    Never,
    /// Ask at a terminal; without one, do not restore (exit 4 with instructions).
    Ask,
    /// Restore without asking (scheduled deploys that must end where they started).
    Auto,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    #[serde(skip)]
    pub name: String,
    /// Where it came from: `built-in` or a path.
    #[serde(skip)]
    pub origin: String,
    #[serde(default)]
    pub description: String,
    /// The command that runs it again, when a command built it (`stamp REV`).
    #[serde(skip)]
    pub rerun: Option<String>,
    pub stages: Vec<StageSpec>,
    #[serde(default)]
    pub on_failure: FailurePolicy,
    #[serde(default)]
    pub notify: Notify,
}

/// `[notify]`: commands run after every run, whatever its outcome (a chat message, a
/// deploy tracker); see `pipeline::hooks`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    #[serde(default)]
    pub hooks: Vec<String>,
}

impl Pipeline {
    /// A pipeline of one stage, built by a command rather than read from a file.
    pub fn single(name: &str, rerun: String, stage: StageSpec) -> Pipeline {
        Pipeline {
            name: name.to_string(),
            origin: "built-in".to_string(),
            description: String::new(),
            rerun: Some(rerun),
            stages: vec![stage],
            on_failure: FailurePolicy::default(),
            notify: Notify::default(),
        }
    }

    /// `ballast restore ID`: the chosen backup read back in full, the name typed (or
    /// `--yes`), the restore. Nothing to climb back from: the target is replaced only
    /// by the restore's last, atomic step.
    pub fn restore(rerun: String) -> Pipeline {
        let stage = |kind| StageSpec::built(kind, None, None);
        Pipeline {
            stages: vec![
                stage(StageKind::VerifyBackup),
                stage(StageKind::Confirm),
                stage(StageKind::Restore),
            ],
            ..Pipeline::single("restore", rerun, stage(StageKind::Restore))
        }
    }

    /// `ballast rehearse`: the state check, the preview (the plan and its lint), a
    /// fresh backup (none with `--from`), and the rehearsal on a copy restored from it.
    pub fn rehearse(rerun: String, fresh_backup: bool) -> Pipeline {
        let stage = |kind| StageSpec::built(kind, None, None);
        let mut stages = vec![stage(StageKind::StateCheck), stage(StageKind::Preview)];
        if fresh_backup {
            stages.push(stage(StageKind::Backup));
        }
        stages.push(stage(StageKind::Rehearse));
        Pipeline {
            stages,
            ..Pipeline::single("rehearse", rerun, stage(StageKind::Rehearse))
        }
    }

    /// `[rehearse] before_deploy`: a rehearsal right after the backup, and the backup
    /// moved before the question when it came after it (the built-in deploy), so the
    /// question shows the numbers and a rehearsal over its limits stops the run before
    /// anyone is asked. Unchanged when the pipeline rehearses already, or has no backup
    /// before its upgrade.
    pub fn rehearsing_before_the_question(mut self) -> Pipeline {
        let at = |p: &Pipeline, kind| p.stages.iter().position(|s| s.kind == kind);
        let (Some(backup), Some(upgrade)) =
            (at(&self, StageKind::Backup), at(&self, StageKind::Upgrade))
        else {
            return self;
        };
        if at(&self, StageKind::Rehearse).is_some() || backup > upgrade {
            return self;
        }
        let backup = match at(&self, StageKind::Confirm) {
            // The backup comes after the question: it moves to right before it.
            Some(confirm) if confirm < backup => {
                let stage = self.stages.remove(backup);
                self.stages.insert(confirm, stage);
                confirm
            }
            _ => backup,
        };
        self.stages.insert(
            backup + 1,
            StageSpec::built(StageKind::Rehearse, None, None),
        );
        self
    }

    /// Whether its recovery ladder may restore the run's backup (`[on_failure]
    /// restore` is `ask` or `auto`).
    pub fn restores_on_failure(&self) -> bool {
        self.takes_backup() && self.on_failure.restore != RestorePolicy::Never
    }

    /// Whether it has a rehearse stage (the preflight then checks the copy can be made).
    pub fn rehearses(&self) -> bool {
        self.stages.iter().any(|s| s.kind == StageKind::Rehearse)
    }

    /// Whether it has a backup stage (the preflight then checks pg_dump and storage).
    pub fn takes_backup(&self) -> bool {
        self.stages.iter().any(|s| s.kind == StageKind::Backup)
    }

    /// The first stage that changes the database.
    pub fn first_change(&self) -> Option<&StageSpec> {
        self.first_change_at().map(|i| &self.stages[i])
    }

    fn first_change_at(&self) -> Option<usize> {
        self.stages.iter().position(|s| {
            matches!(
                s.kind,
                StageKind::Upgrade
                    | StageKind::Restore
                    | StageKind::Downgrade
                    | StageKind::Roundtrip
            )
        })
    }

    /// True when the pipeline asks (a `confirm` stage) before its first `upgrade`, or
    /// never changes the database.
    pub fn confirms_before_changing(&self) -> bool {
        let position = |kind| self.stages.iter().position(|s| s.kind == kind);
        let first_change = self.first_change_at();
        match (first_change, position(StageKind::Confirm)) {
            (None, _) => true,
            (Some(upgrade), Some(confirm)) => confirm < upgrade,
            (Some(_), None) => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("no pipeline named `{name}`: looked in {dir} and the built-in ones ({built_in})")]
    NotFound {
        name: String,
        dir: PathBuf,
        built_in: String,
    },
    #[error("cannot read pipeline {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("in pipeline {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Pipeline {
    /// Finds `name`: a path to a `.toml` file, else `<config dir>/pipelines/<name>.toml`,
    /// else the built-in pipeline of that name.
    pub fn find(name: &str, config_dir: &Path) -> Result<Pipeline, PipelineError> {
        let as_path = Path::new(name);
        if name.ends_with(".toml") || name.contains('/') {
            let path = if as_path.is_absolute() {
                as_path.to_path_buf()
            } else {
                config_dir.join(as_path)
            };
            // "run it again" names the file as it was given, not its stem (no pipeline
            // of that name may exist).
            let mut pipeline = Self::from_file(&path)?;
            pipeline.rerun = Some(format!("run {name}"));
            return Ok(pipeline);
        }
        let beside = config_dir.join("pipelines").join(format!("{name}.toml"));
        if beside.is_file() {
            return Self::from_file(&beside);
        }
        match BUILT_IN.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Self::parse(n, "built-in", text),
            None => Err(PipelineError::NotFound {
                name: name.into(),
                dir: config_dir.join("pipelines"),
                built_in: BUILT_IN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn from_file(path: &Path) -> Result<Pipeline, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("pipeline");
        Self::parse(name, &path.display().to_string(), &text)
    }

    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Pipeline, PipelineError> {
        let invalid = |message: String| PipelineError::Invalid {
            origin: origin.into(),
            message,
        };
        let mut pipeline: Pipeline =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().into()))?;
        if pipeline.stages.is_empty() {
            return Err(invalid("it has no stages".into()));
        }
        for stage in &pipeline.stages {
            match (stage.kind, &stage.command) {
                (StageKind::Shell, None) => {
                    return Err(invalid("a `shell` stage needs a `command`".into()))
                }
                (kind, Some(_)) if kind != StageKind::Shell => {
                    return Err(invalid(format!(
                        "`command` belongs to `shell` stages, not `{}`",
                        kind.name()
                    )))
                }
                _ => {}
            }
            if stage.timeout.is_some() && stage.kind != StageKind::Shell {
                return Err(invalid(format!(
                    "`timeout` belongs to `shell` stages, not `{}`",
                    stage.kind.name()
                )));
            }
        }
        let position = |kind| pipeline.stages.iter().position(|s| s.kind == kind);
        if let (Some(upgrade), Some(backup)) =
            (position(StageKind::Upgrade), position(StageKind::Backup))
        {
            if backup > upgrade {
                return Err(invalid(
                    "the backup stage must come before the upgrade stage".into(),
                ));
            }
        }
        pipeline.name = name.into();
        pipeline.origin = origin.into();
        Ok(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_after_rehearsal_is_added(stages: &[&str]) -> Vec<String> {
        let text: String = stages
            .iter()
            .map(|k| format!("[[stages]]\nkind = \"{k}\"\n"))
            .collect();
        let pipeline = Pipeline::parse("p", "test", &text).unwrap();
        pipeline
            .rehearsing_before_the_question()
            .stages
            .iter()
            .map(|s| s.kind.name().to_string())
            .collect()
    }

    #[test]
    fn a_rehearsal_before_the_question_follows_the_backup_wherever_it_is() {
        // The built-in deploy: the backup moves before the question.
        assert_eq!(
            kinds_after_rehearsal_is_added(&[
                "state-check",
                "preview",
                "confirm",
                "backup",
                "upgrade",
                "verify"
            ]),
            [
                "state-check",
                "preview",
                "backup",
                "rehearse",
                "confirm",
                "upgrade",
                "verify"
            ]
        );
        // A backup already before the question stays, with what follows it.
        assert_eq!(
            kinds_after_rehearsal_is_added(&["backup", "verify-backup", "confirm", "upgrade"]),
            ["backup", "rehearse", "verify-backup", "confirm", "upgrade"]
        );
        // No question: right after the backup.
        assert_eq!(
            kinds_after_rehearsal_is_added(&["backup", "prune", "upgrade"]),
            ["backup", "rehearse", "prune", "upgrade"]
        );
        // Nothing to rehearse from, or rehearsing already: unchanged.
        for stages in [
            &["confirm", "upgrade"][..],
            &["backup", "rehearse", "confirm", "upgrade"][..],
            &["backup", "verify-backup", "prune"][..],
        ] {
            assert_eq!(kinds_after_rehearsal_is_added(stages), stages);
        }
    }

    #[test]
    fn built_in_pipelines_parse() {
        for (name, text) in BUILT_IN {
            Pipeline::parse(name, "built-in", text).unwrap();
        }
        let deploy = Pipeline::find("deploy", Path::new("/nonexistent")).unwrap();
        let kinds: Vec<&str> = deploy.stages.iter().map(|s| s.kind.name()).collect();
        assert_eq!(
            kinds,
            [
                "state-check",
                "preview",
                "confirm",
                "backup",
                "upgrade",
                "verify"
            ]
        );
    }

    #[test]
    fn a_pipelines_folder_beside_the_config_overrides_built_ins() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("pipelines")).unwrap();
        std::fs::write(
            tmp.path().join("pipelines/deploy.toml"),
            "[[stages]]\nkind = \"verify\"\n",
        )
        .unwrap();
        let p = Pipeline::find("deploy", tmp.path()).unwrap();
        assert_eq!(p.stages.len(), 1);
        assert!(p.origin.ends_with("pipelines/deploy.toml"));
    }

    #[test]
    fn unknown_stage_kinds_and_keys_are_errors() {
        let err = Pipeline::parse("x", "x.toml", "[[stages]]\nkind = \"upgrayed\"\n").unwrap_err();
        assert!(err.to_string().contains("upgrayed"), "{err}");
        let err = Pipeline::parse(
            "x",
            "x.toml",
            "[[stages]]\nkind = \"verify\"\nretries = 3\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("retries"), "{err}");
    }

    #[test]
    fn a_shell_timeout_is_a_duration_on_shell_stages_only() {
        let shell = |timeout: &str| {
            Pipeline::parse(
                "x",
                "x.toml",
                &format!(
                    "[[stages]]\nkind = \"shell\"\ncommand = \"true\"\ntimeout = \"{timeout}\"\n"
                ),
            )
        };
        let p = shell("20m").unwrap();
        assert_eq!(
            p.stages[0].shell_timeout(),
            std::time::Duration::from_secs(1200)
        );
        let err = shell("soon").unwrap_err().to_string();
        assert!(err.contains("`soon` is not a duration"), "{err}");
        let err = shell("0").unwrap_err().to_string();
        assert!(err.contains("never stop"), "{err}");
        let err = Pipeline::parse(
            "x",
            "x.toml",
            "[[stages]]\nkind = \"verify\"\ntimeout = \"1m\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`timeout` belongs to `shell` stages, not `verify`"),
            "{err}"
        );
        let p = Pipeline::parse(
            "x",
            "x.toml",
            "[[stages]]\nkind = \"shell\"\ncommand = \"true\"\n",
        )
        .unwrap();
        assert_eq!(p.stages[0].shell_timeout(), crate::subprocess::HOOK_TIMEOUT);
    }

    #[test]
    fn backup_after_upgrade_is_rejected() {
        let text = "[[stages]]\nkind = \"upgrade\"\n[[stages]]\nkind = \"backup\"\n";
        assert!(Pipeline::parse("x", "x.toml", text).is_err());
    }

    #[test]
    fn unknown_names_list_the_built_ins() {
        let err = Pipeline::find("nope", Path::new("/tmp"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("deploy, backup"), "{err}");
    }
}
