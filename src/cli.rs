//! The command line: what each command means, with an example in its `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ballast",
    version,
    about = "Safe PostgreSQL schema deploys: back up, check, preview, confirm, upgrade in one transaction, verify.",
    long_about = "ballast runs a schema deploy as a pipeline of stages (pipelines/deploy.toml): \
state-check, preview, confirm, backup, upgrade, verify. If a stage fails it says exactly \
what changed and what did not, and the exit code tells a scheduler which case it was.",
    after_help = concat!("Examples:\n  ballast status                      what is applied, what is pending\n  ballast plan                        the SQL that would run, and its plan hash\n  ballast deploy                      back up, confirm, apply, verify\n  ballast --yes --json deploy         the same, unattended, one JSON event a line\n  ballast demo --yes                  a full deploy against a throwaway local PostgreSQL\n\nConfig: ./deploy.toml (or --config), config/<env>.toml (--env), BALLAST_SECTION__KEY and\nDATABASE_URL in the environment. deploy.example.toml documents every key.\n\n", crate::exit_code_table!())
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Config file [default: ./deploy.toml]. Relative paths in it start at its folder.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Overlay config/<NAME>.toml (beside the config file) on the config.
    #[arg(long, global = true, value_name = "NAME")]
    pub env: Option<String>,
    /// Override one config key, the top layer: --set database.lock_timeout=10s (repeatable).
    #[arg(long, global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Answer yes to the confirmation prompt (for scheduled jobs and CI).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Never wait for input, even at a terminal: where a question would be asked, the
    /// run refuses (exit 3) or leaves the decision to a person (exit 4) and says how.
    /// With --yes, the deploy's confirmation is given; other questions stay unasked.
    #[arg(long, global = true)]
    pub non_interactive: bool,
    /// Run on every target of this file (one `[[target]]` per database, each overriding
    /// the config; see docs/targets.md), each in its own ballast process, ending with a
    /// table: target, outcome, revisions, backup, time. With deploy, run and backup.
    #[arg(long, global = true, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// With --targets: run only this target (a Kubernetes Indexed Job's pod, a retry).
    #[arg(long, global = true, value_name = "NAME", requires = "targets")]
    pub target: Option<String>,
    /// With --targets: take only a share, INDEX/COUNT (0-based): the targets at the
    /// file positions INDEX, INDEX+COUNT, ... (a Kubernetes Indexed Job's pod passes
    /// `$JOB_COMPLETION_INDEX/<completions>`).
    #[arg(long, global = true, value_name = "INDEX/COUNT", requires = "targets", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// With --targets: at most this many targets at once.
    #[arg(long, global = true, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// With --targets: go on with the other targets after one fails (by default no
    /// further target starts; those running finish).
    #[arg(long, global = true)]
    pub keep_going: bool,
    /// Write the run's summary (the `run_finished` fields, JSON) to this file at the
    /// end; `--targets` uses it to collect each target's outcome.
    #[arg(long, global = true, value_name = "FILE", hide = true)]
    pub summary_file: Option<PathBuf>,
    /// When stderr is not a terminal (a log file, a CronJob's log), progress is written
    /// as a line this often instead of bars.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse_duration_arg)]
    pub progress_interval: std::time::Duration,
    /// Deploy even when the lint found error-level risks in the plan (after reading them).
    #[arg(long, global = true)]
    pub allow_risky: bool,
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail (each migration as it is applied; debug logs with -vv).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors and the final summary.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the deploy pipeline: state-check, preview, confirm, backup, upgrade, verify.
    #[command(
        after_help = "Examples:\n  ballast deploy\n  ballast deploy --env production\n  DATABASE_URL=postgres://app@db/shop ballast --yes deploy\n  ballast --yes deploy --phase pre     before the rollout: hold back `-- ballast:phase post`\n  ballast --yes deploy --phase post    after it: what is still pending, contract step included\n\nWithout a terminal, the deploy refuses (exit 3) unless --yes is given. docs/releases.md has\nthe whole zero-downtime sequence."
    )]
    Deploy {
        #[command(flatten)]
        phase: PhaseArg,
    },
    /// Rehearse the deploy on a copy of the target: a fresh backup (or --from one)
    /// restored into a scratch database, the pending plan run there as the deploy would
    /// run it, each statement's time, rows, locks and rewrites measured, the copy
    /// dropped. Exit 3 over a [rehearse] limit, or when the plan fails on the copy.
    #[command(
        after_help = "Examples:\n  ballast rehearse                         back up, restore a copy, run the plan there\n  ballast rehearse --from latest           CI: rehearse on last night's backup\n  ballast rehearse --report rehearsal.html a timeline of the locks, for the change request\n  ballast --json rehearse                  one `rehearsal` event with every statement\n\nThe copy is a new database beside the target (<db>__ballast_rehearsal_<stamp>), on\nanother server ([rehearse] url), or on a throwaway local one ([rehearse] url = \"local\").\nThe target is never changed. docs/rehearsal.md says what a rehearsal proves, and what not."
    )]
    Rehearse {
        /// Rehearse on this backup instead of taking a fresh one: an id (see `ballast
        /// backups`) or `latest`.
        #[arg(long, value_name = "ID")]
        from: Option<String>,
        /// Write a self-contained HTML page with a timeline per table of the locks each
        /// statement held.
        #[arg(long, value_name = "FILE.html")]
        report: Option<std::path::PathBuf>,
        #[command(flatten)]
        phase: PhaseArg,
    },
    /// Run any pipeline: a built-in name, pipelines/NAME.toml beside the config, or a path.
    #[command(
        after_help = "Examples:\n  ballast run deploy\n  ballast run backup\n  ballast run rollback          undo the newest migration (alembic downgrade -1), after a backup\n  ballast --yes run roundtrip   CI: the newest migration up, down and up, the schema compared\n  ballast run ./pipelines/release-with-smoke-test.toml\n\nBuilt in: deploy, backup, roundtrip, rollback."
    )]
    Run {
        /// Pipeline name or path to a pipeline file.
        name: String,
        #[command(flatten)]
        phase: PhaseArg,
    },
    /// Current version against the migration files: pending count and drift. Writes nothing.
    #[command(
        after_help = "Examples:\n  ballast status\n  ballast status --json\n  ballast status --phase pre     is the expand step done? (post-phase migrations held back)\n\nExit 0 when up to date (with --phase pre: nothing of the expand step pending), 1 when\nmigrations are pending or the state needs attention."
    )]
    Status {
        #[command(flatten)]
        phase: PhaseArg,
    },
    /// The pending migrations with their SQL and the plan hash. Writes nothing.
    #[command(
        after_help = "Examples:\n  ballast plan\n  ballast plan --full > plan.txt\n  ballast plan --phase pre       what runs before the rollout, and what is held back"
    )]
    Plan {
        /// Show every line of SQL instead of the first few per migration.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        phase: PhaseArg,
    },
    /// The rollout gate: wait until nothing of a release phase is pending for these
    /// migration files, e.g. in the application pod's init container. Reads only
    /// (works with a read-only role) and never queues behind a lock.
    #[command(
        after_help = "Examples:\n  ballast wait                         until the expand step (--phase pre) is applied\n  ballast wait --timeout 15m --interval 5s\n  ballast wait --phase post            until every migration is applied\n\nExit 0 as soon as nothing of the phase is pending; 1 when --timeout passes first (what is\nstill pending is named); 3 when the database has migrations these files do not know (the\napplication image is older than the database); 2 when the config or URL is wrong."
    )]
    Wait {
        /// What must be applied: `pre` (the expand step; post-phase migrations may stay
        /// pending) or `post` (everything).
        #[arg(long, value_enum, default_value_t = crate::migrations::Phase::Pre)]
        phase: crate::migrations::Phase,
        /// Give up after this long (exit 1).
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration_arg)]
        timeout: std::time::Duration,
        /// How often to look.
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration_arg)]
        interval: std::time::Duration,
    },
    /// Lint the migrations and (with a database) run the preflight: for CI and pre-commit.
    /// Pending migrations with a database, every migration without one (or with --all).
    /// Writes nothing to the database. Exit 1 on any error-level finding or failed check.
    #[command(
        after_help = "Examples:\n  ballast check                          pending migrations + preflight\n  ballast check --all --format github    every migration, as PR annotations\n  ballast check --rules                  the rules, their levels and what they find\n\nAllow a reviewed statement with a comment above it: -- ballast:allow <rule-id>\nRe-level or disable rules in deploy.toml: [lint] disable = [...], levels = { rule = \"warning\" }"
    )]
    Check {
        /// human (grouped by migration, with fixes), json (one object a line) or
        /// github (workflow annotations).
        #[arg(long, value_enum, default_value = "human")]
        format: CheckFormat,
        /// Lint every migration, applied or not, without the database's knowledge.
        #[arg(long)]
        all: bool,
        /// List the rules instead.
        #[arg(long)]
        rules: bool,
    },
    /// Take a backup now, outside any deploy (for scheduled jobs).
    #[command(
        after_help = "Examples:\n  ballast backup\n  BALLAST_BACKUP__DIR=/var/backups/shop ballast backup --json"
    )]
    Backup,
    /// List the backups in the configured storage: id, time, database, size, verified.
    #[command(
        after_help = "Examples:\n  ballast backups\n  ballast backups --json\n\nOnly complete backups are listed: an object without its manifest never counts."
    )]
    Backups,
    /// Read a backup back and check it: size and SHA-256 against its manifest, then the
    /// archive's table of contents (pg_restore --list). Needs no database.
    #[command(
        after_help = "Examples:\n  ballast verify-backup                 the newest backup\n  ballast verify-backup shop-20260101T020000Z-1a2b3c4d\n  ballast verify-backup --restore       the nightly restore drill: restore, count, drop\n\nA sound backup is marked verified; only verified backups count for prune."
    )]
    VerifyBackup {
        /// Backup id (see `ballast backups`); the newest when omitted.
        id: Option<String>,
        /// The age identity file that opens a sealed backup (backup.age_identity_file).
        /// Without one, a sealed backup's stored bytes are checked (size, SHA-256), not
        /// its contents.
        #[arg(long, value_name = "FILE")]
        identity: Option<std::path::PathBuf>,
        /// The restore drill: also restore it into a scratch database beside the target
        /// (`<db>__ballast_drill_<stamp>`, on the configured server; the role needs
        /// CREATEDB), count every table's rows, and drop the copy. How long it took (the
        /// recovery time you would face) and the counts are recorded beside the manifest.
        #[arg(long)]
        restore: bool,
    },
    /// Delete old backups by retention (backup.keep_last, backup.keep_days). A dry run
    /// unless --yes. Only verified backups count, and the newest verified is never deleted.
    #[command(
        after_help = "Examples:\n  ballast prune            show what would be deleted\n  ballast prune --yes      delete it"
    )]
    Prune,
    /// Restore a backup: verified first, checked against the server's version, confirmed by
    /// typing the database name. In place (after a safety backup) or into a new database.
    #[command(
        after_help = "Examples:\n  ballast restore                                   pick a backup, restore in place\n  ballast restore shop-20260101T020000Z-1a2b3c4d --into shop_drill\n  ballast --yes restore shop-20260101T020000Z-1a2b3c4d\n  ballast --yes restore latest --into shop_drill       nightly restore drill\n\nThe restore runs into a new database in one transaction; in place, the old database is\nkept as <name>_before_restore_<stamp> and the names are swapped only when it succeeded."
    )]
    Restore {
        /// Backup id (see `ballast backups`), or `latest` for the newest; without it,
        /// pick from a list.
        id: Option<String>,
        /// Restore into this new database instead of replacing the target.
        #[arg(long, value_name = "NEW_DB")]
        into: Option<String>,
        /// In place: end the sessions still connected to the target just before the
        /// rename (pg_terminate_backend), instead of refusing while clients are connected
        /// (backup.restore_ends_sessions for every restore).
        #[arg(long, conflicts_with = "into")]
        end_sessions: bool,
        /// The age identity file that opens a sealed backup (backup.age_identity_file).
        #[arg(long, value_name = "FILE")]
        identity: Option<std::path::PathBuf>,
    },
    /// Alembic only: write REV into the version table WITHOUT running migrations, for the
    /// documented emergencies (a revision whose file is gone, a schema built by hand).
    /// Asks first; journaled like any run.
    #[command(
        after_help = "Examples:\n  ballast stamp f6a0b1c2d3e4     the schema already matches f6a0b1c2d3e4\n  ballast --yes stamp head\n\n`ballast status` names the revision the database is at and, when ballast applied it,\nits nearest known ancestor. Check the schema before stamping: nothing is run."
    )]
    Stamp {
        /// A revision id, `head` or `base`.
        revision: String,
    },
    /// SQL migrations: adopt a database with tables but no ledger. Records the migrations
    /// up to VERSION as applied, in the ledger the target keeps, WITHOUT running them
    /// (`none`: records that none is). Asks first; journaled like any run.
    #[command(
        after_help = "Examples:\n  ballast baseline 20240105090000     the migrations up to this one built the schema\n  ballast baseline none               the tables there are not the migrations' work\n  ballast --yes baseline 3_add_orders\n\n`ballast status` names the tables it found and the migrations. Check the schema first:\nnothing is run. Refused once a ledger records anything."
    )]
    Baseline {
        /// A migration's version or label (`20240105090000`, `3_add_orders`), or `none`.
        version: String,
    },
    /// The run journal: recent runs, their outcome and stages.
    #[command(
        after_help = "Examples:\n  ballast history\n  ballast history --limit 5 --json\n  ballast history --run 3f2a91c0     one run's closing report again: stages, what\n                                    committed, the backup, what to do next\n\nRuns of this database only (the configured target and schema), from its ballast_journal\ntable and the journal file in backup.dir; when the database is down, from the file."
    )]
    History {
        /// How many runs to show, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Show one run in full: its run id, or the start of it.
        #[arg(long, value_name = "ID")]
        run: Option<String>,
    },
    /// Print a shell completion script: `ballast completions bash > /etc/bash_completion.d/ballast`,
    /// `ballast completions zsh > "${fpath[1]}/_ballast"`,
    /// `ballast completions fish > ~/.config/fish/completions/ballast.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write a commented deploy.toml for the project in this folder: the Alembic project
    /// or migration folder it finds (and its layout), and with a URL the ledger the
    /// database keeps. Never overwrites a file; reads the database only.
    #[command(
        after_help = "Examples:\n  ballast init\n  DATABASE_URL=postgres://app@db/shop ballast init\n  ballast init --url postgres://app@db/shop\n\nA URL with a password is never written into the file: keep it in DATABASE_URL."
    )]
    Init {
        /// The database to look at (default: DATABASE_URL): its ledger (sqlx's, diesel's,
        /// dbmate's, ballast's) and Alembic's version table.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Start a throwaway local PostgreSQL and run a full deploy of the bundled example
    /// migrations against it.
    #[command(
        after_help = "Examples:\n  ballast demo --yes\n  ballast demo --dir /tmp/try-ballast --keep\n\nThe database is thrown away afterwards unless --keep is given. Backups and the journal\nstay in DIR/backups."
    )]
    Demo {
        /// Where to write the example project (migrations, deploy.toml, backups).
        #[arg(long, default_value = "ballast-demo")]
        dir: PathBuf,
        /// Leave the PostgreSQL server running and print its URL.
        #[arg(long)]
        keep: bool,
    },
}

/// `--phase`: which release phase's migrations a command runs or shows.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct PhaseArg {
    /// The release phase: `pre` runs (or shows) the pending migrations of the expand
    /// step and holds back those marked `-- ballast:phase post` (`# ballast:phase post`
    /// in an Alembic revision); `post` takes everything pending. Without it: everything.
    #[arg(long, value_enum, value_name = "PHASE")]
    pub phase: Option<crate::migrations::Phase>,
}

/// `check --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    Github,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, crate::config::DurationError> {
    crate::config::parse_duration(text)
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let bad = || format!("expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 2/8; got `{text}`");
    let (index, count) = text.split_once('/').ok_or_else(bad)?;
    let index: usize = index.trim().parse().map_err(|_| bad())?;
    let count: usize = count.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok((index, count))
}
