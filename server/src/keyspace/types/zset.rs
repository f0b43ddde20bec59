//! Sorted sets: members ordered by score, then by member bytes.
//!
//! Small ones are a vector kept in order (Redis's listpack); large ones a hash map
//! from member to score beside an indexable skiplist, so every update, rank query and
//! range start costs O(log n). Both encodings are addressed by rank: ranges by score
//! or by member first find their starting rank, then walk.

use std::cmp::Ordering;

use indexmap::IndexMap;

use super::packed::Packed;
use super::skiplist::{compare, SkipList};
use super::EncodingLimits;
use crate::keyspace::table::KeyHasher;
use crate::keyspace::value::Blob;
use crate::protocol::number::parse_f64_saturating;

/// One end of a score range (`1.5`, `(1.5`, `-inf`, `+inf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    /// The score.
    pub value: f64,
    /// Excludes the score itself (written with a leading `(`).
    pub exclusive: bool,
}

impl ScoreBound {
    /// Parses Redis's syntax; `None` if it is not a float.
    pub fn parse(arg: &[u8]) -> Option<ScoreBound> {
        let (exclusive, number) = match arg.first() {
            Some(b'(') => (true, &arg[1..]),
            _ => (false, arg),
        };
        let value = parse_f64_saturating(number)?;
        (!value.is_nan()).then_some(ScoreBound { value, exclusive })
    }

    /// True if `score` is at or above this lower bound.
    pub fn admits_from_below(self, score: f64) -> bool {
        if self.exclusive {
            score > self.value
        } else {
            score >= self.value
        }
    }

    /// True if `score` is at or below this upper bound.
    pub fn admits_from_above(self, score: f64) -> bool {
        if self.exclusive {
            score < self.value
        } else {
            score <= self.value
        }
    }
}

/// One end of a member range (`[a`, `(a`, `-`, `+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound<'a> {
    /// Below every member.
    Min,
    /// Above every member.
    Max,
    /// This member, included.
    Inclusive(&'a [u8]),
    /// This member, excluded.
    Exclusive(&'a [u8]),
}

impl<'a> LexBound<'a> {
    /// Parses Redis's syntax; `None` when malformed.
    pub fn parse(arg: &'a [u8]) -> Option<LexBound<'a>> {
        match arg {
            b"-" => Some(LexBound::Min),
            b"+" => Some(LexBound::Max),
            [b'[', rest @ ..] => Some(LexBound::Inclusive(rest)),
            [b'(', rest @ ..] => Some(LexBound::Exclusive(rest)),
            _ => None,
        }
    }

    /// True if `member` is at or above this lower bound.
    pub fn admits_from_below(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Inclusive(b) => member >= *b,
            LexBound::Exclusive(b) => member > *b,
        }
    }

    /// True if `member` is at or below this upper bound.
    pub fn admits_from_above(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Inclusive(b) => member <= *b,
            LexBound::Exclusive(b) => member < *b,
        }
    }
}

/// A sorted set.
#[derive(Debug, Clone)]
pub enum ZSet {
    /// Few, short members, kept sorted: member and score (8 bytes) alternating.
    Small(Packed),
    /// Many or long members.
    Large {
        /// Member to score.
        scores: IndexMap<Blob, f64, KeyHasher>,
        /// The order.
        order: SkipList,
    },
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Small(Packed::default())
    }
}

/// The (member, score) pairs of a packed sorted set, in order.
fn scored(packed: &Packed) -> impl Iterator<Item = (&[u8], f64)> {
    let mut strings = packed.iter().map(|(_, s)| s);
    std::iter::from_fn(move || {
        let member = strings.next()?;
        let score = f64::from_le_bytes(strings.next()?.try_into().ok()?);
        Some((member, score))
    })
}

/// The position of the first pair not ordered before (score, member).
fn position(packed: &Packed, score: f64, member: &[u8]) -> usize {
    scored(packed)
        .take_while(|&(m, s)| compare(s, m, score, member) == Ordering::Less)
        .count()
}

