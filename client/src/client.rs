//! Connections: a shared multiplexed one, and dedicated ones for blocking
//! calls; to one server, or to a Redis Cluster (ringkv or Redis) through the
//! `redis` crate's cluster connection, which keeps the slot map (from `CLUSTER
//! SLOTS`), routes each command by the slot of its key, follows `MOVED`
//! (refreshing the map) and `ASK` (with `ASKING`), and retries `TRYAGAIN` and
//! `CLUSTERDOWN` with backoff.

use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;

use crate::Error;

/// A client of one server.
///
/// Quick commands share one multiplexed connection (requests pipeline on it
/// from any number of tasks). Commands that block on the server (`WAIT`
/// options) take a dedicated connection from a small pool, so they never hold
/// up the others.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    shared: Conn,
    idle: Pool,
    timeout: Duration,
}

/// Where connections come from.
enum Source {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// A connection to one server or to a whole cluster.
#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Source {
    async fn connect(&self) -> redis::RedisResult<Conn> {
        Ok(match self {
            Source::Single(client) => {
                Conn::Single(client.get_multiplexed_async_connection().await?)
            }
            Source::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
        })
    }
}

impl Conn {
    async fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Conn::Single(con) => cmd.query_async(con).await,
            Conn::Cluster(con) => cmd.query_async(con).await,
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner.source {
            Source::Single(_) => "server",
            Source::Cluster(_) => "cluster",
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

impl Client {
    /// Connects to `url` (`redis://host:port`), speaking RESP3.
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::connect_with_timeout(url, DEFAULT_TIMEOUT).await
    }

    /// Connects with a per-request `timeout` (blocking calls get their own wait
    /// on top of it).
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Client, Error> {
        let url = if url.contains("protocol=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        Client::start(Source::Single(redis::Client::open(url)?), timeout).await
    }

    /// Connects to a Redis Cluster (ringkv in cluster mode, or Redis) through
    /// any of its nodes, speaking RESP3; commands go to the master of their
    /// key's slot.
    pub async fn connect_cluster(urls: &[&str]) -> Result<Client, Error> {
        let client = redis::cluster::ClusterClient::builder(urls.iter().copied())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .build()?;
        Client::start(Source::Cluster(Box::new(client)), DEFAULT_TIMEOUT).await
    }

    async fn start(source: Source, timeout: Duration) -> Result<Client, Error> {
        let shared = tokio::time::timeout(timeout, source.connect())
            .await
            .map_err(|_| Error::Timeout(timeout))??;
        Ok(Client {
            inner: Arc::new(Inner {
                source,
                shared,
                idle: Pool::default(),
                timeout,
            }),
        })
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
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
