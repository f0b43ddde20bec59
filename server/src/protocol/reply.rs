//! Reply encoding straight into a connection's output buffer, in RESP2 or RESP3.
//!
//! Commands describe their reply with the RESP3 vocabulary (maps, sets, doubles,
//! booleans, nulls); on a RESP2 connection each is written in the shape Redis uses
//! for it there (a map becomes a flat array, a double a bulk string, and so on).

use super::number::{format_f64_human, format_score};

/// The protocol a connection speaks, chosen with `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

impl Protocol {
    /// The protocol number `HELLO` uses.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// An output buffer that replies are appended to.
///
/// It holds at most [`Reply::set_limit`] bytes of bulk data: a bulk string that
/// would pass the limit is dropped and the buffer marked full instead, so a
/// command whose reply a client inflates (the same huge value named a million
/// times, a billion random picks) stops costing memory at the limit. The command
/// is then failed as a whole (`commands::run`).
#[derive(Debug)]
pub struct Reply {
    buf: Vec<u8>,
    proto: Protocol,
    limit: usize,
    overflowed: bool,
}

impl Default for Reply {
    fn default() -> Self {
        Reply::new(Protocol::Resp2)
    }
}

impl Reply {
    /// An empty buffer speaking `proto`.
    pub fn new(proto: Protocol) -> Self {
        Reply {
            buf: Vec::with_capacity(1024),
            proto,
            limit: usize::MAX,
            overflowed: false,
        }
    }

    /// Sets the most bytes the buffer may hold (see the type's documentation).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// True once the buffer passed its limit or refused a bulk string for it;
    /// a command writing a client-sized number of elements stops here.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.overflowed || self.buf.len() > self.limit
    }

    /// The protocol replies are written in.
    pub fn protocol(&self) -> Protocol {
        self.proto
    }

    /// Switches the protocol for the replies that follow.
    pub fn set_protocol(&mut self, proto: Protocol) {
        self.proto = proto;
    }

