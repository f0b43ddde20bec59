//! Cluster commands: what the cluster looks like (CLUSTER INFO / NODES / SLOTS /
//! SHARDS / REPLICAS / SLAVES / LINKS / MYID / MYSHARDID / KEYSLOT /
//! COUNTKEYSINSLOT / GETKEYSINSLOT / COUNT-FAILURE-REPORTS), changing it (MEET /
//! FORGET / REPLICATE / FAILOVER / ADDSLOTS[RANGE] / DELSLOTS[RANGE] /
//! FLUSHSLOTS / SET-CONFIG-EPOCH / BUMPEPOCH / RESET / SAVECONFIG, and ringkv's
//! RING ASSIGN), READONLY, READWRITE, ASKING, and where a keyed command may
//! run ([`route`]).
//! Replies and errors follow Redis Cluster's, so `redis-cli --cluster` and
//! cluster clients work unchanged. Changes step the node's cluster machine
//! (`ClusterHandle::step`), which saves the config before the reply.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use super::table::{flag::*, CommandSpec, Handler};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::cluster::id::Id;
use crate::cluster::machine::{AdminError, SetSlot};
use crate::cluster::message::Addr;
use crate::cluster::slots::SlotSet;
use crate::cluster::{ClusterView, ViewNode};
use crate::config::LiveConfig;
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

/// What changes the cluster: admin, allowed on a stale replica and while a
/// replica loads its full sync (which, slot by slot, lasts longer than
/// Redis's RDB load; cluster tools must keep working meanwhile).
const ADMIN_STALE: u32 = ADMIN | STALE | LOADING;
/// What reads the cluster's state, not the keys: allowed while loading too.
const META: u32 = STALE | LOADING;

/// The cluster family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec::container("cluster", "cluster", "3.0.0", "A container for Redis Cluster commands.", &[
        spec("info", 2, META, "Returns information about the state of a node.", handler!(Info)),
        spec("nodes", 2, META, "Returns the cluster configuration for a node.", handler!(Nodes)),
        spec("slots", 2, META, "Returns the mapping of cluster slots to nodes.", handler!(Slots)),
        spec("shards", 2, META, "Returns the mapping of cluster slots to shards.", handler!(Shards)).since("7.0.0"),
        spec("myid", 2, META, "Returns the ID of a node.", handler!(MyId)),
        spec("myshardid", 2, META, "Returns the shard ID of a node.", handler!(MyShardId)).since("7.2.0"),
        spec("keyslot", 3, META, "Returns the hash slot for a key.", handler!(KeySlot<'_>)),
        spec("countkeysinslot", 3, STALE, "Returns the number of keys in a hash slot.", handler!(CountKeys)),
        spec("getkeysinslot", 4, STALE, "Returns the key names in a hash slot.", handler!(GetKeys)),
        spec("links", 2, META, "Returns a list of all TCP links to and from peer nodes.", handler!(Links)).since("7.0.0"),
        spec("replicas", 3, ADMIN_STALE, "Lists the replica nodes of a master node.", handler!(Replicas)).since("5.0.0"),
        spec("slaves", 3, ADMIN_STALE, "Lists the replica nodes of a master node.", handler!(Replicas)),
        spec("replicate", 3, ADMIN_STALE, "Configure a node as replica of a master node.", handler!(Replicate)),
        spec("failover", -2, ADMIN_STALE, "Forces a replica to perform a manual failover of its master.", handler!(Failover)),
        spec("count-failure-reports", 3, ADMIN_STALE, "Returns the number of active failure reports active for a node.", handler!(FailureReports)),
        spec("meet", -4, ADMIN_STALE, "Forces a node to handshake with another node.", handler!(Meet)),
        spec("forget", 3, ADMIN_STALE, "Removes a node from the nodes table.", handler!(Forget)),
        spec("addslots", -3, ADMIN_STALE, "Assigns new hash slots to a node.", handler!(ChangeSlots<true, false>)),
        spec("addslotsrange", -4, ADMIN_STALE, "Assigns new hash slot ranges to a node.", handler!(ChangeSlots<true, true>)).since("7.0.0"),
        spec("delslots", -3, ADMIN_STALE, "Sets hash slots as unbound for a node.", handler!(ChangeSlots<false, false>)),
        spec("delslotsrange", -4, ADMIN_STALE, "Sets hash slot ranges as unbound for a node.", handler!(ChangeSlots<false, true>)).since("7.0.0"),
        spec("flushslots", 2, ADMIN_STALE, "Deletes all slots information from a node.", handler!(FlushSlots)),
        spec("setslot", -4, ADMIN_STALE, "Binds a hash slot to a node.", handler!(SetSlotCmd)),
        spec("set-config-epoch", 3, ADMIN_STALE, "Sets the configuration epoch for a new node.", handler!(SetConfigEpoch)),
        spec("bumpepoch", 2, ADMIN_STALE, "Advances the cluster config epoch.", handler!(BumpEpoch)),
        spec("reset", -2, ADMIN | STALE | NOSCRIPT, "Resets a node.", handler!(Reset)),
        spec("saveconfig", 2, ADMIN_STALE, "Forces a node to save the cluster configuration to disk.", handler!(SaveConfig)),
        super::slot_migration::MIGRATESLOTS,
        super::slot_migration::GETSLOTMIGRATIONS,
        super::slot_migration::CANCELSLOTMIGRATIONS,
        super::slot_migration::SYNCSLOTS,
        spec("ring", -3, ADMIN_STALE, "ringkv: ASSIGN gives every unassigned slot to the masters by the consistent-hashing ring; REBALANCE moves the slots whose ring owner is another master; DRAIN [CANCEL] makes this master leave the ring; STATUS shows progress.", handler!(Ring)).since("0.1.0"),
    ]),
    spec("readonly", 1, FAST | LOADING | STALE, "Enables read-only queries for a connection to a Redis Cluster replica node.", handler!(ReadOnly<true>)),
    spec("readwrite", 1, FAST | LOADING | STALE, "Enables read-write queries for a connection to a Redis Cluster replica node.", handler!(ReadOnly<false>)),
    spec("asking", 1, FAST, "Signals that a cluster client is following an -ASK redirect.", handler!(Asking)),
];

