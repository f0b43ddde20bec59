//! Slots a master is moving by Redis's resharding (docs/CLUSTER.md, M1, M5):
//! `CLUSTER SETSLOT slot MIGRATING|IMPORTING|STABLE|NODE`. The states are
//! this node's own (saved, shown in `CLUSTER NODES`, never gossiped); the
//! slot's owner changes only through claims (rule 15).

use std::collections::BTreeMap;

use super::{AdminError, Cluster};
use crate::clock::Millis;
use crate::cluster::id::Id;

/// `CLUSTER SETSLOT`'s subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetSlot {
    /// `MIGRATING node-id`: this owner is moving the slot to that master.
    Migrating(Id),
    /// `IMPORTING node-id`: this master is taking the slot from that one.
    Importing(Id),
    /// `STABLE`: neither.
    Stable,
    /// `NODE node-id`: the slot is that master's.
    Node(Id),
}

/// Open slots with their peers' ids, as `nodes.conf` lines hold them.
type OpenLines = Vec<(u16, String)>;

/// The slots this node is migrating or importing, with the peer of each.
#[derive(Debug, Default, Clone)]
pub(super) struct OpenSlots {
    pub(super) migrating: BTreeMap<u16, Id>,
    pub(super) importing: BTreeMap<u16, Id>,
    /// Counts changes, so the published view shows them at once.
    pub(super) version: u64,
}

impl Cluster {
    /// `CLUSTER SETSLOT slot ...` with Redis's checks and texts; `keys_here`
    /// is how many keys this node holds in the slot (`NODE` refuses to give
    /// a slot away while any are left).
    pub fn set_slot(
        &mut self,
        slot: u16,
        action: SetSlot,
        keys_here: u64,
        now: Millis,
    ) -> Result<(), AdminError> {
        if !self.me().is_master() {
            return Err(AdminError::SetSlotOnReplica);
        }
        let mine = self.owners[slot as usize] == Some(self.myself);
        match action {
            SetSlot::Migrating(target) => {
                if !mine {
                    return Err(AdminError::NotOwner(slot));
                }
                self.known_master(target)?;
                self.open.migrating.insert(slot, target);
            }
            SetSlot::Importing(source) => {
                if mine {
                    return Err(AdminError::AlreadyOwner(slot));
                }
                self.known_master(source)?;
                self.open.importing.insert(slot, source);
            }
            SetSlot::Stable => {
                self.open.migrating.remove(&slot);
                self.open.importing.remove(&slot);
            }
            SetSlot::Node(owner) => {
                self.known_master(owner)?;
                if mine && owner != self.myself && keys_here > 0 {
                    return Err(AdminError::StillHoldsKeys(slot));
                }
                // Given away with no keys left: the migration is over.
                if owner != self.myself {
                    self.open.migrating.remove(&slot);
                }
                if owner == self.myself && self.open.importing.remove(&slot).is_some() {
                    // The import is over: this claim must win everywhere
                    // (M5), so it goes under a config epoch of its own.
                    self.bump_epoch();
                    self.take_slot(slot, now);
                } else if owner == self.myself {
                    self.take_slot(slot, now);
                } else {
                    self.give_slot(slot, owner);
                }
            }
        }
        self.open.version += 1;
        self.save = true;
        Ok(())
    }

    /// The master this node migrates `slot` to, if it does.
    pub fn migrating(&self, slot: u16) -> Option<Id> {
        self.open.migrating.get(&slot).copied()
    }

    /// The master this node imports `slot` from, if it does.
    pub fn importing(&self, slot: u16) -> Option<Id> {
        self.open.importing.get(&slot).copied()
    }

    /// Every slot this node migrates, with its target, in slot order.
    pub fn migrating_slots(&self) -> Vec<(u16, Id)> {
        self.open
            .migrating
            .iter()
            .map(|(s, id)| (*s, *id))
            .collect()
    }

    /// Every slot this node imports, with its source, in slot order.
    pub fn importing_slots(&self) -> Vec<(u16, Id)> {
        self.open
            .importing
            .iter()
            .map(|(s, id)| (*s, *id))
            .collect()
    }

    /// Forgets every open slot (this node became a replica).
    pub(super) fn close_open_slots(&mut self) {
        if !self.open.migrating.is_empty() || !self.open.importing.is_empty() {
            self.open.migrating.clear();
            self.open.importing.clear();
            self.open.version += 1;
            self.save = true;
        }
    }

    /// `slot`, which this node migrated, now belongs to `owner` by a claim:
    /// the migration is over (as Redis 7.2 clears it when another shard
    /// claims the slot; a failover within this shard keeps it).
    pub(super) fn migrated_away(&mut self, slot: u16, owner: Id) {
        let other_shard = self.nodes.get(&owner).map(|n| n.shard) != Some(self.me().shard);
        if other_shard && self.open.migrating.remove(&slot).is_some() {
            self.open.version += 1;
            self.save = true;
        }
    }

    /// `id` names a known master.
    fn known_master(&self, id: Id) -> Result<(), AdminError> {
        match self.nodes.get(&id) {
            None => Err(AdminError::UnknownSetSlotNode(id.to_string())),
            Some(node) if !node.is_master() => Err(AdminError::TargetNotMaster),
            Some(_) => Ok(()),
        }
    }

    /// This master claims `slot` and tells every node now.
    fn take_slot(&mut self, slot: u16, now: Millis) {
        if self.owners[slot as usize] != Some(self.myself) {
            self.assign(slot, self.myself);
        }
        self.claim_changed();
        self.broadcast_pong(now);
    }

    /// `owner` holds `slot` in this node's table (its own claim, which
    /// spreads by rule 15, corrects any other node's).
    fn give_slot(&mut self, slot: u16, owner: Id) {
        let was_mine = self.owners[slot as usize] == Some(self.myself);
        self.assign(slot, owner);
        if was_mine {
            self.claim_changed();
        }
    }

    /// The states as `nodes.conf` and `CLUSTER NODES` print them:
    /// migrating, then importing.
    pub(super) fn open_slot_lines(&self) -> [OpenLines; 2] {
        let text =
            |map: &BTreeMap<u16, Id>| map.iter().map(|(s, id)| (*s, id.to_string())).collect();
        [text(&self.open.migrating), text(&self.open.importing)]
    }
}

#[cfg(test)]
mod tests;
