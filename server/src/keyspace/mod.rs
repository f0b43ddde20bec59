//! The keyspace: every key, grouped by hash slot.
//!
//! ```text
//!   command ──key──▶ key_slot() ──▶ slots[slot]: Mutex<SlotTable> ──▶ Entry
//!                                     │ len, volatile (atomics, read lock-free)
//!   cron ──▶ ActiveExpire ──sweeps──▶ slots with volatile > 0
//! ```
//!
//! Each of the 16384 slots is its own table behind its own lock, so connections on
//! every runtime thread work in parallel, one slot's keys can be counted and listed
//! without scanning the rest (cluster commands, migration), and no table ever
//! rehashes more than one slot's keys at once.
//!
//! The locks are `parking_lot` mutexes rather than async ones: every critical
//! section is a few hash-table operations and never awaits, so blocking briefly is
//! cheaper than a task switch. Code that needs several slots takes them through
//! [`Keyspace::lock_many`], which locks in ascending slot order so two multi-key
//! commands can never deadlock. Time is always passed in (`now`), never read here.

mod dump;
mod expire;
mod slot;
mod table;
mod value;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

pub use dump::{dump_value, restore_value, DumpError};
pub use expire::{ActiveExpire, ExpireCycle};
pub use slot::{hash_tag, key_slot, SLOTS};
pub use table::{Expiry, SlotTable, Sweep};
pub use value::{Entry, Key, Value};

use crate::clock::Millis;

/// Bytes of bookkeeping per entry beyond the key and value themselves: the table
/// bucket (hash, key, entry), its index slot and control byte.
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<(u64, Key, Entry)>() + 9;

struct SlotCell {
    table: Mutex<SlotTable>,
    /// Mirrors of the table's counts, readable without the lock.
    len: AtomicU32,
    volatile: AtomicU32,
}

/// All keys of the server.
pub struct Keyspace {
    slots: Box<[SlotCell]>,
    expired_keys: AtomicU64,
}

impl Default for Keyspace {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyspace")
            .field("keys", &self.len())
            .finish()
    }
}

/// Exclusive access to one slot's table; counts are published when it is dropped.
pub struct SlotGuard<'a> {
    table: MutexGuard<'a, SlotTable>,
    cell: &'a SlotCell,
    expired_keys: &'a AtomicU64,
}

impl std::ops::Deref for SlotGuard<'_> {
    type Target = SlotTable;
    fn deref(&self) -> &SlotTable {
        &self.table
    }
}

impl std::ops::DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut SlotTable {
        &mut self.table
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.cell
            .len
            .store(self.table.len() as u32, Ordering::Relaxed);
        self.cell
            .volatile
            .store(self.table.volatile() as u32, Ordering::Relaxed);
        if self.table.expired > 0 {
            self.expired_keys
                .fetch_add(std::mem::take(&mut self.table.expired), Ordering::Relaxed);
        }
    }
}

/// Several slots locked together (multi-key commands).
pub struct Locked<'a> {
    /// Sorted by slot.
    guards: Vec<(u16, SlotGuard<'a>)>,
}

impl<'a> Locked<'a> {
    /// The table of the slot `key` hashes to; it must have been locked.
    pub fn table(&mut self, key: &[u8]) -> &mut SlotGuard<'a> {
        let slot = key_slot(key);
        let index = self
            .guards
            .binary_search_by_key(&slot, |(s, _)| *s)
            .expect("slot of every key was locked");
        &mut self.guards[index].1
    }
}

impl Keyspace {
    /// An empty keyspace.
    pub fn new() -> Self {
        Keyspace {
            slots: (0..SLOTS)
                .map(|_| SlotCell {
                    table: Mutex::new(SlotTable::default()),
                    len: AtomicU32::new(0),
                    volatile: AtomicU32::new(0),
                })
                .collect(),
            expired_keys: AtomicU64::new(0),
        }
    }

