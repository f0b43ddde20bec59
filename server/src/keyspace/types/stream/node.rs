//! One node of a stream: consecutive entries packed in one buffer, as Redis
//! packs them in a listpack.
//!
//! ```text
//! master:  [field count][field]...            the first entry's fields
//! entry:   [flags: u8][ms - master ms][seq - master seq]
//!          SAME_FIELDS: [value]...            (fields are the master's)
//!          otherwise:   [field count][field][value]...
//! ```
//! Numbers and string lengths are varints. Ids are stored as differences from
//! the node's first id (its key in the stream's tree), so the usual entry of a
//! stream whose entries share their fields costs its values plus three or four
//! bytes. A deleted entry keeps its place with a flag (a tombstone) until the
//! whole node goes, as in Redis.

use super::id::StreamId;
use crate::keyspace::types::packed::{put_len, read_at, read_len};

const DELETED: u8 = 1;
const SAME_FIELDS: u8 = 2;

/// A run of entries sharing one buffer.
#[derive(Debug, Clone)]
pub struct Node {
    buf: Vec<u8>,
    /// Entries not deleted.
    live: u32,
    /// Entries marked deleted.
    deleted: u32,
    /// Where the first entry starts, after the master fields.
    first: u32,
    /// Where the last entry starts.
    last: u32,
}

/// One entry of a node, as read from it.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    /// The entry's id.
    pub id: StreamId,
    buf: &'a [u8],
    /// Where the entry starts (its flags).
    at: usize,
    /// Where its fields (or values) start.
    body: usize,
    /// Where the master fields start, for an entry with the master's fields.
    master: Option<usize>,
    /// Number of field-value pairs.
    pairs: usize,
}

impl<'a> EntryRef<'a> {
    /// Number of field-value pairs.
    pub fn len(&self) -> usize {
        self.pairs
    }

    /// True for an entry without fields (never stored by XADD).
    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }

    /// The field-value pairs in order.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            buf: self.buf,
            pos: self.body,
            master: self.master,
            left: self.pairs,
        }
    }

    fn deleted(&self) -> bool {
        self.buf[self.at] & DELETED != 0
    }
}

