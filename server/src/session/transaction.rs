//! A transaction being collected between `MULTI` and `EXEC`.

use crate::protocol::Args;

/// A queued command: its id, how many arguments precede its own, and its own
/// copy of the request.
#[derive(Debug)]
pub struct Queued {
    /// The command's id in the command table (a subcommand's own).
    pub command: usize,
    /// Arguments before the command's own (1, or 2 for a subcommand).
    pub skip: usize,
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Queued {
    /// The request's arguments.
    pub fn args(&self) -> Args<'_> {
        Args::new(&self.data, &self.spans)
    }
}

/// A transaction being collected between `MULTI` and `EXEC`.
#[derive(Debug, Default)]
pub struct Transaction {
    queued: Vec<Queued>,
    /// A command failed its checks: `EXEC` will refuse.
    pub failed: bool,
    /// In cluster mode, the slot of the keys queued so far: a transaction runs
    /// on one master, so all its keys must share a slot.
    pub slot: Option<u16>,
    /// A queued command runs a script (`EXEC` then needs a stack that can
    /// be suspended).
    pub scripts: bool,
}

impl Transaction {
    /// Number of commands queued.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Queues command `command` (with `skip` arguments before its own),
    /// copying the request out of the connection's buffer.
    pub fn push(&mut self, command: usize, skip: usize, args: Args<'_>) {
        let mut data = Vec::with_capacity(args.iter().map(<[u8]>::len).sum());
        let mut spans = Vec::with_capacity(args.len());
        for arg in args.iter() {
            spans.push((data.len(), data.len() + arg.len()));
            data.extend_from_slice(arg);
        }
        self.queued.push(Queued {
            command,
            skip,
            data,
            spans,
        });
    }

    /// The queued commands, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Queued> {
        self.queued.iter()
    }
}
