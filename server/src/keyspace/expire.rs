//! Active expiry: reclaiming expired keys that nobody reads.
//!
//! Lazy expiry removes a key when it is touched; this cycle finds the others. Each
//! cycle (ten per second, from the server cron) walks the slots that hold keys with a
//! TTL, hidden slots aside, from where the previous cycle stopped, sweeping a few
//! entries in each. Like Redis, it works harder while the share of expired keys it
//! meets is above 10%, within the caller's time budget, so a burst of expiries is
//! cleaned up quickly while a calm keyspace costs almost nothing.

use super::{Keyspace, Sweep, SLOTS};
use crate::clock::Millis;

/// Slots with volatile keys visited per cycle even when few keys are stale: with ten
/// cycles a second, every slot is swept at least every 6.4 seconds.
const BASELINE_SLOTS: usize = 256;

/// Above this share of expired keys among those sampled, keep sweeping.
fn too_stale(found: Sweep) -> bool {
    found.sampled > 0 && found.expired * 10 > found.sampled
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireCycle {
    /// Keys with a TTL examined, and how many of them were removed.
    pub swept: Sweep,
    /// Slots with volatile keys that were visited.
    pub slots: usize,
}

/// The position of the active expiry walk between cycles.
#[derive(Debug, Default)]
pub struct ActiveExpire {
    next_slot: u16,
}

impl ActiveExpire {
    /// Runs one cycle at time `now`. `within_budget` is asked before each extra step;
    /// when it says no, the cycle stops and the next one continues from there.
    /// Each key it removes is handed to `commit` while its slot is still held
    /// (the write path announces it).
    pub fn run_cycle(
        &mut self,
        keyspace: &Keyspace,
        now: Millis,
        mut within_budget: impl FnMut() -> bool,
        mut commit: impl FnMut(&[u8]),
    ) -> ExpireCycle {
        let mut cycle = ExpireCycle::default();
        // Hidden slots are skipped: their keys go only when the stream they
        // are imported from says so.
        for slot in keyspace.volatile_slots_from(self.next_slot) {
            self.next_slot = (slot + 1) % SLOTS as u16;
            cycle.slots += 1;
            loop {
                // Lock per step, so clients wait at most one short step; a
                // slot someone holds (a busy script may, for long) is swept
                // on a later round.
                let Some(mut table) = keyspace.try_lock(slot) else {
                    break;
                };
                let found = table.sweep(now);
                for key in table.expired_names.drain(..) {
                    commit(&key);
                }
                drop(table);
                cycle.swept.sampled += found.sampled;
                cycle.swept.expired += found.expired;
                if !too_stale(found) || keyspace.slot_volatile(slot) == 0 {
                    break;
                }
                if !within_budget() {
                    return cycle;
                }
            }
            if (cycle.slots >= BASELINE_SLOTS && !too_stale(cycle.swept)) || !within_budget() {
                break;
            }
        }
        cycle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Expiry, Value};

    fn add(ks: &Keyspace, key: &str, expiry: Expiry) {
        ks.lock_key(key.as_bytes())
            .insert(key.as_bytes(), Value::Int(1), expiry, 0);
    }

    #[test]
    fn a_cycle_reclaims_a_burst_of_expired_keys() {
        let ks = Keyspace::new();
        for i in 0..10_000 {
            add(&ks, &format!("short:{i}"), Expiry::At(100));
        }
        for i in 0..1_000 {
            add(&ks, &format!("long:{i}"), Expiry::At(1_000_000));
            add(&ks, &format!("plain:{i}"), Expiry::Persist);
        }
        let mut active = ActiveExpire::default();
        // Before the deadline nothing is stale, so a cycle stays small.
        let calm = active.run_cycle(&ks, 50, || true, |_| {});
        assert_eq!(calm.swept.expired, 0);
        assert!(calm.slots <= BASELINE_SLOTS);
        // After it, one unbounded cycle removes every expired key.
        let burst = active.run_cycle(&ks, 200, || true, |_| {});
        assert_eq!(burst.swept.expired, 10_000);
        assert_eq!(ks.len(), 2_000);
        assert_eq!(ks.volatile_len(), 1_000);
        assert_eq!(ks.expired_keys(), 10_000);
    }

    #[test]
    fn cycles_within_a_budget_make_progress_and_finish() {
        let ks = Keyspace::new();
        for i in 0..5_000 {
            add(&ks, &format!("k{i}"), Expiry::At(10));
        }
        let mut active = ActiveExpire::default();
        let mut cycles = 0;
        while !ks.is_empty() {
            let mut steps = 0;
            active.run_cycle(
                &ks,
                20,
                || {
                    steps += 1;
                    steps < 100
                },
                |_| {},
            );
            cycles += 1;
            assert!(cycles < 100, "active expiry stalled");
        }
        assert_eq!(ks.expired_keys(), 5_000);
    }

    #[test]
    fn keys_without_ttl_are_never_touched() {
        let ks = Keyspace::new();
        for i in 0..1_000 {
            add(&ks, &format!("k{i}"), Expiry::Persist);
        }
        let cycle = ActiveExpire::default().run_cycle(&ks, u64::MAX, || true, |_| {});
        assert_eq!(cycle, ExpireCycle::default());
        assert_eq!(ks.len(), 1_000);
    }

    #[test]
    fn hidden_slots_keep_their_expired_keys_until_shown() {
        let ks = Keyspace::new();
        for i in 0..100 {
            add(&ks, &format!("{{h}}{i}"), Expiry::At(100));
        }
        add(&ks, "other", Expiry::At(100));
        let slot = crate::keyspace::key_slot(b"h");
        ks.hide_slot(slot);
        let mut active = ActiveExpire::default();
        let cycle = active.run_cycle(&ks, 200, || true, |_| {});
        assert_eq!(cycle.swept.expired, 1);
        assert_eq!(ks.lock(slot).len(), 100);
        ks.show_slot(slot);
        let cycle = active.run_cycle(&ks, 200, || true, |_| {});
        assert_eq!(cycle.swept.expired, 100);
        assert!(ks.is_empty());
        assert_eq!(ks.expired_keys(), 101);
    }
}
