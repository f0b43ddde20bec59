//! Streams: an append-only log of entries (an id and field-value pairs), with
//! consumer groups that track what each consumer was given and acknowledged.
//!
//! Entries live in nodes of up to `stream-node-max-entries` entries and
//! `stream-node-max-bytes` bytes, kept in a tree by their first id, as Redis
//! keeps listpacks in a radix tree: appends touch the last node only, trims
//! drop whole nodes from the front, and a range read seeks to one node and
//! walks on. Beside the entries, a stream keeps Redis's counters: the last
//! id ever given (which never goes back, even when entries are deleted), the
//! number of entries ever added, and the highest deleted id, from which a
//! group's lag is worked out.

mod group;
mod id;
mod node;
mod rax;

use std::collections::BTreeMap;

pub use group::{idle, AutoClaimed, Claim, ClaimArgs, Consumer, Delivered, Group, Pending};
pub use id::{parse, parse_id, IdArg, StreamId};
pub use node::{EntryRef, Fields};

use node::{data_size, Node};

use crate::keyspace::value::Blob;

/// The most data one entry may carry (Redis's listpack limit).
const MAX_ENTRY_DATA: usize = 1 << 30;

/// A stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Node>,
    len: u64,
    last_id: StreamId,
    first_id: StreamId,
    max_deleted: StreamId,
    entries_added: u64,
    groups: BTreeMap<Blob, Group>,
}

/// Streams are equal when their entries, counters and groups are: how the
/// entries are split into nodes and where tombstones lie are not compared.
impl PartialEq for Stream {
    fn eq(&self, other: &Self) -> bool {
        let mut theirs = other.range(StreamId::MIN, StreamId::MAX);
        let same_entries = self.range(StreamId::MIN, StreamId::MAX).all(|ours| {
            theirs
                .next()
                .is_some_and(|e| e.id == ours.id && e.fields().eq(ours.fields()))
        }) && theirs.next().is_none();
        (self.len, self.last_id, self.first_id, self.max_deleted)
            == (other.len, other.last_id, other.first_id, other.max_deleted)
            && self.entries_added == other.entries_added
            && self.groups == other.groups
            && same_entries
    }
}

/// Node size limits (`stream-node-max-bytes`, `stream-node-max-entries`; 0 =
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    /// Most bytes in a node.
    pub bytes: usize,
    /// Most entries in a node, deleted ones included.
    pub entries: u64,
}

/// Why XADD could not add an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The id is not above the stream's last id.
    #[error("The ID specified in XADD is equal or smaller than the target stream top item")]
    NotIncreasing,
    /// The stream's last id is the largest possible.
    #[error("The stream has exhausted the last possible ID, unable to add more items")]
    Exhausted,
    /// More than a node may hold.
    #[error("Elements are too large to be stored")]
    TooLarge,
}

/// How to trim a stream from its oldest end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Keep no entry below this id.
    MinId(StreamId),
}

impl Stream {
    /// Entries in the stream.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True with no entries (an empty stream is still a stream).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The last id ever added (or set by XSETID).
    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    /// The first entry's id; `0-0` when empty.
    pub fn first_id(&self) -> StreamId {
        self.first_id
    }

    /// The highest id deleted by XDEL (or set by XSETID).
    pub fn max_deleted(&self) -> StreamId {
        self.max_deleted
    }

    /// Entries ever added.
    pub fn entries_added(&self) -> u64 {
        self.entries_added
    }