/// The cluster view, or Redis's error when cluster mode is off.
pub(super) fn cluster(ctx: &Ctx<'_, '_>) -> Result<Arc<ClusterView>, CommandError> {
    ctx.shared
        .cluster
        .view()
        .and_then(|view| view.clone())
        .ok_or_else(disabled)
}

fn disabled() -> CommandError {
    CommandError::err("This instance has cluster support disabled")
}

/// Runs an operator command on the node's machine; its error as Redis words it.
pub(super) fn step<R>(
    ctx: &Ctx<'_, '_>,
    event: impl FnOnce(&mut crate::cluster::machine::Cluster, u64) -> Result<R, AdminError>,
) -> Result<R, CommandError> {
    match ctx.shared.cluster.step(event) {
        None => Err(disabled()),
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(admin_error(e)),
    }
}

pub(super) fn admin_error(e: AdminError) -> CommandError {
    let text = e.to_string();
    CommandError::err(text.strip_prefix("ERR ").unwrap_or(&text))
}

/// The next argument as a slot, or Redis's error `invalid` (its wording
/// differs between subcommands).
pub(super) fn slot_arg(p: &mut Parser<'_>, invalid: &str) -> Result<u16, CommandError> {
    match p.next_i64() {
        Ok(n) if (0..SLOTS as i64).contains(&n) => Ok(n as u16),
        _ => Err(CommandError::err(invalid)),
    }
}

/// What ADDSLOTS and DELSLOTS answer to a bad slot.
pub(super) const OUT_OF_RANGE: &str = "Invalid or out of range slot";

fn node_arg(p: &mut Parser<'_>) -> Result<(Id, String), CommandError> {
    let text = String::from_utf8_lossy(p.arg()?).into_owned();
    match Id::parse(&text.to_ascii_lowercase()) {
        Some(id) => Ok((id, text)),
        None => Err(CommandError::err(format!("Unknown node {text}"))),
    }
}

/// `READONLY` (reads of the slots this replica's master serves run on the
/// replica) and `READWRITE` (they are redirected again), per connection.
struct ReadOnly<const ON: bool>;

impl<'a, const ON: bool> Command<'a> for ReadOnly<ON> {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ReadOnly)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        ctx.session.readonly = ON;
        ctx.out.ok();
        Ok(())
    }
}

/// `ASKING`: the next command may run on a slot this node imports (M3).
struct Asking;

