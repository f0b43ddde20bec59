//! Cluster mode's building blocks. Today: which master owns each slot (the
//! ring); membership, gossip and failover build on it.

pub mod ring;
mod state;

pub use ring::{Ring, RingConfig};
pub use state::{parse_members, persist_node_id, ClusterError, ClusterState, Member};
