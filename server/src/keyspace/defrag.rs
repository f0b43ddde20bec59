//! Active defragmentation: moving slot tables to fresh allocations so the
//! allocator can pack them densely and return the pages they leave.
//!
//! The 16384 tables grow in step through the same size classes, so when most
//! have outgrown a class its slabs are left holding a few stragglers each:
//! memory that is resident but used by nothing. Reallocating a table (with the
//! thread cache off, so the new block comes from the fullest slabs rather than
//! the block just freed) fills those holes from the bottom, and the emptied
//! slabs go back to the kernel. Like Redis's `activedefrag`, the server cron
//! runs passes in small budgeted steps only while the allocator reports
//! fragmentation.

use super::{Keyspace, SLOTS};

/// Fragmentation below this many bytes is left alone.
const IGNORE_BYTES: u64 = 2 << 20;

/// Where the walk is between steps, and whether walking is worth it.
#[derive(Debug, Default)]
pub struct ActiveDefrag {
    next_slot: usize,
    /// Fragmented bytes when the current pass started (`None`: no pass running).
    pass_from: Option<u64>,
    /// After a pass that gained little: checks to skip before trying again.
    resting: u32,
}

/// Checks (cron ticks) to rest after a pass that gained little: five seconds,
/// so futile passes cost at most a few percent of one core.
const REST: u32 = 50;

impl ActiveDefrag {
    /// Decides from the allocator's figures whether to work now: a pass starts
    /// when more than a tenth of the allocated bytes (and 2 MiB) is lost to
    /// fragmentation, and passes continue while that share stays above a
    /// twentieth and each pass still gains; after a pass that did not, it rests
    /// a while.
    pub fn wanted(&mut self, allocated: u64, active: u64) -> bool {
        let fragmented = active.saturating_sub(allocated);
        if self.pass_from.is_some() {
            return true;
        }
        if self.resting > 0 {
            self.resting -= 1;
            return false;
        }
        if fragmented > IGNORE_BYTES && fragmented > allocated / 10 {
            self.pass_from = Some(fragmented);
            return true;
        }
        false
    }

    /// Records the figures after a finished pass, deciding whether another follows.
    pub fn pass_done(&mut self, allocated: u64, active: u64) {
        let fragmented = active.saturating_sub(allocated);
        let from = self.pass_from.take().unwrap_or(u64::MAX);
        let gained = fragmented < from - from / 10;
        if gained && fragmented > IGNORE_BYTES && fragmented > allocated / 20 {
            self.pass_from = Some(fragmented);
        } else {
            self.resting = REST;
        }
    }

    /// Moves tables from where the last step stopped until `within_budget`
    /// says stop or a whole pass is done; true when a pass just finished.
    pub fn step(&mut self, keyspace: &Keyspace, mut within_budget: impl FnMut() -> bool) -> bool {
        while within_budget() {
            let slot = self.next_slot as u16;
            self.next_slot += 1;
            // Hidden slots' tables too: their memory fragments like any other.
            // A slot someone holds (a busy script may, for long) waits for
            // the next pass.
            if keyspace.stored_len(slot) > 0 {
                if let Some(mut table) = keyspace.try_lock(slot) {
                    table.reallocate();
                }
            }
            if self.next_slot == SLOTS {
                self.next_slot = 0;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Expiry, Value};

    #[test]
    fn passes_run_while_fragmented_and_gaining() {
        let mb = 1 << 20;
        let mut defrag = ActiveDefrag::default();
        assert!(!defrag.wanted(100 * mb, 105 * mb));
        assert!(!defrag.wanted(10 * mb, 11 * mb + mb / 2), "under 2 MiB");
        assert!(defrag.wanted(100 * mb, 115 * mb));
        assert!(defrag.wanted(100 * mb, 115 * mb), "a pass runs to its end");
        defrag.pass_done(100 * mb, 108 * mb);
        assert!(
            defrag.wanted(100 * mb, 108 * mb),
            "gained and still above 5%"
        );
        defrag.pass_done(100 * mb, 108 * mb);
        for _ in 0..REST {
            assert!(!defrag.wanted(100 * mb, 120 * mb), "no gain: rest");
        }
        assert!(defrag.wanted(100 * mb, 120 * mb));
    }

    #[test]
    fn a_pass_visits_every_slot_and_keeps_every_key() {
        let ks = Keyspace::new();
        for i in 0..5_000 {
            let key = format!("k{i}");
            ks.lock_key(key.as_bytes())
                .insert(key.as_bytes(), Value::Int(i), Expiry::Persist, 0);
        }
        let mut defrag = ActiveDefrag::default();
        let mut steps = 0;
        let mut budget = 0;
        while !defrag.step(&ks, || {
            budget += 1;
            budget % 1_000 != 0
        }) {
            steps += 1;
        }
        assert!(steps >= 16);
        for i in 0..5_000 {
            let key = format!("k{i}");
            let mut table = ks.lock_key(key.as_bytes());
            assert_eq!(table.peek(key.as_bytes(), 0).unwrap().value, &Value::Int(i));
        }
    }
}
