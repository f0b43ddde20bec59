//! Full sync without a fork (R5-R7): each slot's keys are written into the
//! replica's stream while that slot is locked, so the snapshot sits at one
//! point of the stream: every record on the slot before it is in it, every
//! record after it comes after it.
//!
//! A unit of work over several slots where some were snapshotted and some not
//! would be applied on the replica against slots it does not have yet (a
//! `RENAME` from one to the other). Such a unit first snapshots its slots not
//! yet sent, which it holds: their state before the unit, then the unit.
//!
//! Records (never counted in replication offsets, never sent by clients):
//! `RINGKV.SNAPSHOT <slot> <1: first of the slot | 0> [key expire-at payload]...`
//! (expire-at in Unix ms, 0 for none; payload as `DUMP`), and
//! `RINGKV.SNAPSHOT DONE` after the last slot.
//!
//! A slot migration's stream (docs/CLUSTER.md, M8) sends only its slots, each
//! key as `RESTORE key expire-at payload REPLACE ABSTTL`, which the target runs
//! as a command: through its write path, so its own replicas get the keys.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Millis;
use crate::keyspace::types::EncodingLimits;
use crate::keyspace::{dump_value, restore_value, Expiry, Keyspace, Locked, SlotTable, SLOTS};
use crate::protocol::{encode_command, OutputLimit};

/// The name of snapshot records.
pub const SNAPSHOT: &[u8] = b"RINGKV.SNAPSHOT";
/// Most bytes of keys in one snapshot record.
const CHUNK: usize = 64 * 1024;

/// Bytes waiting to be written to one replica: the stream and, during a full
/// sync, slot snapshots. Past the replica class's output limit the replica is
/// disconnected, as Redis does.
#[derive(Debug)]
pub struct Outbox {
    pending: Mutex<(Vec<u8>, Option<Instant>)>,
    /// Bytes ever queued: the stream's offset.
    pushed: AtomicU64,
    notify: Notify,
    limit: OutputLimit,
    kill: CancellationToken,
}

impl Outbox {
    /// An empty outbox whose overflow cancels `kill`.
    pub fn new(limit: OutputLimit, kill: CancellationToken) -> Arc<Self> {
        Arc::new(Outbox {
            pending: Mutex::default(),
            pushed: AtomicU64::new(0),
            notify: Notify::new(),
            limit,
            kill,
        })
    }

    /// Queues `bytes`.
    pub fn push(&self, bytes: &[u8]) {
        let mut pending = self.pending.lock();
        pending.0.extend_from_slice(bytes);
        self.pushed.fetch_add(bytes.len() as u64, Relaxed);
        let (data, over_soft_since) = &mut *pending;
        if self
            .limit
            .exceeded(data.len() as u64, over_soft_since, Instant::now())
        {
            tracing::warn!(
                pending = data.len(),
                "replica over its output buffer limits; disconnecting it"
            );
            self.kill.cancel();
        }
        drop(pending);
        self.notify.notify_one();
    }

    /// Queues the record `encode` makes of the stream's offset before it
    /// (nothing can slip in between).
    pub fn push_at_end(&self, encode: impl FnOnce(u64) -> Vec<u8>) {
        let mut pending = self.pending.lock();
        let bytes = encode(self.pushed.load(Relaxed));
        pending.0.extend_from_slice(&bytes);
        self.pushed.fetch_add(bytes.len() as u64, Relaxed);
        drop(pending);
        self.notify.notify_one();
    }

    /// Bytes ever queued: the offset of the stream's end.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Relaxed)
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.pending.lock().0.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes what is queued.
    pub fn take(&self) -> Vec<u8> {
        let mut pending = self.pending.lock();
        pending.1 = None;
        std::mem::take(&mut pending.0)
    }