impl<'a> Command<'a> for Asking {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Asking)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        ctx.session.asking = true;
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
        let slots = c.slot_counts();
        let mut text = format!(
            "cluster_state:{}\r\ncluster_slots_assigned:{}\r\ncluster_slots_ok:{}\r\n\
             cluster_slots_pfail:{}\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{}\r\n\
             cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
            if c.state_ok() { "ok" } else { "fail" },
            slots.assigned,
            slots.ok,
            slots.pfail,
            slots.fail,
            c.nodes().len(),
            c.size(),
            c.current_epoch(),
            c.myself().line.config_epoch,
        );
        if let Some((sent, received)) = ctx.shared.cluster.message_counts() {
            for (way, counts) in [("sent", sent), ("received", received)] {
                let mut total = 0;
                for (kind, n) in counts.by_kind().filter(|&(_, n)| n > 0) {
                    total += n;
                    let _ = write!(text, "cluster_stats_messages_{kind}_{way}:{n}\r\n");
                }
                let _ = write!(text, "cluster_stats_messages_{way}:{total}\r\n");
            }
        }
        text.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
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
        let mut text = String::new();
        for node in c.nodes() {
            text.push_str(&node.line.to_cluster_nodes_line());
            text.push('\n');
        }
        ctx.out.verbatim(text.as_bytes());
        Ok(())
    }
}

fn node_entry(out: &mut Reply, node: &ViewNode) {
    out.array(4);
    out.bulk(node.line.ip.as_bytes());
    out.int(i64::from(node.addr.port));
    out.bulk(node.line.id.as_bytes());
    // Networking metadata (hostname): none.
    out.map(0);
}

/// A replica `CLUSTER SLOTS` lists: not failing, and synced (Redis's
/// `isReplicaAvailable`: a replica at offset 0 has not loaded yet).
fn available(node: &ViewNode) -> bool {
    !node.failing() && node.repl_offset != 0
}

/// `CLUSTER SLOTS`: `[first, last, [ip, port, id, {}], replicas...]` per
/// range.
struct Slots;

impl<'a> Command<'a> for Slots {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Slots)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let c = cluster(ctx)?;
        let ranges: Vec<_> = c
            .ranges()
            .into_iter()
            .filter_map(|(first, last, owner)| c.node(owner).map(|n| (first, last, n)))
            .collect();
        ctx.out.array(ranges.len());
        for (first, last, owner) in ranges {
            let replicas: Vec<&ViewNode> =
                c.replicas_of(owner.id).filter(|r| available(r)).collect();
            ctx.out.array(3 + replicas.len());
            ctx.out.int(i64::from(first));
            ctx.out.int(i64::from(last));
            node_entry(ctx.out, owner);
            for replica in replicas {
                node_entry(ctx.out, replica);
            }
        }
        Ok(())
    }
}

/// `CLUSTER SHARDS`: per shard, its slot ranges and its nodes.
struct Shards;

impl<'a> Command<'a> for Shards {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Shards)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let c = cluster(ctx)?;
        let mut shards: Vec<Id> = c
            .nodes()
            .iter()
            .filter(|n| !n.line.flags.handshake)
            .map(|n| n.shard)
            .collect();
        shards.sort_unstable();
        shards.dedup();
        ctx.out.array(shards.len());
        for shard in shards {
            let nodes: Vec<&ViewNode> = c
                .nodes()
                .iter()
                .filter(|n| n.shard == shard && !n.line.flags.handshake)
                .collect();
            // The shard's slots are its master's (a replica's line has none,
            // and an old master's leftovers are not the shard's).
            let ranges: Vec<(u16, u16)> = nodes
                .iter()
                .filter(|n| n.line.flags.master)
                .flat_map(|n| n.line.slots.clone())
                .collect();
            ctx.out.map(2);
            ctx.out.bulk(b"slots");
            ctx.out.array(ranges.len() * 2);
            for (first, last) in ranges {
                ctx.out.int(i64::from(first));
                ctx.out.int(i64::from(last));
            }
            ctx.out.bulk(b"nodes");
            ctx.out.array(nodes.len());
            for n in nodes {
                ctx.out.map(7);
                for (field, value) in [
                    ("id", n.line.id.as_str()),
                    ("port", ""),
                    ("ip", &n.line.ip),
                    ("endpoint", &n.line.ip),
                ] {
                    ctx.out.bulk(field.as_bytes());
                    if field == "port" {
                        ctx.out.int(i64::from(n.addr.port));
                    } else {
                        ctx.out.bulk(value.as_bytes());
                    }
                }
                ctx.out.bulk(b"role");
                let role: &[u8] = if n.line.flags.replica {
                    b"replica"
                } else {
                    b"master"
                };
                ctx.out.bulk(role);
                ctx.out.bulk(b"replication-offset");
                ctx.out.int(n.repl_offset as i64);
                ctx.out.bulk(b"health");
                let health: &[u8] = if n.failing() {
                    b"fail"
                } else if n.line.flags.replica && n.repl_offset == 0 {
                    b"loading"
                } else {
                    b"online"
                };
                ctx.out.bulk(health);
            }
        }
        Ok(())
    }
}

