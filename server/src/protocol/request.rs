//! Incremental decoder for client requests (RESP multibulk and inline commands).
//!
//! The decoder borrows the connection's read buffer and records each argument as a
//! span into it, so decoding allocates nothing per argument. When a request is not
//! complete yet it remembers how far it got; the next call, with more bytes appended
//! to the same buffer, continues from there. That keeps a 500 MB `SET` or a
//! million-argument `MSET` linear in its size.

use super::inline;
use super::number::parse_i64;

/// Longest inline request or length header Redis accepts (`PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;
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

/// The arguments of one decoded request, borrowed from the read buffer.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    src: &'a [u8],
    spans: &'a [(usize, usize)],
}

impl<'a> Args<'a> {
    /// Arguments over `spans` of `src` (each span is a start and end offset).
    pub fn new(src: &'a [u8], spans: &'a [(usize, usize)]) -> Self {
        Args { src, spans }
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
        let &(start, end) = self.spans.get(index)?;
        Some(&self.src[start..end])
    }

    /// All arguments in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let src = self.src;
        self.spans.iter().map(move |&(s, e)| &src[s..e])
    }

    /// The arguments from `index` on.
    pub fn skip(&self, index: usize) -> Args<'a> {
        Args {
            src: self.src,
            spans: &self.spans[index.min(self.spans.len())..],
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At the start of a request.
    Idle,
    /// Inside a multibulk request: `expected` arguments, next one at `pos`.
    Multibulk { expected: usize, pos: usize },
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
        }
    }

    /// The buffer length needed before the pending argument can complete (0 if unknown).
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// True while a request has been partly decoded.
    pub fn in_request(&self) -> bool {
        matches!(self.state, State::Multibulk { .. })
    }

    /// The arguments of the request last returned as [`Decoded::Request`]; `buf` must
    /// be the buffer that was passed to `decode`.
    pub fn args<'a>(&'a self, buf: &'a [u8]) -> Args<'a> {
        let src = if self.from_inline {
            &self.inline[..]
        } else {
            buf
        };
        Args::new(src, &self.spans)
    }

    /// Decodes the next request at the start of `buf`.
    pub fn decode(&mut self, buf: &[u8], limits: RequestLimits) -> Result<Decoded, ProtocolError> {
        let State::Multibulk { expected, pos } = self.state else {
            return match buf.first() {
                None => Ok(Decoded::Incomplete),
                Some(b'*') => self.start_multibulk(buf, limits),
                Some(_) => self.decode_inline(buf),
            };
        };
        self.continue_multibulk(buf, limits, expected, pos)
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
        self.inline.clear();
        self.from_inline = true;
        inline::split_args(line, &mut self.inline, &mut self.spans)
            .map_err(|_| ProtocolError::UnbalancedQuotes)?;
        Ok(Decoded::Request {
            consumed: newline + 1,
        })
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
