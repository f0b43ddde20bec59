//! Walks over the whole keyspace (`KEYS`, `SCAN`, `RANDOMKEY`, `DBSIZE`,
//! `FLUSHALL`), slot by slot through a [`Locked`] set, so they work both on their
//! own (each slot locked briefly) and inside a transaction that holds every slot.
//! All but `FLUSHALL` pass over [hidden slots](super::Keyspace::hide_slot).

use super::{Entry, Key, Locked, Value, SLOTS};
use crate::clock::Millis;

impl Locked<'_> {
    /// Number of keys in `slot` (expired ones not yet removed included); 0
    /// while the slot is hidden.
    pub fn slot_len(&mut self, slot: u16) -> usize {
        match self.keyspace().is_hidden(slot) {
            true => 0,
            false => self.stored_len(slot),
        }
    }

    /// Number of keys stored in `slot`, hidden or not.
    fn stored_len(&mut self, slot: u16) -> usize {
        if self.holds(slot) {
            self.with_slot(slot, |t| t.len())
        } else {
            self.keyspace().stored_len(slot)
        }
    }

    /// Number of keys, like `DBSIZE` (hidden slots' keys not counted).
    pub fn key_count(&mut self) -> usize {
        (0..SLOTS as u16).map(|s| self.slot_len(s)).sum()
    }

    /// Removes every key, hidden slots' included, returning how many there
    /// were. With `lazy`, the memory is freed on a background thread
    /// (`FLUSHALL ASYNC`), so the caller does not wait for millions of frees.
    pub fn flush(&mut self, lazy: bool) -> usize {
        let mut removed = 0;
        let mut taken = Vec::new();
        for slot in 0..SLOTS as u16 {
            if self.stored_len(slot) == 0 {
                continue;
            }
            let map = self.with_slot(slot, |table| {
                removed += table.len();
                table.take()
            });
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
        &mut self,
        cursor: u64,
        count: usize,
        now: Millis,
        mut visit: impl FnMut(&Key, Entry<&Value>),
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
    /// entries were looked at. A hidden slot is done at once.
    pub fn scan_slot(
        &mut self,
        slot: u16,
        position: u64,
        budget: usize,
        now: Millis,
        mut visit: impl FnMut(&Key, Entry<&Value>),
    ) -> (u64, usize) {
        if self.slot_len(slot) == 0 {
            return (0, 0);
        }
        self.with_slot(slot, |table| {
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
        })
    }

    /// A uniformly chosen live key outside hidden slots, if any (`RANDOMKEY`).
    pub fn random_key(&mut self, now: Millis) -> Option<Vec<u8>> {
        // Expired keys found on the way are removed; give up after a few tries so
        // a keyspace of only expired keys cannot loop for long.
        for _ in 0..100 {
            let total = self.key_count();
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
            let found = self.with_slot(slot, |table| {
                let index = pick.min(table.len().checked_sub(1)?);
                let (key, entry) = table.entry_at(index)?;
                let key = key.as_bytes().to_vec();
                if entry.is_expired(now) {
                    table.remove(&key, now);
                    return None;
                }
                Some(key)
            });
            if found.is_some() {
                return found;
            }
        }
        None
    }
}
