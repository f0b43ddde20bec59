//! Consumer groups: where a group has read up to, which entries it delivered
//! and to whom (its pending entries list, PEL), and its consumers.
//!
//! Invariant: an id is in a consumer's PEL exactly when the group's PEL has it
//! and names that consumer.

use std::collections::{BTreeMap, BTreeSet};

use super::{EntryRef, Stream, StreamId};
use crate::keyspace::value::Blob;

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The last id delivered to the group (`>` reads after it).
    pub last_id: StreamId,
    /// Entries the group has read since the stream began, where known.
    pub entries_read: Option<u64>,
    pel: BTreeMap<StreamId, Pending>,
    consumers: BTreeMap<Blob, Consumer>,
}

/// A delivered entry not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The consumer it was delivered to.
    pub consumer: Blob,
    /// When it was last delivered (Unix ms).
    pub delivery_time: u64,
    /// How many times it was delivered.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Consumer {
    /// When it last read or claimed (or was created), Unix ms.
    pub seen_time: u64,
    /// When it last got entries, if ever.
    pub active_time: Option<u64>,
    pel: BTreeSet<StreamId>,
}

impl Consumer {
    /// A consumer created at `now`.
    fn new(now: u64) -> Self {
        Consumer {
            seen_time: now,
            active_time: None,
            pel: BTreeSet::new(),
        }
    }

    /// The ids delivered to it and not acknowledged.
    pub fn pending(&self) -> &BTreeSet<StreamId> {
        &self.pel
    }
}

impl Group {
    /// A group that has read up to `last_id`.
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> Self {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The pending entries by id.
    pub fn pending(&self) -> &BTreeMap<StreamId, Pending> {
        &self.pel
    }

    /// The consumers by name.
    pub fn consumers(&self) -> &BTreeMap<Blob, Consumer> {
        &self.consumers
    }

    /// The consumer `name`.
    pub fn consumer(&self, name: &[u8]) -> Option<&Consumer> {
        self.consumers.get(name)
    }

    /// Creates the consumer `name`; false if it exists.
    pub fn create_consumer(&mut self, name: &[u8], now: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(Blob::new(name), Consumer::new(now));
        true
    }

    /// Marks the consumer `name` seen at `now`, creating it if needed; true if
    /// it was created.
    pub fn seen(&mut self, name: &[u8], now: u64) -> bool {
        let created = self.create_consumer(name, now);
        if let Some(consumer) = self.consumers.get_mut(name) {
            consumer.seen_time = now;
        }
        created
    }

    /// Marks the consumer `name` (which exists) active at `now`.
    pub fn active(&mut self, name: &[u8], now: u64) {
        if let Some(consumer) = self.consumers.get_mut(name) {
            consumer.active_time = Some(now);
        }
    }

    /// Deletes the consumer `name` and its pending entries; how many it had,
    /// or `None` if there is no such consumer.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pel {
            self.pel.remove(id);
        }
        Some(consumer.pel.len())
    }

    /// Records `id` delivered to `consumer` (which exists) at `now`: a new
    /// pending entry, or one taken over from whoever had it, counted once.
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now: u64) {
        self.assign(id, consumer, now, 1);
    }

    /// Gives the pending entry `id` (or a new one) to `consumer`, which
    /// exists, with this delivery time and count.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], time: u64, count: u64) {
        if let Some(old) = self.pel.get(&id) {
            if let Some(owner) = self.consumers.get_mut(old.consumer.as_bytes()) {
                owner.pel.remove(&id);
            }
        }
        let Some(owner) = self.consumers.get_mut(consumer) else {
            return;
        };
        owner.pel.insert(id);
        let pending = Pending {
            consumer: Blob::new(consumer),
            delivery_time: time,
            delivery_count: count,
        };
        self.pel.insert(id, pending);
    }

    /// The pending entry `id`, to update its delivery time and count.
    pub fn pending_mut(&mut self, id: StreamId) -> Option<&mut Pending> {
        self.pel.get_mut(&id)
    }

    /// Acknowledges `id`; false if it was not pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        self.remove_pending(id).is_some()
    }

    /// Takes `id` out of the PEL (and its consumer's), returning what it was.
    fn remove_pending(&mut self, id: StreamId) -> Option<Pending> {
        let pending = self.pel.remove(&id)?;
        if let Some(owner) = self.consumers.get_mut(pending.consumer.as_bytes()) {
            owner.pel.remove(&id);
        }
        Some(pending)
    }

    /// Moves the group to `last_id` with this read counter (`XGROUP SETID`).
    pub fn set_id(&mut self, last_id: StreamId, entries_read: Option<u64>) {
        self.last_id = last_id;
        self.entries_read = entries_read;
    }

    /// Claims the pending entry `id` of a live entry for `consumer` (which
    /// exists), as XCLAIM does for one id: see [`Stream::claim`].
    fn claim_live(&mut self, id: StreamId, consumer: &[u8], claim: &ClaimArgs, now: u64) -> Claim {
        let current = match self.pel.get(&id) {
            Some(pending) => {
                if claim.min_idle != 0 && idle(now, pending.delivery_time) < claim.min_idle {
                    return Claim::Skipped;
                }
                pending.delivery_count
            }
            // FORCE makes a pending entry first (delivered once), whatever
            // the minimum idle time.
            None if claim.force => 1,
            None => return Claim::Skipped,
        };
        let count = match claim.retry_count {
            Some(count) => count,
            None if claim.justid => current,
            None => current.wrapping_add(1),
        };
        self.assign(id, consumer, claim.delivery_time, count);
        self.active(consumer, now);
        Claim::Claimed(self.pel[&id].clone())
    }

    /// Heap bytes used, roughly: the trees' slots and the names.
    pub fn heap_size(&self) -> usize {
        let pending = std::mem::size_of::<(StreamId, Pending)>() * 3 / 2;
        let consumer = std::mem::size_of::<(Blob, Consumer)>() * 3 / 2;
        let owned = std::mem::size_of::<StreamId>() * 3 / 2;
        self.pel.len() * (pending + owned)
            + self
                .consumers
                .keys()
                .map(|name| consumer + name.heap_size())
                .sum::<usize>()
    }
}

