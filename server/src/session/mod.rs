//! Session state: what one connection carries between its commands (its
//! transaction, watched keys, subscriptions, the unit of work under way), and the
//! registry of connected clients.
//!
//! Below the commands: commands read and change a session; nothing here knows a
//! command, only command ids. May use the write path's `Changes`, the watch and
//! pub/sub registries, the blocked clients' types, stats and the protocol.

mod clients;
mod subscriptions;
mod transaction;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub use clients::{Activity, ClientHandle, Clients};
pub use subscriptions::Subscriptions;
pub use transaction::{Queued, Transaction};

use crate::blocking::Held;
use crate::clock::{Clock, Millis};
use crate::pubsub::PubSub;
use crate::stats::LocalStats;
use crate::watch::{WatchFlag, Watches};
use crate::write::Changes;

/// What a replica told its master before `PSYNC`.
#[derive(Debug, Default, Clone)]
pub struct ReplConf {
    /// The port it serves clients on (`REPLCONF listening-port`).
    pub listening_port: Option<u16>,
    /// It understands ringkv's snapshot records (`REPLCONF capa ringkv`).
    pub ringkv: bool,
    /// Its cluster node id (`REPLCONF node-id`, sent by ringkv replicas in
    /// cluster mode): how the in-sync set names it to the cluster (L2).
    pub node: Option<crate::cluster::id::Id>,
    /// Its `PSYNC replid offset` (`SYNC`: `?`, -1).
    pub psync: Option<(Vec<u8>, i64)>,
}

/// A reply cut from the output until its unit's lock changes are
/// acknowledged (docs/CLUSTER.md, L1).
#[derive(Debug)]
pub struct HeldReply {
    /// The unit.
    pub held: Arc<Held>,
    /// The reply, as encoded.
    pub reply: Vec<u8>,
}

/// The state of one connection that commands read and change.
#[derive(Debug)]
pub struct Session {
    /// This client's shared handle.
    pub handle: Arc<ClientHandle>,
    /// Passed `AUTH` (or connected while no password was set).
    pub authenticated: bool,
    /// Close the connection once the pending replies are written (`QUIT`).
    pub close_after_reply: bool,
    /// A client connection, whose scripts run on a stack that can be
    /// suspended (`util::suspend`) so a busy one does not hold its worker;
    /// elsewhere (a master's stream, tests) scripts run where they are.
    pub suspendable: bool,
    /// A script ran (or was about to) since the connection last cleared this.
    pub ran_script: bool,
    /// Counters not yet added to the server's.
    pub stats: LocalStats,
    /// The last command looked up.
    pub lookup: LookupCache,
    /// The transaction being collected after MULTI.
    pub multi: Option<Transaction>,
    /// `READONLY` (cluster mode): reads of slots this replica's master
    /// serves run here instead of being redirected.
    pub readonly: bool,
    /// `ASKING` (cluster mode): the next command may run on a slot this
    /// node imports (docs/CLUSTER.md, M3).
    pub asking: bool,
    /// Watched keys, with the expiry each had when watched.
    pub watching: Vec<(Vec<u8>, Option<Millis>)>,
    /// Set when a watched key is touched.
    pub watch_flag: WatchFlag,
    /// Pub/sub subscriptions.
    pub subscriptions: Subscriptions,
    /// What the unit of work under way changed (see `write`).
    pub changes: Changes,
    /// Memory stayed over `maxmemory` after the evictions before the
    /// running script (or `EXEC` of one): its commands that may grow memory
    /// are refused until it writes (as Redis, which keeps a script whole
    /// once it changed something).
    pub oom_at_start: bool,
    /// A key the last command stored, for TinyLFU admission once its slot is
    /// released (only under memory pressure with `allkeys-tinylfu`).
    pub admit: Option<Vec<u8>>,
    /// What a replica said of itself (`REPLCONF`), and its `PSYNC` once sent:
    /// the connection then becomes its replication stream.
    pub replconf: ReplConf,
    /// This session applies the master's stream on a replica: no routing,
    /// no read-only refusal, keys past their expiry still live.
    pub master_link: bool,
    /// This connection sent `CLUSTER SYNCSLOTS BEGIN`: after the reply it is
    /// the stream of that import (docs/CLUSTER.md, M8).
    pub import: Option<u64>,
    /// The last command's reply, held for acknowledgements: the connection
    /// sends it (or an error) once they came, before running anything more.
    pub held: Option<HeldReply>,
    /// Wall-clock time at `batch_start`, so later commands of the batch derive
    /// theirs from the cheaper monotonic clock.
    batch_wall: Millis,
    batch_start: Instant,
    /// When the previous command ended: the start of the next one.
    mark: Instant,
    /// Wall-clock time at `mark`, worked out when first asked for: a command
    /// asks several times, and after a batch's last command nobody does.
    mark_wall: Option<Millis>,
}

