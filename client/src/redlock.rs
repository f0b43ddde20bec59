//! Redlock (the algorithm of the Redis documentation) over independent servers.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::lock::{compare_and_delete, compare_and_expire, owner_id};
use crate::slot::key_slot;
use crate::{Client, Error};

/// A lock held on a majority of independent servers.
///
/// # What Redlock promises, and what it does not
///
/// It promises what Redis's page on distributed locks claims for it: while
/// the guard's [`RedlockGuard::remaining`] validity lasts, no other client
/// holds the key on a majority of the servers, *provided* the servers' and the
/// client's clocks advance at nearly the same rate (the validity keeps back
/// TTL/100 + 2 ms for drift), no process pauses longer than the validity, and
/// a server that restarts comes back with every key it acknowledged (Redis:
/// `appendfsync always`) or stays away for the longest TTL ("delayed
/// restarts").
///
/// It does not promise:
///
/// * **fencing**: there is no token that only grows, so a holder paused past
///   its validity cannot be told apart from the current one by the resource;
/// * **safety across a failover**: each server of the majority is one master;
///   if it is a Redis master with replicas, a key acknowledged by it may not
///   reach the replica promoted after it crashes (replication is
///   asynchronous), and that replica grants the key again. Redis's page
///   describes exactly this double grant ("Why failover-based implementations
///   are not enough"); [`Redlock::over_cluster`] over Redis Cluster masters is
///   exposed to it on every instance that fails over. A ringkv cluster's
///   native lock ([`crate::Lock`]) is the one that survives failovers.
#[derive(Debug, Clone)]
pub struct Redlock {
    servers: Vec<Client>,
    /// Per server, a hash tag that puts a key on it (masters of one cluster).
    tags: Vec<Option<String>>,
    retries: u32,
    retry_delay: Duration,
    server_timeout: Duration,
}

/// A Redlock acquisition.
#[derive(Debug)]
pub struct RedlockGuard {
    redlock: Redlock,
    name: String,
    token: String,
    validity: Duration,
    acquired: Instant,
}

/// Runs `request` against every server at once; how many succeeded in time.
async fn on_all<F, Fut>(servers: &[Client], timeout: Duration, request: F) -> usize
where
    F: Fn(usize, Client) -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    for (index, server) in servers.iter().enumerate() {
        tasks.spawn(tokio::time::timeout(
            timeout,
            request(index, server.clone()),
        ));
    }
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        if matches!(done, Ok(Ok(Ok(true)))) {
            ok += 1;
        }
    }
    ok
}

impl Redlock {
    /// Redlock over `servers`, with 3 retries up to 200 ms apart and 50 ms
    /// per server request.
    pub fn new(servers: Vec<Client>) -> Redlock {
        Redlock {
            tags: vec![None; servers.len()],
            servers,
            retries: 3,
            retry_delay: Duration::from_millis(200),
            server_timeout: Duration::from_millis(50),
        }
    }

    /// Redlock over the masters of one Redis Cluster, reached through the node
    /// at `seed_url`: each master holds its own copy of the lock, under the
    /// lock's name plus a hash tag that maps to one of that master's slots
    /// (read from `CLUSTER SLOTS`), so a majority of masters must agree.
    pub async fn over_cluster(seed_url: &str) -> Result<Redlock, Error> {
        let seed = Client::connect(seed_url).await?;
        let slots: Vec<redis::Value> = seed.query(redis::cmd("CLUSTER").arg("SLOTS")).await?;
        // (first, last, "ip:port") per range.
        let mut ranges: Vec<(u16, u16, String)> = Vec::new();
        for range in slots {
            let redis::Value::Array(parts) = range else {
                return Err(Error::Protocol("CLUSTER SLOTS range".into()));
            };
            let int = |v: Option<&redis::Value>| match v {
                Some(redis::Value::Int(n)) => Ok(*n as u16),
                _ => Err(Error::Protocol("CLUSTER SLOTS slot".into())),
            };
            let address = match parts.get(2) {
                Some(redis::Value::Array(node)) => match (node.first(), node.get(1)) {
                    (Some(redis::Value::BulkString(ip)), Some(redis::Value::Int(port))) => {
                        format!("{}:{port}", String::from_utf8_lossy(ip))
                    }
                    _ => return Err(Error::Protocol("CLUSTER SLOTS node".into())),
                },
                _ => return Err(Error::Protocol("CLUSTER SLOTS node".into())),
            };
            ranges.push((int(parts.first())?, int(parts.get(1))?, address));
        }
        let mut masters: Vec<String> = ranges.iter().map(|r| r.2.clone()).collect();
        masters.sort();
        masters.dedup();
        let (mut servers, mut tags) = (Vec::new(), Vec::new());
        for master in masters {
            let owned = |slot: u16| {
                ranges
                    .iter()
                    .any(|r| r.2 == master && (r.0..=r.1).contains(&slot))
            };
            let tag = (0u32..)
                .map(|i| i.to_string())
                .find(|tag| owned(key_slot(tag.as_bytes())))
                .ok_or_else(|| Error::Protocol("a master without slots".into()))?;
            servers.push(Client::connect(&format!("redis://{master}")).await?);
            tags.push(Some(tag));
        }
        Ok(Redlock {
            tags,
            ..Redlock::new(servers)
        })
    }

