//! A model of the replication data plane for the simulator, enough to check
//! the lock rules' invariants (docs/CLUSTER.md, I7 and I8): each node keeps a
//! stream of lock grants; replicas copy their master's (a full sync when
//! their history differs); a master answers a grant only once every replica
//! of its in-sync set in force applied it (L1), drops a replica that lags by
//! proposing a smaller set and waiting for it to be in force (L2), adds a
//! replica that caught up, and takes a grant only while it heard a majority
//! of masters within `T/2`, checked when the command runs and again when it
//! answers (L3). Clients ask a random node and follow one redirect.

use std::collections::{BTreeMap, HashSet};

use rand::RngExt;

use super::{Sim, Violation};
use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::machine::{Cluster, Role};
use crate::keyspace::SLOTS;

/// How often a client asks for a lock.
pub(super) const CLIENT_PERIOD: Millis = 20;
/// How long a grant lasts.
const TTL: Millis = 400;
/// A grant not acknowledged by the in-sync set within this long makes the
/// master drop the replicas that lag.
const ACK_TIMEOUT: Millis = 300;
/// A grant not acknowledged within this long fails (the client gets an
/// error, never a success).
const CLIENT_TIMEOUT: Millis = 1_000;

/// One lock grant in a stream.
#[derive(Debug, Clone, Copy)]
struct Grant {
    /// Unique across the run.
    id: u64,
    lock: usize,
    token: u64,
    /// The master's time of the grant, and its end.
    at: Millis,
    expires: Millis,
}

/// A grant waiting for the in-sync set's acknowledgements.
#[derive(Debug, Clone, Copy)]
struct Pending {
    grant: Grant,
    /// Its offset in the stream (the stream's length once appended).
    offset: u64,
}

/// One node's side of the data plane.
#[derive(Debug, Default)]
pub(super) struct NodePlane {
    stream: Vec<Grant>,
    /// Ids of `stream`'s grants.
    ids: HashSet<u64>,
    /// A master's replicas' applied offsets, as last acknowledged.
    acked: BTreeMap<Id, u64>,
    /// The sets proposed, by version (L2).
    proposed: BTreeMap<u64, Vec<Id>>,
    pending: Vec<Pending>,
    /// A master at its last tick.
    was_master: bool,
}

impl NodePlane {
    /// The replication offset: one unit per grant.
    pub(super) fn offset(&self) -> u64 {
        self.stream.len() as u64
    }

    fn replace(&mut self, stream: &[Grant]) {
        self.stream = stream.to_vec();
        self.ids = stream.iter().map(|g| g.id).collect();
    }
}

/// The data plane of every node, and what clients were told.
#[derive(Debug)]
pub(super) struct Plane {
    pub(super) nodes: Vec<NodePlane>,
    /// Each lock's slot.
    slots: Vec<u16>,
    next_id: u64,
    /// Grants clients were told succeeded, per lock, in the order told.
    told: Vec<Vec<Grant>>,
    /// Something I7 depends on changed since it was checked.
    pub(super) dirty: bool,
    /// Grants answered, refused at once, failed after waiting.
    pub(super) counts: PlaneCounts,
}

/// What the lock clients got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlaneCounts {
    /// Grants answered with success.
    pub granted: u64,
    /// Requests refused when they ran (busy lock, no master, L3, pause, ...).
    pub refused: u64,
    /// Grants that waited for acknowledgements in vain (client error).
    pub failed: u64,
}

impl Plane {
    pub(super) fn new(nodes: usize, locks: usize) -> Plane {
        Plane {
            nodes: (0..nodes).map(|_| NodePlane::default()).collect(),
            slots: (0..locks)
                .map(|k| ((k * SLOTS / locks.max(1)) + 7) as u16)
                .collect(),
            next_id: 1,
            told: vec![Vec::new(); locks],
            dirty: false,
            counts: PlaneCounts::default(),
        }
    }
}

use super::serves;

impl Sim {
    /// Turns on the data-plane model with `locks` locks (on slots spread
    /// over the table), and the lock clients. Checks I7 and I8 from then on.
    pub fn set_locks(&mut self, locks: usize) {
        self.plane = Some(Plane::new(self.nodes.len(), locks));
        let at = self.now + CLIENT_PERIOD;
        self.schedule(at, super::Event::Client);
    }

    /// What the lock clients got so far.
    pub fn lock_counts(&self) -> PlaneCounts {
        self.plane.as_ref().map(|p| p.counts).unwrap_or_default()
    }

    /// Node `i`'s replication offset as the model has it.
    pub(super) fn plane_offset(&self, i: usize) -> Option<u64> {
        self.plane.as_ref().map(|p| p.nodes[i].offset())
    }

