//! The keyspace: every key, grouped by hash slot.
//!
//! ```text
//!   command ──key──▶ key_slot() ──▶ slots[slot]: Mutex<SlotTable> ──▶ Entry
//!                                     │ len, volatile (atomics, read lock-free)
//!   cron ──▶ ActiveExpire ──sweeps──▶ slots with volatile > 0
//!   cron ──▶ ActiveDefrag ──moves tables to fresh memory while fragmented
//! ```
//!
//! Each of the 16384 slots is its own table behind its own lock, so connections on
//! every runtime thread work in parallel, one slot's keys can be counted and listed
//! without scanning the rest (cluster commands, migration), and no table ever
//! rehashes more than one slot's keys at once.
//!
//! A slot can be hidden while a master imports it (docs/CLUSTER.md, M9): its
//! keys are stored, but not counted, listed, expired or evicted until it is
//! shown at the handoff.
//!
//! The locks are `parking_lot` mutexes rather than async ones: every critical
//! section is a few hash-table operations and never awaits, so blocking briefly is
//! cheaper than a task switch. A command holds the slots of all its keys in a
//! [`Locked`] set, taken in ascending slot order so two commands can never
//! deadlock. Time is always passed in (`now`), never read here.
//! Uses the clock, memory figures and the protocol's number parsing.

pub mod access;
mod cell;
mod defrag;
mod dump;
mod expire;
mod index;
mod sketch;
mod slot;
mod table;
pub mod types;
mod value;
mod walk;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use smallvec::SmallVec;

pub use defrag::ActiveDefrag;
pub use dump::{dump_value, put_bytes, restore_value, seal, take_bytes, unseal, DumpError};
pub use expire::{ActiveExpire, ExpireCycle};
pub use sketch::{FrequencySketch, MAX_FREQUENCY};
pub use slot::{hash_tag, key_slot, SLOTS};
pub use table::{key_hash, Expiring, Expiry, KeyHasher, SlotTable, Sweep};
pub use value::{Blob, Entry, Key, Value};

use crate::clock::Millis;
use crate::util::slot_bits::SlotBits;
use access::Tracking;
use cell::{Setup, SlotCell, SlotCells, TableGuard};
use types::{FencingTokens, TokenOutOfRange};

/// Bytes of bookkeeping per entry beyond the heap data of key and value: the
/// table slot (key and value), access stamp, index position and control byte
/// (at the index's average load).
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<(Key, Value)>() + 4 + 4;

/// All keys of the server.
pub struct Keyspace {
    slots: SlotCells,
    expired_keys: AtomicU64,
    /// Keep the names of expired keys (keyspace notifications want them).
    record_expired: AtomicBool,
    /// Set while the write feed keeps records: expired keys are then named
    /// too, so their deletion reaches the feed.
    feed_active: std::sync::OnceLock<Arc<AtomicBool>>,
    /// Lookups hide expired keys instead of removing them (see [`Expiring`]).
    hide_expired: AtomicBool,
    /// How key accesses are stamped ([`Tracking::pack`]).
    tracking: AtomicU64,
    /// Request frequencies for the TinyLFU policy, while it is in force.
    sketch: RwLock<Option<FrequencySketch>>,
    /// Fencing tokens of native locks: here, not in the tables, so no delete,
    /// expiry or eviction of a lock can make a token repeat.
    tokens: FencingTokens,
    /// Hidden slots ([`Keyspace::hide_slot`]).
    hidden: SlotBits,
    /// Slots holding keys with a TTL, so that the active expiry walk reads
    /// a few words rather than every slot's count.
    volatile_slots: SlotBits,
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
    table: TableGuard<'a>,
    cell: &'a SlotCell,
    slot: u16,
    keyspace: &'a Keyspace,
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
        // Only the lock holder writes the count, so the load is exact.
        let volatile = self.table.volatile() as u32;
        let before = self.cell.volatile.load(Ordering::Relaxed);
        if before != volatile {
            self.cell.volatile.store(volatile, Ordering::Relaxed);
            let slots = &self.keyspace.volatile_slots;
            match (before, volatile) {
                (0, _) => slots.insert(self.slot),
                (_, 0) => slots.remove(self.slot),
                _ => false,
            };
        }
        if self.table.expired > 0 {
            self.keyspace
                .expired_keys
                .fetch_add(std::mem::take(&mut self.table.expired), Ordering::Relaxed);
        }
        if self.table.tracking.sketch {
            let sketch = self.keyspace.sketch.read();
            table::drain_reads(|hash| {
                if let Some(sketch) = &*sketch {
                    sketch.increment(hash);
                }
            });
        }
        // Expired names are committed by whoever holds the slot (`Locked`, the
        // active expiry walk); one left here would never be announced.
        debug_assert!(
            std::thread::panicking() || self.table.expired_names.is_empty(),
            "expired keys dropped uncommitted"
        );
    }
}

