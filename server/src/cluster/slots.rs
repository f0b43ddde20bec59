//! Sets of hash slots, as the bus carries claims: 16384 bits.

use crate::keyspace::SLOTS;

/// A set of slots.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SlotSet(pub [u64; SLOTS / 64]);

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet([0; SLOTS / 64])
    }
}

impl std::fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotSet({} slots)", self.len())
    }
}

impl SlotSet {
    /// True if `slot` is in the set.
    #[inline]
    pub fn contains(&self, slot: u16) -> bool {
        self.0[slot as usize / 64] & (1 << (slot % 64)) != 0
    }

    /// Adds `slot`.
    pub fn insert(&mut self, slot: u16) {
        self.0[slot as usize / 64] |= 1 << (slot % 64);
    }

    /// Removes `slot`.
    pub fn remove(&mut self, slot: u16) {
        self.0[slot as usize / 64] &= !(1 << (slot % 64));
    }

    /// Number of slots in the set.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The slots, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros();
                    rest &= rest - 1;
                    (i * 64) as u16 + bit as u16
                })
            })
        })
    }

    /// The set as ascending inclusive ranges.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut ranges: Vec<(u16, u16)> = Vec::new();
        for slot in self.iter() {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == slot => *end = slot,
                _ => ranges.push((slot, slot)),
            }
        }
        ranges
    }

    /// The set as `start-end` words, the form `CLUSTER SYNCSLOTS` and
    /// `CLUSTER GETSLOTMIGRATIONS` use.
    pub fn range_words(&self) -> Vec<String> {
        self.ranges()
            .iter()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect()
    }

    /// A 64-bit digest of the set (FNV-1a over its words), for cheap comparison.
    pub fn digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for word in self.0 {
            hash = (hash ^ word).wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
}

impl FromIterator<u16> for SlotSet {
    fn from_iter<I: IntoIterator<Item = u16>>(slots: I) -> Self {
        let mut set = SlotSet::default();
        for slot in slots {
            set.insert(slot);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_join_neighbours() {
        let set: SlotSet = [0, 1, 2, 5, 16383].into_iter().collect();
        assert_eq!(set.ranges(), [(0, 2), (5, 5), (16383, 16383)]);
        assert_eq!(set.len(), 5);
        assert!(set.contains(16383) && !set.contains(3));
        let mut other = set.clone();
        assert_eq!(other.digest(), set.digest());
        other.remove(5);
        assert_ne!(other.digest(), set.digest());
    }
}
