//! Incremental decoder for client requests (RESP multibulk and inline commands).
//!
//! The decoder borrows the connection's read buffer and records each argument as a
//! span into it, so decoding allocates nothing per argument. When a request is not
//! complete yet it remembers how far it got; the next call, with more bytes appended
//! to the same buffer, continues from there. That keeps a 500 MB `SET` or a
//! million-argument `MSET` linear in its size.
//!
//! A big argument (32 KiB or more, Redis's `PROTO_MBULK_BIG_ARG`) that has not
//! fully arrived yet can instead be received outside the buffer: the decoder
//! offers it ([`RequestDecoder::take_detach`]), the connection reads it into an
//! exactly sized buffer of its own and hands it back
//! ([`RequestDecoder::attach`]), and commands can keep that buffer as a value
//! without copying it ([`Args::shared`]), as Redis does with its query buffer.

use std::sync::Arc;

use super::inline;
use super::number::parse_i64;

/// Longest inline request or length header Redis accepts (`PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;
/// Arguments at least this long may be received outside the read buffer
/// (`PROTO_MBULK_BIG_ARG`).
pub const BIG_ARG: usize = 32 * 1024;
/// Unauthenticated clients may send at most this many arguments...
const UNAUTH_MAX_ARGS: i64 = 10;
/// ...each at most this long, so a stranger cannot make the server buffer much.
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// Limits that apply to the next request of one client.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// `proto-max-bulk-len`: the longest single argument.
    pub max_bulk_len: u64,
    /// Whether the client has authenticated (or needs no authentication).
    pub authenticated: bool,
}

/// A malformed request; the connection replies with the text and closes, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The `*<count>` header is not a valid count.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// An unauthenticated client announced more arguments than allowed.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// No line end within the first 64 KiB of a `*` header.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// An argument did not start with `$`.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    /// The `$<len>` header is not a valid length, or exceeds `proto-max-bulk-len`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An unauthenticated client announced a long argument.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// No line end within the first 64 KiB of a `$` header.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// A bulk string was not followed by CRLF.
    #[error("Protocol error: expected CRLF after bulk string")]
    MissingCrlf,
    /// An inline request longer than 64 KiB without a newline.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// An inline request with an unterminated quote.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// What one call to [`RequestDecoder::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// More bytes are needed; call again with the same buffer plus what arrives next.
    Incomplete,
    /// A whole request occupies the first `consumed` bytes; its arguments are in
    /// [`RequestDecoder::args`]. An empty request (`*0`, a blank line) has none.
    Request {
        /// Bytes of the buffer the request used.
        consumed: usize,
    },
}

/// A span start marking an argument received outside the read buffer; the
/// span's end is then its index among the request's big arguments.
const DETACHED: usize = usize::MAX;

/// A big argument received into a buffer of its own.
pub type BigArg = Arc<Vec<u8>>;

/// What [`RequestDecoder::take_detach`] offers: the pending argument starts at
/// `at` in the buffer and is `len` bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detach {
    /// Offset of the argument's first byte in the buffer passed to `decode`.
    pub at: usize,
    /// The argument's length.
    pub len: usize,
}

/// The arguments of one decoded request, borrowed from the read buffer (and,
/// for big arguments, from the buffers they were received into).
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    src: &'a [u8],
    spans: &'a [(usize, usize)],
    big: &'a [BigArg],
}

impl<'a> Args<'a> {
    /// Arguments over `spans` of `src` (each span is a start and end offset).
    pub fn new(src: &'a [u8], spans: &'a [(usize, usize)]) -> Self {
        Args {
            src,
            spans,
            big: &[],
        }
    }

