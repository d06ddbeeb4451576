//! The processes ballast starts (pg_dump, pg_restore, Alembic, hooks, `shell` stages).
//!
//! Each runs in its own process group, so a terminal's Ctrl-C reaches ballast alone
//! and ballast decides what each child hears: Alembic gets a SIGINT while it changes
//! the database (its driver cancels the statement), a restore rung's pg_restore is
//! never cut short by the key press that started the ladder. And each dies with
//! ballast (Linux's parent-death signal): a SIGKILLed ballast leaves no Alembic
//! half-way through a migration while its deploy lock, held by ballast's own session,
//! is already free.
//!
//! The parent-death signal fires when the *thread* that spawned the child ends, so a
//! child must be started and waited for on the same thread, as every caller does.

use std::os::unix::process::CommandExt;

/// Readies a command before it is spawned (for duct: `before_spawn`).
pub fn prepare(command: &mut std::process::Command) {
    command.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // ballast died between the fork and the prctl: do not outlive it.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("ballast exited while starting it"));
                }
                Ok(())
            });
        }
    }
}

/// [`prepare`] as a duct hook.
pub fn duct_hook(command: &mut std::process::Command) -> std::io::Result<()> {
    prepare(command);
    Ok(())
}
