//! Network I/O: accepting clients and serving each connection, a master's
//! stream to each of its replicas, and a replica's link to its master. With the
//! cluster bus, the only module that touches sockets.
//! Uses the shared node state, sessions and commands.

mod buffer;
mod connection;
mod export;
mod import;
mod listen;
mod rebalance;
mod replica;
mod socket;
mod upstream;
mod workers;

pub use export::run_exports;
pub use listen::{listen, warn_if_capped};
pub use rebalance::run_rebalancer;
pub use upstream::follow_master;
pub use workers::Workers;

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::shared::Shared;
use crate::util::is_loopback;

const MAXCLIENTS_ERROR: &[u8] = b"-ERR max number of clients reached\r\n";

/// Redis's refusal for a non-loopback client while protected mode is on.
const DENIED_ERROR: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is \
enabled and no password is set for the default user. In this mode connections are only accepted \
from the loopback interface. If you want to connect from external computers to Redis you may adopt \
one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET \
protected-mode no' from the loopback interface by connecting to Redis from the same host the server \
is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use \
CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected \
mode by editing the Redis configuration file, and setting the protected mode option to 'no', and \
then restarting the server. 3) If you started the server manually just for testing, restart it \
with the '--protected-mode no' option. 4) Set up an authentication password for the default user. \
NOTE: You only need to do one of the above things in order for the server to start accepting \
connections from the outside.\r\n";

/// Whether protected mode refuses a client from `peer`: it is on, there is no
/// password, and the client is not on loopback.
fn protected_mode_denies(protected: bool, has_password: bool, peer: IpAddr) -> bool {
    protected && !has_password && !is_loopback(peer)
}

/// Accepts clients until shutdown and hands each to a worker, where it runs as a
/// task on `tracker`. Each connection costs a fixed handful of system calls
/// here, and a refused one no waiting at all, so a connection storm drains the
/// accept queue as fast as it fills.
pub async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    workers: Arc<Workers>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => ok,
            Err(err) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.stats.connections_received.fetch_add(1, Relaxed);
        let _ = stream.set_nodelay(true);
        let config = &shared.config;
        let refusal = if shared.clients.len() as u64 >= config.maxclients() {
            Some(MAXCLIENTS_ERROR)
        } else if protected_mode_denies(config.protected_mode(), config.has_password(), peer.ip()) {
            Some(DENIED_ERROR)
        } else {
            None
        };
        if let Some(message) = refusal {
            shared.stats.rejected_connections.fetch_add(1, Relaxed);
            refuse(stream, message);
            continue;
        }
        let laddr = stream.local_addr().unwrap_or(peer);
        let fd = stream.as_raw_fd();
        // Leave this runtime's reactor; the worker registers the socket with its own.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(%err, "cannot hand over connection");
                continue;
            }
        };
        let handle =
            shared
                .clients
                .register(peer, laddr, fd, &shared.shutdown, shared.clock.now_ms());
        let (id, job_shared, job_tracker) = (handle.id, shared.clone(), tracker.clone());
        let started = workers.dispatch(Box::new(move || {
            job_tracker.spawn_local(connection::serve(job_shared, stream, handle));
        }));
        if !started {
            // Shutting down: the connection is dropped, and closed with it.
            shared.clients.unregister(id);
        }
    }
}

/// Tells a refused client why, then closes, as Redis does. The socket is new,
/// so its send buffer takes the message whole: one write that never waits.
fn refuse(stream: TcpStream, message: &'static [u8]) {
    let _ = stream.try_write(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_refuses_only_remote_clients_without_password() {
        let remote: IpAddr = "10.1.2.3".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let local6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(protected_mode_denies(true, false, remote));
        assert!(!protected_mode_denies(true, false, local));
        assert!(!protected_mode_denies(true, false, local6));
        assert!(!protected_mode_denies(true, false, mapped));
        assert!(!protected_mode_denies(true, true, remote));
        assert!(!protected_mode_denies(false, false, remote));
    }
}