/// The keys a command names, each with its slot: hashed once per command, then
/// used to route it, lock its slots and find its tables.
#[derive(Debug, Default)]
pub struct KeySlots<'k>(SmallVec<[(&'k [u8], u16); 4]>);

impl<'k> KeySlots<'k> {
    /// `keys` with their slots.
    #[inline]
    pub fn new(keys: impl IntoIterator<Item = &'k [u8]>) -> Self {
        Self::with(keys, key_slot)
    }

    /// `keys` with their slots as `slot_of` finds them (it may know some
    /// without hashing; it must agree with [`key_slot`]).
    #[inline]
    pub fn with(
        keys: impl IntoIterator<Item = &'k [u8]>,
        mut slot_of: impl FnMut(&[u8]) -> u16,
    ) -> Self {
        let keys = keys.into_iter();
        let mut slotted = SmallVec::new();
        // Filtered iterators know only an upper bound: reserve it, so that many
        // keys cost one allocation rather than a few regrowths.
        let (low, high) = keys.size_hint();
        let wanted = high.unwrap_or(low);
        if wanted > slotted.inline_size() {
            slotted.reserve_exact(wanted);
        }
        // A plain loop: `extend`'s generic code is several times the size.
        for key in keys {
            slotted.push((key, slot_of(key)));
        }
        KeySlots(slotted)
    }

    /// The slots, in the keys' order (repeats included).
    pub fn slots(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().map(|&(_, slot)| slot)
    }

    /// The keys, in order (repeats included).
    pub fn keys(&self) -> impl Iterator<Item = &'k [u8]> + '_ {
        self.0.iter().map(|&(key, _)| key)
    }

    /// The first key and its slot.
    pub fn first(&self) -> Option<(&'k [u8], u16)> {
        self.0.first().copied()
    }
}

