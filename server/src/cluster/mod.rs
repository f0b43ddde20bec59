//! Cluster mode's building blocks. Today: which master owns each slot (the
//! ring); membership, gossip and failover build on it.
//! Uses the keyspace's slot hashing; the node holds its view in a
//! [`ClusterHandle`] that membership changes replace.

mod handle;
pub mod id;
pub mod machine;
pub mod message;
pub mod ring;
pub mod slots;
mod state;
pub mod wire;

pub use handle::ClusterHandle;
pub use ring::{Ring, RingConfig};
pub use state::{parse_members, persist_node_id, ClusterError, ClusterState, Member};
