//! What commands see of the cluster: a snapshot of the machine's state taken
//! after each step, read without locks. Routing asks it who serves a slot and
//! whether the cluster is up; `CLUSTER NODES/SLOTS/SHARDS/INFO` print it.

use std::sync::Arc;

use super::id::Id;
use super::machine::Cluster;
use super::message::Addr;
use super::nodes_conf::NodeLine;
use super::slots::SlotSet;
use crate::keyspace::SLOTS;

/// One node as the view shows it.
#[derive(Debug, Clone)]
pub struct ViewNode {
    /// Its id.
    pub id: Id,
    /// Its shard.
    pub shard: Id,
    /// Where it listens.
    pub addr: Addr,
    /// A replica's master.
    pub master: Option<Id>,
    /// Its replication offset (this node's own: as the data plane last set
    /// it; another's: as its last header said).
    pub repl_offset: u64,
    /// Its `CLUSTER NODES` line.
    pub line: NodeLine,
}

impl ViewNode {
    /// `ip:port` for clients (`-MOVED`).
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.line.ip, self.addr.port)
    }

    /// Flagged `fail?` or `fail`.
    pub fn failing(&self) -> bool {
        self.line.flags.pfail || self.line.flags.fail
    }

    /// A replica (of some master).
    pub fn is_replica(&self) -> bool {
        !self.line.flags.master && self.master.is_some()
    }
}

/// The slot table, shared between views until it changes.
#[derive(Debug)]
struct Table {
    version: u64,
    owners: Vec<Option<Id>>,
    mine: SlotSet,
}

/// A snapshot of the cluster as this node sees it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    myself: Id,
    /// Every known node, handshakes included, by id.
    nodes: Vec<ViewNode>,
    table: Arc<Table>,
    state_ok: bool,
    current_epoch: u64,
    size: usize,
    /// Slots this node is migrating (with the target) and importing (with
    /// the source), as `CLUSTER SETSLOT` opened them (M1).
    migrating: Vec<(u16, Id)>,
    importing: Vec<(u16, Id)>,
}

impl ClusterView {
    /// The view of `cluster`; `previous` lends its slot table when unchanged.
    pub fn of(cluster: &Cluster, previous: Option<&ClusterView>) -> ClusterView {
        let version = cluster.table_version();
        let table = match previous {
            Some(view) if view.table.version == version && view.myself == cluster.myself() => {
                view.table.clone()
            }
            _ => {
                let owners: Vec<Option<Id>> = (0..SLOTS as u16).map(|s| cluster.owner(s)).collect();
                let me = Some(cluster.myself());
                let mine = (0..SLOTS as u16)
                    .filter(|&s| owners[s as usize] == me)
                    .collect();
                Arc::new(Table {
                    version,
                    owners,
                    mine,
                })
            }
        };
        let nodes = cluster
            .nodes()
            .map(|n| ViewNode {
                id: n.id,
                shard: n.shard,
                addr: n.addr,
                master: n.master,
                repl_offset: if n.id == cluster.myself() {
                    cluster.repl_offset()
                } else {
                    n.repl_offset
                },
                line: cluster.node_line(n),
            })
            .collect();
        ClusterView {
            myself: cluster.myself(),
            nodes,
            table,
            state_ok: cluster.state_ok(),
            current_epoch: cluster.current_epoch(),
            size: cluster.size(),
            migrating: cluster.migrating_slots(),
            importing: cluster.importing_slots(),
        }
    }

    /// This node's id.
    pub fn myself_id(&self) -> Id {
        self.myself
    }

    /// This node.
    pub fn myself(&self) -> &ViewNode {
        self.node(self.myself).expect("myself is always known")
    }

    /// Every known node, in id order.
    pub fn nodes(&self) -> &[ViewNode] {
        &self.nodes
    }

