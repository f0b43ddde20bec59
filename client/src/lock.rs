//! Locks with a lease, renewed by a watchdog while the guard lives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::{Client, Error};

/// How a lock is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// ringkv's `LOCK.*` commands: fair waiting and fencing tokens.
    Native,
    /// `SET key token NX PX ttl`, renewed with `SET ... IFEQ`, released with
    /// `DELIFEQ` (or `DELEX ... IFEQ`): works on Redis 8.4 and Valkey 9 as well.
    /// No fencing token; waiting polls.
    RedisCompatible,
}

/// A lock to acquire: name, lease and how long to wait.
#[derive(Debug, Clone)]
pub struct Lock {
    client: Client,
    name: String,
    ttl: Duration,
    wait: Duration,
    mode: LockMode,
}

/// A unique owner id for each acquisition in this process.
pub(crate) fn owner_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let process = PROCESS.get_or_init(rand::random::<u64>);
    format!("{process:016x}:{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Lock {
    /// A native lock named `name` with a 30 s lease and no waiting (Redisson's
    /// defaults for the lease).
    pub fn new(client: &Client, name: &str) -> Lock {
        Lock {
            client: client.clone(),
            name: name.to_string(),
            ttl: Duration::from_secs(30),
            wait: Duration::ZERO,
            mode: LockMode::Native,
        }
    }

    /// The lease; the watchdog renews it every third of it.
    pub fn ttl(mut self, ttl: Duration) -> Lock {
        self.ttl = ttl.max(Duration::from_millis(3));
        self
    }

    /// How long to wait for the lock (zero: try once).
    pub fn wait(mut self, wait: Duration) -> Lock {
        self.wait = wait;
        self
    }

    /// Native or Redis-compatible commands.
    pub fn mode(mut self, mode: LockMode) -> Lock {
        self.mode = mode;
        self
    }

    /// Takes the lock, waiting as configured; [`Error::NotAcquired`] if the
    /// wait ran out.
    pub async fn acquire(self) -> Result<LockGuard, Error> {
        let owner = owner_id();
        let ttl_ms = self.ttl.as_millis().max(1) as u64;
        let token = match self.mode {
            LockMode::Native => self.acquire_native(&owner, ttl_ms).await?,
            LockMode::RedisCompatible => self.acquire_compatible(&owner, ttl_ms).await?,
        };
        let lost = Arc::new(AtomicBool::new(false));
        let watchdog = tokio::spawn(watchdog(
            self.client.clone(),
            self.name.clone(),
            owner.clone(),
            self.ttl,
            self.mode,
            lost.clone(),
        ));
        Ok(LockGuard {
            client: self.client,
            name: self.name,
            owner,
            token,
            mode: self.mode,
            lost,
            watchdog: Some(watchdog),
        })
    }

    async fn acquire_native(&self, owner: &str, ttl_ms: u64) -> Result<Option<u64>, Error> {
        let mut cmd = redis::cmd("LOCK.ACQUIRE");
        cmd.arg(&self.name).arg(owner).arg(ttl_ms);
        let token: Option<u64> = if self.wait.is_zero() {
            self.client.query(&cmd).await?
        } else {
            cmd.arg("WAIT").arg(self.wait.as_millis().max(1) as u64);
            self.client.query_blocking(&cmd, self.wait).await?
        };
        match token {
            Some(token) => Ok(Some(token)),
            None => Err(Error::NotAcquired(self.name.clone())),
        }
    }

    async fn acquire_compatible(&self, owner: &str, ttl_ms: u64) -> Result<Option<u64>, Error> {
        let deadline = Instant::now() + self.wait;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.name)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        loop {
            let set: Option<String> = self.client.query(&cmd).await?;
            if set.is_some() {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Err(Error::NotAcquired(self.name.clone()));
            }
            // Poll with a little randomness so waiters do not move in step.
            let pause = Duration::from_millis(5 + rand::random::<u64>() % 20);
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// Renews the lease every third of it until stopped; marks the guard lost if
/// the renewal is refused.
async fn watchdog(
    client: Client,
    name: String,
    owner: String,
    ttl: Duration,
    mode: LockMode,
    lost: Arc<AtomicBool>,
) {
    let period = ttl / 3;
    let ttl_ms = ttl.as_millis().max(1) as u64;
    loop {
        tokio::time::sleep(period).await;
        let renewed = match mode {
            LockMode::Native => client
                .query::<i64>(redis::cmd("LOCK.EXTEND").arg(&name).arg(&owner).arg(ttl_ms))
                .await
                .map(|n| n == 1),
            LockMode::RedisCompatible => client
                .query::<Option<String>>(
                    redis::cmd("SET")
                        .arg(&name)
                        .arg(&owner)
                        .arg("IFEQ")
                        .arg(&owner)
                        .arg("PX")
                        .arg(ttl_ms),
                )
                .await
                .map(|r| r.is_some()),
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(lock = %name, "lock lost: lease could not be renewed");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            // A failed request: try again next period while the lease lasts.
            Err(err) => tracing::warn!(lock = %name, %err, "lock renewal failed"),
        }
    }
}

/// A held lock. Dropping it releases the lock (in the background).
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    name: String,
    owner: String,
    token: Option<u64>,
    mode: LockMode,
    lost: Arc<AtomicBool>,
    watchdog: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// The fencing token of this grant (native locks): pass it to the storage
    /// the lock protects, which refuses writes with a token older than the
    /// newest it has seen.
    pub fn fencing_token(&self) -> Option<u64> {
        self.token
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// False once the lease could not be renewed: the lock may be someone else's.
    pub fn is_held(&self) -> bool {
        !self.lost.load(Ordering::Relaxed)
    }

    /// Releases the lock now; [`Error::LockLost`] if it was no longer ours.
    pub async fn release(mut self) -> Result<(), Error> {
        self.stop_watchdog();
        let released = release(&self.client, &self.name, &self.owner, self.mode).await;
        // Released (or failed): nothing for drop to do.
        self.owner.clear();
        match released? {
            true => Ok(()),
            false => Err(Error::LockLost(self.name.clone())),
        }
    }

    fn stop_watchdog(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
    }
}

/// Gives the lock back if `owner` still holds it; true if it did.
pub(crate) async fn release(
    client: &Client,
    name: &str,
    owner: &str,
    mode: LockMode,
) -> Result<bool, Error> {
    match mode {
        LockMode::Native => {
            let left: i64 = client
                .query(redis::cmd("LOCK.RELEASE").arg(name).arg(owner))
                .await?;
            Ok(left >= 0)
        }
        LockMode::RedisCompatible => compare_and_delete(client, name, owner).await,
    }
}

/// `DELIFEQ`, or `DELEX ... IFEQ` where that is what the server has.
pub(crate) async fn compare_and_delete(
    client: &Client,
    name: &str,
    owner: &str,
) -> Result<bool, Error> {
    match client
        .query::<i64>(redis::cmd("DELIFEQ").arg(name).arg(owner))
        .await
    {
        Ok(n) => Ok(n == 1),
        Err(Error::Redis(err)) if err.to_string().contains("unknown command") => {
            let n: i64 = client
                .query(redis::cmd("DELEX").arg(name).arg("IFEQ").arg(owner))
                .await?;
            Ok(n == 1)
        }
        Err(err) => Err(err),
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop_watchdog();
        if self.owner.is_empty() {
            return;
        }
        // Dropped while held: release in the background if a runtime is there;
        // otherwise the lease runs out.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (client, name, owner, mode) = (
                self.client.clone(),
                std::mem::take(&mut self.name),
                std::mem::take(&mut self.owner),
                self.mode,
            );
            handle.spawn(async move {
                if let Err(err) = release(&client, &name, &owner, mode).await {
                    tracing::warn!(lock = %name, %err, "release on drop failed");
                }
            });
        }
    }
}
