//! Cache-aside loading with the server's fill leases and cached absences.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::{Client, Error};

/// A cache in front of a slow source (a database), on one ringkv server.
#[derive(Debug)]
pub struct Cache {
    client: Client,
    lease: Duration,
    jitter_percent: u8,
    /// Loads under way in this process, by key (single-flight).
    flights: Mutex<HashMap<String, Arc<Flight>>>,
}

type Flight = OnceCell<Result<Loaded, Failure>>;

/// What `get_or_load` found: the value, or `None` for a known absence.
pub type Loaded = Option<Vec<u8>>;

/// A failed flight, shared by every caller that joined it.
#[derive(Debug, Clone)]
enum Failure {
    Loader(String),
    Server(String),
}

/// One `CACHE.GET` reply.
enum Read {
    Value(Vec<u8>),
    Null,
    Lease(u64),
    Wait,
}

fn parse_read(reply: Vec<redis::Value>) -> Result<Read, Error> {
    use redis::Value as V;
    match reply.as_slice() {
        [V::BulkString(kind), V::BulkString(value)] if kind == b"value" => {
            Ok(Read::Value(value.clone()))
        }
        [V::BulkString(kind)] if kind == b"null" => Ok(Read::Null),
        [V::BulkString(kind), V::Int(token)] if kind == b"lease" => Ok(Read::Lease(*token as u64)),
        [V::BulkString(kind)] if kind == b"wait" => Ok(Read::Wait),
        other => Err(Error::Protocol(format!("CACHE.GET replied {other:?}"))),
    }
}

impl Cache {
    /// A cache on `client`'s server: 10 s fill leases, TTLs spread by ±10%.
    pub fn new(client: &Client) -> Cache {
        Cache {
            client: client.clone(),
            lease: Duration::from_secs(10),
            jitter_percent: 10,
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// How long a loader may take before another process may try (the lease).
    pub fn lease(mut self, lease: Duration) -> Cache {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// TTL spread in percent (0 to 100), against many keys expiring together.
    pub fn jitter(mut self, percent: u8) -> Cache {
        self.jitter_percent = percent.min(100);
        self
    }

    /// The value of `key`: from the cache, or from `loader` (called at most
    /// once at a time per key across this process, and once per lease across
    /// all processes), then cached for `ttl`; a loader's `None` (the source
    /// has no such item) is cached as a known absence for `null_ttl`.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: &str,
        ttl: Duration,
        null_ttl: Duration,
        loader: F,
    ) -> Result<Loaded, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, E>>,
        E: std::fmt::Display,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.to_string()).or_default().clone()
        };
        let outcome = flight
            .get_or_init(|| self.load(key, ttl, null_ttl, loader))
            .await
            .clone();
        {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(key);
            }
        }
        outcome.map_err(|failure| match failure {
            Failure::Loader(message) => Error::Load(message),
            Failure::Server(message) => Error::Protocol(message),
        })
    }

    async fn load<F, Fut, E>(
        &self,
        key: &str,
        ttl: Duration,
        null_ttl: Duration,
        loader: F,
    ) -> Result<Loaded, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, E>>,
        E: std::fmt::Display,
    {
        let server = |e: Error| Failure::Server(e.to_string());
        let lease_ms = self.lease.as_millis().max(1) as u64;
        let mut get = redis::cmd("CACHE.GET");
        get.arg(key)
            .arg("LEASE")
            .arg(lease_ms)
            .arg("WAIT")
            .arg(lease_ms);
        let token = loop {
            let reply: Vec<redis::Value> = self
                .client
                .query_blocking(&get, self.lease)
                .await
                .map_err(server)?;
            match parse_read(reply).map_err(server)? {
                Read::Value(value) => return Ok(Some(value)),
                Read::Null => return Ok(None),
                Read::Lease(token) => break token,
                // The wait ran out with the fill still pending: ask again.
                Read::Wait => continue,
            }
        };
        let loaded = match loader().await {
            Ok(loaded) => loaded,
            Err(err) => {
                // Hand the lease back so a waiting reader can try at once.
                let mut release = redis::cmd("CACHE.RELEASE");
                release.arg(key).arg(token);
                if let Err(e) = self.client.query::<i64>(&release).await {
                    tracing::debug!(key, %e, "lease release failed; it will expire");
                }
                return Err(Failure::Loader(err.to_string()));
            }
        };
        let mut fill = redis::cmd("CACHE.FILL");
        fill.arg(key).arg(token);
        let keep = match &loaded {
            Some(value) => {
                fill.arg("VALUE").arg(value.as_slice());
                ttl
            }
            None => {
                fill.arg("NULL");
                null_ttl
            }
        };
        fill.arg("PX")
            .arg(keep.as_millis().max(1) as u64)
            .arg("JITTER")
            .arg(self.jitter_percent);
        let stored: i64 = self.client.query(&fill).await.map_err(server)?;
        if stored == 0 {
            // The key was written meanwhile: the newer value stays.
            tracing::debug!(key, "fill refused: stale lease");
        }
        Ok(loaded)
    }
}
