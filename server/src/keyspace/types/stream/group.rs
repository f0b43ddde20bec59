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
        let Some(pending) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(owner) = self.consumers.get_mut(pending.consumer.as_bytes()) {
            owner.pel.remove(&id);
        }
        true
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
