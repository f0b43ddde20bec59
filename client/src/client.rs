//! Connections: a shared multiplexed one, and dedicated ones for blocking
//! calls; to one server, or to a Redis Cluster (ringkv or Redis) through the
//! `redis` crate's cluster connection, which keeps the slot map (from `CLUSTER
//! SLOTS`), routes each command by the slot of its key, follows `MOVED`
//! (refreshing the map) and `ASK` (with `ASKING`), and retries `TRYAGAIN` and
//! `CLUSTERDOWN` with a short backoff.
//!
//! A held lock also needs to *notice* a redirect or an outage rather than have
//! it smoothed over, so a cluster client keeps a second, **strict** cluster
//! connection (opened on first use) that retries nothing: `MOVED`, `ASK`,
//! `CLUSTERDOWN`, `TRYAGAIN` and a lost connection come back as errors (the
//! slot map is still refreshed). The lock guard renews through it and treats
//! any error as "maybe lost" (see [`crate::LockGuard`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use crate::Error;

/// A client of one server or of one cluster.
///
/// Quick commands share one multiplexed connection (requests pipeline on it
/// from any number of tasks; to a single server it reconnects by itself after
/// a lost connection). Commands that block on the server (`WAIT` options) take
/// a dedicated connection from a small pool, so they never hold up the others.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    shared: Conn,
    /// Redirects and outages as errors, for a held lock (cluster only; a
    /// single server's shared connection already reports them).
    strict: OnceCell<Conn>,
    idle: Pool,
    timeout: Duration,
    /// The server lacks `SET ... IFEQ` and `DELIFEQ`/`DELEX` (Redis 7):
    /// compare-and-set by script instead.
    compare_scripts: AtomicBool,
}

/// Where connections come from.
enum Source {
    Single(redis::Client),
    Cluster {
        following: Box<redis::cluster::ClusterClient>,
        strict: Box<redis::cluster::ClusterClient>,
    },
}

/// A connection to one server or to a whole cluster.
#[derive(Clone)]
enum Conn {
    /// The shared connection to one server: reconnects after a loss.
    Managed(ConnectionManager),
    /// A dedicated connection to one server: dropped after a failure.
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Source {
    /// A dedicated connection (cluster: one that follows redirects).
    async fn connect(&self) -> redis::RedisResult<Conn> {
        Ok(match self {
            Source::Single(client) => {
                Conn::Single(client.get_multiplexed_async_connection().await?)
            }
            Source::Cluster { following, .. } => {
                Conn::Cluster(following.get_async_connection().await?)
            }
        })
    }
}

impl Conn {
    async fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Conn::Managed(con) => cmd.query_async(con).await,
            Conn::Single(con) => cmd.query_async(con).await,
            Conn::Cluster(con) => cmd.query_async(con).await,
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner.source {
            Source::Single(_) => "server",
            Source::Cluster { .. } => "cluster",
        };
        f.debug_struct("Client").field("kind", &kind).finish()
    }
}

/// Idle dedicated connections, reused last in, first out.
#[derive(Default)]
struct Pool(Mutex<Vec<Conn>>);

/// Idle connections kept at most.
const POOL_MAX: usize = 64;

impl Pool {
    fn take(&self) -> Option<Conn> {
        self.0.lock().ok()?.pop()
    }

    fn put(&self, con: Conn) {
        if let Ok(mut idle) = self.0.lock() {
            if idle.len() < POOL_MAX {
                idle.push(con);
            }
        }
    }
}

/// Default time a request may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Retries of a redirect-following cluster connection (a `MOVED` uses one).
const CLUSTER_RETRIES: u32 = 8;

