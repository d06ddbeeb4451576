//! Ctrl-C and SIGTERM: stop at once, but leave the terminal usable and say what the
//! interruption means for the database.
//!
//! The database side is safe by construction: an open migration transaction is rolled
//! back by the server when ballast's connection closes. What is not known without a
//! look is a `no-transaction` migration cut half-way, so an interruption after the
//! upgrade started exits 4 (a human must look); before that, nothing changed (exit 3).
//! Cancelling the statement and running the recovery ladder comes with that issue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::exit_code;

static CHANGING: AtomicBool = AtomicBool::new(false);
static NOTE: Mutex<Option<String>> = Mutex::new(None);

/// What an interruption right now means, when it is not the upgrade's story (a
/// restore in progress). `None` clears it.
pub fn set_note(note: Option<String>) {
    *NOTE.lock().unwrap_or_else(|e| e.into_inner()) = note;
}

/// Marks the window in which an interruption may leave the database between states.
pub fn set_changing(changing: bool) {
    CHANGING.store(changing, Ordering::SeqCst);
}

/// Installs the handler; call once, inside the runtime.
pub fn install() {
    tokio::spawn(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = console::Term::stderr().show_cursor();
        let note = NOTE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let code = if let Some(note) = note {
            crate::report::stderr_line(&format!("\nballast: {note}"));
            exit_code::REFUSED
        } else if CHANGING.load(Ordering::SeqCst) {
            crate::report::stderr_line(
                "\nballast: interrupted during the upgrade. An open transaction is rolled back by the \
                 server; a no-transaction migration may be half-applied. Check with `ballast status` \
                 before deploying again."
            );
            exit_code::NOT_RECOVERED
        } else {
            crate::report::stderr_line("\nballast: interrupted before anything changed.");
            exit_code::REFUSED
        };
        std::process::exit(code);
    });
}