/// The slots a command holds while it runs.
///
/// The dispatcher locks the slots of every key a command names before running it,
/// all at once and in ascending order, so two commands can never deadlock and each
/// command (or a whole `MULTI`/`EXEC`) is atomic. Commands reach their tables
/// through [`Locked::table`]. Commands that walk the whole keyspace visit slots
/// with [`Locked::with_slot`], which uses a held slot or locks one briefly.
pub struct Locked<'a> {
    keyspace: &'a Keyspace,
    /// Sorted by slot.
    guards: SmallVec<[(u16, SlotGuard<'a>); 4]>,
    /// Slots of the first keys locked, by the address and length of the argument
    /// slice, so a command's `table(key)` with that same slice skips hashing again.
    known: SmallVec<[(usize, usize, u16); 12]>,
    /// Keys that expired in slots locked only briefly ([`Locked::with_slot`]).
    expired: Vec<Vec<u8>>,
    /// Lookups see expired keys as live ([`Locked::upstream`]).
    upstream: bool,
}

impl<'a> Locked<'a> {
    /// Holds nothing yet.
    pub fn new(keyspace: &'a Keyspace) -> Self {
        Locked {
            keyspace,
            guards: SmallVec::new(),
            known: SmallVec::new(),
            expired: Vec::new(),
            upstream: false,
        }
    }

    /// Holds nothing yet, for applying a master's stream on a replica: keys
    /// past their expiry stay live until the stream removes them
    /// ([`Expiring::Ignore`]).
    pub fn upstream(keyspace: &'a Keyspace) -> Self {
        Locked {
            upstream: true,
            ..Locked::new(keyspace)
        }
    }

    /// Locks one slot, its table set up for this holder.
    fn lock(&self, slot: u16) -> SlotGuard<'a> {
        let mut guard = self.keyspace.lock(slot);
        if self.upstream {
            guard.table.expiring = Expiring::Ignore;
        }
        guard
    }

    /// [`Locked::lock`], or with `give_up`, [`Keyspace::lock_unless`].
    #[inline]
    fn lock_unless(&self, slot: u16, give_up: Option<&dyn Fn() -> bool>) -> Option<SlotGuard<'a>> {
        let mut guard = match self.keyspace.try_lock(slot) {
            Some(guard) => guard,
            None => self.wait_for(slot, give_up)?,
        };
        if self.upstream {
            guard.table.expiring = Expiring::Ignore;
        }
        Some(guard)
    }

    /// The slow path of [`Locked::lock_unless`]: another holder has `slot`.
    #[cold]
    fn wait_for(&self, slot: u16, give_up: Option<&dyn Fn() -> bool>) -> Option<SlotGuard<'a>> {
        match give_up {
            None => Some(self.keyspace.lock(slot)),
            Some(give_up) => self.keyspace.lock_unless(slot, give_up),
        }
    }

    /// Locks `slots` (any order, repeats allowed) besides those already held.
    /// Only valid while holding nothing, or for slots above every held one, so
    /// that locks are always taken in ascending order.
    pub fn acquire(&mut self, slots: impl IntoIterator<Item = u16>) {
        self.acquire_unless(slots, None);
    }

    /// [`Locked::acquire`]; with `give_up`, a slot another holder keeps is
    /// waited for only until `give_up` says so: then nothing is held and
    /// false is returned. Only valid while holding nothing.
    pub fn acquire_unless(
        &mut self,
        slots: impl IntoIterator<Item = u16>,
        give_up: Option<&dyn Fn() -> bool>,
    ) -> bool {
        let slots = slots.into_iter();
        let (low, high) = slots.size_hint();
        let mut wanted: SmallVec<[u16; 8]> = SmallVec::with_capacity(high.unwrap_or(low));
        wanted.extend(slots.filter(|&s| !self.holds(s)));
        wanted.sort_unstable();
        wanted.dedup();
        debug_assert!(
            wanted
                .first()
                .is_none_or(|&w| self.guards.last().is_none_or(|(h, _)| *h < w)),
            "slots must be locked in ascending order"
        );
        for slot in wanted {
            match self.lock_unless(slot, give_up) {
                Some(guard) => self.guards.push((slot, guard)),
                None => {
                    self.guards.clear();
                    self.known.clear();
                    return false;
                }
            }
        }
        true
    }

    /// Locks the slots of all `keys`.
    pub fn acquire_keys<'k>(&mut self, keys: impl IntoIterator<Item = &'k [u8]>) {
        self.acquire_slotted(&KeySlots::new(keys));
    }

    /// Locks the slot of a single key.
    pub fn acquire_key(&mut self, key: &[u8]) {
        self.acquire_slotted(&KeySlots::new([key]));
    }

    /// Locks the slots of `keys`, whose slots are known already, and remembers
    /// them so that [`Locked::table`] with the same key slices skips hashing.
    #[inline]
    pub fn acquire_slotted(&mut self, keys: &KeySlots<'_>) {
        self.acquire_slotted_unless(keys, None);
    }

    /// [`Locked::acquire_slotted`]; with `give_up`, as
    /// [`Locked::acquire_unless`]: false (holding nothing) if it gave up.
    #[inline]
    pub fn acquire_slotted_unless(
        &mut self,
        keys: &KeySlots<'_>,
        give_up: Option<&dyn Fn() -> bool>,
    ) -> bool {
        match keys.0.as_slice() {
            [] => true,
            // Most commands name one key, and hold nothing yet.
            &[(key, slot)] if self.guards.is_empty() && self.known.is_empty() => {
                let Some(guard) = self.lock_unless(slot, give_up) else {
                    return false;
                };
                self.known.push((key.as_ptr() as usize, key.len(), slot));
                self.guards.push((slot, guard));
                true
            }
            many => {
                for &(key, slot) in many.iter().take(self.known.inline_size()) {
                    if self.known.len() < self.known.inline_size() {
                        self.known.push((key.as_ptr() as usize, key.len(), slot));
                    }
                }
                self.acquire_unless(keys.slots(), give_up)
            }
        }
    }

    /// Remembers the slots of `keys` (all held) so that [`Locked::table`]
    /// finds them without hashing, until [`Locked::forget_keys`] with the
    /// returned mark: for a command run inside a unit whose request lives in
    /// a buffer reused later (a script's `redis.call`).
    pub fn remember_keys(&mut self, keys: &KeySlots<'_>) -> usize {
        let mark = self.known.len();
        for &(key, slot) in &keys.0 {
            debug_assert!(self.holds(slot));
            self.known.push((key.as_ptr() as usize, key.len(), slot));
        }
        mark
    }

    /// Forgets the keys remembered since `mark` ([`Locked::remember_keys`]).
    pub fn forget_keys(&mut self, mark: usize) {
        self.known.truncate(mark);
    }

    fn slot_of(&self, key: &[u8]) -> u16 {
        self.known_slot(key).unwrap_or_else(|| key_slot(key))
    }

    /// The slot of `key` if it is one of the slices the slots were locked
    /// for (the same slice, not just the same bytes), without hashing.
    pub fn known_slot(&self, key: &[u8]) -> Option<u16> {
        let id = (key.as_ptr() as usize, key.len());
        self.known.iter().find(|k| (k.0, k.1) == id).map(|k| k.2)
    }

    /// Takes `slot` if it is free right now, in any order: never waits, so it
    /// cannot deadlock. True if the slot is held afterwards.
    pub fn try_acquire(&mut self, slot: u16) -> bool {
        match self.index(slot) {
            Ok(_) => true,
            Err(at) => match self.keyspace.try_lock(slot) {
                Some(mut guard) => {
                    if self.upstream {
                        guard.table.expiring = Expiring::Ignore;
                    }
                    self.guards.insert(at, (slot, guard));
                    true
                }
                None => false,
            },
        }
    }

    /// True if any slot is held.
    pub fn holds_any(&self) -> bool {
        !self.guards.is_empty()
    }

    /// The slots held, ascending.
    pub fn held(&self) -> impl Iterator<Item = u16> + '_ {
        self.guards.iter().map(|(slot, _)| *slot)
    }

    /// True if `slot` is held.
    pub fn holds(&self, slot: u16) -> bool {
        self.index(slot).is_ok()
    }

    fn index(&self, slot: u16) -> Result<usize, usize> {
        self.guards.binary_search_by_key(&slot, |(s, _)| *s)
    }

    /// The table of the slot `key` hashes to. The slot must be held: the
    /// dispatcher locks every key named by the command's key specification.
    pub fn table(&mut self, key: &[u8]) -> &mut SlotGuard<'a> {
        let slot = self.slot_of(key);
        let index = match self.index(slot) {
            Ok(index) => index,
            Err(at) => {
                // A key the command table does not declare: a bug. Lock it anyway
                // rather than fail the command; tests catch the case.
                debug_assert!(false, "slot {slot} of an undeclared key");
                self.guards.insert(at, (slot, self.lock(slot)));
                at
            }
        };
        &mut self.guards[index].1
    }

    /// The values at `keys` (`None` where missing), borrowed all at once, for
    /// commands that read several collections side by side (set algebra)
    /// instead of copying them. Each key is first looked up as `get` does, so
    /// expired keys are gone and the accesses are recorded. The slots must be
    /// held.
    pub fn values(&mut self, keys: &[&[u8]], now: Millis) -> Vec<Option<&Value>> {
        for &key in keys {
            self.table(key).get(key, now);
        }
        let this = &*self;
        keys.iter()
            .map(|&key| {
                let index = this.index(this.slot_of(key)).ok()?;
                this.guards[index].1.stored(key)
            })
            .collect()
    }

    /// Runs `f` on `slot`'s table: the held one, or locked just for the call
    /// (which must only happen while holding nothing, see [`Locked::acquire`]).
    pub fn with_slot<R>(&mut self, slot: u16, f: impl FnOnce(&mut SlotGuard<'a>) -> R) -> R {
        match self.index(slot) {
            Ok(index) => f(&mut self.guards[index].1),
            Err(_) => {
                let mut guard = self.lock(slot);
                let result = f(&mut guard);
                self.expired.append(&mut guard.expired_names);
                result
            }
        }
    }

    /// Hands `commit` every key that expired under these locks since the last
    /// call (lookups expire keys as they find them), for the write path to
    /// commit while the slots are still held.
    #[inline]
    pub fn take_expired(&mut self, mut commit: impl FnMut(&[u8])) {
        if !self.expired.is_empty() {
            self.expired.drain(..).for_each(|key| commit(&key));
        }
        for (_, guard) in &mut self.guards {
            if !guard.expired_names.is_empty() {
                guard.expired_names.drain(..).for_each(|key| commit(&key));
            }
        }
    }

    /// The keyspace these locks belong to.
    pub fn keyspace(&self) -> &'a Keyspace {
        self.keyspace
    }

    /// Releases every held slot (after the unit of work committed).
    pub fn release(&mut self) {
        debug_assert!(self.expired.is_empty(), "expired keys dropped uncommitted");
        self.guards.clear();
        self.known.clear();
    }
}

