//! String values that are not numbers. Up to 22 bytes live inline. Longer ones
//! own a heap buffer, exactly sized until the string grows, then with room to
//! grow more by Redis's rule; or, for a large request argument, the very buffer
//! it was received into, kept without a copy.
//!
//! The type is 24 bytes and its tag leaves room for `Value`'s other variants, so
//! a whole `Value` stays 24 bytes: a cache of millions of short strings pays no
//! heap allocation and no padding for them.

use std::sync::Arc;

/// Longest string stored inline.
pub const INLINE_MAX: usize = 22;

/// A string growing past this gets this much room, not its own length again
/// (Redis's `SDS_MAX_PREALLOC`): appends stay amortised without doubling a
/// huge string's memory.
const PREALLOC_MAX: usize = 1 << 20;

/// A byte string.
#[derive(Clone)]
pub enum Str {
    /// Short: the bytes in place.
    Inline {
        /// Bytes used in `buf`, with [`EDITED_INLINE`] set once edited.
        len: u8,
        /// The bytes.
        buf: [u8; INLINE_MAX],
    },
    /// Long: the whole allocation, whose last `spare` bytes are room to grow.
    /// Always below 1 MiB plus the length (the growth rule), so `u32` holds it
    /// and the variant fits beside the tag.
    Heap {
        /// The allocation: the string, then `spare` unused bytes.
        buf: Box<[u8]>,
        /// Unused bytes at the end of `buf`, with [`EDITED_HEAP`] set once
        /// edited.
        spare: u32,
    },
    /// A large request argument, in the buffer the connection received it into.
    /// Clones share the buffer; a change copies it first only while it is
    /// shared, and grows it by the same rule as `Heap`.
    Shared(Arc<Vec<u8>>),
}

/// Set in an inline string's length once the string has been edited in
/// place: Redis then reports its encoding as `raw`, whatever its length
/// (lengths need 5 bits).
const EDITED_INLINE: u8 = 0x80;

/// The same flag in a heap string's spare room (below 2^31: 1 MiB beyond a
/// length limited to 512 MiB).
const EDITED_HEAP: u32 = 1 << 31;

/// The capacity Redis's `sdsMakeRoomFor` gives a string growing to `len`
/// bytes: double below 1 MiB, 1 MiB of room above.
fn grown_capacity(len: usize) -> usize {
    if len < PREALLOC_MAX {
        len * 2
    } else {
        len + PREALLOC_MAX
    }
}

impl Str {
    const EMPTY: Str = Str::Inline {
        len: 0,
        buf: [0; INLINE_MAX],
    };