/// Milliseconds since `time` at `now`, as Redis's signed arithmetic gives
/// them (negative for a time ahead of the clock).
pub fn idle(now: u64, time: u64) -> i64 {
    (now as i64).wrapping_sub(time as i64)
}

/// How XCLAIM claims each id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimArgs {
    /// Pending entries idle for less than this are left alone (0: none is).
    pub min_idle: i64,
    /// The delivery time claimed entries get (Unix ms).
    pub delivery_time: u64,
    /// The delivery count claimed entries get (`RETRYCOUNT`); by default it
    /// goes up by one.
    pub retry_count: Option<u64>,
    /// `FORCE`: an entry of the stream that nobody has pending becomes
    /// pending.
    pub force: bool,
    /// `JUSTID`: the delivery count stays as it was (unless `retry_count`).
    pub justid: bool,
}

/// What claiming one id did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// It is the consumer's now: the pending entry as it became.
    Claimed(Pending),
    /// Its entry is no longer in the stream: its pending entry, as it was,
    /// left the PEL.
    Gone(Pending),
    /// Nothing changed (not pending, or not idle long enough).
    Skipped,
}

/// What XAUTOCLAIM did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoClaimed {
    /// The ids claimed, in order, with their pending entries as they became.
    pub claimed: Vec<(StreamId, Pending)>,
    /// The ids whose entries were gone, with their pending entries as they
    /// were (they left the PEL).
    pub deleted: Vec<(StreamId, Pending)>,
    /// Where the next call starts: the first pending id not looked at, or
    /// `0-0` when the PEL was scanned to its end.
    pub next: StreamId,
}

/// What a `>` read of a group delivers, entry by entry.
pub struct Delivered<'a> {
    /// The entry.
    pub entry: EntryRef<'a>,
    /// The pending entry made for it (`None` with NOACK).
    pub pending: Option<&'a Pending>,
}

