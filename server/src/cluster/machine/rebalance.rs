//! The ring rebalancing itself (docs/CLUSTER.md, M13): which slots the table
//! must move to match the ring over the masters that serve or may serve
//! slots, and which masters are leaving it.

use std::collections::BTreeMap;

use super::{AdminError, Cluster};
use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::message::Flags;
use crate::cluster::ring::{Ring, RingConfig};
use crate::cluster::slots::SlotSet;
use crate::keyspace::SLOTS;

/// The slots one master is to give another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingMove {
    /// The master that owns them.
    pub source: Id,
    /// Their ring owner.
    pub target: Id,
    /// The slots.
    pub slots: SlotSet,
}

/// What the ring asks of the table now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingPlan {
    /// The moves to start, at most the limit's worth of slots.
    pub moves: Vec<RingMove>,
    /// Every slot whose owner is not its ring owner (moving or not).
    pub differing: usize,
}

impl Cluster {
    /// `CLUSTER RING DRAIN [CANCEL]`: this master leaves the ring (its slots
    /// will move to their ring owners), or stays after all. Announced in
    /// its messages and saved.
    pub fn set_draining(&mut self, on: bool, now: Millis) -> Result<(), AdminError> {
        if !self.me().is_master() {
            return Err(AdminError::MigrationOnReplica);
        }
        if self.me().flags.has(Flags::DRAINING) != on {
            self.me_mut().flags.set(Flags::DRAINING, on);
            self.save = true;
            self.broadcast_pong(now);
        }
        Ok(())
    }

    /// M13: the moves that bring the table to the ring over the shards of
    /// the masters that serve or may serve slots (not draining, failing or
    /// still in handshake): every assigned slot whose owner is a live master
    /// other than its ring owner, at most `max_slots` of them, in slot
    /// order. Unassigned slots are `RING ASSIGN`'s; a failing master's
    /// slots wait for its failover.
    pub fn ring_plan(&self, max_slots: usize) -> RingPlan {
        let members: BTreeMap<String, Id> = self
            .nodes()
            .filter(|n| n.is_master() && !n.in_handshake() && !n.failing())
            .filter(|n| !n.flags.has(Flags::DRAINING))
            .map(|n| (n.shard.to_string(), n.id))
            .collect();
        if members.is_empty() {
            return RingPlan::default();
        }
        let names: Vec<&String> = members.keys().collect();
        let ring = Ring::build(&names, 0, &RingConfig::default());
        let mut plan = RingPlan::default();
        let mut moves: BTreeMap<(Id, Id), SlotSet> = BTreeMap::new();
        let mut planned = 0;
        for slot in 0..SLOTS as u16 {
            let Some(owner) = self.owners[usize::from(slot)] else {
                continue;
            };
            let live = self
                .nodes
                .get(&owner)
                .is_some_and(|n| n.is_master() && !n.failing());
            let Some(&target) = ring.owner(slot).and_then(|shard| members.get(shard)) else {
                continue;
            };
            if !live || target == owner {
                continue;
            }
            plan.differing += 1;
            if planned < max_slots {
                moves.entry((owner, target)).or_default().insert(slot);
                planned += 1;
            }
        }
        plan.moves = moves
            .into_iter()
            .map(|((source, target), slots)| RingMove {
                source,
                target,
                slots,
            })
            .collect();
        plan
    }

