//! The data layer: the keyspace and everything that follows its changes (the
//! keys watched by transactions, the clients blocked on keys, pub/sub for
//! keyspace events, the write feed, the evictor and the change counter).
//!
//! Only the write path (`write`) changes a dataset; commands read it through
//! their slot locks. May use the keyspace and the registries it holds, the
//! settings and the counters; knows nothing of commands, sessions or sockets.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::blocking::Blocked;
use crate::config::{ClientClass, LiveConfig};
use crate::eviction::Evictor;
use crate::feed::Feed;
use crate::keyspace::Keyspace;
use crate::notify;
use crate::protocol::OutputLimit;
use crate::pubsub::PubSub;
use crate::stats::Stats;
use crate::util::slot_bits::SlotBits;
use crate::watch::Watches;

/// The keyspace and what its changes reach.
#[derive(Debug)]
pub struct Dataset {
    /// All keys.
    pub keyspace: Keyspace,
    /// Keys watched by transactions.
    pub watches: Watches,
    /// Clients blocked on keys.
    pub blocked: Blocked,
    /// Pub/sub channels and subscribers (keyspace events go there).
    pub pubsub: PubSub,
    /// Every unit of work's records, for replicas and migration targets.
    pub feed: Feed,
    /// Chooses and removes keys when memory is over `maxmemory`.
    pub evictor: Evictor,
    /// The node's settings, as the data layer reads them.
    pub config: Arc<LiveConfig>,
    /// The node's counters.
    pub stats: Arc<Stats>,
    /// Slots whose writes wait while a migration hands them to another master
    /// (docs/CLUSTER.md, M10); no lock or lease is granted on them either.
    pub paused: SlotBits,
    /// Changes made to the dataset since start.
    dirty: AtomicU64,
}

impl Dataset {
    /// An empty dataset under `config`, counting into `stats`.
    pub fn new(config: Arc<LiveConfig>, stats: Arc<Stats>) -> Self {
        let data = Dataset {
            keyspace: Keyspace::new(),
            watches: Watches::default(),
            blocked: Blocked::default(),
            pubsub: PubSub::default(),
            feed: Feed::default(),
            evictor: Evictor::default(),
            config,
            stats,
            paused: SlotBits::default(),
            dirty: AtomicU64::new(0),
        };
        data.keyspace.name_expired_while(data.feed.activity());
        data.apply_settings();
        data
    }

    /// Puts the settings the data layer caches in force (at start and after
    /// `CONFIG SET`): how key accesses are recorded, a fresh eviction candidate
    /// pool, and whether expired keys are named for keyspace events.
    pub fn apply_settings(&self) {
        self.keyspace.set_tracking(self.config.tracking());
        self.evictor.reset();
        let flags = self.config.notify_flags();
        let events = notify::KEYSPACE | notify::KEYEVENT;
        self.keyspace
            .record_expired(flags & notify::EXPIRED != 0 && flags & events != 0);
    }

    /// The fencing token for a lock or lease granted at `now`. A token past
    /// the block reserved reserves the next one first, its bound written to
    /// the feed ahead of the grant (L4).
    pub fn next_token(&self, now: crate::clock::Millis) -> u64 {
        self.keyspace.next_token_reserved(now, |bound| {
            if self.feed.is_active() {
                self.feed.append_token_bound(bound);
            }
        })
    }

    /// Writes the bound of the fencing tokens reserved to the feed: a full
    /// sync starts, whose replica must not issue tokens below it once
    /// promoted (the slot snapshots carry only the tokens of live locks).
    pub fn announce_token_bound(&self) {
        let bound = self.keyspace.reserved_tokens();
        if bound > 0 {
            self.feed.append_token_bound(bound);
        }
    }

    /// Changes made to the dataset since start.
    pub fn dirty(&self) -> u64 {
        self.dirty.load(Relaxed)
    }

    /// Counts `n` changes (the write path's commit).
    pub(crate) fn add_dirty(&self, n: u64) {
        if n > 0 {
            self.dirty.fetch_add(n, Relaxed);
        }
    }

    /// The pub/sub output limits as configured now.
    pub fn pubsub_output_limit(&self) -> OutputLimit {
        self.config.output_limit(ClientClass::Pubsub)
    }

    /// Delivers `message` on ordinary `channel` to this node's subscribers (of
    /// the channel and of the patterns matching it); the number reached. The
    /// local half of `PUBLISH`, which the cluster bus also calls for messages
    /// published on other nodes.
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> usize {
        self.pubsub
            .publish(channel, message, self.pubsub_output_limit())
    }

    /// Delivers `message` to this node's subscribers of shard channel
    /// `channel`; the number reached. The local half of `SPUBLISH`, which the
    /// cluster bus also calls for messages published on other nodes of the shard.
    pub fn publish_shard(&self, channel: &[u8], message: &[u8]) -> usize {
        self.pubsub
            .publish_shard(channel, message, self.pubsub_output_limit())
    }

    /// Publishes a keyspace event if `notify-keyspace-events` asks for its class.
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        let flags = self.config.notify_flags();
        if flags != 0 {
            self.notify_with(flags, class, event, key);
        }
    }

    /// [`Dataset::notify`] with the `notify-keyspace-events` flags read already.
    pub fn notify_with(&self, flags: u32, class: u32, event: &str, key: &[u8]) {
        notify::publish(
            &self.pubsub,
            self.pubsub_output_limit(),
            flags,
            class,
            event,
            key,
        );
    }
}
