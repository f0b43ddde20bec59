//! Atomic slot migration's decisions (docs/CLUSTER.md, M7-M12), free of I/O:
//! the source's job ([`Job`]). The node's tasks that stream the slots and
//! apply the claim live above, in `migration` and `net`.

mod job;

pub use job::{Action, Event, Job, JobSettings, Phase, Progress, ASK_EVERY};
