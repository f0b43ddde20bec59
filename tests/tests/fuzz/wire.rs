//! One fuzzer connection: sends requests and reads replies that must be valid RESP
//! of the protocol the connection speaks, telling a dropped connection, a reply
//! that never came and a malformed one apart.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::BytesFrame as Frame3;

/// Largest reply the fuzzer accepts: beyond the server's output-buffer limit,
/// so a reply this large means the limit was not applied.
const MAX_REPLY: usize = 256 << 20;

/// A reply, whichever protocol carried it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+...`
    Status(String),
    /// `-...` (or a RESP3 blob error).
    Error(String),
    /// `:n`
    Int(i64),
    /// A bulk, blob or verbatim string.
    Bulk(Vec<u8>),
    /// Any null.
    Nil,
    /// An array or a RESP3 set.
    Array(Vec<Value>),
    /// A RESP3 map.
    Map(Vec<(Value, Value)>),
    /// A RESP3 push message.
    Push(Vec<Value>),
    /// Doubles, booleans and big numbers: valid, not inspected further.
    Scalar,
}

impl Value {
    fn from2(frame: Frame2) -> Value {
        match frame {
            Frame2::SimpleString(s) => Value::Status(String::from_utf8_lossy(&s).into_owned()),
            Frame2::Error(e) => Value::Error(e.to_string()),
            Frame2::Integer(n) => Value::Int(n),
            Frame2::BulkString(b) => Value::Bulk(b.to_vec()),
            Frame2::Array(items) => Value::Array(items.into_iter().map(Value::from2).collect()),
            Frame2::Null => Value::Nil,
        }
    }

    fn from3(frame: Frame3) -> Value {
        match frame {
            Frame3::SimpleString { data, .. } => {
                Value::Status(String::from_utf8_lossy(&data).into_owned())
            }
            Frame3::SimpleError { data, .. } => Value::Error(data.to_string()),
            Frame3::BlobError { data, .. } => {
                Value::Error(String::from_utf8_lossy(&data).into_owned())
            }
            Frame3::Number { data, .. } => Value::Int(data),
            Frame3::BlobString { data, .. } | Frame3::VerbatimString { data, .. } => {
                Value::Bulk(data.to_vec())
            }
            Frame3::Null => Value::Nil,
            Frame3::Array { data, .. } => {
                Value::Array(data.into_iter().map(Value::from3).collect())
            }
            Frame3::Set { data, .. } => Value::Array(data.into_iter().map(Value::from3).collect()),
            Frame3::Push { data, .. } => Value::Push(data.into_iter().map(Value::from3).collect()),
            Frame3::Map { data, .. } => Value::Map(
                data.into_iter()
                    .map(|(k, v)| (Value::from3(k), Value::from3(v)))
                    .collect(),
            ),
            _ => Value::Scalar,
        }
    }

    /// The bytes of a bulk or status reply.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The items of an array reply (empty for anything else).
    pub fn items(&self) -> &[Value] {
        match self {
            Value::Array(items) => items,
            _ => &[],
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Status(s) => write!(f, "+{}", clip(s.as_bytes())),
            Value::Error(e) => write!(f, "-{}", clip(e.as_bytes())),
            Value::Int(n) => write!(f, ":{n}"),
            Value::Bulk(b) => write!(f, "${}", clip(b)),
            Value::Nil => write!(f, "(nil)"),
            Value::Array(items) | Value::Push(items) => {
                write!(f, "[{} items]", items.len())
            }
            Value::Map(pairs) => write!(f, "{{{} pairs}}", pairs.len()),
            Value::Scalar => write!(f, "(scalar)"),
        }
    }
}

/// A request from text words.
pub fn words(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// Printable form of an argument: escaped, long ones cut with their length noted.
pub fn clip(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(48)];
    let mut out: String = shown.escape_ascii().to_string();
    if bytes.len() > shown.len() {
        out.push_str(&format!("...({} bytes)", bytes.len()));
    }
    out
}