    /// The encoded bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets what was written (after it was sent), keeping a modest allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.overflowed = false;
        if self.buf.capacity() > 64 * 1024 {
            self.buf.shrink_to(16 * 1024);
        }
    }

    /// Drops everything written after `len` (used to retract a partial reply),
    /// which also clears the full mark.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
        self.overflowed = false;
    }

    /// Bytes allocated for the buffer.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn header(&mut self, kind: u8, n: i64) {
        self.buf.push(kind);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// Appends bytes that are already a RESP reply (a blocked client's, encoded
    /// when it was served).
    pub fn raw(&mut self, reply: &[u8]) {
        self.buf.extend_from_slice(reply);
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string; `text` must not contain CR or LF.
    pub fn simple(&mut self, text: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(text.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply. `text` starts with the error code (`ERR`, `WRONGTYPE`, ...);
    /// line breaks are replaced by spaces so the reply stays one line.
    pub fn error(&mut self, text: &str) {
        self.buf.push(b'-');
        self.buf.extend(
            text.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer.
    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    /// A bulk string.
    #[inline]
    pub fn bulk(&mut self, data: &[u8]) {
        if self.buf.len() + data.len() > self.limit {
            self.overflowed = true;
            return;
        }
        self.header(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer sent as a bulk string (a string value stored as an integer).
    pub fn bulk_int(&mut self, n: i64) {
        let mut digits = itoa::Buffer::new();
        self.bulk(digits.format(n).as_bytes());
    }

    /// A double sent as a human-readable bulk string (`INCRBYFLOAT`).
    pub fn bulk_f64_human(&mut self, value: f64) {
        let mut text = Vec::with_capacity(24);
        format_f64_human(value, &mut text);
        self.bulk(&text);
    }

    /// A double (a score): `,1.5` in RESP3, the same text as a bulk string in RESP2.
    pub fn double(&mut self, value: f64) {
        let mut text = Vec::with_capacity(24);
        format_score(value, &mut text);
        match self.proto {
            Protocol::Resp2 => self.bulk(&text),
            Protocol::Resp3 => {
                self.buf.push(b',');
                self.buf.extend_from_slice(&text);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A null: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        match self.proto {
            Protocol::Resp2 => self.buf.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    /// A null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        match self.proto {
            Protocol::Resp2 => self.buf.extend_from_slice(b"*-1\r\n"),
            Protocol::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    /// The header of an array of `n` elements.
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// Inserts the header of an array of `n` elements at `mark` (an earlier
    /// [`Reply::len`]), for replies whose length is known only after writing them.
    pub fn array_at(&mut self, mark: usize, n: usize) {
        let mut header = Vec::with_capacity(16);
        header.push(b'*');
        header.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        header.extend_from_slice(b"\r\n");
        self.buf.splice(mark..mark, header);
    }

    /// The header of a map of `n` pairs (a flat array of 2n in RESP2).
    pub fn map(&mut self, n: usize) {
        match self.proto {
            Protocol::Resp2 => self.header(b'*', 2 * n as i64),
            Protocol::Resp3 => self.header(b'%', n as i64),
        }
    }

    /// The header of a set of `n` elements (an array in RESP2).
    pub fn set(&mut self, n: usize) {
        match self.proto {
            Protocol::Resp2 => self.header(b'*', n as i64),
            Protocol::Resp3 => self.header(b'~', n as i64),
        }
    }

    /// The header of an out-of-band push of `n` elements (`>` in RESP3; pub/sub
    /// messages are plain arrays in RESP2).
    pub fn push(&mut self, n: usize) {
        match self.proto {
            Protocol::Resp2 => self.header(b'*', n as i64),
            Protocol::Resp3 => self.header(b'>', n as i64),
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn bool(&mut self, value: bool) {
        match (self.proto, value) {
            (Protocol::Resp2, true) => self.buf.extend_from_slice(b":1\r\n"),
            (Protocol::Resp2, false) => self.buf.extend_from_slice(b":0\r\n"),
            (Protocol::Resp3, true) => self.buf.extend_from_slice(b"#t\r\n"),
            (Protocol::Resp3, false) => self.buf.extend_from_slice(b"#f\r\n"),
        }
    }

    /// Text for people (`INFO`, `CLIENT LIST`): a verbatim string in RESP3, a bulk
    /// string in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                self.header(b'=', text.len() as i64 + 4);
                self.buf.extend_from_slice(b"txt:");
                self.buf.extend_from_slice(text);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(proto: Protocol, f: impl FnOnce(&mut Reply)) -> String {
        let mut r = Reply::new(proto);
        f(&mut r);
        String::from_utf8(r.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn scalars_are_encoded_per_protocol() {
        assert_eq!(encode(Protocol::Resp2, |r| r.null()), "$-1\r\n");
        assert_eq!(encode(Protocol::Resp3, |r| r.null()), "_\r\n");
        assert_eq!(encode(Protocol::Resp2, |r| r.null_array()), "*-1\r\n");
        assert_eq!(encode(Protocol::Resp2, |r| r.bool(true)), ":1\r\n");
        assert_eq!(encode(Protocol::Resp3, |r| r.bool(false)), "#f\r\n");
        assert_eq!(encode(Protocol::Resp2, |r| r.int(-42)), ":-42\r\n");
        assert_eq!(encode(Protocol::Resp2, |r| r.bulk_int(7)), "$1\r\n7\r\n");
        assert_eq!(
            encode(Protocol::Resp3, |r| r.verbatim(b"hi")),
            "=6\r\ntxt:hi\r\n"
        );
    }

    #[test]
    fn aggregates_are_encoded_per_protocol() {
        assert_eq!(encode(Protocol::Resp2, |r| r.map(2)), "*4\r\n");
        assert_eq!(encode(Protocol::Resp3, |r| r.map(2)), "%2\r\n");
        assert_eq!(encode(Protocol::Resp2, |r| r.set(3)), "*3\r\n");
        assert_eq!(encode(Protocol::Resp3, |r| r.set(3)), "~3\r\n");
    }

    #[test]
    fn deferred_array_headers_are_inserted() {
        let out = encode(Protocol::Resp2, |r| {
            r.bulk(b"before");
            let mark = r.len();
            r.int(1);
            r.int(2);
            r.array_at(mark, 2);
        });
        assert_eq!(out, "$6\r\nbefore\r\n*2\r\n:1\r\n:2\r\n");
    }

    #[test]
    fn bulk_data_past_the_limit_is_refused_and_marks_the_reply_full() {
        let mut r = Reply::new(Protocol::Resp2);
        r.set_limit(20);
        r.bulk(b"0123456789");
        assert!(!r.is_full());
        r.bulk(b"0123456789");
        assert!(r.is_full());
        assert_eq!(r.as_bytes(), b"$10\r\n0123456789\r\n");
        r.truncate(0);
        assert!(!r.is_full());
    }

    #[test]
    fn errors_stay_on_one_line() {
        assert_eq!(
            encode(Protocol::Resp2, |r| r.error("ERR a\r\nb")),
            "-ERR a  b\r\n"
        );
    }
}