    #[inline]
    fn bytes(&self, (start, end): (usize, usize)) -> &'a [u8] {
        if start == DETACHED {
            &self.big[end]
        } else {
            &self.src[start..end]
        }
    }

    /// Number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True for an empty request.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The argument at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        self.spans.get(index).map(|&span| self.bytes(span))
    }

    /// The buffer the argument at `index` was received into, if it is a big
    /// argument that arrived outside the read buffer: a command storing it as a
    /// value can keep this buffer instead of copying the bytes.
    pub fn shared(&self, index: usize) -> Option<&'a BigArg> {
        match *self.spans.get(index)? {
            (DETACHED, i) => self.big.get(i),
            _ => None,
        }
    }

    /// All arguments in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let args = *self;
        self.spans.iter().map(move |&span| args.bytes(span))
    }

    /// The arguments from `index` on.
    pub fn skip(&self, index: usize) -> Args<'a> {
        Args {
            spans: &self.spans[index.min(self.spans.len())..],
            ..*self
        }
    }

    /// The first `n` arguments (all of them if there are fewer) and the rest.
    pub fn split_at(&self, n: usize) -> (Args<'a>, Args<'a>) {
        let (head, tail) = self.spans.split_at(n.min(self.spans.len()));
        (
            Args {
                spans: head,
                ..*self
            },
            Args {
                spans: tail,
                ..*self
            },
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At the start of a request.
    Idle,
    /// Inside a multibulk request: `expected` arguments, next one at `pos`.
    Multibulk { expected: usize, pos: usize },
    /// The `len`-byte argument whose data started at `pos` is being received
    /// outside the buffer; once attached, its CRLF is expected at `pos`.
    Detached {
        expected: usize,
        pos: usize,
        len: usize,
    },
    /// The last request, `consumed` bytes, is to be returned again as it was.
    Replay { consumed: usize },
}

/// A resumable decoder for one connection's request stream.
#[derive(Debug)]
pub struct RequestDecoder {
    state: State,
    spans: Vec<(usize, usize)>,
    /// Unescaped arguments of an inline request (quotes and escapes make them
    /// differ from the raw bytes).
    inline: Vec<u8>,
    from_inline: bool,
    /// Buffer length the pending argument needs, so the reader can reserve it at once.
    wanted: usize,
    /// Big arguments of the current request, received outside the buffer.
    big: Vec<BigArg>,
    /// A big argument offered for receiving outside the buffer, until taken.
    offer: Option<Detach>,
    /// The big argument received outside the buffer, until decoding reaches it.
    attached: Option<Vec<u8>>,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Result of reading a `<number>\r\n` line.
enum Line {
    Incomplete,
    Invalid,
    Value(i64, usize),
}

/// Reads a length line starting at `pos`: the number, and the offset after its CRLF.
fn read_len_line(buf: &[u8], pos: usize) -> Line {
    // One or two digits, as nearly every count and length is.
    match &buf[pos..] {
        [d @ b'0'..=b'9', b'\r', b'\n', ..] => return Line::Value(i64::from(d - b'0'), pos + 3),
        [t @ b'1'..=b'9', u @ b'0'..=b'9', b'\r', b'\n', ..] => {
            return Line::Value(i64::from((t - b'0') * 10 + (u - b'0')), pos + 4)
        }
        _ => {}
    }
    let Some(cr) = buf[pos..].iter().position(|&b| b == b'\r') else {
        return Line::Incomplete;
    };
    let cr = pos + cr;
    match buf.get(cr + 1) {
        None => Line::Incomplete,
        Some(b'\n') => match parse_i64(&buf[pos..cr]) {
            Some(v) => Line::Value(v, cr + 2),
            None => Line::Invalid,
        },
        Some(_) => Line::Invalid,
    }
}

impl RequestDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        RequestDecoder {
            state: State::Idle,
            spans: Vec::with_capacity(8),
            inline: Vec::new(),
            from_inline: false,
            wanted: 0,
            big: Vec::new(),
            offer: None,
            attached: None,
        }
    }

    /// The buffer length needed before the pending argument can complete (0 if unknown).
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// True while a request has been partly decoded.
    pub fn in_request(&self) -> bool {
        matches!(self.state, State::Multibulk { .. } | State::Detached { .. })
    }

    /// The big argument the last [`Decoded::Incomplete`] stopped at, offered
    /// once: the caller may move the bytes from `at` on out of the buffer, keep
    /// receiving the argument elsewhere, and [`attach`](Self::attach) it once
    /// complete. Ignoring the offer is fine: decoding then goes on in the buffer.
    pub fn take_detach(&mut self) -> Option<Detach> {
        self.offer.take()
    }

    /// Hands over the whole big argument taken with [`take_detach`](Self::take_detach);
    /// the buffer then continues with the CRLF after it.
    pub fn attach(&mut self, arg: Vec<u8>) {
        self.attached = Some(arg);
    }

    /// Makes the next `decode` return the last request again, arguments and all,
    /// for a command that blocked and must run again: its big arguments are no
    /// longer in the buffer to decode them from.
    pub fn replay(&mut self, consumed: usize) {
        self.state = State::Replay { consumed };
    }

    /// Bytes of big arguments the decoder holds for the request in progress (they
    /// count toward the client's query buffer until its command has run).
    pub fn held(&self) -> usize {
        self.big.iter().map(|b| b.len()).sum::<usize>() + self.attached.as_ref().map_or(0, Vec::len)
    }

    /// Drops the last request's big arguments once its command has run, so one
    /// that was not stored is freed at once.
    pub fn release(&mut self) {
        self.forget_big();
    }

    /// The arguments of the request last returned as [`Decoded::Request`]; `buf` must
    /// be the buffer that was passed to `decode`.
    pub fn args<'a>(&'a self, buf: &'a [u8]) -> Args<'a> {
        let src = if self.from_inline {
            &self.inline[..]
        } else {
            buf
        };
        Args {
            src,
            spans: &self.spans,
            big: &self.big,
        }
    }

    /// Decodes the next request at the start of `buf`.
    pub fn decode(&mut self, buf: &[u8], limits: RequestLimits) -> Result<Decoded, ProtocolError> {
        match self.state {
            State::Idle => match buf.first() {
                None => Ok(Decoded::Incomplete),
                Some(b'*') => self.start_multibulk(buf, limits),
                Some(_) => self.decode_inline(buf),
            },
            State::Multibulk { expected, pos } => {
                self.continue_multibulk(buf, limits, expected, pos)
            }
            State::Detached { expected, pos, len } => {
                self.continue_detached(buf, limits, expected, pos, len)
            }
            State::Replay { consumed } => {
                self.state = State::Idle;
                Ok(Decoded::Request { consumed })
            }
        }
    }

    /// Drops the big arguments of the last request, if it had any.
    #[inline]
    fn forget_big(&mut self) {
        if !self.big.is_empty() {
            self.big.clear();
        }
    }

    /// Resumes after a big argument offered for receiving outside the buffer.
    #[cold]
    fn continue_detached(
        &mut self,
        buf: &[u8],
        limits: RequestLimits,
        expected: usize,
        pos: usize,
        len: usize,
    ) -> Result<Decoded, ProtocolError> {
        self.offer = None;
        let Some(arg) = self.attached.take() else {
            // The offer was not taken, so the bytes arrive in the buffer.
            if buf.len() < pos + len + 2 {
                return Ok(self.suspend_detached(expected, pos, len, pos + len + 2));
            }
            if &buf[pos + len..pos + len + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            self.spans.push((pos, pos + len));
            return self.continue_multibulk(buf, limits, expected, pos + len + 2);
        };
        debug_assert_eq!(arg.len(), len);
        if buf.len() < pos + 2 {
            self.attached = Some(arg);
            return Ok(self.suspend_detached(expected, pos, len, pos + 2));
        }
        if &buf[pos..pos + 2] != b"\r\n" {
            return Err(ProtocolError::MissingCrlf);
        }
        self.spans.push((DETACHED, self.big.len()));
        self.big.push(Arc::new(arg));
        self.continue_multibulk(buf, limits, expected, pos + 2)
    }

    fn suspend_detached(
        &mut self,
        expected: usize,
        pos: usize,
        len: usize,
        wanted: usize,
    ) -> Decoded {
        self.state = State::Detached { expected, pos, len };
        self.wanted = wanted;
        Decoded::Incomplete
    }

    fn start_multibulk(
        &mut self,
        buf: &[u8],
        limits: RequestLimits,
    ) -> Result<Decoded, ProtocolError> {
        let (count, pos) = match read_len_line(buf, 1) {
            Line::Incomplete if buf.len() > INLINE_MAX => {
                return Err(ProtocolError::TooBigMultibulkCount)
            }
            Line::Incomplete => return Ok(Decoded::Incomplete),
            Line::Invalid => return Err(ProtocolError::InvalidMultibulkLength),
            Line::Value(count, pos) => (count, pos),
        };
        if count > i64::from(i32::MAX) {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        if !limits.authenticated && count > UNAUTH_MAX_ARGS {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        self.spans.clear();
        self.forget_big();
        self.from_inline = false;
        if count <= 0 {
            return Ok(Decoded::Request { consumed: pos });
        }
        // Reserve modestly: the count is the client's claim, not yet backed by bytes.
        self.spans.reserve((count as usize).min(1024));
        self.continue_multibulk(buf, limits, count as usize, pos)
    }

    fn continue_multibulk(
        &mut self,
        buf: &[u8],
        limits: RequestLimits,
        expected: usize,
        mut pos: usize,
    ) -> Result<Decoded, ProtocolError> {
        while self.spans.len() < expected {
            let Some(&marker) = buf.get(pos) else {
                return Ok(self.suspend(expected, pos, 0));
            };
            if marker != b'$' {
                return Err(ProtocolError::ExpectedDollar(char::from(marker)));
            }
            let (len, start) = match read_len_line(buf, pos + 1) {
                Line::Incomplete if buf.len() - pos > INLINE_MAX => {
                    return Err(ProtocolError::TooBigBulkCount)
                }
                Line::Incomplete => return Ok(self.suspend(expected, pos, 0)),
                Line::Invalid => return Err(ProtocolError::InvalidBulkLength),
                Line::Value(len, start) => (len, start),
            };
            if len < 0 || len as u64 > limits.max_bulk_len {
                return Err(ProtocolError::InvalidBulkLength);
            }
            if !limits.authenticated && len > UNAUTH_MAX_BULK {
                return Err(ProtocolError::UnauthenticatedBulkLength);
            }
            let end = start + len as usize;
            if buf.len() < end + 2 {
                if len as usize >= BIG_ARG && buf.len() < end {
                    return Ok(self.offer_detach(expected, start, len as usize));
                }
                return Ok(self.suspend(expected, pos, end + 2));
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            self.spans.push((start, end));
            pos = end + 2;
        }
        self.state = State::Idle;
        self.wanted = 0;
        Ok(Decoded::Request { consumed: pos })
    }

    /// Stops at a big argument whose data is still arriving, offering to have
    /// it received outside the buffer.
    #[cold]
    fn offer_detach(&mut self, expected: usize, at: usize, len: usize) -> Decoded {
        self.offer = Some(Detach { at, len });
        self.suspend_detached(expected, at, len, at + len + 2)
    }

    fn suspend(&mut self, expected: usize, pos: usize, wanted: usize) -> Decoded {
        self.state = State::Multibulk { expected, pos };
        self.wanted = wanted;
        Decoded::Incomplete
    }

    fn decode_inline(&mut self, buf: &[u8]) -> Result<Decoded, ProtocolError> {
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(Decoded::Incomplete);
        };
        if newline > INLINE_MAX {
            return Err(ProtocolError::TooBigInline);
        }
        let line = match buf[..newline].last() {
            Some(b'\r') => &buf[..newline - 1],
            _ => &buf[..newline],
        };
        self.spans.clear();
        self.forget_big();
        self.inline.clear();
        self.from_inline = true;
        inline::split_args(line, &mut self.inline, &mut self.spans)
            .map_err(|_| ProtocolError::UnbalancedQuotes)?;
        Ok(Decoded::Request {
            consumed: newline + 1,
        })
    }
}

/// Encodes `args` as a request: a RESP array of bulk strings (what the
/// decoder reads, and what the write feed carries).
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut number = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(number.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(number.format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: RequestLimits = RequestLimits {
        max_bulk_len: 512 * 1024 * 1024,
        authenticated: true,
    };

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut decoder = RequestDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match decoder.decode(&input[pos..], OPEN)? {
                Decoded::Incomplete => return Ok(out),
                Decoded::Request { consumed } => {
                    let args = decoder.args(&input[pos..]);
                    if !args.is_empty() {
                        out.push(args.iter().map(<[u8]>::to_vec).collect());
                    }
                    pos += consumed;
                }
            }
        }
    }

    fn strings(req: &[Vec<u8>]) -> Vec<String> {
        req.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn decodes_pipelined_multibulk_requests() {
        let reqs =
            decode_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\n").unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(strings(&reqs[0]), ["PING"]);
        assert_eq!(strings(&reqs[1]), ["SET", "a", ""]);
    }

    #[test]
    fn resumes_a_request_split_at_every_byte() {
        let input = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
        for split in 1..input.len() {
            let mut decoder = RequestDecoder::new();
            assert_eq!(
                decoder.decode(&input[..split], OPEN),
                Ok(Decoded::Incomplete),
                "{split}"
            );
            assert_eq!(
                decoder.decode(input, OPEN),
                Ok(Decoded::Request {
                    consumed: input.len()
                })
            );
            let args = decoder.args(input);
            assert_eq!(args.get(1), Some(&b"0123456789"[..]));
        }
    }

    #[test]
    fn announces_the_size_of_a_pending_bulk() {
        let mut decoder = RequestDecoder::new();
        let input = b"*2\r\n$3\r\nSET\r\n$100000\r\nab";
        assert_eq!(decoder.decode(input, OPEN), Ok(Decoded::Incomplete));
        assert_eq!(decoder.wanted(), 24 + 100_000);
        assert!(decoder.in_request());
    }

    /// A request whose middle argument is big: `SET k <len x 'v'> EX 100`.
    fn big_set(len: usize) -> Vec<u8> {
        let mut input = format!("*5\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes();
        input.resize(input.len() + len, b'v');
        input.extend_from_slice(b"\r\n$2\r\nEX\r\n$3\r\n100\r\n");
        input
    }

    #[test]
    fn a_big_argument_received_apart_is_shared_and_the_rest_decodes_from_the_buffer() {
        let len = BIG_ARG + 10;
        let input = big_set(len);
        let header = input.len() - len - b"\r\n$2\r\nEX\r\n$3\r\n100\r\n".len();
        let mut decoder = RequestDecoder::new();
        // Part of the argument has arrived: the decoder offers it, once.
        let mut buf = input[..header + 100].to_vec();
        assert_eq!(decoder.decode(&buf, OPEN), Ok(Decoded::Incomplete));
        let detach = decoder.take_detach().unwrap();
        assert_eq!(detach, Detach { at: header, len });
        assert_eq!(decoder.take_detach(), None);
        // The caller moves the bytes out and receives the rest apart.
        let mut arg = buf.split_off(detach.at);
        assert_eq!(decoder.decode(&buf, OPEN), Ok(Decoded::Incomplete));
        arg.extend_from_slice(&input[header + 100..header + len]);
        decoder.attach(arg);
        // Then the buffer continues with the CRLF and the following arguments.
        assert_eq!(decoder.decode(&buf, OPEN), Ok(Decoded::Incomplete));
        buf.extend_from_slice(b"\r\n$2\r\nEX\r");
        assert_eq!(decoder.decode(&buf, OPEN), Ok(Decoded::Incomplete));
        buf.extend_from_slice(b"\n$3\r\n100\r\n*1\r\n$4\r\nPING\r\n");
        let consumed = buf.len() - 14;
        assert_eq!(
            decoder.decode(&buf, OPEN),
            Ok(Decoded::Request { consumed })
        );
        let args = decoder.args(&buf);
        assert_eq!(args.len(), 5);
        assert_eq!(args.get(0), Some(&b"SET"[..]));
        assert_eq!(args.get(2).map(<[u8]>::len), Some(len));
        assert!(args.get(2).unwrap().iter().all(|&b| b == b'v'));
        assert_eq!(args.get(4), Some(&b"100"[..]));
        let shared = args.shared(2).unwrap();
        assert_eq!(shared.as_ptr(), args.get(2).unwrap().as_ptr());
        assert!(args.shared(1).is_none() && args.shared(3).is_none());
        let kept = shared.clone();
        decoder.release();
        assert_eq!(std::sync::Arc::strong_count(&kept), 1);
        // The next request decodes normally.
        assert_eq!(
            decoder.decode(&buf[consumed..], OPEN),
            Ok(Decoded::Request { consumed: 14 })
        );
        assert!(decoder.args(&buf[consumed..]).shared(0).is_none());
    }

    #[test]
    fn an_ignored_offer_decodes_the_big_argument_from_the_buffer() {
        let input = big_set(BIG_ARG);
        let mut decoder = RequestDecoder::new();
        assert_eq!(decoder.decode(&input[..100], OPEN), Ok(Decoded::Incomplete));
        assert!(decoder.wanted() >= input.len() - 30);
        for end in [1000, input.len() - 1] {
            assert_eq!(decoder.decode(&input[..end], OPEN), Ok(Decoded::Incomplete));
            assert_eq!(decoder.take_detach(), None);
        }
        assert_eq!(
            decoder.decode(&input, OPEN),
            Ok(Decoded::Request {
                consumed: input.len()
            })
        );
        let args = decoder.args(&input);
        assert_eq!(args.get(2).map(<[u8]>::len), Some(BIG_ARG));
        assert!(args.shared(2).is_none());
    }

    #[test]
    fn small_or_complete_arguments_are_never_offered() {
        let mut decoder = RequestDecoder::new();
        let input = big_set(BIG_ARG - 1);
        assert_eq!(decoder.decode(&input[..100], OPEN), Ok(Decoded::Incomplete));
        assert_eq!(decoder.take_detach(), None);
        // All the data but not the CRLF: two bytes more are cheaper than a move.
        let input = big_set(BIG_ARG);
        let mut decoder = RequestDecoder::new();
        let data_end = input.len() - b"\r\n$2\r\nEX\r\n$3\r\n100\r\n".len();
        assert_eq!(
            decoder.decode(&input[..data_end], OPEN),
            Ok(Decoded::Incomplete)
        );
        assert_eq!(decoder.take_detach(), None);
    }

    #[test]
    fn a_detached_argument_without_its_crlf_is_a_protocol_error() {
        let mut decoder = RequestDecoder::new();
        let input = b"*2\r\n$3\r\nSET\r\n$32768\r\nabc";
        assert_eq!(decoder.decode(input, OPEN), Ok(Decoded::Incomplete));
        let detach = decoder.take_detach().unwrap();
        decoder.attach(vec![b'a'; detach.len]);
        assert_eq!(
            decoder.decode(b"*2\r\n$3\r\nSET\r\n$32768\r\nXY", OPEN),
            Err(ProtocolError::MissingCrlf)
        );
    }

    #[test]
    fn a_replayed_request_keeps_its_big_arguments() {
        let len = BIG_ARG;
        let input = big_set(len);
        let header = input.len() - len - b"\r\n$2\r\nEX\r\n$3\r\n100\r\n".len();
        let mut decoder = RequestDecoder::new();
        assert_eq!(
            decoder.decode(&input[..header + 1], OPEN),
            Ok(Decoded::Incomplete)
        );
        let detach = decoder.take_detach().unwrap();
        let mut buf = input[..detach.at].to_vec();
        decoder.attach(input[detach.at..detach.at + len].to_vec());
        buf.extend_from_slice(&input[header + len..]);
        let Ok(Decoded::Request { consumed }) = decoder.decode(&buf, OPEN) else {
            panic!("not decoded");
        };
        decoder.replay(consumed);
        assert_eq!(
            decoder.decode(&buf, OPEN),
            Ok(Decoded::Request { consumed })
        );
        let args = decoder.args(&buf);
        assert_eq!(args.get(2).map(<[u8]>::len), Some(len));
        assert_eq!(args.get(3), Some(&b"EX"[..]));
    }

    #[test]
    fn decodes_inline_commands_with_quotes() {
        let reqs = decode_all(b"SET a \"hello world\"\r\nPING\n\r\n  \r\n").unwrap();
        assert_eq!(strings(&reqs[0]), ["SET", "a", "hello world"]);
        assert_eq!(strings(&reqs[1]), ["PING"]);
        assert_eq!(reqs.len(), 2);
    }

    #[test]
    fn empty_multibulk_is_an_empty_request() {
        assert_eq!(decode_all(b"*0\r\n*-1\r\n").unwrap().len(), 0);
    }

    #[test]
    fn reports_redis_protocol_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "Protocol error: invalid multibulk length"),
            (
                b"*3000000000\r\n",
                "Protocol error: invalid multibulk length",
            ),
            (b"*1\r\n+OK\r\n", "Protocol error: expected '$', got '+'"),
            (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
            (
                b"*1\r\n$03\r\nabc\r\n",
                "Protocol error: invalid bulk length",
            ),
            (
                b"*01\r\n$1\r\na\r\n",
                "Protocol error: invalid multibulk length",
            ),
            (
                b"*1\r\n$3\r\nabcXY",
                "Protocol error: expected CRLF after bulk string",
            ),
            (
                b"SET a \"b\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
        ];
        for (input, text) in cases {
            let err = decode_all(input).unwrap_err();
            assert_eq!(
                err.to_string(),
                *text,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn enforces_proto_max_bulk_len() {
        let mut decoder = RequestDecoder::new();
        let limits = RequestLimits {
            max_bulk_len: 10,
            authenticated: true,
        };
        assert_eq!(
            decoder.decode(b"*1\r\n$11\r\n", limits),
            Err(ProtocolError::InvalidBulkLength)
        );
    }

    #[test]
    fn unauthenticated_clients_get_small_limits() {
        let limits = RequestLimits {
            max_bulk_len: 1 << 29,
            authenticated: false,
        };
        assert_eq!(
            RequestDecoder::new().decode(b"*11\r\n", limits),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        assert_eq!(
            RequestDecoder::new().decode(b"*1\r\n$16385\r\n", limits),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn encode(args: &[Vec<u8>]) -> Vec<u8> {
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
            out
        }

        fn request() -> impl Strategy<Value = Vec<Vec<u8>>> {
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8)
        }

        /// Decodes everything, checking the decoder's own invariants on the way.
        fn checked_decode(input: &[u8], limits: RequestLimits) -> Vec<Vec<Vec<u8>>> {
            let mut decoder = RequestDecoder::new();
            let mut pos = 0;
            let mut out = Vec::new();
            while let Ok(Decoded::Request { consumed }) = decoder.decode(&input[pos..], limits) {
                assert!(consumed > 0 && pos + consumed <= input.len());
                out.push(
                    decoder
                        .args(&input[pos..])
                        .iter()
                        .map(<[u8]>::to_vec)
                        .collect(),
                );
                pos += consumed;
            }
            out
        }

        /// Decodes `input` arriving in pieces of the given sizes, taking every
        /// offer to receive a big argument apart as the connection does.
        fn decode_arriving(input: &[u8], pieces: &[usize]) -> Vec<Vec<Vec<u8>>> {
            let mut decoder = RequestDecoder::new();
            let (mut buf, mut apart): (Vec<u8>, Option<(Vec<u8>, usize)>) = (Vec::new(), None);
            let (mut sent, mut out) = (0, Vec::new());
            for &piece in pieces.iter().cycle() {
                if sent == input.len() {
                    break;
                }
                let mut n = piece.clamp(1, input.len() - sent);
                match &mut apart {
                    Some((arg, len)) => {
                        n = n.min(*len - arg.len());
                        arg.extend_from_slice(&input[sent..sent + n]);
                    }
                    None => buf.extend_from_slice(&input[sent..sent + n]),
                }
                sent += n;
                if apart.as_ref().is_some_and(|(arg, len)| arg.len() == *len) {
                    decoder.attach(apart.take().unwrap().0);
                }
                loop {
                    match decoder.decode(&buf, OPEN).unwrap() {
                        Decoded::Request { consumed } => {
                            let args = decoder.args(&buf);
                            out.push(args.iter().map(<[u8]>::to_vec).collect());
                            decoder.release();
                            buf.drain(..consumed);
                        }
                        Decoded::Incomplete => {
                            if let Some(d) = decoder.take_detach() {
                                apart = Some((buf.split_off(d.at), d.len));
                            }
                            break;
                        }
                    }
                }
            }
            out
        }

        fn big_request() -> impl Strategy<Value = Vec<Vec<u8>>> {
            let arg = prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..20),
                (0usize..100, any::<u8>()).prop_map(|(extra, b)| vec![b; BIG_ARG + extra]),
            ];
            proptest::collection::vec(arg, 1..5)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn big_arguments_received_apart_decode_the_same(
                reqs in proptest::collection::vec(big_request(), 1..4),
                pieces in proptest::collection::vec(1usize..50_000, 1..8),
            ) {
                let mut input = Vec::new();
                for r in &reqs {
                    input.extend(encode(r));
                }
                prop_assert_eq!(decode_arriving(&input, &pieces), reqs);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..300)) {
                checked_decode(&input, OPEN);
                checked_decode(&input, RequestLimits { max_bulk_len: 16, authenticated: false });
            }

            #[test]
            fn random_bytes_after_a_star_never_panic(input in proptest::collection::vec(any::<u8>(), 0..300)) {
                let mut framed = b"*".to_vec();
                framed.extend(input);
                checked_decode(&framed, OPEN);
            }

            #[test]
            fn valid_requests_decode_exactly(reqs in proptest::collection::vec(request(), 1..5)) {
                let mut input = Vec::new();
                for r in &reqs {
                    input.extend(encode(r));
                }
                prop_assert_eq!(checked_decode(&input, OPEN), reqs);
            }

            #[test]
            fn any_split_point_gives_the_same_request(req in request(), split in any::<prop::sample::Index>()) {
                let input = encode(&req);
                let at = split.index(input.len());
                let mut decoder = RequestDecoder::new();
                prop_assert_eq!(decoder.decode(&input[..at], OPEN), Ok(Decoded::Incomplete));
                prop_assert_eq!(decoder.decode(&input, OPEN), Ok(Decoded::Request { consumed: input.len() }));
                let args: Vec<Vec<u8>> = decoder.args(&input).iter().map(<[u8]>::to_vec).collect();
                prop_assert_eq!(args, req);
            }

            #[test]
            fn mutated_requests_never_panic(req in request(),
                                            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)) {
                let mut input = encode(&req);
                for (at, byte, op) in edits {
                    let i = at.index(input.len() + 1);
                    match op {
                        0 if i < input.len() => input[i] = byte,
                        1 => input.insert(i, byte),
                        _ if i < input.len() => { input.remove(i); }
                        _ => {}
                    }
                }
                checked_decode(&input, OPEN);
            }

            /// The same bytes through redis-protocol's decoder give the same arguments.
            #[test]
            fn agrees_with_redis_protocol(req in request()) {
                use redis_protocol::resp2::{decode::decode_bytes_mut, types::BytesFrame};
                let input = encode(&req);
                let mut buf = bytes::BytesMut::from(&input[..]);
                let (frame, used, _) = decode_bytes_mut(&mut buf).unwrap().unwrap();
                prop_assert_eq!(used, input.len());
                let BytesFrame::Array(items) = frame else { panic!("not an array") };
                let theirs: Vec<Vec<u8>> = items
                    .into_iter()
                    .map(|f| match f {
                        BytesFrame::BulkString(b) => b.to_vec(),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                prop_assert_eq!(checked_decode(&input, OPEN), vec![theirs]);
            }
        }
    }

    #[test]
    fn long_headers_without_line_end_are_rejected() {
        let mut input = b"*".to_vec();
        input.resize(INLINE_MAX + 2, b'1');
        assert_eq!(
            RequestDecoder::new().decode(&input, OPEN),
            Err(ProtocolError::TooBigMultibulkCount)
        );
        let mut input = b"*1\r\n$".to_vec();
        input.resize(INLINE_MAX + 10, b'1');
        assert_eq!(
            RequestDecoder::new().decode(&input, OPEN),
            Err(ProtocolError::TooBigBulkCount)
        );
        let input = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(
            RequestDecoder::new().decode(&input, OPEN),
            Err(ProtocolError::TooBigInline)
        );
    }
}
