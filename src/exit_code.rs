//! Process exit codes: the contract a scheduler reads.
//!
//! These are the only exit codes ballast uses. They let a cron job or a CI step tell
//! "failed, but the database is back where it was" from "failed, a human must look".

/// Success: the pipeline or command did what was asked.
pub const SUCCESS: i32 = 0;
/// Failed, and the database is at the state the run found it in. Also: `status` found
/// pending migrations; `check` found an error-level risk or a failed preflight check.
pub const FAILED_RESTORED: i32 = 1;
/// Usage or configuration error: nothing was attempted. Also: a read-only command
/// (`status`, `plan`, `history`) could not read the target.
pub const USAGE: i32 = 2;
/// Refused: not confirmed, deploy lock busy, plan changed, preflight failed. Nothing changed.
pub const REFUSED: i32 = 3;
/// Failed and NOT recovered: the database may be between states. A human must look.
pub const NOT_RECOVERED: i32 = 4;

/// The table of codes as text, for `--help` (a macro so clap's `concat!` can use it).
#[macro_export]
macro_rules! exit_code_table {
    () => {
        "Exit codes:
  0  success
  1  failed; the database is as the run found it (status: migrations pending; check: errors found)
  2  usage or configuration error; nothing was attempted (read-only commands: target unreadable)
  3  refused (not confirmed, lint errors without --allow-risky, preflight failed, lock busy,
     plan changed); nothing changed
  4  failed and NOT recovered; a human must look"
    };
}
