//! The replicas a master streams to, what each acknowledged and when, the
//! clients waiting in `WAIT` for acknowledgements (R8), and the units whose
//! lock changes wait for every replica of their in-sync set (L1, L2).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::in_sync::InSync;
use crate::blocking::held::Phase;
use crate::blocking::{Held, Outcome, Waiter, Wake};
use crate::cluster::id::Id;

/// Where a replica's sync stands (`INFO` prints these names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Receiving its full sync's slot snapshots (Redis: `send_bulk`).
    SendBulk,
    /// Following the stream.
    Online,
}

impl ReplicaState {
    /// The name `INFO replication` prints.
    pub fn name(self) -> &'static str {
        match self {
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
        }
    }
}

/// One replica connected to this node.
#[derive(Debug)]
pub struct Replica {
    /// The client id of its connection.
    pub id: u64,
    /// Its address.
    pub ip: IpAddr,
    /// The port it serves clients on (`REPLCONF listening-port`).
    pub port: u16,
    /// Its cluster node id (`REPLCONF node-id`, cluster mode).
    pub node: Option<Id>,
    state: AtomicU8,
    ack_offset: AtomicU64,
    /// The end of a lock change it failed to acknowledge in time: until it
    /// acknowledges that far it stays out of the in-sync set.
    behind: AtomicU64,
    /// When it last acknowledged (ms since the registry's origin).
    ack_at: AtomicU64,
    /// Cancelled to disconnect it.
    pub kill: CancellationToken,
}

impl Replica {
    /// Where its sync stands.
    pub fn state(&self) -> ReplicaState {
        match self.state.load(Relaxed) {
            0 => ReplicaState::SendBulk,
            _ => ReplicaState::Online,
        }
    }

    /// Its sync finished: it follows the stream.
    pub fn online(&self) {
        self.state.store(1, Relaxed);
    }

    /// True once its sync finished.
    pub fn is_online(&self) -> bool {
        self.state() == ReplicaState::Online
    }

    /// The offset it acknowledged last.
    pub fn acked(&self) -> u64 {
        self.ack_offset.load(Relaxed)
    }

    /// True while it has not acknowledged a lock change it let time out.
    pub fn is_behind(&self) -> bool {
        self.acked() < self.behind.load(Relaxed)
    }
}

/// The replicas of this node.
#[derive(Debug)]
pub struct Replicas {
    list: Mutex<Vec<Arc<Replica>>>,
    waits: Mutex<Vec<(Arc<Waiter>, u64, usize)>>,
    /// Lock order: `holds`, then `in_sync`, then `list`.
    holds: Mutex<Vec<HeldWait>>,
    in_sync: Mutex<InSync>,
    /// One decision about the in-sync set at a time, so the cluster hears
    /// the sets in the order they were decided.
    deciding: Mutex<()>,
    origin: Instant,
}

/// Where a master's in-sync set is put in force (L2): the cluster, or, in
/// standalone mode, nowhere (in force at once).
pub trait SetAuthority {
    /// True in cluster mode.
    fn clustered(&self) -> bool;
    /// Proposes the set of these replicas; returns its version.
    fn propose(&self, members: Vec<Id>) -> u64;
    /// True if the set of `version` (or a newer one) is in force.
    fn in_force(&self, version: u64) -> bool;
    /// True if a lock change may be answered now: this master heard a
    /// majority of masters lately (L3; always, standalone).
    fn may_answer(&self) -> bool;
}

/// A held unit waiting until each of `members` acknowledged `offset`.
#[derive(Debug)]
struct HeldWait {
    held: Arc<Held>,
    offset: u64,
    members: Vec<Arc<Replica>>,
}

impl HeldWait {
    /// Every replica of its set, and of `also` (the sets that may be in
    /// force now), acknowledged it.
    fn acknowledged(&self, also: &[Arc<Replica>]) -> bool {
        self.members
            .iter()
            .chain(also)
            .all(|r| r.acked() >= self.offset)
    }

    /// It timed out: the replicas that had not acknowledged it are behind.
    fn mark_laggards(&self, also: &[Arc<Replica>]) {
        for replica in self.members.iter().chain(also) {
            if replica.acked() < self.offset {
                replica.behind.fetch_max(self.offset, Relaxed);
            }
        }
    }
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas {
            list: Mutex::default(),
            waits: Mutex::default(),
            holds: Mutex::default(),
            in_sync: Mutex::default(),
            deciding: Mutex::default(),
            origin: Instant::now(),
        }
    }
}