/// `CLUSTER MYID`.
struct MyId;

impl<'a> Command<'a> for MyId {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(MyId)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let id = cluster(ctx)?.myself_id().to_string();
        ctx.out.bulk(id.as_bytes());
        Ok(())
    }
}

/// `CLUSTER MYSHARDID`.
struct MyShardId;

impl<'a> Command<'a> for MyShardId {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(MyShardId)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let id = cluster(ctx)?.myself().shard.to_string();
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
        Ok(CountKeys(slot_arg(p, "Invalid slot")?))
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
        let slot = slot_arg(p, "Invalid slot")?;
        let count = usize::try_from(p.next_i64()?)
            .map_err(|_| CommandError::err("Invalid number of keys"))?;
        Ok(GetKeys { slot, count })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        let now = ctx.now;
        // A slot still being imported shows no keys (M9).
        if ctx.shared.data.keyspace.is_hidden(self.slot) {
            ctx.out.array(0);
            return Ok(());
        }
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

/// `CLUSTER LINKS`: the bus's open links.
struct Links;

impl<'a> Command<'a> for Links {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Links)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        let links = ctx.shared.cluster.links();
        ctx.out.array(links.len());
        for link in links.iter() {
            ctx.out.map(6);
            ctx.out.bulk(b"direction");
            let direction: &[u8] = if link.outbound { b"to" } else { b"from" };
            ctx.out.bulk(direction);
            ctx.out.bulk(b"node");
            let node = link.peer.map(|id| id.to_string()).unwrap_or_default();
            ctx.out.bulk(node.as_bytes());
            ctx.out.bulk(b"create-time");
            ctx.out.int(link.created as i64);
            ctx.out.bulk(b"events");
            ctx.out.bulk(b"r");
            ctx.out.bulk(b"send-buffer-allocated");
            ctx.out.int(0);
            ctx.out.bulk(b"send-buffer-used");
            ctx.out.int(0);
        }
        Ok(())
    }
}

/// `CLUSTER COUNT-FAILURE-REPORTS node-id`.
struct FailureReports(Id, String);

impl<'a> Command<'a> for FailureReports {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (id, text) = node_arg(p)?;
        Ok(FailureReports(id, text))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let reports = ctx
            .shared
            .cluster
            .inspect(|c, now| c.failure_reports(self.0, now))
            .ok_or_else(disabled)?
            .ok_or_else(|| CommandError::err(format!("Unknown node {}", self.1)))?;
        ctx.out.int(reports as i64);
        Ok(())
    }
}

/// `CLUSTER REPLICAS|SLAVES node-id`: the replicas' `CLUSTER NODES` lines.
struct Replicas(Id, String);

impl<'a> Command<'a> for Replicas {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (id, text) = node_arg(p)?;
        Ok(Replicas(id, text))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let c = cluster(ctx)?;
        let master = c
            .node(self.0)
            .ok_or_else(|| CommandError::err(format!("Unknown node {}", self.1)))?;
        if master.is_replica() {
            return Err(admin_error(AdminError::NotMaster));
        }
        let lines: Vec<String> = c
            .replicas_of(self.0)
            .map(|r| r.line.to_cluster_nodes_line())
            .collect();
        ctx.out.array(lines.len());
        for line in lines {
            ctx.out.bulk(line.as_bytes());
        }
        Ok(())
    }
}

/// `CLUSTER SETSLOT slot IMPORTING|MIGRATING|NODE node-id | STABLE`
/// (docs/CLUSTER.md, M1, M5).
struct SetSlotCmd {
    slot: u16,
    action: SetSlot,
}

