//! What nodes say to each other on the cluster bus (docs/CLUSTER.md, Messages).

use std::net::IpAddr;

use super::id::Id;
use super::slots::SlotSet;

/// A node's flags, as kept and gossiped (Redis's `CLUSTER NODES` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u16);

impl Flags {
    /// A master.
    pub const MASTER: u16 = 1 << 0;
    /// A replica.
    pub const REPLICA: u16 = 1 << 1;
    /// Suspected by its observer (`fail?`).
    pub const PFAIL: u16 = 1 << 2;
    /// Failed, by a majority of masters (`fail`).
    pub const FAIL: u16 = 1 << 3;
    /// Met, real id not yet known.
    pub const HANDSHAKE: u16 = 1 << 4;
    /// Address unknown.
    pub const NOADDR: u16 = 1 << 5;
    /// A replica that never fails over.
    pub const NOFAILOVER: u16 = 1 << 6;
    /// A master leaving: the ring plans without it, so its slots move to
    /// their ring owners (docs/CLUSTER.md, M13).
    pub const DRAINING: u16 = 1 << 7;
    /// Every bit above: the bus refuses a frame with any other.
    pub const ALL: u16 = Self::MASTER
        | Self::REPLICA
        | Self::PFAIL
        | Self::FAIL
        | Self::HANDSHAKE
        | Self::NOADDR
        | Self::NOFAILOVER
        | Self::DRAINING;

    /// True if every bit of `bits` is set.
    pub fn has(self, bits: u16) -> bool {
        self.0 & bits == bits
    }

    /// True if any bit of `bits` is set.
    pub fn any(self, bits: u16) -> bool {
        self.0 & bits != 0
    }

    /// Sets or clears `bits`.
    pub fn set(&mut self, bits: u16, on: bool) {
        if on {
            self.0 |= bits;
        } else {
            self.0 &= !bits;
        }
    }
}

/// Where a node listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Addr {
    /// Its IP.
    pub ip: IpAddr,
    /// Client port.
    pub port: u16,
    /// Bus port.
    pub cport: u16,
}

/// What every message starts with: who speaks, its epochs and its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The sender's node id.
    pub sender: Id,
    /// The sender's shard id.
    pub shard: Id,
    /// The sender's flags.
    pub flags: Flags,
    /// A replica's master.
    pub master: Option<Id>,
    /// Client port.
    pub port: u16,
    /// Bus port.
    pub cport: u16,
    /// The sender's current epoch.
    pub current_epoch: u64,
    /// The sender's config epoch.
    pub config_epoch: u64,
    /// Digest of the sender's claim (config epoch and slots).
    pub claim_digest: u64,
    /// Digest of the receiver's claim as the sender holds it.
    pub your_claim_digest: u64,
    /// The sender's replication offset: a master's stream offset, a
    /// replica's applied offset (failover ranks replicas by it, F2).
    pub offset: u64,
    /// The sender knows the receiver (not only as a handshake): otherwise the
    /// receiver greets it with `Meet` again.
    pub knows_you: bool,
    /// The sender is a master whose client writes are paused for a manual
    /// failover, and `offset` is final (F7).
    pub paused: bool,
    /// The sender's claimed slots, when the receiver needs them.
    pub claim: Option<Box<SlotSet>>,
}

/// What a message says about another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gossip {
    /// Its id.
    pub id: Id,
    /// Its shard.
    pub shard: Id,
    /// Its address.
    pub addr: Addr,
    /// Its flags as the sender sees them.
    pub flags: Flags,
    /// Milliseconds since the sender last heard it is alive.
    pub pong_age: u32,
}

/// The kinds of message and what each carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Joins a cluster (`CLUSTER MEET`); answered with `Pong`.
    Meet(Vec<Gossip>),
    /// Are you alive? Answered with `Pong`.
    Ping(Vec<Gossip>),
    /// I am alive (an answer, or news of the sender's new claim or epoch).
    Pong(Vec<Gossip>),
    /// This node failed.
    Fail(Id),
    /// Your claim is stale: this node owns those slots with this epoch.
    Update {
        /// The owner.
        node: Id,
        /// Its config epoch.
        config_epoch: u64,
        /// Its claim.
        slots: Box<SlotSet>,
    },
    /// Claim these slots if they are unassigned (`CLUSTER RING ASSIGN`),
    /// under this config epoch.
    AddSlots {
        /// The config epoch planned for the receiver.
        epoch: u64,
        /// The slots.
        slots: Box<SlotSet>,
    },
    /// `PUBLISH` on another node.
    Publish {
        /// The channel.
        channel: Vec<u8>,
        /// The message.
        message: Vec<u8>,
    },
    /// `SPUBLISH` on another node of the shard.
    PublishShard {
        /// The channel.
        channel: Vec<u8>,
        /// The message.
        message: Vec<u8>,
    },
    /// A replica asks for a vote to replace its master (F3); the election's
    /// epoch is the header's current epoch.
    FailoverAuthRequest {
        /// The master's config epoch, as the candidate knows it.
        config_epoch: u64,
        /// The master's slots, as the candidate knows them.
        slots: Box<SlotSet>,
        /// A manual failover's request: granted although the master is not
        /// `fail` (F7).
        manual: bool,
    },
    /// A master's vote for the receiver in the election of this epoch (F4).
    FailoverAuthAck {
        /// The election's epoch.
        epoch: u64,
    },
    /// A replica asks its master to pause writes and send its final offset
    /// (`CLUSTER FAILOVER`, F7).
    MfStart,
    /// The sender's in-sync set of replicas (L2), newest version wins.
    InSync {
        /// Grows with every change of the set.
        version: u64,
        /// The replicas in the set.
        members: Vec<Id>,
    },
    /// The receiver's in-sync set of this version was stored (L2).
    InSyncAck {
        /// The version stored.
        version: u64,
    },
}

impl Body {
    /// The kinds, in [`Body::kind`]'s numbering, by the names `CLUSTER INFO`
    /// counts them under.
    pub const KINDS: [&'static str; 13] = [
        "ping",
        "pong",
        "meet",
        "fail",
        "update",
        "addslots",
        "publish",
        "publishshard",
        "auth-req",
        "auth-ack",
        "mfstart",
        "insync",
        "insync-ack",
    ];

    /// This body's kind, an index into [`Body::KINDS`].
    pub fn kind(&self) -> usize {
        match self {
            Body::Ping(_) => 0,
            Body::Pong(_) => 1,
            Body::Meet(_) => 2,
            Body::Fail(_) => 3,
            Body::Update { .. } => 4,
            Body::AddSlots { .. } => 5,
            Body::Publish { .. } => 6,
            Body::PublishShard { .. } => 7,
            Body::FailoverAuthRequest { .. } => 8,
            Body::FailoverAuthAck { .. } => 9,
            Body::MfStart => 10,
            Body::InSync { .. } => 11,
            Body::InSyncAck { .. } => 12,
        }
    }
}

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who speaks.
    pub header: Header,
    /// What it says.
    pub body: Body,
}

/// The digest of a claim: its config epoch and slots.
pub fn claim_digest(config_epoch: u64, slots: &SlotSet) -> u64 {
    slots.digest() ^ config_epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
