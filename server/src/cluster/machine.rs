//! The cluster as one node sees it, and the rules it follows (docs/CLUSTER.md,
//! Rules): membership, liveness, failure detection, epochs and slot authority;
//! replicas (`replicas`), failover (`failover`) and the lock rules' cluster
//! part (`in_sync`) in submodules.
//!
//! A plain state machine: events (a tick, a message, a link up or down, an
//! operator command) with the time and a seeded random source in; messages,
//! saves and link requests out (see [`Output`]). No sockets, no clocks: the bus
//! thread and the simulator drive it the same way.

mod failover;
mod handoff;
mod in_sync;
mod open_slots;
mod rebalance;
mod replicas;

use std::collections::{BTreeMap, HashSet, VecDeque};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::id::Id;
use super::message::{claim_digest, Addr, Body, Flags, Gossip, Header, Message};
use super::nodes_conf::{bits_from_ranges, InSyncLine, NodeFlags, NodeLine, NodesConf};
use super::ring::{Ring, RingConfig};
use super::slots::SlotSet;
use crate::clock::Millis;
use crate::keyspace::SLOTS;

/// How long a forgotten node stays banned from gossip (Redis: 60 s).
const FORGET_BAN: Millis = 60_000;
/// Ticks happen every this many milliseconds.
pub const TICK: Millis = 100;
/// How long a `RING ASSIGN` keeps asking planned owners that did not claim.
const ASSIGN_FOR: Millis = 60_000;
/// Gossip entries about random nodes per message (failing and fresh ones come
/// on top).
const GOSSIP_RANDOM: usize = 3;
/// Most gossip entries per message about nodes learned of lately.
const GOSSIP_FRESH: usize = 4;
/// Most pings unanswered on one link before it counts as stuck.
const MAX_PINGS_OUT: usize = 64;

pub use failover::{Role, MANUAL_TIMEOUT, PAUSE_SETTLE};
pub use in_sync::InSync;
pub use open_slots::SetSlot;
pub use rebalance::{RingMove, RingPlan};

/// Settings of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `cluster-node-timeout`.
    pub node_timeout: Millis,
    /// `cluster-require-full-coverage`.
    pub require_full_coverage: bool,
    /// `cluster-replica-no-failover`: this replica never starts an automatic
    /// failover (a manual one still works).
    pub replica_no_failover: bool,
    /// `cluster-replica-validity-factor`: a replica cut off from its master
    /// for longer than `T * factor` plus the ping period does not stand for
    /// election (0: no limit).
    pub replica_validity_factor: u64,
    /// `cluster-allow-replica-migration`: a replica whose master lost every
    /// slot to another master follows that master, and a replica of a master
    /// with enough replicas moves to an orphaned master.
    pub allow_replica_migration: bool,
    /// `cluster-migration-barrier`: the replicas a master keeps before one of
    /// them may migrate to an orphaned master.
    pub migration_barrier: u64,
}

impl Settings {
    /// Redis's defaults.
    pub const DEFAULT: Settings = Settings {
        node_timeout: 15_000,
        require_full_coverage: true,
        replica_no_failover: false,
        replica_validity_factor: 10,
        allow_replica_migration: true,
        migration_barrier: 1,
    };
}

impl Default for Settings {
    fn default() -> Self {
        Settings::DEFAULT
    }
}

/// A link as the machine names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// This node's link to a node, by the id this node knows it by.
    To(Id),
    /// A link another node opened to this one, numbered by the I/O layer.
    From(u64),
}

/// What the machine asks of the I/O layer, in order. A [`Output::Save`] comes
/// first in a step's outputs: the durable state must be saved before anything
/// the step sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Save the durable state (see [`Cluster::durable`]).
    Save,
    /// Open a link to `peer` at `addr` (then report [`Cluster::link_up`] or
    /// [`Cluster::link_down`]).
    Connect {
        /// The node.
        peer: Id,
        /// Where it listens.
        addr: Addr,
    },
    /// Close the link to `peer`.
    Disconnect(Id),
    /// The link to the handshake node `from` now belongs to node `to`.
    Rename {
        /// The temporary id.
        from: Id,
        /// The node's real id.
        to: Id,
    },
    /// Send a message on a link.
    Send(Link, Message),
    /// Deliver a message published on another node to local subscribers.
    Deliver {
        /// Channel.
        channel: Vec<u8>,
        /// Message.
        message: Vec<u8>,
        /// Sharded (`SPUBLISH`).
        shard: bool,
    },
    /// This node lost these slots to a newer claim: their keys must go.
    /// Not asked when the node lost every slot and became a replica (F6): the
    /// full sync from its new master replaces all its keys.
    SlotsLost(Box<SlotSet>),
}

/// The state of this node's link to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No link; try again at this time.
    Down(Millis),
    /// Opening.
    Connecting,
    /// Open.
    Up,
}

/// What this node knows of a node (itself included).
#[derive(Debug, Clone)]
pub struct Node {
    /// Its id (temporary while in handshake).
    pub id: Id,
    /// Its shard.
    pub shard: Id,
    /// Where it listens.
    pub addr: Addr,
    /// Its flags as this node sees them.
    pub flags: Flags,
    /// A replica's master.
    pub master: Option<Id>,
    /// Its replication offset, as its last header said.
    pub repl_offset: u64,
    /// When this node last voted for a replica of it (F4: at most one such
    /// vote per `2T`).
    voted_time: Option<Millis>,
    /// A master's in-sync set of replicas, the newest version heard (L2).
    pub in_sync: Option<InSync>,
    /// When each `Ping` or `Meet` still unanswered on this node's link to it
    /// was sent, oldest first: its answers come back in order (L3).
    pings_out: VecDeque<Millis>,
    /// When it last answered one of this node's pings: it heard this node
    /// then or later (L3).
    pub heard_us: Millis,
    /// A master that has or had replicas: replicas may migrate to it when it
    /// has none left (Redis's `MIGRATE_TO`).
    migrate_to: bool,
    /// Since when it is a master left without working replicas.
    orphaned_since: Option<Millis>,
    /// When the ping we await an answer to was sent.
    pub ping_sent: Option<Millis>,
    /// When we last learned it is alive.
    pub pong_recv: Millis,
    /// The config epoch of its claim.
    pub config_epoch: u64,
    /// The slots it claims, as it last said (for this node: its slots).
    /// Boxed, as `slots`: a view of a thousand nodes walks the small fields
    /// every tick, and the bitmaps (2 KiB each) would spread them out.
    pub claim: Box<SlotSet>,
    /// The slots it owns in this node's table.
    pub slots: Box<SlotSet>,
    /// How many slots the table gives it (kept by `Cluster::set_owner`): the
    /// size of `slots`, which `assign` and `unassign` change with the table,
    /// read without touching the bitmap.
    owned: usize,
    /// Masters that reported it failing, and when.
    pub fail_reports: Vec<(Id, Millis)>,
    /// When it was flagged `fail`.
    pub fail_time: Millis,
    /// This node's link to it.
    pub link: LinkState,
    /// When that link opened.
    pub link_since: Millis,
    /// When a message from it last arrived (on any link).
    pub data_recv: Millis,
    /// When it was created (handshake timeouts).
    pub created: Millis,
    /// Greet it with `Meet`, not `Ping`: met by `CLUSTER MEET`, or it said it
    /// does not know this node (its own handshake failed). Cleared when it says
    /// it knows this node.
    meet: bool,
    /// The next message to it carries our full claim.
    needs_claim: bool,
}

impl Node {
    fn new(id: Id, addr: Addr, flags: u16, now: Millis) -> Node {
        Node {
            id,
            shard: id,
            addr,
            flags: Flags(flags),
            master: None,
            repl_offset: 0,
            voted_time: None,
            in_sync: None,
            pings_out: VecDeque::new(),
            heard_us: 0,
            migrate_to: false,
            orphaned_since: None,
            ping_sent: None,
            pong_recv: 0,
            config_epoch: 0,
            claim: Box::default(),
            slots: Box::default(),
            owned: 0,
            fail_reports: Vec::new(),
            fail_time: 0,
            link: LinkState::Down(now),
            link_since: now,
            data_recv: now,
            created: now,
            meet: false,
            needs_claim: true,
        }
    }

    fn is_master(&self) -> bool {
        self.flags.has(Flags::MASTER)
    }

    /// A master serving at least one slot in this node's table: one of the
    /// masters that vote and count for quorums.
    fn serves(&self) -> bool {
        self.is_master() && self.owned > 0
    }

    fn in_handshake(&self) -> bool {
        self.flags.has(Flags::HANDSHAKE)
    }

    fn failing(&self) -> bool {
        self.flags.any(Flags::PFAIL | Flags::FAIL)
    }

    fn digest(&self) -> u64 {
        claim_digest(self.config_epoch, &self.claim)
    }

