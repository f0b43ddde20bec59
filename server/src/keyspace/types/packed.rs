//! A packed sequence of byte strings in one allocation: each string is a varint
//! length followed by its bytes, like Redis's listpack. Small hashes, sets and
//! sorted sets keep their elements here, so a 10-field hash costs its data plus a
//! couple of bytes per field instead of a pointer-sized slot per string.
//!
//! Lookups scan, which is fast for the few dozen short elements this holds.
//!
//! The length codec here is shared with list nodes (`listpack.rs`), which also
//! write each length backwards after the string so they can be read from the end.

/// Byte strings packed back to back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed {
    buf: Vec<u8>,
    count: usize,
}

/// Bytes the varint of `n` takes.
pub(super) fn len_size(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// Appends `n` as a varint: 7 bits a byte, low bits first, the high bit set on
/// every byte but the last.
pub(super) fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Appends `n`'s varint with its bytes in reverse order, so that reading
/// backwards from the end meets the low bits first: [`read_len_back`] decodes it.
pub(super) fn put_len_back(buf: &mut Vec<u8>, n: usize) {
    let at = buf.len();
    put_len(buf, n);
    buf[at..].reverse();
}

/// Reads a length written by [`put_len_back`] that ends at `end`: the length and
/// where its bytes start.
pub(super) fn read_len_back(buf: &[u8], mut end: usize) -> (usize, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        end -= 1;
        let b = buf[end];
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (len, end);
        }
        shift += 7;
    }
}

/// Reads the varint written by [`put_len`] at `pos`: the number and the
/// position after it.
pub(super) fn read_len(buf: &[u8], mut pos: usize) -> (usize, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[pos];
        pos += 1;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (len, pos);
        }
        shift += 7;
    }
}

/// Reads the string starting at `pos`: its bytes and the position after it.
pub(super) fn read_at(buf: &[u8], pos: usize) -> (&[u8], usize) {
    let (len, pos) = read_len(buf, pos);
    (&buf[pos..pos + len], pos + len)
}

fn encoded(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    put_len(&mut out, s.len());
    out.extend_from_slice(s);
    out
}

impl Packed {
    /// Number of strings.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a string.
    pub fn push(&mut self, s: &[u8]) {
        // Grow in small steps: these stay small, and doubling would waste up to half.
        self.buf.reserve_exact(s.len() + 2);
        put_len(&mut self.buf, s.len());
        self.buf.extend_from_slice(s);
        self.count += 1;
    }

    /// The strings in order, each with its byte offset.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            buf: &self.buf,
            pos: 0,
        }
    }

    /// The string at `index`.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.iter().nth(index).map(|(_, s)| s)
    }

    /// Offset of the `index`-th string (or the end).
    fn offset(&self, index: usize) -> usize {
        self.iter().nth(index).map_or(self.buf.len(), |(at, _)| at)
    }

    /// Inserts a string before the `index`-th.
    pub fn insert(&mut self, index: usize, s: &[u8]) {
        let at = self.offset(index);
        self.buf.splice(at..at, encoded(s));
        self.count += 1;
    }

    /// Replaces the `index`-th string.
    pub fn replace(&mut self, index: usize, s: &[u8]) {
        let at = self.offset(index);
        let (_, end) = read_at(&self.buf, at);
        self.buf.splice(at..end, encoded(s));
    }

    /// Removes `n` strings starting at the `index`-th.
    pub fn remove(&mut self, index: usize, n: usize) {
        let start = self.offset(index);
        let end = self.offset(index + n);
        self.buf.drain(start..end);
        self.count -= n;
        if self.buf.capacity() > 2 * self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        self.buf.capacity()
    }
}

/// Walks a [`Packed`]: (offset, string).
pub struct Iter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let at = self.pos;
        let (s, next) = read_at(self.buf, at);
        self.pos = next;
        Some((at, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(p: &Packed) -> Vec<Vec<u8>> {
        p.iter().map(|(_, s)| s.to_vec()).collect()
    }

    #[test]
    fn push_insert_replace_remove() {
        let mut p = Packed::default();
        for s in [&b"a"[..], &[b'x'; 300], b""] {
            p.push(s);
        }
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(1).map(<[u8]>::len), Some(300));
        p.insert(1, b"between");
        p.replace(0, b"first!");
        assert_eq!(strings(&p)[..2], [b"first!".to_vec(), b"between".to_vec()]);
        p.remove(1, 2);
        assert_eq!(strings(&p), [b"first!".to_vec(), Vec::new()]);
        p.remove(0, 2);
        assert!(p.is_empty() && p.iter().next().is_none());
    }

    #[test]
    fn lengths_read_the_same_both_ways() {
        for n in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 40, usize::MAX] {
            let mut buf = vec![0xff];
            put_len(&mut buf, n);
            assert_eq!(buf.len() - 1, len_size(n), "{n}");
            put_len_back(&mut buf, n);
            assert_eq!(read_len_back(&buf, buf.len()), (n, 1 + len_size(n)), "{n}");
        }
    }

    #[test]
    fn stays_near_its_data_size() {
        let mut p = Packed::default();
        for i in 0..20 {
            p.push(format!("member:{i:02}").as_bytes());
        }
        // 20 strings of 9 bytes, a length byte each.
        assert!(p.heap_size() <= 20 * 10 + 64, "{}", p.heap_size());
    }
}