impl Stream {
    /// Reads for `consumer` (which exists) of group `name` (which exists) the
    /// entries after the group's last id, at most `count` (0: all), as
    /// XREADGROUP's `>` does: the group's last id and read counter move on,
    /// and unless `noack` each entry becomes pending for the consumer.
    /// `each` sees every entry delivered; returns how many.
    pub fn read_new(
        &mut self,
        name: &[u8],
        consumer: &[u8],
        count: usize,
        noack: bool,
        now: u64,
        mut each: impl FnMut(Delivered<'_>),
    ) -> usize {
        let Some(mut group) = self.groups.remove(name) else {
            return 0;
        };
        let start = group.last_id.next();
        let mut delivered = 0;
        for entry in start
            .into_iter()
            .flat_map(|start| self.range(start, StreamId::MAX))
        {
            if group.entries_read.is_some() && !self.tombstones_from(entry.id) {
                group.entries_read = group.entries_read.map(|n| n + 1);
            } else if self.entries_added != 0 {
                group.entries_read = self.entries_read_at(entry.id);
            }
            group.last_id = entry.id;
            let pending = (!noack).then(|| {
                group.deliver(entry.id, consumer, now);
                group.active(consumer, now);
                &group.pel[&entry.id]
            });
            each(Delivered { entry, pending });
            delivered += 1;
            if delivered == count {
                break;
            }
        }
        self.groups.insert(Blob::new(name), group);
        delivered
    }
}

impl Stream {
    /// The group `name`, to change.
    pub fn group_mut(&mut self, name: &[u8]) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }

    /// Creates the group `name` at `last_id`; false if it exists.
    pub fn create_group(
        &mut self,
        name: &[u8],
        last_id: StreamId,
        entries_read: Option<u64>,
    ) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        let group = Group::new(last_id, entries_read);
        self.groups.insert(Blob::new(name), group);
        true
    }

    /// Deletes the group `name`, its consumers and PEL; false if none.
    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        self.groups.remove(name).is_some()
    }

    /// Claims `id` for `consumer` (which exists) of group `name` as XCLAIM
    /// does: a pending entry idle long enough (or, with `force`, any entry of
    /// the stream) becomes the consumer's with the claim's delivery time and
    /// count; a pending entry whose entry is gone leaves the PEL.
    pub fn claim(
        &mut self,
        name: &[u8],
        consumer: &[u8],
        id: StreamId,
        claim: &ClaimArgs,
        now: u64,
    ) -> Claim {
        let live = self.get(id).is_some();
        let Some(group) = self.groups.get_mut(name) else {
            return Claim::Skipped;
        };
        match live {
            true => group.claim_live(id, consumer, claim, now),
            false => group.remove_pending(id).map_or(Claim::Skipped, Claim::Gone),
        }
    }

    /// Claims for `consumer` (which exists) of group `name` the pending
    /// entries from `start` on idle for at least `min_idle` ms (0: any), as
    /// XAUTOCLAIM does: at most `count` ids claimed or found gone (gone ones
    /// leave the PEL), looking at no more than ten times `count` pending
    /// entries. Claimed entries are delivered again at `now`, counted once
    /// more unless `justid`.
    #[allow(clippy::too_many_arguments)]
    pub fn auto_claim(
        &mut self,
        name: &[u8],
        consumer: &[u8],
        start: StreamId,
        min_idle: i64,
        count: usize,
        justid: bool,
        now: u64,
    ) -> AutoClaimed {
        let mut done = AutoClaimed::default();
        let Some(mut group) = self.groups.remove(name) else {
            return done;
        };
        let mut attempts = count.saturating_mul(10);
        let mut left = count;
        // The next pending id to look at is the first at or after `from`.
        let mut from = Some(start);
        while attempts > 0 && left > 0 {
            attempts -= 1;
            let Some(id) = from.and_then(|from| group.pel.range(from..).next().map(|(&id, _)| id))
            else {
                from = None;
                break;
            };
            from = id.next();
            if self.get(id).is_none() {
                if let Some(pending) = group.remove_pending(id) {
                    done.deleted.push((id, pending));
                }
                left -= 1;
                continue;
            }
            let pending = &group.pel[&id];
            if min_idle != 0 && idle(now, pending.delivery_time) < min_idle {
                continue;
            }
            let count = match justid {
                true => pending.delivery_count,
                false => pending.delivery_count.wrapping_add(1),
            };
            group.assign(id, consumer, now, count);
            group.active(consumer, now);
            done.claimed.push((id, group.pel[&id].clone()));
            left -= 1;
        }
        done.next = from
            .and_then(|from| group.pel.range(from..).next().map(|(&id, _)| id))
            .unwrap_or(StreamId::MIN);
        self.groups.insert(Blob::new(name), group);
        done
    }
}