    /// The key of lock `name` on server `index`.
    fn key(&self, name: &str, index: usize) -> String {
        match &self.tags[index] {
            Some(tag) => format!("{name}{{{tag}}}"),
            None => name.to_string(),
        }
    }

    /// Attempts after the first.
    pub fn retries(mut self, retries: u32) -> Redlock {
        self.retries = retries;
        self
    }

    /// Longest random pause between attempts.
    pub fn retry_delay(mut self, delay: Duration) -> Redlock {
        self.retry_delay = delay;
        self
    }

    /// How long one server may take to answer.
    pub fn server_timeout(mut self, timeout: Duration) -> Redlock {
        self.server_timeout = timeout;
        self
    }

    /// Servers that must agree: N/2 + 1.
    pub fn quorum(&self) -> usize {
        self.servers.len() / 2 + 1
    }

    /// Takes `name` for `ttl` on a majority; the guard says for how long the
    /// lock is valid (TTL minus the time taken minus the clock drift allowance,
    /// TTL/100 + 2 ms). Releases what it got if it falls short.
    pub async fn lock(&self, name: &str, ttl: Duration) -> Result<RedlockGuard, Error> {
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let drift = ttl / 100 + Duration::from_millis(2);
        for attempt in 0..=self.retries {
            let token = owner_id();
            let started = Instant::now();
            let locked = on_all(&self.servers, self.server_timeout, |index, server| {
                let (name, token) = (self.key(name, index), token.clone());
                async move {
                    let set: Option<String> = server
                        .query(
                            redis::cmd("SET")
                                .arg(name)
                                .arg(token)
                                .arg("NX")
                                .arg("PX")
                                .arg(ttl_ms),
                        )
                        .await?;
                    Ok(set.is_some())
                }
            })
            .await;
            let validity = ttl.checked_sub(started.elapsed() + drift);
            if let Some(validity) = validity.filter(|v| locked >= self.quorum() && !v.is_zero()) {
                return Ok(RedlockGuard {
                    redlock: self.clone(),
                    name: name.to_string(),
                    token,
                    validity,
                    acquired: started,
                });
            }
            self.unlock_all(name, &token).await;
            if attempt < self.retries {
                let pause = rand::random::<u64>() % (self.retry_delay.as_millis() as u64 + 1);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        Err(Error::NotAcquired(name.to_string()))
    }

    async fn unlock_all(&self, name: &str, token: &str) -> usize {
        on_all(&self.servers, self.server_timeout, |index, server| {
            let (name, token) = (self.key(name, index), token.to_string());
            async move { compare_and_delete(&server, &name, &token).await }
        })
        .await
    }
}

impl RedlockGuard {
    /// How long the lock was valid for when acquired.
    pub fn validity(&self) -> Duration {
        self.validity
    }

    /// What is left of the validity now.
    pub fn remaining(&self) -> Duration {
        self.validity.saturating_sub(self.acquired.elapsed())
    }

    /// Extends the lock to `ttl` from now on a majority (`SET ... IFEQ`, or
    /// the compare-and-expire script where the server lacks `IFEQ`);
    /// [`Error::LockLost`] if too few servers still had it.
    pub async fn extend(&mut self, ttl: Duration) -> Result<(), Error> {
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let started = Instant::now();
        let extended = on_all(
            &self.redlock.servers,
            self.redlock.server_timeout,
            |index, server| {
                let (name, token) = (self.redlock.key(&self.name, index), self.token.clone());
                async move {
                    compare_and_expire(&server, &name, &token, ttl_ms, |cmd| {
                        let server = server.clone();
                        async move { server.query(&cmd).await }
                    })
                    .await
                }
            },
        )
        .await;
        let drift = ttl / 100 + Duration::from_millis(2);
        match ttl.checked_sub(started.elapsed() + drift) {
            Some(validity) if extended >= self.redlock.quorum() => {
                self.validity = validity;
                self.acquired = started;
                Ok(())
            }
            _ => Err(Error::LockLost(self.name.clone())),
        }
    }

    /// Releases the lock on every server.
    pub async fn release(self) -> Result<(), Error> {
        self.redlock.unlock_all(&self.name, &self.token).await;
        Ok(())
    }
}