impl<'a> Command<'a> for SetSlotCmd {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let slot = slot_arg(p, OUT_OF_RANGE)?;
        let invalid = || {
            CommandError::err(
                "Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
            )
        };
        let keyword = p.next_keyword().ok_or_else(invalid)?;
        let node = |p: &mut Parser<'a>| -> Result<Id, CommandError> {
            let text = String::from_utf8_lossy(p.arg().map_err(|_| invalid())?).into_owned();
            Id::parse(&text.to_ascii_lowercase())
                .ok_or_else(|| admin_error(AdminError::UnknownSetSlotNode(text)))
        };
        let action = match keyword.as_str() {
            "MIGRATING" => SetSlot::Migrating(node(p)?),
            "IMPORTING" => SetSlot::Importing(node(p)?),
            "NODE" => SetSlot::Node(node(p)?),
            "STABLE" => SetSlot::Stable,
            _ => return Err(invalid()),
        };
        if p.remaining() > 0 {
            return Err(invalid());
        }
        Ok(SetSlotCmd { slot, action })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        let keys = ctx.shared.data.keyspace.slot_len(self.slot) as u64;
        step(ctx, |c, now| c.set_slot(self.slot, self.action, keys, now))?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER REPLICATE node-id`: this node becomes a replica of that master.
struct Replicate(Id, String);

impl<'a> Command<'a> for Replicate {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (id, text) = node_arg(p)?;
        Ok(Replicate(id, text))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        let has_keys = !ctx.shared.data.keyspace.is_empty();
        let text = self.1;
        step(ctx, |c, now| {
            c.replicate(self.0, has_keys, now).map_err(|e| match e {
                AdminError::UnknownNode(_) => AdminError::UnknownNode(text),
                e => e,
            })
        })?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER FAILOVER [FORCE|TAKEOVER]` (docs/CLUSTER.md, F7).
struct Failover {
    force: bool,
    takeover: bool,
}

impl<'a> Command<'a> for Failover {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (force, takeover) = match p.next_keyword() {
            None => (false, false),
            Some(k) if k.as_str() == "FORCE" => (true, false),
            Some(k) if k.as_str() == "TAKEOVER" => (true, true),
            Some(_) => return Err(CommandError::Syntax),
        };
        if p.remaining() > 0 {
            return Err(p.subcommand_error());
        }
        Ok(Failover { force, takeover })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        step(ctx, |c, now| c.failover(self.force, self.takeover, now))?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER MEET ip port [cport]`.
struct Meet(Addr);

impl<'a> Command<'a> for Meet {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let ip = String::from_utf8_lossy(p.arg()?).into_owned();
        let port = String::from_utf8_lossy(p.arg()?).into_owned();
        let invalid = || CommandError::err(format!("Invalid node address specified: {ip}:{port}"));
        let ip: IpAddr = ip.parse().map_err(|_| invalid())?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let cport = match p.try_arg() {
            None => port.checked_add(10_000).ok_or_else(invalid)?,
            Some(text) => std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<u16>().ok())
                .ok_or_else(|| CommandError::err("Invalid bus port specified"))?,
        };
        if p.remaining() > 0 {
            return Err(p.subcommand_error());
        }
        if port == 0 || cport == 0 {
            return Err(invalid());
        }
        Ok(Meet(Addr { ip, port, cport }))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        step(ctx, |c, now| {
            c.meet(self.0, now);
            Ok(())
        })?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER FORGET node-id`.
struct Forget(Id, String);

impl<'a> Command<'a> for Forget {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (id, text) = node_arg(p)?;
        Ok(Forget(id, text))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let text = self.1;
        step(ctx, |c, now| {
            c.forget(self.0, now).map_err(|e| match e {
                AdminError::UnknownNode(_) => AdminError::UnknownNode(text),
                e => e,
            })
        })?;
        ctx.out.ok();
        Ok(())
    }
}

/// Slots named once each, as ADDSLOTS and DELSLOTS take them.
fn each_once(slots: impl IntoIterator<Item = u16>) -> Result<SlotSet, CommandError> {
    let mut set = SlotSet::default();
    for slot in slots {
        if set.contains(slot) {
            return Err(CommandError::err(format!(
                "Slot {slot} specified multiple times"
            )));
        }
        set.insert(slot);
    }
    Ok(set)
}

fn slot_list(p: &mut Parser<'_>) -> Result<SlotSet, CommandError> {
    let mut slots = Vec::with_capacity(p.remaining());
    while p.remaining() > 0 {
        slots.push(slot_arg(p, OUT_OF_RANGE)?);
    }
    each_once(slots)
}