    /// True on the master that plans automatic rebalancing: the one with the
    /// smallest id among the live masters that serve slots.
    pub fn is_planner(&self) -> bool {
        let planner = self
            .nodes()
            .filter(|n| n.is_master() && !n.failing() && !n.slots.is_empty())
            .map(|n| n.id)
            .min();
        planner == Some(self.myself)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::machine::Settings;
    use crate::cluster::sim::{Network, Sim};

    const T: Millis = 1_000;

    fn settings() -> Settings {
        Settings {
            node_timeout: T,
            ..Settings::DEFAULT
        }
    }

    /// Moves `plan` at once, as finished migrations would: each target
    /// claims its slots and the source gives them up.
    fn apply(sim: &mut Sim, plan: &RingPlan) {
        for m in &plan.moves {
            let target = (0..sim.len()).find(|&i| sim.id(i) == m.target).unwrap();
            let source = (0..sim.len()).find(|&i| sim.id(i) == m.source).unwrap();
            let mut epoch = 0;
            sim.with(target, |c, now| {
                epoch = c.claim_import(&m.slots, 0, now).unwrap()
            });
            sim.with(source, |c, now| {
                c.handed_off(m.target, epoch, &m.slots, now)
            });
        }
        sim.run_for(3 * T).unwrap();
    }

    fn plan(sim: &Sim, i: usize) -> RingPlan {
        sim.cluster(i).unwrap().ring_plan(SLOTS)
    }

    /// Node `i`'s slots, in its own table.
    fn slots_of(sim: &Sim, i: usize) -> SlotSet {
        let me = sim.cluster(i).unwrap();
        (*me.node(me.myself()).unwrap().slots).clone()
    }

    #[test]
    fn a_drained_master_gives_only_its_slots_and_gets_its_ring_share_back() {
        let mut sim = Sim::with_replicas(4, &[], settings(), Network::default(), 3).unwrap();
        assert_eq!(plan(&sim, 0).differing, 0, "the table is the ring's");
        let fourth = slots_of(&sim, 3);
        // Draining: every one of its slots moves to the other three, and
        // little else (the ring's bounded loads settle a few slots anew).
        sim.with(3, |c, now| c.set_draining(true, now).unwrap());
        sim.run_for(3 * T).unwrap();
        let draining = plan(&sim, 0);
        assert_eq!(draining, plan(&sim, 2), "every master plans the same");
        let fair = SLOTS as f64 / 4.0;
        assert!(
            draining.differing as f64 <= 1.1 * fair,
            "{}",
            draining.differing
        );
        let leaving = sim.id(3);
        let given: usize = draining
            .moves
            .iter()
            .filter(|m| m.source == leaving)
            .map(|m| m.slots.len())
            .sum();
        assert_eq!(given, fourth.len());
        assert!(draining.moves.iter().all(|m| m.target != leaving));
        let limited = sim.cluster(0).unwrap().ring_plan(100);
        let limited: usize = limited.moves.iter().map(|m| m.slots.len()).sum();
        assert_eq!(limited, 100, "at most the limit at once");
        apply(&mut sim, &draining);
        assert!(slots_of(&sim, 3).is_empty());
        assert_eq!(plan(&sim, 0).differing, 0);
        // Emptied, it followed a master (as Redis's replica migration
        // does); reset, it joins again as a new empty master (a new shard)
        // would, and takes its ring share.
        sim.with(3, |c, now| c.reset(false, now));
        sim.meet(0, 3);
        sim.run_for(5 * T).unwrap();
        let joining = plan(&sim, 1);
        assert!(
            joining.differing as f64 <= 1.1 * fair,
            "{}",
            joining.differing
        );
        let taken: usize = joining
            .moves
            .iter()
            .filter(|m| m.target == leaving)
            .map(|m| m.slots.len())
            .sum();
        assert!(
            taken as f64 >= 0.9 * fair && taken as f64 <= 1.1 * fair,
            "{taken}"
        );
        apply(&mut sim, &joining);
        assert_eq!(slots_of(&sim, 3).len(), taken);
        assert_eq!(plan(&sim, 0).differing, 0);
        sim.converged().unwrap();
    }

    #[test]
    fn the_planner_is_the_smallest_serving_master() {
        let sim = Sim::with_replicas(3, &[0], settings(), Network::default(), 5).unwrap();
        let planners: Vec<usize> = (0..4)
            .filter(|&i| sim.cluster(i).unwrap().is_planner())
            .collect();
        let smallest = (0..3).min_by_key(|&i| sim.id(i)).unwrap();
        assert_eq!(planners, [smallest]);
    }
}
