//! The registry of clients blocked on keys (`BLPOP`, `BLMOVE`, `BZPOPMIN`,
//! `LOCK.ACQUIRE ... WAIT`, ...): who waits on which key, in arrival order, for
//! what, and the outcome each is woken with.
//!
//! ```text
//! BLPOP k 5 ──(k empty, slot of k locked)──▶ register waiter on k ──▶ connection awaits
//! LPUSH k v ──▶ effect on k ──▶ commit (slot of k still locked) ──▶ serve(k): first
//!               waiter in FIFO order gets its pop done, outcome stored, task woken
//! ```
//! Serving is the write path's (`write::commit`): after the whole unit of work
//! and under its slot locks, so a woken client always gets the element it was
//! woken for and sees the state after the unit. The connection turns the outcome
//! into its reply. Lock order is always slot locks, then this registry's mutex.
//! A lock or lease granted to a waiter may have to wait for replicas'
//! acknowledgements before its reply goes (`held`, L1).
//! Uses only the clock and the keyspace's types.

pub mod held;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::Millis;
use crate::keyspace::types::stream::StreamId;
use crate::keyspace::types::{EncodingLimits, End};

pub use held::Held;

/// What a blocked client wants done when one of its keys gets data.
#[derive(Debug, Clone)]
pub enum BlockedOp {
    /// Pop from a list: one element replied as `[key, element]` (BLPOP), or up to
    /// `count` replied as `[key, [elements]]` (BLMPOP).
    ListPop {
        /// Which end.
        end: End,
        /// `Some` for BLMPOP's reply shape.
        count: Option<usize>,
    },
    /// Move an element to another list (BLMOVE, BRPOPLPUSH); replies the element.
    ListMove {
        /// The list to push onto.
        destination: Vec<u8>,
        /// Where to pop.
        from: End,
        /// Where to push.
        to: End,
        /// The configured encoding limits when the client blocked: the node size
        /// of a destination list the move creates.
        limits: EncodingLimits,
    },
    /// Pop a sorted set's lowest (or highest) member, replied as `[key,
    /// member, score]` (BZPOPMIN), or up to `count` replied as `[key, [[member,
    /// score] ...]]` (BZMPOP).
    ZPop {
        /// Pop the highest instead.
        max: bool,
        /// `Some` for BZMPOP's reply shape.
        count: Option<usize>,
    },
    /// Read a key being filled (`CACHE.GET ... WAIT`): replies what the fill
    /// stored, or a new lease if the filler's lease ran out.
    CacheRead {
        /// Lease to grant, in milliseconds, if it comes to that.
        lease: Millis,
    },
    /// Take a native lock once it is free (`LOCK.ACQUIRE ... WAIT`); replies
    /// the fencing token.
    LockAcquire {
        /// Who takes it.
        owner: Vec<u8>,
        /// Lease in milliseconds.
        ttl: Millis,
    },
    /// Read entries added to a stream (XREAD), or a group's new entries
    /// (XREADGROUP `>`): every reader with something to read is served, in
    /// arrival order, and a reader with nothing yet does not hold up those
    /// behind it.
    StreamRead(Box<StreamRead>),
    /// A write held while a manual failover pauses writes (F7): at the
    /// deadline the command runs again (and is routed again).
    Paused,
    /// Wait until replicas acknowledged the stream up to `offset` (`WAIT`);
    /// replies how many did. Waits on no key: the replication state wakes it.
    Replicas {
        /// The feed offset to reach.
        offset: u64,
    },
}

/// What a blocked stream reader waits for.
#[derive(Debug, Clone)]
pub struct StreamRead {
    /// Per key (in the waiter's order), the id to read after; ignored for a
    /// group, which reads after its own last id.
    pub after: Vec<StreamId>,
    /// Most entries (0: all).
    pub count: usize,
    /// XREADGROUP's group, consumer and NOACK.
    pub group: Option<(Vec<u8>, Vec<u8>, bool)>,
}

/// An entry read from a stream, owned: its id and field-value pairs (field,
/// value, field, value...), or `None` for an id whose entry is gone (a
/// consumer's history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    /// The entry's id.
    pub id: StreamId,
    /// Its fields and values.
    pub fields: Option<Vec<Vec<u8>>>,
}

impl BlockedOp {
    /// True for a wait on a lease: a lock, or a cache fill.
    pub fn is_lease(&self) -> bool {
        matches!(
            self,
            BlockedOp::LockAcquire { .. } | BlockedOp::CacheRead { .. }
        )
    }
}

