//! The server: binding its addresses, and running it until shutdown.
//!
//! ```text
//! Server::bind(config) ──▶ run(shutdown)
//!                            ├─ accept loop per listener ─▶ worker thread (round robin)
//!                            │                               └─ connection task per client
//!                            └─ cron (stats sampling, active expiry, eviction)
//! shutdown (signal, SHUTDOWN) ─▶ cancel token ─▶ every task ends ─▶ tracker joined
//! ```
//! Shutdown is passed in as a future, so tests stop a server without signals.
//! Uses everything: it builds the node and starts its tasks.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::clock::{Clock, SystemClock};
use crate::cluster::{parse_members, persist_node_id, ClusterHandle, ClusterState};
use crate::commands::table::registry;
use crate::config::{Config, LiveConfig, LogLevelHook};
use crate::net::Workers;
use crate::shared::Shared;
use crate::{cron, net};

/// The cluster this node belongs to, in cluster mode: the members from the
/// configuration, this node found by its address, its id kept in the node id
/// file.
fn cluster_state(config: &Config) -> std::io::Result<Option<ClusterState>> {
    if !config.cluster_enabled {
        return Ok(None);
    }
    let invalid = |e: crate::cluster::ClusterError| std::io::Error::other(e.to_string());
    let members = parse_members(&config.cluster_nodes).map_err(invalid)?;
    let ip = config.bind.first().map_or("127.0.0.1", String::as_str);
    let bus_port = match config.cluster_port {
        0 => config.port.wrapping_add(10_000),
        port => port,
    };
    let state = ClusterState::new(members, ip, config.port, bus_port, 1).map_err(invalid)?;
    persist_node_id(
        std::path::Path::new(&config.cluster_config_file),
        &state.myself().id,
    )
    .map_err(invalid)?;
    Ok(Some(state))
}

/// A server bound to its addresses, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    threads: usize,
}

impl Server {
    /// Binds every configured address (port 0 picks a free port, the same for all).
    pub async fn bind(
        config: &Config,
        on_loglevel: Option<LogLevelHook>,
    ) -> std::io::Result<Server> {
        Self::bind_with_clock(config, on_loglevel, Arc::new(SystemClock)).await
    }

    /// Like [`Server::bind`] with an explicit clock.
    pub async fn bind_with_clock(
        config: &Config,
        on_loglevel: Option<LogLevelHook>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Server> {
        let mut listeners = Vec::new();
        let mut port = config.port;
        for addr in &config.bind {
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| std::io::Error::other(format!("'{addr}' is not an IP address")))?;
            let listener = net::listen(SocketAddr::new(ip, port), config.tcp_backlog)?;
            port = listener.local_addr()?.port();
            listeners.push(listener);
        }
        net::warn_if_capped(config.tcp_backlog);
        // CONFIG GET port shows the port actually bound (port 0 picks one).
        let effective = Config {
            port,
            ..config.clone()
        };
        let live = LiveConfig::new(&effective, on_loglevel);
        let cluster = match cluster_state(&effective)? {
            Some(state) => ClusterHandle::new(state),
            None => ClusterHandle::standalone(),
        };
        let shared = Shared::new(live, clock, port, registry().len(), cluster);
        Ok(Server {
            shared: Arc::new(shared),
            listeners,
            threads: config.worker_threads(),
        })
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The shared state (for tests and embedding).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves clients until `shutdown` completes or a client sends `SHUTDOWN`, then
    /// closes every connection and waits for all tasks and worker threads to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let workers = Arc::new(Workers::start(self.threads)?);
        let tracker = TaskTracker::new();
        for listener in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                // Tests and scripts wait for this line (and read the port from it).
                tracing::info!("ready to accept connections on {addr}");
            }
            tracker.spawn(net::accept_loop(
                self.shared.clone(),
                listener,
                workers.clone(),
                tracker.clone(),
            ));
        }
        tracker.spawn(cron::run(self.shared.clone()));
        tokio::select! {
            _ = shutdown => tracing::info!("shutdown requested by signal"),
            _ = self.shared.shutdown.cancelled() => {}
        }
        self.shared.shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        tokio::task::spawn_blocking(move || workers.stop())
            .await
            .map_err(std::io::Error::other)?;
        tracing::info!("server stopped");
        Ok(())
    }
}
