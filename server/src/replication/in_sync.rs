//! A master's in-sync set of replicas (docs/CLUSTER.md, L1 and L2): the
//! replicas every lock change waits for. A replica joins once it has
//! acknowledged every lock change answered so far, and leaves when it goes
//! quiet or fails to acknowledge one in time. In cluster mode a set is in
//! force once the cluster says so (a set that drops a replica needs a majority
//! of masters to store it, and voters then refuse that replica, F4); until
//! then, a lock change is answered only once every replica of every set that
//! may be in force, or is about to be proposed, acknowledged it.

use std::sync::Arc;

use super::acks::Replica;
use crate::cluster::id::Id;

/// The sets, as the data plane keeps them (inside `Replicas`, under the lock
/// that settles held units, so a join and an answer never cross).
#[derive(Debug, Default)]
pub(super) struct InSync {
    /// The newest set decided.
    wanted: Vec<Arc<Replica>>,
    /// The newest set in force.
    in_force: Vec<Arc<Replica>>,
    /// Sets proposed to the cluster, not in force yet, oldest first.
    proposed: Vec<(u64, Vec<Arc<Replica>>)>,
    /// The highest feed offset of a lock change answered.
    answered: u64,
}

/// Whether a list holds this very registration of a replica (a replica that
/// reconnects is a new one: it must catch up before it joins again).
fn holds(list: &[Arc<Replica>], replica: &Arc<Replica>) -> bool {
    list.iter().any(|r| Arc::ptr_eq(r, replica))
}

impl InSync {
    /// The set in force: how many replicas lock changes wait for at least.
    pub(super) fn in_force(&self) -> &[Arc<Replica>] {
        &self.in_force
    }

    /// Every replica a lock change answered now must have acknowledged: the
    /// set in force, the sets on their way to it and the newest decided.
    pub(super) fn must_ack(&self) -> Vec<Arc<Replica>> {
        let mut all: Vec<Arc<Replica>> = Vec::new();
        let sets = std::iter::once(&self.in_force)
            .chain(self.proposed.iter().map(|(_, set)| set))
            .chain(std::iter::once(&self.wanted));
        for replica in sets.flatten() {
            if !holds(&all, replica) {
                all.push(replica.clone());
            }
        }
        all
    }

    /// A lock change ending at feed `offset` was answered.
    pub(super) fn answered(&mut self, offset: u64) {
        self.answered = self.answered.max(offset);
    }

    /// Decides the next set from the `registered` replicas: members stay while
    /// `fresh` and not behind on a lock change they failed to acknowledge;
    /// online, fresh replicas join once they acknowledged every lock change
    /// answered (`clustered`: only those the cluster knows by id). Returns
    /// the new set if it changed; from now on it must acknowledge too.
    pub(super) fn decide(
        &mut self,
        registered: &[Arc<Replica>],
        fresh: impl Fn(&Replica) -> bool,
        clustered: bool,
    ) -> Option<Vec<Arc<Replica>>> {
        let mut next: Vec<Arc<Replica>> = self
            .wanted
            .iter()
            .filter(|r| holds(registered, r) && fresh(r) && !r.is_behind())
            .cloned()
            .collect();
        for replica in registered {
            let joins = !holds(&next, replica)
                && replica.is_online()
                && fresh(replica)
                && !replica.is_behind()
                && replica.acked() >= self.answered
                && (!clustered || replica.node.is_some());
            if joins {
                next.push(replica.clone());
            }
        }
        let same = next.len() == self.wanted.len() && next.iter().all(|r| holds(&self.wanted, r));
        if same {
            return None;
        }
        self.wanted = next.clone();
        Some(next)
    }

    /// The set decided last is in force at once (no cluster to ask).
    pub(super) fn force(&mut self, set: Vec<Arc<Replica>>) {
        self.in_force = set;
    }

    /// `set` was proposed to the cluster as `version`.
    pub(super) fn proposed(&mut self, version: u64, set: Vec<Arc<Replica>>) {
        self.proposed.push((version, set));
    }

    /// The sets the cluster put in force (`in_force(version)`) replace the
    /// one in force, the newest winning.
    pub(super) fn confirm(&mut self, in_force: impl Fn(u64) -> bool) {
        let Some(newest) = self.proposed.iter().rposition(|(v, _)| in_force(*v)) else {
            return;
        };
        let mut confirmed = self.proposed.drain(..=newest);
        self.in_force = confirmed
            .next_back()
            .map(|(_, set)| set)
            .unwrap_or_default();
    }

    /// Node ids of a set, for the cluster.
    pub(super) fn ids(set: &[Arc<Replica>]) -> Vec<Id> {
        set.iter().filter_map(|r| r.node).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use tokio_util::sync::CancellationToken;

    use crate::replication::Replicas;

    fn replica(replicas: &Replicas, id: u64, node: Option<Id>) -> Arc<Replica> {
        let ip = IpAddr::from([127, 0, 0, 1]);
        replicas.add(id, ip, 7000, node, true, CancellationToken::new())
    }

    #[test]
    fn a_replica_joins_once_it_acknowledged_every_answered_lock_change() {
        let replicas = Replicas::default();
        let a = replica(&replicas, 1, None);
        let mut set = InSync::default();
        set.answered(100);
        let all = replicas.list();
        assert!(set.decide(&all, |_| true, false).is_none(), "behind");
        replicas.ack(&a, 100, true);
        let next = set.decide(&all, |_| true, false).expect("joined");
        assert!(Arc::ptr_eq(&next[0], &a));
        assert!(set.decide(&all, |_| true, false).is_none(), "unchanged");
        // Quiet: it leaves.
        assert!(set.decide(&all, |_| false, false).unwrap().is_empty());
    }

    #[test]
    fn in_cluster_mode_only_replicas_known_by_id_join() {
        let replicas = Replicas::default();
        replica(&replicas, 1, None);
        let b = replica(&replicas, 2, Some(Id([2; 20])));
        let mut set = InSync::default();
        let next = set.decide(&replicas.list(), |_| true, true).unwrap();
        assert_eq!(next.len(), 1);
        assert!(Arc::ptr_eq(&next[0], &b));
        assert_eq!(InSync::ids(&next), vec![Id([2; 20])]);
    }

    #[test]
    fn a_dropped_replica_must_acknowledge_until_the_smaller_set_is_in_force() {
        let replicas = Replicas::default();
        let a = replica(&replicas, 1, Some(Id([1; 20])));
        let mut set = InSync::default();
        let grown = set.decide(&replicas.list(), |_| true, true).unwrap();
        set.proposed(10, grown);
        set.confirm(|v| v <= 10);
        assert_eq!(set.in_force().len(), 1);
        let shrunk = set.decide(&replicas.list(), |_| false, true).unwrap();
        set.proposed(11, shrunk);
        set.confirm(|v| v <= 10);
        assert_eq!(set.in_force().len(), 1, "not confirmed yet");
        assert!(holds(&set.must_ack(), &a));
        set.confirm(|v| v <= 11);
        assert!(set.in_force().is_empty());
        assert!(set.must_ack().is_empty());
    }

    #[test]
    fn a_joining_replica_must_acknowledge_before_its_set_is_proposed() {
        let replicas = Replicas::default();
        let a = replica(&replicas, 1, Some(Id([1; 20])));
        let mut set = InSync::default();
        set.decide(&replicas.list(), |_| true, true).unwrap();
        assert!(set.in_force().is_empty());
        assert!(holds(&set.must_ack(), &a), "decided, not yet proposed");
    }
}
