//! Pause points for the fault-injection tests (`tests/integration/faults.rs`,
//! docs/reliability.md). With `BALLAST_FAULT_PAUSE=<point>` in its environment, ballast
//! stops the first time it reaches that point, writes the point's name to the file
//! named by `BALLAST_FAULT_READY`, and waits (up to a minute, until that file is
//! deleted, or until Ctrl-C/SIGTERM), so a test can kill it, stop PostgreSQL or
//! interrupt it at a known moment, and then let it go on. Without the variable, a point
//! costs one environment lookup.
//!
//! Points: `stage:NAME` (before each stage of the pipeline), `backup` (the dump has
//! started writing to storage), `upgrade-transaction`
//! (a batch's migrations ran, before COMMIT), `downgrade-transaction` (a batch of
//! downs ran, before COMMIT), `no-transaction` (after the first
//! statement of a `-- no-transaction` migration), `verify` (before the checks),
//! `restore` (pg_restore is filling the fresh database), `rehearsal` (the plan is
//! about to run on a rehearsal's copy, its sampler watching).
//!
//! `BALLAST_FAULT_FREE_BYTES=N` makes a rehearsal's room check see N bytes free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static PAUSED: AtomicBool = AtomicBool::new(false);

/// The free space a rehearsal's room check is told to see (`BALLAST_FAULT_FREE_BYTES`).
pub fn free_bytes() -> Option<u64> {
    std::env::var("BALLAST_FAULT_FREE_BYTES").ok()?.parse().ok()
}

pub fn pause(point: &str) {
    if std::env::var("BALLAST_FAULT_PAUSE").ok().as_deref() != Some(point) {
        return;
    }
    if PAUSED.swap(true, Ordering::SeqCst) {
        return;
    }
    let ready = std::env::var("BALLAST_FAULT_READY").ok();
    if let Some(ready) = &ready {
        let _ = std::fs::write(ready, point);
    }
    let released = || {
        ready
            .as_ref()
            .is_some_and(|r| !std::path::Path::new(r).exists())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !crate::interrupt::requested() && !released() {
        std::thread::sleep(Duration::from_millis(20));
    }
}
