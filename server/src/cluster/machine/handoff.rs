//! Atomic slot migration's authority part (docs/CLUSTER.md, M7-M10): which
//! moves may start, the target's claim at the handoff, and the source giving
//! the slots up when it learns of that claim.

use super::{AdminError, Cluster};
use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::slots::SlotSet;

impl Cluster {
    /// M7: a migration of `slots` from this master to `target` may start:
    /// this node is a master owning every one of them, none open by
    /// `SETSLOT`, and `target` is another known master.
    pub fn check_export(&self, slots: &SlotSet, target: Id) -> Result<(), AdminError> {
        if !self.me().is_master() {
            return Err(AdminError::MigrationOnReplica);
        }
        if target == self.myself {
            return Err(AdminError::MigrateToMyself);
        }
        match self.nodes.get(&target) {
            None => return Err(AdminError::UnknownSetSlotNode(target.to_string())),
            Some(node) if !node.is_master() => return Err(AdminError::TargetNotMaster),
            Some(_) => {}
        }
        for slot in slots.iter() {
            if self.owners[usize::from(slot)] != Some(self.myself) {
                return Err(AdminError::NotOwner(slot));
            }
            self.closed(slot)?;
        }
        Ok(())
    }

    /// M8: an import of `slots` from `source` may start here: this node is a
    /// master owning none of them, none open by `SETSLOT`, and its table has
    /// `source` as the owner of every one.
    pub fn check_import(&self, slots: &SlotSet, source: Id) -> Result<(), AdminError> {
        if !self.me().is_master() {
            return Err(AdminError::MigrationOnReplica);
        }
        for slot in slots.iter() {
            match self.owners[usize::from(slot)] {
                Some(owner) if owner == self.myself => return Err(AdminError::AlreadyOwner(slot)),
                Some(owner) if owner == source => {}
                _ => return Err(AdminError::NotSourceSlot(slot)),
            }
            self.closed(slot)?;
        }
        Ok(())
    }

    fn closed(&self, slot: u16) -> Result<(), AdminError> {
        match self.migrating(slot).or(self.importing(slot)) {
            Some(_) => Err(AdminError::SlotOpen(slot)),
            None => Ok(()),
        }
    }

    /// M10, the source: a handoff is sent (`true`) or its outcome known
    /// (`false`). While one is in flight this master takes no new config
    /// epoch, so the target's claim, above every epoch the source had seen
    /// when it handed off, stays above the source's own.
    pub fn hold_epoch(&mut self, on: bool) {
        match on {
            true => self.handoffs += 1,
            false => self.handoffs = self.handoffs.saturating_sub(1),
        }
    }

    /// M10, the target: claims `slots`, imported whole, under a config epoch
    /// above every one this node has seen and above `source_epoch` (the
    /// source's current epoch when it handed off); saved by the step before
    /// its answer goes, and announced to every node now. Returns the epoch.
    /// Refused while this master has a handoff of its own in flight.
    pub fn claim_import(
        &mut self,
        slots: &SlotSet,
        source_epoch: u64,
        now: Millis,
    ) -> Result<u64, AdminError> {
        if !self.me().is_master() {
            return Err(AdminError::MigrationOnReplica);
        }
        if self.handoffs > 0 {
            return Err(AdminError::HandoffInFlight);
        }
        self.current_epoch = self.current_epoch.max(source_epoch) + 1;
        let epoch = self.current_epoch;
        self.me_mut().config_epoch = epoch;
        for slot in slots.iter() {
            self.assign(slot, self.myself);
        }
        self.claim_changed();
        self.save = true;
        self.broadcast_pong(now);
        Ok(epoch)
    }

    /// M10, the source: `target` claimed `slots` under `epoch` (its answer
    /// to the handoff). Applied as that claim coming by the bus would be
    /// (rule 15): this node gives the slots up and drops their keys now,
    /// rather than at the next message from the target.
    pub fn handed_off(&mut self, target: Id, epoch: u64, slots: &SlotSet, now: Millis) {
        let Some(node) = self.nodes.get(&target) else {
            return;
        };
        let mut claim = (*node.slots).clone();
        for slot in slots.iter() {
            claim.insert(slot);
        }
        self.apply_claim(target, epoch, &claim, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::machine::Settings;
    use crate::cluster::sim::{Network, Sim};

    const T: Millis = 1_000;

    fn cluster(seed: u64) -> Sim {
        let settings = Settings {
            node_timeout: T,
            ..Settings::DEFAULT
        };
        Sim::with_replicas(3, &[], settings, Network::default(), seed).unwrap()
    }

    fn node(sim: &Sim, i: usize) -> &Cluster {
        sim.cluster(i).unwrap()
    }

    /// The owner of `slot` in node `i`'s table.
    fn owner(sim: &Sim, i: usize, slot: u16) -> Option<Id> {
        sim.cluster(i).unwrap().owners[usize::from(slot)]
    }

    #[test]
    fn a_claim_at_the_handoff_wins_everywhere_and_the_source_gives_the_slots_up() {
        let mut sim = cluster(7);
        let (source, target) = (sim.id(0), sim.id(1));
        let slot = (0..16384u16)
            .find(|&s| owner(&sim, 0, s) == Some(source))
            .unwrap();
        let mut moving = SlotSet::default();
        moving.insert(slot);
        assert_eq!(node(&sim, 0).check_export(&moving, target), Ok(()));
        assert_eq!(node(&sim, 1).check_import(&moving, source), Ok(()));
        assert_eq!(
            node(&sim, 1).check_import(&moving, target),
            Err(AdminError::NotSourceSlot(slot))
        );
        assert_eq!(
            node(&sim, 0).check_export(&moving, source),
            Err(AdminError::MigrateToMyself)
        );
        assert_eq!(
            node(&sim, 2).check_export(&moving, target),
            Err(AdminError::NotOwner(slot))
        );
        let mut epoch = 0;
        sim.with(1, |c, now| epoch = c.claim_import(&moving, 0, now).unwrap());
        let highest = (0..3).map(|i| node(&sim, i).me().config_epoch).max();
        assert_eq!(highest, Some(epoch), "the single highest config epoch");
        sim.with(0, |c, now| c.handed_off(target, epoch, &moving, now));
        assert_eq!(owner(&sim, 0, slot), Some(target), "given up at once");
        sim.run_for(5 * T).unwrap();
        for i in 0..3 {
            assert_eq!(owner(&sim, i, slot), Some(target), "node {i}");
        }
        sim.converged().unwrap();
    }
}
