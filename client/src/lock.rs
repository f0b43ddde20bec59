//! Locks with a lease, renewed by a watchdog while the guard lives; what they
//! promise across failovers is on [`Lock`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Client, Error};

/// How a lock is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// ringkv's `LOCK.*` commands: fair waiting and fencing tokens.
    Native,
    /// `SET key token NX PX ttl`, renewed with `SET ... IFEQ`, released with
    /// `DELIFEQ` (or `DELEX ... IFEQ`, or a script on servers without either):
    /// works on Redis as well. No fencing token; waiting polls.
    RedisCompatible,
}

/// What a guard knows about its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// Granted or renewed, and the lease has not run out by this client's clock.
    Held,
    /// A renewal met a redirect, an outage or a lost connection and the server
    /// has not confirmed the lock yet: do not act on it.
    MaybeLost,
    /// Someone else has it, nobody has it, or the lease ran out unconfirmed.
    Lost,
}

/// A lock to acquire: name, lease and how long to wait.
///
/// # What a guard promises
///
/// Every guard knows its lease only by its own clock: it counts the lock as
/// valid until the moment its last confirmed grant or renewal was *sent*, plus
/// the TTL, minus a drift allowance (TTL/100 + 2 ms). A renewal that comes back
/// with a redirect (`MOVED`, `ASK`), an outage (`CLUSTERDOWN`, `TRYAGAIN`), a
/// lost connection or no reply in time makes the guard **maybe lost**
/// ([`LockState::MaybeLost`]): it asks the shard's current master whether the
/// lock is still its own (native: `LOCK.INFO` shows its owner id *and* its
/// fencing token; Redis-compatible: `GET` returns its value) and renews it
/// there; it is held again only once that worked, and **lost**
/// ([`LockState::Lost`]) when the server says otherwise or the lease ran out
/// first. It never carries on silently: read [`LockGuard::state`] (or
/// [`LockGuard::is_held`]) before acting, or wait on [`LockGuard::lost`].
///
/// No client can know at once that a server it does not hear from has handed
/// its lock on; a holder that stops running (a long pause, swapped out) can
/// act on a lock it lost. Only fencing tokens protect the resource from that.
///
/// ## Native locks (ringkv's `LOCK.*`)
///
/// * One owner at a time, fair queueing for waiters, and a **fencing token**
///   with every grant, larger than every token issued for the lock before:
///   pass it to the resource, which refuses any token below the highest it has
///   accepted.
/// * On a ringkv cluster with replicas the grant survives a failover (the rules
///   L1–L5 of `docs/CLUSTER.md`): a grant, renewal or release is answered only
///   after the shard's in-sync replicas acknowledged it (L1); only a replica
///   holding every acknowledged lock change can be elected (L2); a master cut
///   off from the majority of masters stops granting and renewing before a
///   successor can be elected (L3); tokens never go backwards across a
///   failover (L4); a node that may have lost grants (nothing replicated, or
///   restarted without data) refuses new grants for the longest lease it
///   allows (L5). So a lock is never granted to a second owner while the first
///   one's lease lasts, whether a master is killed, paused or cut off.
/// * The refusals those rules make are told apart: `acquire` retries
///   `NOREPLICAS` (no in-sync replica to acknowledge the grant; an attempt
///   that was in fact granted is found on the next try, by its owner id) and
///   `LOCKDELAY` (after the delay the server names) within its wait; a
///   renewal refused with either makes the guard maybe lost, as an outage
///   does, until the shard's master confirms the grant.
///
/// ## Redis-compatible mode (`SET NX PX`)
///
/// * On one server that stays up: one owner at a time, for the lease.
/// * **No fencing token.**
/// * Not safe across a failover. Redis replicates asynchronously; as Redis's
///   own page on distributed locks ("Why failover-based implementations are
///   not enough") describes it: client A acquires the lock on the master, the
///   master crashes before the write reaches the replica, the replica is
///   promoted, and client B acquires the same lock: two owners. A master that
///   restarts without persistence loses every lock the same way, and `WAIT`
///   narrows the window without closing it. A guard notices such a loss only
///   on its next renewal or re-check, after the second grant.
/// * Renewal and release compare the value first: `SET ... IFEQ` and `DELIFEQ`
///   / `DELEX ... IFEQ` where the server has them (ringkv, Valkey 9, Redis
///   8.4), the compare-and-expire / compare-and-delete scripts of the Redis
///   documentation (`EVAL`) where it does not (Redis 7).
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