    /// A crashed node's data is gone (a cache keeps nothing across a
    /// restart).
    pub(super) fn plane_crashed(&mut self, i: usize) {
        if let Some(plane) = &mut self.plane {
            plane.nodes[i] = NodePlane::default();
            plane.dirty = true;
        }
    }

    /// Node `i`'s periodic data-plane work: a replica copies its master's
    /// stream; a master counts acknowledgements, answers, and changes its
    /// in-sync set.
    pub(super) fn plane_tick(&mut self, i: usize) {
        let Some(role) = self.nodes[i].cluster.as_ref().map(Cluster::role) else {
            return;
        };
        let Some(plane) = &mut self.plane else {
            return;
        };
        let node = &mut plane.nodes[i];
        let now_master = role.is_master();
        if std::mem::replace(&mut node.was_master, now_master) != now_master {
            // A new role: a demoted master's waiting grants fail, a promoted
            // replica starts its own in-sync set.
            plane.counts.failed += node.pending.len() as u64;
            node.pending.clear();
            node.proposed.clear();
            node.acked.clear();
        }
        match role {
            Role::Replica { master, .. } => self.replicate(i, master),
            Role::Master => self.master_tick(i),
        }
    }

    fn replicate(&mut self, i: usize, master: Id) {
        let Some(m) = self.index_of(master) else {
            return;
        };
        if !self.reachable(i, m)
            || !self.nodes[m]
                .cluster
                .as_ref()
                .is_some_and(|c| c.role().is_master())
        {
            return;
        }
        let Some(plane) = &mut self.plane else {
            return;
        };
        let (mine, theirs) = if i < m {
            let (a, b) = plane.nodes.split_at_mut(m);
            (&mut a[i], &b[0])
        } else {
            let (a, b) = plane.nodes.split_at_mut(i);
            (&mut b[0], &a[m])
        };
        let prefix = mine.stream.len() <= theirs.stream.len()
            && mine
                .stream
                .last()
                .is_none_or(|g| theirs.stream[mine.stream.len() - 1].id == g.id);
        if prefix {
            for g in &theirs.stream[mine.stream.len()..] {
                mine.stream.push(*g);
                mine.ids.insert(g.id);
            }
        } else {
            // Another history: a full sync replaces it all.
            mine.replace(&theirs.stream);
            plane.dirty = true;
        }
        let offset = mine.offset();
        let me = self.id(i);
        // The acknowledgement reaches the master (`REPLCONF ACK`).
        if let Some(plane) = &mut self.plane {
            plane.nodes[m].acked.insert(me, offset);
        }
    }

    fn master_tick(&mut self, i: usize) {
        let now = self.now;
        let Some(c) = self.nodes[i].cluster.as_ref() else {
            return;
        };
        let me = c.myself();
        let may_grant = self.may_grant(i);
        let replicas: Vec<Id> = c
            .nodes()
            .filter(|n| {
                n.master == Some(me) && !n.flags.has(crate::cluster::message::Flags::MASTER)
            })
            .map(|n| n.id)
            .collect();
        let in_force = c.in_sync_in_force();
        let Some(plane) = &mut self.plane else {
            return;
        };
        let node = &mut plane.nodes[i];
        node.acked.retain(|id, _| replicas.contains(id));
        let set: Vec<Id> = node
            .proposed
            .range(..=in_force)
            .next_back()
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let newest = node
            .proposed
            .values()
            .next_back()
            .cloned()
            .unwrap_or_default();
        let acked = |id: &Id| node.acked.get(id).copied().unwrap_or(0);
        let mut answered = Vec::new();
        let mut laggards: Vec<Id> = Vec::new();
        let mut failed = 0;
        node.pending.retain(|p| {
            let all = !set.is_empty() && set.iter().all(|r| acked(r) >= p.offset);
            if all && may_grant {
                answered.push(p.grant);
                return false;
            }
            if now - p.grant.at > CLIENT_TIMEOUT {
                failed += 1;
                return false;
            }
            if now - p.grant.at > ACK_TIMEOUT {
                laggards.extend(set.iter().filter(|r| acked(r) < p.offset));
            }
            true
        });
        // L2: drop the laggards (in force once a majority stored it), add
        // replicas that hold the whole stream.
        let mut next: Vec<Id> = newest
            .iter()
            .filter(|r| !laggards.contains(r) && replicas.contains(r))
            .copied()
            .collect();
        for r in &replicas {
            if acked(r) == node.offset() && !next.contains(r) && !laggards.contains(r) {
                next.push(*r);
            }
        }
        next.sort();
        let changed = next != newest;
        plane.counts.failed += failed;
        for grant in answered {
            self.tell(grant);
        }
        if changed {
            let mut version = 0;
            let members = next.clone();
            self.with(i, |c, now| version = c.propose_in_sync(members, now));
            if let Some(plane) = &mut self.plane {
                plane.nodes[i].proposed.insert(version, next);
            }
        }
    }

