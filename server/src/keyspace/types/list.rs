//! Lists: a deque of packed nodes, like Redis's quicklist of listpacks. Each node
//! keeps its elements back to back in one buffer bounded by
//! `list-max-listpack-size` (8 KiB by default), so a short element costs a few
//! bytes instead of a pointer-sized slot and an allocation of its own.
//!
//! Costs match Redis's: a push or pop touches one end node; an index skips whole
//! nodes by their counts, from the nearer end; LREM, LPOS and LINSERT walk each
//! node once; LTRIM drops whole nodes and cuts at most two.

use std::collections::{vec_deque, VecDeque};

use super::listpack::{self, entry_size, Listpack};
use super::EncodingLimits;
use crate::keyspace::value::Blob;

/// The most bytes a node limited by count may hold anyway (Redis's
/// `SIZE_SAFETY_LIMIT`), so a count limit cannot make nodes of huge elements.
const SIZE_SAFETY_LIMIT: usize = 8192;

/// How full a node may get, from `list-max-listpack-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeLimit {
    /// Encoded bytes (negative settings: -1 = 4 KiB ... -5 = 64 KiB).
    Bytes(usize),
    /// Elements (positive settings; 0 counts as 1, as in Redis).
    Count(usize),
}

impl NodeLimit {
    fn new(list_size: i64) -> Self {
        if list_size >= 0 {
            NodeLimit::Count(usize::try_from(list_size).unwrap_or(usize::MAX).max(1))
        } else {
            let level = list_size.unsigned_abs().min(5) as u32;
            NodeLimit::Bytes(4096 << (level - 1))
        }
    }

    /// True if a node of `bytes` holding `count` elements is within the limit.
    fn admits(self, bytes: usize, count: usize) -> bool {
        match self {
            NodeLimit::Bytes(max) => bytes <= max,
            NodeLimit::Count(max) => count <= max && bytes <= SIZE_SAFETY_LIMIT,
        }
    }

    /// True if `node` can take one more entry of `size` bytes. An empty node
    /// takes anything: an element larger than the limit gets a node of its own.
    fn fits(self, node: &Listpack, size: usize) -> bool {
        node.is_empty() || self.admits(node.bytes() + size, node.len() + 1)
    }

    /// The most a node's buffer grows to ahead of need.
    fn cap(self) -> usize {
        match self {
            NodeLimit::Bytes(max) => max,
            NodeLimit::Count(_) => SIZE_SAFETY_LIMIT,
        }
    }
}

/// A list.
#[derive(Debug, Clone)]
pub struct List {
    /// Never holds an empty node.
    nodes: VecDeque<Listpack>,
    len: usize,
    /// Fixed when the list is made, as Redis fixes a quicklist's fill.
    limit: NodeLimit,
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (index 0): LPUSH, LPOP.
    Left,
    /// The tail: RPUSH, RPOP.
    Right,
}

impl End {
    /// The protocol's word for the end: `LEFT` or `RIGHT`.
    pub fn word(self) -> &'static [u8] {
        match self {
            End::Left => b"LEFT",
            End::Right => b"RIGHT",
        }
    }
}

impl Default for List {
    fn default() -> Self {
        List::new(&EncodingLimits::default())
    }
}

