//! ringkv: a Redis-protocol cache and lock server.
//!
//! ```text
//! net (sockets) ──▶ protocol (RESP decode/encode) ──▶ commands (parse + apply)
//!                                                        │
//!                                         keyspace (16384 slot tables, expiry)
//! ```
//! `server` wires them together with the configuration, statistics, the client
//! registry and the cron.

pub mod apply;
pub mod blocking;
pub mod clients;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod config;
mod cron;
pub mod eviction;
pub mod keyspace;
pub mod memory;
mod net;
pub mod notify;
pub mod protocol;
pub mod pubsub;
pub mod server;
pub mod stats;
pub mod util;
pub mod watch;
pub mod write;

pub use net::{is_loopback, protected_mode_denies};
pub use server::{Server, Shared};

/// The Redis version whose behaviour ringkv follows, reported to clients.
pub const REDIS_VERSION: &str = "7.2.4";