    /// A string holding a copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE_MAX {
            let mut buf = [0; INLINE_MAX];
            buf[..bytes.len()].copy_from_slice(bytes);
            Str::Inline {
                len: bytes.len() as u8,
                buf,
            }
        } else {
            Str::Heap {
                buf: bytes.into(),
                spare: 0,
            }
        }
    }

    /// A string held in `bytes`, a large request argument, without copying it.
    pub fn shared(bytes: Arc<Vec<u8>>) -> Self {
        if bytes.len() <= INLINE_MAX {
            Str::new(&bytes)
        } else {
            Str::Shared(bytes)
        }
    }

    /// `offset` zero bytes followed by `bytes` (`SETRANGE` on a missing key):
    /// one allocation of the final size, from zeroed memory the allocator
    /// need not touch, so a huge offset costs only the pages written.
    pub fn padded(offset: usize, bytes: &[u8]) -> Self {
        let end = offset + bytes.len();
        if end <= INLINE_MAX {
            let mut s = Str::EMPTY;
            s.write_at(offset, bytes);
            return s;
        }
        let mut buf = vec![0; end].into_boxed_slice();
        buf[offset..].copy_from_slice(bytes);
        Str::Heap {
            buf,
            spare: EDITED_HEAP,
        }
    }

    /// A string a command built in `bytes` (a HyperLogLog), keeping their
    /// allocation (and its room to grow, within the growth rule) when they do
    /// not fit inline. Marked edited: Redis's are `raw` strings.
    pub fn from_vec(mut bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        if len <= INLINE_MAX {
            let mut s = Str::new(&bytes);
            if let Str::Inline { len, .. } = &mut s {
                *len |= EDITED_INLINE;
            }
            return s;
        }
        if bytes.capacity() > grown_capacity(len) {
            bytes.shrink_to_fit();
        }
        // The room becomes the buffer's tail: no copy, no reallocation.
        let spare = bytes.capacity() - len;
        bytes.resize(bytes.capacity(), 0);
        Str::Heap {
            buf: bytes.into_boxed_slice(),
            spare: spare as u32 | EDITED_HEAP,
        }
    }

    /// The bytes as a vector to change, without a copy for a heap string
    /// (or a buffer no other value shares).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Str::Inline { len, buf } => buf[..usize::from(len & !EDITED_INLINE)].to_vec(),
            Str::Heap { buf, spare } => {
                let len = buf.len() - (spare & !EDITED_HEAP) as usize;
                let mut bytes = buf.into_vec();
                bytes.truncate(len);
                bytes
            }
            Str::Shared(bytes) => Arc::try_unwrap(bytes).unwrap_or_else(|shared| (*shared).clone()),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Str::Inline { len, buf } => &buf[..usize::from(*len & !EDITED_INLINE)],
            Str::Heap { buf, spare } => &buf[..buf.len() - (*spare & !EDITED_HEAP) as usize],
            Str::Shared(bytes) => bytes,
        }
    }

    /// True once the string has been edited in place (`APPEND`, `SETRANGE`,
    /// `SETBIT`...), or made by padding, as Redis's `raw` strings are.
    pub fn edited(&self) -> bool {
        match self {
            Str::Inline { len, .. } => len & EDITED_INLINE != 0,
            Str::Heap { spare, .. } => spare & EDITED_HEAP != 0,
            Str::Shared(_) => true,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes owned: the whole allocation, room to grow included.
    pub fn heap_size(&self) -> usize {
        match self {
            Str::Inline { .. } => 0,
            Str::Heap { buf, .. } => buf.len(),
            // The shared block: two reference counts and the vector, then the bytes.
            Str::Shared(bytes) => {
                2 * std::mem::size_of::<usize>() + std::mem::size_of::<Vec<u8>>() + bytes.capacity()
            }
        }
    }

    /// Appends `bytes`.
    pub fn append(&mut self, bytes: &[u8]) {
        let len = self.len();
        self.resize(len + bytes.len())[len..].copy_from_slice(bytes);
    }

    /// Overwrites from `offset` with `bytes`, zero-padding any gap (`SETRANGE`).
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        let len = self.len();
        let end = offset + bytes.len();
        let buf = self.resize(end.max(len));
        if offset > len {
            buf[len..offset].fill(0);
        }
        buf[offset..end].copy_from_slice(bytes);
    }

    /// Zero-pads the string to at least `len` bytes and returns its bytes to
    /// edit in place (`SETBIT`, `BITFIELD`).
    pub fn grow_zeroed(&mut self, len: usize) -> &mut [u8] {
        let old = self.len();
        let buf = self.resize(len.max(old));
        if len > old {
            buf[old..].fill(0);
        }
        buf
    }

    /// Makes the string `new_len` bytes long (at least its length) and returns
    /// its bytes to write; bytes past the old length are unspecified. Grows the
    /// allocation only when it has no room left, by Redis's rule.
    fn resize(&mut self, new_len: usize) -> &mut [u8] {
        let room = match self {
            Str::Inline { .. } => new_len <= INLINE_MAX,
            Str::Heap { buf, .. } => buf.len() >= new_len,
            Str::Shared(_) => true,
        };
        if !room {
            self.reallocate(new_len);
        }
        match self {
            Str::Inline { len, buf } => {
                *len = new_len as u8 | EDITED_INLINE;
                &mut buf[..new_len]
            }
            Str::Heap { buf, spare } => {
                // At most the old room (or what `reallocate` left), so it fits.
                *spare = (buf.len() - new_len) as u32 | EDITED_HEAP;
                &mut buf[..new_len]
            }
            Str::Shared(bytes) => {
                // Copies only if another value still shares the buffer.
                let v = Arc::make_mut(bytes);
                if new_len > v.capacity() {
                    v.reserve_exact(grown_capacity(new_len) - v.len());
                }
                v.resize(new_len, 0);
                v
            }
        }
    }

    /// Moves an inline or heap string to a heap allocation with room for
    /// `new_len` bytes by Redis's growth rule, reusing the old allocation
    /// (grown in place where the allocator can).
    fn reallocate(&mut self, new_len: usize) {
        let len = self.len();
        let capacity = grown_capacity(new_len);
        let buf = match std::mem::replace(self, Str::EMPTY) {
            Str::Heap { buf, .. } => {
                let mut v = buf.into_vec();
                v.truncate(len);
                v.reserve_exact(capacity - len);
                v.resize(capacity, 0);
                v.into_boxed_slice()
            }
            Str::Shared(bytes) => {
                *self = Str::Shared(bytes);
                return;
            }
            inline => {
                let mut buf = vec![0; capacity].into_boxed_slice();
                buf[..len].copy_from_slice(inline.as_bytes());
                buf
            }
        };
        // Now `new_len` long, the added bytes zero; the room left is below 1 MiB
        // or the new length, whichever is larger.
        *self = Str::Heap {
            spare: (capacity - new_len) as u32,
            buf,
        };
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl std::fmt::Debug for Str {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_in_place_mark_the_string_as_edited() {
        let short = Str::new(b"abc");
        let long = Str::new(&[b'x'; 30]);
        assert!(!short.edited() && !long.edited());
        for mut s in [short, long] {
            let len = s.len();
            s.write_at(1, b"y");
            assert!(s.edited());
            assert_eq!(s.len(), len);
            s.append(b"z");
            assert_eq!(s.len(), len + 1);
            assert!(s.as_bytes().ends_with(b"z"));
        }
        assert!(Str::padded(3, b"a").edited() && Str::padded(40, b"a").edited());
        let mut grown = Str::new(&[b'x'; 10]);
        grown.append(&[b'y'; 20]);
        assert!(grown.edited());
        assert_eq!(grown.len(), 30);
    }

    #[test]
    fn short_strings_are_inline_and_long_ones_exact() {
        assert_eq!(std::mem::size_of::<Str>(), 24);
        let short = Str::new(b"value:0000000042");
        assert_eq!(short.heap_size(), 0);
        assert_eq!(short.as_bytes(), b"value:0000000042");
        let long = Str::new(&[b'x'; 23]);
        assert_eq!(long.heap_size(), 23);
    }

    #[test]
    fn appends_and_writes_cross_the_inline_limit() {
        let mut s = Str::new(b"hello");
        s.append(b" world");
        assert_eq!(s.as_bytes(), b"hello world");
        s.append(&[b'!'; 20]);
        assert_eq!(s.len(), 31);
        assert!(s.heap_size() >= 31);
        s.write_at(0, b"J");
        assert_eq!(&s.as_bytes()[..5], b"Jello");
        let mut t = Str::new(b"");
        t.write_at(3, b"ab");
        assert_eq!(t.as_bytes(), b"\0\0\0ab");
        t.write_at(40, b"z");
        assert_eq!(t.len(), 41);
        assert_eq!(t.as_bytes()[40], b'z');
        assert!(t.as_bytes()[5..40].iter().all(|&b| b == 0));
    }

    #[test]
    fn growth_follows_redis_rule_double_then_one_mib_of_room() {
        let mut s = Str::new(&[b'a'; 100]);
        s.append(b"b");
        assert_eq!(s.heap_size(), 202);
        assert_eq!(s.len(), 101);
        // Appends within the room reuse the allocation.
        s.append(&[b'c'; 101]);
        assert_eq!((s.len(), s.heap_size()), (202, 202));
        let mut big = Str::new(&vec![b'x'; 1 << 20]);
        big.append(b"y");
        assert_eq!(big.heap_size(), (1 << 20) + 1 + (1 << 20));
        assert_eq!(big.as_bytes().last(), Some(&b'y'));
    }

    #[test]
    fn repeated_appends_reallocate_a_logarithmic_or_per_mib_number_of_times() {
        let count_growths = |chunk: usize, rounds: usize| {
            let mut s = Str::new(b"");
            let mut growths = 0;
            let mut capacity = s.heap_size();
            for _ in 0..rounds {
                s.append(&vec![b'z'; chunk]);
                if s.heap_size() != capacity {
                    growths += 1;
                    capacity = s.heap_size();
                }
            }
            assert_eq!(s.len(), chunk * rounds);
            assert!(s.heap_size() <= grown_capacity(chunk * rounds));
            growths
        };
        // One byte at a time up to 100 KB: doubling, about 17 growths.
        assert!(count_growths(1, 100_000) <= 20);
        // 512 KiB at a time up to 4 MiB: capacities 1, 2.5 and 4 MiB. (Small
        // enough not to disturb the allocation-counting test on another thread.)
        assert_eq!(count_growths(512 << 10, 8), 3);
    }

    #[test]
    fn a_sole_shared_buffer_is_changed_in_place() {
        let data = Arc::new(vec![b'q'; 4096]);
        let at = data.as_ptr();
        let mut s = Str::shared(data);
        assert_eq!(s.len(), 4096);
        assert!(s.heap_size() >= 4096);
        s.write_at(10, b"hi");
        assert_eq!(s.as_bytes().as_ptr(), at);
        assert_eq!(&s.as_bytes()[9..13], b"qhiq");
        s.append(b"!");
        assert_eq!(s.heap_size(), 40 + 2 * 4097);
    }

    #[test]
    fn a_buffer_still_shared_is_copied_before_a_change() {
        let data = Arc::new(vec![b'q'; 100]);
        let mut s = Str::shared(data.clone());
        s.append(b"!");
        assert_eq!(s.len(), 101);
        assert_eq!(data.len(), 100);
        assert!(data.iter().all(|&b| b == b'q'));
    }

    #[test]
    fn vectors_move_in_and_out_of_heap_strings_without_a_copy() {
        let mut bytes = Vec::with_capacity(150);
        bytes.extend_from_slice(&[b'h'; 100]);
        let at = bytes.as_ptr();
        let s = Str::from_vec(bytes);
        assert_eq!((s.len(), s.heap_size()), (100, 150));
        let mut bytes = s.into_vec();
        assert_eq!((bytes.as_ptr(), bytes.len()), (at, 100));
        bytes.push(b'!');
        let s = Str::from_vec(bytes);
        assert_eq!(s.as_bytes().last(), Some(&b'!'));
        // Room beyond the growth rule is given back.
        let mut roomy = Vec::with_capacity(10_000);
        roomy.extend_from_slice(&[b'r'; 30]);
        assert!(Str::from_vec(roomy).heap_size() <= 60);
        let short = Str::from_vec(b"short".to_vec());
        assert!(short.edited());
        assert_eq!(
            (short.heap_size(), short.into_vec()),
            (0, b"short".to_vec())
        );
        let shared = Arc::new(vec![b'q'; 100]);
        let s = Str::shared(shared.clone());
        assert_eq!(s.into_vec(), *shared);
    }

    #[test]
    fn padding_allocates_the_final_size_once() {
        let s = Str::padded(1000, b"x");
        assert_eq!((s.len(), s.heap_size()), (1001, 1001));
        assert_eq!(s.as_bytes()[1000], b'x');
        assert!(s.as_bytes()[..1000].iter().all(|&b| b == 0));
        assert_eq!(Str::padded(2, b"ab").as_bytes(), b"\0\0ab");
    }
}