    /// What a tick owes this node's link: open it, give it up, or ping.
    /// `round_trips`: this node needs answers from it every `T/4` (L3: both
    /// are masters serving slots).
    fn due(&self, now: Millis, timeout: Millis, round_trips: bool) -> Option<Due> {
        match self.link {
            LinkState::Down(retry_at) if retry_at <= now && !self.flags.has(Flags::NOADDR) => {
                Some(Due::Connect(self.addr))
            }
            // A connect that hangs (a peer behind a partition) is given up and
            // tried again.
            LinkState::Connecting if now.saturating_sub(self.link_since) > timeout / 2 => {
                Some(Due::DropLink)
            }
            LinkState::Up => match self.ping_sent {
                // Rule 7: a stuck link must not look like a dead self.
                Some(sent)
                    if now.saturating_sub(sent) > timeout / 2
                        && now.saturating_sub(self.link_since) > timeout
                        && now.saturating_sub(self.data_recv) > timeout / 2 =>
                {
                    Some(Due::DropLink)
                }
                None if now.saturating_sub(self.pong_recv) > timeout / 2 => Some(Due::Ping),
                None if round_trips && now.saturating_sub(self.heard_us) > timeout / 4 => {
                    Some(Due::Ping)
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// Errors of the operator commands, with Redis's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// `CLUSTER FORGET` of this node.
    #[error("ERR I tried hard but I can't forget myself...")]
    ForgetMyself,
    /// A node id nobody knows.
    #[error("ERR Unknown node {0}")]
    UnknownNode(String),
    /// `ADDSLOTS` of an assigned slot.
    #[error("ERR Slot {0} is already busy")]
    SlotBusy(u16),
    /// `DELSLOTS` of an unassigned slot.
    #[error("ERR Slot {0} is already unassigned")]
    SlotUnassigned(u16),
    /// `SET-CONFIG-EPOCH` on a node that knows others.
    #[error(
        "ERR The user can assign a config epoch only when the node does not know any other node."
    )]
    EpochWithPeers,
    /// `SET-CONFIG-EPOCH` on a node whose epoch is set.
    #[error("ERR Node config epoch is already non-zero")]
    EpochSet,
    /// `CLUSTER REPLICATE` of this node.
    #[error("ERR Can't replicate myself")]
    ReplicateMyself,
    /// `CLUSTER REPLICATE` of a replica.
    #[error("ERR I can only replicate a master, not a replica.")]
    ReplicateReplica,
    /// `CLUSTER REPLICATE` on a master with slots or keys.
    #[error("ERR To set a master the node must be empty and without assigned slots.")]
    NotEmpty,
    /// `CLUSTER REPLICAS` of a replica.
    #[error("ERR The specified node is not a master")]
    NotMaster,
    /// `CLUSTER FORGET` of this replica's master.
    #[error("ERR Can't forget my master!")]
    ForgetMyMaster,
    /// `CLUSTER FAILOVER` on a master.
    #[error("ERR You should send CLUSTER FAILOVER to a replica")]
    FailoverOnMaster,
    /// `CLUSTER FAILOVER` on a replica whose master is not known.
    #[error("ERR I'm a replica but my master is unknown to me")]
    MasterUnknown,
    /// `CLUSTER ADDSLOTS` on a replica (Redis lets it change the replica's
    /// own table, which then routes writes to the replica; ringkv refuses,
    /// in the words of Redis's `SETSLOT` on a replica).
    #[error("ERR Please use ADDSLOTS only with masters.")]
    AddSlotsOnReplica,
    /// `CLUSTER FAILOVER` without `FORCE` while the master is unreachable.
    #[error("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE")]
    MasterDown,
    /// `CLUSTER SETSLOT` on a replica.
    #[error("ERR Please use SETSLOT only with masters.")]
    SetSlotOnReplica,
    /// `SETSLOT slot MIGRATING` of a slot another node owns.
    #[error("ERR I'm not the owner of hash slot {0}")]
    NotOwner(u16),
    /// `SETSLOT slot IMPORTING` of a slot this node owns.
    #[error("ERR I'm already the owner of hash slot {0}")]
    AlreadyOwner(u16),
    /// `SETSLOT` naming a node nobody knows.
    #[error("ERR I don't know about node {0}")]
    UnknownSetSlotNode(String),
    /// `SETSLOT` naming a replica.
    #[error("ERR Target node is not a master")]
    TargetNotMaster,
    /// `SETSLOT slot NODE other` while keys of the slot are still here.
    #[error("ERR Can't assign hashslot {0} to a different node while I still hold keys for this hash slot.")]
    StillHoldsKeys(u16),
    /// An atomic migration of a slot that `SETSLOT` opened (M1).
    #[error("ERR Slot {0} is in a MIGRATING or IMPORTING state")]
    SlotOpen(u16),
    /// An atomic migration to this node itself.
    #[error("ERR Can't migrate slots to myself")]
    MigrateToMyself,
    /// An import of a slot its would-be source does not own here.
    #[error("ERR Slot {0} is not served by the source node")]
    NotSourceSlot(u16),
    /// An atomic migration on a replica.
    #[error("ERR Slot migration is only possible between masters")]
    MigrationOnReplica,
    /// A claim of imported slots while this master hands slots off itself.
    #[error("ERR This node is handing slots off; try again once that is done")]
    HandoffInFlight,
}

/// Why a saved cluster config cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A node id or shard id is not 40 hex digits.
    #[error("bad id '{0}' in the cluster config")]
    BadId(String),
    /// An address that is not an IP.
    #[error("bad address '{0}' in the cluster config")]
    BadAddress(String),
    /// No line is `myself`.
    #[error("the cluster config has no line for this node")]
    NoMyself,
}

/// A `RING ASSIGN` being carried out: what each planned owner was asked to
/// claim, under which epoch, and until when to keep asking.
#[derive(Debug)]
struct Assigning {
    asks: BTreeMap<Id, (u64, SlotSet)>,
    until: Millis,
}

/// What a tick found a node due.
enum Due {
    /// Open a link to it, at this address.
    Connect(Addr),
    /// Close the link to it.
    DropLink,
    /// Ping it.
    Ping,
}

/// The nodes gossip entries are drawn from, refreshed every tick.
#[derive(Debug, Default)]
struct Pools {
    /// Known nodes with an address.
    gossip: Vec<Id>,
    /// Those of them flagged `fail?` or `fail`: every message mentions them.
    failing: Vec<Id>,
    /// Those learned of less than `T` ago: messages mention up to
    /// [`GOSSIP_FRESH`] of them.
    fresh: Vec<Id>,
}

/// This node's view of the cluster and the machine that keeps it.
pub struct Cluster {
    settings: Settings,
    myself: Id,
    nodes: BTreeMap<Id, Node>,
    /// The addresses of the nodes in handshake (at most one each).
    handshakes: HashSet<Addr>,
    /// Each slot's owner.
    owners: Vec<Option<Id>>,
    current_epoch: u64,
    last_vote_epoch: u64,
    /// This node's replication offset, as the data plane last set it.
    repl_offset: u64,
    /// The election this replica runs or last ran (F2 to F5).
    election: failover::Election,
    /// A manual failover under way (F7), on either side.
    manual: failover::Manual,
    /// This master's own in-sync set, as proposed and confirmed (L2).
    proposal: in_sync::Proposal,
    /// Slots this master is migrating or importing (M1).
    open: open_slots::OpenSlots,
    /// Handoffs this master sent whose outcome it does not know yet: while
    /// any is, it takes no new config epoch (M10).
    handoffs: u32,
    /// When this node last heard a majority of the slot-serving masters
    /// (L3), as of the last tick; `None` while a replica.
    heard_majority: Option<Millis>,
    /// Forgotten nodes and until when gossip may not bring them back.
    banned: Vec<(Id, Millis)>,
    state_ok: bool,
    /// The nodes gossip entries are drawn from.
    pools: Pools,
    /// A `RING ASSIGN` still waiting for claims.
    assigning: Option<Assigning>,
    /// The digest of this node's claim (every message carries it).
    my_digest: u64,
    /// Something the cluster state depends on changed since it was computed.
    state_dirty: bool,
    /// Counts changes of the slot table.
    table_version: u64,
    /// A digest of the slot table, kept as it changes (see [`Cluster::table_digest`]).
    table_digest: u64,
    /// How many slots the table assigns.
    assigned: usize,
    rng: StdRng,
    ticks: u64,
    /// The time of the latest tick or message.
    now: Millis,
    outputs: Vec<Output>,
    save: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("myself", &self.myself)
            .field("nodes", &self.nodes.len())
            .field("current_epoch", &self.current_epoch)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A node alone in its cluster (no slots), listening at `addr`.
    pub fn new(settings: Settings, addr: Addr, seed: u64, now: Millis) -> Cluster {
        let mut rng = StdRng::seed_from_u64(seed);
        let myself = Id::random(&mut rng);
        let mut me = Node::new(myself, addr, Flags::MASTER, now);
        me.shard = Id::random(&mut rng);
        me.link = LinkState::Up;
        let mut cluster = Cluster::empty(settings, myself, rng);
        cluster.nodes.insert(myself, me);
        cluster.update_my_flags();
        cluster.claim_changed();
        cluster
    }

