//! TinyLFU's frequency sketch: a count-min sketch of 4-bit counters that
//! estimates how often each key was requested recently, hits and misses alike,
//! including keys the cache no longer (or never) held.
//!
//! Counters live 16 to a 64-bit word; a key uses one counter in each of four
//! words picked by independent remixes of its hash, and its estimate is the
//! smallest of the four. Every `10 × expected keys` increments all counters are
//! halved, so the sketch forgets old popularity (Einziger, Friedman and Manes,
//! "TinyLFU: A Highly Efficient Cache Admission Policy", 2017; Caffeine uses the
//! same layout).
//!
//! Updates are relaxed loads and stores: two threads bumping the same word at
//! once may lose one increment, which an estimate can afford, and no access
//! ever waits.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Odd multipliers that remix the key hash for each of the four rows.
const SEEDS: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x85eb_ca77_c2b2_ae63,
];

/// The largest value a counter holds.
pub const MAX_FREQUENCY: u8 = 15;

/// Access frequencies of keys by hash.
#[derive(Debug)]
pub struct FrequencySketch {
    words: Box<[AtomicU64]>,
    /// The number of keys the sketch was sized for.
    expected: usize,
    /// Increments since the last halving.
    additions: AtomicU64,
    /// Increments between halvings.
    period: u64,
}

impl FrequencySketch {
    /// A sketch for a cache of about `expected` keys: eight counters per key,
    /// four bytes, which conservative updates keep accurate enough.
    pub fn new(expected: usize) -> Self {
        let expected = expected.max(64);
        let words = (expected / 2).next_power_of_two();
        FrequencySketch {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            expected,
            additions: AtomicU64::new(0),
            period: 10 * expected as u64,
        }
    }

    /// A copy sized for `expected` keys that keeps every estimate: a key's
    /// counter sits in word `i mod words`, so growing repeats the words and
    /// shrinking folds them together keeping the larger counter.
    pub fn resized(&self, expected: usize) -> Self {
        let new = FrequencySketch::new(expected);
        let (old_len, new_len) = (self.words.len(), new.words.len());
        for (i, cell) in new.words.iter().enumerate() {
            let mut merged = 0u64;
            for source in (i % old_len..old_len).step_by(new_len) {
                merged = max_nibbles(merged, self.words[source].load(Relaxed));
            }
            cell.store(merged, Relaxed);
        }
        new.additions
            .store(self.additions.load(Relaxed).min(new.period - 1), Relaxed);
        new
    }

    /// The number of keys the sketch was sized for.
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// Bytes the counters take.
    pub fn size(&self) -> usize {
        self.words.len() * 8
    }

    fn cells(&self, hash: u64) -> impl Iterator<Item = (usize, u32)> + '_ {
        let mask = self.words.len() - 1;
        SEEDS.iter().map(move |seed| {
            let mixed = hash.wrapping_mul(*seed);
            let word = (mixed >> 32) as usize & mask;
            let shift = ((mixed >> 8) & 15) as u32 * 4;
            (word, shift)
        })
    }

    /// Counts one request for the key with `hash`. Only the key's smallest
    /// counters grow ("conservative update"): the others already count other
    /// keys' requests too, and raising them would only add to that noise.
    pub fn increment(&self, hash: u64) {
        let estimate = self.estimate(hash);
        if estimate == MAX_FREQUENCY {
            return;
        }
        let mut added = false;
        for (word, shift) in self.cells(hash) {
            let cell = &self.words[word];
            let value = cell.load(Relaxed);
            if (value >> shift) & 15 == u64::from(estimate) {
                cell.store(value + (1 << shift), Relaxed);
                added = true;
            }
        }
        if added && self.additions.fetch_add(1, Relaxed) + 1 == self.period {
            self.halve();
        }
    }

    /// How often the key with `hash` was requested recently (0 to 15).
    pub fn estimate(&self, hash: u64) -> u8 {
        self.cells(hash)
            .map(|(word, shift)| ((self.words[word].load(Relaxed) >> shift) & 15) as u8)
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter, so recent requests outweigh old ones.
    fn halve(&self) {
        const LOW_BITS_CLEARED: u64 = 0x7777_7777_7777_7777;
        for cell in self.words.iter() {
            let value = cell.load(Relaxed);
            cell.store((value >> 1) & LOW_BITS_CLEARED, Relaxed);
        }
        self.additions.store(0, Relaxed);
    }
}

/// The larger of each pair of 4-bit counters.
fn max_nibbles(a: u64, b: u64) -> u64 {
    (0..16).fold(0, |out, i| {
        let shift = i * 4;
        out | ((a >> shift) & 15).max((b >> shift) & 15) << shift
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> u64 {
        ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(n)
    }

    #[test]
    fn estimates_follow_counts_and_saturate() {
        let sketch = FrequencySketch::new(1_000);
        for _ in 0..5 {
            sketch.increment(hash(7));
        }
        assert_eq!(sketch.estimate(hash(7)), 5);
        assert_eq!(sketch.estimate(hash(8)), 0);
        for _ in 0..100 {
            sketch.increment(hash(7));
        }
        assert_eq!(sketch.estimate(hash(7)), MAX_FREQUENCY);
    }

    #[test]
    fn heavy_keys_stand_out_from_a_crowd_of_rare_ones() {
        let sketch = FrequencySketch::new(10_000);
        // 5,000 keys seen once (below the halving period of 100,000).
        for n in 0..5_000 {
            sketch.increment(hash(n));
        }
        for _ in 0..10 {
            for n in 100_000..100_010 {
                sketch.increment(hash(n));
            }
        }
        for n in 100_000..100_010 {
            assert!(sketch.estimate(hash(n)) >= 10);
        }
        let rare_overestimated = (0..5_000).filter(|&n| sketch.estimate(hash(n)) > 2).count();
        assert!(rare_overestimated < 50, "{rare_overestimated}");
    }

    #[test]
    fn resizing_keeps_estimates() {
        let sketch = FrequencySketch::new(1_000);
        for n in 0..300u64 {
            for _ in 0..n % 16 {
                sketch.increment(hash(n));
            }
        }
        let before: Vec<u8> = (0..300).map(|n| sketch.estimate(hash(n))).collect();
        let grown = sketch.resized(100_000);
        assert!(grown.size() > sketch.size());
        let after: Vec<u8> = (0..300).map(|n| grown.estimate(hash(n))).collect();
        assert_eq!(before, after);
        // Shrinking merges counters: estimates may only rise, never fall.
        let shrunk = sketch.resized(64);
        assert!((0..300).all(|n| shrunk.estimate(hash(n)) >= before[n as usize]));
    }

    #[test]
    fn counters_halve_every_period() {
        let sketch = FrequencySketch::new(64);
        for _ in 0..12 {
            sketch.increment(hash(1));
        }
        // Fill the rest of the 640-increment period with other keys.
        for n in 0..628u64 {
            sketch.increment(hash(1_000 + n % 300));
        }
        let after = sketch.estimate(hash(1));
        assert!((6..=7).contains(&after), "{after}");
    }
}