impl Session {
    /// What `CLIENT LIST` shows of this session's state.
    pub fn activity(&self, blocked: bool) -> Activity {
        Activity {
            sub: self.subscriptions.channels(),
            psub: self.subscriptions.patterns(),
            ssub: self.subscriptions.shard_channels(),
            multi: self.multi.as_ref().map(Transaction::queued),
            watch: self.watching.len(),
            blocked,
            readonly: self.readonly,
            replica: false,
        }
    }

    /// The state of a new connection.
    pub fn new(handle: Arc<ClientHandle>, authenticated: bool) -> Self {
        let now = Instant::now();
        Session {
            handle,
            authenticated,
            close_after_reply: false,
            suspendable: false,
            ran_script: false,
            oom_at_start: false,
            stats: LocalStats::default(),
            lookup: LookupCache::default(),
            multi: None,
            readonly: false,
            asking: false,
            watching: Vec::new(),
            watch_flag: WatchFlag::default(),
            subscriptions: Subscriptions::default(),
            changes: Changes::default(),
            admit: None,
            replconf: ReplConf::default(),
            master_link: false,
            import: None,
            held: None,
            batch_wall: 0,
            batch_start: now,
            mark: now,
            mark_wall: Some(0),
        }
    }

    /// Starts a batch of pipelined commands: reads the wall clock once.
    pub fn begin_batch(&mut self, clock: &dyn Clock) {
        self.batch_start = Instant::now();
        self.batch_wall = clock.now_ms();
        self.mark = self.batch_start;
        self.mark_wall = Some(self.batch_wall);
    }

    /// The start of the next command and its wall-clock time. One clock read per
    /// command is all timing costs: a command starts where the previous ended.
    pub fn command_start(&mut self) -> (Instant, Millis) {
        let wall = *self.mark_wall.get_or_insert_with(|| {
            let offset = self.mark.duration_since(self.batch_start).as_millis();
            self.batch_wall + offset as Millis
        });
        (self.mark, wall)
    }

    /// Marks the end of a command; returns how long it took in microseconds.
    pub fn command_end(&mut self, started: Instant) -> u64 {
        self.mark = Instant::now();
        self.mark_wall = None;
        self.mark.duration_since(started).as_micros() as u64
    }

    /// Forgets every watched key (`EXEC`, `DISCARD`, `UNWATCH`, disconnect).
    pub fn unwatch_all(&mut self, watches: &Watches) {
        let keys = std::mem::take(&mut self.watching);
        watches.unwatch(keys.iter().map(|(k, _)| k.as_slice()), &self.watch_flag);
        self.watch_flag.store(false, Ordering::Release);
    }

    /// Drops every subscription (disconnect, `RESET`).
    pub fn unsubscribe_all(&mut self, pubsub: &PubSub) {
        std::mem::take(&mut self.subscriptions).drop_from(pubsub);
    }
}

/// The last top-level command a connection looked up, by its name exactly as
/// sent. Pipelines repeat one command, so most lookups become a short byte
/// comparison.
#[derive(Debug, Default)]
pub struct LookupCache {
    name: [u8; 16],
    len: usize,
    command: Option<usize>,
}

impl LookupCache {
    /// The id of the command called `name` if it is the cached one.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<usize> {
        self.command
            .filter(|_| name.len() == self.len && name == &self.name[..self.len])
    }

    /// Remembers that `name` is command `id` (names longer than 16 bytes are
    /// not cached).
    pub fn put(&mut self, name: &[u8], id: usize) {
        if name.len() <= self.name.len() {
            self.name[..name.len()].copy_from_slice(name);
            self.len = name.len();
            self.command = Some(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_cache_matches_exact_names_only() {
        let mut cache = LookupCache::default();
        assert!(cache.get(b"GET").is_none());
        cache.put(b"GET", 7);
        assert_eq!(cache.get(b"GET"), Some(7));
        assert!(cache.get(b"get").is_none());
        assert!(cache.get(b"GETX").is_none());
        cache.put(b"a-name-longer-than-16", 8);
        assert_eq!(cache.get(b"GET"), Some(7), "long names are not cached");
    }
}
