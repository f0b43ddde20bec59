//! What the keyspace stores: keys, values and their metadata.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use compact_bytes::CompactBytes;

use crate::clock::Millis;
use crate::protocol::number::parse_i64;

/// A key. Keys of up to 23 bytes live inline, without a heap allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(CompactBytes);

impl Key {
    /// A key holding a copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        Key(CompactBytes::new(bytes))
    }

    /// The key's bytes.
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

// Hashes exactly like `[u8]`, so tables keyed by `Key` can be searched with `&[u8]`.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A value of one of the Redis data types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string that is not a canonical integer. Short strings live inline.
    Str(CompactBytes),
    /// A string that is a canonical 64-bit integer, stored as a number.
    Int(i64),
}

/// Longest string Redis stores with the `embstr` encoding.
const EMBSTR_MAX: usize = 44;

impl Value {
    /// A string value; canonical integers are stored as numbers, as Redis does.
    pub fn string(bytes: &[u8]) -> Self {
        match parse_i64(bytes) {
            Some(n) => Value::Int(n),
            None => Value::Str(CompactBytes::new(bytes)),
        }
    }

    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::Int(_) => "string",
        }
    }

    /// The name `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Str(s) if s.len() <= EMBSTR_MAX => "embstr",
            Value::Str(_) => "raw",
        }
    }

    /// Heap bytes owned by the value.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) if s.spilled() => s.capacity(),
            Value::Str(_) | Value::Int(_) => 0,
        }
    }
}

/// A value with its expiry and access time.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 for none. Only the table changes it, so
    /// that its count of keys with a TTL stays right.
    pub(super) expire_at: Millis,
    /// Last access, in Unix seconds (for `OBJECT IDLETIME` and LRU eviction).
    pub(super) access: u32,
}

impl Entry {
    /// When the entry expires, if it has a TTL.
    pub fn expire_at(&self) -> Option<Millis> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    /// True if the entry has expired at `now`.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }

    /// Seconds since the entry was last read or written.
    pub fn idle_seconds(&self, now: Millis) -> u64 {
        (now / 1000).saturating_sub(u64::from(self.access))
    }
}

/// Converts Unix milliseconds to the entry access-time resolution.
pub(super) fn access_stamp(now: Millis) -> u32 {
    (now / 1000) as u32
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
    fn short_keys_need_no_heap() {
        assert_eq!(Key::new(b"user:12345").heap_size(), 0);
        assert!(Key::new(&[b'k'; 64]).heap_size() >= 64);
    }
}
