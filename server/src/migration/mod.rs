//! Moving keys to other nodes (docs/CLUSTER.md, slot migration): the links
//! `MIGRATE` sends its keys over, and the registry of the atomic slot
//! migrations this node sends or receives.

mod links;
mod registry;

pub use links::{timed_out, Link, MigrateLinks};
pub use registry::{Import, ImportPhase, Listed, Migrations, RingStatus, StartError};
