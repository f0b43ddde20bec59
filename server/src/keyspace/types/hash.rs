//! Hashes: field-value maps. Small ones are packed field, value, field, value, ...
//! into one allocation and searched linearly (like Redis's listpack); beyond the
//! configured size they become an insertion-ordered hash map, which keeps `HSCAN`
//! cursors and `HRANDFIELD` cheap.

use indexmap::IndexMap;

use super::packed::Packed;
use super::EncodingLimits;
use crate::keyspace::table::KeyHasher;
use crate::keyspace::value::Blob;

/// A hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hash {
    /// Few, short fields: field and value strings alternating.
    Small(Packed),
    /// Many or long fields.
    Large(IndexMap<Blob, Blob, KeyHasher>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Small(Packed::default())
    }
}

/// The (field, value) pairs of a packed hash, with each pair's index.
fn pairs(packed: &Packed) -> impl Iterator<Item = (usize, &[u8], &[u8])> {
    let mut strings = packed.iter().map(|(_, s)| s);
    (0..).map_while(move |i| Some((i, strings.next()?, strings.next()?)))
}

impl Hash {
    /// Number of fields.
    pub fn len(&self) -> usize {
        match self {
            Hash::Small(p) => p.len() / 2,
            Hash::Large(m) => m.len(),
        }
    }

    /// True when there are no fields (an empty hash is removed from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Small(p) => pairs(p).find(|(_, f, _)| *f == field).map(|(_, _, v)| v),
            Hash::Large(m) => m.get(field).map(Blob::as_bytes),
        }
    }

    /// True if `field` exists.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field` to `value`; true if the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &EncodingLimits) -> bool {
        if let Hash::Small(packed) = self {
            let found = pairs(packed)
                .find(|(_, f, _)| *f == field)
                .map(|(i, _, _)| i);
            match found {
                Some(i) if value.len() <= limits.hash_value => {
                    packed.replace(2 * i + 1, value);
                    return false;
                }
                None if packed.len() / 2 < limits.hash_entries
                    && field.len() <= limits.hash_value
                    && value.len() <= limits.hash_value =>
                {
                    packed.push(field);
                    packed.push(value);
                    return true;
                }
                _ => {
                    let map = pairs(packed)
                        .map(|(_, f, v)| (Blob::new(f), Blob::new(v)))
                        .collect();
                    *self = Hash::Large(map);
                }
            }
        }
        match self {
            Hash::Large(m) => m.insert(Blob::new(field), Blob::new(value)).is_none(),
            Hash::Small(_) => unreachable!("converted above"),
        }
    }

    /// Removes `field`; true if it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Small(p) => {
                let found = pairs(p).find(|(_, f, _)| *f == field).map(|(i, _, _)| i);
                if let Some(i) = found {
                    p.remove(2 * i, 2);
                }
                found.is_some()
            }
            Hash::Large(m) => {
                let removed = m.swap_remove(field).is_some();
                if removed && m.capacity() > 64 && m.len() < m.capacity() / 8 {
                    m.shrink_to(m.len() * 2);
                }
                removed
            }
        }
    }

    /// All field-value pairs.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            Hash::Small(p) => Box::new(pairs(p).map(|(_, f, v)| (f, v))),
            Hash::Large(m) => Box::new(m.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes()))),
        }
    }

    /// The pair at position `index` (for random picks and cursors).
    pub fn entry_at(&self, index: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Small(p) => pairs(p).nth(index).map(|(_, f, v)| (f, v)),
            Hash::Large(m) => m
                .get_index(index)
                .map(|(f, v)| (f.as_bytes(), v.as_bytes())),
        }
    }

    /// True while the compact encoding is in use (`HSCAN` then returns everything
    /// in one call, as Redis does for listpacks).
    pub fn is_compact(&self) -> bool {
        matches!(self, Hash::Small(_))
    }

    /// The name `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Small(_) => "listpack",
            Hash::Large(_) => "hashtable",
        }
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        match self {
            Hash::Small(p) => p.heap_size(),
            Hash::Large(m) => {
                let pair = std::mem::size_of::<(Blob, Blob)>();
                m.capacity() * (pair + 8 + 9)
                    + m.iter()
                        .map(|(f, v)| f.heap_size() + v.heap_size())
                        .sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_hashes_stay_compact_until_a_limit_is_passed() {
        let limits = EncodingLimits {
            hash_entries: 4,
            hash_value: 8,
            ..EncodingLimits::default()
        };
        let mut h = Hash::default();
        for i in 0..4 {
            assert!(h.set(format!("f{i}").as_bytes(), b"v", &limits));
        }
        assert_eq!(h.encoding(), "listpack");
        assert!(!h.set(b"f0", b"updated", &limits));
        assert_eq!(h.get(b"f0"), Some(&b"updated"[..]));
        assert!(h.set(b"f4", b"v", &limits));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(b"f0"), Some(&b"updated"[..]));
    }

    #[test]
    fn a_long_value_converts_at_once() {
        let limits = EncodingLimits::default();
        let mut h = Hash::default();
        h.set(b"f", b"short", &limits);
        h.set(b"f", &[b'x'; 100], &limits);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"f").map(<[u8]>::len), Some(100));
    }

    #[test]
    fn remove_works_in_both_encodings() {
        let limits = EncodingLimits {
            hash_entries: 2,
            ..EncodingLimits::default()
        };
        let mut h = Hash::default();
        h.set(b"a", b"1", &limits);
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        for f in [b"a", b"b", b"c"] {
            h.set(f, b"1", &limits);
        }
        assert!(h.remove(b"b"));
        assert_eq!(h.len(), 2);
        assert!(h.contains(b"c"));
    }
}
