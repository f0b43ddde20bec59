//! Eviction: when `maxmemory` is reached, frees memory by removing keys the
//! policy ranks least worth keeping.
//!
//! Like Redis, ranking is approximate: each round samples `maxmemory-samples`
//! keys from a random slot and keeps the best candidates in a pool of 16, so
//! every eviction chooses among keys seen over many rounds, for the cost of a
//! few lookups and no per-key list links. Writes call [`Evictor::evict_while`]
//! before they run, holding no slot locks, so memory stays under the limit while
//! writes keep coming rather than only eventually.
//! Uses the clock and the keyspace; the write path commits what it removes.

mod policy;
mod pool;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::clock::Millis;
use crate::keyspace::{key_hash, Keyspace, Locked, MAX_FREQUENCY, SLOTS};
pub use policy::{Policy, Rank};
pub use pool::{Candidate, EvictionPool};

/// A write refused because memory could not be freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("command not allowed when used memory > 'maxmemory'.")]
pub struct OutOfMemory;

/// How eviction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `maxmemory-policy`.
    pub policy: Policy,
    /// `maxmemory-samples`: keys sampled per round.
    pub samples: usize,
}

/// Chooses and removes keys; shared by every connection.
#[derive(Debug, Default)]
pub struct Evictor {
    pool: Mutex<EvictionPool>,
    evicted: AtomicU64,
    /// When a key was last evicted (Unix ms).
    last_eviction: AtomicU64,
}

/// How long after an eviction memory still counts as under pressure.
const PRESSURE_MS: Millis = 1_000;

/// Unevictable candidates in a row after which eviction gives up.
const MAX_MISSES: usize = 1_000;

/// Random slots tried before walking the slots in order to find a non-empty one.
const RANDOM_SLOT_TRIES: usize = 64;

impl Evictor {
    /// Keys evicted since start (`evicted_keys`).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// True if keys were evicted lately: new keys then have to earn their place
    /// (see [`Evictor::admit`]).
    pub fn under_pressure(&self, now: Millis) -> bool {
        now.saturating_sub(self.last_eviction.load(Relaxed)) < PRESSURE_MS
    }

    /// Forgets pooled candidates (after a policy change or a flush).
    pub fn reset(&self) {
        self.pool.lock().clear();
    }

