//! An indexable skiplist ordered by (score, member): the order of large sorted sets.
//!
//! Each forward link records its span (how many nodes it skips), so the rank of a
//! member and the member at a rank are found in O(log n), like Redis's zskiplist.
//! Nodes live in an arena (`Vec`) and link by index, so the structure is plain safe
//! Rust; freed slots are reused.

use std::cmp::Ordering;

use smallvec::SmallVec;

use crate::keyspace::value::Blob;

const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

#[derive(Debug, Clone, Copy)]
struct Link {
    forward: u32,
    span: u32,
}

#[derive(Debug, Clone)]
struct Node {
    member: Blob,
    score: f64,
    backward: u32,
    links: SmallVec<[Link; 2]>,
}

/// Nodes ordered by (score, member).
#[derive(Debug, Clone)]
pub struct SkipList {
    nodes: Vec<Node>,
    free: Vec<u32>,
    tail: u32,
    len: usize,
    level: usize,
}

/// Compares (score, member) pairs the way sorted sets order them.
pub fn compare(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

fn random_level() -> usize {
    // Each level is taken with probability 1/4, as in Redis.
    let mut level = 1;
    while level < MAX_LEVEL && rand::random_range(0..4u8) == 0 {
        level += 1;
    }
    level
}

impl Default for SkipList {
    fn default() -> Self {
        let head = Node {
            member: Blob::new(b""),
            score: 0.0,
            backward: NIL,
            links: std::iter::repeat_n(
                Link {
                    forward: NIL,
                    span: 0,
                },
                MAX_LEVEL,
            )
            .collect(),
        };
        SkipList {
            nodes: vec![head],
            free: Vec::new(),
            tail: NIL,
            len: 0,
            level: 1,
        }
    }
}

impl SkipList {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    fn forward(&self, id: u32, level: usize) -> u32 {
        self.nodes[id as usize].links[level].forward
    }

    /// True if node `id` sorts before (score, member).
    fn before(&self, id: u32, score: f64, member: &[u8]) -> bool {
        let n = self.node(id);
        compare(n.score, n.member.as_bytes(), score, member) == Ordering::Less
    }

    /// The last node before (score, member) on every level, with the rank of each.
    fn predecessors(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], [u32; MAX_LEVEL]) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i + 1 == self.level { 0 } else { rank[i + 1] };
            loop {
                let next = self.forward(x, i);
                if next == NIL || !self.before(next, score, member) {
                    break;
                }
                rank[i] += self.node(x).links[i].span;
                x = next;
            }
            update[i] = x;
        }
        (update, rank)
    }

    /// Inserts (score, member), which must not be present.
    pub fn insert(&mut self, score: f64, member: Blob) {
        let (mut update, mut rank) = self.predecessors(score, member.as_bytes());
        let level = random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.nodes[HEAD as usize].links[i].span = self.len as u32;
            }
            self.level = level;
        }
        let node = Node {
            member,
            score,
            backward: if update[0] == HEAD { NIL } else { update[0] },
            links: std::iter::repeat_n(
                Link {
                    forward: NIL,
                    span: 0,
                },
                level,
            )
            .collect(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        for i in 0..level {
            let prev = update[i] as usize;
            let prev_link = self.nodes[prev].links[i];
            self.nodes[id as usize].links[i] = Link {
                forward: prev_link.forward,
                span: prev_link.span - (rank[0] - rank[i]),
            };
            self.nodes[prev].links[i] = Link {
                forward: id,
                span: rank[0] - rank[i] + 1,
            };
        }
        for (i, &prev) in update.iter().enumerate().take(self.level).skip(level) {
            self.nodes[prev as usize].links[i].span += 1;
        }
        let next = self.forward(id, 0);
        if next == NIL {
            self.tail = id;
        } else {
            self.nodes[next as usize].backward = id;
        }
        self.len += 1;
    }

    /// Removes (score, member); false if absent.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let (update, _) = self.predecessors(score, member);
        let x = self.forward(update[0], 0);
        if x == NIL {
            return false;
        }
        let n = self.node(x);
        if n.score != score || n.member.as_bytes() != member {
            return false;
        }
        self.unlink(x, &update);
        true
    }

    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &prev) in update.iter().enumerate().take(self.level) {
            let prev = prev as usize;
            if self.nodes[prev].links[i].forward == x {
                let removed = self.nodes[x as usize].links[i];
                self.nodes[prev].links[i].span += removed.span;
                self.nodes[prev].links[i].span -= 1;
                self.nodes[prev].links[i].forward = removed.forward;
            } else {
                self.nodes[prev].links[i].span -= 1;
            }
        }
        let next = self.forward(x, 0);
        let back = self.node(x).backward;
        if next == NIL {
            self.tail = back;
        } else {
            self.nodes[next as usize].backward = back;
        }
        while self.level > 1 && self.forward(HEAD, self.level - 1) == NIL {
            self.level -= 1;
        }
        self.len -= 1;
        // Free the member's memory now; the slot is reused by the next insert.
        self.nodes[x as usize].member = Blob::new(b"");
        self.nodes[x as usize].links = SmallVec::new();
        self.free.push(x);
    }

    /// The 0-based rank of (score, member), if present.
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let mut x = HEAD;
        let mut rank = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let next = self.forward(x, i);
                if next == NIL {
                    break;
                }
                let n = self.node(next);
                if compare(n.score, n.member.as_bytes(), score, member) == Ordering::Greater {
                    break;
                }
                rank += self.node(x).links[i].span;
                x = next;
            }
            if x != HEAD && self.node(x).member.as_bytes() == member {
                return Some(rank as usize - 1);
            }
        }
        None
    }

    /// The node at 0-based `rank`.
    fn at_rank(&self, rank: usize) -> u32 {
        let target = rank as u32 + 1;
        let mut x = HEAD;
        let mut traversed = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let next = self.forward(x, i);
                let span = self.node(x).links[i].span;
                if next == NIL || traversed + span > target {
                    break;
                }
                traversed += span;
                x = next;
            }
            if traversed == target {
                return x;
            }
        }
        NIL
    }

    /// The first node for which `past_min` holds (nodes are ordered), as a rank.
    pub fn first_rank_where(&self, past_min: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut x = HEAD;
        let mut rank = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let next = self.forward(x, i);
                if next == NIL {
                    break;
                }
                let n = self.node(next);
                if past_min(n.score, n.member.as_bytes()) {
                    break;
                }
                rank += self.node(x).links[i].span;
                x = next;
            }
        }
        rank as usize
    }

    /// Iterates from 0-based `rank` towards the tail (or the head with `reverse`).
    pub fn iter_from(&self, rank: usize, reverse: bool) -> Iter<'_> {
        let start = if rank < self.len {
            self.at_rank(rank)
        } else {
            NIL
        };
        Iter {
            list: self,
            next: start,
            reverse,
        }
    }

    /// Removes the nodes at ranks `start..=end` (0-based, in range), returning
    /// them: one descent to the node before `start`, then unlinking forward with
    /// the same predecessors, O(log n + m) like Redis's zslDeleteRangeByRank.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> Vec<(Blob, f64)> {
        let mut update = [HEAD; MAX_LEVEL];
        let mut traversed = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let next = self.forward(x, i);
                let span = self.node(x).links[i].span as usize;
                if next == NIL || traversed + span > start {
                    break;
                }
                traversed += span;
                x = next;
            }
            update[i] = x;
        }
        let mut removed = Vec::with_capacity(end.saturating_sub(start) + 1);
        let mut x = self.forward(update[0], 0);
        for _ in start..=end {
            if x == NIL {
                break;
            }
            let next = self.forward(x, 0);
            let node = &mut self.nodes[x as usize];
            removed.push((
                std::mem::replace(&mut node.member, Blob::new(b"")),
                node.score,
            ));
            self.unlink(x, &update);
            x = next;
        }
        removed
    }
}