fn slot_ranges(p: &mut Parser<'_>) -> Result<SlotSet, CommandError> {
    if !p.remaining().is_multiple_of(2) {
        return Err(p.arity_error());
    }
    let mut slots = Vec::new();
    while p.remaining() > 0 {
        let (first, last) = (slot_arg(p, OUT_OF_RANGE)?, slot_arg(p, OUT_OF_RANGE)?);
        if first > last {
            return Err(CommandError::err(format!(
                "start slot number {first} is greater than end slot number {last}"
            )));
        }
        slots.extend(first..=last);
    }
    each_once(slots)
}

/// `CLUSTER ADDSLOTS|DELSLOTS slot...` and `CLUSTER ADDSLOTSRANGE|DELSLOTSRANGE
/// first last...`: `ADD` claims the slots, else unassigns them; `RANGES` takes
/// them as pairs.
struct ChangeSlots<const ADD: bool, const RANGES: bool>(SlotSet);

impl<'a, const ADD: bool, const RANGES: bool> Command<'a> for ChangeSlots<ADD, RANGES> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let slots = if RANGES {
            slot_ranges(p)?
        } else {
            slot_list(p)?
        };
        Ok(ChangeSlots(slots))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        step(ctx, |c, _| {
            if ADD {
                c.add_slots(&self.0)
            } else {
                c.del_slots(&self.0)
            }
        })?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER FLUSHSLOTS`: only on an empty node, as Redis.
struct FlushSlots;

impl<'a> Command<'a> for FlushSlots {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(FlushSlots)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        if !ctx.shared.data.keyspace.is_empty() {
            return Err(CommandError::err(
                "DB must be empty to perform CLUSTER FLUSHSLOTS.",
            ));
        }
        step(ctx, |c, _| {
            c.flush_slots();
            Ok(())
        })?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER SET-CONFIG-EPOCH epoch`.
struct SetConfigEpoch(u64);

