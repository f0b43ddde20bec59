//! The keys of one hash slot.
//!
//! Keys and values are packed densely in a vector, with a hash index of 32-bit
//! positions beside it, like `IndexMap` but leaner: nothing else is stored per
//! key except a 32-bit access stamp in a parallel vector, and an expiry in a
//! third one that exists only while some key of the slot has a TTL. A 16-byte
//! key with a 16-byte value costs about 60 bytes in all, with no allocation of
//! its own.
//!
//! Positions give what a cache server needs beyond lookups: O(1) random sampling
//! (eviction, `RANDOMKEY`) and cursors that survive removals and growth (`SCAN`,
//! active expiry, slot migration). Removal moves the last entry into the hole.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use super::access::Tracking;
use super::index::Index;
use super::value::{Entry, Key, Value};
use crate::clock::Millis;
use crate::memory::size_class;

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

fn hash(key: &[u8]) -> u64 {
    KeyHasher.hash_one(key)
}

/// The hash the tables index `key` by (also what the TinyLFU sketch counts).
pub fn key_hash(key: &[u8]) -> u64 {
    hash(key)
}

/// The capacity to grow a vector of `len` entries of `size` bytes to: at least
/// an eighth more (one, for small tables: at a million keys a slot holds about
/// sixty, at a hundred thousand six, so fixed steps would be mostly slack),
/// then up to whatever fits the allocation it will get anyway.
fn grown_capacity(len: usize, size: usize) -> usize {
    let wanted = len + (len / 8).max(1);
    size_class(wanted * size) / size
}

/// The keys of one slot.
#[derive(Debug, Default)]
pub struct SlotTable {
    /// Keys and values; positions are what cursors walk.
    entries: Vec<(Key, Value)>,
    /// Access stamp of each entry (see [`Tracking`]).
    access: Vec<u32>,
    /// Expiry of each entry in Unix ms (0: none) while any entry has one; empty
    /// otherwise, so slots without TTLs pay nothing for them.
    expires: Vec<Millis>,
    /// Positions in `entries`, by key hash.
    index: Index,
    /// Entries that have a TTL.
    volatile: usize,
    /// Where the next active-expiry sweep step starts.
    sweep: usize,
    /// How accesses are stamped; set by the keyspace when it hands out the table.
    pub(super) tracking: Tracking,
    /// Keys removed because they expired, not yet added to the server's counter.
    pub(super) expired: u64,
    /// Whether to keep the names of expired keys (for keyspace notifications).
    pub(super) record_expired: bool,
    /// Names of expired keys not yet handed to the keyspace's log.
    pub(super) expired_names: Vec<Vec<u8>>,
    /// What a lookup does with a key past its expiry; set by whoever locks
    /// the table.
    pub(super) expiring: Expiring,
}

/// What a lookup does with a key whose expiry has passed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// Removes it (a master, which then announces the expiry).
    #[default]
    Delete,
    /// Hides it but keeps it (a read-only replica: only its master's stream
    /// removes keys, so both hold the same keys at the same offset).
    Hide,
    /// Sees it as live (the replica applying its master's stream, which says
    /// when the key goes).
    Ignore,
}

