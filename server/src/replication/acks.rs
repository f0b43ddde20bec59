//! The replicas a master streams to, what each acknowledged and when, the
//! clients waiting in `WAIT` for acknowledgements (R8), and the units whose
//! lock changes wait for every replica of their in-sync set (L1).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::blocking::held::Phase;
use crate::blocking::{Held, Outcome, Waiter, Wake};

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
    state: AtomicU8,
    ack_offset: AtomicU64,
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

    /// The offset it acknowledged last.
    pub fn acked(&self) -> u64 {
        self.ack_offset.load(Relaxed)
    }
}

/// The replicas of this node.
#[derive(Debug)]
pub struct Replicas {
    list: Mutex<Vec<Arc<Replica>>>,
    waits: Mutex<Vec<(Arc<Waiter>, u64, usize)>>,
    holds: Mutex<Vec<HeldWait>>,
    origin: Instant,
}

/// A held unit waiting until each of `members` acknowledged `offset`.
#[derive(Debug)]
struct HeldWait {
    held: Arc<Held>,
    offset: u64,
    members: Vec<Arc<Replica>>,
}

impl HeldWait {
    fn acknowledged(&self) -> bool {
        self.members.iter().all(|r| r.acked() >= self.offset)
    }
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas {
            list: Mutex::default(),
            waits: Mutex::default(),
            holds: Mutex::default(),
            origin: Instant::now(),
        }
    }
}

impl Replicas {
    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Registers a replica that starts at `offset`, online already if it
    /// continues the stream (no full sync).
    pub fn add(
        &self,
        id: u64,
        ip: IpAddr,
        port: u16,
        online: bool,
        kill: CancellationToken,
    ) -> Arc<Replica> {
        let replica = Arc::new(Replica {
            id,
            ip,
            port,
            state: AtomicU8::new(u8::from(online)),
            ack_offset: AtomicU64::new(0),
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

    /// Online replicas that acknowledged within `max_age_ms`: the in-sync set
    /// as this node alone can tell it (see `Replication::in_sync`).
    pub fn fresh(&self, max_age_ms: u64) -> Vec<Arc<Replica>> {
        let now = self.now();
        self.list
            .lock()
            .iter()
            .filter(|r| r.state() == ReplicaState::Online)
            .filter(|r| now.saturating_sub(r.ack_at.load(Relaxed)) <= max_age_ms)
            .cloned()
            .collect()
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
    /// satisfies.
    pub fn ack(&self, replica: &Replica, offset: u64) {
        replica.ack_offset.fetch_max(offset, Relaxed);
        replica.ack_at.store(self.now(), Relaxed);
        self.settle_holds();
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

    /// Settles the held units every replica of their set acknowledged, and
    /// forgets those settled otherwise (undone) or nobody waits for.
    fn settle_holds(&self) {
        let mut holds = self.holds.lock();
        holds.retain(|wait| {
            if wait.held.phase() != Phase::Pending || Arc::strong_count(&wait.held) == 1 {
                return false;
            }
            if wait.acknowledged() {
                wait.held.acknowledged();
                return false;
            }
            true
        });
    }

    /// Registers `held`, settled once each of `members` acknowledged
    /// `offset` (at once if they all did already).
    pub fn hold(&self, held: Arc<Held>, offset: u64, members: Vec<Arc<Replica>>) {
        let wait = HeldWait {
            held,
            offset,
            members,
        };
        // Registered before checking, so an acknowledgement in between
        // settles it.
        self.holds.lock().push(wait);
        self.settle_holds();
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
        replicas.add(id, ip, 7000, true, CancellationToken::new())
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
        replicas.ack(&a, 150);
        assert_eq!(waiter.take(), None, "one of two");
        replicas.ack(&b, 99);
        assert_eq!(waiter.take(), None, "b is behind");
        replicas.ack(&b, 100);
        assert_eq!(waiter.take(), Some(Wake::Served(Outcome::Replicas(2))));
        replicas.ack(&a, 10);
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
        replicas.hold(held.clone(), 100, vec![a.clone(), b.clone()]);
        replicas.ack(&c, 500);
        replicas.ack(&a, 100);
        assert_eq!(held.phase(), Phase::Pending, "c is not in its set");
        replicas.ack(&b, 120);
        assert_eq!(held.phase(), Phase::Acked);
        // Acknowledged before it was registered: settled at once.
        let early = Arc::new(Held::new(0, 1, 1000));
        replicas.hold(early.clone(), 100, vec![a.clone()]);
        assert_eq!(early.phase(), Phase::Acked);
        // A unit undone meanwhile is forgotten.
        let late = Arc::new(Held::new(0, 1, 1000));
        replicas.hold(late.clone(), 900, vec![a.clone()]);
        late.start_undo();
        replicas.ack(&a, 1000);
        assert_eq!(late.phase(), Phase::Undoing);
        assert!(replicas.holds.lock().is_empty());
    }

    #[test]
    fn good_replicas_are_online_and_acknowledged_lately() {
        let replicas = Replicas::default();
        let a = replica(&replicas, 1);
        let ip = IpAddr::from([127, 0, 0, 1]);
        replicas.add(2, ip, 7001, false, CancellationToken::new());
        assert_eq!(replicas.good(10_000), 1, "the syncing one does not count");
        assert_eq!(replicas.fresh(10_000).len(), 1);
        assert!(replicas.any_online());
        a.ack_at.store(0, Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(replicas.good(1), 0, "too late");
        assert!(replicas.fresh(1).is_empty());
        replicas.remove(&a);
        assert_eq!(replicas.len(), 1);
    }
}
