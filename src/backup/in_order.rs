//! A few worker threads that map items in parallel, and their results read back in
//! the order the items were fed: how a backup compresses its blocks and how verify
//! inflates them. The channels are bounded, so memory stays at a few items per worker;
//! dropping the results stops the workers, and then whoever feeds them.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

/// Where the items go, numbered as they are fed.
pub struct Feed<I> {
    tx: SyncSender<(u64, I)>,
    next: u64,
}

impl<I> Feed<I> {
    /// Hands `item` to the workers; `Err` once nobody reads the results any more.
    pub fn send(&mut self, item: I) -> Result<(), ()> {
        self.tx.send((self.next, item)).map_err(drop)?;
        self.next += 1;
        Ok(())
    }
}

/// The results, in the order their items were fed. Ends when the feed is dropped and
/// every worker is done.
pub struct InOrder<O> {
    rx: Receiver<(u64, O)>,
    pending: BTreeMap<u64, O>,
    next: u64,
}

impl<O> InOrder<O> {
    /// After the end: whether every item fed came back (a worker that died loses one).
    pub fn all_back(&self) -> bool {
        self.pending.is_empty()
    }
}

impl<O> Iterator for InOrder<O> {
    type Item = O;

    fn next(&mut self) -> Option<O> {
        loop {
            if let Some(result) = self.pending.remove(&self.next) {
                self.next += 1;
                return Some(result);
            }
            let (seq, result) = self.rx.recv().ok()?;
            self.pending.insert(seq, result);
        }
    }
}

/// How many workers a backup's blocks get: the cores, at most four.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
}

/// Starts `workers` threads in `scope` that run `work` on every item fed.
pub fn spawn<'scope, 'env, I, O, F>(
    scope: &'scope Scope<'scope, 'env>,
    workers: usize,
    work: F,
) -> (Feed<I>, InOrder<O>)
where
    I: Send + 'scope,
    O: Send + 'scope,
    F: Fn(I) -> O + Send + Sync + 'scope,
{
    let workers = workers.max(1);
    let (work_tx, work_rx) = sync_channel::<(u64, I)>(workers);
    let (done_tx, done_rx) = sync_channel::<(u64, O)>(workers);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let work = Arc::new(work);
    for _ in 0..workers {
        let (work_rx, done_tx, work) = (Arc::clone(&work_rx), done_tx.clone(), Arc::clone(&work));
        scope.spawn(move || loop {
            let next = work_rx.lock().map(|rx| rx.recv());
            let Ok(Ok((seq, item))) = next else { break };
            // A closed channel means the results were dropped: stop too.
            if done_tx.send((seq, work(item))).is_err() {
                break;
            }
        });
    }
    (
        Feed {
            tx: work_tx,
            next: 0,
        },
        InOrder {
            rx: done_rx,
            pending: BTreeMap::new(),
            next: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_order_fed() {
        let out: Vec<u64> = std::thread::scope(|scope| {
            let (mut feed, results) = spawn(scope, 3, |n: u64| {
                // Later items finish first.
                std::thread::sleep(std::time::Duration::from_millis(20 - n));
                n * 2
            });
            scope.spawn(move || {
                for n in 0..10 {
                    feed.send(n).unwrap();
                }
            });
            results.collect()
        });
        assert_eq!(out, (0..10).map(|n| n * 2).collect::<Vec<_>>());
    }

    #[test]
    fn dropping_the_results_stops_the_feed() {
        std::thread::scope(|scope| {
            let (mut feed, results) = spawn(scope, 2, |n: u32| n);
            drop(results);
            let mut refused = false;
            for n in 0..100 {
                if feed.send(n).is_err() {
                    refused = true;
                    break;
                }
            }
            assert!(refused);
        });
    }
}