/// The field-value pairs of an entry.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    master: Option<usize>,
    left: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let field = match &mut self.master {
            Some(at) => {
                let (field, next) = read_at(self.buf, *at);
                *at = next;
                field
            }
            None => {
                let (field, next) = read_at(self.buf, self.pos);
                self.pos = next;
                field
            }
        };
        let (value, next) = read_at(self.buf, self.pos);
        self.pos = next;
        Some((field, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Fields<'_> {}

/// Bytes `fields` (field, value, field, value...) take as data: what Redis
/// weighs against the node size limits.
pub fn data_size(fields: &[&[u8]]) -> usize {
    fields.iter().map(|f| f.len()).sum()
}

impl Node {
    /// A node whose master fields are the fields of `fields` (field, value,
    /// field, value...): the entry that will start it.
    pub fn new(fields: &[&[u8]]) -> Self {
        let mut buf = Vec::with_capacity(64 + 2 * data_size(fields));
        put_len(&mut buf, fields.len() / 2);
        for field in fields.iter().step_by(2) {
            put_len(&mut buf, field.len());
            buf.extend_from_slice(field);
        }
        let first = buf.len() as u32;
        Node {
            buf,
            live: 0,
            deleted: 0,
            first,
            last: first,
        }
    }

    /// Entries not deleted.
    pub fn live(&self) -> u64 {
        u64::from(self.live)
    }

    /// Entries stored, deleted ones included (what `stream-node-max-entries`
    /// counts).
    pub fn stored(&self) -> u64 {
        u64::from(self.live + self.deleted)
    }

    /// Encoded size (what `stream-node-max-bytes` weighs).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        self.buf.capacity()
    }

    /// Gives back the spare capacity of a node no longer appended to.
    pub fn shrink(&mut self) {
        self.buf.shrink_to_fit();
    }

    /// True when `fields` has exactly the master fields.
    fn same_fields(&self, fields: &[&[u8]]) -> bool {
        let (count, mut at) = read_len(&self.buf, 0);
        if count * 2 != fields.len() {
            return false;
        }
        fields.iter().step_by(2).all(|field| {
            let (master, next) = read_at(&self.buf, at);
            at = next;
            master == *field
        })
    }

    /// Appends the entry `id` (greater than every id here; `master` is the
    /// node's first id) with `fields` (field, value, field, value...).
    pub fn append(&mut self, master: StreamId, id: StreamId, fields: &[&[u8]]) {
        let same = self.same_fields(fields);
        self.last = self.buf.len() as u32;
        self.buf.push(if same { SAME_FIELDS } else { 0 });
        put_len(&mut self.buf, (id.ms - master.ms) as usize);
        // The sequence may be below the master's (a later millisecond): a
        // signed difference, zigzag-encoded so a small one stays one byte.
        let delta = id.seq.wrapping_sub(master.seq) as i64;
        put_len(&mut self.buf, ((delta << 1) ^ (delta >> 63)) as usize);
        if same {
            for value in fields.iter().skip(1).step_by(2) {
                put_len(&mut self.buf, value.len());
                self.buf.extend_from_slice(value);
            }
        } else {
            put_len(&mut self.buf, fields.len() / 2);
            for s in fields {
                put_len(&mut self.buf, s.len());
                self.buf.extend_from_slice(s);
            }
        }
        self.live += 1;
    }

    /// The entry starting at `at` and where the next one starts.
    fn read(&self, master: StreamId, at: usize) -> (EntryRef<'_>, usize) {
        let buf = &self.buf[..];
        let flags = buf[at];
        let (ms, pos) = read_len(buf, at + 1);
        let (zigzag, pos) = read_len(buf, pos);
        let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let id = StreamId::new(master.ms + ms as u64, master.seq.wrapping_add(delta as u64));
        let (pairs, body, master_at) = if flags & SAME_FIELDS != 0 {
            let (count, fields_at) = read_len(buf, 0);
            (count, pos, Some(fields_at))
        } else {
            let (count, body) = read_len(buf, pos);
            (count, body, None)
        };
        let entry = EntryRef {
            id,
            buf,
            at,
            body,
            master: master_at,
            pairs,
        };
        let end = entry.fields().last().map_or(body, |(_, value)| {
            value.as_ptr() as usize + value.len() - buf.as_ptr() as usize
        });
        (entry, end)
    }

    /// Every entry, deleted ones included, in order.
    fn all(&self, master: StreamId) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        let mut at = self.first as usize;
        std::iter::from_fn(move || {
            (at < self.buf.len()).then(|| {
                let (entry, next) = self.read(master, at);
                at = next;
                entry
            })
        })
    }

    /// The live entries in order.
    pub fn entries(&self, master: StreamId) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.all(master).filter(|e| !e.deleted())
    }

    /// The id of the last entry stored, deleted or not.
    pub fn last_id(&self, master: StreamId) -> StreamId {
        self.read(master, self.last as usize).0.id
    }

    /// Marks the entry `id` deleted; false if it is not here (or was deleted).
    pub fn delete(&mut self, master: StreamId, id: StreamId) -> bool {
        let Some(at) = self
            .entries(master)
            .find(|e| e.id >= id)
            .filter(|e| e.id == id)
            .map(|e| e.at)
        else {
            return false;
        };
        self.buf[at] |= DELETED;
        self.live -= 1;
        self.deleted += 1;
        true
    }

    /// Marks live entries deleted from the front while `trim` says so (given
    /// the id); returns how many.
    pub fn delete_front(
        &mut self,
        master: StreamId,
        mut trim: impl FnMut(StreamId) -> bool,
    ) -> u64 {
        let doomed: Vec<usize> = self
            .entries(master)
            .take_while(|e| trim(e.id))
            .map(|e| e.at)
            .collect();
        for &at in &doomed {
            self.buf[at] |= DELETED;
        }
        let n = doomed.len() as u32;
        self.live -= n;
        self.deleted += n;
        u64::from(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn pairs(node: &Node, master: StreamId) -> Vec<(StreamId, Pairs)> {
        node.entries(master)
            .map(|e| {
                let fields = e.fields().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                (e.id, fields)
            })
            .collect()
    }

    #[test]
    fn entries_read_back_with_their_own_or_the_master_fields() {
        let master = StreamId::new(100, 5);
        let mut node = Node::new(&[b"a", b"1", b"b", b"2"]);
        node.append(master, master, &[b"a", b"1", b"b", b"2"]);
        node.append(master, StreamId::new(100, 6), &[b"a", b"x", b"b", b"y"]);
        node.append(master, StreamId::new(250, 0), &[b"c", b"z"]);
        node.append(master, StreamId::new(250, u64::MAX), &[b"c", b"z"]);
        let read = pairs(&node, master);
        assert_eq!(read.len(), 4);
        assert_eq!(read[3].0, StreamId::new(250, u64::MAX));
        assert_eq!(read[1].0, StreamId::new(100, 6));
        assert_eq!(
            read[1].1,
            [
                (b"a".to_vec(), b"x".to_vec()),
                (b"b".to_vec(), b"y".to_vec())
            ]
        );
        assert_eq!(read[2].0, StreamId::new(250, 0));
        assert_eq!(read[2].1, [(b"c".to_vec(), b"z".to_vec())]);
        assert_eq!(node.last_id(master), StreamId::new(250, u64::MAX));
        // A shared-fields entry costs flags, two deltas and its values.
        let before = node.bytes();
        node.append(master, StreamId::new(251, 1), &[b"a", b"v", b"b", b"w"]);
        assert_eq!(node.bytes() - before, 1 + 2 + 1 + 2 + 2);
    }

    #[test]
    fn deleted_entries_are_skipped_and_counted_apart() {
        let master = StreamId::new(1, 0);
        let mut node = Node::new(&[b"f", b"v"]);
        for seq in 0..5 {
            node.append(master, StreamId::new(1, seq), &[b"f", b"v"]);
        }
        assert!(node.delete(master, StreamId::new(1, 2)));
        assert!(!node.delete(master, StreamId::new(1, 2)));
        assert!(!node.delete(master, StreamId::new(1, 9)));
        assert_eq!(node.delete_front(master, |id| id.seq < 4), 3);
        let ids: Vec<_> = node.entries(master).map(|e| e.id.seq).collect();
        assert_eq!(ids, [4]);
        assert_eq!((node.live(), node.stored()), (1, 5));
    }
}