/// First pause after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// One attempt at taking the lock.
enum Attempt {
    /// Ours, with the fencing token if the mode has one.
    Granted(Option<u64>),
    /// Someone else's.
    Busy,
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

    /// How long to wait for the lock (zero: try once). Within the wait, a
    /// redirect, a cluster outage or a lost connection is retried with backoff.
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
    /// wait ran out, or the last error if the server could not be reached
    /// within it.
    pub async fn acquire(self) -> Result<LockGuard, Error> {
        let owner = owner_id();
        let ttl_ms = self.ttl.as_millis().max(1) as u64;
        let deadline = Instant::now() + self.wait;
        let mut backoff = FIRST_BACKOFF;
        let (token, sent) = loop {
            let sent = Instant::now();
            // A retry keeps the owner id: if an earlier attempt was granted
            // and only its reply was lost, the retry finds the lock its own.
            let attempt = match self.mode {
                LockMode::Native => self.try_native(&owner, ttl_ms, deadline).await,
                LockMode::RedisCompatible => self.try_compatible(&owner, ttl_ms).await,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let pause = match attempt {
                Ok(Attempt::Granted(token)) => break (token, sent),
                Ok(Attempt::Busy) if left.is_zero() => {
                    return Err(Error::NotAcquired(self.name.clone()))
                }
                // Poll with a little randomness so waiters do not move in step.
                Ok(Attempt::Busy) => Duration::from_millis(5 + rand::random::<u64>() % 20),
                Err(err) if err.is_transient() && !left.is_zero() => {
                    tracing::debug!(lock = %self.name, %err, "lock attempt failed; retrying");
                    let pause = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    // A node in its lock-delay says when it grants again.
                    err.retry_after().map_or(pause, |after| after.max(pause))
                }
                Err(err) => return Err(err),
            };
            tokio::time::sleep(pause.min(left)).await;
        };
        let held = Arc::new(Held {
            client: self.client,
            name: self.name,
            owner,
            token,
            mode: self.mode,
            ttl: self.ttl,
            status: watch::Sender::new(Status {
                state: LockState::Held,
                valid_until: sent + lease(self.ttl),
            }),
        });
        // A grant that came after a wait in the server's queue (or a slow
        // reply) may have less lease left, by this client's clock, than it can
        // vouch for: renewed at once, the lease counts from the renewal.
        if sent.elapsed() >= self.ttl / 3 {
            let again = Instant::now();
            match held.extend(Route::Following).await {
                Ok(true) => held.renewed(again),
                Ok(false) => return Err(Error::LockLost(held.name.clone())),
                Err(err) => {
                    let _ = held.release().await;
                    return Err(err);
                }
            }
        }
        let watchdog = tokio::spawn(watchdog(held.clone()));
        Ok(LockGuard {
            held,
            watchdog: Some(watchdog),
            released: false,
        })
    }

    async fn try_native(
        &self,
        owner: &str,
        ttl_ms: u64,
        deadline: Instant,
    ) -> Result<Attempt, Error> {
        let mut cmd = redis::cmd("LOCK.ACQUIRE");
        cmd.arg(&self.name).arg(owner).arg(ttl_ms);
        let wait = deadline.saturating_duration_since(Instant::now());
        let token: Option<u64> = if wait.is_zero() {
            self.client.query(&cmd).await?
        } else {
            cmd.arg("WAIT").arg(wait.as_millis().max(1) as u64);
            self.client.query_blocking(&cmd, wait).await?
        };
        Ok(token.map_or(Attempt::Busy, |token| Attempt::Granted(Some(token))))
    }

    async fn try_compatible(&self, owner: &str, ttl_ms: u64) -> Result<Attempt, Error> {
        // With GET the reply is the value that was there: none means ours now,
        // our own value means an earlier attempt got it.
        let before: Option<String> = self
            .client
            .query(
                redis::cmd("SET")
                    .arg(&self.name)
                    .arg(owner)
                    .arg("NX")
                    .arg("GET")
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await?;
        Ok(match before {
            None => Attempt::Granted(None),
            Some(value) if value == owner => Attempt::Granted(None),
            Some(_) => Attempt::Busy,
        })
    }
}

/// How long a grant or renewal counts as valid from when it was sent.
fn lease(ttl: Duration) -> Duration {
    ttl.saturating_sub(ttl / 100 + Duration::from_millis(2))
}

/// The guard's view of its lock, shared with the watchdog.
#[derive(Debug, Clone, Copy)]
struct Status {
    state: LockState,
    /// End of the lease by this client's clock.
    valid_until: Instant,
}

/// A granted lock: who holds it and what the guard knows about it.
#[derive(Debug)]
struct Held {
    client: Client,
    name: String,
    owner: String,
    token: Option<u64>,
    mode: LockMode,
    ttl: Duration,
    status: watch::Sender<Status>,
}

/// Which connection a request takes.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// Redirects, outages and lost connections come back as errors.
    Strict,
    /// Redirects are followed and outages retried (within the timeout).
    Following,
}

impl Held {
    /// The state, with an unconfirmed lease that ran out counted as lost.
    fn state(&self) -> LockState {
        let status = *self.status.borrow();
        if status.state != LockState::Lost && Instant::now() >= status.valid_until {
            self.set(
                LockState::Lost,
                "the lease ran out before a renewal was confirmed",
            );
            return LockState::Lost;
        }
        status.state
    }

