//! One node of a list: byte strings packed back to back in one buffer, each
//! framed by its length before and after it (like a Redis listpack entry and its
//! back-length), so a node is walked from either end and both ends are popped
//! without a scan. A short element costs its bytes plus two.

use super::packed::{len_size, put_len, put_len_back, read_at, read_len_back};
use crate::keyspace::value::Blob;

/// Packed strings readable in both directions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listpack {
    buf: Vec<u8>,
    count: usize,
}

/// Bytes an entry holding `len` bytes of data takes.
pub fn entry_size(len: usize) -> usize {
    len + 2 * len_size(len)
}

fn write_entry(buf: &mut Vec<u8>, s: &[u8]) {
    put_len(buf, s.len());
    buf.extend_from_slice(s);
    put_len_back(buf, s.len());
}

/// The entry starting at `pos`: its data and where the next one starts.
fn entry_at(buf: &[u8], pos: usize) -> (&[u8], usize) {
    let (s, data_end) = read_at(buf, pos);
    (s, data_end + len_size(s.len()))
}

/// The entry ending at `end`: its data and where it starts.
fn entry_before(buf: &[u8], end: usize) -> (&[u8], usize) {
    let (len, data_end) = read_len_back(buf, end);
    let data_start = data_end - len;
    (&buf[data_start..data_end], data_start - len_size(len))
}

impl Listpack {
    /// A node holding `s` alone.
    pub fn with(s: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(entry_size(s.len()));
        write_entry(&mut buf, s);
        Listpack { buf, count: 1 }
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size in bytes (what node size limits count).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        self.buf.capacity()
    }

    /// Makes room for `extra` more bytes. Appends double the buffer, for O(1)
    /// amortized pushes, but never past `cap` (the node limit) unless one entry
    /// needs more, so a full node wastes at most an entry's worth.
    fn reserve(&mut self, extra: usize, cap: usize) {
        let needed = self.buf.len() + extra;
        if needed > self.buf.capacity() {
            let target = (self.buf.capacity() * 2).min(cap).max(needed);
            self.buf.reserve_exact(target - self.buf.len());
        }
    }

    /// Gives back spare capacity after removals left the buffer mostly empty.
    fn shrink_if_sparse(&mut self) {
        if self.buf.capacity() > 2 * self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }

    /// Appends `s`; `cap` bounds the buffer's growth (see [`Listpack::reserve`]).
    pub fn push_back(&mut self, s: &[u8], cap: usize) {
        self.reserve(entry_size(s.len()), cap);
        write_entry(&mut self.buf, s);
        self.count += 1;
    }

    /// Prepends `s`.
    pub fn push_front(&mut self, s: &[u8], cap: usize) {
        self.insert_at_offset(0, s, cap);
    }

    /// Inserts `s` as the `index`-th string.
    pub fn insert(&mut self, index: usize, s: &[u8], cap: usize) {
        let at = self.offset(index);
        self.insert_at_offset(at, s, cap);
    }

    fn insert_at_offset(&mut self, at: usize, s: &[u8], cap: usize) {
        let size = entry_size(s.len());
        self.reserve(size, cap);
        // Written at the end, then rotated into place: one move of the tail.
        write_entry(&mut self.buf, s);
        self.buf[at..].rotate_right(size);
        self.count += 1;
    }

    /// Removes and returns the first string.
    pub fn pop_front(&mut self) -> Option<Blob> {
        if self.count == 0 {
            return None;
        }
        let (s, next) = entry_at(&self.buf, 0);
        let item = Blob::new(s);
        self.buf.drain(..next);
        self.count -= 1;
        Some(item)
    }

    /// Removes and returns the last string.
    pub fn pop_back(&mut self) -> Option<Blob> {
        if self.count == 0 {
            return None;
        }
        let (s, start) = entry_before(&self.buf, self.buf.len());
        let item = Blob::new(s);
        self.buf.truncate(start);
        self.count -= 1;
        Some(item)
    }

    /// Byte offset of the `index`-th string (the end for `len()`), walking from
    /// the nearer end.
    fn offset(&self, index: usize) -> usize {
        if index <= self.count / 2 {
            let mut pos = 0;
            for _ in 0..index {
                pos = entry_at(&self.buf, pos).1;
            }
            pos
        } else {
            let mut pos = self.buf.len();
            for _ in index..self.count {
                pos = entry_before(&self.buf, pos).1;
            }
            pos
        }
    }

