//! The keys of one hash slot.
//!
//! Entries live in insertion order in a vector with a hash index beside it
//! (`IndexMap`). That gives what a cache server needs beyond lookups: O(1) random
//! sampling (eviction, `RANDOMKEY`), and positional cursors that survive
//! removals and growth (`SCAN`, active expiry, slot migration).

use std::hash::BuildHasher;
use std::sync::OnceLock;

use indexmap::map::raw_entry_v1::{RawEntryApiV1, RawEntryMut};
use indexmap::IndexMap;

use super::value::{access_stamp, Entry, Key, Value};
use crate::clock::Millis;

/// One process-wide random hash seed shared by every table (hash flooding
/// protection without a 32-byte hasher in each of the 16384 tables).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyHasher;

impl BuildHasher for KeyHasher {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        static SEED: OnceLock<ahash::RandomState> = OnceLock::new();
        SEED.get_or_init(ahash::RandomState::new).build_hasher()
    }
}

/// What happens to a key's TTL when its value is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Keep the TTL the key had (`KEEPTTL`, `APPEND`, `INCR`, ...).
    Keep,
    /// Remove any TTL (a plain `SET`).
    Persist,
    /// Expire at this Unix time in milliseconds.
    At(Millis),
}

/// What one active-expiry sweep step found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Entries with a TTL that were examined.
    pub sampled: usize,
    /// Of those, how many had expired and were removed.
    pub expired: usize,
}

/// Entries with a TTL examined per sweep step, as Redis's active expiry does.
const SWEEP_SAMPLE: usize = 20;
/// Bound on all entries looked at per sweep step, so the lock is held briefly
/// even when few keys have a TTL.
const SWEEP_EXAMINE: usize = 400;

/// The keys of one slot.
#[derive(Debug, Default)]
pub struct SlotTable {
    map: IndexMap<Key, Entry, KeyHasher>,
    /// Entries that have a TTL.
    volatile: usize,
    /// Where the next active-expiry sweep step starts.
    sweep: usize,
    /// Keys removed because they expired, not yet added to the server's counter.
    pub(super) expired: u64,
    /// Whether to keep the names of expired keys (for keyspace notifications).
    pub(super) record_expired: bool,
    /// Names of expired keys not yet handed to the keyspace's log.
    pub(super) expired_names: Vec<Vec<u8>>,
}

impl SlotTable {
    /// Number of entries, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the slot holds no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of entries with a TTL.
    pub fn volatile(&self) -> usize {
        self.volatile
    }

    /// Index of the live entry for `key`, removing it first if it has expired.
    fn find(&mut self, key: &[u8], now: Millis) -> Option<usize> {
        let index = self.map.get_index_of(key)?;
        if self.map[index].is_expired(now) {
            self.expire_index(index);
            return None;
        }
        Some(index)
    }

    /// The live entry for `key`, without counting as an access (`TYPE`, `TTL`).
    pub fn peek(&mut self, key: &[u8], now: Millis) -> Option<&Entry> {
        let index = self.find(key, now)?;
        Some(&self.map[index])
    }

    /// The live entry for `key`, recording the access.
    pub fn get(&mut self, key: &[u8], now: Millis) -> Option<&mut Entry> {
        let index = self.find(key, now)?;
        let entry = &mut self.map[index];
        entry.access = access_stamp(now);
        Some(entry)
    }

    /// True if `key` exists and has not expired.
    pub fn contains(&mut self, key: &[u8], now: Millis) -> bool {
        self.find(key, now).is_some()
    }

