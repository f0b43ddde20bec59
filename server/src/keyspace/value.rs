//! What the keyspace stores: keys, values and their metadata.

use std::borrow::Borrow;
use std::hash::{Hash as StdHash, Hasher};

use compact_bytes::CompactBytes;

use super::types::{Hash, List, Lock, Set, Str, Stream, ZSet};
use crate::clock::Millis;
use crate::protocol::number::parse_i64;

/// An immutable byte string: keys, hash fields, set and sorted-set members. Up to
/// 23 bytes live inline, without a heap allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob(CompactBytes);

/// A key.
pub type Key = Blob;

impl Blob {
    /// A blob holding a copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        Blob(CompactBytes::new(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Heap bytes owned beyond the inline representation.
    pub fn heap_size(&self) -> usize {
        if self.0.spilled() {
            self.0.capacity()
        } else {
            0
        }
    }
}

// Hashes exactly like `[u8]`, so tables keyed by `Blob` can be searched with `&[u8]`.
impl StdHash for Blob {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Ord for Blob {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for Blob {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Borrow<[u8]> for Blob {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A value of one of the Redis data types (24 bytes).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string that is not a canonical integer. Short strings live inline.
    Str(Str),
    /// A string that is a canonical 64-bit integer, stored as a number.
    Int(i64),
    /// A list.
    List(Box<List>),
    /// A hash.
    Hash(Box<Hash>),
    /// A set.
    Set(Box<Set>),
    /// A sorted set.
    ZSet(Box<ZSet>),
    /// A stream.
    Stream(Box<Stream>),
    /// A native lock (`LOCK.ACQUIRE`).
    Lock(Box<Lock>),
    /// A cached "known absent" (`CACHE.FILL ... NULL`): plain `GET` answers nil.
    Absent,
    /// A fill lease on a missing key (`CACHE.GET`): the token the filler must
    /// present. Plain `GET` answers nil.
    Lease(u64),
}

/// Longest string Redis stores with the `embstr` encoding.
const EMBSTR_MAX: usize = 44;

impl Value {
    /// A string value; canonical integers are stored as numbers, as Redis does.
    pub fn string(bytes: &[u8]) -> Self {
        match parse_i64(bytes) {
            Some(n) => Value::Int(n),
            None => Value::Str(Str::new(bytes)),
        }
    }

    /// The bytes of a string value (an integer as its digits); `None` for
    /// other types.
    pub fn string_bytes(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self {
            Value::Str(s) => Some(std::borrow::Cow::Borrowed(s.as_bytes())),
            Value::Int(n) => Some(std::borrow::Cow::Owned(
                itoa::Buffer::new().format(*n).as_bytes().to_vec(),
            )),
            _ => None,
        }
    }

    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::Int(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
            Value::Lock(_) => "lock",
            Value::Absent => "cache-null",
            Value::Lease(_) => "cache-lease",
        }
    }

    /// True for the cache placeholders that read as a missing string.
    pub fn reads_as_nil(&self) -> bool {
        matches!(self, Value::Absent | Value::Lease(_))
    }

    /// The name `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            // As Redis: a string edited in place is `raw` at any length.
            Value::Str(s) if s.len() <= EMBSTR_MAX && !s.edited() => "embstr",
            Value::Str(_) => "raw",
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
            Value::Lock(_) => "lock",
            Value::Absent => "cache-null",
            Value::Lease(_) => "cache-lease",
        }
    }

    /// Heap bytes owned by the value.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::Int(_) => 0,
            Value::List(l) => std::mem::size_of::<List>() + l.heap_size(),
            Value::Hash(h) => std::mem::size_of::<Hash>() + h.heap_size(),
            Value::Set(s) => std::mem::size_of::<Set>() + s.heap_size(),
            Value::ZSet(z) => std::mem::size_of::<ZSet>() + z.heap_size(),
            Value::Stream(s) => std::mem::size_of::<Stream>() + s.heap_size(),
            Value::Lock(l) => l.heap_size(),
            Value::Absent | Value::Lease(_) => 0,
        }
    }

    /// The fencing token a lock or a fill lease carries.
    pub fn fencing_token(&self) -> Option<u64> {
        match self {
            Value::Lock(lock) => Some(lock.token()),
            Value::Lease(token) => Some(*token),
            _ => None,
        }
    }

    /// True for a collection with no elements, which Redis never keeps.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            // An empty stream is kept, as in Redis.
            Value::Str(_)
            | Value::Int(_)
            | Value::Stream(_)
            | Value::Lock(_)
            | Value::Absent
            | Value::Lease(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

/// A key's value and expiry as a table hands them out: `V` is `&Value` when
/// looking, `&mut Value` when changing it in place, and `Value` once removed.
#[derive(Debug)]
pub struct Entry<V> {
    /// The value.
    pub value: V,
    /// Absolute expiry in Unix milliseconds; 0 for none.
    pub(super) expire_at: Millis,
}

impl<V> Entry<V> {
    /// When the entry expires, if it has a TTL.
    pub fn expire_at(&self) -> Option<Millis> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    /// True if the entry has expired at `now`.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }
}

impl Entry<&Value> {
    /// An owned copy.
    pub fn cloned(&self) -> Entry<Value> {
        Entry {
            value: self.value.clone(),
            expire_at: self.expire_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_are_stored_as_numbers() {
        assert_eq!(Value::string(b"123"), Value::Int(123));
        assert_eq!(Value::string(b"0123").encoding(), "embstr");
        assert_eq!(Value::string(b"-5").encoding(), "int");
        assert_eq!(Value::string(&[b'a'; 45]).encoding(), "raw");
    }

    #[test]
    fn values_stay_small() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::size_of::<(Key, Value)>(), 48);
    }

    #[test]
    fn short_keys_need_no_heap() {
        assert_eq!(Key::new(b"user:12345").heap_size(), 0);
        assert!(Key::new(&[b'k'; 64]).heap_size() >= 64);
    }
}