/// Lists are equal when their elements are, however they are split into nodes.
impl PartialEq for List {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for List {}

impl List {
    /// An empty list whose nodes follow `limits.list_size`.
    pub fn new(limits: &EncodingLimits) -> Self {
        List {
            nodes: VecDeque::new(),
            len: 0,
            limit: NodeLimit::new(limits.list_size),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (an empty list is removed from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` at `end`.
    pub fn push(&mut self, end: End, value: &[u8]) {
        let (limit, size) = (self.limit, entry_size(value.len()));
        let node = match end {
            End::Left => self.nodes.front_mut(),
            End::Right => self.nodes.back_mut(),
        };
        match (node, end) {
            (Some(node), End::Left) if limit.fits(node, size) => {
                node.push_front(value, limit.cap())
            }
            (Some(node), End::Right) if limit.fits(node, size) => {
                node.push_back(value, limit.cap())
            }
            (_, End::Left) => self.nodes.push_front(Listpack::with(value)),
            (_, End::Right) => self.nodes.push_back(Listpack::with(value)),
        }
        self.len += 1;
    }

    /// Removes and returns the element at `end`.
    pub fn pop(&mut self, end: End) -> Option<Blob> {
        let node = match end {
            End::Left => self.nodes.front_mut(),
            End::Right => self.nodes.back_mut(),
        }?;
        let item = match end {
            End::Left => node.pop_front(),
            End::Right => node.pop_back(),
        }?;
        if node.is_empty() {
            match end {
                End::Left => self.nodes.pop_front(),
                End::Right => self.nodes.pop_back(),
            };
        }
        self.len -= 1;
        Some(item)
    }

    /// Resolves a Redis index (negative counts from the tail).
    pub fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.len as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// The node holding element `index` and the element's position in it,
    /// counting nodes from the nearer end.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut i = index;
            for (n, node) in self.nodes.iter().enumerate() {
                if i < node.len() {
                    return Some((n, i));
                }
                i -= node.len();
            }
        } else {
            let mut from_end = self.len - index;
            for (n, node) in self.nodes.iter().enumerate().rev() {
                if from_end <= node.len() {
                    return Some((n, node.len() - from_end));
                }
                from_end -= node.len();
            }
        }
        None
    }

    /// The element at `index` (0-based).
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (n, i) = self.locate(index)?;
        self.nodes[n].get(i)
    }

    /// Replaces the element at `index`; false if out of range.
    pub fn set(&mut self, index: usize, value: &[u8]) -> bool {
        let Some((n, i)) = self.locate(index) else {
            return false;
        };
        let node = &mut self.nodes[n];
        let old = node.get(i).map_or(0, |s| entry_size(s.len()));
        let new_bytes = node.bytes() - old + entry_size(value.len());
        if node.len() == 1 || self.limit.admits(new_bytes, node.len()) {
            node.replace(i, value);
        } else {
            // Too big for this node: take the old one out and insert anew.
            node.remove(i, 1);
            self.len -= 1;
            self.insert_at(n, i, value);
        }
        true
    }

    /// Inserts `value` as element `i` of node `n` (`i` may be the node's length),
    /// splitting the node when it has no room.
    fn insert_at(&mut self, n: usize, i: usize, value: &[u8]) {
        let (limit, size) = (self.limit, entry_size(value.len()));
        let cap = limit.cap();
        self.len += 1;
        let node_len = self.nodes[n].len();
        if limit.fits(&self.nodes[n], size) {
            self.nodes[n].insert(i, value, cap);
        } else if i == 0 {
            match n.checked_sub(1) {
                Some(prev) if limit.fits(&self.nodes[prev], size) => {
                    self.nodes[prev].push_back(value, cap)
                }
                _ => self.nodes.insert(n, Listpack::with(value)),
            }
        } else if i == node_len {
            match self.nodes.get_mut(n + 1) {
                Some(next) if limit.fits(next, size) => next.push_front(value, cap),
                _ => self.nodes.insert(n + 1, Listpack::with(value)),
            }
        } else {
            // Mid-node: split there; the value ends the first half, starts the
            // second, or sits alone between them.
            let mut tail = self.nodes[n].split_off(i);
            if limit.fits(&self.nodes[n], size) {
                self.nodes[n].push_back(value, cap);
                self.nodes.insert(n + 1, tail);
            } else if limit.fits(&tail, size) {
                tail.push_front(value, cap);
                self.nodes.insert(n + 1, tail);
            } else {
                self.nodes.insert(n + 1, tail);
                self.nodes.insert(n + 1, Listpack::with(value));
            }
        }
    }

    /// The elements from `start` to `end` inclusive (already clamped).
    pub fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &[u8]> {
        let mut iter = Iter {
            front: listpack::Iter::default(),
            nodes: self.nodes.range(0..0),
            back: listpack::Iter::default(),
            remaining: 0,
        };
        if let Some((n, i)) = self.locate(start) {
            iter.front = self.nodes[n].iter_from(i);
            iter.nodes = self.nodes.range(n + 1..);
            iter.remaining = (end.min(self.len - 1) + 1).saturating_sub(start);
        }
        iter
    }

    /// All elements, head first.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            front: listpack::Iter::default(),
            nodes: self.nodes.iter(),
            back: listpack::Iter::default(),
            remaining: self.len,
        }
    }

    /// Inserts `value` before or after the first `pivot`; the new length, or
    /// `None` when there is no such pivot.
    pub fn insert(&mut self, pivot: &[u8], after: bool, value: &[u8]) -> Option<usize> {
        let (n, i) = self
            .nodes
            .iter()
            .enumerate()
            .find_map(|(n, node)| Some((n, node.position(pivot)?)))?;
        self.insert_at(n, if after { i + 1 } else { i }, value);
        Some(self.len)
    }

    /// Removes up to `count` elements equal to `value` (from the head when
    /// positive, from the tail when negative, all when 0); returns how many.
    pub fn remove(&mut self, count: i64, value: &[u8]) -> usize {
        let limit = match count {
            0 => usize::MAX,
            n => usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX),
        };
        let mut removed = 0;
        if count >= 0 {
            for node in self.nodes.iter_mut() {
                if removed == limit {
                    break;
                }
                removed += node.remove_matching(value, 0, limit - removed);
            }
        } else {
            for node in self.nodes.iter_mut().rev() {
                if removed == limit {
                    break;
                }
                // From the tail: keep this node's first matches, remove its last.
                let want = limit - removed;
                let matches = node.count_of(value);
                if matches > 0 {
                    removed += node.remove_matching(value, matches.saturating_sub(want), want);
                }
            }
        }
        if removed > 0 {
            self.len -= removed;
            self.compact();
        }
        removed
    }

    /// Drops emptied nodes and merges neighbours that fit in one node, after
    /// removals in the middle left them part-full.
    fn compact(&mut self) {
        let (limit, cap) = (self.limit, self.limit.cap());
        let mut merged: VecDeque<Listpack> = VecDeque::with_capacity(self.nodes.len());
        for node in self.nodes.drain(..) {
            if node.is_empty() {
                continue;
            }
            match merged.back_mut() {
                Some(last)
                    if limit.admits(last.bytes() + node.bytes(), last.len() + node.len()) =>
                {
                    last.append(&node, cap)
                }
                _ => merged.push_back(node),
            }
        }
        self.nodes = merged;
    }

    /// Keeps only the elements from `start` to `end` inclusive (clamped), or none.
    pub fn retain_range(&mut self, keep: Option<(usize, usize)>) {
        let Some((start, end)) = keep.filter(|&(s, e)| s <= e && s < self.len) else {
            self.nodes.clear();
            self.len = 0;
            return;
        };
        let end = end.min(self.len - 1);
        let mut drop_back = self.len - 1 - end;
        while drop_back > 0 {
            let Some(last) = self.nodes.back_mut() else {
                break;
            };
            if last.len() <= drop_back {
                drop_back -= last.len();
                self.nodes.pop_back();
            } else {
                last.remove(last.len() - drop_back, drop_back);
                drop_back = 0;
            }
        }
        let mut drop_front = start;
        while drop_front > 0 {
            let Some(first) = self.nodes.front_mut() else {
                break;
            };
            if first.len() <= drop_front {
                drop_front -= first.len();
                self.nodes.pop_front();
            } else {
                first.remove(0, drop_front);
                drop_front = 0;
            }
        }
        self.len = end + 1 - start;
    }

    /// The name `OBJECT ENCODING` reports: `listpack` while the list fits in one
    /// node, as Redis keeps it in a single listpack, `quicklist` beyond.
    pub fn encoding(&self) -> &'static str {
        let single = match (self.nodes.front(), self.nodes.len()) {
            (None, _) => true,
            (Some(node), 1) => self.limit.admits(node.bytes(), node.len()),
            _ => false,
        };
        if single {
            "listpack"
        } else {
            "quicklist"
        }
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Listpack>()
            + self.nodes.iter().map(Listpack::heap_size).sum::<usize>()
    }
}

/// Walks a [`List`] from either end.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    front: listpack::Iter<'a>,
    nodes: vec_deque::Iter<'a, Listpack>,
    back: listpack::Iter<'a>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(s) = self.front.next() {
                self.remaining -= 1;
                return Some(s);
            }
            match self.nodes.next() {
                Some(node) => self.front = node.iter(),
                None => {
                    let s = self.back.next()?;
                    self.remaining -= 1;
                    return Some(s);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(s) = self.back.next_back() {
                self.remaining -= 1;
                return Some(s);
            }
            match self.nodes.next_back() {
                Some(node) => self.back = node.iter(),
                None => {
                    let s = self.front.next_back()?;
                    self.remaining -= 1;
                    return Some(s);
                }
            }
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(list_size: i64) -> EncodingLimits {
        EncodingLimits {
            list_size,
            ..EncodingLimits::default()
        }
    }

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

    impl List {
        /// Checks what every operation must keep: no empty node, counts adding
        /// up, and every node of several elements within its limit.
        fn check(&self) {
            assert_eq!(
                self.nodes.iter().map(Listpack::len).sum::<usize>(),
                self.len
            );
            for node in &self.nodes {
                assert!(!node.is_empty(), "an empty node");
                assert!(
                    node.len() == 1 || self.limit.admits(node.bytes(), node.len()),
                    "a node over its limit: {} bytes, {} elements",
                    node.bytes(),
                    node.len()
                );
            }
        }
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
        let mut l = list(&["a"; 10]);
        assert_eq!(l.encoding(), "listpack");
        for _ in 0..200 {
            l.push(End::Right, &[b'x'; 64]);
        }
        assert_eq!(l.encoding(), "quicklist");
        let mut counted = List::new(&limits(4));
        for _ in 0..4 {
            counted.push(End::Left, b"a");
        }
        assert_eq!(counted.encoding(), "listpack");
        counted.push(End::Left, b"a");
        assert_eq!(counted.encoding(), "quicklist");
        let mut huge = List::default();
        huge.push(End::Right, &[b'x'; 10_000]);
        assert_eq!(huge.encoding(), "quicklist");
    }

    #[test]
    fn short_elements_cost_a_few_bytes_each() {
        let mut l = List::default();
        for i in 0..100_000u32 {
            l.push(End::Left, &(i % 1000).to_le_bytes()[..3]);
        }
        l.check();
        // 3 bytes of data and 2 of framing; nodes are filled to their 8 KiB.
        let per_element = l.heap_size() as f64 / 100_000.0;
        assert!(per_element < 5.5, "{per_element} bytes per element");
    }

    #[test]
    fn removing_most_elements_merges_the_nodes_left() {
        let mut l = List::default();
        for i in 0..50_000 {
            l.push(End::Right, if i % 100 == 0 { b"keep" } else { b"drop" });
        }
        let nodes_before = l.nodes.len();
        assert_eq!(l.remove(0, b"drop"), 49_500);
        l.check();
        assert_eq!(l.len(), 500);
        assert!(l.nodes.len() < nodes_before / 10, "{} nodes", l.nodes.len());
        assert!(l.iter().all(|s| s == b"keep"));
    }

    #[test]
    fn indexes_and_ranges_cross_nodes() {
        let mut l = List::new(&limits(3));
        for i in 0..20 {
            l.push(End::Right, i.to_string().as_bytes());
        }
        l.check();
        assert_eq!(l.get(0), Some(&b"0"[..]));
        assert_eq!(l.get(13), Some(&b"13"[..]));
        assert_eq!(l.get(19), Some(&b"19"[..]));
        assert_eq!(l.get(20), None);
        let range: Vec<&[u8]> = l.range(4, 8).collect();
        assert_eq!(range, [&b"4"[..], b"5", b"6", b"7", b"8"]);
        let back: Vec<&[u8]> = l.iter().rev().take(2).collect();
        assert_eq!(back, [&b"19"[..], b"18"]);
        assert!(l.set(10, &[b'z'; 9000]));
        l.check();
        assert_eq!(l.get(10).map(<[u8]>::len), Some(9000));
        assert_eq!(l.get(11), Some(&b"11"[..]));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::VecDeque;

        #[derive(Debug, Clone)]
        enum Op {
            Push(bool, Vec<u8>),
            Pop(bool),
            Set(i64, Vec<u8>),
            Insert(Vec<u8>, bool, Vec<u8>),
            Remove(i64, Vec<u8>),
            Trim(i64, i64),
        }

        /// Few distinct values, so removals and pivots often match; some longer
        /// than a small node, so elements get nodes of their own.
        fn value() -> impl Strategy<Value = Vec<u8>> {
            (
                0u8..3,
                prop::sample::select(vec![0usize, 1, 2, 40, 700, 5000]),
            )
                .prop_map(|(k, len)| vec![b'a' + k; len])
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (any::<bool>(), value()).prop_map(|(l, v)| Op::Push(l, v)),
                1 => any::<bool>().prop_map(Op::Pop),
                1 => (-30i64..30, value()).prop_map(|(i, v)| Op::Set(i, v)),
                1 => (value(), any::<bool>(), value()).prop_map(|(p, a, v)| Op::Insert(p, a, v)),
                1 => (-3i64..4, value()).prop_map(|(c, v)| Op::Remove(c, v)),
                1 => (-30i64..30, -30i64..30).prop_map(|(s, e)| Op::Trim(s, e)),
            ]
        }

        fn apply(model: &mut VecDeque<Vec<u8>>, op: &Op) {
            match op {
                Op::Push(true, v) => model.push_front(v.clone()),
                Op::Push(false, v) => model.push_back(v.clone()),
                Op::Pop(left) => {
                    if *left {
                        model.pop_front();
                    } else {
                        model.pop_back();
                    }
                }
                Op::Set(i, v) => {
                    let len = model.len() as i64;
                    let i = if *i < 0 { len + i } else { *i };
                    if (0..len).contains(&i) {
                        model[i as usize] = v.clone();
                    }
                }
                Op::Insert(pivot, after, v) => {
                    if let Some(at) = model.iter().position(|x| x == pivot) {
                        model.insert(if *after { at + 1 } else { at }, v.clone());
                    }
                }
                Op::Remove(count, v) => {
                    let mut left = if *count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let indexes: Vec<usize> = if *count >= 0 {
                        (0..model.len()).collect()
                    } else {
                        (0..model.len()).rev().collect()
                    };
                    let mut doomed = Vec::new();
                    for i in indexes {
                        if left > 0 && model[i] == *v {
                            doomed.push(i);
                            left -= 1;
                        }
                    }
                    doomed.sort_unstable();
                    for i in doomed.into_iter().rev() {
                        model.remove(i);
                    }
                }
                Op::Trim(s, e) => match crate::keyspace::types::clamp_range(*s, *e, model.len()) {
                    Some((s, e)) => {
                        model.truncate(e + 1);
                        model.drain(..s);
                    }
                    None => model.clear(),
                },
            }
        }

        proptest! {
            #[test]
            fn every_operation_matches_a_vecdeque(
                list_size in prop::sample::select(vec![-1i64, -2, 0, 1, 2, 3, 100]),
                ops in proptest::collection::vec(op(), 0..120),
            ) {
                let mut list = List::new(&limits(list_size));
                let mut model: VecDeque<Vec<u8>> = VecDeque::new();
                for op in &ops {
                    match op {
                        Op::Push(left, v) => list.push(if *left { End::Left } else { End::Right }, v),
                        Op::Pop(left) => {
                            let want = if *left { model.front() } else { model.back() }.cloned();
                            let got = list.pop(if *left { End::Left } else { End::Right });
                            prop_assert_eq!(got.map(|b| b.as_bytes().to_vec()), want);
                        }
                        Op::Set(i, v) => {
                            let set = list.resolve(*i).is_some_and(|i| list.set(i, v));
                            let len = model.len() as i64;
                            prop_assert_eq!(set, (-len..len).contains(i));
                        }
                        Op::Insert(pivot, after, v) => {
                            let expected = model.contains(pivot).then(|| model.len() + 1);
                            prop_assert_eq!(list.insert(pivot, *after, v), expected);
                        }
                        Op::Remove(count, v) => {
                            let before = model.len();
                            let removed = list.remove(*count, v);
                            apply(&mut model, op);
                            prop_assert_eq!(removed, before - model.len());
                            list.check();
                            continue;
                        }
                        Op::Trim(s, e) => list.retain_range(crate::keyspace::types::clamp_range(*s, *e, list.len())),
                    }
                    apply(&mut model, op);
                    list.check();
                    prop_assert_eq!(list.len(), model.len());
                }
                let forward: Vec<&[u8]> = list.iter().collect();
                let expected: Vec<&[u8]> = model.iter().map(Vec::as_slice).collect();
                prop_assert_eq!(&forward, &expected);
                let backward: Vec<&[u8]> = list.iter().rev().collect();
                let expected_back: Vec<&[u8]> = model.iter().rev().map(Vec::as_slice).collect();
                prop_assert_eq!(backward, expected_back);
                for (i, item) in model.iter().enumerate() {
                    prop_assert_eq!(list.get(i), Some(item.as_slice()));
                    let from_i: Vec<&[u8]> = list.range(i, model.len() - 1).collect();
                    prop_assert_eq!(&from_i[..], &expected[i..]);
                }
                // Walking from both ends at once meets in the middle exactly.
                let mut both = list.iter();
                let (mut front, mut back) = (Vec::new(), Vec::new());
                while let Some(x) = both.next() {
                    front.push(x);
                    if let Some(y) = both.next_back() {
                        back.push(y);
                    }
                }
                back.reverse();
                front.extend(back);
                prop_assert_eq!(front, expected);
            }
        }
    }
}