impl Replicas {
    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Registers a replica, online already if it continues the stream (no
    /// full sync).
    pub fn add(
        &self,
        id: u64,
        ip: IpAddr,
        port: u16,
        node: Option<Id>,
        online: bool,
        kill: CancellationToken,
    ) -> Arc<Replica> {
        let replica = Arc::new(Replica {
            id,
            ip,
            port,
            node,
            state: AtomicU8::new(u8::from(online)),
            ack_offset: AtomicU64::new(0),
            behind: AtomicU64::new(0),
            ack_at: AtomicU64::new(self.now()),
            kill,
        });
        self.list.lock().push(replica.clone());
        replica
    }

    /// Forgets a replica that disconnected.
    pub fn remove(&self, replica: &Arc<Replica>) {
        self.list.lock().retain(|r| !Arc::ptr_eq(r, replica));
    }

    /// The replicas, in the order they connected.
    pub fn list(&self) -> Vec<Arc<Replica>> {
        self.list.lock().clone()
    }

    /// How many replicas are connected.
    pub fn len(&self) -> usize {
        self.list.lock().len()
    }

    /// True when no replica is connected.
    pub fn is_empty(&self) -> bool {
        self.list.lock().is_empty()
    }

    /// Seconds since `replica` last acknowledged (`lag` in `INFO`).
    pub fn lag_seconds(&self, replica: &Replica) -> u64 {
        self.now().saturating_sub(replica.ack_at.load(Relaxed)) / 1000
    }

    /// Disconnects every replica (this node became a replica itself).
    pub fn disconnect_all(&self) {
        for replica in self.list.lock().iter() {
            replica.kill.cancel();
        }
    }

    /// Online replicas that acknowledged within `max_lag_ms`
    /// (`min-replicas-to-write`).
    pub fn good(&self, max_lag_ms: u64) -> usize {
        let now = self.now();
        self.list
            .lock()
            .iter()
            .filter(|r| r.state() == ReplicaState::Online)
            .filter(|r| now.saturating_sub(r.ack_at.load(Relaxed)) <= max_lag_ms)
            .count()
    }

    /// The in-sync set in force (L1, L2): how many replicas it has, and
    /// every replica a lock change must wait for now (the set in force, and
    /// those on their way in or out: see `in_sync.rs`).
    pub fn in_sync(&self) -> (usize, Vec<Arc<Replica>>) {
        let set = self.in_sync.lock();
        (set.in_force().len(), set.must_ack())
    }

    /// Decides the in-sync set again (L2): members that did not acknowledge
    /// within `window_ms`, or let a lock change time out, leave it; replicas
    /// that acknowledged every lock change answered join it. A new set is
    /// proposed to `authority`, and the sets it put in force replace the one
    /// in force. `may_answer`: see [`Replicas::ack`].
    pub fn refresh_in_sync(&self, window_ms: u64, authority: &dyn SetAuthority, may_answer: bool) {
        let _deciding = self.deciding.lock();
        self.settle_holds(may_answer);
        let now = self.now();
        let fresh = |r: &Replica| now.saturating_sub(r.ack_at.load(Relaxed)) <= window_ms;
        let clustered = authority.clustered();
        let decided = {
            let _holds = self.holds.lock();
            let mut set = self.in_sync.lock();
            let registered = self.list();
            let decided = set.decide(&registered, fresh, clustered);
            match decided {
                Some(next) if !clustered => {
                    set.force(next);
                    None
                }
                decided => decided,
            }
        };
        // Proposed outside the locks: the cluster may save its file. The
        // decided set must acknowledge from now on already (`must_ack`).
        if let Some(next) = decided {
            let version = authority.propose(InSync::ids(&next));
            self.in_sync.lock().proposed(version, next);
        }
        if clustered {
            self.in_sync.lock().confirm(|v| authority.in_force(v));
        }
    }

    /// Forgets the in-sync set (this node changed role).
    pub fn reset_in_sync(&self) {
        let _deciding = self.deciding.lock();
        let _holds = self.holds.lock();
        *self.in_sync.lock() = InSync::default();
    }

    /// True if some replica finished its sync and follows the stream.
    pub fn any_online(&self) -> bool {
        self.list
            .lock()
            .iter()
            .any(|r| r.state() == ReplicaState::Online)
    }

    /// How many replicas acknowledged `offset` or later.
    pub fn acked(&self, offset: u64) -> usize {
        self.list
            .lock()
            .iter()
            .filter(|r| r.acked() >= offset)
            .count()
    }

    /// `replica` acknowledged `offset` (`REPLCONF ACK`): wakes the `WAIT`s it
    /// satisfies, and answers the held units it completes if `may_answer`
    /// (this master heard a majority of masters lately, L3; otherwise they
    /// wait, and are undone if that does not change in time).
    pub fn ack(&self, replica: &Replica, offset: u64, may_answer: bool) {
        replica.ack_offset.fetch_max(offset, Relaxed);
        replica.ack_at.store(self.now(), Relaxed);
        self.settle_holds(may_answer);
        let mut waits = self.waits.lock();
        if waits.is_empty() {
            return;
        }
        // A wait its client abandoned (timed out, disconnected) has no other owner.
        waits.retain(|(waiter, ..)| Arc::strong_count(waiter) > 1);
        waits.retain(|(waiter, offset, wanted)| {
            let count = self.acked(*offset);
            if count < *wanted {
                return true;
            }
            waiter.wake(Wake::Served(Outcome::Replicas(count)));
            false
        });
    }

    /// Settles the held units every replica of their set, and of the sets
    /// that may be in force now, acknowledged (if `may_answer`), and forgets
    /// those settled otherwise (undone: their laggards fall behind) or
    /// nobody waits for.
    fn settle_holds(&self, may_answer: bool) {
        let mut holds = self.holds.lock();
        if holds.is_empty() {
            return;
        }
        let mut set = self.in_sync.lock();
        let also = set.must_ack();
        holds.retain(|wait| {
            match wait.held.phase() {
                Phase::Pending if Arc::strong_count(&wait.held) > 1 => {}
                Phase::Pending | Phase::Acked => return false,
                _ => {
                    wait.mark_laggards(&also);
                    return false;
                }
            }
            if may_answer && wait.acknowledged(&also) && wait.held.acknowledged() {
                set.answered(wait.offset);
                return false;
            }
            true
        });
    }

    /// Registers `held`, settled once each of `members` (and of the sets
    /// that may be in force then) acknowledged `offset`: at once if they all
    /// did already and `may_answer`.
    pub fn hold(&self, held: Arc<Held>, offset: u64, members: Vec<Arc<Replica>>, may_answer: bool) {
        let wait = HeldWait {
            held,
            offset,
            members,
        };
        // Registered before checking, so an acknowledgement in between
        // settles it.
        self.holds.lock().push(wait);
        self.settle_holds(may_answer);
    }

    /// Registers a `WAIT` for `wanted` replicas to acknowledge `offset`.
    pub fn wait(&self, waiter: Arc<Waiter>, offset: u64, wanted: usize) {
        self.waits.lock().push((waiter, offset, wanted));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocking::BlockedOp;

    fn replica(replicas: &Replicas, id: u64) -> Arc<Replica> {
        let ip = IpAddr::from([127, 0, 0, 1]);
        replicas.add(id, ip, 7000, None, true, CancellationToken::new())
    }

    #[test]
    fn a_wait_is_woken_once_enough_replicas_acknowledged_its_offset() {
        let replicas = Replicas::default();
        let (a, b) = (replica(&replicas, 1), replica(&replicas, 2));
        let waiter = Arc::new(Waiter::new(
            9,
            vec![],
            BlockedOp::Replicas { offset: 100 },
            None,
        ));
        replicas.wait(waiter.clone(), 100, 2);
        replicas.ack(&a, 150, true);
        assert_eq!(waiter.take(), None, "one of two");
        replicas.ack(&b, 99, true);
        assert_eq!(waiter.take(), None, "b is behind");
        replicas.ack(&b, 100, true);
        assert_eq!(waiter.take(), Some(Wake::Served(Outcome::Replicas(2))));
        replicas.ack(&a, 10, true);
        assert_eq!(a.acked(), 150, "acknowledged offsets never go back");
        assert_eq!(replicas.acked(120), 1);
    }

    #[test]
    fn a_held_unit_waits_for_every_replica_of_its_set() {
        let replicas = Replicas::default();
        let (a, b, c) = (
            replica(&replicas, 1),
            replica(&replicas, 2),
            replica(&replicas, 3),
        );
        let held = Arc::new(Held::new(0, 2, 1000));
        replicas.hold(held.clone(), 100, vec![a.clone(), b.clone()], true);
        replicas.ack(&c, 500, true);
        replicas.ack(&a, 100, true);
        assert_eq!(held.phase(), Phase::Pending, "c is not in its set");
        replicas.ack(&b, 120, true);
        assert_eq!(held.phase(), Phase::Acked);
        // Acknowledged before it was registered: settled at once.
        let early = Arc::new(Held::new(0, 1, 1000));
        replicas.hold(early.clone(), 100, vec![a.clone()], true);
        assert_eq!(early.phase(), Phase::Acked);
        // A unit undone meanwhile is forgotten.
        let late = Arc::new(Held::new(0, 1, 1000));
        replicas.hold(late.clone(), 900, vec![a.clone()], true);
        late.start_undo();
        replicas.ack(&a, 1000, true);
        assert_eq!(late.phase(), Phase::Undoing);
        assert!(replicas.holds.lock().is_empty());
    }

    #[test]
    fn good_replicas_are_online_and_acknowledged_lately() {
        let replicas = Replicas::default();
        let a = replica(&replicas, 1);
        let ip = IpAddr::from([127, 0, 0, 1]);
        replicas.add(2, ip, 7001, None, false, CancellationToken::new());
        assert_eq!(replicas.good(10_000), 1, "the syncing one does not count");
        assert!(replicas.any_online());
        a.ack_at.store(0, Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(replicas.good(1), 0, "too late");
        replicas.remove(&a);
        assert_eq!(replicas.len(), 1);
    }

    /// A cluster that puts sets in force when told to.
    #[derive(Default)]
    struct FakeCluster {
        proposed: Mutex<Vec<(u64, Vec<Id>)>>,
        confirmed: AtomicU64,
    }

    impl SetAuthority for FakeCluster {
        fn clustered(&self) -> bool {
            true
        }

        fn propose(&self, members: Vec<Id>) -> u64 {
            let mut proposed = self.proposed.lock();
            let version = proposed.len() as u64 + 1;
            proposed.push((version, members));
            version
        }

        fn in_force(&self, version: u64) -> bool {
            self.confirmed.load(Relaxed) >= version
        }

        fn may_answer(&self) -> bool {
            true
        }
    }

    fn node_replica(replicas: &Replicas, id: u64) -> Arc<Replica> {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let node = Some(Id([id as u8; 20]));
        replicas.add(id, ip, 7000, node, true, CancellationToken::new())
    }

    #[test]
    fn a_held_unit_is_answered_only_while_the_master_may_answer() {
        let replicas = Replicas::default();
        let a = replica(&replicas, 1);
        let held = Arc::new(Held::new(0, 1, 1000));
        replicas.hold(held.clone(), 100, vec![a.clone()], false);
        replicas.ack(&a, 100, false);
        assert_eq!(held.phase(), Phase::Pending, "no majority heard (L3)");
        replicas.ack(&a, 100, true);
        assert_eq!(held.phase(), Phase::Acked);
    }

    #[test]
    fn the_cluster_puts_the_in_sync_set_in_force_and_lock_changes_wait_for_it() {
        let replicas = Replicas::default();
        let cluster = FakeCluster::default();
        let a = node_replica(&replicas, 1);
        replicas.refresh_in_sync(10_000, &cluster, true);
        assert_eq!(cluster.proposed.lock()[0], (1, vec![Id([1; 20])]));
        assert_eq!(replicas.in_sync().0, 0, "not in force yet");
        // Decided: it must acknowledge already, even a unit held without it.
        let held = Arc::new(Held::new(0, 0, 1000));
        replicas.hold(held.clone(), 50, Vec::new(), true);
        assert_eq!(held.phase(), Phase::Pending);
        cluster.confirmed.store(1, Relaxed);
        replicas.refresh_in_sync(10_000, &cluster, true);
        assert_eq!(replicas.in_sync().0, 1);
        replicas.ack(&a, 50, true);
        assert_eq!(held.phase(), Phase::Acked);
        // A unit it lets time out puts it behind: the next set drops it,
        // and until that set is in force, lock changes still wait for it.
        let late = Arc::new(Held::new(0, 1, 1000));
        replicas.hold(late.clone(), 80, vec![a.clone()], true);
        late.start_undo();
        replicas.refresh_in_sync(10_000, &cluster, true);
        assert!(a.is_behind());
        assert_eq!(cluster.proposed.lock()[1], (2, vec![]));
        let (in_force, must_ack) = replicas.in_sync();
        assert_eq!((in_force, must_ack.len()), (1, 1));
        cluster.confirmed.store(2, Relaxed);
        replicas.refresh_in_sync(10_000, &cluster, true);
        assert_eq!(replicas.in_sync().0, 0);
        // Caught up with every answered change, it joins again.
        replicas.ack(&a, 80, true);
        replicas.refresh_in_sync(10_000, &cluster, true);
        assert_eq!(cluster.proposed.lock()[2], (3, vec![Id([1; 20])]));
    }
}