impl ZSet {
    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            ZSet::Small(p) => p.len() / 2,
            ZSet::Large { scores, .. } => scores.len(),
        }
    }

    /// True when empty (an empty sorted set is removed from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Small(p) => scored(p).find(|&(m, _)| m == member).map(|(_, s)| s),
            ZSet::Large { scores, .. } => scores.get(member).copied(),
        }
    }

    /// Sets `member`'s score, adding it if new; true if it was added.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: &EncodingLimits) -> bool {
        if let ZSet::Large { scores, order } = self {
            // One hash lookup: a known member's score changes in place.
            return match scores.get_mut(member) {
                Some(old) if *old == score => false,
                Some(old) => {
                    let previous = std::mem::replace(old, score);
                    order.remove(previous, member);
                    order.insert(score, Blob::new(member));
                    false
                }
                None => {
                    scores.insert(Blob::new(member), score);
                    order.insert(score, Blob::new(member));
                    true
                }
            };
        }
        let old = self.score(member);
        if old == Some(score) {
            return false;
        }
        if let Some(old) = old {
            self.remove_scored(member, old);
        }
        if let ZSet::Small(p) = self {
            if p.len() / 2 < limits.zset_entries && member.len() <= limits.zset_value {
                let at = position(p, score, member);
                p.insert(2 * at, &score.to_le_bytes());
                p.insert(2 * at, member);
                return old.is_none();
            }
            self.convert();
        }
        if let ZSet::Large { scores, order } = self {
            scores.insert(Blob::new(member), score);
            order.insert(score, Blob::new(member));
        }
        old.is_none()
    }

    fn convert(&mut self) {
        if let ZSet::Small(p) = self {
            let mut scores = IndexMap::with_capacity_and_hasher(p.len() / 2 + 1, KeyHasher);
            let mut order = SkipList::default();
            for (member, score) in scored(p) {
                order.insert(score, Blob::new(member));
                scores.insert(Blob::new(member), score);
            }
            *self = ZSet::Large { scores, order };
        }
    }

    fn remove_scored(&mut self, member: &[u8], score: f64) {
        match self {
            ZSet::Small(p) => {
                let at = position(p, score, member);
                p.remove(2 * at, 2);
            }
            ZSet::Large { scores, order } => {
                scores.swap_remove(member);
                order.remove(score, member);
            }
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        if let ZSet::Large { scores, order } = self {
            // One hash lookup finds and removes the score.
            return match scores.swap_remove(member) {
                Some(score) => order.remove(score, member),
                None => false,
            };
        }
        match self.score(member) {
            Some(score) => {
                self.remove_scored(member, score);
                true
            }
            None => false,
        }
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        match self {
            ZSet::Small(p) => Some(position(p, score, member)),
            ZSet::Large { order, .. } => order.rank(score, member),
        }
    }

    /// Members from 0-based ascending `rank` on, towards higher ranks, or towards
    /// lower ones with `reverse`.
    pub fn iter_from(
        &self,
        rank: usize,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match self {
            ZSet::Small(p) => {
                let pairs: Vec<(&[u8], f64)> = scored(p).collect();
                if rank >= pairs.len() {
                    Box::new(std::iter::empty())
                } else if reverse {
                    Box::new(pairs.into_iter().take(rank + 1).rev())
                } else {
                    Box::new(pairs.into_iter().skip(rank))
                }
            }
            ZSet::Large { order, .. } => Box::new(order.iter_from(rank, reverse)),
        }
    }

    /// The number of members before the first one for which `reached` holds, the
    /// members being in ascending order and `reached` monotonic along it.
    pub fn rank_where(&self, reached: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Small(p) => scored(p).take_while(|&(m, s)| !reached(s, m)).count(),
            ZSet::Large { order, .. } => order.first_rank_where(reached),
        }
    }

    /// The ascending ranks `[first, last)` of members with scores in `min..max`.
    pub fn score_ranks(&self, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
        let first = self.rank_where(|s, _| min.admits_from_below(s));
        let end = self.rank_where(|s, _| !max.admits_from_above(s));
        (first, end.max(first))
    }

    /// The ascending ranks `[first, last)` of members in `min..max` by member
    /// order (meaningful when all scores are equal, as for Redis).
    pub fn lex_ranks(&self, min: &LexBound<'_>, max: &LexBound<'_>) -> (usize, usize) {
        let first = self.rank_where(|_, m| min.admits_from_below(m));
        let end = self.rank_where(|_, m| !max.admits_from_above(m));
        (first, end.max(first))
    }

    /// Removes and returns the lowest member (the highest if `max`).
    pub fn pop_end(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        let rank = if max { self.len().checked_sub(1)? } else { 0 };
        self.remove_ranks(rank, rank)
            .pop()
            .map(|(m, s)| (m.as_bytes().to_vec(), s))
    }

    /// Removes the members at ascending ranks `start..=end` (in range).
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> Vec<(Blob, f64)> {
        match self {
            ZSet::Small(p) => {
                let removed = scored(p)
                    .skip(start)
                    .take(end + 1 - start)
                    .map(|(m, s)| (Blob::new(m), s))
                    .collect();
                p.remove(2 * start, 2 * (end + 1 - start));
                removed
            }
            ZSet::Large { scores, order } => {
                let removed = order.remove_ranks(start, end);
                for (member, _) in &removed {
                    scores.swap_remove(member.as_bytes());
                }
                removed
            }
        }
    }

    /// The member at position `index` of the member index (for random picks and
    /// cursors; not the rank).
    pub fn entry_at(&self, index: usize) -> Option<(&[u8], f64)> {
        match self {
            ZSet::Small(p) => scored(p).nth(index),
            ZSet::Large { scores, .. } => scores.get_index(index).map(|(m, s)| (m.as_bytes(), *s)),
        }
    }

    /// True while the compact encoding is in use (`ZSCAN` returns everything then).
    pub fn is_compact(&self) -> bool {
        matches!(self, ZSet::Small(_))
    }

    /// The name `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Small(_) => "listpack",
            ZSet::Large { .. } => "skiplist",
        }
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        let pair = std::mem::size_of::<(Blob, f64)>();
        match self {
            ZSet::Small(p) => p.heap_size(),
            ZSet::Large { scores, .. } => {
                // The map entry and index, and a skiplist node (member copy, score,
                // back link, about 1.33 links of 8 bytes).
                scores.capacity() * (pair + 8 + 9)
                    + scores.len() * (pair + 8 + 24)
                    + scores.keys().map(|m| 2 * m.heap_size()).sum::<usize>()
            }
        }
    }
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter_from(0, false).eq(other.iter_from(0, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zset(limits: &EncodingLimits, items: &[(&str, f64)]) -> ZSet {
        let mut z = ZSet::default();
        for (m, s) in items {
            z.insert(m.as_bytes(), *s, limits);
        }
        z
    }

    fn members(z: &ZSet) -> Vec<String> {
        z.iter_from(0, false)
            .map(|(m, _)| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    #[test]
    fn both_encodings_answer_the_same() {
        let items = [("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.0), ("e", -1.0)];
        let small = zset(&EncodingLimits::default(), &items);
        let large = zset(
            &EncodingLimits {
                zset_entries: 2,
                ..EncodingLimits::default()
            },
            &items,
        );
        assert_eq!(small.encoding(), "listpack");
        assert_eq!(large.encoding(), "skiplist");
        for z in [&small, &large] {
            assert_eq!(members(z), ["e", "a", "b", "c", "d"]);
            assert_eq!(z.rank(b"c"), Some(3));
            assert_eq!(z.score(b"d"), Some(3.0));
            let min = ScoreBound::parse(b"(1").unwrap();
            let max = ScoreBound::parse(b"3").unwrap();
            assert_eq!(z.score_ranks(min, max), (2, 5));
            let back: Vec<_> = z.iter_from(2, true).map(|(m, _)| m.to_vec()).collect();
            assert_eq!(back, [b"b".to_vec(), b"a".to_vec(), b"e".to_vec()]);
        }
        assert_eq!(small, large);
    }

    #[test]
    fn updating_a_score_moves_the_member() {
        for limits in [
            EncodingLimits::default(),
            EncodingLimits {
                zset_entries: 1,
                ..EncodingLimits::default()
            },
        ] {
            let mut z = zset(&limits, &[("a", 1.0), ("b", 2.0)]);
            assert!(!z.insert(b"a", 5.0, &limits));
            assert_eq!(members(&z), ["b", "a"]);
            assert!(z.remove(b"b"));
            assert!(!z.remove(b"b"));
            assert_eq!(z.len(), 1);
        }
    }

    #[test]
    fn lex_ranges_use_member_order() {
        let z = zset(
            &EncodingLimits::default(),
            &[("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.0)],
        );
        let min = LexBound::parse(b"[b").unwrap();
        let max = LexBound::parse(b"(d").unwrap();
        assert_eq!(z.lex_ranks(&min, &max), (1, 3));
        assert_eq!(z.lex_ranks(&LexBound::Min, &LexBound::Max), (0, 4));
        assert_eq!(LexBound::parse(b"x"), None);
    }

    #[test]
    fn score_bounds_parse_redis_syntax() {
        assert_eq!(
            ScoreBound::parse(b"(1.5"),
            Some(ScoreBound {
                value: 1.5,
                exclusive: true
            })
        );
        assert_eq!(
            ScoreBound::parse(b"-inf").map(|b| b.value),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(ScoreBound::parse(b"x"), None);
    }

    #[test]
    fn removing_rank_ranges_keeps_both_structures_in_step() {
        let limits = EncodingLimits {
            zset_entries: 4,
            ..EncodingLimits::default()
        };
        let mut z = zset(
            &limits,
            &[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0), ("e", 5.0)],
        );
        let removed = z.remove_ranks(1, 3);
        assert_eq!(removed.len(), 3);
        assert_eq!(members(&z), ["a", "e"]);
        assert_eq!(z.score(b"c"), None);
        assert_eq!(z.len(), 2);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        /// Insert (score) or remove (`None`) one of a few members: ties and
        /// re-scoring happen often.
        fn ops() -> impl Strategy<Value = Vec<(u8, Option<i8>)>> {
            proptest::collection::vec((0u8..12, proptest::option::of(-3i8..4)), 0..80)
        }

        proptest! {
            #[test]
            fn packed_and_skiplist_encodings_match_a_model(ops in ops()) {
                let packed_limits = EncodingLimits { zset_entries: 1000, ..EncodingLimits::default() };
                let large_limits = EncodingLimits { zset_entries: 0, ..EncodingLimits::default() };
                let (mut packed, mut large) = (ZSet::default(), ZSet::default());
                let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
                for (m, score) in ops {
                    let member = [b'm', b'a' + m];
                    match score {
                        Some(s) => {
                            let added = model.insert(member.to_vec(), f64::from(s)).is_none();
                            prop_assert_eq!(packed.insert(&member, f64::from(s), &packed_limits), added);
                            prop_assert_eq!(large.insert(&member, f64::from(s), &large_limits), added);
                        }
                        None => {
                            let removed = model.remove(&member[..]).is_some();
                            prop_assert_eq!(packed.remove(&member), removed);
                            prop_assert_eq!(large.remove(&member), removed);
                        }
                    }
                }
                let mut expected: Vec<(Vec<u8>, f64)> = model.into_iter().collect();
                expected.sort_by(|a, b| compare(a.1, &a.0, b.1, &b.0));
                prop_assert!(packed.is_compact() && (expected.is_empty() || !large.is_compact()));
                for z in [&packed, &large] {
                    let got: Vec<(Vec<u8>, f64)> =
                        z.iter_from(0, false).map(|(m, s)| (m.to_vec(), s)).collect();
                    prop_assert_eq!(&got, &expected);
                    for (rank, (member, score)) in expected.iter().enumerate() {
                        prop_assert_eq!(z.rank(member), Some(rank));
                        prop_assert_eq!(z.score(member), Some(*score));
                    }
                    let (min, max) = (ScoreBound::parse(b"(0").unwrap(), ScoreBound::parse(b"2").unwrap());
                    let inside = expected.iter().filter(|(_, s)| *s > 0.0 && *s <= 2.0).count();
                    let (first, end) = z.score_ranks(min, max);
                    prop_assert_eq!(end - first, inside);
                }
            }
        }
    }
}
