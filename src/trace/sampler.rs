//! The sampler: a second connection to the copy that looks, every few milliseconds,
//! at the locks and statements of every other session in it, for as long as the plan
//! runs. It is the only view of Alembic's session (a child process), and of the locks
//! of a statement that commits by itself (gone before its own session could read
//! them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::recording::{Sample, Tracer};
use crate::config::DatabaseSettings;
use crate::db::{self, DbError};

/// How often the sampler looks.
pub const INTERVAL: Duration = Duration::from_millis(5);

/// A running sampler; [`Sampler::stop`] ends it.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Option<DbError>>,
}

impl Sampler {
    /// Connects to `database` and starts looking.
    pub async fn start(database: &DatabaseSettings, tracer: &Tracer) -> Result<Sampler, DbError> {
        let mut conn = db::connect(database, "rehearsal sampler").await?;
        let workers_known = db::server_info(&mut conn).await?.major >= 13;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let tracer = tracer.clone();
        let task = tokio::spawn(async move {
            let interval_ms = INTERVAL.as_secs_f64() * 1000.0;
            let mut failed = None;
            while !stopped.load(Ordering::Relaxed) {
                match db::held_locks::others(&mut conn, workers_known).await {
                    Ok((locks, statements)) => {
                        let at_ms = tracer.now_ms();
                        tracer.sampled(
                            Sample {
                                at_ms,
                                locks,
                                statements,
                            },
                            interval_ms,
                        );
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                tokio::time::sleep(INTERVAL).await;
            }
            db::close(conn).await;
            failed
        });
        Ok(Sampler { stop, task })
    }

    /// Stops looking; the error that stopped it early, if one did.
    pub async fn stop(self) -> Option<DbError> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.ok().flatten()
    }
}
