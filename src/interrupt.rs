//! Ctrl-C and SIGTERM: stop cleanly, and say what the interruption means.
//!
//! Before anything changed, the run stops at once (exit 3). Once the upgrade (or a
//! downgrade) is changing the database, stopping at once could leave a
//! `-- no-transaction` migration cut half-way, so the first signal instead cancels the
//! running statement (PostgreSQL's `pg_cancel_backend` for ballast's own session, a
//! SIGINT for an Alembic child, whose driver cancels its statement), the transaction
//! rolls back, the runner stops at that stage and climbs the recovery ladder, and the
//! run ends with the ladder's exit code. Any further signal says what is still going on
//! instead of leaving a half state; SIGKILL remains the way to stop at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::config::DatabaseSettings;
use crate::exit_code;

static CHANGING: AtomicBool = AtomicBool::new(false);
static REQUESTED: AtomicBool = AtomicBool::new(false);
static CLIMBING: AtomicBool = AtomicBool::new(false);
/// This process runs other ballast processes (`--targets`): it never exits on a signal.
static RUNS_MODE: AtomicBool = AtomicBool::new(false);
static NOTE: Mutex<Option<String>> = Mutex::new(None);
static ACTIVITY: Mutex<Option<String>> = Mutex::new(None);
static CANCEL: Mutex<Option<Canceller>> = Mutex::new(None);
/// SQL that puts back a temporary server setting (a database closed to new
/// connections for a rename) if a signal ends ballast at once: (where to run it, it).
static UNDO_ON_EXIT: Mutex<Option<(DatabaseSettings, String)>> = Mutex::new(None);
/// The ballast processes of a `--targets` run that are running now.
static RUNS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// How to cancel what is running right now.
#[derive(Clone)]
pub enum Canceller {
    /// A statement on ballast's own session: `pg_cancel_backend(pid)` from another one.
    Backend { db: DatabaseSettings, pid: i32 },
    /// A child process (Alembic): SIGINT, which its driver turns into a cancel.
    Children(Vec<u32>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What an interruption right now means, when it is not the upgrade's story (a
/// restore in progress). `None` clears it.
pub fn set_note(note: Option<String>) {
    *lock(&NOTE) = note;
}

/// SQL to run (on `db`) before exiting on a signal, while a temporary server setting is
/// in force; `None` once it is undone.
pub fn set_undo_on_exit(undo: Option<(DatabaseSettings, String)>) {
    *lock(&UNDO_ON_EXIT) = undo;
}

/// Runs the pending undo, if any, within a few seconds.
async fn undo_before_exit() {
    let Some((db, sql)) = lock(&UNDO_ON_EXIT).take() else {
        return;
    };
    let undo = async {
        if let Ok(mut conn) = crate::db::connect(&db, "undo").await {
            let _ = sqlx::query(sql.as_str()).execute(&mut conn).await;
            crate::db::close(conn).await;
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), undo).await;
}

/// Marks the window in which an interruption may leave the database between states.
pub fn set_changing(changing: bool) {
    CHANGING.store(changing, Ordering::SeqCst);
}

/// What the run is doing, for a second Ctrl-C to report.
pub fn set_activity(activity: impl Into<String>) {
    *lock(&ACTIVITY) = Some(activity.into());
}

/// What the first signal should cancel; `None` when nothing cancellable runs.
pub fn set_canceller(canceller: Option<Canceller>) {
    *lock(&CANCEL) = canceller;
}

/// This process only runs others (`--targets`): a signal is passed on to them.
pub fn set_runs_mode() {
    RUNS_MODE.store(true, Ordering::SeqCst);
}

/// A run of one target started (`--targets`): signals are passed on to it.
pub fn track_run(pid: u32) {
    lock(&RUNS).push(pid);
}

/// That run ended.
pub fn untrack_run(pid: u32) {
    lock(&RUNS).retain(|p| *p != pid);
}

/// Forgets a `Backend` canceller: its session was closed, and a pid is reused.
pub fn forget_backend() {
    let mut cancel = lock(&CANCEL);
    if matches!(*cancel, Some(Canceller::Backend { .. })) {
        *cancel = None;
    }
}

/// Whether a signal came at all, climbing or not.
pub fn signalled() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Whether a signal asked the run to stop: stages stop at the next statement, the
/// runner at the next stage, and the recovery ladder runs. False once the ladder
/// climbs: its rungs are never cut short by the signal that started it.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst) && !CLIMBING.load(Ordering::SeqCst)
}

/// The recovery ladder is climbing: a signal from now on only says what is going on.
pub fn set_climbing() {
    CLIMBING.store(true, Ordering::SeqCst);
}

/// Installs the handler; call once, inside the runtime.
pub fn install() {
    tokio::spawn(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let _ = console::Term::stderr().show_cursor();
            // Over many targets: each run decides what a signal means for it, as a
            // single run would; no further target starts.
            let runs = lock(&RUNS).clone();
            if !runs.is_empty() || RUNS_MODE.load(Ordering::SeqCst) {
                if !REQUESTED.swap(true, Ordering::SeqCst) {
                    crate::report::stderr_line(&format!(
                        "\nballast: interrupted: passed on to the {} run(s) in progress, each of which stops as a single run would; no further target starts",
                        runs.len()
                    ));
                }
                for pid in runs {
                    // SAFETY: kill(2) with a pid we spawned and a valid signal.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGINT);
                    }
                }
                continue;
            }
            if REQUESTED.swap(true, Ordering::SeqCst) || CLIMBING.load(Ordering::SeqCst) {
                still_working();
                continue;
            }
            let note = lock(&NOTE).clone();
            let changing = CHANGING.load(Ordering::SeqCst);
            if let (Some(note), false) = (note, changing) {
                crate::report::stderr_line(&format!("\nballast: {note}"));
                undo_before_exit().await;
                crate::children::end_all();
                std::process::exit(exit_code::REFUSED);
            }
            if !changing {
                crate::report::stderr_line("\nballast: interrupted before anything changed.");
                crate::children::end_all();
                std::process::exit(exit_code::REFUSED);
            }
            crate::report::stderr_line(
                "\nballast: interrupted while changing the database: cancelling the running \
                 statement (its transaction rolls back), then the recovery ladder runs. \
                 Press Ctrl-C again to see what is still going on.",
            );
            let canceller = lock(&CANCEL).clone();
            match canceller {
                Some(Canceller::Backend { db, pid }) => {
                    tokio::spawn(cancel_backend(db, pid));
                }
                Some(Canceller::Children(pids)) => {
                    for pid in pids {
                        // SAFETY: kill(2) with a pid we spawned and a valid signal.
                        unsafe {
                            libc::kill(pid as libc::pid_t, libc::SIGINT);
                        }
                    }
                }
                None => {}
            }
        }
    });
}

async fn cancel_backend(db: DatabaseSettings, pid: i32) {
    let result = async {
        let mut conn = crate::db::connect(&db, "cancel").await?;
        let cancelled = sqlx::query_scalar::<_, bool>("select pg_cancel_backend($1)")
            .bind(pid)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| crate::db::DbError::query("cancelling the running statement", &e));
        crate::db::close(conn).await;
        cancelled
    }
    .await;
    if let Err(e) = result {
        crate::report::stderr_line(&format!(
            "ballast: could not cancel the statement ({e}); the run stops after it"
        ));
    }
}

fn still_working() {
    let activity = lock(&ACTIVITY)
        .clone()
        .unwrap_or_else(|| "finishing the run".into());
    crate::report::stderr_line(&format!(
        "\nballast: still {activity}; stopping it half-way would leave the database for a \
         human to sort out, so it goes on. `kill -9 {}` stops at once (an open transaction \
         is rolled back by the server; then check with `ballast status`).",
        std::process::id()
    ));
}
