//! `MIGRATE`'s connections to target nodes (CLUSTER.md M4): blocking sockets,
//! since `MIGRATE` runs inside a command with its keys' slots held, kept per
//! target for 10 s after their last use and at most 64 of them, as Redis keeps
//! its cached migrate sockets.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long an unused link stays open.
const IDLE: Duration = Duration::from_secs(10);
/// Most links kept at once.
const MAX_LINKS: usize = 64;
/// Longest reply line read (a `RESTORE` reply is one short line).
const MAX_LINE: usize = 64 * 1024;

/// The idle links, by `host:port`. A link in use is taken out, so two
/// `MIGRATE`s to one target at once each get their own.
#[derive(Debug, Default)]
pub struct MigrateLinks {
    idle: Mutex<HashMap<String, Link>>,
}

impl MigrateLinks {
    /// The idle link to `host:port`, or a new one connected within `timeout`.
    pub fn take(&self, host: &str, port: u16, timeout: Duration) -> io::Result<Link> {
        let target = format!("{host}:{port}");
        if let Some(link) = self.idle.lock().remove(&target) {
            return Ok(link);
        }
        let mut last = io::Error::other(format!("{host} resolves to no address"));
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(Link {
                        stream,
                        target,
                        pending: Vec::new(),
                        db: None,
                        used: Instant::now(),
                        broken: false,
                    });
                }
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// Keeps `link` for the next `MIGRATE` to its target (a broken one is
    /// dropped instead, closing it). Full, the link unused longest goes.
    pub fn put_back(&self, mut link: Link) {
        if link.broken {
            return;
        }
        link.used = Instant::now();
        let mut idle = self.idle.lock();
        if idle.len() >= MAX_LINKS && !idle.contains_key(&link.target) {
            let oldest = idle
                .iter()
                .min_by_key(|(_, l)| l.used)
                .map(|(t, _)| t.clone());
            if let Some(target) = oldest {
                idle.remove(&target);
            }
        }
        idle.insert(link.target.clone(), link);
    }

    /// Closes the links unused for 10 s (the cron calls this).
    pub fn close_idle(&self) {
        let mut idle = self.idle.lock();
        if !idle.is_empty() {
            idle.retain(|_, link| link.used.elapsed() < IDLE);
        }
    }
}

/// One connection to a target node.
#[derive(Debug)]
pub struct Link {
    stream: TcpStream,
    target: String,
    pending: Vec<u8>,
    /// The database last selected on it, if known to be selected.
    pub db: Option<i64>,
    used: Instant,
    broken: bool,
}

impl Link {
    /// Marks the link unfit to keep (it timed out: a late reply would be
    /// read as the next request's).
    pub fn set_broken(&mut self) {
        self.broken = true;
    }

    /// Writes all of `bytes`, each write waiting at most `timeout`.
    pub fn send(&mut self, bytes: &[u8], timeout: Duration) -> io::Result<()> {
        self.stream.set_write_timeout(Some(timeout))?;
        self.stream.write_all(bytes)
    }

    /// Reads one reply line (without its CRLF), each read waiting at most
    /// `timeout`.
    pub fn line(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        self.stream.set_read_timeout(Some(timeout))?;
        loop {
            if let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line = self.pending[..end].to_vec();
                self.pending.drain(..end + 2);
                return Ok(line);
            }
            if self.pending.len() > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "reply line too long",
                ));
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.pending.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// True for an error that says the target did not answer in time (as opposed
/// to a connection that broke, which is worth one retry on a new one).
pub fn timed_out(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn links_are_reused_and_replies_read_line_by_line() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            let n = conn.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"PING\r\n");
            conn.write_all(b"+OK\r\n-ERR no\r\n").unwrap();
            // The link comes back for a second exchange on the same connection.
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0);
            conn.write_all(b"+PONG\r\n").unwrap();
        });
        let links = MigrateLinks::default();
        let timeout = Duration::from_secs(5);
        let mut link = links.take("127.0.0.1", port, timeout).unwrap();
        link.send(b"PING\r\n", timeout).unwrap();
        assert_eq!(link.line(timeout).unwrap(), b"+OK");
        assert_eq!(link.line(timeout).unwrap(), b"-ERR no");
        link.db = Some(0);
        links.put_back(link);
        let mut link = links.take("127.0.0.1", port, timeout).unwrap();
        assert_eq!(link.db, Some(0), "the same link, not a new one");
        link.send(b"PING\r\n", timeout).unwrap();
        assert_eq!(link.line(timeout).unwrap(), b"+PONG");
        server.join().unwrap();
    }

    #[test]
    fn a_silent_target_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let links = MigrateLinks::default();
        let mut link = links
            .take("127.0.0.1", port, Duration::from_secs(5))
            .unwrap();
        let err = link.line(Duration::from_millis(50)).unwrap_err();
        assert!(timed_out(&err), "{err:?}");
        drop(listener);
    }
}
