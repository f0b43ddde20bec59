//! Redis's eviction pool: the best candidates seen over recent samplings, so
//! that each eviction picks from far more keys than one sample holds.

/// A key that may be evicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Higher is evicted first.
    pub score: u64,
    /// The key's slot.
    pub slot: u16,
    /// The key.
    pub key: Vec<u8>,
}

/// Up to [`EvictionPool::CAPACITY`] candidates, kept sorted by score.
#[derive(Debug, Default)]
pub struct EvictionPool {
    /// Ascending by score: the best candidate is last.
    entries: Vec<Candidate>,
}

impl EvictionPool {
    /// Candidates kept, as in Redis.
    pub const CAPACITY: usize = 16;

    /// Considers a sampled key; it stays if the pool has room or it beats the
    /// worst candidate. A key already pooled gets its new score.
    pub fn offer(&mut self, score: u64, slot: u16, key: &[u8]) {
        if let Some(at) = self.entries.iter().position(|c| c.key == key) {
            self.entries.remove(at);
        } else if self.entries.len() == Self::CAPACITY {
            if self.entries[0].score >= score {
                return;
            }
            self.entries.remove(0);
        }
        let at = self.entries.partition_point(|c| c.score < score);
        self.entries.insert(
            at,
            Candidate {
                score,
                slot,
                key: key.to_vec(),
            },
        );
    }

    /// Takes the best candidate.
    pub fn pop(&mut self) -> Option<Candidate> {
        self.entries.pop()
    }

    /// Number of candidates held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no candidate is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every candidate (the policy changed, the keyspace was flushed).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_candidates_and_pops_the_best_first() {
        let mut pool = EvictionPool::default();
        for score in 0..40u64 {
            pool.offer(score, 0, format!("k{score}").as_bytes());
        }
        assert_eq!(pool.len(), EvictionPool::CAPACITY);
        // A worse key than all pooled ones is ignored.
        pool.offer(3, 0, b"low");
        assert_eq!(pool.pop().unwrap().key, b"k39");
        assert_eq!(pool.pop().unwrap().score, 38);
        let rest: Vec<u64> = std::iter::from_fn(|| pool.pop()).map(|c| c.score).collect();
        assert_eq!(rest, (24..38).rev().collect::<Vec<_>>());
        assert!(pool.is_empty());
    }

    #[test]
    fn a_key_offered_again_is_rescored_not_duplicated() {
        let mut pool = EvictionPool::default();
        pool.offer(5, 1, b"a");
        pool.offer(7, 1, b"b");
        pool.offer(9, 1, b"a");
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.pop().unwrap().key, b"a");
        pool.offer(1, 1, b"b");
        assert_eq!(pool.pop().unwrap().score, 1);
    }
}
