//! Listening sockets with Redis's `tcp-backlog`.
//!
//! `TcpListener::bind` asks the kernel for a backlog of 128: a burst of a few
//! thousand connects overflows it, and every connection the kernel drops waits
//! for a SYN retry (1 s, then 3 s, 7 s...). The socket is built by hand so the
//! backlog is the configured one.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Where Linux caps every listen backlog.
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// A listener on `addr` (IPv4 or IPv6) whose accept queue holds `backlog`
/// connections.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // A restarted server rebinds at once despite connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Warns, as Redis does, when the kernel caps the backlog below `backlog`.
pub fn warn_if_capped(backlog: u32) {
    let Ok(text) = std::fs::read_to_string(SOMAXCONN) else {
        return;
    };
    if let Some(cap) = capped_below(&text, backlog) {
        tracing::warn!(
            "WARNING: The TCP backlog setting of {backlog} cannot be enforced because \
             {SOMAXCONN} is set to the lower value of {cap}."
        );
    }
}

/// The kernel's cap from the text of [`SOMAXCONN`], if it is below `backlog`.
fn capped_below(somaxconn: &str, backlog: u32) -> Option<u32> {
    somaxconn
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&cap| cap < backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lower_somaxconn_is_reported() {
        assert_eq!(capped_below("128\n", 511), Some(128));
        assert_eq!(capped_below("4096\n", 511), None);
        assert_eq!(capped_below("511", 511), None);
        assert_eq!(capped_below("garbage", 511), None);
    }

    #[tokio::test]
    async fn listeners_bind_both_families_and_accept() {
        for ip in ["127.0.0.1", "::1"] {
            let addr = SocketAddr::new(ip.parse().unwrap(), 0);
            let listener = match listen(addr, 511) {
                Ok(l) => l,
                // No IPv6 on this machine: nothing to check for that family.
                Err(e) if ip == "::1" && e.kind() == io::ErrorKind::AddrNotAvailable => continue,
                Err(e) => panic!("{ip}: {e}"),
            };
            let bound = listener.local_addr().unwrap();
            assert_eq!(bound.ip(), addr.ip());
            let client = tokio::net::TcpStream::connect(bound).await.unwrap();
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
        }
    }
}
