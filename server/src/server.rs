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

use crate::bus::{self, BusConfig};
use crate::clock::{Clock, SystemClock};
use crate::cluster::machine::{Cluster, Settings};
use crate::cluster::message::Addr;
use crate::cluster::{nodes_conf, ClusterHandle};
use crate::commands::table::registry;
use crate::config::{Config, LiveConfig, LogLevelHook};
use crate::net::Workers;
use crate::shared::Shared;
use crate::{cron, net};

/// In cluster mode, the node's cluster (restored from `cluster-config-file`
/// if there is one, else a new node alone) and its bus listener.
fn cluster(config: &Config) -> std::io::Result<(ClusterHandle, Option<BusConfig>)> {
    if !config.cluster_enabled {
        return Ok((ClusterHandle::standalone(), None));
    }
    let ip: IpAddr = config
        .bind
        .first()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let cport = match config.cluster_port {
        0 => config.port.checked_add(10_000).ok_or_else(|| {
            std::io::Error::other(format!(
                "port {} + 10000 is no port; set cluster-port",
                config.port
            ))
        })?,
        port => port,
    };
    let listener = std::net::TcpListener::bind(SocketAddr::new(ip, cport))?;
    let addr = Addr {
        ip,
        port: config.port,
        cport,
    };
    let path = std::path::Path::new(&config.cluster_config_file);
    let config_lock = lock_config_file(path)?;
    let settings = Settings {
        node_timeout: config.cluster_node_timeout,
        require_full_coverage: config.cluster_require_full_coverage,
        replica_no_failover: config.cluster_replica_no_failover,
        replica_validity_factor: config.cluster_replica_validity_factor,
        allow_replica_migration: config.cluster_allow_replica_migration,
        migration_barrier: config.cluster_migration_barrier,
    };
    let seed = rand::random();
    let now = SystemClock.now_ms();
    let machine = match nodes_conf::load(path).map_err(std::io::Error::other)? {
        Some(conf) => Cluster::restore(settings, &conf, addr, seed, now)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
        None => Cluster::new(settings, addr, seed, now),
    };
    tracing::info!("cluster node {} (bus port {cport})", machine.myself());
    let handle = ClusterHandle::new(machine, path);
    handle.save()?;
    let bus = BusConfig {
        listener,
        config_lock,
        source_ip: Some(ip),
        // A cluster whose nodes share a password needs no separate secret.
        secret: config
            .cluster_bus_secret
            .clone()
            .or_else(|| config.requirepass.clone())
            .map(String::into_bytes),
    };
    Ok((handle, Some(bus)))
}

/// Locks `<path>.lock` for as long as the node runs: two nodes sharing one
/// config file would share an identity (Redis locks its file the same way).
fn lock_config_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::other(format!(
            "the cluster configuration file {} is already used by another ringkv node; \
             each node needs its own cluster-config-file",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// A server bound to its addresses, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    bus: Option<BusConfig>,
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
        let (cluster, bus) = cluster(&effective)?;
        let shared = Shared::new(live, clock, port, registry().len(), cluster);
        if let Some((host, port)) = config.replicaof.as_deref().and_then(|t| t.split_once(' ')) {
            let target = crate::replication::Target {
                host: host.to_owned(),
                port: port.parse().map_err(std::io::Error::other)?,
            };
            let data = &shared.data;
            shared
                .replication
                .follow(&data.feed, &data.keyspace, &shared.config, target);
        }
        // No data survives a restart, nor the lock grants made before it (L5).
        shared.replication.started();
        Ok(Server {
            shared: Arc::new(shared),
            listeners,
            bus,
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
        tracker.spawn(net::follow_master(self.shared.clone()));
        tracker.spawn(net::run_exports(self.shared.clone()));
        tracker.spawn(net::run_rebalancer(self.shared.clone()));
        let bus = match self.bus {
            Some(config) => Some(bus::start(self.shared.clone(), config)?),
            None => None,
        };
        tokio::select! {
            _ = shutdown => tracing::info!("shutdown requested by signal"),
            _ = self.shared.shutdown.cancelled() => {}
        }
        self.shared.shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        tokio::task::spawn_blocking(move || {
            workers.stop();
            if let Some(bus) = bus {
                let _ = bus.join();
            }
        })
        .await
        .map_err(std::io::Error::other)?;
        tracing::info!("server stopped");
        Ok(())
    }
}
