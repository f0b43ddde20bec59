//! The input buffer of a connection: bytes received but not yet consumed.
//!
//! It is a plain vector kept fully initialised, so the socket can read straight into
//! its free tail without unsafe code; zeroing happens only when it grows.
//!
//! A big argument can be received apart ([`InputBuffer::detach`]): into a buffer
//! of exactly its size, which then becomes the argument, so a 400 MB `SET` needs
//! 400 MB, not a growing read buffer plus a copy. Until that buffer is full,
//! reads go into it.

/// Received bytes in `data[start..end]`; `data[end..]` is free space to read into.
#[derive(Debug)]
pub struct InputBuffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
    detached: Option<Detached>,
}

/// A big argument being received apart: `filled` of `data`'s bytes so far.
#[derive(Debug)]
struct Detached {
    data: Vec<u8>,
    filled: usize,
}

impl InputBuffer {
    /// An empty buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        InputBuffer {
            data: vec![0; capacity],
            start: 0,
            end: 0,
            initial: capacity,
            detached: None,
        }
    }

    /// The unconsumed bytes.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Number of unconsumed bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when every received byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes received and not consumed, a big argument received apart included
    /// (what the query buffer limit and `CLIENT LIST` count).
    pub fn queued(&self) -> usize {
        self.len() + self.detached.as_ref().map_or(0, |d| d.filled)
    }

    /// Total size of the buffer, a big argument's buffer included.
    pub fn capacity(&self) -> usize {
        self.data.len() + self.detached.as_ref().map_or(0, |d| d.data.len())
    }

    /// Receives the `len`-byte argument starting `at` bytes into the unconsumed
    /// ones apart, in a buffer of exactly its size: the bytes of it already here
    /// move there, and reads fill it before anything else. `at` must be where
    /// the received bytes end or before, within `len` of the end.
    pub fn detach(&mut self, at: usize, len: usize) {
        let from = self.start + at;
        let have = self.end - from;
        debug_assert!(have < len && self.detached.is_none());
        // Zeroed memory: the allocator need not touch pages before the socket fills them.
        let mut data = vec![0; len];
        data[..have].copy_from_slice(&self.data[from..self.end]);
        self.end = from;
        self.detached = Some(Detached { data, filled: have });
    }

    /// The argument received apart, once all of it has arrived.
    pub fn take_detached(&mut self) -> Option<Vec<u8>> {
        match &self.detached {
            Some(d) if d.filled == d.data.len() => self.detached.take().map(|d| d.data),
            _ => None,
        }
    }

    /// Drops `n` bytes from the front (they were decoded and executed).
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space to read into: the rest of a big argument being received
    /// apart, otherwise the space at the end.
    pub fn spare(&mut self) -> &mut [u8] {
        match &mut self.detached {
            Some(d) => &mut d.data[d.filled..],
            None => &mut self.data[self.end..],
        }
    }

    /// Marks `n` bytes of the spare space as received.
    pub fn commit(&mut self, n: usize) {
        match &mut self.detached {
            Some(d) => {
                d.filled += n;
                debug_assert!(d.filled <= d.data.len());
            }
            None => {
                self.end += n;
                debug_assert!(self.end <= self.data.len());
            }
        }
    }

    /// Makes at least `min` bytes of spare space, and up to `wanted` when a large
    /// request is known to be coming: moves the unconsumed bytes to the front, then
    /// grows, doubling at most per call, so a client announcing a huge argument
    /// cannot make us allocate it before it sends it.
    pub fn reserve(&mut self, min: usize, wanted: usize) {
        let goal = min.max(wanted);
        // A big argument received apart has its room already.
        if self.detached.is_some() || self.data.len() - self.end >= goal {
            return;
        }
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end >= goal {
            return;
        }
        let target = (self.end + goal)
            .min(self.data.len() * 2)
            .max(self.end + min);
        self.data.resize(target, 0);
    }

    /// Returns a buffer that grew for a large request to its initial size once it
    /// is empty again, so idle connections hold little memory.
    pub fn shrink_if_idle(&mut self) {
        if self.is_empty() && self.detached.is_none() && self.data.len() > 4 * self.initial {
            self.data = vec![0; self.initial];
            self.start = 0;
            self.end = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(buf: &mut InputBuffer, bytes: &[u8]) {
        buf.reserve(bytes.len(), 0);
        buf.spare()[..bytes.len()].copy_from_slice(bytes);
        buf.commit(bytes.len());
    }

    #[test]
    fn bytes_flow_through_in_order() {
        let mut buf = InputBuffer::new(8);
        receive(&mut buf, b"hello");
        buf.consume(2);
        receive(&mut buf, b" world, long enough to grow");
        assert_eq!(buf.filled(), b"llo world, long enough to grow");
        buf.consume(buf.len());
        assert!(buf.is_empty());
    }

    #[test]
    fn growth_toward_a_large_request_is_gradual() {
        let mut buf = InputBuffer::new(1024);
        receive(&mut buf, b"*2\r\n$3\r\nSET\r\n$1000000\r\n");
        buf.reserve(512, 1_000_000);
        // It doubles rather than trusting the announced size at once.
        assert!(buf.capacity() <= 4096, "{}", buf.capacity());
        let mut grown = 0;
        while buf.capacity() < 1_000_000 {
            let free = buf.spare().len();
            buf.commit(free);
            buf.reserve(512, 1_000_000);
            grown += 1;
            assert!(grown < 20);
        }
    }

    #[test]
    fn a_detached_argument_is_received_apart_in_an_exact_buffer() {
        let mut buf = InputBuffer::new(64);
        receive(&mut buf, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc");
        let at = buf.len() - 3;
        buf.detach(at, 100);
        assert_eq!(buf.filled(), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n");
        assert_eq!((buf.queued(), buf.capacity()), (at + 3, 64 + 100));
        buf.reserve(4096, 0);
        assert_eq!(buf.spare().len(), 97);
        buf.spare()[..50].fill(b'x');
        buf.commit(50);
        assert!(buf.take_detached().is_none());
        buf.spare().fill(b'y');
        buf.commit(47);
        let arg = buf.take_detached().unwrap();
        assert_eq!((arg.len(), arg.capacity()), (100, 100));
        assert_eq!(&arg[..4], b"abcx");
        assert_eq!(arg[99], b'y');
        // Reads go to the buffer again, after the request's start.
        receive(&mut buf, b"\r\n");
        assert!(buf.filled().ends_with(b"$100\r\n\r\n"));
    }

    #[test]
    fn an_idle_buffer_shrinks_back() {
        let mut buf = InputBuffer::new(64);
        receive(&mut buf, &[1; 10_000]);
        buf.consume(10_000);
        buf.shrink_if_idle();
        assert_eq!(buf.capacity(), 64);
    }
}
