//! The input buffer of a connection: bytes received but not yet consumed.
//!
//! It is a plain vector kept fully initialised, so the socket can read straight into
//! its free tail without unsafe code; zeroing happens only when it grows.

/// Received bytes in `data[start..end]`; `data[end..]` is free space to read into.
#[derive(Debug)]
pub struct InputBuffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
}

impl InputBuffer {
    /// An empty buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        InputBuffer {
            data: vec![0; capacity],
            start: 0,
            end: 0,
            initial: capacity,
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

    /// Total size of the buffer.
    pub fn capacity(&self) -> usize {
        self.data.len()
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

    /// Free space at the end to read into.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.data[self.end..]
    }

    /// Marks `n` bytes of the spare space as received.
    pub fn commit(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.data.len());
    }

    /// Makes at least `min` bytes of spare space, and up to `wanted` when a large
    /// request is known to be coming: moves the unconsumed bytes to the front, then
    /// grows, doubling at most per call, so a client announcing a huge argument
    /// cannot make us allocate it before it sends it.
    pub fn reserve(&mut self, min: usize, wanted: usize) {
        let goal = min.max(wanted);
        if self.data.len() - self.end >= goal {
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
        if self.is_empty() && self.data.len() > 4 * self.initial {
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
    fn an_idle_buffer_shrinks_back() {
        let mut buf = InputBuffer::new(64);
        receive(&mut buf, &[1; 10_000]);
        buf.consume(10_000);
        buf.shrink_if_idle();
        assert_eq!(buf.capacity(), 64);
    }
}
