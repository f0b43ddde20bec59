//! Cluster mode's building blocks. Today: which master owns each slot (the
//! ring); membership, gossip and failover build on it.

pub mod ring;

pub use ring::{Ring, RingConfig};