    /// Waits until something is queued.
    pub async fn ready(&self) {
        loop {
            let notified = self.notify.notified();
            if !self.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// How a sync writes a slot's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `RINGKV.SNAPSHOT` records, then `RINGKV.SNAPSHOT DONE` (a replica).
    Snapshot,
    /// One `RESTORE` per key, nothing at the end (a migration target).
    Restore,
}

/// One full sync under way: which slots its replica (or migration target)
/// has been sent.
#[derive(Debug)]
pub struct Sync {
    sent: Box<[AtomicU64]>,
    out: Arc<Outbox>,
    format: Format,
    /// Keys sent so far.
    keys: AtomicU64,
}

impl Sync {
    /// True once `slot`'s snapshot is in the stream. Stable while the slot is
    /// held: it changes only under the slot's lock.
    fn is_sent(&self, slot: u16) -> bool {
        self.sent[usize::from(slot) / 64].load(Relaxed) & (1 << (slot % 64)) != 0
    }

    fn mark_sent(&self, slot: u16) {
        self.sent[usize::from(slot) / 64].fetch_or(1 << (slot % 64), Relaxed);
    }

    /// Sends `slot`'s snapshot unless it was sent; `table` is the slot's,
    /// held by the caller.
    fn send(&self, table: &mut SlotTable, slot: u16, now: Millis) -> usize {
        if self.is_sent(slot) {
            return 0;
        }
        let mut bytes = Vec::new();
        let keys = match self.format {
            Format::Snapshot => encode_slot(table, slot, now, &mut bytes),
            Format::Restore => encode_restores(table, now, &mut bytes),
        };
        self.keys.fetch_add(keys, Relaxed);
        self.out.push(&bytes);
        self.mark_sent(slot);
        bytes.len()
    }

    /// Keys sent so far.
    pub fn keys_sent(&self) -> u64 {
        self.keys.load(Relaxed)
    }

    /// Sends the snapshots of the slots from `*next` on, until about `budget`
    /// bytes went; then, after the last slot, the end record. True when done.
    pub fn step(&self, keyspace: &Keyspace, next: &mut u32, budget: usize, now: Millis) -> bool {
        let mut sent = 0;
        while *next < SLOTS as u32 && sent < budget {
            let slot = *next as u16;
            if self.is_sent(slot) {
                *next += 1;
                continue;
            }
            let mut locks = Locked::new(keyspace);
            locks.acquire([slot]);
            sent += locks.with_slot(slot, |table| self.send(table, slot, now));
            *next += 1;
        }
        if *next < SLOTS as u32 {
            return false;
        }
        if self.format == Format::Snapshot {
            let mut done = Vec::new();
            encode_command(&mut done, &[SNAPSHOT, b"DONE"]);
            self.out.push(&done);
        }
        true
    }
}

/// The full syncs under way on this node.
#[derive(Debug, Default)]
pub struct Syncs {
    count: AtomicUsize,
    list: RwLock<Vec<Arc<Sync>>>,
}

impl Syncs {
    /// Starts a full sync whose stream goes to `out`.
    pub fn start(&self, out: Arc<Outbox>) -> Arc<Sync> {
        let sync = Sync {
            sent: (0..SLOTS / 64).map(|_| AtomicU64::new(0)).collect(),
            out,
            format: Format::Snapshot,
            keys: AtomicU64::new(0),
        };
        self.add(sync)
    }

    /// Starts sending `slots` (and no other) to a migration target, whose
    /// stream goes to `out` (see the module docs).
    pub fn start_slots(&self, out: Arc<Outbox>, slots: &[u16]) -> Arc<Sync> {
        let sync = Sync {
            sent: (0..SLOTS / 64).map(|_| AtomicU64::new(u64::MAX)).collect(),
            out,
            format: Format::Restore,
            keys: AtomicU64::new(0),
        };
        for &slot in slots {
            sync.sent[usize::from(slot) / 64].fetch_and(!(1 << (slot % 64)), Relaxed);
        }
        self.add(sync)
    }

    fn add(&self, sync: Sync) -> Arc<Sync> {
        let sync = Arc::new(sync);
        let mut list = self.list.write();
        list.push(sync.clone());
        self.count.store(list.len(), Relaxed);
        sync
    }

    /// Ends a full sync (done, or its replica left).
    pub fn end(&self, sync: &Arc<Sync>) {
        let mut list = self.list.write();
        list.retain(|s| !Arc::ptr_eq(s, sync));
        self.count.store(list.len(), Relaxed);
    }

    /// True while a full sync is under way.
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Relaxed) != 0
    }

    /// Called by a unit of work over the slots `slots`, all held by `locks`,
    /// before it changes anything: for each full sync that has sent some of
    /// them and not others, sends the others first (see the module docs).
    #[inline]
    pub fn before_unit(&self, locks: &mut Locked<'_>, slots: &[u16], now: Millis) {
        // One slot is never split; every slot held is a unit without keys
        // (`FLUSHALL` in a transaction), which reads no slot to write another.
        if !self.active() || slots.len() < 2 || slots.len() == SLOTS {
            return;
        }
        self.before_unit_slow(locks, slots, now);
    }