impl Keyspace {
    /// An empty keyspace.
    pub fn new() -> Self {
        Keyspace {
            slots: SlotCells::new(),
            expired_keys: AtomicU64::new(0),
            record_expired: AtomicBool::new(false),
            feed_active: std::sync::OnceLock::new(),
            hide_expired: AtomicBool::new(false),
            tracking: AtomicU64::new(Tracking::default().pack()),
            sketch: RwLock::new(None),
            tokens: FencingTokens::default(),
            hidden: SlotBits::default(),
            volatile_slots: SlotBits::default(),
        }
    }

    /// The fencing token for a lock granted at `now`, reserving a new block
    /// first if needed (see [`FencingTokens::next_reserved`]).
    pub fn next_token_reserved(&self, now: Millis, reserve: impl FnOnce(u64)) -> u64 {
        self.tokens.next_reserved(now, reserve)
    }

    /// The upper bound of the fencing tokens reserved last (0: none).
    pub fn reserved_tokens(&self) -> u64 {
        self.tokens.reserved()
    }

    /// Forgets the fencing tokens reserved (see [`FencingTokens::forget_reserved`]).
    pub fn forget_reserved_tokens(&self) {
        self.tokens.forget_reserved()
    }

    /// Accounts for a token granted elsewhere (see [`FencingTokens::observe`]).
    pub fn observe_token(&self, token: u64) -> Result<(), TokenOutOfRange> {
        self.tokens.observe(token)
    }