/// Appends `protocol=resp3` unless the URL names a protocol.
fn resp3_url(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

/// A cluster client over `urls` retrying `retries` times; the backoff between
/// attempts starts at 10 ms and stays under 500 ms (the crate's default starts
/// at 1.28 s, longer than a whole failover takes).
fn cluster_client(
    urls: &[&str],
    retries: u32,
) -> redis::RedisResult<redis::cluster::ClusterClient> {
    redis::cluster::ClusterClient::builder(urls.iter().copied())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .retries(retries)
        .min_retry_wait(10)
        .max_retry_wait(500)
        .retry_wait_formula(10, 2)
        .build()
}

impl Client {
    /// Connects to `url` (`redis://host:port`), speaking RESP3. A node with
    /// cluster mode on (`cluster_enabled:1` in `INFO cluster`) is taken as the
    /// way into its cluster, as with [`Client::connect_cluster`].
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::connect_with_timeout(url, DEFAULT_TIMEOUT).await
    }

    /// Connects with a per-request `timeout` (blocking calls get their own wait
    /// on top of it).
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Client, Error> {
        let client = Client::start(
            Source::Single(redis::Client::open(resp3_url(url))?),
            timeout,
        )
        .await?;
        // A server that refuses INFO is taken as a single server.
        let info = client
            .query::<String>(redis::cmd("INFO").arg("cluster"))
            .await
            .unwrap_or_default();
        if info.lines().any(|l| l.trim() == "cluster_enabled:1") {
            return Client::cluster(&[url], timeout).await;
        }
        Ok(client)
    }

    /// Connects to a Redis Cluster (ringkv in cluster mode, or Redis) through
    /// any of its nodes, speaking RESP3; commands go to the master of their
    /// key's slot.
    pub async fn connect_cluster(urls: &[&str]) -> Result<Client, Error> {
        Client::cluster(urls, DEFAULT_TIMEOUT).await
    }

    async fn cluster(urls: &[&str], timeout: Duration) -> Result<Client, Error> {
        let source = Source::Cluster {
            following: Box::new(cluster_client(urls, CLUSTER_RETRIES)?),
            strict: Box::new(cluster_client(urls, 0)?),
        };
        Client::start(source, timeout).await
    }

    async fn start(source: Source, timeout: Duration) -> Result<Client, Error> {
        let shared = async {
            Ok::<_, redis::RedisError>(match &source {
                Source::Single(client) => {
                    // Requests are timed here; the manager only reconnects.
                    let config = ConnectionManagerConfig::new()
                        .set_response_timeout(None)
                        .set_connection_timeout(Some(timeout))
                        .set_max_delay(Duration::from_secs(1));
                    Conn::Managed(ConnectionManager::new_with_config(client.clone(), config).await?)
                }
                Source::Cluster { .. } => source.connect().await?,
            })
        };
        let shared = tokio::time::timeout(timeout, shared)
            .await
            .map_err(|_| Error::Timeout(timeout))??;
        Ok(Client {
            inner: Arc::new(Inner {
                source,
                shared,
                strict: OnceCell::new(),
                idle: Pool::default(),
                timeout,
                compare_scripts: AtomicBool::new(false),
            }),
        })
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// True once the server was found to lack the compare-and-set commands.
    pub(crate) fn compare_by_script(&self) -> bool {
        self.inner.compare_scripts.load(Ordering::Relaxed)
    }

    /// Compare-and-set by script from now on.
    pub(crate) fn use_compare_scripts(&self) {
        self.inner.compare_scripts.store(true, Ordering::Relaxed);
    }

    /// Runs `cmd` on the shared connection.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        let mut con = self.inner.shared.clone();
        let timeout = self.inner.timeout;
        tokio::time::timeout(timeout, con.run(cmd))
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map_err(Error::from)
    }

    /// Runs `cmd` within `timeout` where a redirect, a cluster outage or a lost
    /// connection is an error rather than something retried.
    pub(crate) async fn query_strict<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> Result<T, Error> {
        let run = async {
            let mut con = match &self.inner.source {
                Source::Single(_) => self.inner.shared.clone(),
                Source::Cluster { strict, .. } => self
                    .inner
                    .strict
                    .get_or_try_init(|| async {
                        Ok::<_, redis::RedisError>(Conn::Cluster(
                            strict.get_async_connection().await?,
                        ))
                    })
                    .await?
                    .clone(),
            };
            con.run(cmd).await.map_err(Error::from)
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Runs `cmd`, which may block on the server for up to `wait`, on a
    /// dedicated connection.
    pub async fn query_blocking<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        wait: Duration,
    ) -> Result<T, Error> {
        let timeout = self.inner.timeout;
        let mut con = match self.inner.idle.take() {
            Some(con) => con,
            None => tokio::time::timeout(timeout, self.inner.source.connect())
                .await
                .map_err(|_| Error::Timeout(timeout))??,
        };
        let limit = wait + timeout;
        let reply = tokio::time::timeout(limit, con.run(cmd))
            .await
            .map_err(|_| Error::Timeout(limit))?;
        // A connection that timed out may still get its reply later: drop it.
        if reply.is_ok() {
            self.inner.idle.put(con);
        }
        reply.map_err(Error::from)
    }
}