impl<'a> Command<'a> for SetConfigEpoch {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let text = String::from_utf8_lossy(p.arg()?).into_owned();
        match text.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(SetConfigEpoch(n as u64)),
            Ok(_) => Err(CommandError::err(format!(
                "Invalid config epoch specified: {text}"
            ))),
            Err(_) => Err(CommandError::NotInteger),
        }
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        step(ctx, |c, _| c.set_config_epoch(self.0))?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER BUMPEPOCH`: `BUMPED n` or `STILL n`.
struct BumpEpoch;

impl<'a> Command<'a> for BumpEpoch {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(BumpEpoch)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let (bumped, epoch) = step(ctx, |c, _| Ok(c.bump_epoch()))?;
        let word = if bumped { "BUMPED" } else { "STILL" };
        ctx.out.simple(&format!("{word} {epoch}"));
        Ok(())
    }
}

/// `CLUSTER RESET [HARD|SOFT]`.
struct Reset {
    hard: bool,
}

impl<'a> Command<'a> for Reset {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let hard = match p.next_keyword() {
            None => false,
            Some(k) if k.as_str() == "SOFT" => false,
            Some(k) if k.as_str() == "HARD" => true,
            Some(_) => return Err(CommandError::Syntax),
        };
        if p.remaining() > 0 {
            return Err(p.subcommand_error());
        }
        Ok(Reset { hard })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        let replica = ctx.shared.replication.is_replica();
        if !replica && !ctx.shared.data.keyspace.is_empty() {
            return Err(CommandError::err(
                "CLUSTER RESET can't be called with master nodes containing keys",
            ));
        }
        step(ctx, |c, now| {
            c.reset(self.hard, now);
            Ok(())
        })?;
        // As Redis: a replica reset becomes an empty master (`redis-cli
        // --cluster del-node` resets a node that followed another's slots).
        if replica {
            let removed = ctx.locks.flush(false);
            ctx.session.changes.count(removed as u64);
        }
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER SAVECONFIG`.
struct SaveConfig;

impl<'a> Command<'a> for SaveConfig {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SaveConfig)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        ctx.shared
            .cluster
            .save()
            .map_err(|e| CommandError::err(format!("error saving the cluster node config: {e}")))?;
        ctx.out.ok();
        Ok(())
    }
}

/// ringkv's `CLUSTER RING` (docs/CLUSTER.md, rules 19 and M13): `ASSIGN`
/// plans every unassigned slot on the ring of the known masters and has each
/// claim its share under an epoch of its own (replies the slots planned);
/// `REBALANCE` moves, a bounded number at a time, every slot whose ring owner
/// is another master (replies the slots that differ now); `DRAIN [CANCEL]`
/// makes this master leave the ring (its slots move to their ring owners), or
/// stay; `STATUS` shows where rebalancing stands.
enum Ring {
    Assign,
    Rebalance,
    Drain(bool),
    Status,
}

impl<'a> Command<'a> for Ring {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let ring = match p.next_keyword() {
            Some(k) if k.as_str() == "ASSIGN" => Ring::Assign,
            Some(k) if k.as_str() == "REBALANCE" => Ring::Rebalance,
            Some(k) if k.as_str() == "DRAIN" => Ring::Drain(!p.eat("CANCEL")),
            Some(k) if k.as_str() == "STATUS" => Ring::Status,
            _ => return Err(p.subcommand_error()),
        };
        match p.remaining() {
            0 => Ok(ring),
            _ => Err(p.subcommand_error()),
        }
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let migrations = &ctx.shared.migrations;
        match self {
            Ring::Assign => {
                let planned = step(ctx, |c, now| Ok(c.ring_assign(now)))?;
                ctx.out.int(planned as i64);
            }
            Ring::Rebalance => {
                let plan = step(ctx, |c, _| Ok(c.ring_plan(0)))?;
                migrations.set_ring_status(|s| s.differing = plan.differing);
                migrations.request_rebalance();
                ctx.out.int(plan.differing as i64);
            }
            Ring::Drain(on) => {
                step(ctx, |c, now| c.set_draining(on, now))?;
                if on {
                    migrations.request_rebalance();
                }
                ctx.out.ok();
            }
            Ring::Status => {
                let status = migrations.ring_status();
                let draining = cluster(ctx)?.myself().line.flags.draining;
                let out = &mut *ctx.out;
                out.map(5);
                out.bulk(b"rebalancing");
                out.int(i64::from(status.requested));
                out.bulk(b"slots_differing");
                out.int(status.differing as i64);
                out.bulk(b"slots_moving");
                out.int(status.moving as i64);
                out.bulk(b"slots_moved");
                out.int(status.moved as i64);
                out.bulk(b"draining");
                out.int(i64::from(draining));
            }
        }
        Ok(())
    }
}

/// In cluster mode, where a command may run, as Redis decides it: all its
/// keys in one slot (and, inside MULTI, the transaction's slot), that slot
/// served, the cluster up (or the command let through while it is down:
/// reads with `cluster-allow-reads-when-down`, sharded pub/sub with
/// `cluster-allow-pubsubshard-when-down`), and the slot this node's, or, on
/// a `READONLY` connection (`readonly`) to a replica, its master's for a
/// command that does not write, or, right after `ASKING` (`asking`), one
/// this node imports (M3), or, for `MIGRATE`, one this node holds open (M4). Commands with no keys run anywhere; commands
/// over the whole keyspace run on this node's share. Returns the keys' slot.
pub fn route(
    cluster: &ClusterView,
    command: &super::table::Command,
    keys: &KeySlots<'_>,
    transaction_slot: Option<u16>,
    (readonly, asking): (bool, bool),
    config: &LiveConfig,
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
    let Some(slot) = slot else {
        return Ok(None);
    };
    let Some(owner) = cluster.owner(slot) else {
        return Err(CommandError::SlotNotServed);
    };
    if !cluster.state_ok() {
        if command.has(PUBSUB) {
            if !config.cluster_allow_pubsubshard_when_down() {
                return Err(CommandError::ClusterDown);
            }
        } else if !config.cluster_allow_reads_when_down() {
            return Err(CommandError::ClusterDown);
        } else if command.has(WRITE) {
            return Err(CommandError::ClusterDownReadOnly);
        }
    }
    // Redis lets sharded pub/sub run on a replica of the slot's master too.
    let replica_read = (readonly || command.has(PUBSUB))
        && !command.has(WRITE)
        && cluster.my_master() == Some(owner.id);
    // M3: after `ASKING`, a slot this node imports is served here.
    let asking = asking || command.has(ASKING);
    let open_here = || cluster.importing(slot) || cluster.migrating_to(slot).is_some();
    if cluster.is_mine(slot)
        || replica_read
        || (asking && cluster.importing(slot))
        || (command.has(OPEN_SLOTS) && open_here())
    {
        Ok(Some(slot))
    } else {
        Err(CommandError::Moved {
            slot,
            addr: owner.client_addr(),
        })
    }
}