    /// Keeps the names of expired keys whenever `active` is set (the write
    /// feed's activity, see `Feed::activity`).
    pub fn name_expired_while(&self, active: Arc<AtomicBool>) {
        let _ = self.feed_active.set(active);
    }

    /// Starts or stops keeping the names of expired keys.
    pub fn record_expired(&self, on: bool) {
        if self.record_expired.load(Ordering::Relaxed) != on {
            self.record_expired.store(on, Ordering::Relaxed);
        }
    }

    /// Changes how key accesses are recorded (the eviction policy's needs),
    /// starting or dropping the frequency sketch.
    pub fn set_tracking(&self, tracking: Tracking) {
        let mut sketch = self.sketch.write();
        match (tracking.sketch, sketch.is_some()) {
            (true, false) => *sketch = Some(FrequencySketch::new(self.len())),
            (false, true) => *sketch = None,
            _ => {}
        }
        self.tracking.store(tracking.pack(), Ordering::Relaxed);
    }

    /// Resizes the frequency sketch, keeping its counts, when the number of
    /// keys has moved far from what it was sized for.
    pub fn fit_sketch(&self) {
        if self.sketch.read().is_none() {
            return;
        }
        let len = self.len();
        let misfit = |s: &Option<FrequencySketch>| {
            s.as_ref()
                .is_some_and(|s| len > 2 * s.expected() || len.max(64) * 4 < s.expected())
        };
        if misfit(&self.sketch.read()) {
            let mut sketch = self.sketch.write();
            if let Some(old) = sketch.as_ref().filter(|_| misfit(&sketch)) {
                *sketch = Some(old.resized(len));
            }
        }
    }

    /// The sketch's estimate of how often the key with `hash` was requested
    /// recently (0 without a sketch).
    pub fn estimate(&self, hash: u64) -> u8 {
        self.sketch
            .read()
            .as_ref()
            .map_or(0, |sketch| sketch.estimate(hash))
    }

    /// How key accesses are stamped.
    pub fn tracking(&self) -> Tracking {
        Tracking::unpack(self.tracking.load(Ordering::Relaxed))
    }

