//! Reply encoding straight into a connection's output buffer, in RESP2 or RESP3.
//!
//! Commands describe their reply with the RESP3 vocabulary (maps, sets, doubles,
//! booleans, nulls); on a RESP2 connection each is written in the shape Redis uses
//! for it there (a map becomes a flat array, a double a bulk string, and so on).

use std::collections::VecDeque;
use std::io::IoSlice;

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

/// Size of the blocks a long reply is kept in (Redis's `PROTO_REPLY_CHUNK_BYTES`):
/// a long reply grows block by block instead of doubling one buffer, and blocks
/// are freed as they are sent.
const CHUNK: usize = 16 * 1024;

/// An output buffer that replies are appended to.
///
/// It holds at most [`Reply::set_limit`] bytes of bulk data: a bulk string that
/// would pass the limit is dropped and the buffer marked full instead, so a
/// command whose reply a client inflates (the same huge value named a million
/// times, a billion random picks) stops costing memory at the limit. The command
/// is then failed as a whole (`commands::run`).
#[derive(Debug)]
pub struct Reply {
    /// Full blocks, oldest first; the first may be partly sent.
    full: VecDeque<Vec<u8>>,
    /// Bytes in `full`, sent ones included.
    full_len: usize,
    /// The block being written.
    buf: Vec<u8>,
    /// Bytes of the first block (of `full`, else of `buf`) already sent.
    sent: usize,
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
            full: VecDeque::new(),
            full_len: 0,
            buf: Vec::with_capacity(1024),
            sent: 0,
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
        self.overflowed || self.len() > self.limit
    }

    /// The protocol replies are written in.
    pub fn protocol(&self) -> Protocol {
        self.proto
    }

    /// Switches the protocol for the replies that follow.
    pub fn set_protocol(&mut self, proto: Protocol) {
        self.proto = proto;
    }

    /// Bytes written and not yet sent. Between sends this is also the position
    /// the next reply starts at (for [`Reply::truncate`] and [`Reply::array_at`]).
    #[inline]
    pub fn len(&self) -> usize {
        self.full_len + self.buf.len() - self.sent
    }

    /// True when nothing is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes allocated for the buffer.
    pub fn capacity(&self) -> usize {
        self.full.iter().map(Vec::capacity).sum::<usize>() + self.buf.capacity()
    }

    /// Forgets everything (after it was sent), keeping a modest allocation.
    pub fn clear(&mut self) {
        self.full.clear();
        self.full_len = 0;
        self.sent = 0;
        self.buf.clear();
        self.overflowed = false;
        if self.buf.capacity() > 4 * CHUNK {
            self.buf = Vec::with_capacity(CHUNK);
        }
    }

    /// Drops everything written after `len` (used to retract a partial reply),
    /// which also clears the full mark. Only between sends.
    pub fn truncate(&mut self, len: usize) {
        debug_assert_eq!(self.sent, 0);
        self.overflowed = false;
        if len >= self.full_len {
            self.buf.truncate(len - self.full_len);
            return;
        }
        // The mark lies in a full block, which becomes the one being written.
        while let Some(block) = self.full.pop_back() {
            self.full_len -= block.len();
            if self.full_len <= len {
                self.buf = block;
                self.buf.truncate(len - self.full_len);
                return;
            }
        }
    }

    /// Takes everything written after `len` out of the buffer (a reply held
    /// back, to be appended later). Only between sends.
    pub fn split_off(&mut self, len: usize) -> Vec<u8> {
        debug_assert_eq!(self.sent, 0);
        let mut tail = Vec::with_capacity(self.len().saturating_sub(len));
        let mut at = 0;
        for block in self.full.iter().chain(std::iter::once(&self.buf)) {
            let end = at + block.len();
            if end > len {
                tail.extend_from_slice(&block[len.saturating_sub(at)..]);
            }
            at = end;
        }
        self.truncate(len);
        tail
    }

    /// Up to `slices.len()` unsent pieces, in order, for a vectored write;
    /// returns how many were filled.
    pub fn unsent<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let blocks = self.full.iter().chain(std::iter::once(&self.buf));
        let mut filled = 0;
        for (i, block) in blocks.enumerate() {
            let Some(slot) = slices.get_mut(filled) else {
                break;
            };
            let start = if i == 0 { self.sent } else { 0 };
            if start < block.len() {
                *slot = IoSlice::new(&block[start..]);
                filled += 1;
            }
        }
        filled
    }

    /// Marks `n` more bytes as sent, freeing the blocks sent in full.
    pub fn advance(&mut self, n: usize) {
        self.sent += n;
        while let Some(front) = self.full.front() {
            if self.sent < front.len() {
                return;
            }
            self.sent -= front.len();
            self.full_len -= front.len();
            self.full.pop_front();
        }
        debug_assert!(self.sent <= self.buf.len());
    }

    /// The bytes written, if they are in one block and none was sent (a
    /// reply read back in place, as a script's command reply is).
    pub fn contiguous(&self) -> Option<&[u8]> {
        (self.full.is_empty() && self.sent == 0).then_some(self.buf.as_slice())
    }

    /// The whole buffer as one vector.
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.full.is_empty() && self.sent == 0 {
            return self.buf;
        }
        let mut out = Vec::with_capacity(self.len());
        let mut slices = vec![IoSlice::new(&[]); self.full.len() + 1];
        let n = self.unsent(&mut slices);
        for slice in &slices[..n] {
            out.extend_from_slice(slice);
        }
        self.full.clear();
        out
    }

    /// Makes room for `needed` more bytes: a block already half full that would
    /// have to grow is set aside and a new one started instead, and a large piece
    /// gets exactly the room it needs (doubling for it would waste up to half).
    /// False, and the reply marked full, when the room would pass the limit
    /// (checked only when memory must be found, so the common write costs one
    /// comparison).
    #[inline]
    fn room(&mut self, needed: usize) -> bool {
        self.buf.capacity() - self.buf.len() >= needed || self.grow(needed)
    }

    #[cold]
    fn grow(&mut self, needed: usize) -> bool {
        if self.len() + needed > self.limit {
            self.overflowed = true;
            return false;
        }
        if self.buf.len() >= CHUNK / 2 {
            let block = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK.max(needed)));
            self.full_len += block.len();
            self.full.push_back(block);
        } else if needed >= CHUNK {
            self.buf.reserve_exact(needed);
        }
        true
    }

    /// Writes a type byte, a number and CRLF; the caller made room.
    #[inline]
    fn put_header(&mut self, kind: u8, n: i64) {
        self.buf.push(kind);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    fn header(&mut self, kind: u8, n: i64) {
        self.room(24);
        self.put_header(kind, n);
    }

    /// Appends replies encoded elsewhere (a subscriber's messages, a blocked
    /// client's reply); a long one becomes a block of its own, not a copy.
    pub fn append(&mut self, encoded: Vec<u8>) {
        if encoded.len() < CHUNK {
            return self.short(&encoded);
        }
        if !self.buf.is_empty() {
            let block = std::mem::replace(&mut self.buf, Vec::with_capacity(1024));
            self.full_len += block.len();
            self.full.push_back(block);
        }
        self.full_len += encoded.len();
        self.full.push_back(encoded);
    }

    /// Appends a fixed short reply.
    #[inline]
    fn short(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.short(b"+OK\r\n");
    }

    /// A simple string; `text` must not contain CR or LF.
    pub fn simple(&mut self, text: &str) {
        self.room(text.len() + 3);
        self.buf.push(b'+');
        self.buf.extend_from_slice(text.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply. `text` starts with the error code (`ERR`, `WRONGTYPE`, ...);
    /// line breaks are replaced by spaces so the reply stays one line.
    pub fn error(&mut self, text: &str) {
        self.room(text.len() + 3);
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

    /// A bulk string; dropped (the reply marked full) past the limit.
    #[inline]
    pub fn bulk(&mut self, data: &[u8]) {
        if !self.room(data.len() + 32) {
            return;
        }
        self.put_header(b'$', data.len() as i64);
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
        self.double_text(&text);
    }

    /// A double already written out as `text` (digits a command chose, as
    /// `GEOPOS` prints coordinates): `,text` in RESP3, a bulk string in RESP2.
    pub fn double_text(&mut self, text: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                self.room(text.len() + 3);
                self.buf.push(b',');
                self.buf.extend_from_slice(text);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A null: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        match self.proto {
            Protocol::Resp2 => self.short(b"$-1\r\n"),
            Protocol::Resp3 => self.short(b"_\r\n"),
        }
    }

    /// A null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        match self.proto {
            Protocol::Resp2 => self.short(b"*-1\r\n"),
            Protocol::Resp3 => self.short(b"_\r\n"),
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
        debug_assert_eq!(self.sent, 0);
        if mark >= self.full_len {
            let at = mark - self.full_len;
            self.buf.splice(at..at, header);
            return;
        }
        let mut at = mark;
        for block in self.full.iter_mut() {
            if at <= block.len() {
                self.full_len += header.len();
                block.splice(at..at, header);
                return;
            }
            at -= block.len();
        }
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
            (Protocol::Resp2, true) => self.short(b":1\r\n"),
            (Protocol::Resp2, false) => self.short(b":0\r\n"),
            (Protocol::Resp3, true) => self.short(b"#t\r\n"),
            (Protocol::Resp3, false) => self.short(b"#f\r\n"),
        }
    }

    /// Text for people (`INFO`, `CLIENT LIST`): a verbatim string in RESP3, a bulk
    /// string in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        self.verbatim_as(b"txt", text);
    }

    /// A verbatim string of `format` (three bytes, `txt` or `mkd`; others are
    /// cut or padded): the text alone, as a bulk string, in RESP2.
    pub fn verbatim_as(&mut self, format: &[u8], text: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                if !self.room(text.len() + 32) {
                    return;
                }
                let mut tag = *b"txt";
                for (slot, &byte) in tag.iter_mut().zip(format) {
                    *slot = byte;
                }
                self.put_header(b'=', text.len() as i64 + 4);
                self.buf.extend_from_slice(&tag);
                self.buf.push(b':');
                self.buf.extend_from_slice(text);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A big number (`(` in RESP3, a bulk string in RESP2); `digits` must
    /// not contain CR or LF.
    pub fn big_number(&mut self, digits: &str) {
        match self.proto {
            Protocol::Resp2 => self.bulk(digits.as_bytes()),
            Protocol::Resp3 => {
                self.room(digits.len() + 3);
                self.buf.push(b'(');
                self.buf.extend_from_slice(digits.as_bytes());
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
        String::from_utf8(r.into_vec()).unwrap()
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
    fn a_reply_split_off_leaves_the_ones_before_it_across_blocks() {
        let mut r = Reply::new(Protocol::Resp2);
        let mut before = Vec::new();
        for i in 0..5_000 {
            r.bulk_int(i);
            before.extend_from_slice(format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes());
        }
        let mark = r.len();
        let big = vec![b'y'; 2 * CHUNK];
        r.int(7);
        r.bulk(&big);
        let held = r.split_off(mark);
        assert_eq!(&held[..4], b":7\r\n");
        assert_eq!(
            held.len(),
            4 + format!("${}\r\n", big.len()).len() + big.len() + 2
        );
        assert_eq!(r.len(), mark);
        r.append(held.clone());
        let all = r.into_vec();
        assert_eq!(&all[..mark], &before[..]);
        assert_eq!(&all[mark..], &held[..]);
    }

    #[test]
    fn bulk_data_past_the_limit_is_refused_and_marks_the_reply_full() {
        let mut r = Reply::new(Protocol::Resp2);
        r.set_limit(20);
        r.bulk(b"0123456789");
        assert!(!r.is_full());
        // Within the block already allocated: written, but the reply is over.
        r.bulk(b"0123456789");
        assert!(r.is_full());
        assert_eq!(r.len(), 34);
        // Anything that needs more memory is refused.
        r.bulk(&[b'x'; 4096]);
        assert_eq!(r.len(), 34);
        r.truncate(0);
        assert!(!r.is_full());
        r.set_limit(1 << 20);
        r.bulk(&[b'x'; 4096]);
        assert_eq!(r.len(), 4096 + 9);
    }

    #[test]
    fn long_replies_grow_in_blocks_that_are_freed_as_they_are_sent() {
        let mut r = Reply::new(Protocol::Resp2);
        let mut expected = Vec::new();
        for i in 0..10_000 {
            r.bulk_int(i);
            let text = i.to_string();
            expected.extend_from_slice(format!("${}\r\n{text}\r\n", text.len()).as_bytes());
        }
        let big = vec![b'x'; 3 * CHUNK];
        r.bulk(&big);
        expected.extend_from_slice(format!("${}\r\n", big.len()).as_bytes());
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(r.len(), expected.len());
        // No block grew past its size by doubling: the total held stays close to
        // what was written.
        assert!(
            r.capacity() < expected.len() + 2 * CHUNK,
            "{}",
            r.capacity()
        );
        // Send it in odd-sized pieces.
        let mut sent = Vec::new();
        while !r.is_empty() {
            let mut slices = [IoSlice::new(&[]); 3];
            let n = r.unsent(&mut slices);
            let take = slices[..n]
                .iter()
                .map(|s| s.len())
                .sum::<usize>()
                .min(7_777);
            let mut left = take;
            for s in &slices[..n] {
                let part = left.min(s.len());
                sent.extend_from_slice(&s[..part]);
                left -= part;
            }
            r.advance(take);
        }
        assert_eq!(sent, expected);
    }

    #[test]
    fn truncate_and_late_headers_work_across_blocks() {
        let mut r = Reply::new(Protocol::Resp2);
        r.int(1);
        let mark = r.len();
        for i in 0..5_000 {
            r.int(i);
        }
        r.array_at(mark, 5_000);
        let whole = r.into_vec();
        assert!(whole.starts_with(b":1\r\n*5000\r\n:0\r\n:1\r\n"));
        let mut r = Reply::new(Protocol::Resp2);
        r.simple("keep");
        let mark = r.len();
        for i in 0..5_000 {
            r.int(i);
        }
        r.truncate(mark);
        r.simple("after");
        assert_eq!(r.into_vec(), b"+keep\r\n+after\r\n");
        let mut r = Reply::new(Protocol::Resp2);
        r.simple("a");
        r.append(vec![b'x'; CHUNK]);
        r.simple("b");
        let whole = r.into_vec();
        assert_eq!(whole.len(), 4 + CHUNK + 4);
        assert!(whole.starts_with(b"+a\r\nxx") && whole.ends_with(b"xx+b\r\n"));
    }

    #[test]
    fn errors_stay_on_one_line() {
        assert_eq!(
            encode(Protocol::Resp2, |r| r.error("ERR a\r\nb")),
            "-ERR a  b\r\n"
        );
    }
}
