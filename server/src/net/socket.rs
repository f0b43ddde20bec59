//! A client socket whose reads cost one system call.
//!
//! A tokio stream learns that a socket is drained only from a read that fails with
//! `EAGAIN`, so every request would cost a second, empty read. Here a read that
//! returns less than the space offered proves the socket drained, and readiness is
//! cleared without that extra call: the read runs inside an outer `try_io` whose
//! closure reports `WouldBlock` after a short read. `try_io` clears only the
//! readiness it observed before the read; a readiness event that arrived during the
//! read has a newer tick and survives, so no wake-up can be lost.

use std::io::{self, ErrorKind, IoSlice};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::buffer::InputBuffer;

/// A TCP stream registered with the current runtime's reactor.
pub struct Socket {
    stream: TcpStream,
}

impl Socket {
    /// Registers `stream` with the current runtime's reactor.
    pub fn new(stream: std::net::TcpStream) -> io::Result<Socket> {
        stream.set_nonblocking(true)?;
        Ok(Socket {
            stream: TcpStream::from_std(stream)?,
        })
    }

    /// Waits for data and reads what is available into `buf`; 0 means the peer
    /// closed the connection.
    pub async fn read(&self, buf: &mut InputBuffer) -> io::Result<usize> {
        loop {
            self.stream.readable().await?;
            let spare = buf.spare();
            let offered = spare.len();
            let mut received = None;
            let outcome = self.stream.try_io(Interest::READABLE, || {
                let n = self.stream.try_read(spare)?;
                received = Some(n);
                if n > 0 && n < offered {
                    // Drained: have try_io clear the readiness it saw.
                    Err(ErrorKind::WouldBlock.into())
                } else {
                    Ok(n)
                }
            });
            let n = match (received, outcome) {
                (Some(n), _) | (None, Ok(n)) => n,
                (None, Err(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) =>
                {
                    continue
                }
                (None, Err(e)) => return Err(e),
            };
            buf.commit(n);
            return Ok(n);
        }
    }

    /// Writes what the socket takes of `data` now: the bytes written, or `None`
    /// when its send buffer is full (wait with [`Socket::writable`]).
    pub fn try_write(&self, data: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        loop {
            // One buffer (the usual batch) goes by `write`, which the kernel
            // serves with less work than `writev`.
            let written = match data {
                [one] => self.stream.try_write(one),
                _ => self.stream.try_write_vectored(data),
            };
            match written {
                Ok(0) if data.iter().any(|d| !d.is_empty()) => {
                    return Err(ErrorKind::WriteZero.into())
                }
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the socket may take more data.
    pub async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }
}
