//! Worker threads, one per core, each running a single-threaded runtime.
//!
//! The accept loop hands every new connection to a worker in turn; the connection
//! then lives on that thread for good. Nothing is stolen between threads, so a
//! request never pays for a cross-thread wake-up, and each worker waits on its own
//! epoll instance. Workers share only the keyspace and the server counters.
//! A connection's task never leaves its thread, so it may hold what cannot
//! (a script suspended on its own stack): connections are spawned onto the
//! worker's `LocalSet`.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Work to start on a worker: called inside the worker's runtime and local
/// set, so it can `tokio::spawn` or `tokio::task::spawn_local` there.
pub type Job = Box<dyn FnOnce() + Send>;

/// The pool of worker threads.
pub struct Workers {
    senders: Mutex<Vec<mpsc::UnboundedSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicUsize,
    count: usize,
}

impl Workers {
    /// Starts `count` workers (at least one).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let count = count.max(1);
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            let thread = std::thread::Builder::new()
                .name(format!("ringkv-worker-{i}"))
                .spawn(move || {
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&runtime, async move {
                        while let Some(job) = rx.recv().await {
                            job();
                        }
                    });
                })?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Workers {
            senders: Mutex::new(senders),
            threads: Mutex::new(threads),
            next: AtomicUsize::new(0),
            count,
        })
    }

    /// Runs `job` on the next worker in turn. Returns false once stopped.
    pub fn dispatch(&self, job: Job) -> bool {
        let index = self.next.fetch_add(1, Relaxed) % self.count;
        match self.senders.lock().get(index) {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    /// Stops accepting jobs and waits for the threads to finish. Tasks the workers
    /// still run are dropped, so stop them first (the server waits for its tracker).
    pub fn stop(&self) {
        self.senders.lock().clear();
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn jobs_run_on_every_worker_in_turn() {
        let workers = Workers::start(3).unwrap();
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for _ in 0..6 {
            let seen = seen.clone();
            let done = done_tx.clone();
            assert!(workers.dispatch(Box::new(move || {
                // Inside the worker's runtime and local set: spawning works.
                tokio::task::spawn_local(async move {
                    seen.lock()
                        .insert(std::thread::current().name().map(String::from));
                    let _ = done.send(());
                });
            })));
        }
        for _ in 0..6 {
            done_rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap();
        }
        assert_eq!(seen.lock().len(), 3);
        workers.stop();
        assert!(!workers.dispatch(Box::new(|| {})));
    }
}