    /// The `index`-th string.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        (index < self.count).then(|| entry_at(&self.buf, self.offset(index)).0)
    }

    /// Replaces the `index`-th string (which must exist).
    pub fn replace(&mut self, index: usize, s: &[u8]) {
        let at = self.offset(index);
        let (_, end) = entry_at(&self.buf, at);
        let mut entry = Vec::with_capacity(entry_size(s.len()));
        write_entry(&mut entry, s);
        self.buf.splice(at..end, entry);
    }

    /// Removes `n` strings from the `index`-th on (which must exist).
    pub fn remove(&mut self, index: usize, n: usize) {
        let start = self.offset(index);
        let end = if index + n == self.count {
            self.buf.len()
        } else {
            let mut end = start;
            for _ in 0..n {
                end = entry_at(&self.buf, end).1;
            }
            end
        };
        self.buf.drain(start..end);
        self.count -= n;
        self.shrink_if_sparse();
    }

    /// Splits off the strings from the `index`-th on into a new node.
    pub fn split_off(&mut self, index: usize) -> Listpack {
        let at = self.offset(index);
        let tail = Listpack {
            buf: self.buf[at..].to_vec(),
            count: self.count - index,
        };
        self.buf.truncate(at);
        self.count = index;
        self.shrink_if_sparse();
        tail
    }

    /// Appends every string of `other`.
    pub fn append(&mut self, other: &Listpack, cap: usize) {
        self.reserve(other.buf.len(), cap);
        self.buf.extend_from_slice(&other.buf);
        self.count += other.count;
    }

    /// Position of the first string equal to `s`.
    pub fn position(&self, s: &[u8]) -> Option<usize> {
        self.iter().position(|x| x == s)
    }

    /// How many strings equal `s`.
    pub fn count_of(&self, s: &[u8]) -> usize {
        self.iter().filter(|x| *x == s).count()
    }

    /// Removes strings equal to `s`, in one pass: the first `skip` matches stay,
    /// then at most `limit` go. Returns how many went.
    pub fn remove_matching(&mut self, s: &[u8], mut skip: usize, limit: usize) -> usize {
        let (mut read, mut write, mut removed) = (0, 0, 0);
        let len = self.buf.len();
        while read < len {
            let (item, next) = entry_at(&self.buf, read);
            if item == s && skip == 0 && removed < limit {
                removed += 1;
            } else {
                if item == s && skip > 0 {
                    skip -= 1;
                }
                if write != read {
                    self.buf.copy_within(read..next, write);
                }
                write += next - read;
            }
            read = next;
        }
        self.buf.truncate(write);
        self.count -= removed;
        if removed > 0 {
            self.shrink_if_sparse();
        }
        removed
    }

    /// The strings in order; reversible.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            buf: &self.buf,
            front: 0,
            back: self.buf.len(),
        }
    }

    /// The strings from the `index`-th on.
    pub fn iter_from(&self, index: usize) -> Iter<'_> {
        Iter {
            buf: &self.buf,
            front: self.offset(index),
            back: self.buf.len(),
        }
    }
}

/// Walks a [`Listpack`] from both ends.
#[derive(Debug, Clone, Default)]
pub struct Iter<'a> {
    buf: &'a [u8],
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (s, next) = entry_at(self.buf, self.front);
        self.front = next;
        Some(s)
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        let (s, start) = entry_before(self.buf, self.back);
        self.back = start;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(n: &Listpack) -> Vec<Vec<u8>> {
        n.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn both_ends_push_pop_and_walk() {
        let mut n = Listpack::with(b"b");
        n.push_back(&[b'x'; 200], 8192);
        n.push_front(b"a", 8192);
        n.push_back(b"", 8192);
        assert_eq!(n.len(), 4);
        // Two bytes of framing for short strings, four for the 200-byte one.
        assert_eq!(n.bytes(), 3 + 3 + (200 + 4) + 2);
        let back: Vec<usize> = n.iter().rev().map(<[u8]>::len).collect();
        assert_eq!(back, [0, 200, 1, 1]);
        assert_eq!(n.get(2).map(<[u8]>::len), Some(200));
        assert_eq!(n.get(4), None);
        assert_eq!(n.pop_back().unwrap().as_bytes(), b"");
        assert_eq!(n.pop_front().unwrap().as_bytes(), b"a");
        assert_eq!(n.pop_back().unwrap().as_bytes().len(), 200);
        assert_eq!(strings(&n), [b"b".to_vec()]);
    }

    #[test]
    fn insert_replace_remove_split_append() {
        let mut n = Listpack::default();
        for s in ["a", "b", "c", "d", "e"] {
            n.push_back(s.as_bytes(), 64);
        }
        n.insert(2, b"new", 64);
        n.replace(0, b"first");
        assert_eq!(
            strings(&n)[..3],
            [b"first".to_vec(), b"b".to_vec(), b"new".to_vec()]
        );
        n.remove(1, 2);
        let tail = n.split_off(2);
        assert_eq!(strings(&n), [b"first".to_vec(), b"c".to_vec()]);
        assert_eq!(strings(&tail), [b"d".to_vec(), b"e".to_vec()]);
        assert_eq!(tail.iter_from(1).collect::<Vec<_>>(), [b"e"]);
        n.append(&tail, 64);
        assert_eq!(n.len(), 4);
        assert_eq!(n.position(b"e"), Some(3));
    }

    #[test]
    fn remove_matching_skips_then_limits() {
        let mut n = Listpack::default();
        for s in ["x", "a", "x", "x", "b", "x"] {
            n.push_back(s.as_bytes(), 64);
        }
        assert_eq!(n.count_of(b"x"), 4);
        assert_eq!(n.remove_matching(b"x", 1, 2), 2);
        assert_eq!(
            strings(&n),
            [b"x".to_vec(), b"a".to_vec(), b"b".to_vec(), b"x".to_vec()]
        );
        assert_eq!(n.remove_matching(b"x", 0, usize::MAX), 2);
        assert_eq!(n.len(), 2);
    }

    #[test]
    fn growth_stops_at_the_node_limit() {
        let mut n = Listpack::default();
        while n.bytes() + 5 <= 8192 {
            n.push_back(b"abc", 8192);
        }
        assert!(n.heap_size() <= 8192, "{}", n.heap_size());
    }
}