    #[cold]
    fn before_unit_slow(&self, locks: &mut Locked<'_>, slots: &[u16], now: Millis) {
        for sync in self.list.read().iter() {
            let sent = slots.iter().filter(|&&s| sync.is_sent(s)).count();
            if sent == 0 || sent == slots.len() {
                continue;
            }
            for &slot in slots {
                locks.with_slot(slot, |table| sync.send(table, slot, now));
            }
        }
    }
}

/// Encodes `table`'s live keys as the snapshot records of `slot`; returns
/// how many.
fn encode_slot(table: &mut SlotTable, slot: u16, now: Millis, out: &mut Vec<u8>) -> u64 {
    let mut count = 0;
    let mut slot_name = itoa::Buffer::new();
    let slot_name = slot_name.format(slot).as_bytes().to_vec();
    let mut chunk: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut size = 0;
    let mut first = true;
    let mut flush = |chunk: &mut Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>, first: &mut bool| {
        let mut args: Vec<&[u8]> = vec![SNAPSHOT, &slot_name, if *first { b"1" } else { b"0" }];
        for (key, at, payload) in chunk.iter() {
            args.extend([key.as_slice(), at.as_slice(), payload.as_slice()]);
        }
        encode_command(out, &args);
        chunk.clear();
        *first = false;
    };
    for (key, at, payload) in live_entries(table, now) {
        count += 1;
        size += key.len() + payload.len();
        chunk.push((key.to_vec(), at, payload));
        if size >= CHUNK {
            flush(&mut chunk, &mut first);
            size = 0;
        }
    }
    if first || !chunk.is_empty() {
        flush(&mut chunk, &mut first);
    }
    count
}

/// Encodes `table`'s live keys as `RESTORE key expire-at payload REPLACE
/// ABSTTL` commands; returns how many.
fn encode_restores(table: &mut SlotTable, now: Millis, out: &mut Vec<u8>) -> u64 {
    let mut count = 0;
    for (key, at, payload) in live_entries(table, now) {
        count += 1;
        encode_command(
            out,
            &[b"RESTORE", key, &at, &payload, b"REPLACE", b"ABSTTL"],
        );
    }
    count
}

/// `table`'s keys not expired at `now`, each with its expiry (Unix ms as
/// text, 0 for none) and its `DUMP` payload. Expired ones are left to the
/// sender's own expiry, which will say so.
fn live_entries(
    table: &SlotTable,
    now: Millis,
) -> impl Iterator<Item = (&[u8], Vec<u8>, Vec<u8>)> + '_ {
    table.iter().filter_map(move |(key, entry)| {
        let at = entry.expire_at().unwrap_or(0);
        if at != 0 && at <= now {
            return None;
        }
        let payload = dump_value(entry.value);
        let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
        Some((key.as_bytes(), at, payload))
    })
}

/// What a snapshot record did on the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// Keys of this slot were loaded.
    Slot(u16),
    /// The last slot was sent: the dataset is complete.
    Done,
}

/// A snapshot record that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad snapshot record: {0}")]
pub struct BadSnapshot(String);

