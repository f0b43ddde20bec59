//! Sets. Small sets of integers are a sorted vector of numbers (Redis's intset),
//! other small sets a flat vector searched linearly (its listpack), and large sets
//! an insertion-ordered hash set, which keeps `SPOP`, `SRANDMEMBER` and `SSCAN`
//! cheap.

use indexmap::IndexSet;

use super::packed::Packed;
use super::{EncodingLimits, Member};
use crate::keyspace::table::KeyHasher;
use crate::keyspace::value::Blob;
use crate::protocol::number::parse_i64;

/// A set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Set {
    /// Only integers, few of them: sorted.
    Ints(Vec<i64>),
    /// Few, short members, packed.
    Small(Packed),
    /// Many or long members.
    Large(IndexSet<Blob, KeyHasher>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Ints(Vec::new())
    }
}

impl Set {
    /// An empty set suited to hold `first` (as Redis picks the encoding on
    /// creation).
    pub fn for_member(first: &[u8], limits: &EncodingLimits) -> Self {
        if parse_i64(first).is_some() && limits.set_intset > 0 {
            Set::Ints(Vec::new())
        } else if first.len() <= limits.set_value && limits.set_entries > 0 {
            Set::Small(Packed::default())
        } else {
            Set::Large(IndexSet::default())
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            Set::Ints(v) => v.len(),
            Set::Small(p) => p.len(),
            Set::Large(s) => s.len(),
        }
    }

    /// True when empty (an empty set is removed from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => parse_i64(member).is_some_and(|n| v.binary_search(&n).is_ok()),
            Set::Small(p) => p.iter().any(|(_, m)| m == member),
            Set::Large(s) => s.contains(member),
        }
    }

    /// Adds `member`; true if it was not there.
    pub fn add(&mut self, member: &[u8], limits: &EncodingLimits) -> bool {
        match self {
            Set::Ints(v) => {
                if let Some(n) = parse_i64(member) {
                    match v.binary_search(&n) {
                        Ok(_) => return false,
                        Err(at) if v.len() < limits.set_intset => {
                            v.insert(at, n);
                            return true;
                        }
                        Err(_) => {}
                    }
                }
                self.widen(limits, member.len());
                self.add(member, limits)
            }
            Set::Small(p) => {
                if p.iter().any(|(_, m)| m == member) {
                    return false;
                }
                if p.len() < limits.set_entries && member.len() <= limits.set_value {
                    p.push(member);
                    return true;
                }
                self.widen(limits, usize::MAX);
                self.add(member, limits)
            }
            Set::Large(s) => s.insert(Blob::new(member)),
        }
    }

    /// Converts to the next encoding able to take a member of `next_len` bytes.
    fn widen(&mut self, limits: &EncodingLimits, next_len: usize) {
        let members: Vec<Vec<u8>> = self.iter().map(Member::to_vec).collect();
        if let Set::Large(_) = self {
            return;
        }
        *self = if matches!(self, Set::Ints(_))
            && members.len() < limits.set_entries
            && next_len <= limits.set_value
        {
            let mut packed = Packed::default();
            members.iter().for_each(|m| packed.push(m));
            Set::Small(packed)
        } else {
            Set::Large(members.iter().map(|m| Blob::new(m)).collect())
        };
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => match parse_i64(member).map(|n| v.binary_search(&n)) {
                Some(Ok(at)) => {
                    v.remove(at);
                    true
                }
                _ => false,
            },
            Set::Small(p) => {
                let found = p.iter().position(|(_, m)| m == member);
                if let Some(at) = found {
                    p.remove(at, 1);
                }
                found.is_some()
            }
            Set::Large(s) => {
                let removed = s.swap_remove(member);
                if removed && s.capacity() > 64 && s.len() < s.capacity() / 8 {
                    s.shrink_to(s.len() * 2);
                }
                removed
            }
        }
    }

    /// The member at position `index` (for random picks and cursors).
    pub fn member_at(&self, index: usize) -> Option<Member<'_>> {
        match self {
            Set::Ints(v) => v.get(index).map(|&n| Member::Int(n)),
            Set::Small(p) => p.get(index).map(Member::Bytes),
            Set::Large(s) => s.get_index(index).map(|m| Member::Bytes(m.as_bytes())),
        }
    }

    /// Removes and returns a random member.
    pub fn pop_random(&mut self) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let index = rand::random_range(0..self.len());
        let member = self.member_at(index)?.to_vec();
        self.remove(&member);
        Some(member)
    }

    /// All members.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Member<'_>> + '_> {
        match self {
            Set::Ints(v) => Box::new(v.iter().map(|&n| Member::Int(n))),
            Set::Small(p) => Box::new(p.iter().map(|(_, m)| Member::Bytes(m))),
            Set::Large(s) => Box::new(s.iter().map(|m| Member::Bytes(m.as_bytes()))),
        }
    }

    /// True while a compact encoding is in use (`SSCAN` then returns everything in
    /// one call, as Redis does).
    pub fn is_compact(&self) -> bool {
        !matches!(self, Set::Large(_))
    }

    /// The name `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Small(_) => "listpack",
            Set::Large(_) => "hashtable",
        }
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        match self {
            Set::Ints(v) => v.capacity() * 8,
            Set::Small(p) => p.heap_size(),
            Set::Large(s) => {
                s.capacity() * (std::mem::size_of::<Blob>() + 8 + 9)
                    + s.iter().map(Blob::heap_size).sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_sets_widen_when_needed() {
        let limits = EncodingLimits {
            set_intset: 3,
            set_entries: 4,
            ..EncodingLimits::default()
        };
        let mut s = Set::for_member(b"1", &limits);
        for m in ["3", "1", "2"] {
            s.add(m.as_bytes(), &limits);
        }
        assert_eq!(s.encoding(), "intset");
        assert!(!s.add(b"2", &limits));
        assert!(s.add(b"x", &limits));
        assert_eq!(s.encoding(), "listpack");
        assert!(s.contains(b"1") && s.contains(b"x"));
        assert!(s.add(b"y", &limits));
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn too_many_integers_leave_the_intset() {
        let limits = EncodingLimits {
            set_intset: 2,
            ..EncodingLimits::default()
        };
        let mut s = Set::for_member(b"1", &limits);
        for n in 0..5 {
            s.add(n.to_string().as_bytes(), &limits);
        }
        assert_eq!(s.encoding(), "listpack");
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn non_canonical_integers_are_not_integers() {
        let limits = EncodingLimits::default();
        let mut s = Set::for_member(b"1", &limits);
        s.add(b"1", &limits);
        s.add(b"01", &limits);
        assert_eq!(s.len(), 2);
        assert!(s.contains(b"01") && s.contains(b"1"));
    }

    #[test]
    fn pop_random_empties_the_set() {
        let limits = EncodingLimits::default();
        let mut s = Set::for_member(b"a", &limits);
        for m in ["a", "b", "c"] {
            s.add(m.as_bytes(), &limits);
        }
        let mut popped: Vec<Vec<u8>> = std::iter::from_fn(|| s.pop_random()).collect();
        popped.sort();
        assert_eq!(popped, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }
}
