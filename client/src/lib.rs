//! ringkv-client: locks and cache-aside loading for Rust, over ringkv (and, for
//! the Redis-compatible parts, Redis).
//!
//! * [`Client`]: one multiplexed RESP3 connection for quick commands, dedicated
//!   connections for commands that block, a timeout on every request.
//! * [`Lock`]: native ringkv locks (fair queueing, fencing tokens) or a
//!   Redis-compatible mode (`SET NX PX`, compare-and-delete); the guard renews
//!   its lease every TTL/3 while it lives, reports a lock that a failover, a
//!   moved slot or a lost connection may have taken away
//!   ([`LockGuard::state`], [`LockGuard::lost`]) and releases on drop. What
//!   each mode promises across failovers is in [`Lock`]'s module docs
//!   (rendered on [`LockGuard`]).
//! * [`Redlock`]: the Redlock algorithm over independent servers (what it
//!   does not promise: see [`Redlock`]).
//! * [`Cache`]: `get_or_load` with the server's fill leases and cached
//!   absences, TTL jitter, and in-process single-flight.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringkv_client::Error> {
//! use std::time::Duration;
//! use ringkv_client::{Client, Lock};
//!
//! let client = Client::connect("redis://127.0.0.1:6379").await?;
//! let guard = Lock::new(&client, "orders:42")
//!     .ttl(Duration::from_secs(30))
//!     .wait(Duration::from_secs(5))
//!     .acquire()
//!     .await?;
//! println!("fencing token {:?}", guard.fencing_token());
//! guard.release().await?;
//! # Ok(()) }
//! ```

mod cache;
mod client;
mod error;
mod lock;
mod redlock;
mod slot;

pub use cache::{Cache, Loaded};
pub use client::Client;
pub use error::Error;
pub use lock::{Lock, LockGuard, LockMode, LockState};
pub use redlock::{Redlock, RedlockGuard};