    /// Moves to `state` (never back from lost), logging why.
    fn set(&self, state: LockState, why: &str) {
        self.status.send_if_modified(|status| {
            if status.state == state || status.state == LockState::Lost {
                return false;
            }
            match state {
                LockState::Held => tracing::info!(lock = %self.name, "lock confirmed: {why}"),
                _ => tracing::warn!(lock = %self.name, ?state, "{why}"),
            }
            status.state = state;
            true
        });
    }

    /// A renewal sent at `sent` was confirmed.
    fn renewed(&self, sent: Instant) {
        let valid_until = sent + lease(self.ttl);
        self.status.send_if_modified(|status| {
            if status.state == LockState::Lost {
                return false;
            }
            status.valid_until = status.valid_until.max(valid_until);
            status.state = LockState::Held;
            true
        });
    }

    /// The longest a single request of a renewal may take.
    fn request_timeout(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(1))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        route: Route,
    ) -> Result<T, Error> {
        let timeout = self.request_timeout();
        match route {
            Route::Strict => self.client.query_strict(cmd, timeout).await,
            Route::Following => tokio::time::timeout(timeout, self.client.query(cmd))
                .await
                .map_err(|_| Error::Timeout(timeout))?,
        }
    }

    /// Sets the lease to the TTL from now if the lock is still ours.
    async fn extend(&self, route: Route) -> Result<bool, Error> {
        let ttl_ms = self.ttl.as_millis().max(1) as u64;
        match self.mode {
            LockMode::Native => {
                let cmd = redis::cmd("LOCK.EXTEND")
                    .arg(&self.name)
                    .arg(&self.owner)
                    .arg(ttl_ms)
                    .clone();
                Ok(self.run::<i64>(&cmd, route).await? == 1)
            }
            LockMode::RedisCompatible => {
                compare_and_expire(
                    &self.client,
                    &self.name,
                    &self.owner,
                    ttl_ms,
                    |cmd| async move { self.run(&cmd, route).await },
                )
                .await
            }
        }
    }

    /// Asks the shard's current master whether the lock is still this grant:
    /// the owner id and fencing token (native), or the value (`GET`).
    async fn recheck(&self) -> Result<bool, Error> {
        match self.mode {
            LockMode::Native => {
                let info: Option<HashMap<String, redis::Value>> = self
                    .run(redis::cmd("LOCK.INFO").arg(&self.name), Route::Following)
                    .await?;
                let Some(info) = info else {
                    return Ok(false);
                };
                let owner = match info.get("owner") {
                    Some(redis::Value::BulkString(owner)) => owner.as_slice(),
                    _ => return Err(Error::Protocol("LOCK.INFO without an owner".into())),
                };
                let token = match info.get("token") {
                    Some(redis::Value::Int(token)) => u64::try_from(*token).ok(),
                    _ => return Err(Error::Protocol("LOCK.INFO without a token".into())),
                };
                Ok(owner == self.owner.as_bytes() && token == self.token)
            }
            LockMode::RedisCompatible => {
                let value: Option<String> = self
                    .run(redis::cmd("GET").arg(&self.name), Route::Following)
                    .await?;
                Ok(value.as_deref() == Some(self.owner.as_str()))
            }
        }
    }

    /// Renews through the strict connection; on any error the lock is maybe
    /// lost and is confirmed (or found lost) through the following one.
    async fn renew(&self) -> Result<(), Error> {
        if self.state() == LockState::Lost {
            return Err(Error::LockLost(self.name.clone()));
        }
        let sent = Instant::now();
        match self.extend(Route::Strict).await {
            Ok(true) => {
                self.renewed(sent);
                Ok(())
            }
            Ok(false) => {
                self.set(LockState::Lost, "the server no longer has this grant");
                Err(Error::LockLost(self.name.clone()))
            }
            Err(err) => {
                self.set(LockState::MaybeLost, &format!("renewal failed: {err}"));
                self.confirm().await
            }
        }
    }