    /// Locks one slot.
    pub fn lock(&self, slot: u16) -> SlotGuard<'_> {
        let cell = &self.slots[usize::from(slot)];
        SlotGuard {
            table: cell.table.lock(),
            cell,
            expired_keys: &self.expired_keys,
        }
    }

    /// Locks the slot of `key`.
    pub fn lock_key(&self, key: &[u8]) -> SlotGuard<'_> {
        self.lock(key_slot(key))
    }

    /// Locks the slots of all `keys`, in ascending slot order.
    pub fn lock_many<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Locked<'_> {
        let mut slots: Vec<u16> = keys.into_iter().map(key_slot).collect();
        slots.sort_unstable();
        slots.dedup();
        Locked {
            guards: slots.into_iter().map(|s| (s, self.lock(s))).collect(),
        }
    }

    /// Number of keys in `slot` (expired ones not yet removed included), lock-free.
    pub fn slot_len(&self, slot: u16) -> usize {
        self.slots[usize::from(slot)].len.load(Ordering::Relaxed) as usize
    }

    /// Number of keys with a TTL in `slot`, lock-free.
    pub fn slot_volatile(&self, slot: u16) -> usize {
        self.slots[usize::from(slot)]
            .volatile
            .load(Ordering::Relaxed) as usize
    }

    /// Number of keys, like `DBSIZE`.
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .map(|c| c.len.load(Ordering::Relaxed) as usize)
            .sum()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        self.slots
            .iter()
            .map(|c| c.volatile.load(Ordering::Relaxed) as usize)
            .sum()
    }

    /// Keys removed because they expired, since start.
    pub fn expired_keys(&self) -> u64 {
        self.expired_keys.load(Ordering::Relaxed)
    }

    /// Removes every key. With `lazy`, the memory is freed on a background thread
    /// (`FLUSHALL ASYNC`) so the caller does not wait for millions of frees.
    pub fn flush(&self, lazy: bool) -> usize {
        let mut removed = 0;
        let mut taken = Vec::new();
        for slot in 0..SLOTS as u16 {
            if self.slot_len(slot) == 0 {
                continue;
            }
            let mut table = self.lock(slot);
            removed += table.len();
            let map = table.take();
            if lazy {
                taken.push(map);
            }
        }
        if !taken.is_empty() {
            std::thread::spawn(move || drop(taken));
        }
        removed
    }

    /// One step of a `SCAN`-style walk: visits about `count` keys starting at
    /// `cursor`, calling `visit` for each live one, and returns the next cursor (0
    /// when the walk is complete).
    ///
    /// A cursor is `(position << 14) | slot`; within a slot entries are visited
    /// from the highest position down. Removing an entry moves the last one into
    /// its place, which is always an already-visited position, so every key that
    /// exists for the whole walk is returned at least once.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now: Millis,
        mut visit: impl FnMut(&Key, &Entry),
    ) -> u64 {
        let mut slot = (cursor & (SLOTS as u64 - 1)) as u16;
        let mut position = cursor >> 14;
        let mut budget = count;
        loop {
            let (left, visited) = self.scan_slot(slot, position, budget, now, &mut visit);
            if left > 0 {
                return (left << 14) | u64::from(slot);
            }
            budget = budget.saturating_sub(visited);
            if usize::from(slot) + 1 == SLOTS {
                return 0;
            }
            slot += 1;
            position = 0;
            if budget == 0 {
                return u64::from(slot);
            }
        }
    }

    /// Walks one slot from `position` (0: from the top) visiting at most `budget`
    /// entries; returns the position to resume at (0: slot done) and how many
    /// entries were looked at.
    pub fn scan_slot(
        &self,
        slot: u16,
        position: u64,
        budget: usize,
        now: Millis,
        mut visit: impl FnMut(&Key, &Entry),
    ) -> (u64, usize) {
        if self.slot_len(slot) == 0 {
            return (0, 0);
        }
        let table = self.lock(slot);
        let len = table.len() as u64;
        let mut pos = if position == 0 {
            len
        } else {
            position.min(len)
        };
        let mut visited = 0;
        while pos > 0 && visited < budget {
            pos -= 1;
            if let Some((key, entry)) = table.entry_at(pos as usize) {
                if !entry.is_expired(now) {
                    visit(key, entry);
                }
            }
            visited += 1;
        }
        (pos, visited)
    }

    /// A uniformly chosen live key, if any (`RANDOMKEY`).
    pub fn random_key(&self, now: Millis) -> Option<Vec<u8>> {
        // Expired keys found on the way are removed; give up after a few tries so
        // a keyspace of only expired keys cannot loop for long.
        for _ in 0..100 {
            let total = self.len();
            if total == 0 {
                return None;
            }
            let mut pick = rand::random_range(0..total);
            let slot = (0..SLOTS as u16).find(|&s| {
                let len = self.slot_len(s);
                if pick < len {
                    true
                } else {
                    pick -= len;
                    false
                }
            })?;
            let mut table = self.lock(slot);
            if table.is_empty() {
                continue;
            }
            let index = pick.min(table.len() - 1);
            let Some((key, entry)) = table.entry_at(index) else {
                continue;
            };
            let key = key.as_bytes().to_vec();
            if entry.is_expired(now) {
                table.remove(&key, now);
                continue;
            }
            return Some(key);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn filled(n: usize) -> Keyspace {
        let ks = Keyspace::new();
        for i in 0..n {
            let key = format!("key:{i}");
            ks.lock_key(key.as_bytes()).insert(
                key.as_bytes(),
                Value::string(b"v"),
                Expiry::Persist,
                0,
            );
        }
        ks
    }

    fn scan_all(ks: &Keyspace, count: usize, mut between: impl FnMut()) -> HashSet<Vec<u8>> {
        let mut seen = HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = ks.scan(cursor, count, 0, |k, _| {
                seen.insert(k.as_bytes().to_vec());
            });
            between();
            if cursor == 0 {
                return seen;
            }
        }
    }

    #[test]
    fn scan_returns_every_key() {
        let ks = filled(5_000);
        assert_eq!(ks.len(), 5_000);
        assert_eq!(scan_all(&ks, 10, || {}).len(), 5_000);
    }

    #[test]
    fn scan_returns_keys_present_throughout_despite_removals() {
        let ks = filled(3_000);
        let mut next_removal = 0;
        let seen = scan_all(&ks, 7, || {
            // Remove keys 0, 2, 4, ... while the walk is under way.
            if next_removal < 3_000 {
                let key = format!("key:{next_removal}");
                ks.lock_key(key.as_bytes()).remove(key.as_bytes(), 0);
                next_removal += 2;
            }
        });
        for i in (1..3_000).step_by(2) {
            assert!(
                seen.contains(format!("key:{i}").as_bytes()),
                "key:{i} missed"
            );
        }
    }

    #[test]
    fn lock_many_locks_each_slot_once() {
        let ks = Keyspace::new();
        let keys: [&[u8]; 4] = [b"{a}1", b"{a}2", b"b", b"c"];
        let mut locked = ks.lock_many(keys);
        for key in keys {
            locked
                .table(key)
                .insert(key, Value::Int(1), Expiry::Persist, 0);
        }
        drop(locked);
        assert_eq!(ks.len(), 4);
    }

    #[test]
    fn flush_removes_everything() {
        let ks = filled(1_000);
        assert_eq!(ks.flush(true), 1_000);
        assert!(ks.is_empty());
    }

    #[test]
    fn random_key_skips_expired_keys() {
        let ks = Keyspace::new();
        ks.lock_key(b"old")
            .insert(b"old", Value::Int(1), Expiry::At(10), 0);
        ks.lock_key(b"new")
            .insert(b"new", Value::Int(1), Expiry::Persist, 0);
        for _ in 0..20 {
            assert_eq!(ks.random_key(100).as_deref(), Some(&b"new"[..]));
        }
        assert_eq!(ks.expired_keys(), 1);
    }
}
