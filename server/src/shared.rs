//! What every connection and background task of this node shares: the
//! dataset, the settings, the counters, the connected clients, the cluster view
//! and the node's identity.
//!
//! Below the commands; uses the dataset, the sessions' client registry, the
//! cluster view, the settings and the counters. The server builds one and hands
//! it to every task.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::cluster::ClusterHandle;
use crate::config::LiveConfig;
use crate::dataset::Dataset;
use crate::migration::{MigrateLinks, Migrations};
use crate::replication::Replication;
use crate::scripting::{BusyScripts, Functions, Scripts};
use crate::session::Clients;
use crate::stats::Stats;

/// State shared by every connection and background task.
pub struct Shared {
    /// The keyspace and what follows its changes.
    pub data: Dataset,
    /// Live configuration.
    pub config: Arc<LiveConfig>,
    /// Counters for `INFO`.
    pub stats: Arc<Stats>,
    /// Connected clients.
    pub clients: Clients,
    /// This node's view of the cluster (none in standalone mode).
    pub cluster: ClusterHandle,
    /// This node's replication role, replicas and ids.
    pub replication: Replication,
    /// Time source for expiry.
    pub clock: Arc<dyn Clock>,
    /// Cancelled to stop the server.
    pub shutdown: CancellationToken,
    /// When the server started.
    pub started: Instant,
    /// Start time in Unix seconds.
    pub started_unix: u64,
    /// Random id of this run (`INFO server`).
    pub run_id: String,
    /// `MIGRATE`'s idle links to target nodes.
    pub migrate_links: MigrateLinks,
    /// The atomic slot migrations this node sends or receives.
    pub migrations: Migrations,
    /// The Lua scripts this node knows (`EVAL`, `SCRIPT LOAD`).
    pub scripts: Scripts,
    /// The function libraries (`FUNCTION LOAD`, `FCALL`).
    pub functions: Functions,
    /// Scripts running past `busy-reply-threshold`.
    pub busy_scripts: BusyScripts,
    memory_peak: AtomicU64,
    port: u16,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Shared state for a node with `config` and `clock` listening on `port`,
    /// counting the calls of `commands` commands, in `cluster`.
    pub fn new(
        config: LiveConfig,
        clock: Arc<dyn Clock>,
        port: u16,
        commands: usize,
        cluster: ClusterHandle,
    ) -> Self {
        let run_id: String = (0..40)
            .map(|_| char::from_digit(rand::random_range(0..16), 16).unwrap_or('0'))
            .collect();
        let config = Arc::new(config);
        let stats = Arc::new(Stats::new(commands));
        Shared {
            data: Dataset::new(config.clone(), stats.clone()),
            config,
            stats,
            clients: Clients::default(),
            cluster,
            replication: Replication::default(),
            started_unix: clock.now_ms() / 1000,
            clock,
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            run_id,
            migrate_links: MigrateLinks::default(),
            migrations: Migrations::default(),
            scripts: Scripts::default(),
            functions: Functions::default(),
            busy_scripts: BusyScripts::default(),
            memory_peak: AtomicU64::new(0),
            port,
        }
    }

    /// The TCP port clients connect to.
    pub fn config_port(&self) -> u16 {
        self.port
    }

    /// Records current memory use; returns the peak so far.
    pub fn note_memory(&self, used: u64) -> u64 {
        self.memory_peak.fetch_max(used, Relaxed).max(used)
    }
}