    /// The node as `conf` (its last saved state) describes it, listening at
    /// `addr`: its identity, epochs, the nodes it knew and the slot table.
    pub fn restore(
        settings: Settings,
        conf: &NodesConf,
        addr: Addr,
        seed: u64,
        now: Millis,
    ) -> Result<Cluster, RestoreError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let id = |text: &str| Id::parse(text).ok_or_else(|| RestoreError::BadId(text.into()));
        let me = conf
            .nodes
            .iter()
            .find(|line| line.flags.myself)
            .ok_or(RestoreError::NoMyself)?;
        let mut cluster = Cluster::empty(settings, id(&me.id)?, StdRng::seed_from_u64(seed ^ 1));
        cluster.current_epoch = conf.current_epoch;
        cluster.last_vote_epoch = conf.last_vote_epoch;
        for line in &conf.nodes {
            let node_id = id(&line.id)?;
            let node_addr = if line.flags.myself {
                addr
            } else {
                Addr {
                    ip: line
                        .ip
                        .parse()
                        .map_err(|_| RestoreError::BadAddress(line.ip.clone()))?,
                    port: line.port,
                    cport: line.cport,
                }
            };
            let mut flags = 0;
            for (on, bit) in [
                (line.flags.master, Flags::MASTER),
                (line.flags.replica, Flags::REPLICA),
                (line.flags.fail, Flags::FAIL),
                (line.flags.noaddr, Flags::NOADDR),
                (line.flags.nofailover, Flags::NOFAILOVER),
                (line.flags.draining, Flags::DRAINING),
            ] {
                if on {
                    flags |= bit;
                }
            }
            let mut node = Node::new(node_id, node_addr, flags, now);
            node.shard = match &line.shard_id {
                Some(shard) => id(shard)?,
                None => Id::random(&mut rng),
            };
            node.master = line.master.as_deref().map(id).transpose()?;
            node.config_epoch = line.config_epoch;
            // Nobody is suspected for the time it took to restart.
            node.pong_recv = now;
            node.fail_time = now;
            let slots = SlotSet(bits_from_ranges(&line.slots));
            node.claim = Box::new(slots.clone());
            if line.flags.myself {
                node.link = LinkState::Up;
            }
            node.slots = Box::new(slots.clone());
            cluster.nodes.insert(node_id, node);
            for slot in slots.iter() {
                cluster.set_owner(slot, Some(node_id));
            }
        }
        for line in &conf.in_sync {
            let master = id(&line.master)?;
            let members = line
                .members
                .iter()
                .map(|m| id(m))
                .collect::<Result<_, _>>()?;
            if let Some(node) = cluster.nodes.get_mut(&master) {
                node.in_sync = Some(InSync {
                    version: line.version,
                    members,
                });
            }
        }
        cluster.proposal = in_sync::Proposal::restored(cluster.me().in_sync.as_ref());
        for (slot, peer) in &me.migrating {
            cluster.open.migrating.insert(*slot, id(peer)?);
        }
        for (slot, peer) in &me.importing {
            cluster.open.importing.insert(*slot, id(peer)?);
        }
        let highest = cluster
            .nodes
            .values()
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0);
        cluster.current_epoch = cluster.current_epoch.max(highest);
        cluster.update_my_flags();
        cluster.claim_changed();
        Ok(cluster)
    }

    /// The durable state, as `cluster-config-file` holds it (handshake nodes
    /// left out, as Redis leaves them out).
    pub fn durable(&self) -> NodesConf {
        NodesConf {
            nodes: self
                .nodes
                .values()
                .filter(|n| !n.in_handshake())
                .map(|n| {
                    let mut line = self.node_line(n);
                    // A replica's own epoch, not its master's as shown: it
                    // is the one that must never go back (I1).
                    line.config_epoch = n.config_epoch;
                    line
                })
                .collect(),
            current_epoch: self.current_epoch,
            last_vote_epoch: self.last_vote_epoch,
            in_sync: self
                .nodes
                .values()
                .filter_map(|n| {
                    let set = n.in_sync.as_ref()?;
                    Some(InSyncLine {
                        master: n.id.to_string(),
                        version: set.version,
                        members: set.members.iter().map(Id::to_string).collect(),
                    })
                })
                .collect(),
        }
    }

    /// `node` as a line of `CLUSTER NODES` (a replica shows its master's
    /// config epoch, as in Redis).
    pub fn node_line(&self, n: &Node) -> NodeLine {
        let config_epoch = match n.master.and_then(|m| self.nodes.get(&m)) {
            Some(master) if !n.is_master() => master.config_epoch,
            _ => n.config_epoch,
        };
        // Redis shows open slots on the `myself` line only.
        let [migrating, importing] = match n.id == self.myself {
            true => self.open_slot_lines(),
            false => Default::default(),
        };
        NodeLine {
            id: n.id.to_string(),
            ip: n.addr.ip.to_string(),
            port: n.addr.port,
            cport: n.addr.cport,
            hostname: None,
            shard_id: Some(n.shard.to_string()),
            flags: NodeFlags {
                myself: n.id == self.myself,
                master: n.flags.has(Flags::MASTER),
                replica: n.flags.has(Flags::REPLICA),
                pfail: n.flags.has(Flags::PFAIL),
                fail: n.flags.has(Flags::FAIL),
                handshake: n.in_handshake(),
                noaddr: n.flags.has(Flags::NOADDR),
                nofailover: n.flags.has(Flags::NOFAILOVER),
                draining: n.flags.has(Flags::DRAINING),
            },
            master: n.master.map(|m| m.to_string()),
            ping_sent: n.ping_sent.unwrap_or(0),
            pong_recv: n.pong_recv,
            config_epoch,
            connected: n.id == self.myself || n.link == LinkState::Up,
            slots: n.slots.ranges(),
            migrating,
            importing,
        }
    }

    /// The rules' settings, changed at runtime (`CONFIG SET`).
    pub fn set_settings(&mut self, settings: Settings) {
        if settings.require_full_coverage != self.settings.require_full_coverage {
            self.state_dirty = true;
        }
        self.settings = settings;
        self.update_my_flags();
        self.update_state();
    }

    /// `nofailover` on this node follows `cluster-replica-no-failover`, as in
    /// Redis (others see it in headers).
    fn update_my_flags(&mut self) {
        let on = self.settings.replica_no_failover;
        let me = self.me_mut();
        if me.flags.has(Flags::NOFAILOVER) != on {
            me.flags.set(Flags::NOFAILOVER, on);
            self.save = true;
        }
    }

    /// The rules' settings in force.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    fn empty(settings: Settings, myself: Id, rng: StdRng) -> Cluster {
        Cluster {
            settings,
            myself,
            nodes: BTreeMap::new(),
            handshakes: HashSet::new(),
            owners: vec![None; SLOTS],
            current_epoch: 0,
            last_vote_epoch: 0,
            repl_offset: 0,
            election: failover::Election::default(),
            manual: failover::Manual::default(),
            proposal: in_sync::Proposal::default(),
            open: open_slots::OpenSlots::default(),
            handoffs: 0,
            heard_majority: None,
            banned: Vec::new(),
            state_ok: false,
            pools: Pools::default(),
            assigning: None,
            my_digest: 0,
            state_dirty: true,
            table_version: 0,
            table_digest: 0,
            assigned: 0,
            rng,
            ticks: 0,
            now: 0,
            outputs: Vec::new(),
            save: false,
        }
    }

    /// This node's id.
    pub fn myself(&self) -> Id {
        self.myself
    }

    /// Every node known, this one included, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// The node with id `id`.
    pub fn node(&self, id: Id) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// The owner of `slot`, if assigned.
    pub fn owner(&self, slot: u16) -> Option<Id> {
        self.owners[slot as usize]
    }

    /// The highest epoch seen.
    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// The epoch of this node's last vote (failover, a later issue).
    pub fn last_vote_epoch(&self) -> u64 {
        self.last_vote_epoch
    }

    /// Whether the cluster serves (rule 20).
    pub fn state_ok(&self) -> bool {
        self.state_ok
    }

    /// A number that changes whenever the slot table does.
    pub fn table_version(&self) -> u64 {
        self.table_version
    }

    /// A digest of what the view shows but times: the slot table, the state,
    /// the epochs, and each node's flags, master, config epoch and link. Equal
    /// digests mean a view built now would differ only in ping and pong times.
    pub fn view_digest(&self) -> u64 {
        let mut digest = self.table_version
            ^ u64::from(self.state_ok) << 63
            ^ self.current_epoch.rotate_left(17)
            ^ self.open.version.rotate_left(41);
        for n in self.nodes.values() {
            let master = n.master.map_or(0, |m| {
                u64::from_le_bytes(m.0[..8].try_into().unwrap_or_default())
            });
            let id = u64::from_le_bytes(n.id.0[..8].try_into().unwrap_or_default());
            let link = matches!(n.link, LinkState::Up) as u64;
            digest = digest.rotate_left(5)
                ^ id
                ^ master.rotate_left(7)
                ^ u64::from(n.flags.0) << 40
                ^ n.config_epoch.rotate_left(23)
                ^ link << 62;
            digest = digest.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        digest
    }

    /// A digest of the slot table (every slot's owner): nodes whose digests
    /// differ serve different tables; equal digests make equal tables likely
    /// (compare them slot by slot to be sure). Kept up to date as slots move.
    pub fn table_digest(&self) -> u64 {
        self.table_digest
    }

    /// The masters serving at least one slot.
    pub fn size(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.is_master() && n.owned > 0)
            .count()
    }

    fn me(&self) -> &Node {
        &self.nodes[&self.myself]
    }

    fn me_mut(&mut self) -> &mut Node {
        self.nodes
            .get_mut(&self.myself)
            .expect("myself is always known")
    }

    /// The outputs of the steps since the last call, a save first if any step
    /// changed durable state.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        let mut outputs = std::mem::take(&mut self.outputs);
        if std::mem::take(&mut self.save) {
            outputs.insert(0, Output::Save);
        }
        outputs
    }

    // ----- Events -----

    /// The periodic step (every [`TICK`] ms): handshake timeouts, links,
    /// pings, suspicion (rules 1, 6 to 8, 11, 13), the cluster state.
    pub fn tick(&mut self, now: Millis) {
        self.ticks += 1;
        self.now = now;
        // Reachability (rule 20) depends on the time.
        self.state_dirty = true;
        let timeout = self.settings.node_timeout;
        self.banned.retain(|&(_, until)| until > now);
        let handshake_timeout = timeout.max(1000);
        // One pass over the nodes decides everything a tick does to them (a
        // view of a thousand nodes is walked every 100 ms), then the steps
        // run in order: expired handshakes go, links and pings, suspicion.
        // The decisions cannot change between the pass and the steps: each
        // step changes only its own node, and never what suspicion reads.
        self.pools.gossip.clear();
        self.pools.failing.clear();
        self.pools.fresh.clear();
        let mut expired = Vec::new();
        let mut due = Vec::new();
        let mut suspected = Vec::new();
        // L3: a slot-serving master keeps fresh round trips with the other
        // ones, also before its first replica comes (a master that gains one
        // must not refuse grants until its round trips catch up).
        let round_trips = self.me().serves();
        for node in self.nodes.values() {
            if node.id == self.myself {
                continue;
            }
            if node.in_handshake() {
                if now.saturating_sub(node.created) > handshake_timeout {
                    expired.push(node.id);
                    continue;
                }
            } else {
                // Gossip is drawn from these (a pool a tick old only delays
                // news by a tick).
                if !node.flags.has(Flags::NOADDR) {
                    self.pools.gossip.push(node.id);
                    if node.failing() {
                        self.pools.failing.push(node.id);
                    } else if now.saturating_sub(node.created) < timeout {
                        self.pools.fresh.push(node.id);
                    }
                }
                // As Redis 7: late only if nothing at all came from it either
                // (its own pings on its link prove it alive while ours go
                // unanswered).
                let late = node
                    .ping_sent
                    .is_some_and(|sent| now.saturating_sub(sent) > timeout)
                    && now.saturating_sub(node.data_recv) > timeout;
                let newly = late && !node.failing();
                if newly || node.flags.has(Flags::PFAIL) {
                    suspected.push((node.id, newly));
                }
            }
            if let Some(step) = node.due(now, timeout, round_trips && node.serves()) {
                due.push((node.id, step));
            }
        }
        for id in expired {
            self.remove_node(id);
        }
        for (id, step) in due {
            match step {
                Due::Connect(addr) => {
                    let node = self.nodes.get_mut(&id).expect("known");
                    node.link = LinkState::Connecting;
                    node.link_since = now;
                    // The connection attempt counts as the ping: a node nobody
                    // can reach turns `fail?` like one that stopped answering.
                    node.ping_sent.get_or_insert(now);
                    self.outputs.push(Output::Connect { peer: id, addr });
                }
                Due::DropLink => self.drop_link(id, now),
                Due::Ping => self.ping(id, now),
            }
        }
        if self.ticks.is_multiple_of(10) {
            self.ping_oldest_of_five(now);
            self.ask_for_slots(now);
        }
        for (id, newly) in suspected {
            if newly {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.flags.set(Flags::PFAIL, true);
                    self.state_dirty = true;
                }
            }
            self.mark_failing_if_needed(id, now);
        }
        self.update_state();
        self.replicas_tick(now);
        self.failover_tick(now);
        self.in_sync_tick(now);
        self.update_state();
    }

    /// This node's link to `peer` opened: greet it.
    pub fn link_up(&mut self, peer: Id, now: Millis) {
        let Some(node) = self.nodes.get_mut(&peer) else {
            self.outputs.push(Output::Disconnect(peer));
            return;
        };
        node.link = LinkState::Up;
        node.link_since = now;
        node.needs_claim = true;
        node.pings_out.clear();
        let sent = node.ping_sent;
        let body = if node.meet {
            Body::Meet(Vec::new())
        } else {
            Body::Ping(Vec::new())
        };
        self.send(peer, body, now);
        // Keep the first unanswered ping's time: reconnecting must not reset it.
        if let Some(node) = self.nodes.get_mut(&peer) {
            node.ping_sent = sent.or(Some(now));
        }
    }

    /// This node's link to `peer` closed or could not open: the next tick
    /// tries again (as Redis retries every cron run), so a broken link costs
    /// far less than the node timeout.
    pub fn link_down(&mut self, peer: Id, now: Millis) {
        if let Some(node) = self.nodes.get_mut(&peer) {
            node.link = LinkState::Down(now);
            node.pings_out.clear();
        }
    }

    /// A message arrived on `link`; `from` is the link's peer IP.
    pub fn receive(&mut self, link: Link, from: std::net::IpAddr, message: Message, now: Millis) {
        self.now = now;
        let header = &message.header;
        let sender = header.sender;
        if sender == self.myself {
            return;
        }
        // A handshake node learns its real id from its first answer (rule 1).
        let mut joined = None;
        if let Link::To(temp) = link {
            if temp != sender {
                match self.nodes.get(&temp) {
                    Some(node) if node.in_handshake() => {
                        if self.nodes.contains_key(&sender) {
                            self.remove_node(temp);
                            return;
                        }
                        joined = Some((sender, node.meet));
                        self.rename(temp, sender);
                    }
                    Some(_) => {
                        // The node at that address changed its id: forget the address.
                        let node = self.nodes.get_mut(&temp).expect("known");
                        node.flags.set(Flags::NOADDR, true);
                        self.drop_link(temp, now);
                        return;
                    }
                    None => return,
                }
            }
        }
        let known = self.nodes.get(&sender).is_some_and(|n| !n.in_handshake());
        if let Some(node) = self.nodes.get_mut(&sender) {
            node.data_recv = now;
        }
        if !known && matches!(message.body, Body::Meet(_)) && !self.nodes.contains_key(&sender) {
            // Rule 2: greeted by a node we do not know; meet it back.
            self.start_handshake(
                Addr {
                    ip: from,
                    port: header.port,
                    cport: header.cport,
                },
                false,
                now,
            );
        }
        let reply = matches!(message.body, Body::Meet(_) | Body::Ping(_));
        if known {
            self.process_header(&message.header, reply, now);
        }
        match &message.body {
            Body::Meet(gossip) | Body::Ping(gossip) | Body::Pong(gossip)
                if known || matches!(message.body, Body::Meet(_)) =>
            {
                self.process_gossip(sender, known, gossip, now);
            }
            Body::Fail(failed) if known => self.fail_reported(*failed, now),
            Body::Update {
                node,
                config_epoch,
                slots,
            } if known => self.update_received(*node, *config_epoch, slots, now),
            Body::AddSlots { epoch, slots } if known => self.add_slots_asked(slots, *epoch, now),
            Body::Publish { channel, message } if known => self.outputs.push(Output::Deliver {
                channel: channel.clone(),
                message: message.clone(),
                shard: false,
            }),
            Body::PublishShard { channel, message } if known => {
                self.outputs.push(Output::Deliver {
                    channel: channel.clone(),
                    message: message.clone(),
                    shard: true,
                })
            }
            Body::FailoverAuthRequest {
                config_epoch,
                slots,
                manual,
            } if known => {
                let request = (*config_epoch, &**slots, *manual);
                let epoch = message.header.current_epoch;
                self.vote_requested(link, sender, epoch, request, now);
            }
            Body::FailoverAuthAck { epoch } if known => self.vote_received(sender, *epoch, now),
            Body::MfStart if known => self.manual_start_asked(sender, now),
            Body::InSync { version, members } if known => {
                let set = InSync {
                    version: *version,
                    members: members.clone(),
                };
                self.in_sync_received(link, sender, set, now);
            }
            Body::InSyncAck { version } if known => self.in_sync_acked(sender, *version),
            _ => {}
        }
        if matches!(message.body, Body::Pong(_)) {
            if matches!(link, Link::To(_)) {
                // An answer to this node's oldest unanswered ping on its own
                // link (a node answers only there; its own pongs come on the
                // link it opened): the sender heard this node then (L3).
                if let Some(node) = self.nodes.get_mut(&sender) {
                    if let Some(sent) = node.pings_out.pop_front() {
                        node.heard_us = node.heard_us.max(sent);
                    }
                }
            }
            self.pong_from(sender, now);
        }
        if reply {
            let body = Body::Pong(self.gossip_for(Some(sender), now));
            let header = self.header_for(sender, message.header.your_claim_digest);
            self.outputs
                .push(Output::Send(link, Message { header, body }));
        }
        if let Some((id, met)) = joined {
            self.announce(id, met, now);
        }
        self.update_state();
    }

    // ----- Operator commands -----

    /// `CLUSTER MEET ip port [cport]`.
    pub fn meet(&mut self, addr: Addr, now: Millis) {
        let known = self.nodes.values().any(|n| n.addr == addr);
        if !known {
            self.start_handshake(addr, true, now);
        }
    }

    /// `CLUSTER FORGET id`.
    pub fn forget(&mut self, id: Id, now: Millis) -> Result<(), AdminError> {
        if id == self.myself {
            return Err(AdminError::ForgetMyself);
        }
        if !self.nodes.contains_key(&id) {
            return Err(AdminError::UnknownNode(id.to_string()));
        }
        if !self.me().is_master() && self.me().master == Some(id) {
            return Err(AdminError::ForgetMyMaster);
        }
        self.remove_node(id);
        self.banned.push((id, now + FORGET_BAN));
        self.update_state();
        Ok(())
    }

    /// `CLUSTER ADDSLOTS`: claims unassigned `slots` at this node's config epoch.
    pub fn add_slots(&mut self, slots: &SlotSet) -> Result<(), AdminError> {
        if !self.me().is_master() {
            return Err(AdminError::AddSlotsOnReplica);
        }
        if let Some(busy) = slots.iter().find(|&s| self.owners[s as usize].is_some()) {
            return Err(AdminError::SlotBusy(busy));
        }
        for slot in slots.iter() {
            self.assign(slot, self.myself);
        }
        self.claim_changed();
        Ok(())
    }

    /// `CLUSTER DELSLOTS`: unassigns `slots` in this node's table.
    pub fn del_slots(&mut self, slots: &SlotSet) -> Result<(), AdminError> {
        if let Some(free) = slots.iter().find(|&s| self.owners[s as usize].is_none()) {
            return Err(AdminError::SlotUnassigned(free));
        }
        for slot in slots.iter() {
            self.unassign(slot);
        }
        self.claim_changed();
        Ok(())
    }

    /// `CLUSTER FLUSHSLOTS`: unassigns this node's slots.
    pub fn flush_slots(&mut self) {
        let mine = self.me().slots.clone();
        for slot in mine.iter() {
            self.unassign(slot);
        }
        self.claim_changed();
    }

    /// `CLUSTER SET-CONFIG-EPOCH epoch`.
    pub fn set_config_epoch(&mut self, epoch: u64) -> Result<(), AdminError> {
        if self.nodes.len() > 1 {
            return Err(AdminError::EpochWithPeers);
        }
        if self.me().config_epoch != 0 {
            return Err(AdminError::EpochSet);
        }
        self.me_mut().config_epoch = epoch;
        self.current_epoch = self.current_epoch.max(epoch);
        self.claim_changed();
        Ok(())
    }

    /// `CLUSTER BUMPEPOCH`: a new config epoch unless this node's is already
    /// the single highest. Returns whether it bumped, and the epoch.
    pub fn bump_epoch(&mut self) -> (bool, u64) {
        let mine = self.me().config_epoch;
        let highest = self
            .nodes
            .values()
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0);
        let shared = self
            .nodes
            .values()
            .filter(|n| n.config_epoch == mine)
            .count()
            > 1;
        if mine == 0 || mine != highest || shared {
            self.current_epoch += 1;
            self.me_mut().config_epoch = self.current_epoch;
            self.claim_changed();
            (true, self.current_epoch)
        } else {
            (false, mine)
        }
    }

    /// `CLUSTER RING ASSIGN` (rule 19): plans every unassigned slot on the
    /// ring of the known masters' shard ids and asks each planned owner to
    /// claim its share. Returns how many slots were planned.
    pub fn ring_assign(&mut self, now: Millis) -> usize {
        let masters: Vec<&Node> = self
            .nodes()
            .filter(|n| n.is_master() && !n.in_handshake() && !n.failing())
            .collect();
        let shards: BTreeMap<String, Id> = masters
            .iter()
            .map(|n| (n.shard.to_string(), n.id))
            .collect();
        let names: Vec<&String> = shards.keys().collect();
        let ring = Ring::build(&names, 0, &RingConfig::default());
        let mut plans: BTreeMap<Id, SlotSet> = BTreeMap::new();
        let mut planned = 0;
        for slot in 0..SLOTS as u16 {
            if self.owners[slot as usize].is_some() {
                continue;
            }
            if let Some(&id) = ring.owner(slot).and_then(|shard| shards.get(shard)) {
                plans.entry(id).or_default().insert(slot);
                planned += 1;
            }
        }
        // Each planned owner gets its own new config epoch, as redis-cli's
        // SET-CONFIG-EPOCH gives each master its own: masters that claim at
        // once would otherwise share one and spend rounds on collisions.
        let base = self.current_epoch + 1;
        self.current_epoch += plans.len() as u64;
        self.save = true;
        let mut asks = BTreeMap::new();
        for (k, (id, slots)) in plans.into_iter().enumerate() {
            let epoch = base + k as u64;
            if id == self.myself {
                self.add_slots_asked(&slots, epoch, now);
            } else {
                asks.insert(id, (epoch, slots));
            }
        }
        self.assigning = Some(Assigning {
            asks,
            until: now + ASSIGN_FOR,
        });
        self.ask_for_slots(now);
        planned
    }

    /// Sends each planned owner of a `RING ASSIGN` the slots it was asked to
    /// claim and that are still unassigned here: an `AddSlots` lost with its
    /// link is sent again, until every slot is claimed or the plan expires.
    fn ask_for_slots(&mut self, now: Millis) {
        let Some(mut plan) = self.assigning.take() else {
            return;
        };
        // A planned owner that turned out to be a replica (the planner had
        // not heard of its `CLUSTER REPLICATE`) ignores the request: its share
        // goes to its master, under the master's planned epoch if it has one.
        let replicas: Vec<(Id, Id)> = plan
            .asks
            .keys()
            .filter_map(|id| {
                let n = self.nodes.get(id)?;
                n.master.filter(|_| !n.is_master()).map(|m| (*id, m))
            })
            .collect();
        for (replica, master) in replicas {
            let Some((epoch, slots)) = plan.asks.remove(&replica) else {
                continue;
            };
            if master == self.myself {
                self.add_slots_asked(&slots, epoch, now);
                continue;
            }
            let entry = plan
                .asks
                .entry(master)
                .or_insert((epoch, SlotSet::default()));
            for (word, add) in entry.1 .0.iter_mut().zip(slots.0) {
                *word |= add;
            }
        }
        plan.asks.retain(|_, (_, slots)| {
            let free: SlotSet = slots
                .iter()
                .filter(|&s| self.owners[s as usize].is_none())
                .collect();
            *slots = free;
            !slots.is_empty()
        });
        for (&id, (epoch, slots)) in &plan.asks {
            let linked = self.nodes.get(&id).is_some_and(|n| n.link == LinkState::Up);
            if linked {
                let body = Body::AddSlots {
                    epoch: *epoch,
                    slots: Box::new(slots.clone()),
                };
                self.send(id, body, now);
            }
        }
        if !plan.asks.is_empty() && now < plan.until {
            self.assigning = Some(plan);
        }
    }

    /// `CLUSTER RESET [HARD|SOFT]`: forgets every other node and every slot
    /// assignment; a hard reset also takes a new id and sets the epochs to 0.
    pub fn reset(&mut self, hard: bool, now: Millis) {
        let others: Vec<Id> = self
            .nodes
            .keys()
            .copied()
            .filter(|&id| id != self.myself)
            .collect();
        for id in others {
            self.remove_node(id);
        }
        for slot in 0..SLOTS as u16 {
            self.unassign(slot);
        }
        self.banned.clear();
        self.assigning = None;
        self.election = failover::Election::default();
        self.reset_manual();
        self.proposal = in_sync::Proposal::default();
        let shard = Id::random(&mut self.rng);
        let me = self.me_mut();
        if me.master.is_some() {
            // A replica leaves its master's shard to lead one of its own.
            me.shard = shard;
        }
        me.flags = Flags(Flags::MASTER | (me.flags.0 & Flags::NOFAILOVER));
        me.master = None;
        me.in_sync = None;
        if hard {
            let mut me = self
                .nodes
                .remove(&self.myself)
                .expect("myself is always known");
            me.id = Id::random(&mut self.rng);
            me.shard = Id::random(&mut self.rng);
            me.config_epoch = 0;
            me.created = now;
            self.myself = me.id;
            self.nodes.insert(me.id, me);
            self.current_epoch = 0;
            self.last_vote_epoch = 0;
        }
        self.state_dirty = true;
        self.claim_changed();
        self.update_state();
    }

    /// `CLUSTER COUNT-FAILURE-REPORTS id`: the masters whose report that `id`
    /// is failing is still valid.
    pub fn failure_reports(&self, id: Id, now: Millis) -> Option<usize> {
        let validity = self.settings.node_timeout * 2;
        self.nodes.get(&id).map(|n| {
            n.fail_reports
                .iter()
                .filter(|&&(_, at)| now.saturating_sub(at) <= validity)
                .count()
        })
    }

    /// `PUBLISH`: sends the message to every node.
    pub fn publish(&mut self, channel: &[u8], message: &[u8], now: Millis) {
        let peers: Vec<Id> = self.linked_peers();
        for id in peers {
            let body = Body::Publish {
                channel: channel.to_vec(),
                message: message.to_vec(),
            };
            self.send(id, body, now);
        }
    }

    /// `SPUBLISH`: sends the message to the other nodes of this node's shard.
    pub fn publish_shard(&mut self, channel: &[u8], message: &[u8], now: Millis) {
        let shard = self.me().shard;
        let peers: Vec<Id> = self
            .linked_peers()
            .into_iter()
            .filter(|id| self.nodes[id].shard == shard)
            .collect();
        for id in peers {
            let body = Body::PublishShard {
                channel: channel.to_vec(),
                message: message.to_vec(),
            };
            self.send(id, body, now);
        }
    }

    // ----- Rules -----

    fn start_handshake(&mut self, addr: Addr, meet: bool, now: Millis) {
        if !self.handshakes.insert(addr) {
            return;
        }
        let id = Id::random(&mut self.rng);
        let mut node = Node::new(id, addr, Flags::HANDSHAKE | Flags::MASTER, now);
        node.meet = meet;
        self.nodes.insert(id, node);
    }

    fn rename(&mut self, temp: Id, real: Id) {
        let Some(mut node) = self.nodes.remove(&temp) else {
            return;
        };
        self.handshakes.remove(&node.addr);
        node.id = real;
        node.flags.set(Flags::HANDSHAKE, false);
        self.nodes.insert(real, node);
        self.outputs.push(Output::Rename {
            from: temp,
            to: real,
        });
        self.save = true;
    }

    fn remove_node(&mut self, id: Id) {
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        self.outputs.push(Output::Disconnect(id));
        if node.in_handshake() {
            // Not saved, owning nothing, reporting nothing: only its address
            // is kept, to start no second handshake with it.
            self.handshakes.remove(&node.addr);
            return;
        }
        if node.owned > 0 {
            for slot in 0..SLOTS as u16 {
                if self.owners[slot as usize] == Some(id) {
                    self.set_owner(slot, None);
                }
            }
            self.table_changed();
        }
        for node in self.nodes.values_mut() {
            node.fail_reports.retain(|&(by, _)| by != id);
        }
        self.save = true;
    }

    /// Closes this node's links to `peer` (every peer for `None`), so they
    /// open again at the next tick, each starting with a ping. For the end of
    /// a `DEBUG CLUSTER-BUS-DROP`: the frames it threw away on a live link
    /// are lost for good, and a link whose ping was lost would wait for an
    /// answer that never comes, while the peer's own pings keep it looking
    /// alive (rule 7), so a `fail` flag that only its pong clears (rule 13)
    /// would stay.
    pub fn reset_links(&mut self, peer: Option<Id>, now: Millis) {
        for id in self.linked_peers() {
            if peer.is_none_or(|peer| peer == id) {
                self.drop_link(id, now);
            }
        }
    }

    fn drop_link(&mut self, id: Id, now: Millis) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.link = LinkState::Down(now);
            node.pings_out.clear();
        }
        self.outputs.push(Output::Disconnect(id));
    }

    fn linked_peers(&self) -> Vec<Id> {
        self.nodes
            .values()
            .filter(|n| n.id != self.myself && n.link == LinkState::Up && !n.in_handshake())
            .map(|n| n.id)
            .collect()
    }

    fn ping(&mut self, id: Id, now: Millis) {
        let meet = self.nodes.get(&id).is_some_and(|n| n.meet);
        let body = if meet {
            Body::Meet(Vec::new())
        } else {
            Body::Ping(Vec::new())
        };
        self.send(id, body, now);
        if let Some(node) = self.nodes.get_mut(&id) {
            node.ping_sent.get_or_insert(now);
        }
    }

    /// Rule 6: once a second, the node with the oldest answer among five.
    fn ping_oldest_of_five(&mut self, now: Millis) {
        let candidates: Vec<Id> = self
            .nodes
            .values()
            .filter(|n| {
                n.id != self.myself
                    && n.link == LinkState::Up
                    && n.ping_sent.is_none()
                    && !n.in_handshake()
            })
            .map(|n| n.id)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let mut oldest: Option<Id> = None;
        for _ in 0..5 {
            let id = candidates[self.rng.random_range(0..candidates.len())];
            if oldest.is_none_or(|o| self.nodes[&id].pong_recv < self.nodes[&o].pong_recv) {
                oldest = Some(id);
            }
        }
        if let Some(id) = oldest {
            self.ping(id, now);
        }
    }

    /// Sends `body` to `id` on this node's link to it (if open).
    fn send(&mut self, id: Id, body: Body, now: Millis) {
        // An empty gossip section is filled here; a full one is sent as given.
        let body = match body {
            Body::Meet(g) if g.is_empty() => Body::Meet(self.gossip_for(Some(id), now)),
            Body::Ping(g) if g.is_empty() => Body::Ping(self.gossip_for(Some(id), now)),
            Body::Pong(g) if g.is_empty() => Body::Pong(self.gossip_for(Some(id), now)),
            other => other,
        };
        if matches!(body, Body::Meet(_) | Body::Ping(_)) {
            // Its answer will tell when the node last heard this one (L3).
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            if node.link == LinkState::Up {
                if node.pings_out.len() >= MAX_PINGS_OUT {
                    // So many unanswered: the link is stuck; a new one starts
                    // the count afresh.
                    self.drop_link(id, now);
                    return;
                }
                node.pings_out.push_back(now);
            }
        }
        let current = self.my_digest;
        let header = self.header_for(id, current);
        self.outputs
            .push(Output::Send(Link::To(id), Message { header, body }));
    }

    /// The header of a message to `to`, which holds `their_copy` as our claim's
    /// digest: the full claim rides along when that copy is stale.
    fn header_for(&mut self, to: Id, their_copy: u64) -> Header {
        let digest = self.my_digest;
        let needs = self
            .nodes
            .get(&to)
            .is_none_or(|n| n.needs_claim || their_copy != digest);
        let me = &self.nodes[&self.myself];
        let header = Header {
            sender: self.myself,
            shard: me.shard,
            flags: Flags(
                me.flags.0 & (Flags::MASTER | Flags::REPLICA | Flags::NOFAILOVER | Flags::DRAINING),
            ),
            master: me.master,
            port: me.addr.port,
            cport: me.addr.cport,
            current_epoch: self.current_epoch,
            config_epoch: me.config_epoch,
            claim_digest: digest,
            your_claim_digest: self.nodes.get(&to).map_or(0, Node::digest),
            offset: self.repl_offset,
            knows_you: self.nodes.get(&to).is_some_and(|n| !n.in_handshake()),
            paused: self.paused_now(),
            claim: needs.then(|| me.claim.clone()),
        };
        if needs {
            if let Some(node) = self.nodes.get_mut(&to) {
                node.needs_claim = false;
            }
        }
        header
    }

    /// Gossip entries for a message to `to`: a few random nodes and every
    /// failing one.
    fn gossip_for(&mut self, to: Option<Id>, now: Millis) -> Vec<Gossip> {
        let usable = |id: &Id| Some(*id) != to && self.nodes.contains_key(id);
        let mut chosen: Vec<Id> = self.pools.failing.iter().copied().filter(usable).collect();
        // Nodes learned of lately spread in every message: a join reaches
        // everyone in about one ping period rather than by chance.
        let fresh = &self.pools.fresh;
        let first = if fresh.len() > GOSSIP_FRESH {
            self.rng.random_range(0..fresh.len())
        } else {
            0
        };
        for k in 0..fresh.len().min(GOSSIP_FRESH) {
            let id = fresh[(first + k) % fresh.len()];
            if usable(&id) && !chosen.contains(&id) {
                chosen.push(id);
            }
        }
        let failing = chosen.len();
        let pool = &self.pools.gossip;
        for _ in 0..GOSSIP_RANDOM * 3 {
            if chosen.len() - failing >= GOSSIP_RANDOM || pool.is_empty() {
                break;
            }
            let id = pool[self.rng.random_range(0..pool.len())];
            if usable(&id) && !chosen.contains(&id) {
                chosen.push(id);
            }
        }
        chosen
            .into_iter()
            .map(|id| self.gossip_entry(id, now))
            .collect()
    }

    /// What gossip says of known node `id`.
    fn gossip_entry(&self, id: Id, now: Millis) -> Gossip {
        let n = &self.nodes[&id];
        Gossip {
            id,
            shard: n.shard,
            addr: n.addr,
            flags: n.flags,
            pong_age: now.saturating_sub(n.pong_recv).min(u32::MAX as u64) as u32,
        }
    }

    /// A handshake with `new` completed (rule 1): every linked node hears of
    /// it at once, and a node this one met by `CLUSTER MEET` hears of every
    /// node, so a join spreads in one exchange rather than by chance.
    fn announce(&mut self, new: Id, met: bool, now: Millis) {
        let entry = self.gossip_entry(new, now);
        for peer in self.linked_peers() {
            if peer == new {
                continue;
            }
            let mut gossip = self.gossip_for(Some(peer), now);
            if !gossip.iter().any(|g| g.id == new) {
                gossip.push(entry.clone());
            }
            self.send(peer, Body::Pong(gossip), now);
        }
        if met {
            let everyone: Vec<Gossip> = self
                .pools
                .gossip
                .iter()
                .filter(|&&id| id != new && self.nodes.contains_key(&id))
                .map(|&id| self.gossip_entry(id, now))
                .collect();
            self.send(new, Body::Pong(everyone), now);
        }
    }

    /// Rules 3 and 14 to 17 for a message from a known node.
    fn process_header(&mut self, header: &Header, replying: bool, now: Millis) {
        let sender = header.sender;
        let epoch = header.current_epoch.max(header.config_epoch);
        if epoch > self.current_epoch {
            self.current_epoch = epoch;
            self.save = true;
        }
        let my_digest = self.my_digest;
        let Some(node) = self.nodes.get_mut(&sender) else {
            return;
        };
        node.meet = !header.knows_you;
        // Flags a node sets on itself, learnt from what it says.
        for bit in [Flags::NOFAILOVER, Flags::DRAINING] {
            let on = header.flags.has(bit);
            if node.flags.has(bit) != on {
                node.flags.set(bit, on);
                self.save = true;
            }
        }
        if header.your_claim_digest != my_digest {
            node.needs_claim = true;
        }
        if self.role_from_header(header) {
            self.save = true;
        }
        self.manual_header(header, now);
        let node = &self.nodes[&sender];
        let stale_copy = header.claim.is_none() && header.claim_digest != node.digest();
        match &header.claim {
            Some(claim) if header.flags.has(Flags::MASTER) => {
                self.apply_claim(sender, header.config_epoch, claim, now);
                self.release_unclaimed(sender, claim);
            }
            Some(claim) => {
                // A replica claims nothing in the table; its copy is kept
                // so that digests agree.
                if let Some(node) = self.nodes.get_mut(&sender) {
                    *node.claim = (**claim).clone();
                    node.config_epoch = node.config_epoch.max(header.config_epoch);
                }
            }
            None => {}
        }
        // Either side holding a stale copy asks the other at once, so claims
        // spread in one exchange rather than at the next ping.
        let needs = self.nodes.get(&sender).is_some_and(|n| n.needs_claim);
        let linked = self
            .nodes
            .get(&sender)
            .is_some_and(|n| n.link == LinkState::Up);
        if (stale_copy || needs) && !replying && linked {
            self.send(sender, Body::Pong(Vec::new()), now);
        }
        self.check_epoch_collision(sender, header);
    }

    /// Rules 15 and 16: `claimer` claims `slots` at `config_epoch`.
    fn apply_claim(&mut self, claimer: Id, config_epoch: u64, slots: &SlotSet, now: Millis) {
        // Whether durable state (its config epoch, the table) changes: a claim
        // already known needs no save (a large cluster repeats them often).
        let mut changed = match self.nodes.get_mut(&claimer) {
            // A claim older than one already applied arrived late: ignore it.
            Some(node) if node.config_epoch > config_epoch => return,
            Some(node) => {
                *node.claim = slots.clone();
                std::mem::replace(&mut node.config_epoch, config_epoch) != config_epoch
            }
            None => return,
        };
        let mut lost = SlotSet::default();
        let mut newer_owner: Option<Id> = None;
        // The master this node serves for (itself, or its master): F6.
        let me = self.me();
        let shard_master = if me.is_master() {
            Some(self.myself)
        } else {
            me.master
        };
        let mut migrated = 0;
        for slot in slots.iter() {
            match self.owners[slot as usize] {
                Some(owner) if owner == claimer => {}
                Some(owner) => {
                    let owner_epoch = self.nodes[&owner].config_epoch;
                    if owner_epoch < config_epoch {
                        if owner == self.myself {
                            lost.insert(slot);
                            self.migrated_away(slot, claimer);
                        }
                        if Some(owner) == shard_master {
                            migrated += 1;
                        }
                        self.assign(slot, claimer);
                        changed = true;
                    } else if owner_epoch > config_epoch {
                        newer_owner = Some(owner);
                    }
                }
                None => {
                    self.assign(slot, claimer);
                    changed = true;
                }
            }
        }
        if let Some(owner) = newer_owner {
            let o = &self.nodes[&owner];
            let body = Body::Update {
                node: owner,
                config_epoch: o.config_epoch,
                slots: o.slots.clone(),
            };
            self.send(claimer, body, now);
        }
        // F6: a node that becomes a replica keeps its keys for now: the data
        // plane's full sync from the new master replaces them all, and
        // deleting them meanwhile would only race with it.
        let followed = self.follow_if_emptied(claimer, migrated, slots.len(), now);
        if !lost.is_empty() && !followed {
            self.claim_changed();
            self.outputs.push(Output::SlotsLost(Box::new(lost)));
        }
        if changed {
            self.save = true;
        }
    }

    /// Rule 17: of two masters with one config epoch, the smaller id moves on.
    fn check_epoch_collision(&mut self, sender: Id, header: &Header) {
        let me = self.me();
        // Only claims are ordered by config epochs: masters without slots may
        // share one (unlike Redis, which makes every new master of a cluster
        // bump in turn, a cascade that costs a large cluster minutes of claims).
        let sender_claims = self.nodes.get(&sender).is_some_and(|n| !n.claim.is_empty());
        if !me.is_master()
            || !header.flags.has(Flags::MASTER)
            || header.config_epoch != me.config_epoch
            || sender < self.myself
            || me.claim.is_empty()
            || !sender_claims
            // A handoff in flight holds this master's epoch (M10); the
            // collision is settled once it is over.
            || self.handoffs > 0
        {
            return;
        }
        self.current_epoch += 1;
        self.me_mut().config_epoch = self.current_epoch;
        self.claim_changed();
    }

    /// Rules 4, 5, 9 and 10.
    fn process_gossip(&mut self, sender: Id, known: bool, gossip: &[Gossip], now: Millis) {
        let reporter = known && self.nodes.get(&sender).is_some_and(Node::is_master);
        for entry in gossip {
            if entry.id == self.myself {
                continue;
            }
            match self.nodes.get_mut(&entry.id) {
                Some(node) if !node.in_handshake() => {
                    if reporter {
                        node.fail_reports.retain(|&(by, _)| by != sender);
                        if entry.flags.any(Flags::PFAIL | Flags::FAIL) {
                            node.fail_reports.push((sender, now));
                        }
                    }
                    let heard = now.saturating_sub(u64::from(entry.pong_age));
                    if !entry.flags.any(Flags::PFAIL | Flags::FAIL)
                        && node.ping_sent.is_none()
                        && node.fail_reports.is_empty()
                        && heard > node.pong_recv
                    {
                        node.pong_recv = heard;
                    }
                    if node.link != LinkState::Up
                        && node.addr != entry.addr
                        && !entry.flags.has(Flags::NOADDR)
                    {
                        node.addr = entry.addr;
                        node.flags.set(Flags::NOADDR, false);
                        self.save = true;
                    }
                    if reporter && entry.flags.any(Flags::PFAIL | Flags::FAIL) {
                        self.mark_failing_if_needed(entry.id, now);
                    }
                }
                Some(_) => {}
                None => {
                    let banned = self.banned.iter().any(|&(id, _)| id == entry.id);
                    if known && !banned && !entry.flags.has(Flags::NOADDR) {
                        self.start_handshake(entry.addr, false, now);
                    }
                }
            }
        }
    }

    /// Rule 11.
    fn mark_failing_if_needed(&mut self, id: Id, now: Millis) {
        let validity = self.settings.node_timeout * 2;
        let quorum = self.size() / 2 + 1;
        let me_master = self.me().is_master();
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.fail_reports
            .retain(|&(_, at)| now.saturating_sub(at) <= validity);
        if !node.flags.has(Flags::PFAIL) || node.flags.has(Flags::FAIL) {
            return;
        }
        let failures = node.fail_reports.len() + usize::from(me_master);
        if failures < quorum {
            return;
        }
        node.flags.set(Flags::PFAIL, false);
        node.flags.set(Flags::FAIL, true);
        node.fail_time = now;
        self.save = true;
        self.state_dirty = true;
        tracing::warn!(node = %id, "marking node as failing (quorum reached)");
        for peer in self.linked_peers() {
            self.send(peer, Body::Fail(id), now);
        }
    }

    /// Rule 12.
    fn fail_reported(&mut self, id: Id, now: Millis) {
        if id == self.myself {
            return;
        }
        if let Some(node) = self.nodes.get_mut(&id) {
            if !node.flags.has(Flags::FAIL) && !node.in_handshake() {
                node.flags.set(Flags::PFAIL, false);
                node.flags.set(Flags::FAIL, true);
                node.fail_time = now;
                self.save = true;
                self.state_dirty = true;
            }
        }
    }

    /// Rules 8 and 13: a pong clears suspicion, and `fail` when allowed.
    fn pong_from(&mut self, id: Id, now: Millis) {
        let timeout = self.settings.node_timeout;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.pong_recv = now;
        node.ping_sent = None;
        if node.flags.has(Flags::PFAIL) {
            node.flags.set(Flags::PFAIL, false);
            self.state_dirty = true;
        }
        let node = &self.nodes[&id];
        if node.flags.has(Flags::FAIL) {
            let failed_for = now.saturating_sub(node.fail_time);
            let undo = !node.is_master() || node.slots.is_empty() || failed_for > 2 * timeout;
            // Waiting lets a replica take over; with none, nobody will.
            let undo = undo || !self.nodes.values().any(|n| n.master == Some(id));
            if undo {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.flags.set(Flags::FAIL, false);
                }
                self.save = true;
                self.state_dirty = true;
            }
        }
    }

    /// Rule 15b: a master's own claim is its whole set. A slot this table
    /// gives `claimer` that its claim (applied, so not older than what this
    /// node knew) leaves out was given away: it is no longer `claimer`'s, so
    /// the claim of whoever took it wins whatever `claimer`'s later config
    /// epochs (M10: a source that handed a slot off and later took a higher
    /// epoch must not keep it here).
    fn release_unclaimed(&mut self, claimer: Id, claim: &SlotSet) {
        let current = self.nodes.get(&claimer).map(|n| (*n.claim).clone());
        if current.as_ref() != Some(claim) {
            // The claim was older than one applied already: nothing to learn.
            return;
        }
        let released: Vec<u16> = self
            .nodes
            .get(&claimer)
            .map(|n| n.slots.iter().filter(|&s| !claim.contains(s)).collect())
            .unwrap_or_default();
        for slot in released {
            self.unassign(slot);
            self.save = true;
        }
    }

    fn update_received(&mut self, id: Id, config_epoch: u64, slots: &SlotSet, now: Millis) {
        let newer = self
            .nodes
            .get(&id)
            .is_some_and(|n| n.config_epoch < config_epoch);
        if newer {
            self.apply_claim(id, config_epoch, slots, now);
        }
    }

    /// Another node's `CLUSTER RING ASSIGN` asks this one to claim `slots`
    /// under config epoch `epoch`.
    fn add_slots_asked(&mut self, slots: &SlotSet, epoch: u64, now: Millis) {
        if !self.me().is_master() {
            // The planner did not know yet: once it does, it asks this
            // node's master instead.
            return;
        }
        let free: SlotSet = slots
            .iter()
            .filter(|&s| self.owners[s as usize].is_none())
            .collect();
        if free.is_empty() {
            return;
        }
        // The epoch the planner reserved for this node, unique among the
        // masters it planned for, even if other planned epochs were seen since;
        // a fresh one only if this node's own epoch already passed it.
        let epoch = if epoch > self.me().config_epoch {
            epoch
        } else {
            self.current_epoch + 1
        };
        self.current_epoch = self.current_epoch.max(epoch);
        self.me_mut().config_epoch = epoch;
        for slot in free.iter() {
            self.assign(slot, self.myself);
        }
        self.claim_changed();
        self.broadcast_pong(now);
    }

    fn assign(&mut self, slot: u16, owner: Id) {
        if let Some(old) = self.owners[slot as usize] {
            if let Some(node) = self.nodes.get_mut(&old) {
                node.slots.remove(slot);
            }
        }
        self.set_owner(slot, Some(owner));
        if let Some(node) = self.nodes.get_mut(&owner) {
            node.slots.insert(slot);
        }
        self.table_changed();
    }

    fn unassign(&mut self, slot: u16) {
        if let Some(old) = self.owners[slot as usize] {
            if let Some(node) = self.nodes.get_mut(&old) {
                node.slots.remove(slot);
            }
        }
        self.set_owner(slot, None);
        self.table_changed();
    }

    /// Sets `slot`'s owner in the table, keeping its digest and counts.
    fn set_owner(&mut self, slot: u16, owner: Option<Id>) {
        let old = std::mem::replace(&mut self.owners[slot as usize], owner);
        self.table_digest ^= slot_digest(slot, old) ^ slot_digest(slot, owner);
        self.assigned = self.assigned + usize::from(owner.is_some()) - usize::from(old.is_some());
        if let Some(node) = old.and_then(|id| self.nodes.get_mut(&id)) {
            node.owned -= 1;
        }
        if let Some(node) = owner.and_then(|id| self.nodes.get_mut(&id)) {
            node.owned += 1;
        }
    }

    fn table_changed(&mut self) {
        self.table_version += 1;
        self.state_dirty = true;
    }

    /// This node's claim or config epoch changed: save, and every node needs
    /// the new claim.
    fn claim_changed(&mut self) {
        let me = self.me_mut();
        me.claim = me.slots.clone();
        self.my_digest = self.me().digest();
        self.save = true;
        for node in self.nodes.values_mut() {
            node.needs_claim = true;
        }
    }

    fn broadcast_pong(&mut self, now: Millis) {
        for peer in self.linked_peers() {
            self.send(peer, Body::Pong(Vec::new()), now);
        }
    }

    /// Rule 20, recomputed when something it depends on changed.
    fn update_state(&mut self) {
        if !std::mem::take(&mut self.state_dirty) {
            return;
        }
        let timeout = self.settings.node_timeout;
        let now = self.now;
        // Every slot assigned, to a node not `fail`: counted, not looked up
        // slot by slot (a large cluster recomputes this on every claim).
        let full = !self.settings.require_full_coverage
            || (self.assigned == SLOTS
                && self
                    .nodes
                    .values()
                    .all(|n| n.owned == 0 || !n.flags.has(Flags::FAIL)));
        let mut size = 0;
        let mut reachable = 0;
        for node in self.nodes.values() {
            if node.is_master() && node.owned > 0 {
                size += 1;
                // Rule 20: silent for `T` with a ping unanswered counts as
                // unreachable here before it is suspected, so a master cut off
                // from the majority stops taking writes within `T`.
                let silent = node.id != self.myself
                    && node.ping_sent.is_some()
                    && now.saturating_sub(node.pong_recv) > timeout
                    && now.saturating_sub(node.data_recv) > timeout / 2;
                if !node.failing() && !silent {
                    reachable += 1;
                }
            }
        }
        let quorum = size / 2 + 1;
        self.state_ok = full && reachable >= quorum;
    }
}