/// Walks nodes in order from a starting node.
pub struct Iter<'a> {
    list: &'a SkipList,
    next: u32,
    reverse: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next == NIL {
            return None;
        }
        let n = self.list.node(self.next);
        self.next = if self.reverse {
            n.backward
        } else {
            n.links[0].forward
        };
        Some((n.member.as_bytes(), n.score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn contents(list: &SkipList) -> Vec<(Vec<u8>, f64)> {
        list.iter_from(0, false)
            .map(|(m, s)| (m.to_vec(), s))
            .collect()
    }

    #[test]
    fn keeps_score_then_member_order() {
        let mut l = SkipList::default();
        for (s, m) in [(2.0, "b"), (1.0, "z"), (2.0, "a"), (3.0, "c")] {
            l.insert(s, Blob::new(m.as_bytes()));
        }
        let order: Vec<_> = contents(&l)
            .into_iter()
            .map(|(m, _)| String::from_utf8(m).unwrap())
            .collect();
        assert_eq!(order, ["z", "a", "b", "c"]);
        assert_eq!(l.rank(2.0, b"b"), Some(2));
        assert_eq!(l.rank(2.0, b"x"), None);
        let back: Vec<_> = l.iter_from(3, true).map(|(m, _)| m.to_vec()).collect();
        assert_eq!(
            back,
            [b"c".to_vec(), b"b".to_vec(), b"a".to_vec(), b"z".to_vec()]
        );
    }

    proptest! {
        /// Against a sorted vector: same order, ranks and removals, whatever the
        /// sequence of operations.
        #[test]
        fn behaves_like_a_sorted_vector(ops in proptest::collection::vec((0u8..3, 0u16..60, -5i16..5), 1..400)) {
            let mut list = SkipList::default();
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            for (op, member, score) in ops {
                let member = format!("m{member}").into_bytes();
                let score = f64::from(score);
                let existing = model.iter().position(|(_, m)| *m == member);
                match (op, existing) {
                    (0, None) => {
                        list.insert(score, Blob::new(&member));
                        model.push((score, member));
                    }
                    (1, Some(i)) => {
                        let (s, m) = model.remove(i);
                        prop_assert!(list.remove(s, &m));
                    }
                    (2, Some(i)) => {
                        let (s, m) = model[i].clone();
                        model.sort_by(|a, b| compare(a.0, &a.1, b.0, &b.1));
                        let rank = model.iter().position(|x| x.1 == m).unwrap();
                        prop_assert_eq!(list.rank(s, &m), Some(rank));
                        prop_assert_eq!(list.iter_from(rank, false).next().map(|x| x.0.to_vec()), Some(m));
                    }
                    _ => {}
                }
                prop_assert_eq!(list.len(), model.len());
            }
            model.sort_by(|a, b| compare(a.0, &a.1, b.0, &b.1));
            let mut expected: Vec<_> = model.iter().map(|(s, m)| (m.clone(), *s)).collect();
            prop_assert_eq!(contents(&list), expected.clone());
            if !model.is_empty() {
                // A middle run of ranks: what goes and what stays, in order.
                let (start, end) = (model.len() / 3, model.len() / 2);
                let removed: Vec<_> = list
                    .remove_ranks(start, end)
                    .into_iter()
                    .map(|(m, s)| (m.as_bytes().to_vec(), s))
                    .collect();
                let gone: Vec<_> = expected.splice(start..=end, []).collect();
                prop_assert_eq!(removed, gone);
                prop_assert_eq!(list.len(), expected.len());
                prop_assert_eq!(contents(&list), expected.clone());
                for (rank, (m, s)) in expected.iter().enumerate() {
                    prop_assert_eq!(list.rank(*s, m), Some(rank));
                }
            }
        }
    }
}
