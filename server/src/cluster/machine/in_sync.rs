//! The cluster's part of the lock rules (docs/CLUSTER.md, L2 and L3): a
//! master's in-sync set of replicas, shrunk only once a majority of the
//! slot-serving masters stored the smaller set (voters refuse candidates
//! outside it, F4), and when a master last heard a majority of masters.

use std::collections::BTreeSet;

use super::{Cluster, Link, Output};
use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::message::{Body, Message};

/// How often a set not yet stored everywhere is sent again (a message lost
/// with its link must not leave a shrink unconfirmed).
const RESEND: Millis = 1_000;

/// A master's in-sync set of replicas: every replica in it has acknowledged
/// every lock change the master answered (L1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InSync {
    /// Grows with every change; the newest version heard wins.
    pub version: u64,
    /// The replicas, in id order.
    pub members: Vec<Id>,
}

/// This master's own set: the newest proposed, who stored it, and the
/// newest version a majority stored.
#[derive(Debug, Default)]
pub(super) struct Proposal {
    current: Option<InSync>,
    /// The nodes that stored `current` (this one included).
    acks: BTreeSet<Id>,
    /// The newest version in force: stored by a majority of the
    /// slot-serving masters, or a growth (which needs no round).
    confirmed: u64,
    /// When `current` was last sent to the nodes that did not store it.
    sent_at: Millis,
}

impl Proposal {
    /// After a restart: the set saved last, to be confirmed again.
    pub(super) fn restored(mine: Option<&InSync>) -> Proposal {
        Proposal {
            current: mine.cloned(),
            ..Proposal::default()
        }
    }
}

impl Cluster {
    /// L2: the data plane proposes this master's in-sync set. A set that
    /// only adds replicas to the one in force is in force at once; any other
    /// (a replica dropped) is in force once a majority of the slot-serving
    /// masters stored it ([`Cluster::in_sync_confirmed`]). Every node hears
    /// of it either way. Returns the set's version (0 on a replica, which
    /// has no set).
    pub fn propose_in_sync(&mut self, members: Vec<Id>, now: Millis) -> u64 {
        if !self.me().is_master() {
            return 0;
        }
        let members: Vec<Id> = members
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let previous = self.proposal.current.as_ref();
        if let Some(set) = previous.filter(|set| set.members == members) {
            return set.version;
        }
        let in_force = previous.is_none_or(|set| self.proposal.confirmed >= set.version);
        let grows = previous.is_none_or(|set| set.members.iter().all(|m| members.contains(m)));
        // Versions only grow, across restarts too (the set is saved; the
        // clock covers a lost file).
        let version = previous.map_or(0, |set| set.version + 1).max(now);
        let set = InSync { version, members };
        tracing::info!(
            "in-sync set version {version}: {:?} ({})",
            set.members,
            if grows && in_force {
                "grown"
            } else {
                "to confirm"
            }
        );
        self.me_mut().in_sync = Some(set.clone());
        self.save = true;
        self.proposal.current = Some(set);
        self.proposal.acks = [self.myself].into_iter().collect();
        if grows && in_force {
            self.proposal.confirmed = version;
        }
        self.check_confirmed();
        self.announce_in_sync(now);
        version
    }

    /// L2: whether this master's set of `version` (or a newer one) is in
    /// force.
    pub fn in_sync_confirmed(&self, version: u64) -> bool {
        self.proposal.confirmed >= version
    }

    /// L2: the newest version of this master's set in force (0: none).
    pub fn in_sync_in_force(&self) -> u64 {
        self.proposal.confirmed
    }

    /// Sends the current set to every linked node that has not stored it.
    fn announce_in_sync(&mut self, now: Millis) {
        let Some(set) = self.proposal.current.clone() else {
            return;
        };
        self.proposal.sent_at = now;
        for peer in self.linked_peers() {
            if !self.proposal.acks.contains(&peer) {
                let body = Body::InSync {
                    version: set.version,
                    members: set.members.clone(),
                };
                self.send(peer, body, now);
            }
        }
    }

