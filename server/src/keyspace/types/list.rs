//! Lists: a double-ended queue of byte strings. Short elements live inline in
//! the queue's slots, so a small list is one allocation, compact like a listpack.

use std::collections::VecDeque;

use super::EncodingLimits;
use crate::keyspace::value::Blob;

/// A list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    items: VecDeque<Blob>,
    /// Sum of element lengths, for the encoding name and memory figures.
    bytes: usize,
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (index 0): LPUSH, LPOP.
    Left,
    /// The tail: RPUSH, RPOP.
    Right,
}

impl List {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty (an empty list is removed from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds `value` at `end`.
    pub fn push(&mut self, end: End, value: &[u8]) {
        self.bytes += value.len();
        match end {
            End::Left => self.items.push_front(Blob::new(value)),
            End::Right => self.items.push_back(Blob::new(value)),
        }
    }

    /// Removes and returns the element at `end`.
    pub fn pop(&mut self, end: End) -> Option<Blob> {
        let item = match end {
            End::Left => self.items.pop_front(),
            End::Right => self.items.pop_back(),
        }?;
        self.bytes -= item.as_bytes().len();
        Some(item)
    }

    /// Resolves a Redis index (negative counts from the tail).
    pub fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.items.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// The element at `index` (0-based).
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.items.get(index).map(Blob::as_bytes)
    }

    /// Replaces the element at `index`; false if out of range.
    pub fn set(&mut self, index: usize, value: &[u8]) -> bool {
        let Some(slot) = self.items.get_mut(index) else {
            return false;
        };
        self.bytes = self.bytes - slot.as_bytes().len() + value.len();
        *slot = Blob::new(value);
        true
    }

    /// The elements from `start` to `end` inclusive (already clamped).
    pub fn range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.items.range(start..=end).map(Blob::as_bytes)
    }

    /// All elements, head first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(Blob::as_bytes)
    }

    /// Inserts `value` before or after the first `pivot`; the new length, or
    /// `None` when there is no such pivot.
    pub fn insert(&mut self, pivot: &[u8], after: bool, value: &[u8]) -> Option<usize> {
        let at = self
            .items
            .iter()
            .position(|item| item.as_bytes() == pivot)?;
        self.items
            .insert(if after { at + 1 } else { at }, Blob::new(value));
        self.bytes += value.len();
        Some(self.items.len())
    }

    /// Removes up to `count` elements equal to `value` (from the head when
    /// positive, from the tail when negative, all when 0); returns how many.
    pub fn remove(&mut self, count: i64, value: &[u8]) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let mut removed = 0;
        if count >= 0 {
            let mut i = 0;
            while i < self.items.len() && removed < limit {
                if self.items[i].as_bytes() == value {
                    self.items.remove(i);
                    removed += 1;
                } else {
                    i += 1;
                }
            }
        } else {
            let mut i = self.items.len();
            while i > 0 && removed < limit {
                i -= 1;
                if self.items[i].as_bytes() == value {
                    self.items.remove(i);
                    removed += 1;
                }
            }
        }
        self.bytes -= removed * value.len();
        removed
    }

    /// Keeps only the elements from `start` to `end` inclusive (clamped), or none.
    pub fn retain_range(&mut self, keep: Option<(usize, usize)>) {
        match keep {
            None => {
                self.items.clear();
                self.bytes = 0;
            }
            Some((start, end)) => {
                self.items.truncate(end + 1);
                self.items.drain(..start);
                self.bytes = self.items.iter().map(|b| b.as_bytes().len()).sum();
            }
        }
    }

    /// The name `OBJECT ENCODING` reports: `listpack` while Redis would keep the
    /// list in a single listpack node, `quicklist` beyond.
    pub fn encoding(&self, limits: &EncodingLimits) -> &'static str {
        // Redis's listpack costs each entry a few bytes of header besides the data.
        let approx = self.bytes + 2 * self.items.len() + 7;
        let fits = match limits.list_size {
            n if n > 0 => self.items.len() <= n as usize,
            n => approx <= 4096 << (n.unsigned_abs().clamp(1, 5) - 1),
        };
        if fits {
            "listpack"
        } else {
            "quicklist"
        }
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Blob>()
            + self.items.iter().map(Blob::heap_size).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> List {
        let mut l = List::default();
        for i in items {
            l.push(End::Right, i.as_bytes());
        }
        l
    }

    fn contents(l: &List) -> Vec<String> {
        l.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn push_pop_both_ends() {
        let mut l = list(&["b"]);
        l.push(End::Left, b"a");
        l.push(End::Right, b"c");
        assert_eq!(contents(&l), ["a", "b", "c"]);
        assert_eq!(l.pop(End::Right).unwrap().as_bytes(), b"c");
        assert_eq!(l.pop(End::Left).unwrap().as_bytes(), b"a");
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn negative_indexes_count_from_the_tail() {
        let l = list(&["a", "b", "c"]);
        assert_eq!(l.resolve(-1), Some(2));
        assert_eq!(l.resolve(-3), Some(0));
        assert_eq!(l.resolve(-4), None);
        assert_eq!(l.resolve(3), None);
    }

    #[test]
    fn remove_from_either_direction() {
        let mut l = list(&["x", "a", "x", "b", "x"]);
        assert_eq!(l.remove(-2, b"x"), 2);
        assert_eq!(contents(&l), ["x", "a", "b"]);
        assert_eq!(l.remove(0, b"x"), 1);
        assert_eq!(contents(&l), ["a", "b"]);
    }

    #[test]
    fn insert_and_trim() {
        let mut l = list(&["a", "c"]);
        assert_eq!(l.insert(b"c", false, b"b"), Some(3));
        assert_eq!(l.insert(b"zz", true, b"q"), None);
        l.retain_range(Some((1, 2)));
        assert_eq!(contents(&l), ["b", "c"]);
        l.retain_range(None);
        assert!(l.is_empty());
    }

    #[test]
    fn encoding_follows_the_size_limit() {
        let limits = EncodingLimits::default();
        let mut l = list(&["a"; 10]);
        assert_eq!(l.encoding(&limits), "listpack");
        for _ in 0..200 {
            l.push(End::Right, &[b'x'; 64]);
        }
        assert_eq!(l.encoding(&limits), "quicklist");
    }
}
