//! The slots' tables, each behind a lock kept apart from it.
//!
//! Taking a slot's lock is the first thing a command does to the keyspace,
//! and with keys spread over many slots the slot's table is rarely in cache.
//! With the lock inside the table's cell, the command waited for that miss at
//! once. The 16,384 one-byte locks packed together stay in cache instead: the
//! lock is taken at once, and the table is read only later, by which time the
//! prefetch issued while the command was routed ([`SlotCells::prefetch`]) has
//! loaded it. The settings a holder's table works with are written on that
//! first read too ([`Setup`]): a store to a line still missing holds back
//! every later store, and after a few dozen the core stalls as if it had
//! waited.
#![allow(unsafe_code)]

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use parking_lot::lock_api::{RawMutex as _, RawMutexTimed as _};
use parking_lot::RawMutex;

use super::access::Tracking;
use super::table::{Expiring, SlotTable};
use crate::keyspace::slot::SLOTS;
use crate::util::huge::HugeArray;

/// One slot's table, and its counts readable without the lock.
pub(super) struct SlotCell {
    /// Reached only through the slot's lock ([`SlotCells`]).
    table: UnsafeCell<SlotTable>,
    /// Mirrors of the table's counts, written by the lock holder.
    pub len: AtomicU32,
    pub volatile: AtomicU32,
}

// SAFETY: the table is only reached through a `TableGuard`, which exists
// while its slot's lock is held; the counts are atomics.
unsafe impl Sync for SlotCell {}

/// Every slot's lock and cell.
pub(super) struct SlotCells {
    locks: Box<[RawMutex]>,
    /// On huge pages: nearly every command reads a cell at random.
    cells: HugeArray<SlotCell>,
}

impl SlotCells {
    /// Empty tables, all unlocked.
    pub fn new() -> Self {
        SlotCells {
            locks: (0..SLOTS).map(|_| RawMutex::INIT).collect(),
            cells: HugeArray::new(SLOTS, |_| SlotCell {
                table: UnsafeCell::new(SlotTable::default()),
                len: AtomicU32::new(0),
                volatile: AtomicU32::new(0),
            }),
        }
    }

    /// The cell of `slot`, for its counts.
    pub fn cell(&self, slot: u16) -> &SlotCell {
        &self.cells[usize::from(slot)]
    }

    /// Every cell, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &SlotCell> {
        self.cells.iter()
    }

    /// Locks `slot`, waiting for its holder; its table gets `setup()` as it
    /// is once the wait is over.
    pub fn lock(&self, slot: u16, setup: impl FnOnce() -> Setup) -> TableGuard<'_> {
        self.locks[usize::from(slot)].lock();
        self.guard(slot, setup())
    }

    /// Locks `slot` if nobody holds it; its table gets `setup()`.
    pub fn try_lock(&self, slot: u16, setup: impl FnOnce() -> Setup) -> Option<TableGuard<'_>> {
        self.locks[usize::from(slot)]
            .try_lock()
            .then(|| self.guard(slot, setup()))
    }

    /// Locks `slot`, waiting for its holder at most `wait`; its table gets
    /// `setup()` as it is once the wait is over.
    pub fn try_lock_for(
        &self,
        slot: u16,
        wait: Duration,
        setup: impl FnOnce() -> Setup,
    ) -> Option<TableGuard<'_>> {
        self.locks[usize::from(slot)]
            .try_lock_for(wait)
            .then(|| self.guard(slot, setup()))
    }

    /// Starts loading `slot`'s cell into the cache, for a command about to
    /// read its table.
    #[inline]
    pub fn prefetch(&self, slot: u16) {
        crate::util::prefetch::prefetch(&self.cells[usize::from(slot)]);
    }

    /// The guard of `slot`, whose lock the caller just took.
    fn guard(&self, slot: u16, setup: Setup) -> TableGuard<'_> {
        TableGuard {
            lock: &self.locks[usize::from(slot)],
            table: &self.cells[usize::from(slot)].table,
            setup: Cell::new(Some(setup)),
            _not_send: PhantomData,
        }
    }
}

/// The settings a locked table works with, from the keyspace's state when
/// it was locked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Setup {
    /// Keep the names of expired keys.
    pub record_expired: bool,
    /// How accesses are stamped.
    pub tracking: Tracking,
    /// What a lookup does with a key past its expiry.
    pub expiring: Expiring,
}

/// Exclusive access to one slot's table while its lock is held; dropping it
/// unlocks.
pub(super) struct TableGuard<'a> {
    lock: &'a RawMutex,
    table: &'a UnsafeCell<SlotTable>,
    /// Written into the table on its first read.
    setup: Cell<Option<Setup>>,
    /// Unlocked by the thread that locked it, as a `parking_lot` guard.
    _not_send: PhantomData<*mut ()>,
}

impl TableGuard<'_> {
    /// Writes the pending [`Setup`] into the table, once.
    #[inline]
    fn settle(&self) {
        if let Some(setup) = self.setup.take() {
            // SAFETY: the slot's lock is held, and while the setup was
            // pending no reference to the table had been handed out.
            let table = unsafe { &mut *self.table.get() };
            table.record_expired = setup.record_expired;
            table.tracking = setup.tracking;
            table.expiring = setup.expiring;
        }
    }
}

impl Deref for TableGuard<'_> {
    type Target = SlotTable;

    fn deref(&self) -> &SlotTable {
        self.settle();
        // SAFETY: the slot's lock is held for as long as this guard lives,
        // so nothing else reaches the table.
        unsafe { &*self.table.get() }
    }
}

impl DerefMut for TableGuard<'_> {
    fn deref_mut(&mut self) -> &mut SlotTable {
        self.settle();
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow.
        unsafe { &mut *self.table.get() }
    }
}

impl Drop for TableGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard was made right after the lock was taken, and
        // unlocks it once.
        unsafe { self.lock.unlock() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            record_expired: false,
            tracking: Tracking::default(),
            expiring: Expiring::Delete,
        }
    }

    #[test]
    fn the_setup_is_in_the_table_from_its_first_read() {
        let cells = SlotCells::new();
        let hide = Setup {
            record_expired: true,
            expiring: Expiring::Hide,
            ..setup()
        };
        let guard = cells.lock(5, || hide);
        assert!(guard.record_expired);
        assert_eq!(guard.expiring, Expiring::Hide);
        drop(guard);
        let mut guard = cells.lock(5, setup);
        guard.expiring = Expiring::Ignore;
        assert_eq!(
            guard.expiring,
            Expiring::Ignore,
            "a holder's own change stays"
        );
        assert!(!guard.record_expired);
    }

    #[test]
    fn a_locked_slot_is_refused_until_its_guard_drops() {
        let cells = SlotCells::new();
        let guard = cells.lock(7, setup);
        assert!(cells.try_lock(7, setup).is_none());
        assert!(cells
            .try_lock_for(7, Duration::from_millis(5), setup)
            .is_none());
        assert!(cells.try_lock(8, setup).is_some(), "other slots are free");
        drop(guard);
        assert!(cells.try_lock(7, setup).is_some());
    }

    #[test]
    fn a_waiter_gets_the_slot_once_it_is_released() {
        let cells = std::sync::Arc::new(SlotCells::new());
        let guard = cells.lock(3, setup);
        let waiter = {
            let cells = cells.clone();
            std::thread::spawn(move || cells.lock(3, setup).len())
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished());
        drop(guard);
        assert_eq!(waiter.join().unwrap(), 0);
    }
}
