//! The replicas a master streams to, what each acknowledged and when, and the
//! clients waiting in `WAIT` for acknowledgements (R8).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::blocking::{Outcome, Waiter, Wake};

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
    origin: Instant,
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas {
            list: Mutex::default(),
            waits: Mutex::default(),
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
    fn good_replicas_are_online_and_acknowledged_lately() {
        let replicas = Replicas::default();
        let a = replica(&replicas, 1);
        let ip = IpAddr::from([127, 0, 0, 1]);
        replicas.add(2, ip, 7001, false, CancellationToken::new());
        assert_eq!(replicas.good(10_000), 1, "the syncing one does not count");
        a.ack_at.store(0, Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(replicas.good(1), 0, "too late");
        replicas.remove(&a);
        assert_eq!(replicas.len(), 1);
    }
}