/// Applies a snapshot record (`args` without its name) on a replica: the
/// slot's first record empties it, then every record restores its keys, with
/// their fencing tokens accounted for.
pub fn load(
    keyspace: &Keyspace,
    limits: &EncodingLimits,
    args: &[&[u8]],
    now: Millis,
) -> Result<Loaded, BadSnapshot> {
    let bad = |what: &str| BadSnapshot(what.to_owned());
    match args {
        [done] if done.eq_ignore_ascii_case(b"DONE") => Ok(Loaded::Done),
        [slot, first, keys @ ..] if keys.len() % 3 == 0 => {
            let slot: u16 = std::str::from_utf8(slot)
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&s| usize::from(s) < SLOTS)
                .ok_or_else(|| bad("slot"))?;
            let mut locks = Locked::upstream(keyspace);
            locks.acquire([slot]);
            locks.with_slot(slot, |table| {
                if *first == b"1" {
                    drop(table.take());
                }
                for triple in keys.chunks_exact(3) {
                    let [key, at, payload] = triple else {
                        unreachable!("chunks of three")
                    };
                    let at: Millis = std::str::from_utf8(at)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad("expiry"))?;
                    let value = restore_value(payload, limits).map_err(|e| bad(&e.to_string()))?;
                    if let Some(token) = value.fencing_token() {
                        keyspace
                            .observe_token(token)
                            .map_err(|e| bad(&e.to_string()))?;
                    }
                    let expiry = if at == 0 {
                        Expiry::Persist
                    } else {
                        Expiry::At(at)
                    };
                    table.insert(key, value, expiry, now);
                }
                Ok(Loaded::Slot(slot))
            })
        }
        _ => Err(bad("arguments")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Value;
    use crate::protocol::{Decoded, RequestDecoder, RequestLimits};

    /// Decodes every record in `bytes`.
    fn records(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut decoder = RequestDecoder::new();
        let limits = RequestLimits {
            max_bulk_len: u64::MAX,
            authenticated: true,
        };
        let mut at = 0;
        let mut found = Vec::new();
        while at < bytes.len() {
            let Ok(Decoded::Request { consumed }) = decoder.decode(&bytes[at..], limits) else {
                panic!("incomplete record");
            };
            found.push(
                decoder
                    .args(&bytes[at..])
                    .iter()
                    .map(<[u8]>::to_vec)
                    .collect(),
            );
            decoder.release();
            at += consumed;
        }
        found
    }

    fn unlimited() -> Arc<Outbox> {
        let none = OutputLimit {
            hard: 0,
            soft: 0,
            soft_seconds: 0,
        };
        Outbox::new(none, CancellationToken::new())
    }

    #[test]
    fn a_full_sync_carries_every_live_key_and_the_replica_loads_them() {
        let master = Keyspace::new();
        for i in 0..500u32 {
            let key = format!("key:{i}");
            let expiry = if i % 7 == 0 {
                Expiry::At(10)
            } else {
                Expiry::Persist
            };
            master
                .lock_key(key.as_bytes())
                .insert(key.as_bytes(), Value::Int(i.into()), expiry, 0);
        }
        let out = unlimited();
        let syncs = Syncs::default();
        let sync = syncs.start(out.clone());
        let mut next = 0;
        let mut steps = 0;
        while !sync.step(&master, &mut next, 4096, 100) {
            steps += 1;
        }
        assert!(steps > 1, "sent in budgeted steps");
        syncs.end(&sync);
        let replica = Keyspace::new();
        replica
            .lock_key(b"stale")
            .insert(b"stale", Value::Int(1), Expiry::Persist, 0);
        let limits = EncodingLimits::default();
        let mut done = false;
        for record in records(&out.take()) {
            assert_eq!(record[0], SNAPSHOT);
            let args: Vec<&[u8]> = record[1..].iter().map(Vec::as_slice).collect();
            done = load(&replica, &limits, &args, 100).unwrap() == Loaded::Done;
        }
        assert!(done);
        assert_eq!(
            replica.len(),
            500 - 72,
            "live keys only; the stale key is gone"
        );
        let mut table = replica.lock_key(b"key:1");
        assert!(table.contains(b"key:1", 100));
    }

    #[test]
    fn a_unit_over_sent_and_unsent_slots_sends_the_unsent_first() {
        let keyspace = Keyspace::new();
        let out = unlimited();
        let syncs = Syncs::default();
        let sync = syncs.start(out.clone());
        let mut next = 0;
        // Slots 0..=99 sent.
        while next < 100 {
            sync.step(&keyspace, &mut next, 1, 0);
        }
        out.take();
        let mut locks = Locked::new(&keyspace);
        locks.acquire([5, 200]);
        syncs.before_unit(&mut locks, &[5, 200], 0);
        let sent = records(&out.take());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0][1], b"200");
        assert!(sync.is_sent(200));
        locks.acquire([300]);
        syncs.before_unit(&mut locks, &[200, 300], 0);
        assert_eq!(records(&out.take())[0][1], b"300");
        locks.acquire([500, 600]);
        syncs.before_unit(&mut locks, &[500, 600], 0);
        assert!(
            out.is_empty(),
            "none of them sent: the snapshots will carry the unit"
        );
        syncs.before_unit(&mut locks, &[5], 0);
        assert!(out.is_empty(), "one slot is never split");
    }

    #[test]
    fn bad_snapshot_records_are_refused_not_applied() {
        let keyspace = Keyspace::new();
        let limits = EncodingLimits::default();
        for args in [
            &[&b"16384"[..], b"1"][..],
            &[b"x", b"1"],
            &[b"1", b"1", b"k", b"0"],
            &[b"1", b"1", b"k", b"soon", b"payload"],
            &[b"1", b"1", b"k", b"0", b"not a dump"],
        ] {
            assert!(load(&keyspace, &limits, args, 0).is_err(), "{args:?}");
        }
    }
}