    /// Evicts keys while `over()` says memory is over the limit. After each
    /// attempt, `commit` gets the victim's slot, still held, and the key if it
    /// was evicted: each eviction is a unit of work of its own (looking the
    /// victim up may also have expired it). Returns how many were evicted, or
    /// [`OutOfMemory`] if the policy evicts nothing or no key it may evict is
    /// left. Must be called holding no slot lock.
    pub fn evict_while(
        &self,
        keyspace: &Keyspace,
        settings: Settings,
        now: Millis,
        mut over: impl FnMut() -> bool,
        mut commit: impl FnMut(&mut Locked<'_>, Option<&[u8]>),
    ) -> Result<usize, OutOfMemory> {
        if !over() {
            return Ok(0);
        }
        let rank = settings.policy.rank().ok_or(OutOfMemory)?;
        let volatile = settings.policy.volatile_only();
        if rank == Rank::Sketch {
            keyspace.fit_sketch();
        }
        let mut pool = self.pool.lock();
        let mut evicted = 0;
        // Candidates that turn out not to be evictable (gone, locks, leases):
        // too many in a row means nothing evictable is left.
        let mut misses = 0;
        while over() {
            if misses == MAX_MISSES {
                return Err(OutOfMemory);
            }
            let victim = match rank {
                Rank::Random => random_key(keyspace, volatile, now),
                _ => {
                    // Top the pool up each round, as Redis does, so the pick is
                    // among fresh samples as well as the best earlier ones.
                    populate(&mut pool, keyspace, rank, volatile, settings.samples, now);
                    pool.pop()
                }
            };
            let Some(victim) = victim else {
                return Err(OutOfMemory);
            };
            // Sampling passes over hidden slots, but a key admitted or pooled
            // before its slot was hidden may still come up: a hidden slot's
            // keys go only when the stream they are imported from says so.
            if keyspace.is_hidden(victim.slot) {
                misses += 1;
                continue;
            }
            // A slot someone holds (a busy script may, for long) is passed
            // over: eviction never waits.
            let mut locks = Locked::new(keyspace);
            if !locks.try_acquire(victim.slot) {
                misses += 1;
                continue;
            }
            let removed = locks.table(&victim.key).evict(&victim.key, volatile, now);
            if removed {
                // Counted at once, so the counter never lags the keys gone.
                self.evicted.fetch_add(1, Relaxed);
                evicted += 1;
                misses = 0;
            } else {
                misses += 1;
            }
            commit(&mut locks, removed.then_some(&victim.key[..]));
        }
        if evicted > 0 {
            self.last_eviction.store(now, Relaxed);
        }
        Ok(evicted)
    }

    /// TinyLFU's admission test for a key just written under memory pressure:
    /// it joins the pool ranked by its own frequency, so the next eviction
    /// removes it rather than a sampled key that is requested more often.
    pub fn admit(&self, keyspace: &Keyspace, slot: u16, key: &[u8]) {
        let score = sketch_score(keyspace.estimate(key_hash(key)), 0);
        self.pool.lock().offer(score, slot, key);
    }
}

/// Ranks by sketch estimate, then idle time (under 2^32 ticks).
fn sketch_score(estimate: u8, idle: u64) -> u64 {
    u64::from(MAX_FREQUENCY.saturating_sub(estimate)) << 32 | idle
}

/// A random slot holding keys (keys with a TTL if `volatile`), never a hidden
/// one (its counts read 0).
fn random_slot(keyspace: &Keyspace, volatile: bool) -> Option<u16> {
    let has_keys = |slot: u16| {
        if volatile {
            keyspace.slot_volatile(slot) > 0
        } else {
            keyspace.slot_len(slot) > 0
        }
    };
    for _ in 0..RANDOM_SLOT_TRIES {
        let slot = rand::random_range(0..SLOTS as u16);
        if has_keys(slot) {
            return Some(slot);
        }
    }
    // A sparse keyspace: walk every slot from a random start.
    let start = rand::random_range(0..SLOTS);
    if volatile {
        return keyspace.volatile_slots_from(start as u16).next();
    }
    (0..SLOTS)
        .map(|i| ((start + i) % SLOTS) as u16)
        .find(|&slot| has_keys(slot))
}

/// Slots visited at most per sampling round (a sparse keyspace has about one
/// key per slot).
const SLOTS_PER_ROUND: usize = 16;

/// One sampling round into the pool: `samples` keys from random slots.
fn populate(
    pool: &mut EvictionPool,
    keyspace: &Keyspace,
    rank: Rank,
    volatile: bool,
    samples: usize,
    now: Millis,
) {
    let mut taken = 0;
    for _ in 0..SLOTS_PER_ROUND {
        if taken >= samples {
            return;
        }
        let Some(slot) = random_slot(keyspace, volatile) else {
            return;
        };
        let Some(table) = keyspace.try_lock(slot) else {
            continue;
        };
        let tracking = table.tracking();
        let wanted = samples - taken;
        // A small table is taken whole; a large one by random draws (a few
        // more for volatile policies, which skip keys without a TTL).
        let positions: Vec<usize> = if table.len() <= wanted {
            (0..table.len()).collect()
        } else {
            let draws = if volatile { wanted * 4 } else { wanted };
            (0..draws)
                .map(|_| rand::random_range(0..table.len()))
                .collect()
        };
        for position in positions {
            if taken == samples {
                break;
            }
            let Some((key, stamp, expire_at)) = table.sample_at(position) else {
                continue;
            };
            if volatile && expire_at == 0 {
                continue;
            }
            taken += 1;
            let score = if expire_at != 0 && expire_at <= now {
                // Already expired: removing it frees memory without evicting.
                u64::MAX
            } else {
                match rank {
                    Rank::Idle | Rank::Frequency | Rank::Random => {
                        tracking.eviction_score(stamp, now)
                    }
                    Rank::Sketch => sketch_score(
                        keyspace.estimate(key_hash(key.as_bytes())),
                        tracking.eviction_score(stamp, now),
                    ),
                    Rank::Ttl => u64::MAX - 1 - expire_at,
                }
            };
            pool.offer(score, slot, key.as_bytes());
        }
    }
}

/// Any key (with a TTL if `volatile`), for the random policies.
fn random_key(keyspace: &Keyspace, volatile: bool, now: Millis) -> Option<Candidate> {
    let mut pool = EvictionPool::default();
    populate(&mut pool, keyspace, Rank::Random, volatile, 1, now);
    pool.pop()
}

#[cfg(test)]
mod tests;
