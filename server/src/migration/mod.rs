//! Moving keys to other nodes (docs/CLUSTER.md, slot migration): the links
//! `MIGRATE` sends its keys over.

mod links;

pub use links::{timed_out, Link, MigrateLinks};
