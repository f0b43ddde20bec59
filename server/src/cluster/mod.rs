//! Cluster mode's building blocks (docs/CLUSTER.md): the state machine of one
//! node's view (`machine`: membership, failure detection, epochs, slot
//! authority), the bus messages and their encoding, the config file, the ring
//! that plans slot placement, and the simulator that checks the protocol's
//! invariants. The node holds its machine in a [`ClusterHandle`], which
//! publishes a [`ClusterView`] after every step for commands to read.

mod handle;
pub mod id;
pub mod machine;
pub mod message;
pub mod migration;
pub mod nodes_conf;
pub mod ring;
pub mod sim;
pub mod slots;
mod view;
pub mod wire;

pub use handle::{BusDrop, ClusterHandle, LinkInfo, MessageCounts};
pub use machine::Role;
pub use ring::{Ring, RingConfig};
pub use view::{ClusterView, SlotCounts, ViewNode};
