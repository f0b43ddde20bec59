//! Cluster mode's building blocks (docs/CLUSTER.md): the state machine of one
//! node's view (`machine`: membership, failure detection, epochs, slot
//! authority), the bus messages, the config file, the ring that plans slot
//! placement, and the simulator that checks the protocol's invariants.
//! Uses the keyspace's slot hashing; the node holds its view in a
//! [`ClusterHandle`] that membership changes replace.

mod handle;
pub mod id;
pub mod machine;
pub mod message;
pub mod nodes_conf;
pub mod ring;
pub mod sim;
pub mod slots;
mod state;
pub mod wire;

pub use handle::ClusterHandle;
pub use ring::{Ring, RingConfig};
pub use state::{parse_members, persist_node_id, ClusterError, ClusterState, Member};