    /// Stores `value` under `key`, returning the value it replaced.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: Value,
        expiry: Expiry,
        now: Millis,
    ) -> Option<Value> {
        let access = access_stamp(now);
        let new_expire = match expiry {
            Expiry::At(at) => at,
            Expiry::Keep | Expiry::Persist => 0,
        };
        if let Some(index) = self.find(key, now) {
            let entry = &mut self.map[index];
            let old_expire = entry.expire_at;
            if expiry != Expiry::Keep {
                entry.expire_at = new_expire;
            }
            entry.access = access;
            let new_has_ttl = entry.expire_at != 0;
            let old = std::mem::replace(&mut entry.value, value);
            self.adjust_volatile(old_expire != 0, new_has_ttl);
            return Some(old);
        }
        let entry = Entry {
            value,
            expire_at: new_expire,
            access,
        };
        match self.map.raw_entry_mut_v1().from_key(key) {
            RawEntryMut::Vacant(slot) => {
                slot.insert(Key::new(key), entry);
            }
            RawEntryMut::Occupied(mut slot) => {
                // `find` just removed or never saw it, so this is unreachable in
                // practice; replacing is still the right meaning.
                slot.insert(entry);
            }
        }
        self.adjust_volatile(false, new_expire != 0);
        None
    }

    /// Makes a live key look idle for `seconds` (`RESTORE ... IDLETIME`).
    pub fn set_idle(&mut self, key: &[u8], seconds: u64, now: Millis) {
        if let Some(index) = self.find(key, now) {
            let stamp = (now / 1000).saturating_sub(seconds);
            self.map[index].access = u32::try_from(stamp).unwrap_or(0);
        }
    }

    /// Bytes a live key uses: its entry, bookkeeping and heap allocations.
    pub fn memory_usage(&mut self, key: &[u8], now: Millis) -> Option<usize> {
        let index = self.find(key, now)?;
        let (key, entry) = self.map.get_index(index)?;
        Some(super::ENTRY_OVERHEAD + key.heap_size() + entry.value.heap_size())
    }

    /// The live entry for `key`, created from `make` if missing (recording the
    /// access either way).
    pub fn get_or_insert_with(
        &mut self,
        key: &[u8],
        now: Millis,
        make: impl FnOnce() -> Value,
    ) -> &mut Entry {
        let index = match self.find(key, now) {
            Some(index) => index,
            None => {
                self.insert(key, make(), Expiry::Persist, now);
                self.map.len() - 1
            }
        };
        let entry = &mut self.map[index];
        entry.access = access_stamp(now);
        entry
    }

    /// Removes `key` if it holds an empty collection (Redis never keeps one);
    /// true if it did.
    pub fn remove_if_empty(&mut self, key: &[u8], now: Millis) -> bool {
        let empty = self
            .peek(key, now)
            .is_some_and(|e| e.value.is_empty_collection());
        if empty {
            self.remove(key, now);
        }
        empty
    }

    /// Removes `key`, returning its entry if it was live.
    pub fn remove(&mut self, key: &[u8], now: Millis) -> Option<Entry> {
        let index = self.find(key, now)?;
        Some(self.remove_index(index))
    }

    /// Sets or clears the TTL of a live key; false if there is no such key.
    pub fn set_expire(&mut self, key: &[u8], at: Option<Millis>, now: Millis) -> bool {
        let Some(index) = self.find(key, now) else {
            return false;
        };
        let entry = &mut self.map[index];
        let had = entry.expire_at != 0;
        entry.expire_at = at.unwrap_or(0);
        self.adjust_volatile(had, at.is_some());
        true
    }

    fn adjust_volatile(&mut self, had_ttl: bool, has_ttl: bool) {
        match (had_ttl, has_ttl) {
            (false, true) => self.volatile += 1,
            (true, false) => self.volatile -= 1,
            _ => {}
        }
    }

    /// Removes an entry because it expired.
    fn expire_index(&mut self, index: usize) {
        if self.record_expired {
            if let Some((key, _)) = self.map.get_index(index) {
                self.expired_names.push(key.as_bytes().to_vec());
            }
        }
        self.remove_index(index);
        self.expired += 1;
    }

    fn remove_index(&mut self, index: usize) -> Entry {
        let (_, entry) = self
            .map
            .swap_remove_index(index)
            .expect("index came from this table");
        if entry.expire_at != 0 {
            self.volatile -= 1;
        }
        // Give memory back once the table is mostly empty, as Redis resizes its dicts.
        let capacity = self.map.capacity();
        if capacity > 64 && self.map.len() < capacity / 8 {
            self.map.shrink_to(self.map.len() * 2);
        }
        entry
    }

    /// The entry at position `index` (positions are what cursors walk).
    pub fn entry_at(&self, index: usize) -> Option<(&Key, &Entry)> {
        self.map.get_index(index)
    }

    /// Iterates over all entries, expired ones included.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.map.iter()
    }

    /// Removes every entry, handing them back (so they can be freed elsewhere).
    pub fn take(&mut self) -> IndexMap<Key, Entry, KeyHasher> {
        self.volatile = 0;
        self.sweep = 0;
        std::mem::take(&mut self.map)
    }

    /// One step of active expiry: examines the entries with a TTL that follow the
    /// previous step's position and removes those expired at `now`.
    pub fn sweep(&mut self, now: Millis) -> Sweep {
        let mut found = Sweep::default();
        let mut examined = 0;
        while self.volatile > 0
            && found.sampled < SWEEP_SAMPLE
            && examined < SWEEP_EXAMINE.min(self.map.len())
        {
            if self.sweep >= self.map.len() {
                self.sweep = 0;
            }
            examined += 1;
            let expire_at = self.map[self.sweep].expire_at;
            if expire_at == 0 {
                self.sweep += 1;
                continue;
            }
            found.sampled += 1;
            if expire_at <= now {
                // The last entry moves into this position: look at it next.
                self.expire_index(self.sweep);
                found.expired += 1;
            } else {
                self.sweep += 1;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> Value {
        Value::string(s.as_bytes())
    }

    #[test]
    fn expired_entries_vanish_on_access() {
        let mut t = SlotTable::default();
        t.insert(b"a", val("1"), Expiry::At(1_000), 0);
        assert_eq!(t.volatile(), 1);
        assert!(t.peek(b"a", 999).is_some());
        assert!(t.peek(b"a", 1_000).is_none());
        assert_eq!(t.len(), 0);
        assert_eq!(t.volatile(), 0);
        assert_eq!(t.expired, 1);
    }

    #[test]
    fn insert_keeps_or_clears_ttl_as_asked() {
        let mut t = SlotTable::default();
        t.insert(b"a", val("1"), Expiry::At(5_000), 0);
        t.insert(b"a", val("2"), Expiry::Keep, 0);
        assert_eq!(t.peek(b"a", 0).unwrap().expire_at(), Some(5_000));
        t.insert(b"a", val("3"), Expiry::Persist, 0);
        assert_eq!(t.peek(b"a", 0).unwrap().expire_at(), None);
        assert_eq!(t.volatile(), 0);
    }

    #[test]
    fn sweep_removes_expired_entries_and_keeps_live_ones() {
        let mut t = SlotTable::default();
        for i in 0..100 {
            let expiry = if i % 2 == 0 {
                Expiry::At(10)
            } else {
                Expiry::At(1_000)
            };
            t.insert(format!("k{i}").as_bytes(), val("v"), expiry, 0);
        }
        t.insert(b"forever", val("v"), Expiry::Persist, 0);
        let mut removed = 0;
        for _ in 0..20 {
            removed += t.sweep(500).expired;
        }
        assert_eq!(removed, 50);
        assert_eq!(t.len(), 51);
        assert_eq!(t.volatile(), 50);
    }

    #[test]
    fn removing_most_entries_shrinks_the_table() {
        let mut t = SlotTable::default();
        for i in 0..10_000 {
            t.insert(format!("k{i}").as_bytes(), val("v"), Expiry::Persist, 0);
        }
        for i in 0..9_990 {
            t.remove(format!("k{i}").as_bytes(), 0);
        }
        assert!(t.map.capacity() < 1_000);
    }
}
