//! Server statistics for `INFO`.
//!
//! Connections count into a private [`LocalStats`] while they execute a batch of
//! pipelined commands and add it to the shared counters once per batch. The shared
//! counters are striped per thread (one cache line each), so threads never fight
//! over a counter; readers sum the stripes.
//! Uses nothing else of the crate.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;

const STRIPES: usize = 16;

#[derive(Default)]
struct CommandCounters {
    calls: AtomicU64,
    usec: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

/// One thread's share of the counters, alone on its cache lines.
#[repr(align(128))]
struct Stripe {
    commands: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    net_in: AtomicU64,
    net_out: AtomicU64,
    error_replies: AtomicU64,
    per_command: Box<[CommandCounters]>,
}

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static INDEX: Cell<usize> = const { Cell::new(usize::MAX) });
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Relaxed) % STRIPES);
        }
        i.get()
    })
}

/// How a command call ended, for `INFO commandstats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and succeeded.
    Ok,
    /// Refused before running (arity, authentication, ...).
    Rejected,
    /// Ran and replied with an error.
    Failed,
}

/// Counters of one connection between flushes.
#[derive(Debug, Default)]
pub struct LocalStats {
    /// Commands processed.
    pub commands: u64,
    /// Key lookups that found the key.
    pub hits: u64,
    /// Key lookups that did not.
    pub misses: u64,
    /// Bytes read from clients.
    pub net_in: u64,
    /// Bytes written to clients.
    pub net_out: u64,
    /// Error replies sent.
    pub error_replies: u64,
    /// (command id, calls, usec, rejected, failed); a batch rarely has many kinds.
    per_command: Vec<(usize, u64, u64, u64, u64)>,
}

impl LocalStats {
    /// Counts a read lookup as a keyspace hit or miss, passing the result on.
    pub fn lookup<T>(&mut self, found: Option<T>) -> Option<T> {
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    /// Records one call of command `id` that took `usec` microseconds.
    pub fn record(&mut self, id: usize, usec: u64, outcome: Outcome) {
        let slot = match self.per_command.iter_mut().find(|c| c.0 == id) {
            Some(slot) => slot,
            None => {
                self.per_command.push((id, 0, 0, 0, 0));
                self.per_command.last_mut().expect("just pushed")
            }
        };
        match outcome {
            Outcome::Rejected => slot.3 += 1,
            Outcome::Ok | Outcome::Failed => {
                slot.1 += 1;
                slot.2 += usec;
                if outcome == Outcome::Failed {
                    slot.4 += 1;
                }
            }
        }
    }
}

/// Totals across all threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Commands processed.
    pub commands: u64,
    /// Keyspace hits.
    pub hits: u64,
    /// Keyspace misses.
    pub misses: u64,
    /// Bytes read from clients.
    pub net_in: u64,
    /// Bytes written to clients.
    pub net_out: u64,
    /// Error replies sent.
    pub error_replies: u64,
}

/// Per-command totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandTotals {
    /// Calls that ran.
    pub calls: u64,
    /// Microseconds spent in them.
    pub usec: u64,
    /// Calls refused before running.
    pub rejected: u64,
    /// Calls that ran and failed.
    pub failed: u64,
}

/// Rates over the last 1.6 seconds, sampled by the cron (`instantaneous_*`).
#[derive(Debug, Default)]
struct Sampler {
    last: Option<(u64, Totals)>,
    samples: [[u64; 3]; 16],
    next: usize,
}

/// Shared server statistics.
pub struct Stats {
    stripes: Box<[Stripe]>,
    /// Connections accepted since start.
    pub connections_received: AtomicU64,
    /// Connections refused (maxclients, protected mode).
    pub rejected_connections: AtomicU64,
    /// Clients closed for passing `client-query-buffer-limit`.
    pub query_limit_disconnections: AtomicU64,
    /// Clients closed for passing their output buffer limits.
    pub output_limit_disconnections: AtomicU64,
    /// Cache-penetration protection (`CACHE.*`).
    pub cache: CacheStats,
    /// Errors by code, for `INFO errorstats`.
    errors: Mutex<HashMap<String, u64>>,
    sampler: Mutex<Sampler>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("totals", &self.totals())
            .finish()
    }
}

/// Counters of the cache commands (`INFO stats`).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Reads answered by a cached "known absent".
    pub null_hits: AtomicU64,
    /// Fill leases handed to readers that missed.
    pub lease_grants: AtomicU64,
    /// Fills refused because their lease was stale (a write came between).
    pub stale_fills: AtomicU64,
}

impl Stats {
    /// Zeroed statistics for `commands` command ids.
    pub fn new(commands: usize) -> Self {
        Stats {
            stripes: (0..STRIPES)
                .map(|_| Stripe {
                    commands: AtomicU64::new(0),
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                    net_in: AtomicU64::new(0),
                    net_out: AtomicU64::new(0),
                    error_replies: AtomicU64::new(0),
                    per_command: (0..commands).map(|_| CommandCounters::default()).collect(),
                })
                .collect(),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            query_limit_disconnections: AtomicU64::new(0),
            output_limit_disconnections: AtomicU64::new(0),
            cache: CacheStats::default(),
            errors: Mutex::new(HashMap::new()),
            sampler: Mutex::new(Sampler::default()),
        }
    }