/// What serving a blocked client did, for its connection to reply with.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Popped from a list: the key and the elements (`counted` for BLMPOP's
    /// reply shape, with a count).
    ListPop {
        /// The list.
        key: Vec<u8>,
        /// What was popped, in order.
        items: Vec<Vec<u8>>,
        /// BLMPOP: the elements are replied as a nested array.
        counted: bool,
    },
    /// Popped a sorted set's lowest or highest members (`counted` for BZMPOP's
    /// reply shape).
    ZPop {
        /// The sorted set.
        key: Vec<u8>,
        /// The members and their scores, in the order popped.
        popped: Vec<(Vec<u8>, f64)>,
        /// BZMPOP: the pairs are replied as nested arrays.
        counted: bool,
    },
    /// Read from a stream (XREAD, XREADGROUP): the key and its entries.
    Stream {
        /// The stream.
        key: Vec<u8>,
        /// What was read.
        entries: Vec<ReadEntry>,
    },
    /// The stream or the group an XREADGROUP waited on is gone.
    NoGroup {
        /// The stream.
        key: Vec<u8>,
        /// The group.
        group: Vec<u8>,
    },
    /// Moved an element to the destination list (BLMOVE): the element.
    Moved(Vec<u8>),
    /// A cache read found a value (`Some`), a cached absence (`None`).
    Cached(Option<Vec<u8>>),
    /// A cache read was granted a fill lease with this token.
    Lease(u64),
    /// A lock was granted with this fencing token.
    Locked(u64),
    /// The operation met a key of the wrong type (a move's destination).
    WrongType,
    /// Enough replicas acknowledged (`WAIT`): how many did.
    Replicas(usize),
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Wake {
    /// Served.
    Served(Outcome),
    /// The key was ready but could not be served in place (a move whose destination
    /// slot was busy): run the command again.
    Retry,
    /// Served with a lock or lease grant whose reply waits until the unit
    /// that granted it is acknowledged (or undone: the client gets an error).
    Held(Outcome, Arc<Held>),
}

/// One blocked client.
#[derive(Debug)]
pub struct Waiter {
    /// The client.
    pub client: u64,
    /// The keys it waits on, in the order given.
    pub keys: Vec<Vec<u8>>,
    /// What to do when served.
    pub op: BlockedOp,
    /// When to give up (Unix ms), if ever.
    pub deadline: Option<Millis>,
    outcome: Mutex<Option<Wake>>,
    notify: Notify,
}

impl Waiter {
    /// A waiter that has not been served.
    pub fn new(client: u64, keys: Vec<Vec<u8>>, op: BlockedOp, deadline: Option<Millis>) -> Self {
        Waiter {
            client,
            keys,
            op,
            deadline,
            outcome: Mutex::new(None),
            notify: Notify::new(),
        }
    }

    /// Waits until served or told to retry.
    pub async fn woken(&self) -> Wake {
        loop {
            let notified = self.notify.notified();
            if let Some(wake) = self.outcome.lock().take() {
                return wake;
            }
            notified.await;
        }
    }

    /// The outcome, if it was served already (checked once the wait is abandoned).
    pub fn take(&self) -> Option<Wake> {
        self.outcome.lock().take()
    }

    /// Ends the wait with `wake` (the registry does this for waiters on keys;
    /// others are woken by whoever they wait for).
    pub fn wake(&self, wake: Wake) {
        *self.outcome.lock() = Some(wake);
        self.notify.notify_one();
    }
}

/// What serving one waiter came to (see [`Blocked::serve`]).
#[derive(Debug)]
pub enum Step {
    /// It was served (or must retry): it leaves the queue.
    Wake(Wake),
    /// It waits, and so do those behind it (a pop that found nothing).
    Stop,
    /// It waits; those behind it may still be served (a stream reader).
    Pass,
}

/// The registry of blocked clients.
#[derive(Debug, Default)]
pub struct Blocked {
    by_key: Mutex<HashMap<Vec<u8>, VecDeque<Arc<Waiter>>>>,
    waiters: AtomicUsize,
    /// Waiters for a lock or a fill lease (see [`Blocked::lease_waiters`]).
    leases: AtomicUsize,
}

impl Blocked {
    /// Number of blocked clients (`INFO clients`).
    pub fn len(&self) -> usize {
        self.waiters.load(Relaxed)
    }

    /// True when nobody is blocked: writes then skip serving entirely.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of clients waiting for a lock or a fill lease: while there are
    /// some, any write may grant one, so units open the lock gate.
    pub fn lease_waiters(&self) -> usize {
        self.leases.load(Relaxed)
    }

    /// Number of keys someone is blocked on.
    pub fn keys(&self) -> usize {
        self.by_key.lock().len()
    }