    /// Locks one slot.
    pub fn lock(&self, slot: u16) -> SlotGuard<'_> {
        let cell = self.slots.cell(slot);
        let table = self.slots.lock(slot, || self.setup());
        SlotGuard {
            table,
            cell,
            slot,
            keyspace: self,
        }
    }

    /// Locks one slot; while another holder keeps it, asks `give_up` every
    /// few milliseconds, and gives up (`None`) when it says so. For waits
    /// that must not outlast a reason to stop (a script gone busy holds the
    /// slot).
    pub fn lock_unless(&self, slot: u16, give_up: &dyn Fn() -> bool) -> Option<SlotGuard<'_>> {
        const SLICE: std::time::Duration = std::time::Duration::from_millis(5);
        let cell = self.slots.cell(slot);
        // Free (the usual case): no clock read for a timed wait.
        let table = match self.slots.try_lock(slot, || self.setup()) {
            Some(table) => table,
            None => loop {
                if let Some(table) = self.slots.try_lock_for(slot, SLICE, || self.setup()) {
                    break table;
                }
                if give_up() {
                    return None;
                }
            },
        };
        Some(SlotGuard {
            table,
            cell,
            slot,
            keyspace: self,
        })
    }

    /// Starts loading `slot`'s table into the cache, for a command about
    /// to read it.
    #[inline]
    pub fn prefetch(&self, slot: u16) {
        self.slots.prefetch(slot);
    }

    /// Locks one slot if nobody holds it.
    pub fn try_lock(&self, slot: u16) -> Option<SlotGuard<'_>> {
        let cell = self.slots.cell(slot);
        let table = self.slots.try_lock(slot, || self.setup())?;
        Some(SlotGuard {
            table,
            cell,
            slot,
            keyspace: self,
        })
    }

    /// The settings a table locked now works with.
    fn setup(&self) -> Setup {
        Setup {
            record_expired: self.record_expired.load(Ordering::Relaxed)
                || self
                    .feed_active
                    .get()
                    .is_some_and(|active| active.load(Ordering::Relaxed)),
            tracking: self.tracking(),
            expiring: match self.hide_expired.load(Ordering::Relaxed) {
                true => Expiring::Hide,
                false => Expiring::Delete,
            },
        }
    }

    /// Makes lookups hide keys past their expiry instead of removing them (a
    /// read-only replica), or remove them again.
    pub fn hide_expired(&self, on: bool) {
        self.hide_expired.store(on, Ordering::Relaxed);
    }

    /// Locks the slot of `key`.
    pub fn lock_key(&self, key: &[u8]) -> SlotGuard<'_> {
        self.lock(key_slot(key))
    }

    /// Hides `slot` (a master importing it, docs/CLUSTER.md M9): its keys
    /// stay stored and reachable through its table, but are not counted
    /// ([`Keyspace::len`], [`Keyspace::slot_len`]), listed (`KEYS`, `SCAN`,
    /// `RANDOMKEY`), expired by the active cycle or evicted until
    /// [`Keyspace::show_slot`]. Readers see the change without taking the
    /// slot's lock, so hide a slot before its first key arrives. Hiding a
    /// hidden slot does nothing.
    pub fn hide_slot(&self, slot: u16) {
        self.hidden.insert(slot);
    }

    /// Shows a hidden slot again (the handoff): its keys count, list, expire
    /// and can be evicted like any other. Showing a visible slot does nothing.
    pub fn show_slot(&self, slot: u16) {
        self.hidden.remove(slot);
    }

    /// True while `slot` is hidden ([`Keyspace::hide_slot`]).
    #[inline]
    pub fn is_hidden(&self, slot: u16) -> bool {
        self.hidden.contains(slot)
    }

    /// True if any slot is hidden.
    #[inline]
    pub fn any_hidden(&self) -> bool {
        !self.hidden.is_empty()
    }

    /// Number of keys in `slot` (expired ones not yet removed included),
    /// lock-free; 0 while the slot is hidden.
    pub fn slot_len(&self, slot: u16) -> usize {
        match self.is_hidden(slot) {
            true => 0,
            false => self.stored_len(slot),
        }
    }

    /// Number of keys stored in `slot`, hidden or not, lock-free.
    fn stored_len(&self, slot: u16) -> usize {
        self.slots.cell(slot).len.load(Ordering::Relaxed) as usize
    }

    /// Number of keys with a TTL in `slot`, lock-free; 0 while the slot is
    /// hidden, so that neither active expiry nor eviction visits it.
    pub fn slot_volatile(&self, slot: u16) -> usize {
        match self.is_hidden(slot) {
            true => 0,
            false => self.slots.cell(slot).volatile.load(Ordering::Relaxed) as usize,
        }
    }

    /// The slots holding keys with a TTL, hidden ones aside, in order from
    /// `start` round to just before it.
    pub fn volatile_slots_from(&self, start: u16) -> impl Iterator<Item = u16> + '_ {
        self.volatile_slots
            .iter_from(start)
            .filter(|&slot| !self.is_hidden(slot))
    }

    /// Number of keys, like `DBSIZE`: hidden slots' keys are not counted.
    pub fn len(&self) -> usize {
        self.visible_sum(|cell| &cell.len)
    }

    /// True when there are no keys (hidden slots' keys aside).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of keys with a TTL: hidden slots' keys are not counted.
    pub fn volatile_len(&self) -> usize {
        self.visible_sum(|cell| &cell.volatile)
    }

    /// The sum of one of the slots' counts over the slots not hidden.
    fn visible_sum(&self, count: impl Fn(&SlotCell) -> &AtomicU32) -> usize {
        let load = |cell: &SlotCell| count(cell).load(Ordering::Relaxed) as usize;
        if !self.any_hidden() {
            return self.slots.iter().map(load).sum();
        }
        (0..SLOTS as u16)
            .filter(|&slot| !self.is_hidden(slot))
            .map(|slot| load(self.slots.cell(slot)))
            .sum()
    }

    /// Keys removed because they expired, since start.
    pub fn expired_keys(&self) -> u64 {
        self.expired_keys.load(Ordering::Relaxed)
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
            cursor = Locked::new(ks).scan(cursor, count, 0, |k, _| {
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
    fn locked_sets_hold_each_slot_once_and_release_on_drop() {
        let ks = Keyspace::new();
        let keys: [&[u8]; 4] = [b"{a}1", b"{a}2", b"b", b"c"];
        let mut locked = Locked::new(&ks);
        locked.acquire_keys(keys);
        for key in keys {
            locked
                .table(key)
                .insert(key, Value::Int(1), Expiry::Persist, 0);
        }
        // Held slots count their new keys before the locks are released.
        assert_eq!(locked.key_count(), 4);
        drop(locked);
        assert_eq!(ks.len(), 4);
        assert!((0..SLOTS as u16).all(|slot| ks.slots.try_lock(slot, || ks.setup()).is_some()));
    }

    #[test]
    fn a_transaction_holding_every_slot_can_still_walk_the_keyspace() {
        let ks = filled(100);
        let mut locked = Locked::new(&ks);
        locked.acquire(0..SLOTS as u16);
        let mut seen = 0;
        assert_eq!(locked.scan(0, 1_000, 0, |_, _| seen += 1), 0);
        assert_eq!(seen, 100);
        assert!(locked.random_key(0).is_some());
        assert_eq!(locked.flush(false), 100);
        assert_eq!(locked.key_count(), 0);
    }

    #[test]
    fn flush_removes_everything() {
        let ks = filled(1_000);
        assert_eq!(Locked::new(&ks).flush(true), 1_000);
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
            assert_eq!(
                Locked::new(&ks).random_key(100).as_deref(),
                Some(&b"new"[..])
            );
        }
        assert_eq!(ks.expired_keys(), 1);
    }

    fn put(ks: &Keyspace, key: &str, expiry: Expiry) {
        ks.lock_key(key.as_bytes())
            .insert(key.as_bytes(), Value::Int(1), expiry, 0);
    }

    /// A keyspace with `{h}0`..`{h}99` in one slot (half with a TTL at 100)
    /// and `a`, `b` (with a TTL at 100) and `c` elsewhere; and the slot of
    /// the `{h}` keys.
    fn with_hidable_slot() -> (Keyspace, u16) {
        let ks = Keyspace::new();
        for i in 0..100 {
            let expiry = if i % 2 == 0 {
                Expiry::At(100)
            } else {
                Expiry::Persist
            };
            put(&ks, &format!("{{h}}{i}"), expiry);
        }
        put(&ks, "a", Expiry::At(100));
        put(&ks, "b", Expiry::At(100));
        put(&ks, "c", Expiry::Persist);
        let slot = key_slot(b"h");
        assert!([b"a", b"b", b"c"].iter().all(|k| key_slot(*k) != slot));
        (ks, slot)
    }

    #[test]
    fn hidden_slots_are_not_counted_until_shown() {
        let (ks, slot) = with_hidable_slot();
        assert_eq!((ks.len(), ks.volatile_len()), (103, 52));
        assert!(!ks.any_hidden());
        ks.hide_slot(slot);
        assert!(ks.any_hidden() && ks.is_hidden(slot) && !ks.is_hidden(key_slot(b"a")));
        assert_eq!((ks.len(), ks.volatile_len()), (3, 2));
        assert_eq!((ks.slot_len(slot), ks.slot_volatile(slot)), (0, 0));
        assert!(!ks.is_empty());
        // Held or not, the slot counts nothing, in DBSIZE's count too.
        let mut locked = Locked::new(&ks);
        assert_eq!((locked.slot_len(slot), locked.key_count()), (0, 3));
        locked.acquire([slot]);
        assert_eq!((locked.slot_len(slot), locked.key_count()), (0, 3));
        // The keys are still there, and writable.
        locked
            .table(b"{h}new")
            .insert(b"{h}new", Value::Int(1), Expiry::Persist, 0);
        assert_eq!(locked.with_slot(slot, |t| t.len()), 101);
        drop(locked);
        assert_eq!(ks.len(), 3);
        ks.show_slot(slot);
        assert!(!ks.any_hidden() && !ks.is_hidden(slot));
        assert_eq!((ks.len(), ks.volatile_len()), (104, 52));
        assert_eq!((ks.slot_len(slot), ks.slot_volatile(slot)), (101, 50));
    }

    /// A key that hashes to `slot`.
    fn key_in(slot: u16) -> Vec<u8> {
        (0..)
            .map(|i| format!("k{i}").into_bytes())
            .find(|k| key_slot(k) == slot)
            .unwrap()
    }

    #[test]
    fn the_expiry_walk_meets_the_visible_slots_with_ttls() {
        let ks = Keyspace::new();
        for slot in [5u16, 60, 9000] {
            let key = key_in(slot);
            ks.lock(slot)
                .insert(&key, Value::Int(1), Expiry::At(100), 0);
        }
        let plain = key_in(70);
        ks.lock(70)
            .insert(&plain, Value::Int(1), Expiry::Persist, 0);
        let walk = |start: u16| ks.volatile_slots_from(start).collect::<Vec<_>>();
        assert_eq!(walk(30), [60, 9000, 5]);
        // A slot whose last TTL goes leaves the walk; a hidden one is passed over.
        ks.lock(60).set_expire(&key_in(60), None, 0);
        ks.hide_slot(9000);
        assert_eq!(walk(30), [5]);
        ks.show_slot(9000);
        ks.lock(5).remove(&key_in(5), 0);
        assert_eq!(walk(0), [9000]);
    }

    #[test]
    fn hiding_and_showing_twice_counts_once() {
        let ks = Keyspace::new();
        ks.hide_slot(7);
        ks.hide_slot(7);
        ks.hide_slot(SLOTS as u16 - 1);
        ks.show_slot(7);
        assert!(ks.any_hidden() && !ks.is_hidden(7) && ks.is_hidden(SLOTS as u16 - 1));
        ks.show_slot(7);
        ks.show_slot(SLOTS as u16 - 1);
        assert!(!ks.any_hidden() && !ks.is_hidden(SLOTS as u16 - 1));
    }

    #[test]
    fn walks_pass_over_hidden_slots() {
        let (ks, slot) = with_hidable_slot();
        ks.hide_slot(slot);
        let visible: HashSet<Vec<u8>> = [b"a", b"b", b"c"].map(|k| k.to_vec()).into();
        assert_eq!(scan_all(&ks, 10, || {}), visible);
        // SCAN MATCH on the slot's hash tag walks only that slot.
        let mut seen = 0;
        assert_eq!(
            Locked::new(&ks).scan_slot(slot, 0, 1_000, 0, |_, _| seen += 1),
            (0, 0)
        );
        assert_eq!(seen, 0);
        // A transaction holding every slot walks the same keys.
        let mut locked = Locked::new(&ks);
        locked.acquire(0..SLOTS as u16);
        assert_eq!(locked.scan(0, 1_000, 0, |_, _| seen += 1), 0);
        assert_eq!(seen, 3);
        drop(locked);
        for _ in 0..50 {
            let key = Locked::new(&ks).random_key(0).unwrap();
            assert_ne!(key_slot(&key), slot);
        }
        ks.show_slot(slot);
        assert_eq!(scan_all(&ks, 10, || {}).len(), 103);
    }

    #[test]
    fn random_key_finds_nothing_when_only_hidden_slots_hold_keys() {
        let ks = Keyspace::new();
        put(&ks, "{h}1", Expiry::Persist);
        ks.hide_slot(key_slot(b"h"));
        assert_eq!(Locked::new(&ks).random_key(0), None);
        ks.show_slot(key_slot(b"h"));
        assert_eq!(Locked::new(&ks).random_key(0), Some(b"{h}1".to_vec()));
    }

    #[test]
    fn flush_removes_hidden_slots_too() {
        let (ks, slot) = with_hidable_slot();
        ks.hide_slot(slot);
        assert_eq!(Locked::new(&ks).flush(false), 103);
        assert_eq!(ks.lock(slot).len(), 0);
        ks.show_slot(slot);
        assert!(ks.is_empty());
    }
}