    /// Re-checks a maybe-lost lock and renews it if it is still this grant.
    async fn confirm(&self) -> Result<(), Error> {
        let maybe = |err: Error| Error::LockMaybeLost {
            name: self.name.clone(),
            cause: err.to_string(),
        };
        let sent = Instant::now();
        let still_ours = self.recheck().await.map_err(maybe)?;
        if still_ours && self.extend(Route::Following).await.map_err(maybe)? {
            self.set(LockState::Held, "the shard's master still has this grant");
            self.renewed(sent);
            return Ok(());
        }
        self.set(
            LockState::Lost,
            "the shard's master does not have this grant",
        );
        Err(Error::LockLost(self.name.clone()))
    }

    /// Gives the lock back if this grant still holds it; true if it did.
    async fn release(&self) -> Result<bool, Error> {
        match self.mode {
            LockMode::Native => {
                // A grant retried after a lost reply may hold twice: give
                // back every hold of this owner.
                let mut first = true;
                loop {
                    let left: i64 = self
                        .client
                        .query(redis::cmd("LOCK.RELEASE").arg(&self.name).arg(&self.owner))
                        .await?;
                    if left <= 0 {
                        return Ok(left == 0 || !first);
                    }
                    first = false;
                }
            }
            LockMode::RedisCompatible => {
                compare_and_delete(&self.client, &self.name, &self.owner).await
            }
        }
    }
}

/// The server does not know the command or the option (Redis 7 has neither
/// `SET ... IFEQ` nor `DELIFEQ`/`DELEX`).
fn lacks_command(err: &Error) -> bool {
    let Error::Redis(err) = err else {
        return false;
    };
    let text = err.to_string();
    text.contains("unknown command") || text.contains("syntax error")
}

/// Renews the lease every third of it while the guard lives; when a renewal
/// makes the lock maybe lost, asks again with backoff until the server
/// answers or the lease runs out.
async fn watchdog(held: Arc<Held>) {
    let period = held.ttl / 3;
    loop {
        tokio::time::sleep(period).await;
        match held.renew().await {
            Ok(()) => continue,
            Err(Error::LockLost(_)) => return,
            Err(err) => tracing::debug!(lock = %held.name, %err, "re-checking the lock"),
        }
        let mut pause = FIRST_BACKOFF;
        loop {
            let until_end = {
                let valid_until = held.status.borrow().valid_until;
                valid_until.saturating_duration_since(Instant::now())
            };
            if held.state() == LockState::Lost {
                return;
            }
            tokio::time::sleep(pause.min(until_end)).await;
            pause = (pause * 2).min(period.max(FIRST_BACKOFF));
            match held.confirm().await {
                Ok(()) => break,
                Err(Error::LockLost(_)) => return,
                Err(err) => tracing::debug!(lock = %held.name, %err, "lock still unconfirmed"),
            }
        }
    }
}

/// A held lock. Dropping it releases the lock (in the background).
#[derive(Debug)]
pub struct LockGuard {
    held: Arc<Held>,
    watchdog: Option<JoinHandle<()>>,
    released: bool,
}

impl LockGuard {
    /// The fencing token of this grant (native locks): pass it to the storage
    /// the lock protects, which refuses writes with a token older than the
    /// newest it has seen.
    pub fn fencing_token(&self) -> Option<u64> {
        self.held.token
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.held.name
    }

    /// What the guard knows now: held, maybe lost (a renewal met a redirect,
    /// an outage or a lost connection and is being re-checked), or lost.
    pub fn state(&self) -> LockState {
        self.held.state()
    }

    /// True while [`LockGuard::state`] is [`LockState::Held`].
    pub fn is_held(&self) -> bool {
        self.state() == LockState::Held
    }

    /// Waits until the lock is no longer known to be held and says why:
    /// [`LockState::MaybeLost`] or [`LockState::Lost`].
    pub async fn lost(&self) -> LockState {
        let mut changes = self.held.status.subscribe();
        loop {
            let valid_until = changes.borrow_and_update().valid_until;
            let state = self.held.state();
            if state != LockState::Held {
                return state;
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(valid_until.into()) => {}
            }
        }
    }

    /// Renews the lease now. [`Error::LockLost`] if the lock is no longer this
    /// grant's; [`Error::LockMaybeLost`] if the shard moved, is down or cannot
    /// be reached and the server could not be asked yet (the watchdog keeps
    /// asking until the lease runs out).
    pub async fn renew(&self) -> Result<(), Error> {
        self.held.renew().await
    }