    /// The node with id `id`.
    pub fn node(&self, id: Id) -> Option<&ViewNode> {
        self.nodes
            .binary_search_by_key(&id, |n| n.id)
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The replicas of master `id`, in id order.
    pub fn replicas_of(&self, id: Id) -> impl Iterator<Item = &ViewNode> {
        self.nodes
            .iter()
            .filter(move |n| n.is_replica() && n.master == Some(id))
    }

    /// This node's master, when it is a replica.
    pub fn my_master(&self) -> Option<Id> {
        let me = self.myself();
        me.master.filter(|_| me.is_replica())
    }

    /// The node serving `slot`, if assigned.
    pub fn owner(&self, slot: u16) -> Option<&ViewNode> {
        self.table.owners[usize::from(slot)].and_then(|id| self.node(id))
    }

    /// True if this node serves `slot`.
    #[inline]
    pub fn is_mine(&self, slot: u16) -> bool {
        self.table.mine.contains(slot)
    }

    /// The master this node migrates `slot` to (M1), if it does.
    #[inline]
    pub fn migrating_to(&self, slot: u16) -> Option<&ViewNode> {
        let (_, target) = self.migrating.iter().find(|(s, _)| *s == slot)?;
        self.node(*target)
    }

    /// True if this node imports `slot` (M1).
    #[inline]
    pub fn importing(&self, slot: u16) -> bool {
        self.importing.iter().any(|(s, _)| *s == slot)
    }

    /// Whether the cluster serves (`cluster_state:ok`).
    pub fn state_ok(&self) -> bool {
        self.state_ok
    }

    /// The highest epoch seen.
    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// Masters serving at least one slot.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Contiguous slot ranges `(first, last, owner)`, in slot order.
    pub fn ranges(&self) -> Vec<(u16, u16, Id)> {
        let mut ranges: Vec<(u16, u16, Id)> = Vec::new();
        for (slot, owner) in self.table.owners.iter().enumerate() {
            let Some(owner) = *owner else { continue };
            let slot = slot as u16;
            match ranges.last_mut() {
                Some(last) if last.2 == owner && last.1 + 1 == slot => last.1 = slot,
                _ => ranges.push((slot, slot, owner)),
            }
        }
        ranges
    }

    /// Slot counts for `CLUSTER INFO`: assigned, served by a node in good
    /// standing, by a `fail?` node, by a `fail` node.
    pub fn slot_counts(&self) -> SlotCounts {
        let mut counts = SlotCounts::default();
        for node in &self.nodes {
            let n: usize = node
                .line
                .slots
                .iter()
                .map(|&(a, b)| usize::from(b - a) + 1)
                .sum();
            counts.assigned += n;
            if node.line.flags.fail {
                counts.fail += n;
            } else if node.line.flags.pfail {
                counts.pfail += n;
            } else {
                counts.ok += n;
            }
        }
        counts
    }
}

/// How the assigned slots stand (`CLUSTER INFO`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SlotCounts {
    /// Slots with an owner.
    pub assigned: usize,
    /// Served by a node in good standing.
    pub ok: usize,
    /// Served by a node flagged `fail?`.
    pub pfail: usize,
    /// Served by a node flagged `fail`.
    pub fail: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::machine::lone_node;

    #[test]
    fn the_view_follows_the_slot_table_and_shares_it_until_it_changes() {
        let mut cluster = lone_node(7);
        let empty = ClusterView::of(&cluster, None);
        assert!(!empty.is_mine(0) && empty.owner(0).is_none());
        assert_eq!(empty.slot_counts().assigned, 0);
        let slots: SlotSet = (0..100).chain([200]).collect();
        cluster.add_slots(&slots).unwrap();
        let view = ClusterView::of(&cluster, Some(&empty));
        assert!(view.is_mine(99) && view.is_mine(200) && !view.is_mine(100));
        assert_eq!(view.owner(5).map(|n| n.id), Some(cluster.myself()));
        assert_eq!(
            view.ranges(),
            vec![(0, 99, cluster.myself()), (200, 200, cluster.myself())]
        );
        let counts = view.slot_counts();
        assert_eq!((counts.assigned, counts.ok), (101, 101));
        let again = ClusterView::of(&cluster, Some(&view));
        assert!(Arc::ptr_eq(&again.table, &view.table));
        assert_eq!(again.myself().line.slots, vec![(0, 99), (200, 200)]);
    }
}