    /// L3, as the data plane checks it: a master that heard a majority of
    /// masters within `T/2`.
    fn may_grant(&self, i: usize) -> bool {
        let half = self.settings.node_timeout / 2;
        self.nodes[i]
            .cluster
            .as_ref()
            .and_then(Cluster::heard_majority)
            .is_some_and(|heard| self.now.saturating_sub(heard) <= half)
    }

    /// A client is told its grant succeeded: I8 (tokens grow, grants never
    /// overlap) is checked here, I7 at the next step.
    fn tell(&mut self, grant: Grant) {
        let Some(plane) = &mut self.plane else {
            return;
        };
        plane.counts.granted += 1;
        plane.dirty = true;
        let told = &mut plane.told[grant.lock];
        if let Some(last) = told.last() {
            if grant.token <= last.token || grant.at < last.expires {
                self.violation = Some(Violation(format!(
                    "I8: lock {} granted with token {} over [{}, {}) after token {} over [{}, {})",
                    grant.lock,
                    grant.token,
                    grant.at,
                    grant.expires,
                    last.token,
                    last.at,
                    last.expires
                )));
            }
        }
        told.push(grant);
    }

    /// A client asks for a random lock at a random node, following one
    /// redirect.
    pub(super) fn client(&mut self) {
        let at = self.now + CLIENT_PERIOD;
        self.schedule(at, super::Event::Client);
        let Some(locks) = self.plane.as_ref().map(|p| p.slots.len()) else {
            return;
        };
        let lock = self.rng.random_range(0..locks);
        let slot = self.plane.as_ref().map_or(0, |p| p.slots[lock]);
        match self.client_target(slot) {
            Some(at) => self.grant(at, lock),
            None => {
                if let Some(plane) = &mut self.plane {
                    plane.counts.refused += 1;
                }
            }
        }
    }

    /// Node `i`, a master serving the lock's slot, runs the grant.
    fn grant(&mut self, i: usize, lock: usize) {
        let now = self.now;
        let Some(c) = self.nodes[i].cluster.as_ref() else {
            return;
        };
        let paused = c.writes_paused_until() > now;
        let ok = c.state_ok() && !paused && self.may_grant(i);
        let in_force = c.in_sync_in_force();
        let Some(plane) = &mut self.plane else {
            return;
        };
        let node = &mut plane.nodes[i];
        let has_set = node
            .proposed
            .range(..=in_force)
            .next_back()
            .is_some_and(|(_, s)| !s.is_empty());
        let last = node.stream.iter().rev().find(|g| g.lock == lock);
        let free = last.is_none_or(|g| g.expires <= now);
        if !ok || !has_set || !free {
            plane.counts.refused += 1;
            return;
        }
        let token = node
            .stream
            .iter()
            .filter(|g| g.lock == lock)
            .map(|g| g.token)
            .max()
            .unwrap_or(0)
            + 1;
        let grant = Grant {
            id: plane.next_id,
            lock,
            token,
            at: now,
            expires: now + TTL,
        };
        plane.next_id += 1;
        node.stream.push(grant);
        node.ids.insert(grant.id);
        let offset = node.offset();
        node.pending.push(Pending { grant, offset });
    }

    /// I7: the master of each lock's slot (the live node claiming it with
    /// the newest config epoch) holds every grant clients were told of.
    pub(super) fn check_plane(&mut self) {
        let Some(plane) = &mut self.plane else {
            return;
        };
        if !std::mem::take(&mut plane.dirty) {
            return;
        }
        for (lock, &slot) in plane.slots.iter().enumerate() {
            let master = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.cluster.as_ref().map(|c| (i, c)))
                .filter(|(_, c)| serves(c, slot))
                .max_by_key(|(_, c)| c.node(c.myself()).map_or(0, |n| n.config_epoch));
            let Some((m, _)) = master else {
                continue;
            };
            let held = &plane.nodes[m].ids;
            if let Some(lost) = plane.told[lock].iter().find(|g| !held.contains(&g.id)) {
                self.violation = Some(Violation(format!(
                    "I7: node {m}, master of lock {lock}'s slot {slot}, lacks the grant of token {} told at {}",
                    lost.token, lost.at
                )));
                return;
            }
        }
    }
}

impl Sim {
    /// The ids of the grants in node `i`'s stream, in order.
    pub fn grants(&self, i: usize) -> Vec<u64> {
        self.plane
            .as_ref()
            .map(|p| p.nodes[i].stream.iter().map(|g| g.id).collect())
            .unwrap_or_default()
    }
}