    /// Releases the lock now; [`Error::LockLost`] if it was no longer ours.
    pub async fn release(mut self) -> Result<(), Error> {
        self.stop_watchdog();
        // Released (or failed): nothing for drop to do.
        self.released = true;
        match self.held.release().await? {
            true => Ok(()),
            false => Err(Error::LockLost(self.held.name.clone())),
        }
    }

    fn stop_watchdog(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
    }
}

/// Sets `name`'s lease to `ttl_ms` if it holds `owner`, running the command
/// with `run` (which picks the connection): `SET ... IFEQ ... PX`, or the
/// compare-and-expire script where the server lacks `IFEQ`; true if renewed.
pub(crate) async fn compare_and_expire<F, Fut>(
    client: &Client,
    name: &str,
    owner: &str,
    ttl_ms: u64,
    run: F,
) -> Result<bool, Error>
where
    F: Fn(redis::Cmd) -> Fut,
    Fut: std::future::Future<Output = Result<redis::Value, Error>>,
{
    /// `SET key owner IFEQ owner PX ttl` as a script.
    const EXTEND_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
         return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
    let by_command = redis::cmd("SET")
        .arg(name)
        .arg(owner)
        .arg("IFEQ")
        .arg(owner)
        .arg("PX")
        .arg(ttl_ms)
        .clone();
    let by_script = redis::cmd("EVAL")
        .arg(EXTEND_SCRIPT)
        .arg(1)
        .arg(name)
        .arg(owner)
        .arg(ttl_ms)
        .clone();
    let reply = if client.compare_by_script() {
        run(by_script).await?
    } else {
        match run(by_command).await {
            Err(err) if lacks_command(&err) => {
                client.use_compare_scripts();
                run(by_script).await?
            }
            reply => reply?,
        }
    };
    // SET answers OK or nil; the script 1 or 0.
    Ok(matches!(
        reply,
        redis::Value::Okay | redis::Value::SimpleString(_) | redis::Value::Int(1)
    ))
}

/// `DELIFEQ`, or `DELEX ... IFEQ`, or the compare-and-delete script, whichever
/// the server has; true if the key held `owner` and was deleted.
pub(crate) async fn compare_and_delete(
    client: &Client,
    name: &str,
    owner: &str,
) -> Result<bool, Error> {
    /// `DELIFEQ` as a script.
    const RELEASE_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
         return redis.call('del', KEYS[1]) else return 0 end";
    if !client.compare_by_script() {
        match client
            .query::<i64>(redis::cmd("DELIFEQ").arg(name).arg(owner))
            .await
        {
            Ok(n) => return Ok(n == 1),
            Err(err) if lacks_command(&err) => {}
            Err(err) => return Err(err),
        }
        match client
            .query::<i64>(redis::cmd("DELEX").arg(name).arg("IFEQ").arg(owner))
            .await
        {
            Ok(n) => return Ok(n == 1),
            Err(err) if lacks_command(&err) => client.use_compare_scripts(),
            Err(err) => return Err(err),
        }
    }
    let n: i64 = client
        .query(
            redis::cmd("EVAL")
                .arg(RELEASE_SCRIPT)
                .arg(1)
                .arg(name)
                .arg(owner),
        )
        .await?;
    Ok(n == 1)
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop_watchdog();
        if self.released {
            return;
        }
        // Dropped while held: release in the background if a runtime is there;
        // otherwise the lease runs out.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let held = self.held.clone();
            handle.spawn(async move {
                if let Err(err) = held.release().await {
                    tracing::warn!(lock = %held.name, %err, "release on drop failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_counts_from_the_request_minus_a_drift_allowance() {
        assert_eq!(
            lease(Duration::from_secs(1)),
            Duration::from_millis(1000 - 10 - 2)
        );
        assert_eq!(lease(Duration::from_millis(1)), Duration::ZERO);
    }

    #[test]
    fn missing_commands_and_options_are_told_apart_from_other_errors() {
        let error = |text: &str| {
            let reply = redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap();
            Error::Redis(reply.extract_error().unwrap_err())
        };
        assert!(lacks_command(&error("ERR syntax error")));
        assert!(lacks_command(&error(
            "ERR unknown command 'DELIFEQ', with args beginning with: 'k' 'v' "
        )));
        assert!(!lacks_command(&error("WRONGTYPE Operation against a key")));
        assert!(!lacks_command(&Error::NotAcquired("l".into())));
    }
}