/// A request as text, for failure messages.
pub fn render(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| format!("\"{}\"", clip(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why no reply was read.
#[derive(Debug)]
pub enum ReadError {
    /// The server closed (or reset) the connection.
    Closed,
    /// Nothing complete arrived in time.
    Timeout,
    /// The bytes are not valid RESP of the connection's protocol.
    Invalid(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "the server closed the connection"),
            ReadError::Timeout => write!(f, "no reply in time"),
            ReadError::Invalid(why) => write!(f, "invalid reply: {why}"),
        }
    }
}

/// A connection speaking RESP2 or RESP3.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// Replies are decoded as RESP3 (after `HELLO 3`) or RESP2.
    pub resp3: bool,
    /// `CLIENT ID` of this connection.
    pub id: i64,
}

impl Conn {
    /// Connects to the server on `port`, switches to RESP3 if asked, and learns its
    /// client id.
    pub fn open(port: u16, resp3: bool, timeout: Duration) -> Result<Conn, String> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut conn = Conn {
            stream,
            buf: BytesMut::new(),
            resp3: false,
            id: 0,
        };
        if resp3 {
            if !conn.send(&[b"HELLO".to_vec(), b"3".to_vec()]) {
                return Err("HELLO 3: connection closed".into());
            }
            conn.resp3 = true;
            match conn.read(timeout) {
                Ok(Value::Map(_)) => {}
                other => return Err(format!("HELLO 3 replied {other:?}")),
            }
        }
        match conn.call(&[b"CLIENT".to_vec(), b"ID".to_vec()], timeout) {
            Ok(Value::Int(id)) => conn.id = id,
            other => return Err(format!("CLIENT ID replied {other:?}")),
        }
        Ok(conn)
    }

    /// Sends one request; false if the connection is gone.
    pub fn send(&mut self, args: &[Vec<u8>]) -> bool {
        self.stream
            .write_all(&ringkv_tests::request(
                &args.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            ))
            .is_ok()
    }

    /// Reads the next reply, waiting at most `timeout`.
    pub fn read(&mut self, timeout: Duration) -> Result<Value, ReadError> {
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; 256 * 1024];
        // The decoder starts over on every attempt, so a reply of many megabytes
        // is only decoded again once the buffer has doubled, or when no more bytes
        // come for a moment: linear, not quadratic, in the reply's size.
        let (mut tried, mut quiet) = (0, true);
        loop {
            let attempt = quiet || self.buf.len() >= tried * 2;
            if attempt {
                if let Some(value) = self.decode()? {
                    return Ok(value);
                }
                tried = self.buf.len();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadError::Timeout);
            }
            let wait = if attempt {
                left
            } else {
                left.min(Duration::from_millis(20))
            };
            self.stream.set_read_timeout(Some(wait)).expect("timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    quiet = false;
                    if self.buf.len() > MAX_REPLY {
                        return Err(ReadError::Invalid(format!(
                            "a reply over {MAX_REPLY} bytes (the output-buffer limit is 64 MB)"
                        )));
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if attempt {
                        return Err(ReadError::Timeout);
                    }
                    quiet = true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(ReadError::Closed),
            }
        }
    }

    /// Sends a request and reads its reply.
    pub fn call(&mut self, args: &[Vec<u8>], timeout: Duration) -> Result<Value, ReadError> {
        if !self.send(args) {
            return Err(ReadError::Closed);
        }
        self.read(timeout)
    }

    /// Decodes one reply from the buffer, if a whole one is there.
    fn decode(&mut self) -> Result<Option<Value>, ReadError> {
        let invalid = |e: &dyn fmt::Debug, head: &[u8], resp3: bool| {
            ReadError::Invalid(format!(
                "{} decoder: {e:?}; bytes: {}",
                if resp3 { "RESP3" } else { "RESP2" },
                clip(&head[..head.len().min(200)])
            ))
        };
        if self.resp3 {
            match redis_protocol::resp3::decode::complete::decode_bytes_mut(&mut self.buf) {
                Ok(found) => Ok(found.map(|(frame, _, _)| Value::from3(frame))),
                Err(e) => Err(invalid(&e, &self.buf, true)),
            }
        } else {
            match redis_protocol::resp2::decode::decode_bytes_mut(&mut self.buf) {
                Ok(found) => Ok(found.map(|(frame, _, _)| Value::from2(frame))),
                Err(e) => Err(invalid(&e, &self.buf, false)),
            }
        }
    }
}
