//! The value types: strings, lists, hashes, sets, sorted sets and streams,
//! and the HyperLogLog representation strings may hold.
//!
//! Each keeps small collections in a compact encoding (a flat vector searched
//! linearly, like Redis's listpack; sorted integers for small integer sets, like
//! its intset) and converts once to a hashed or ordered structure when a size
//! threshold from the configuration is passed. Like Redis, a collection never
//! converts back.

mod hash;
pub mod hll;
mod list;
mod listpack;
mod lock;
mod packed;
mod set;
mod skiplist;
pub mod stream;
mod string;
mod zset;

pub use hash::Hash;
pub use list::{End, List};
pub use lock::{FencingTokens, Lock, Release, TokenOutOfRange, TOKEN_BLOCK};
pub use set::Set;
pub use skiplist::compare as compare_scored;
pub use stream::Stream;
pub use string::Str;
pub use zset::{LexBound, ScoreBound, ZSet};

/// The thresholds that decide when a small encoding converts (Redis's
/// `*-max-listpack-*` and `set-max-intset-entries` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingLimits {
    /// Most fields in a compact hash.
    pub hash_entries: usize,
    /// Longest field or value in a compact hash.
    pub hash_value: usize,
    /// Most members in an integer set.
    pub set_intset: usize,
    /// Most members in a compact set.
    pub set_entries: usize,
    /// Longest member in a compact set.
    pub set_value: usize,
    /// Most members in a compact sorted set.
    pub zset_entries: usize,
    /// Longest member in a compact sorted set.
    pub zset_value: usize,
    /// Redis's `list-max-listpack-size`: negative for a byte limit (-1 = 4 KiB ...
    /// -5 = 64 KiB), positive for an element count.
    pub list_size: i64,
    /// Most bytes in a stream node (`stream-node-max-bytes`; 0: no limit).
    pub stream_node_bytes: usize,
    /// Most entries in a stream node (`stream-node-max-entries`; 0: no limit).
    pub stream_node_entries: u64,
}

impl EncodingLimits {
    /// The stream node limits.
    pub fn stream_nodes(&self) -> stream::NodeLimits {
        stream::NodeLimits {
            bytes: self.stream_node_bytes,
            entries: self.stream_node_entries,
        }
    }
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_entries: 128,
            hash_value: 64,
            set_intset: 512,
            set_entries: 128,
            set_value: 64,
            zset_entries: 128,
            zset_value: 64,
            list_size: -2,
            stream_node_bytes: 4096,
            stream_node_entries: 100,
        }
    }
}

/// Redis's inclusive index range `[start, stop]` of a list or sorted set of
/// `len` elements (negative indexes count from the end), clamped; `None` when
/// empty.
pub fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

/// A member of a set as stored: integer sets hold numbers, the others bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    /// From an integer set.
    Int(i64),
    /// Bytes.
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The member's bytes (integers formatted).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Member::Int(n) => itoa::Buffer::new().format(n).as_bytes().to_vec(),
            Member::Bytes(b) => b.to_vec(),
        }
    }
}