/// One slot's share of the table digest: an XOR of these over the slots is
/// order-free, so a change of owner updates it in O(1).
fn slot_digest(slot: u16, owner: Option<Id>) -> u64 {
    let Some(Id(bytes)) = owner else {
        return 0;
    };
    let word = |range: std::ops::Range<usize>| {
        bytes[range]
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b))
    };
    // splitmix64's finaliser over the id's words and the slot.
    let mut x = word(0..8) ^ word(8..16).rotate_left(21) ^ word(16..20).rotate_left(42);
    x ^= u64::from(slot).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A node alone at 127.0.0.1:7000 (bus port 17000), node timeout 2 s, for
/// the tests of what builds on the machine.
#[cfg(test)]
pub(crate) fn lone_node(seed: u64) -> Cluster {
    let settings = Settings {
        node_timeout: 2000,
        ..Settings::DEFAULT
    };
    let addr = Addr {
        ip: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 7000,
        cport: 17000,
    };
    Cluster::new(settings, addr, seed, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const SETTINGS: Settings = Settings {
        node_timeout: 1_000,
        ..Settings::DEFAULT
    };
    const ADDR: Addr = Addr {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 7000,
        cport: 17000,
    };

    #[test]
    fn the_table_digest_follows_the_table_and_survives_a_restore() {
        let mut c = Cluster::new(SETTINGS, ADDR, 1, 0);
        assert_eq!(c.table_digest(), 0);
        let hundred: SlotSet = (0..100).collect();
        c.add_slots(&hundred).expect("free");
        let with = c.table_digest();
        assert_ne!(with, 0);
        let restored = Cluster::restore(SETTINGS, &c.durable(), ADDR, 2, 0).expect("restores");
        assert_eq!(restored.table_digest(), with);
        let ten: SlotSet = (0..10).collect();
        c.del_slots(&ten).expect("assigned");
        assert_ne!(c.table_digest(), with);
        c.add_slots(&ten).expect("free");
        assert_eq!(c.table_digest(), with);
        c.flush_slots();
        assert_eq!(c.table_digest(), 0);
    }

    #[test]
    fn the_cluster_is_ok_only_with_every_slot_assigned() {
        let mut c = Cluster::new(SETTINGS, ADDR, 1, 0);
        let all: SlotSet = (0..SLOTS as u16).collect();
        c.add_slots(&all).expect("free");
        c.tick(100);
        assert!(c.state_ok());
        let last: SlotSet = [SLOTS as u16 - 1].into_iter().collect();
        c.del_slots(&last).expect("assigned");
        c.tick(200);
        assert!(!c.state_ok());
        let restored = Cluster::restore(SETTINGS, &c.durable(), ADDR, 2, 0).expect("restores");
        assert_eq!(restored.table_digest(), c.table_digest());
        c.add_slots(&last).expect("free");
        c.tick(300);
        assert!(c.state_ok());
    }
}
