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

/// Ends what the children started (each child leads its own process group, see
/// [`prepare`]), for an exit that does not wait for them (an interrupt before anything
/// changed): a `sleep` under a `shell` stage's `sh -c` would otherwise outlive ballast,
/// which the parent-death signal does not reach. The children themselves are stopped,
/// not killed: one that ended now would wake the thread waiting on it, whose caller
/// would act on the failure (drop a restore's copy, start a hook) while ballast exits;
/// stopped, they die of the parent-death signal once it has.
pub fn end_all() {
    #[cfg(target_os = "linux")]
    {
        let me = std::process::id() as i32;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        let processes: Vec<Stat> = entries
            .flatten()
            .filter_map(|entry| {
                let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
                Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
            })
            .collect();
        let leaders: Vec<i32> = processes
            .iter()
            .filter(|p| p.ppid == me && p.pgrp == p.pid)
            .map(|p| p.pid)
            .collect();
        for leader in &leaders {
            // SAFETY: kill(2) on a child of ours.
            unsafe {
                libc::kill(*leader, libc::SIGSTOP);
            }
        }
        for p in &processes {
            if p.pid != p.pgrp && leaders.contains(&p.pgrp) {
                // SAFETY: kill(2) on a process in a group one of our children leads.
                unsafe {
                    libc::kill(p.pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// What [`end_all`] reads of `/proc/PID/stat`.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    pid: i32,
    ppid: i32,
    pgrp: i32,
}

impl Stat {
    /// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    fn parse(line: &str) -> Option<Stat> {
        let pid: i32 = line.split_whitespace().next()?.parse().ok()?;
        let (_, rest) = line.rsplit_once(')')?;
        let mut fields = rest.split_whitespace().skip(1);
        Some(Stat {
            pid,
            ppid: fields.next()?.parse().ok()?,
            pgrp: fields.next()?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Stat;

    #[test]
    fn a_stat_line_is_read_past_a_name_with_spaces_and_parentheses() {
        assert_eq!(
            Stat::parse("4242 (sh -c (x)) S 100 4242 4242 0 -1 4194560 0"),
            Some(Stat {
                pid: 4242,
                ppid: 100,
                pgrp: 4242
            })
        );
        assert_eq!(
            Stat::parse("4243 (sleep) S 4242 4242 4242 0 -1"),
            Some(Stat {
                pid: 4243,
                ppid: 4242,
                pgrp: 4242
            })
        );
        assert_eq!(Stat::parse("garbage"), None);
    }
}