thread_local! {
    /// Hashes of keys read on this thread under the slot lock now held, for the
    /// keyspace's frequency sketch (one buffer per thread, not per table).
    static READS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hands the hashes of keys read on this thread since the last call to `count`.
pub(super) fn drain_reads(mut count: impl FnMut(u64)) {
    READS.with_borrow_mut(|reads| reads.drain(..).for_each(&mut count));
}

impl SlotTable {
    /// Number of entries, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the slot holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries with a TTL.
    pub fn volatile(&self) -> usize {
        self.volatile
    }

    fn expire_of(&self, index: usize) -> Millis {
        self.expires.get(index).copied().unwrap_or(0)
    }

    fn position(&self, key: &[u8], key_hash: u64) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(key_hash, |i| entries[i].0.as_bytes() == key)
    }

    /// Index of the live entry for `key`, removing it first if it has expired.
    fn find(&mut self, key: &[u8], now: Millis) -> Option<usize> {
        self.find_hashed(key, hash(key), now)
    }

    fn find_hashed(&mut self, key: &[u8], key_hash: u64, now: Millis) -> Option<usize> {
        let index = self.position(key, key_hash)?;
        let expire_at = self.expire_of(index);
        if expire_at != 0 && expire_at <= now {
            match self.expiring {
                Expiring::Delete => self.expire_index(index),
                Expiring::Hide => return None,
                Expiring::Ignore => return Some(index),
            }
            return None;
        }
        Some(index)
    }

    fn touch(&mut self, index: usize, now: Millis) {
        let chance = if self.tracking.lfu {
            rand::random::<f64>()
        } else {
            0.0
        };
        self.access[index] = self.tracking.touched(self.access[index], now, chance);
    }

    fn view(&mut self, index: usize) -> Entry<&mut Value> {
        let expire_at = self.expire_of(index);
        Entry {
            value: &mut self.entries[index].1,
            expire_at,
        }
    }

    /// The live entry for `key`, without counting as an access (`TYPE`, `TTL`).
    pub fn peek(&mut self, key: &[u8], now: Millis) -> Option<Entry<&Value>> {
        let index = self.find(key, now)?;
        Some(Entry {
            value: &self.entries[index].1,
            expire_at: self.expire_of(index),
        })
    }

    /// The live entry for `key`, recording the access (a miss counts as a
    /// request too, for the TinyLFU sketch).
    pub fn get(&mut self, key: &[u8], now: Millis) -> Option<Entry<&mut Value>> {
        let key_hash = hash(key);
        if self.tracking.sketch {
            READS.with_borrow_mut(|reads| reads.push(key_hash));
        }
        let index = self.find_hashed(key, key_hash, now)?;
        self.touch(index, now);
        Some(self.view(index))
    }

    /// The value of `key` as stored, without expiring it or recording an access:
    /// for reading several keys at once, each looked up with [`SlotTable::get`]
    /// just before (see `Locked::values`).
    pub fn stored(&self, key: &[u8]) -> Option<&Value> {
        self.position(key, hash(key)).map(|i| &self.entries[i].1)
    }

    /// True if `key` exists and has not expired.
    pub fn contains(&mut self, key: &[u8], now: Millis) -> bool {
        self.find(key, now).is_some()
    }

    /// True if `key` exists and has not expired, without expiring it (a
    /// check that changes nothing, made before a unit decides to run).
    pub fn is_live(&self, key: &[u8], now: Millis) -> bool {
        self.position(key, hash(key)).is_some_and(|index| {
            let expire_at = self.expire_of(index);
            expire_at == 0 || expire_at > now
        })
    }

    /// Stores `value` under `key`, returning the value it replaced.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: Value,
        expiry: Expiry,
        now: Millis,
    ) -> Option<Value> {
        let expire_at = match expiry {
            Expiry::At(at) => at,
            Expiry::Keep | Expiry::Persist => 0,
        };
        if let Some(index) = self.find(key, now) {
            if expiry != Expiry::Keep {
                self.write_expire(index, expire_at);
            }
            self.touch(index, now);
            return Some(std::mem::replace(&mut self.entries[index].1, value));
        }
        self.push(Key::new(key), value, expire_at, now);
        None
    }

    /// Appends a new entry (the key must not be present).
    fn push(&mut self, key: Key, value: Value, expire_at: Millis, now: Millis) {
        let index = self.entries.len();
        if index == self.entries.capacity() {
            // Grow in small steps that fill the allocator's size classes: the
            // tables of all slots have similar sizes, so doubling would leave most
            // of them half empty at once.
            let capacity = grown_capacity(index, std::mem::size_of::<(Key, Value)>());
            self.entries.reserve_exact(capacity - index);
            self.access.reserve_exact(capacity - index);
            if !self.expires.is_empty() {
                self.expires.reserve_exact(capacity - index);
            }
        }
        let entries = &self.entries;
        self.index.insert(hash(key.as_bytes()), index, |i| {
            hash(entries[i].0.as_bytes())
        });
        self.entries.push((key, value));
        self.access.push(self.tracking.new_stamp(now));
        if !self.expires.is_empty() {
            self.expires.push(0);
        }
        self.write_expire(index, expire_at);
    }

    /// Sets the expiry of the entry at `index` (0: none), keeping the count of
    /// entries with a TTL and the existence of `expires` in step.
    fn write_expire(&mut self, index: usize, expire_at: Millis) {
        let had = self.expire_of(index) != 0;
        match (had, expire_at != 0) {
            (false, true) => {
                if self.expires.is_empty() {
                    self.expires.reserve_exact(self.entries.capacity());
                    self.expires.resize(self.entries.len(), 0);
                }
                self.volatile += 1;
            }
            (true, false) => self.volatile -= 1,
            _ => {}
        }
        if self.volatile == 0 {
            self.expires = Vec::new();
        } else {
            self.expires[index] = expire_at;
        }
    }

    /// Seconds since a live key was last accessed (`OBJECT IDLETIME`).
    pub fn idle_seconds(&mut self, key: &[u8], now: Millis) -> Option<u64> {
        let index = self.find(key, now)?;
        Some(Tracking::idle_seconds(self.access[index], now))
    }

    /// A live key's LFU counter after decay (`OBJECT FREQ`).
    pub fn frequency(&mut self, key: &[u8], now: Millis) -> Option<u8> {
        let index = self.find(key, now)?;
        Some(self.tracking.decayed(self.access[index], now))
    }

    /// Makes a live key look idle for `seconds` (`RESTORE ... IDLETIME`).
    pub fn set_idle(&mut self, key: &[u8], seconds: u64, now: Millis) {
        if let Some(index) = self.find(key, now) {
            self.access[index] = Tracking::idle_stamp(seconds, now);
        }
    }

    /// Gives a live key an LFU counter (`RESTORE ... FREQ`).
    pub fn set_frequency(&mut self, key: &[u8], frequency: u8, now: Millis) {
        if let Some(index) = self.find(key, now) {
            self.access[index] = Tracking::frequency_stamp(frequency, now);
        }
    }

    /// Bytes a live key uses: its entry, bookkeeping and heap allocations.
    pub fn memory_usage(&mut self, key: &[u8], now: Millis) -> Option<usize> {
        let index = self.find(key, now)?;
        let (key, value) = &self.entries[index];
        let ttl = if self.expire_of(index) != 0 { 8 } else { 0 };
        Some(super::ENTRY_OVERHEAD + ttl + key.heap_size() + value.heap_size())
    }

    /// The live entry for `key`, created from `make` if missing (recording the
    /// access either way).
    pub fn get_or_insert_with(
        &mut self,
        key: &[u8],
        now: Millis,
        make: impl FnOnce() -> Value,
    ) -> Entry<&mut Value> {
        let index = match self.find(key, now) {
            Some(index) => {
                self.touch(index, now);
                index
            }
            None => {
                self.push(Key::new(key), make(), 0, now);
                self.entries.len() - 1
            }
        };
        self.view(index)
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
    pub fn remove(&mut self, key: &[u8], now: Millis) -> Option<Entry<Value>> {
        let index = self.find(key, now)?;
        Some(self.remove_index(index))
    }

    /// Sets or clears the TTL of a live key; false if there is no such key.
    pub fn set_expire(&mut self, key: &[u8], at: Option<Millis>, now: Millis) -> bool {
        let Some(index) = self.find(key, now) else {
            return false;
        };
        self.write_expire(index, at.unwrap_or(0));
        true
    }

    /// Removes an entry because it expired.
    fn expire_index(&mut self, index: usize) {
        if self.record_expired {
            let name = self.entries[index].0.as_bytes().to_vec();
            self.expired_names.push(name);
        }
        self.remove_index(index);
        self.expired += 1;
    }

    fn remove_index(&mut self, index: usize) -> Entry<Value> {
        let expire_at = self.expire_of(index);
        if expire_at != 0 {
            self.write_expire(index, 0);
        }
        let last = self.entries.len() - 1;
        let entries = &self.entries;
        let key_hash = hash(entries[index].0.as_bytes());
        self.index.remove(key_hash, index);
        if index != last {
            // The last entry moves into the hole: point its index slot there.
            let moved = hash(entries[last].0.as_bytes());
            self.index.repoint(moved, last, index);
        }
        let (_, value) = self.entries.swap_remove(index);
        self.access.swap_remove(index);
        if !self.expires.is_empty() {
            self.expires.swap_remove(index);
        }
        self.shrink_if_sparse();
        Entry { value, expire_at }
    }

    /// Removes `key` to free memory: only a live key, only one with a TTL if
    /// `volatile_only`, and never a lock or a fill lease. Spare room is given back at once, since small entries
    /// own no heap memory and evicting them frees nothing otherwise.
    pub fn evict(&mut self, key: &[u8], volatile_only: bool, now: Millis) -> bool {
        let Some(index) = self.find(key, now) else {
            return false;
        };
        if volatile_only && self.expire_of(index) == 0 {
            return false;
        }
        // A held lock or a pending fill lease is a promise to a client, not
        // cached data: it goes when its lease does, never to make room.
        if matches!(self.entries[index].1, Value::Lock(_) | Value::Lease(_)) {
            return false;
        }
        self.remove_index(index);
        let (len, capacity) = (self.entries.len(), self.entries.capacity());
        // Twice the slack growth leaves, so a table that loses and gains keys
        // in turn does not reallocate each time.
        if capacity - len > (len / 4).max(2) {
            let keep = len + (len / 8).max(1);
            self.entries.shrink_to(keep);
            self.access.shrink_to(keep);
            self.expires.shrink_to(keep);
        }
        true
    }

    /// Moves the table's arrays that sit in sparse allocator slabs to fresh
    /// allocations of the same sizes (active defragmentation; see
    /// `keyspace::defrag`).
    pub fn reallocate(&mut self) {
        fn moved<T>(v: &mut Vec<T>) {
            if v.capacity() > 0 && crate::memory::worth_moving(v.as_ptr().cast()) {
                let mut fresh = Vec::with_capacity(v.capacity());
                fresh.append(v);
                *v = fresh;
            }
        }
        moved(&mut self.entries);
        moved(&mut self.access);
        moved(&mut self.expires);
        // hashbrown does not show where its table lives: move it always.
        self.index = self.index.clone();
    }

    /// Gives memory back once the table is mostly empty, as Redis resizes its
    /// dicts, and all of it when the table is empty.
    fn shrink_if_sparse(&mut self) {
        let (len, capacity) = (self.entries.len(), self.entries.capacity());
        if len == 0 {
            self.entries = Vec::new();
            self.access = Vec::new();
            self.expires = Vec::new();
            self.index = Index::default();
            self.sweep = 0;
            return;
        }
        if capacity > 64 && len < capacity / 4 {
            let keep = len + len / 2;
            self.entries.shrink_to(keep);
            self.access.shrink_to(keep);
            self.expires.shrink_to(keep);
            let entries = &self.entries;
            self.index.shrink_to(len, |i| hash(entries[i].0.as_bytes()));
        }
    }

    /// The entry at position `index` (positions are what cursors walk), expired
    /// or not.
    pub fn entry_at(&self, index: usize) -> Option<(&Key, Entry<&Value>)> {
        let (key, value) = self.entries.get(index)?;
        Some((
            key,
            Entry {
                value,
                expire_at: self.expire_of(index),
            },
        ))
    }

    /// All entries, expired ones included.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, Entry<&Value>)> {
        (0..self.entries.len()).filter_map(|i| self.entry_at(i))
    }

    /// The name, access stamp and expiry (0: none) at position `index`, for
    /// choosing eviction candidates.
    pub fn sample_at(&self, index: usize) -> Option<(&Key, u32, Millis)> {
        let (key, _) = self.entries.get(index)?;
        Some((key, self.access[index], self.expire_of(index)))
    }

    /// How accesses are stamped in this table.
    pub fn tracking(&self) -> Tracking {
        self.tracking
    }

    /// Removes every entry, handing them back (so they can be freed elsewhere).
    pub fn take(&mut self) -> SlotTable {
        let empty = SlotTable {
            tracking: self.tracking,
            record_expired: self.record_expired,
            expiring: self.expiring,
            ..SlotTable::default()
        };
        let mut taken = std::mem::replace(self, empty);
        self.expired = std::mem::take(&mut taken.expired);
        self.expired_names = std::mem::take(&mut taken.expired_names);
        taken
    }

    /// One step of active expiry: examines the entries with a TTL that follow the
    /// previous step's position and removes those expired at `now`.
    pub fn sweep(&mut self, now: Millis) -> Sweep {
        let mut found = Sweep::default();
        let mut examined = 0;
        while self.volatile > 0
            && found.sampled < SWEEP_SAMPLE
            && examined < SWEEP_EXAMINE.min(self.entries.len())
        {
            if self.sweep >= self.entries.len() {
                self.sweep = 0;
            }
            examined += 1;
            let expire_at = self.expires[self.sweep];
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
    fn growth_follows_jemalloc_size_classes() {
        // 61 entries of 48 bytes want 68: 3264 bytes, whose class holds 74.
        assert_eq!(grown_capacity(61, 48), 74);
        assert_eq!(grown_capacity(0, 48), 1);
        // Six entries want seven: 336 bytes, whose class holds eight.
        assert_eq!(grown_capacity(6, 48), 8);
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
    fn evicting_gives_room_back_soon() {
        let mut t = SlotTable::default();
        for i in 0..10_000 {
            t.insert(format!("k{i}").as_bytes(), val("v"), Expiry::Persist, 0);
        }
        let grown = t.entries.capacity();
        for i in 0..2_500 {
            assert!(t.evict(format!("k{i}").as_bytes(), false, 0));
        }
        // Small entries own no heap memory: only giving capacity back frees any.
        assert!(t.entries.capacity() < grown);
        assert!(t.entries.capacity() <= t.len() + t.len() / 4);
        assert!(!t.evict(b"k0", false, 0));
        t.insert(b"lock", Value::Lease(7), Expiry::At(100), 0);
        assert!(!t.evict(b"lock", false, 0));
        t.insert(b"ttl", val("v"), Expiry::At(100), 0);
        assert!(!t.evict(b"k5000", true, 0));
        assert!(t.evict(b"ttl", true, 0));
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
        assert!(t.entries.capacity() < 1_000);
        assert_eq!(t.len(), 10);
        for i in 9_990..10_000 {
            assert!(t.contains(format!("k{i}").as_bytes(), 0));
        }
    }
}
