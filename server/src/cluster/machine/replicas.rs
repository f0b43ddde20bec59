//! Replicas in the cluster logic: `CLUSTER REPLICATE` and `CLUSTER
//! REPLICAS`, what headers say of other nodes' roles, a master that lost
//! every slot following the node that took them (F6), and replica migration
//! to orphaned masters (`cluster-allow-replica-migration`,
//! `cluster-migration-barrier`), as Redis Cluster does them.

use std::collections::BTreeMap;

use super::{AdminError, Cluster, Node};
use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::message::{Flags, Header};

/// How long a master must stay orphaned before a replica migrates to it
/// (Redis's `CLUSTER_SLAVE_MIGRATION_DELAY`): its own replicas get the time
/// to announce that they follow a new master after a failover.
const MIGRATION_DELAY: Millis = 5_000;

impl Cluster {
    /// `CLUSTER REPLICATE id`: this node becomes a replica of master `id`.
    /// `has_keys`: this node holds keys (the data plane knows; a master with
    /// keys may not become a replica, its data would be thrown away).
    pub fn replicate(&mut self, id: Id, has_keys: bool, now: Millis) -> Result<(), AdminError> {
        let Some(target) = self.nodes.get(&id).filter(|n| !n.in_handshake()) else {
            return Err(AdminError::UnknownNode(id.to_string()));
        };
        if id == self.myself {
            return Err(AdminError::ReplicateMyself);
        }
        if !target.is_master() {
            return Err(AdminError::ReplicateReplica);
        }
        let me = self.me();
        if me.is_master() && (me.owned > 0 || has_keys) {
            return Err(AdminError::NotEmpty);
        }
        if !me.is_master() && me.master == Some(id) {
            // Already so: nothing changes (Redis sets the same master again).
            return Ok(());
        }
        self.set_master(id, now);
        Ok(())
    }

    /// `CLUSTER REPLICAS id`: the replicas of master `id`, in id order.
    pub fn replicas_of(&self, id: Id) -> Result<Vec<&Node>, AdminError> {
        let Some(master) = self.nodes.get(&id) else {
            return Err(AdminError::UnknownNode(id.to_string()));
        };
        if !master.is_master() {
            return Err(AdminError::NotMaster);
        }
        Ok(self
            .nodes
            .values()
            .filter(|n| is_replica_of(n, id))
            .collect())
    }

    /// Makes this node a replica of `master` (Redis's `clusterSetMaster`):
    /// it joins the master's shard, owns no slots, and the data plane
    /// follows it ([`Cluster::role`]).
    pub(super) fn set_master(&mut self, master: Id, now: Millis) {
        let shard = self.nodes.get(&master).map(|n| n.shard);
        let previous = self.me().master;
        let me = self.me_mut();
        me.flags.set(Flags::MASTER, false);
        me.flags.set(Flags::REPLICA, true);
        me.master = Some(master);
        if let Some(shard) = shard {
            me.shard = shard;
        }
        tracing::warn!("this node is now a replica of {master}");
        if let Some(old) = previous.filter(|&old| old != master) {
            self.forget_replica(old);
        }
        if let Some(node) = self.nodes.get_mut(&master) {
            node.migrate_to = true;
        }
        self.reset_manual();
        // A replica moves no slots (Redis's clusterCloseAllSlots).
        self.close_open_slots();
        self.election = super::failover::Election::default();
        self.proposal = super::in_sync::Proposal::default();
        self.claim_changed();
        self.state_dirty = true;
        // Everyone learns the new role now rather than at the next ping.
        self.broadcast_pong(now);
    }

    /// What `header` says of its sender's role (Redis's role switch in
    /// `clusterProcessPacket`). Returns whether durable state changed.
    pub(super) fn role_from_header(&mut self, header: &Header) -> bool {
        let sender = header.sender;
        let Some(node) = self.nodes.get_mut(&sender) else {
            return false;
        };
        node.repl_offset = header.offset;
        let old_master = node.master;
        let old_shard = node.shard;
        let was_master = node.is_master();
        let now_master = header.flags.has(Flags::MASTER);
        node.flags.set(Flags::MASTER, now_master);
        node.flags
            .set(Flags::REPLICA, header.flags.has(Flags::REPLICA));
        node.master = if now_master { None } else { header.master };
        node.shard = header.shard;
        let master = node.master;
        let owned = node.owned;
        let mut changed = old_master != master || was_master != now_master;
        if was_master && !now_master && owned > 0 && old_shard != header.shard {
            // It left its shard for another: its slots are nobody's now
            // (a failover keeps the shard, and the new master's claim, which
            // is newer, takes them).
            let slots = self.nodes[&sender].slots.clone();
            for slot in slots.iter() {
                self.unassign(slot);
            }
            changed = true;
        }
        if !was_master && now_master {
            // A promoted replica: its old master used to have replicas.
            if let Some(node) = self.nodes.get_mut(&sender) {
                node.migrate_to = true;
            }
        }
        if let Some(old) = old_master.filter(|&old| Some(old) != master) {
            self.forget_replica(old);
        }
        if let Some(node) = master.and_then(|m| self.nodes.get_mut(&m)) {
            node.migrate_to = true;
        }
        if changed {
            self.state_dirty = true;
        }
        changed
    }

