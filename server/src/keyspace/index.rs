//! The hash index of a slot table: entry positions by key hash.
//!
//! Positions are 16 bits while the table has fewer than 65,536 entries (every
//! slot of a keyspace under a billion keys) and 32 bits beyond, so a key costs
//! three index bytes (position and control byte) instead of nine for `usize`.
//! Hashes are not stored: the table recomputes them from the keys when the
//! index grows or an entry moves.

use hashbrown::HashTable;

/// An entry position stored in the index.
trait Position: Copy {
    fn new(position: usize) -> Self;
    fn get(self) -> usize;
}

impl Position for u16 {
    fn new(position: usize) -> Self {
        position as u16
    }
    fn get(self) -> usize {
        usize::from(self)
    }
}

impl Position for u32 {
    fn new(position: usize) -> Self {
        position as u32
    }
    fn get(self) -> usize {
        self as usize
    }
}

/// Positions by key hash.
#[derive(Debug, Clone)]
pub enum Index {
    /// Fewer than 65,536 entries.
    Narrow(HashTable<u16>),
    /// More.
    Wide(HashTable<u32>),
}

impl Default for Index {
    fn default() -> Self {
        Index::Narrow(HashTable::new())
    }
}

/// Most positions a narrow index can hold.
const NARROW_MAX: usize = u16::MAX as usize;

fn find<P: Position>(t: &HashTable<P>, hash: u64, eq: impl Fn(usize) -> bool) -> Option<usize> {
    t.find(hash, |p| eq(p.get())).map(|p| p.get())
}

fn insert<P: Position>(t: &mut HashTable<P>, hash: u64, at: usize, rehash: impl Fn(usize) -> u64) {
    t.insert_unique(hash, P::new(at), |p| rehash(p.get()));
}

fn remove<P: Position>(t: &mut HashTable<P>, hash: u64, at: usize) {
    if let Ok(found) = t.find_entry(hash, |p| p.get() == at) {
        found.remove();
    }
}

fn repoint<P: Position>(t: &mut HashTable<P>, hash: u64, from: usize, to: usize) {
    if let Some(p) = t.find_mut(hash, |p| p.get() == from) {
        *p = P::new(to);
    }
}

impl Index {
    /// The position whose entry `eq` accepts among those with `hash`.
    pub fn find(&self, hash: u64, eq: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Index::Narrow(t) => find(t, hash, eq),
            Index::Wide(t) => find(t, hash, eq),
        }
    }

    /// Adds position `at` (the table's `len` before the insert); `rehash` gives
    /// the hash of the entry at a position, for when the index grows.
    pub fn insert(&mut self, hash: u64, at: usize, rehash: impl Fn(usize) -> u64) {
        if at >= NARROW_MAX {
            self.widen(&rehash);
        }
        match self {
            Index::Narrow(t) => insert(t, hash, at, rehash),
            Index::Wide(t) => insert(t, hash, at, rehash),
        }
    }

    fn widen(&mut self, rehash: &impl Fn(usize) -> u64) {
        if let Index::Narrow(narrow) = self {
            let mut wide = HashTable::with_capacity(narrow.capacity() + 1);
            for &p in narrow.iter() {
                let at = usize::from(p);
                wide.insert_unique(rehash(at), at as u32, |q| rehash(*q as usize));
            }
            *self = Index::Wide(wide);
        }
    }

    /// Forgets position `at`.
    pub fn remove(&mut self, hash: u64, at: usize) {
        match self {
            Index::Narrow(t) => remove(t, hash, at),
            Index::Wide(t) => remove(t, hash, at),
        }
    }

    /// Records that the entry with `hash` moved from `from` to `to`.
    pub fn repoint(&mut self, hash: u64, from: usize, to: usize) {
        match self {
            Index::Narrow(t) => repoint(t, hash, from, to),
            Index::Wide(t) => repoint(t, hash, from, to),
        }
    }

    /// Frees room beyond `len` entries.
    pub fn shrink_to(&mut self, len: usize, rehash: impl Fn(usize) -> u64) {
        match self {
            Index::Narrow(t) => t.shrink_to(len, |p| rehash(p.get())),
            Index::Wide(t) => t.shrink_to(len, |p| rehash(p.get())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_widening_moves_and_removal() {
        // Entry i has hash i * 7919 (any fixed function of the position will do).
        let hash_of = |i: usize| (i as u64).wrapping_mul(7919);
        let mut index = Index::default();
        let n = NARROW_MAX + 10;
        for i in 0..n {
            index.insert(hash_of(i), i, hash_of);
        }
        assert!(matches!(index, Index::Wide(_)));
        for i in [0, 1, NARROW_MAX - 1, NARROW_MAX, n - 1] {
            assert_eq!(index.find(hash_of(i), |p| p == i), Some(i));
        }
        index.remove(hash_of(5), 5);
        assert_eq!(index.find(hash_of(5), |p| p == 5), None);
        // The last entry moves into the hole, as the table's swap-remove does.
        index.repoint(hash_of(n - 1), n - 1, 5);
        assert_eq!(index.find(hash_of(n - 1), |p| p == 5), Some(5));
    }
}
