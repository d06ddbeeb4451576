//! Writing to stdout without ever panicking on a closed pipe (`ballast history | head`).

use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

static NON_INTERACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--non-interactive`: no prompt, whatever is attached.
pub fn set_non_interactive() {
    NON_INTERACTIVE.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// True when a person can answer a prompt: stdin and stderr are both terminals, and
/// `--non-interactive` was not given.
pub fn interactive() -> bool {
    use std::io::IsTerminal;
    !NON_INTERACTIVE.load(std::sync::atomic::Ordering::SeqCst)
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// Prints one line to stderr; a closed stderr is ignored (`eprintln!` would panic).
pub fn stderr_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Prints one line to stdout. A closed pipe or full disk is ignored: output is a
/// courtesy, and a deploy must never die half-way because its reader went away.
pub fn stdout_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