    /// A replica stopped following `master`: with none left, it is no longer
    /// a master replicas should migrate to.
    fn forget_replica(&mut self, master: Id) {
        let left = self.nodes.values().any(|n| is_replica_of(n, master));
        if let Some(node) = self.nodes.get_mut(&master) {
            if !left {
                node.migrate_to = false;
            }
        }
    }

    /// F6: `claimer` took `migrated` of the slots of this node's master (this
    /// node itself if a master) in a claim of `claimed` slots. If that master
    /// has none left, this node follows `claimer`. Returns whether it did.
    pub(super) fn follow_if_emptied(
        &mut self,
        claimer: Id,
        migrated: usize,
        claimed: usize,
        now: Millis,
    ) -> bool {
        let me = self.me();
        let current = if me.is_master() {
            Some(self.myself)
        } else {
            me.master
        };
        let emptied = current
            .and_then(|m| self.nodes.get(&m))
            .is_some_and(|m| m.owned == 0);
        // Without replica migration, only a claim of exactly this shard's
        // slots (a failover, not a resharding) takes the node along.
        let follow = migrated > 0
            && emptied
            && claimer != self.myself
            && (self.settings.allow_replica_migration || migrated == claimed);
        if follow {
            tracing::warn!(
                "configuration change detected: reconfiguring myself as a replica of {claimer}"
            );
            self.set_master(claimer, now);
        }
        follow
    }

    /// The periodic part of replica management: a replica of a replica
    /// follows the master above it, and replica migration.
    pub(super) fn replicas_tick(&mut self, now: Millis) {
        let me = self.me();
        if me.is_master() {
            return;
        }
        // A master turned replica (failed over) while this node missed the
        // new claim: follow the new master (Redis's sub-replica guard).
        let grand = me
            .master
            .and_then(|m| self.nodes.get(&m))
            .filter(|m| !m.is_master())
            .and_then(|m| m.master)
            .filter(|&g| g != self.myself && self.nodes.contains_key(&g));
        if let Some(grand) = grand {
            tracing::warn!("I'm a sub-replica: following the grandmaster {grand}");
            self.set_master(grand, now);
            return;
        }
        if self.settings.allow_replica_migration {
            self.migrate_if_needed(now);
        }
    }

    /// Replica migration (Redis's `clusterHandleSlaveMigration`): a replica
    /// of a master with the most working replicas, above the barrier, moves
    /// to a master left without any, if it has the smallest id among them.
    fn migrate_if_needed(&mut self, now: Millis) {
        // Per master: its replicas, and how many work (not `fail`; `strict`:
        // not `fail?` either).
        let mut replicas: BTreeMap<Id, Vec<Id>> = BTreeMap::new();
        let mut working: BTreeMap<Id, (usize, usize)> = BTreeMap::new();
        for n in self.nodes.values().filter(|n| !n.is_master()) {
            if let Some(m) = n.master {
                replicas.entry(m).or_default().push(n.id);
                let entry = working.entry(m).or_default();
                entry.0 += usize::from(!n.flags.has(Flags::FAIL));
                entry.1 += usize::from(!n.failing());
            }
        }
        let ok = |id: &Id| working.get(id).map_or(0, |c| c.0);
        let my_master = self.me().master;
        let (mut orphaned, mut most, mut mine) = (false, 0, 0);
        for n in self.nodes.values() {
            let usable = n.id != self.myself
                && n.is_master()
                && !n.flags.any(Flags::NOADDR | Flags::HANDSHAKE | Flags::FAIL);
            if usable {
                orphaned |= ok(&n.id) == 0 && n.owned > 0 && n.migrate_to;
                most = most.max(ok(&n.id));
                if Some(n.id) == my_master {
                    mine = ok(&n.id);
                }
            }
        }
        // Only a replica of a master with the most working replicas, at
        // least two, considers moving (Redis's clusterCron).
        if !orphaned || most < 2 || mine != most || !self.state_ok {
            return;
        }
        let strict = my_master.and_then(|m| working.get(&m)).map_or(0, |c| c.1);
        if strict as u64 <= self.settings.migration_barrier {
            return;
        }
        let mut target = None;
        let mut candidate = self.myself;
        for n in self.nodes.values_mut() {
            let is_orphaned =
                n.is_master() && !n.flags.has(Flags::FAIL) && n.migrate_to && ok(&n.id) == 0;
            if is_orphaned {
                if target.is_none() && n.owned > 0 {
                    target = Some(n.id);
                }
                n.orphaned_since.get_or_insert(now);
            } else {
                n.orphaned_since = None;
            }
            if n.is_master() && ok(&n.id) == most {
                let smallest = replicas.get(&n.id).and_then(|r| r.iter().min().copied());
                if let Some(id) = smallest.filter(|&id| id < candidate) {
                    candidate = id;
                }
            }
        }
        let Some(target) = target else {
            return;
        };
        let since = self.nodes[&target].orphaned_since.unwrap_or(now);
        if candidate == self.myself && now.saturating_sub(since) > MIGRATION_DELAY {
            tracing::warn!("migrating to orphaned master {target}");
            self.set_master(target, now);
        }
    }
}

/// True if `n` is a replica of `master`.
fn is_replica_of(n: &Node, master: Id) -> bool {
    !n.is_master() && n.master == Some(master)
}
