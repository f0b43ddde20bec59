//! A set of hash slots that threads read without a lock: one bit per slot,
//! and a count so that the usual empty set costs one load to check.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Number of hash slots (as `keyspace::SLOTS`, which this module may not use).
const SLOTS: usize = 16384;

/// Slots, each in or out.
#[derive(Debug)]
pub struct SlotBits {
    bits: Box<[AtomicU64]>,
    count: AtomicUsize,
}

impl Default for SlotBits {
    fn default() -> Self {
        SlotBits {
            bits: (0..SLOTS / 64).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicUsize::new(0),
        }
    }
}

impl SlotBits {
    /// Puts `slot` in; false if it was in already.
    pub fn insert(&self, slot: u16) -> bool {
        let bit = 1 << (slot % 64);
        let was = self.bits[usize::from(slot) / 64].fetch_or(bit, Relaxed);
        let added = was & bit == 0;
        if added {
            self.count.fetch_add(1, Relaxed);
        }
        added
    }

    /// Takes `slot` out; false if it was not in.
    pub fn remove(&self, slot: u16) -> bool {
        let bit = 1 << (slot % 64);
        let was = self.bits[usize::from(slot) / 64].fetch_and(!bit, Relaxed);
        let removed = was & bit != 0;
        if removed {
            self.count.fetch_sub(1, Relaxed);
        }
        removed
    }

    /// True if `slot` is in.
    #[inline]
    pub fn contains(&self, slot: u16) -> bool {
        !self.is_empty()
            && self.bits[usize::from(slot) / 64].load(Relaxed) & (1 << (slot % 64)) != 0
    }

    /// True when no slot is in.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count.load(Relaxed) == 0
    }

    /// How many slots are in.
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// The slots in, in order from `start` round to just before it; each
    /// word of bits is read when the walk reaches it.
    pub fn iter_from(&self, start: u16) -> impl Iterator<Item = u16> + '_ {
        let words = self.bits.len();
        let (first, offset) = (usize::from(start) / 64, start % 64);
        // Word `first` comes twice: its bits from `start` on, and at the
        // end of the round the ones before `start`.
        (0..=words).flat_map(move |i| {
            let word = (first + i) % words;
            let mut bits = self.bits[word].load(Relaxed);
            if i == 0 {
                bits &= !0 << offset;
            } else if i == words {
                bits &= !(!0 << offset);
            }
            std::iter::from_fn(move || {
                let bit = (bits != 0).then(|| bits.trailing_zeros())?;
                bits &= bits - 1;
                Some((word * 64) as u16 + bit as u16)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_go_in_and_out_once() {
        let bits = SlotBits::default();
        assert!(bits.is_empty() && !bits.contains(5));
        assert!(bits.insert(5) && !bits.insert(5));
        assert!(bits.insert(16383));
        assert_eq!(bits.len(), 2);
        assert!(bits.contains(5) && bits.contains(16383) && !bits.contains(6));
        assert!(bits.remove(5) && !bits.remove(5));
        assert!(!bits.contains(5));
        assert_eq!(bits.len(), 1);
    }

    #[test]
    fn a_walk_from_any_start_meets_every_slot_once_in_ring_order() {
        let bits = SlotBits::default();
        let slots = [5u16, 60, 64, 9000, 16383];
        for slot in slots {
            bits.insert(slot);
        }
        let walk = |start: u16| bits.iter_from(start).collect::<Vec<_>>();
        assert_eq!(walk(0), slots);
        assert_eq!(walk(5), slots);
        assert_eq!(walk(6), [60, 64, 9000, 16383, 5]);
        assert_eq!(walk(61), [64, 9000, 16383, 5, 60]);
        assert_eq!(walk(64), [64, 9000, 16383, 5, 60]);
        assert_eq!(walk(16383), [16383, 5, 60, 64, 9000]);
        assert_eq!(SlotBits::default().iter_from(100).count(), 0);
    }
}
