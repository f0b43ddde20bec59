//! ringkv: a Redis-protocol cache and lock server.
//!
//! ```text
//! server ─ binds, runs ─▶ net (sockets: clients, replicas, the master link), cron, apply
//!                            │ requests
//!                            ▼
//!                         commands (lookup, checks, routing; parse + apply)
//!                            │ reads through slot locks; changes recorded
//!                            ▼
//!   session (per connection) ─ write (commit: counter, events, WATCH, waiters, feed)
//!                            │
//!                            ▼
//!                         dataset: keyspace (16384 slot tables), watches,
//!                         blocked clients, pub/sub, feed, evictor
//! ```
//! `shared` holds one node's dataset, settings, counters, clients and cluster
//! view; `config`, `cluster`, `protocol` and the registries sit below.

// The modules in layers, lowest first: a module uses only modules of the layers
// before its own (tests/layers.rs checks it).
// Foundations.
pub mod bitmap;
pub mod clock;
pub mod geo;
pub mod memory;
pub mod protocol;
pub mod stats;
pub mod util;
pub mod watch;
// Data structures and registries.
pub mod keyspace;
pub mod pubsub;
// What builds on them.
pub mod blocking;
pub mod cluster;
pub mod eviction;
pub mod feed;
pub mod notify;
pub mod scripting;
// Settings.
pub mod config;
// The data layer and the one path that changes it.
pub mod dataset;
// The write path.
pub mod write;
// Replication state: roles, replicas and their acknowledgements, full syncs.
pub mod replication;
// Links that move keys to other nodes (MIGRATE's).
pub mod migration;
// Connection state.
pub mod session;
// What a node's tasks share.
pub mod shared;
// Commands.
pub mod commands;
// The feed's applier: runs a master's records as commands, with no connection.
pub mod apply;
// What runs commands and the bus: connections (clients, replicas, the link to a
// master), the cluster bus, the cron.
pub mod bus;
mod cron;
mod net;
// The server.
pub mod server;

pub use server::Server;
pub use shared::Shared;

/// The Redis version whose behaviour ringkv follows, reported to clients.
pub const REDIS_VERSION: &str = "7.2.4";
