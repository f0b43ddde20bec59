//! Cluster commands: CLUSTER INFO / NODES / SLOTS / SHARDS / MYID / MYSHARDID /
//! KEYSLOT / COUNTKEYSINSLOT / GETKEYSINSLOT / LINKS, and READONLY, READWRITE,
//! ASKING. Replies follow Redis Cluster's formats, so cluster clients
//! (`redis-cli -c`, redis-rs, redis-benchmark --cluster) work unchanged.

use std::sync::Arc;

use super::table::{flag::*, CommandSpec, Handler};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::cluster::{ClusterState, Member};
use crate::keyspace::{key_slot, KeySlots, SLOTS};
use crate::protocol::Reply;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "cluster", summary, handler).since("3.0.0")
}

/// The cluster family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec::container("cluster", "cluster", "3.0.0", "A container for Redis Cluster commands.", &[
        spec("info", 2, STALE, "Returns information about the state of a node.", handler!(Info)),
        spec("nodes", 2, STALE, "Returns the cluster configuration for a node.", handler!(Nodes)),
        spec("slots", 2, STALE, "Returns the mapping of cluster slots to nodes.", handler!(Slots)),
        spec("shards", 2, STALE, "Returns the mapping of cluster slots to shards.", handler!(Shards)),
        spec("myid", 2, STALE, "Returns the ID of a node.", handler!(MyId)),
        spec("myshardid", 2, STALE, "Returns the shard ID of a node.", handler!(MyId)),
        spec("keyslot", 3, STALE, "Returns the hash slot for a key.", handler!(KeySlot<'_>)),
        spec("countkeysinslot", 3, STALE, "Returns the number of keys in a hash slot.", handler!(CountKeys)),
        spec("getkeysinslot", 4, STALE, "Returns the key names in a hash slot.", handler!(GetKeys)),
        spec("links", 2, STALE, "Returns a list of all TCP links to and from peer nodes.", handler!(Links)),
    ]),
    spec("readonly", 1, FAST | LOADING | STALE, "Enables read-only queries for a connection to a Redis Cluster replica node.", handler!(Ok_)),
    spec("readwrite", 1, FAST | LOADING | STALE, "Enables read-write queries for a connection to a Redis Cluster replica node.", handler!(Ok_)),
    spec("asking", 1, FAST, "Signals that a cluster client is following an -ASK redirect.", handler!(Ok_)),
];

/// The cluster, or Redis's error when cluster mode is off.
fn cluster(ctx: &Ctx<'_, '_>) -> Result<Arc<ClusterState>, CommandError> {
    ctx.shared
        .cluster
        .view()
        .and_then(|view| view.clone())
        .ok_or_else(|| CommandError::err("This instance has cluster support disabled"))
}

fn slot_arg(p: &mut Parser<'_>) -> Result<u16, CommandError> {
    match p.next_i64() {
        Ok(n) if (0..SLOTS as i64).contains(&n) => Ok(n as u16),
        _ => Err(CommandError::err("Invalid slot")),
    }
}

/// `READONLY`, `READWRITE`, `ASKING`: accepted (no replicas or migrations yet).
struct Ok_;

