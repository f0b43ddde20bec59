//! String values that are not numbers. Up to 22 bytes live inline; longer ones
//! own an exactly sized heap buffer.
//!
//! The type is 24 bytes and its tag leaves room for `Value`'s other variants, so
//! a whole `Value` stays 24 bytes: a cache of millions of short strings pays no
//! heap allocation and no padding for them.

/// Longest string stored inline.
pub const INLINE_MAX: usize = 22;

/// A byte string.
#[derive(Clone)]
pub enum Str {
    /// Short: the bytes in place.
    Inline {
        /// Bytes used in `buf`.
        len: u8,
        /// The bytes.
        buf: [u8; INLINE_MAX],
    },
    /// Long: an exactly sized buffer.
    Heap(Box<[u8]>),
}

impl Str {
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
            Str::Heap(bytes.into())
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Str::Inline { len, buf } => &buf[..usize::from(*len)],
            Str::Heap(b) => b,
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

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        match self {
            Str::Inline { .. } => 0,
            Str::Heap(b) => b.len(),
        }
    }

    /// Appends `bytes`.
    pub fn append(&mut self, bytes: &[u8]) {
        self.edit(self.len() + bytes.len(), |v| v.extend_from_slice(bytes));
    }

    /// Overwrites from `offset` with `bytes`, zero-padding any gap (`SETRANGE`).
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset + bytes.len();
        self.edit(end.max(self.len()), |v| {
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset..end].copy_from_slice(bytes);
        });
    }

    /// Changes the bytes through a vector that has room for `new_len` bytes.
    fn edit(&mut self, new_len: usize, change: impl FnOnce(&mut Vec<u8>)) {
        match self {
            Str::Heap(b) if new_len > INLINE_MAX => {
                // Growing to exactly the new length lets the allocator extend in
                // place within its size class, so repeated appends copy the
                // string only when it crosses a class (amortized constant).
                let mut v = std::mem::take(b).into_vec();
                v.reserve_exact(new_len.saturating_sub(v.len()));
                change(&mut v);
                *b = v.into_boxed_slice();
            }
            _ => {
                let mut v = Vec::with_capacity(new_len);
                v.extend_from_slice(self.as_bytes());
                change(&mut v);
                *self = Str::new(&v);
            }
        }
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
    }
}
