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

/// Ends the process group of every child (each leads its own, see [`prepare`]): for an
/// exit that does not wait for them (an interrupt before anything changed), so what a
/// `shell` stage or a hook started (`sleep` under `sh -c`) does not outlive ballast
/// either. The parent-death signal reaches the children only, not theirs.
pub fn end_all() {
    #[cfg(target_os = "linux")]
    {
        let me = std::process::id() as i32;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if leads_a_group_under(&stat, me) == Some(pid) {
                // SAFETY: killpg(2) on a process group led by a child of ours.
                unsafe {
                    libc::killpg(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// From a `/proc/PID/stat` line: the process's group when its parent is `parent` and
/// it leads that group.
fn leads_a_group_under(stat: &str, parent: i32) -> Option<i32> {
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    let pid: i32 = stat.split_whitespace().next()?.parse().ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(1);
    let ppid: i32 = fields.next()?.parse().ok()?;
    let pgrp: i32 = fields.next()?.parse().ok()?;
    (ppid == parent && pgrp == pid).then_some(pgrp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_child_leading_its_group_is_read_from_its_stat_line() {
        let line = "4242 (sh -c (x)) S 100 4242 4242 0 -1 4194560 0";
        assert_eq!(super::leads_a_group_under(line, 100), Some(4242));
        assert_eq!(
            super::leads_a_group_under(line, 101),
            None,
            "another's child"
        );
        let same_group = "4243 (sleep) S 100 100 100 0 -1";
        assert_eq!(super::leads_a_group_under(same_group, 100), None, "in ours");
    }
}
