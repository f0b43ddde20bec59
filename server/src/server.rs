//! The server: shared state, and running it until shutdown.
//!
//! ```text
//! Server::bind(config) ──▶ run(shutdown)
//!                            ├─ accept loop per listener ─▶ worker thread (round robin)
//!                            │                               └─ connection task per client
//!                            └─ cron (stats sampling, active expiry, eviction)
//! shutdown (signal, SHUTDOWN) ─▶ cancel token ─▶ every task ends ─▶ tracker joined
//! ```
//! Shutdown is passed in as a future, so tests stop a server without signals.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocking::Blocked;
use crate::clients::Clients;
use crate::clock::{Clock, Millis, SystemClock};
use crate::cluster::{parse_members, persist_node_id, ClusterState};
use crate::commands::table::registry;
use crate::config::{Config, LiveConfig, LogLevelHook};
use crate::eviction::{Evictor, OutOfMemory};
use crate::keyspace::Keyspace;
use crate::net::Workers;
use crate::pubsub::PubSub;
use crate::stats::Stats;
use crate::watch::Watches;
use crate::write::{Changes, Feed};
use crate::{cron, memory, net};

/// State shared by every connection and background task.
pub struct Shared {
    /// All keys.
    pub keyspace: Keyspace,
    /// Live configuration.
    pub config: LiveConfig,
    /// Counters for `INFO`.
    pub stats: Stats,
    /// Connected clients.
    pub clients: Clients,
    /// Clients blocked on keys.
    pub blocked: Blocked,
    /// Keys watched by transactions.
    pub watches: Watches,
    /// Pub/sub channels and subscribers.
    pub pubsub: PubSub,
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
    /// Changes made to the dataset since start (see `commands::propagate`).
    pub dirty: AtomicU64,
    /// Chooses and removes keys when memory is over `maxmemory`.
    pub evictor: Evictor,
    /// The cluster, in cluster mode.
    pub cluster: Option<ClusterState>,
    /// Every unit of work's records, for replicas and migration targets.
    pub feed: Feed,
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
    /// Shared state for a server with `config` and `clock`.
    pub fn new(config: LiveConfig, clock: Arc<dyn Clock>, port: u16) -> Self {
        let run_id: String = (0..40)
            .map(|_| char::from_digit(rand::random_range(0..16), 16).unwrap_or('0'))
            .collect();
        let shared = Shared {
            keyspace: Keyspace::new(),
            config,
            stats: Stats::new(registry().len()),
            clients: Clients::default(),
            blocked: Blocked::default(),
            watches: Watches::default(),
            pubsub: PubSub::default(),
            started_unix: clock.now_ms() / 1000,
            clock,
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            run_id,
            dirty: AtomicU64::new(0),
            evictor: Evictor::default(),
            cluster: None,
            feed: Feed::default(),
            memory_peak: AtomicU64::new(0),
            port,
        };
        shared.apply_settings();
        shared
    }

    /// Puts the settings the data layer caches in force (at start and after
    /// `CONFIG SET`): how key accesses are recorded, a fresh eviction candidate
    /// pool, and whether expired keys are named for keyspace events.
    pub fn apply_settings(&self) {
        self.keyspace.set_tracking(self.config.tracking());
        self.evictor.reset();
        let flags = self.config.notify_flags();
        let events = crate::notify::KEYSPACE | crate::notify::KEYEVENT;
        self.keyspace
            .record_expired(flags & crate::notify::EXPIRED != 0 && flags & events != 0);
    }

    /// Evicts keys until memory use is at or under `maxmemory` (see
    /// [`Shared::evict_while`]). Must be called holding no slot lock.
    pub fn make_room(&self, now: Millis) -> Result<usize, OutOfMemory> {
        let limit = self.config.maxmemory();
        if limit == 0 {
            return Ok(0);
        }
        self.evict_while(now, || memory::used() > limit)
    }

    /// Evicts keys by the configured policy while `over()` holds; each eviction
    /// is a unit of work, committed while its slot is held (an `evicted` event,
    /// the `WATCH`es it breaks, a change, a `DEL` in the write feed). Must be
    /// called holding no slot lock.
    pub fn evict_while(
        &self,
        now: Millis,
        over: impl FnMut() -> bool,
    ) -> Result<usize, OutOfMemory> {
        let mut changes = Changes::default();
        let feeding = self.feed.is_active();
        self.evictor.evict_while(
            &self.keyspace,
            self.config.eviction(),
            now,
            over,
            |locks, evicted| {
                changes.begin(feeding);
                locks.take_expired(|key| changes.expired(key));
                if let Some(key) = evicted {
                    changes.record(1, crate::notify::EVICTED, "evicted", key);
                    changes.command(&[b"DEL", key]);
                }
                crate::write::commit(self, locks, &mut changes, now);
            },
        )
    }

    /// Changes made to the dataset since start.
    pub fn dirty(&self) -> u64 {
        self.dirty.load(Relaxed)
    }

    /// The TCP port clients connect to.
    pub fn config_port(&self) -> u16 {
        self.port
    }

    /// The pub/sub output limits as configured now.
    pub fn pubsub_output_limit(&self) -> crate::config::OutputLimit {
        self.config.output_limit(crate::config::ClientClass::Pubsub)
    }

    /// Publishes a keyspace event if `notify-keyspace-events` asks for its class.
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        let flags = self.config.notify_flags();
        if flags != 0 {
            self.notify_with(flags, class, event, key);
        }
    }

    /// [`Shared::notify`] with the `notify-keyspace-events` flags read already.
    pub fn notify_with(&self, flags: u32, class: u32, event: &str, key: &[u8]) {
        crate::notify::publish(
            &self.pubsub,
            self.pubsub_output_limit(),
            flags,
            class,
            event,
            key,
        );
    }

    /// Records current memory use; returns the peak so far.
    pub fn note_memory(&self, used: u64) -> u64 {
        self.memory_peak.fetch_max(used, Relaxed).max(used)
    }
}

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
        let mut shared = Shared::new(live, clock, port);
        shared.cluster = cluster_state(&effective)?;
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