    /// A majority of the slot-serving masters (this one counting) stored the
    /// current set: it is in force.
    fn check_confirmed(&mut self) {
        let Some(version) = self.proposal.current.as_ref().map(|s| s.version) else {
            return;
        };
        let quorum = self.size() / 2 + 1;
        let acked = self
            .proposal
            .acks
            .iter()
            .filter(|id| self.nodes.get(id).is_some_and(|n| n.serves()))
            .count();
        if acked >= quorum && self.proposal.confirmed < version {
            tracing::info!("in-sync set version {version} stored by a majority");
            self.proposal.confirmed = version;
        }
    }

    /// `master`'s set arrived: stored if newer, and acknowledged on `link`
    /// once saved (the step's save comes before its messages). Not from a
    /// master being replaced: one that serves no slot here any more, or one
    /// a replica of which this node voted for lately (a shrink confirmed
    /// after that election would not keep its winner out, see L2).
    pub(super) fn in_sync_received(&mut self, link: Link, master: Id, set: InSync, now: Millis) {
        let version = set.version;
        let election = 2 * (2 * self.settings.node_timeout).max(2_000);
        let Some(node) = self.nodes.get_mut(&master) else {
            return;
        };
        let replaced = !node.serves()
            || node
                .voted_time
                .is_some_and(|at| now.saturating_sub(at) < election);
        if replaced {
            return;
        }
        if node
            .in_sync
            .as_ref()
            .is_none_or(|old| old.version < version)
        {
            node.in_sync = Some(set);
            self.save = true;
        }
        let digest = self.my_digest;
        let header = self.header_for(master, digest);
        let body = Body::InSyncAck { version };
        self.outputs
            .push(Output::Send(link, Message { header, body }));
    }

    /// A node stored this master's set of `version`.
    pub(super) fn in_sync_acked(&mut self, by: Id, version: u64) {
        if self
            .proposal
            .current
            .as_ref()
            .is_some_and(|s| s.version == version)
        {
            self.proposal.acks.insert(by);
            self.check_confirmed();
        }
    }

    /// The periodic part: sends the set again to nodes that did not store it,
    /// and recomputes when a majority was last heard (L3).
    pub(super) fn in_sync_tick(&mut self, now: Millis) {
        if self.me().is_master() && now.saturating_sub(self.proposal.sent_at) >= RESEND {
            // The masters serving slots may have changed since it was sent.
            self.check_confirmed();
            self.announce_in_sync(now);
        }
        self.heard_majority = self.majority_heard(now);
    }

    /// L3: when this node last heard a majority of the slot-serving masters,
    /// itself counting as now: the `q - 1`-th most recent time another one
    /// answered its ping. `None` on a replica (which grants nothing); now
    /// on a master no replica follows (no successor can be elected).
    fn majority_heard(&self, now: Millis) -> Option<Millis> {
        let me = self.me();
        if !me.is_master() {
            return None;
        }
        if !self
            .nodes
            .values()
            .any(|n| !n.is_master() && n.master == Some(self.myself))
        {
            return Some(now);
        }
        let quorum = self.size() / 2 + 1;
        let needed = quorum.saturating_sub(usize::from(me.serves()));
        if needed == 0 {
            return Some(now);
        }
        let mut heard: Vec<Millis> = self
            .nodes
            .values()
            .filter(|n| n.id != self.myself && n.serves())
            .map(|n| n.heard_us)
            .collect();
        heard.sort_unstable_by(|a, b| b.cmp(a));
        Some(heard.get(needed - 1).copied().unwrap_or(0))
    }

    /// L3: when this master last heard a majority of the slot-serving
    /// masters (as of the last tick, so at most a tick older than the truth:
    /// a later time would only allow more). `None` on a replica.
    pub fn heard_majority(&self) -> Option<Millis> {
        self.heard_majority
    }
}

#[cfg(test)]
mod tests;