    /// Adds a connection's counters and zeroes them.
    pub fn flush(&self, local: &mut LocalStats) {
        let s = &self.stripes[stripe_index()];
        let add = |c: &AtomicU64, v: u64| {
            if v != 0 {
                c.fetch_add(v, Relaxed);
            }
        };
        add(&s.commands, local.commands);
        add(&s.hits, local.hits);
        add(&s.misses, local.misses);
        add(&s.net_in, local.net_in);
        add(&s.net_out, local.net_out);
        add(&s.error_replies, local.error_replies);
        for &(id, calls, usec, rejected, failed) in &local.per_command {
            let c = &s.per_command[id];
            add(&c.calls, calls);
            add(&c.usec, usec);
            add(&c.rejected, rejected);
            add(&c.failed, failed);
        }
        local.per_command.clear();
        local.commands = 0;
        local.hits = 0;
        local.misses = 0;
        local.net_in = 0;
        local.net_out = 0;
        local.error_replies = 0;
    }

    /// Counts an error reply by its code.
    pub fn count_error(&self, code: &str) {
        let mut errors = self.errors.lock();
        if let Some(n) = errors.get_mut(code) {
            *n += 1;
        } else if errors.len() < 128 {
            // Bounded: clients choose the codes only indirectly, but be safe.
            errors.insert(code.to_string(), 1);
        }
    }

    /// Errors by code, sorted.
    pub fn errors(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .errors
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort();
        v
    }

    /// Sums of all stripes.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.stripes.iter() {
            t.commands += s.commands.load(Relaxed);
            t.hits += s.hits.load(Relaxed);
            t.misses += s.misses.load(Relaxed);
            t.net_in += s.net_in.load(Relaxed);
            t.net_out += s.net_out.load(Relaxed);
            t.error_replies += s.error_replies.load(Relaxed);
        }
        t
    }

    /// Totals for command `id`.
    pub fn command(&self, id: usize) -> CommandTotals {
        let mut t = CommandTotals::default();
        for s in self.stripes.iter() {
            let c = &s.per_command[id];
            t.calls += c.calls.load(Relaxed);
            t.usec += c.usec.load(Relaxed);
            t.rejected += c.rejected.load(Relaxed);
            t.failed += c.failed.load(Relaxed);
        }
        t
    }

    /// `CONFIG RESETSTAT`.
    pub fn reset(&self) {
        for c in [
            &self.cache.null_hits,
            &self.cache.lease_grants,
            &self.cache.stale_fills,
        ] {
            c.store(0, Relaxed);
        }
        for s in self.stripes.iter() {
            for c in [
                &s.commands,
                &s.hits,
                &s.misses,
                &s.net_in,
                &s.net_out,
                &s.error_replies,
            ] {
                c.store(0, Relaxed);
            }
            for c in s.per_command.iter() {
                for v in [&c.calls, &c.usec, &c.rejected, &c.failed] {
                    v.store(0, Relaxed);
                }
            }
        }
        self.connections_received.store(0, Relaxed);
        self.rejected_connections.store(0, Relaxed);
        self.query_limit_disconnections.store(0, Relaxed);
        self.output_limit_disconnections.store(0, Relaxed);
        self.errors.lock().clear();
        *self.sampler.lock() = Sampler::default();
    }

    /// Takes a rate sample at `now_ms` (the cron calls this ten times a second).
    pub fn sample(&self, now_ms: u64) {
        let totals = self.totals();
        let mut sampler = self.sampler.lock();
        if let Some((then, last)) = sampler.last {
            let dt = now_ms.saturating_sub(then).max(1);
            let rate = |now: u64, before: u64| now.saturating_sub(before) * 1000 / dt;
            let i = sampler.next;
            sampler.samples[i] = [
                rate(totals.commands, last.commands),
                rate(totals.net_in, last.net_in),
                rate(totals.net_out, last.net_out),
            ];
            sampler.next = (i + 1) % sampler.samples.len();
        }
        sampler.last = Some((now_ms, totals));
    }

    /// Average rates: (ops/sec, input bytes/sec, output bytes/sec).
    pub fn instantaneous(&self) -> (u64, u64, u64) {
        let sampler = self.sampler.lock();
        let n = sampler.samples.len() as u64;
        let sum = |k: usize| sampler.samples.iter().map(|s| s[k]).sum::<u64>() / n;
        (sum(0), sum(1), sum(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushed_counts_add_up_across_threads() {
        let stats = std::sync::Arc::new(Stats::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let mut local = LocalStats {
                            commands: 2,
                            hits: 1,
                            ..Default::default()
                        };
                        local.record(1, 3, Outcome::Ok);
                        local.record(1, 1, Outcome::Failed);
                        local.record(2, 0, Outcome::Rejected);
                        stats.flush(&mut local);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(stats.totals().commands, 8000);
        assert_eq!(stats.totals().hits, 4000);
        assert_eq!(
            stats.command(1),
            CommandTotals {
                calls: 8000,
                usec: 16000,
                rejected: 0,
                failed: 4000
            }
        );
        assert_eq!(stats.command(2).rejected, 4000);
        stats.reset();
        assert_eq!(stats.totals(), Totals::default());
    }

    #[test]
    fn instantaneous_rate_follows_samples() {
        let stats = Stats::new(1);
        stats.sample(0);
        for i in 1..=16 {
            let mut local = LocalStats {
                commands: 100,
                ..Default::default()
            };
            stats.flush(&mut local);
            stats.sample(i * 100);
        }
        assert_eq!(stats.instantaneous().0, 1000);
    }
}