impl<'a> Command<'a> for Ok_ {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Ok_)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER INFO`.
struct Info;

impl<'a> Command<'a> for Info {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Info)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let c = cluster(ctx)?;
        let n = c.members().len();
        let text = format!(
            "cluster_state:ok\r\ncluster_slots_assigned:{SLOTS}\r\ncluster_slots_ok:{SLOTS}\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{n}\r\n\
             cluster_size:{n}\r\ncluster_current_epoch:{e}\r\ncluster_my_epoch:{e}\r\n\
             cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n",
            e = c.epoch()
        );
        ctx.out.verbatim(text.as_bytes());
        Ok(())
    }
}

/// `CLUSTER NODES`: one newline-terminated line per node.
struct Nodes;

impl<'a> Command<'a> for Nodes {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Nodes)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let c = cluster(ctx)?;
        let ranges = c.ranges();
        let mut text = String::new();
        for (i, m) in c.members().iter().enumerate() {
            let flags = if m == c.myself() {
                "myself,master"
            } else {
                "master"
            };
            text.push_str(&format!(
                "{} {}:{}@{} {flags} - 0 0 {} connected",
                m.id,
                m.ip,
                m.port,
                bus_port(&c, m),
                c.epoch()
            ));
            for &(first, last, _) in ranges.iter().filter(|r| r.2 == i) {
                if first == last {
                    text.push_str(&format!(" {first}"));
                } else {
                    text.push_str(&format!(" {first}-{last}"));
                }
            }
            text.push('\n');
        }
        ctx.out.verbatim(text.as_bytes());
        Ok(())
    }
}

/// Members other than this node are assumed to use the default bus offset.
fn bus_port(c: &ClusterState, m: &Member) -> u16 {
    if m == c.myself() {
        c.bus_port()
    } else {
        m.port.wrapping_add(10_000)
    }
}

fn node_entry(out: &mut Reply, m: &Member) {
    out.array(3);
    out.bulk(m.ip.as_bytes());
    out.int(i64::from(m.port));
    out.bulk(m.id.as_bytes());
}

/// `CLUSTER SLOTS`: `[first, last, [ip, port, id]]` per range.
struct Slots;

impl<'a> Command<'a> for Slots {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Slots)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let c = cluster(ctx)?;
        let ranges = c.ranges();
        ctx.out.array(ranges.len());
        for (first, last, owner) in ranges {
            ctx.out.array(3);
            ctx.out.int(i64::from(first));
            ctx.out.int(i64::from(last));
            node_entry(ctx.out, &c.members()[owner]);
        }
        Ok(())
    }
}

/// `CLUSTER SHARDS`: per master, its slot ranges and its node.
struct Shards;

impl<'a> Command<'a> for Shards {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Shards)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let c = cluster(ctx)?;
        let ranges = c.ranges();
        ctx.out.array(c.members().len());
        for (i, m) in c.members().iter().enumerate() {
            let mine: Vec<_> = ranges.iter().filter(|r| r.2 == i).collect();
            ctx.out.map(2);
            ctx.out.bulk(b"slots");
            ctx.out.array(mine.len() * 2);
            for r in mine {
                ctx.out.int(i64::from(r.0));
                ctx.out.int(i64::from(r.1));
            }
            ctx.out.bulk(b"nodes");
            ctx.out.array(1);
            ctx.out.map(7);
            for (field, value) in [("id", m.id.as_str()), ("ip", &m.ip), ("endpoint", &m.ip)] {
                ctx.out.bulk(field.as_bytes());
                ctx.out.bulk(value.as_bytes());
            }
            ctx.out.bulk(b"port");
            ctx.out.int(i64::from(m.port));
            ctx.out.bulk(b"role");
            ctx.out.bulk(b"master");
            ctx.out.bulk(b"replication-offset");
            ctx.out.int(0);
            ctx.out.bulk(b"health");
            ctx.out.bulk(b"online");
        }
        Ok(())
    }
}

/// `CLUSTER MYID` (and `MYSHARDID`: each master is its own shard).
struct MyId;

impl<'a> Command<'a> for MyId {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(MyId)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let id = cluster(ctx)?.myself().id.clone();
        ctx.out.bulk(id.as_bytes());
        Ok(())
    }
}

/// `CLUSTER KEYSLOT key`.
struct KeySlot<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for KeySlot<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(KeySlot { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        ctx.out.int(i64::from(key_slot(self.key)));
        Ok(())
    }
}

/// `CLUSTER COUNTKEYSINSLOT slot`.
struct CountKeys(u16);

impl<'a> Command<'a> for CountKeys {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(CountKeys(slot_arg(p)?))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        let n = ctx.shared.data.keyspace.slot_len(self.0);
        ctx.out.int(n as i64);
        Ok(())
    }
}

/// `CLUSTER GETKEYSINSLOT slot count`.
struct GetKeys {
    slot: u16,
    count: usize,
}

impl<'a> Command<'a> for GetKeys {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let slot = slot_arg(p)?;
        let count = usize::try_from(p.next_i64()?)
            .map_err(|_| CommandError::err("Invalid number of keys"))?;
        Ok(GetKeys { slot, count })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        let now = ctx.now;
        let keys: Vec<Vec<u8>> = ctx.locks.with_slot(self.slot, |table| {
            table
                .iter()
                .filter(|(_, entry)| !entry.is_expired(now))
                .take(self.count)
                .map(|(key, _)| key.as_bytes().to_vec())
                .collect()
        });
        ctx.out.array(keys.len());
        for key in keys {
            ctx.out.bulk(&key);
        }
        Ok(())
    }
}

/// `CLUSTER LINKS`: no bus links while membership is static.
struct Links;

impl<'a> Command<'a> for Links {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Links)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        ctx.out.array(0);
        Ok(())
    }
}

/// In cluster mode, where a command may run: all its keys in one slot (and,
/// inside MULTI, the transaction's slot), and that slot this node's. Commands
/// over the whole keyspace run on this node's share. Returns the keys' slot.
pub fn route(
    cluster: &ClusterState,
    command: &super::table::Command,
    keys: &KeySlots<'_>,
    transaction_slot: Option<u16>,
) -> Result<Option<u16>, CommandError> {
    if command.has(ALL_SLOTS) {
        return Ok(None);
    }
    let mut slot = transaction_slot;
    for this in keys.slots() {
        match slot {
            None => slot = Some(this),
            Some(first) if first != this => return Err(CommandError::CrossSlot),
            Some(_) => {}
        }
    }
    match slot {
        Some(slot) if !cluster.is_mine(slot) => {
            let owner = cluster.owner(slot);
            Err(CommandError::Moved {
                slot,
                addr: format!("{}:{}", owner.ip, owner.port),
            })
        }
        slot => Ok(slot),
    }
}