    /// Number of nodes (XINFO's `radix-tree-keys`).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Appends an entry with `fields` (field, value, field, value...; at least
    /// one pair) as XADD does: `id` names it (`None` for the next one from
    /// `now`; `IdArg::Ms` for the next in that millisecond). Returns its id.
    pub fn append(
        &mut self,
        id: Option<IdArg>,
        fields: &[&[u8]],
        limits: NodeLimits,
        now: u64,
    ) -> Result<StreamId, AppendError> {
        if self.last_id == StreamId::MAX {
            return Err(AppendError::Exhausted);
        }
        let id = match id {
            Some(IdArg::Id(id)) => id,
            Some(IdArg::Ms(ms)) if ms == self.last_id.ms => StreamId::new(ms, self.last_id.seq)
                .next()
                .filter(|id| id.ms == ms)
                .ok_or(AppendError::NotIncreasing)?,
            Some(IdArg::Ms(ms)) => StreamId::new(ms, 0),
            None if now > self.last_id.ms => StreamId::new(now, 0),
            None => self.last_id.next().ok_or(AppendError::NotIncreasing)?,
        };
        if id <= self.last_id {
            return Err(AppendError::NotIncreasing);
        }
        let size = data_size(fields);
        if size > MAX_ENTRY_DATA {
            return Err(AppendError::TooLarge);
        }
        let max_bytes = match limits.bytes {
            0 => MAX_ENTRY_DATA,
            n => n.min(MAX_ENTRY_DATA),
        };
        let full = self.nodes.last_key_value().is_none_or(|(_, node)| {
            node.bytes() + size >= max_bytes
                || (limits.entries != 0 && node.stored() >= limits.entries)
        });
        if full {
            if let Some(mut last) = self.nodes.last_entry() {
                last.get_mut().shrink();
            }
            self.nodes.insert(id, Node::new(fields));
        }
        let mut last = self.nodes.last_entry().expect("a node");
        let master = *last.key();
        last.get_mut().append(master, id, fields);
        self.len += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.len == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    /// Trims from the oldest entries as Redis does: `approx` removes whole
    /// nodes only, and `limit` (0: none) bounds the entries removed. Returns
    /// how many went.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0;
        while let Some(mut first) = self.nodes.first_entry() {
            if let Trim::MaxLen(max) = trim {
                if self.len <= max {
                    break;
                }
            }
            let master = *first.key();
            let live = first.get().live();
            if limit != 0 && deleted + live > limit {
                break;
            }
            let whole = match trim {
                Trim::MaxLen(max) => self.len - live >= max,
                Trim::MinId(min) => first.get().last_id(master) < min,
            };
            if whole {
                first.remove();
                self.len -= live;
                deleted += live;
                continue;
            }
            if approx {
                break;
            }
            let mut len = self.len;
            let node = first.get_mut();
            let removed = node.delete_front(master, |id| match trim {
                Trim::MaxLen(max) => {
                    let go = len > max;
                    len -= u64::from(go);
                    go
                }
                Trim::MinId(min) => id < min,
            });
            self.len -= removed;
            deleted += removed;
            if node.live() == 0 {
                first.remove();
            }
            break;
        }
        if deleted > 0 {
            self.first_id = self.first_entry_id().unwrap_or(StreamId::MIN);
        }
        deleted
    }

