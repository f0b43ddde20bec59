//! Connections: a shared multiplexed one, and dedicated ones for blocking calls.

use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use redis::aio::MultiplexedConnection;

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
    client: redis::Client,
    shared: MultiplexedConnection,
    idle: Pool,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.client.get_connection_info().addr())
            .finish()
    }
}

/// Idle dedicated connections, reused last in, first out.
#[derive(Default)]
struct Pool(Mutex<Vec<MultiplexedConnection>>);

/// Idle connections kept at most.
const POOL_MAX: usize = 64;

impl Pool {
    fn take(&self) -> Option<MultiplexedConnection> {
        self.0.lock().ok()?.pop()
    }

    fn put(&self, con: MultiplexedConnection) {
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
        let client = redis::Client::open(url)?;
        let shared = tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| Error::Timeout(timeout))??;
        Ok(Client {
            inner: Arc::new(Inner {
                client,
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
        tokio::time::timeout(timeout, cmd.query_async(&mut con))
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
            None => tokio::time::timeout(
                timeout,
                self.inner.client.get_multiplexed_async_connection(),
            )
            .await
            .map_err(|_| Error::Timeout(timeout))??,
        };
        let limit = wait + timeout;
        let reply = tokio::time::timeout(limit, cmd.query_async(&mut con))
            .await
            .map_err(|_| Error::Timeout(limit))?;
        // A connection that timed out may still get its reply later: drop it.
        if reply.is_ok() {
            self.inner.idle.put(con);
        }
        reply.map_err(Error::from)
    }
}
