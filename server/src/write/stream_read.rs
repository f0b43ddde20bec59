//! A consumer group's read (XREADGROUP), as a command runs it or as the
//! commit serves a blocked reader: the group's state changes, and the
//! records that make a replica's group the same, as Redis propagates them
//! (`XCLAIM ... FORCE JUSTID LASTID` per pending entry made, `XGROUP SETID`
//! for the group's position, `XGROUP CREATECONSUMER` for a new consumer).

use crate::blocking::ReadEntry;
use crate::keyspace::types::stream::{EntryRef, StreamId};
use crate::keyspace::types::Stream;
use crate::notify;

use super::Changes;

/// One group read of one stream.
#[derive(Debug, Clone, Copy)]
pub struct GroupRead<'r> {
    /// The stream's key.
    pub key: &'r [u8],
    /// The group (which exists).
    pub group: &'r [u8],
    /// The consumer, created if new.
    pub consumer: &'r [u8],
    /// Most entries (0: all).
    pub count: usize,
    /// Make no pending entries.
    pub noack: bool,
}

/// An entry, owned.
pub fn owned(entry: &EntryRef<'_>) -> ReadEntry {
    ReadEntry {
        id: entry.id,
        fields: Some(
            entry
                .fields()
                .flat_map(|(f, v)| [f.to_vec(), v.to_vec()])
                .collect(),
        ),
    }
}

impl GroupRead<'_> {
    /// Reads `stream` for the consumer: its own pending entries after
    /// `after` (history), or with `None` the group's new entries, which
    /// become its pending entries. The change and its records go to
    /// `changes`.
    pub fn run(
        &self,
        stream: &mut Stream,
        after: Option<StreamId>,
        now: u64,
        changes: &mut Changes,
    ) -> Vec<ReadEntry> {
        self.see(stream, now, changes);
        // Redis counts a group read as a change, with no event.
        changes.count(1);
        match after {
            Some(after) => self.history(stream, after, now),
            None => self.new_entries(stream, now, changes),
        }
    }

    /// Marks the consumer seen, creating it if new, as every XREADGROUP of
    /// an existing stream does (served or not). The command's records are
    /// written here and by [`GroupRead::run`], never its request.
    pub fn see(&self, stream: &mut Stream, now: u64, changes: &mut Changes) {
        changes.rewritten();
        let Some(group) = stream.groups_mut().get_mut(self.group) else {
            return;
        };
        if group.seen(self.consumer, now) {
            changes.record(1, notify::STREAM, "xgroup-createconsumer", self.key);
            changes.command(&[
                b"XGROUP",
                b"CREATECONSUMER",
                self.key,
                self.group,
                self.consumer,
            ]);
        }
    }

    /// The consumer's pending entries after `after`, counted as delivered
    /// again; an entry deleted since comes without fields.
    fn history(&self, stream: &mut Stream, after: StreamId, now: u64) -> Vec<ReadEntry> {
        let Some(start) = after.next() else {
            return Vec::new();
        };
        let mut ids: Vec<StreamId> = stream
            .group(self.group)
            .and_then(|g| g.consumer(self.consumer))
            .map(|c| c.pending().range(start..).copied().collect())
            .unwrap_or_default();
        if self.count != 0 {
            ids.truncate(self.count);
        }
        let entries: Vec<ReadEntry> = ids
            .iter()
            .map(|&id| match stream.get(id) {
                Some(entry) => owned(&entry),
                None => ReadEntry { id, fields: None },
            })
            .collect();
        if let Some(group) = stream.groups_mut().get_mut(self.group) {
            for entry in entries.iter().filter(|e| e.fields.is_some()) {
                if let Some(pending) = group.pending_mut(entry.id) {
                    pending.delivery_time = now;
                    pending.delivery_count += 1;
                }
            }
        }
        entries
    }

    /// The group's entries after its last id.
    fn new_entries(&self, stream: &mut Stream, now: u64, changes: &mut Changes) -> Vec<ReadEntry> {
        let mut entries = Vec::new();
        let mut claims: Vec<(StreamId, u64)> = Vec::new();
        stream.read_new(
            self.group,
            self.consumer,
            self.count,
            self.noack,
            now,
            |read| {
                entries.push(owned(&read.entry));
                if let Some(pending) = read.pending {
                    claims.push((read.entry.id, pending.delivery_count));
                }
            },
        );
        if !entries.is_empty() && changes.feeding() {
            if let Some(group) = stream.group(self.group) {
                self.record(changes, &claims, group.last_id, group.entries_read, now);
            }
        }
        entries
    }

    /// The records of a `>` read: the pending entries made, then the group's
    /// position.
    fn record(
        &self,
        changes: &mut Changes,
        claims: &[(StreamId, u64)],
        last_id: StreamId,
        entries_read: Option<u64>,
        now: u64,
    ) {
        let last = last_id.to_bytes();
        let time = now.to_string();
        for (id, count) in claims {
            let (id, count) = (id.to_bytes(), count.to_string());
            changes.command(&[
                b"XCLAIM",
                self.key,
                self.group,
                self.consumer,
                b"0",
                &id,
                b"TIME",
                time.as_bytes(),
                b"RETRYCOUNT",
                count.as_bytes(),
                b"FORCE",
                b"JUSTID",
                b"LASTID",
                &last,
            ]);
        }
        let read = entries_read.map_or_else(|| "-1".to_string(), |n| n.to_string());
        changes.command(&[
            b"XGROUP",
            b"SETID",
            self.key,
            self.group,
            &last,
            b"ENTRIESREAD",
            read.as_bytes(),
        ]);
    }
}