    /// Number of clients waiting on `key`.
    pub fn waiters_on(&self, key: &[u8]) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.by_key.lock().get(key).map_or(0, VecDeque::len)
    }

    /// True if someone waits on `key`.
    pub fn has_waiters(&self, key: &[u8]) -> bool {
        !self.is_empty() && self.by_key.lock().contains_key(key)
    }

    /// Keys whose first waiter waits on a lease (a lock, or a cache fill): the
    /// cron serves them when the lease runs out, since an expiring key makes no
    /// write that would.
    pub fn lease_keys(&self) -> Vec<Vec<u8>> {
        if self.is_empty() {
            return Vec::new();
        }
        self.by_key
            .lock()
            .iter()
            .filter(|(_, queue)| queue.front().is_some_and(|w| w.op.is_lease()))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Queues `waiter` behind earlier waiters on each of its keys. Call while
    /// holding the keys' slots, so no write can slip between check and register.
    pub fn register(&self, waiter: Arc<Waiter>) {
        let mut by_key = self.by_key.lock();
        for key in &waiter.keys {
            by_key
                .entry(key.clone())
                .or_default()
                .push_back(waiter.clone());
        }
        self.waiters.fetch_add(1, Relaxed);
        if waiter.op.is_lease() {
            self.leases.fetch_add(1, Relaxed);
        }
    }

    /// Removes `waiter` from every queue (served, timed out or disconnected); a
    /// second call does nothing.
    pub fn unregister(&self, waiter: &Arc<Waiter>) {
        let mut by_key = self.by_key.lock();
        self.remove(&mut by_key, waiter);
    }

    fn remove(&self, by_key: &mut HashMap<Vec<u8>, VecDeque<Arc<Waiter>>>, waiter: &Arc<Waiter>) {
        let mut found = false;
        for key in &waiter.keys {
            if let Some(queue) = by_key.get_mut(key) {
                let before = queue.len();
                queue.retain(|w| !Arc::ptr_eq(w, waiter));
                found |= queue.len() != before;
                if queue.is_empty() {
                    by_key.remove(key);
                }
            }
        }
        if found {
            self.waiters.fetch_sub(1, Relaxed);
            if waiter.op.is_lease() {
                self.leases.fetch_sub(1, Relaxed);
            }
        }
    }

    /// The keys of `slot` someone is blocked on.
    pub fn keys_in_slot(&self, slot: u16) -> Vec<Vec<u8>> {
        if self.is_empty() {
            return Vec::new();
        }
        let by_key = self.by_key.lock();
        by_key
            .keys()
            .filter(|key| crate::keyspace::key_slot(key) == slot)
            .cloned()
            .collect()
    }

    /// Sends every client blocked on `key` to run its command again
    /// ([`Wake::Retry`]): the key left this node, and the command run again is
    /// redirected to where it went. Called by the write path's commit.
    pub fn redirect(&self, key: &[u8]) {
        let mut by_key = self.by_key.lock();
        let Some(queue) = by_key.get(key).cloned() else {
            return;
        };
        for waiter in queue {
            self.remove(&mut by_key, &waiter);
            waiter.wake(Wake::Retry);
        }
    }

    /// Serves the clients blocked on `key`, first come first served: `serve`
    /// performs the first waiter's operation and says how it ended, or `None`
    /// to leave it (and those behind it) waiting. Called by the write path's
    /// commit, holding `key`'s slot.
    pub fn serve(&self, key: &[u8], mut serve: impl FnMut(&Waiter) -> Step) {
        let mut by_key = self.by_key.lock();
        let mut at = 0;
        while let Some(waiter) = by_key.get(key).and_then(|q| q.get(at)).cloned() {
            match serve(&waiter) {
                Step::Wake(wake) => {
                    self.remove(&mut by_key, &waiter);
                    waiter.wake(wake);
                }
                Step::Stop => break,
                Step::Pass => at += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(client: u64, keys: &[&str]) -> Arc<Waiter> {
        Arc::new(Waiter::new(
            client,
            keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            BlockedOp::ListPop {
                end: End::Left,
                count: None,
            },
            None,
        ))
    }

    #[test]
    fn waiters_are_served_first_come_first_served_until_one_must_wait() {
        let blocked = Blocked::default();
        let (a, b, c) = (waiter(1, &["k"]), waiter(2, &["k"]), waiter(3, &["k"]));
        for w in [&a, &b, &c] {
            blocked.register(w.clone());
        }
        assert_eq!(blocked.len(), 3);
        let mut data = 2;
        blocked.serve(b"k", |w| match data {
            0 => Step::Stop,
            _ => {
                data -= 1;
                Step::Wake(Wake::Served(Outcome::Locked(w.client)))
            }
        });
        assert_eq!(a.take(), Some(Wake::Served(Outcome::Locked(1))));
        assert_eq!(b.take(), Some(Wake::Served(Outcome::Locked(2))));
        assert_eq!(c.take(), None);
        assert_eq!(blocked.len(), 1);
        assert_eq!(blocked.waiters_on(b"k"), 1);
    }

    #[test]
    fn a_waiter_on_several_keys_leaves_every_queue() {
        let blocked = Blocked::default();
        let w = waiter(1, &["a", "b"]);
        blocked.register(w.clone());
        assert_eq!(blocked.keys(), 2);
        blocked.unregister(&w);
        blocked.unregister(&w);
        assert_eq!(blocked.keys(), 0);
        assert_eq!(blocked.len(), 0);
    }
}