    /// Deletes the entry `id` (XDEL); false if there is none.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, node)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        if !node.delete(master, id) {
            return false;
        }
        if node.live() == 0 {
            self.nodes.remove(&master);
        }
        self.len -= 1;
        self.max_deleted = self.max_deleted.max(id);
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if id == self.first_id {
            self.first_id = self.first_entry_id().unwrap_or(StreamId::MIN);
        }
        true
    }

    /// The first live entry's id.
    fn first_entry_id(&self) -> Option<StreamId> {
        self.range(StreamId::MIN, StreamId::MAX)
            .next()
            .map(|e| e.id)
    }

    /// The last live entry's id (Redis's `streamLastValidID`).
    pub fn last_entry_id(&self) -> Option<StreamId> {
        self.range_rev(StreamId::MIN, StreamId::MAX)
            .next()
            .map(|e| e.id)
    }

    /// The entry `id`, if live.
    pub fn get(&self, id: StreamId) -> Option<EntryRef<'_>> {
        self.range(id, id).next()
    }

    /// The live entries from `start` to `end` (inclusive), oldest first.
    pub fn range(&self, start: StreamId, end: StreamId) -> impl Iterator<Item = EntryRef<'_>> {
        // The node holding `start` begins at or before it.
        let from = self
            .nodes
            .range(..=start)
            .next_back()
            .map_or(start, |(&k, _)| k);
        let nodes = (start <= end).then(|| self.nodes.range(from..=end));
        nodes
            .into_iter()
            .flatten()
            .flat_map(|(&master, node)| node.entries(master))
            .skip_while(move |e| e.id < start)
            .take_while(move |e| e.id <= end)
    }

    /// The live entries from `end` down to `start` (inclusive), newest first.
    pub fn range_rev(&self, start: StreamId, end: StreamId) -> impl Iterator<Item = EntryRef<'_>> {
        let nodes = (start <= end).then(|| self.nodes.range(..=end).rev());
        nodes
            .into_iter()
            .flatten()
            .map_while(move |(&master, node)| {
                // A node starting below `start` is the last one to look at.
                (master >= start || node.last_id(master) >= start).then_some((master, node))
            })
            .flat_map(|(master, node)| {
                let entries: Vec<EntryRef<'_>> = node.entries(master).collect();
                entries.into_iter().rev()
            })
            .skip_while(move |e| e.id > end)
            .take_while(move |e| e.id >= start)
    }

    /// Sets the last id and, if given, the entries-added counter and the
    /// highest deleted id (XSETID, checked by the caller).
    pub fn set_last_id(
        &mut self,
        last_id: StreamId,
        entries_added: Option<u64>,
        max_deleted: Option<StreamId>,
    ) {
        self.last_id = last_id;
        if let Some(n) = entries_added {
            self.entries_added = n;
        }
        if let Some(id) = max_deleted {
            self.max_deleted = id;
        }
    }

    /// True when a tombstone may lie between `start` and the end (Redis's
    /// `streamRangeHasTombstones` with no end, as Redis 8 has it: a tombstone
    /// before the first entry may still be after `start`).
    fn tombstones_from(&self, start: StreamId) -> bool {
        self.len != 0 && !self.max_deleted.is_zero() && start <= self.max_deleted
    }

    /// How many entries were added up to `id` since the stream began, where
    /// that is known (Redis's `streamEstimateDistanceFromFirstEverEntry`, with
    /// Redis 8's fix: not past a tombstone).
    pub fn entries_read_at(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.len == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        if !id.is_zero() && id < self.max_deleted {
            return None;
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.len),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.len + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// The number of entries `group` has yet to read (live entries after its
    /// last id), where it is known. Redis 7.2 gets it wrong after a deletion
    /// or a trim past the group; this is Redis 8's answer (redis#13338,
    /// redis#13473). A read counter set past the entries added (XGROUP
    /// SETID ... ENTRIESREAD) gives a negative lag, as in Redis 7.
    pub fn lag(&self, group: &Group) -> Option<i64> {
        if self.entries_added == 0 || self.len == 0 {
            return Some(0);
        }
        // Everything the group has not read is still here.
        if group.last_id < self.first_id && self.max_deleted < self.first_id {
            return Some(self.len as i64);
        }
        let read = match group.entries_read {
            Some(read) if !self.tombstones_from(group.last_id) => Some(read),
            _ => self.entries_read_at(group.last_id),
        };
        read.map(|read| self.entries_added as i64 - read as i64)
    }

    /// The groups by name.
    pub fn groups(&self) -> &BTreeMap<Blob, Group> {
        &self.groups
    }

    /// The groups by name, to change.
    pub fn groups_mut(&mut self) -> &mut BTreeMap<Blob, Group> {
        &mut self.groups
    }

    /// The group `name`.
    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        // A tree slot per node: its key, the node, and the tree's share.
        let per_node = std::mem::size_of::<(StreamId, Node)>() * 3 / 2;
        self.nodes
            .values()
            .map(|n| n.heap_size() + per_node)
            .sum::<usize>()
            + self.groups.values().map(Group::heap_size).sum::<usize>()
    }
}
