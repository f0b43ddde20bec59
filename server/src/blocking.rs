//! Clients blocked on keys (`BLPOP`, `BLMOVE`, `BZPOPMIN`, ...).
//!
//! ```text
//! BLPOP k 5 ──(k empty, slot of k locked)──▶ register waiter on k ──▶ connection awaits
//! LPUSH k v ──▶ effect on k ──▶ commit (slot of k still locked) ──▶ serve(k): first
//!               waiter in FIFO order gets its pop done here, reply stored, task woken
//! ```
//! Serving happens in the commit of the unit of work that made the key ready
//! (`write::commit`), after the whole unit and under its slot locks, so a woken
//! client always gets the element it was woken for and sees the state after the
//! unit, exactly as Redis serves blocked clients before running anyone else. The
//! pops are effects of that unit. Lock order is always slot locks, then this
//! registry's mutex.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::Millis;
use crate::commands::CacheRead;
use crate::keyspace::types::{EncodingLimits, End, List, Lock, ZSet};
use crate::keyspace::{key_slot, Expiry, Locked, Value};
use crate::notify;
use crate::protocol::{Protocol, Reply};
use crate::write::{record_state, Changes};

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
    /// Pop a sorted set's lowest (or highest) member: `[key, member, score]`.
    ZPop {
        /// Pop the highest instead.
        max: bool,
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
}

impl BlockedOp {
    /// The reply when the wait times out: a null array for pops, a null string
    /// for moves.
    pub fn write_timeout(&self, out: &mut Reply) {
        match self {
            BlockedOp::ListMove { .. } | BlockedOp::LockAcquire { .. } => out.null(),
            BlockedOp::CacheRead { .. } => crate::commands::cache_reply(out, CacheRead::Wait),
            BlockedOp::ListPop { .. } | BlockedOp::ZPop { .. } => out.null_array(),
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Served: the encoded reply.
    Reply(Vec<u8>),
    /// The key was ready but could not be served in place (a move whose destination
    /// slot was busy): run the command again.
    Retry,
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
    /// The protocol to encode the reply in.
    pub proto: Protocol,
    /// When to give up (Unix ms), if ever.
    pub deadline: Option<Millis>,
    outcome: Mutex<Option<Wake>>,
    notify: Notify,
}

impl Waiter {
    /// A waiter that has not been served.
    pub fn new(
        client: u64,
        keys: Vec<Vec<u8>>,
        op: BlockedOp,
        proto: Protocol,
        deadline: Option<Millis>,
    ) -> Self {
        Waiter {
            client,
            keys,
            op,
            proto,
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

    fn wake(&self, wake: Wake) {
        *self.outcome.lock() = Some(wake);
        self.notify.notify_one();
    }
}

/// The registry of blocked clients.
#[derive(Debug, Default)]
pub struct Blocked {
    by_key: Mutex<HashMap<Vec<u8>, VecDeque<Arc<Waiter>>>>,
    waiters: AtomicUsize,
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
            .filter(|(_, queue)| {
                queue.front().is_some_and(|w| {
                    matches!(
                        w.op,
                        BlockedOp::LockAcquire { .. } | BlockedOp::CacheRead { .. }
                    )
                })
            })
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
        }
    }

    /// Serves the clients blocked on `key`, first come first served, while it has
    /// data. The caller holds `key`'s slot in `locks`; what the pops change is
    /// recorded in `changes`. Returns the cache fill leases granted.
    pub fn serve(
        &self,
        locks: &mut Locked<'_>,
        key: &[u8],
        now: Millis,
        changes: &mut Changes,
    ) -> u64 {
        let mut by_key = self.by_key.lock();
        let mut leases = 0;
        while let Some(waiter) = by_key.get(key).and_then(|q| q.front()).cloned() {
            let Some(wake) = serve_one(locks, key, &waiter, now, changes, &mut leases) else {
                break;
            };
            self.remove(&mut by_key, &waiter);
            waiter.wake(wake);
        }
        leases
    }
}

/// Records a pop from `key`, and its deletion if that emptied it.
fn popped(changes: &mut Changes, class: u32, event: &'static str, key: &[u8], deleted: bool) {
    changes.record(1, class, event, key);
    if deleted {
        changes.record(0, notify::GENERIC, "del", key);
    }
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// Performs `waiter`'s operation on `key` if it holds data; `None` leaves it waiting.
fn serve_one(
    locks: &mut Locked<'_>,
    key: &[u8],
    waiter: &Waiter,
    now: Millis,
    changes: &mut Changes,
    leases: &mut u64,
) -> Option<Wake> {
    let mut reply = Reply::new(waiter.proto);
    match &waiter.op {
        BlockedOp::ListPop { end, count } => {
            let table = locks.table(key);
            let list = match table.get(key, now)?.value {
                Value::List(l) if !l.is_empty() => l,
                _ => return None,
            };
            reply.array(2);
            reply.bulk(key);
            let pop: &[u8] = if *end == End::Left { b"LPOP" } else { b"RPOP" };
            match count {
                None => {
                    reply.bulk(list.pop(*end)?.as_bytes());
                    changes.command(&[pop, key]);
                }
                Some(n) => {
                    let n = (*n).min(list.len());
                    reply.array(n);
                    for _ in 0..n {
                        reply.bulk(list.pop(*end)?.as_bytes());
                    }
                    changes.command(&[pop, key, itoa::Buffer::new().format(n).as_bytes()]);
                }
            }
            let deleted = table.remove_if_empty(key, now);
            popped(changes, notify::LIST, pop_event(*end), key, deleted);
        }
        BlockedOp::ZPop { max } => {
            let table = locks.table(key);
            let zset = match table.get(key, now)?.value {
                Value::ZSet(z) if !z.is_empty() => z,
                _ => return None,
            };
            let (member, score) = pop_one(zset, *max)?;
            reply.array(3);
            reply.bulk(key);
            reply.bulk(&member);
            reply.double(score);
            let deleted = table.remove_if_empty(key, now);
            let (event, pop): (_, &[u8]) = match max {
                true => ("zpopmax", b"ZPOPMAX"),
                false => ("zpopmin", b"ZPOPMIN"),
            };
            popped(changes, notify::ZSET, event, key, deleted);
            changes.command(&[pop, key]);
        }
        BlockedOp::CacheRead { lease } => match locks.table(key).get(key, now).map(|e| &*e.value) {
            Some(Value::Lease(_)) => return None,
            Some(value) => crate::commands::cache_reply(&mut reply, CacheRead::of(value)?),
            None => {
                let token = locks.keyspace().next_token(now);
                let table = locks.table(key);
                table.insert(key, Value::Lease(token), Expiry::At(now + lease), now);
                changes.record(1, notify::GENERIC, "cache.lease", key);
                record_state(changes, table, key, now);
                *leases += 1;
                crate::commands::cache_reply(&mut reply, CacheRead::Lease(token));
            }
        },
        BlockedOp::LockAcquire { owner, ttl } => {
            let table = locks.table(key);
            if table.contains(key, now) {
                return None;
            }
            let token = locks.keyspace().next_token(now);
            locks.table(key).insert(
                key,
                Value::Lock(Box::new(Lock::new(owner, token))),
                Expiry::At(now + ttl),
                now,
            );
            changes.record(1, notify::GENERIC, "lock.acquire", key);
            record_state(changes, locks.table(key), key, now);
            reply.int(token as i64);
        }
        BlockedOp::ListMove {
            destination,
            from,
            to,
            limits,
        } => {
            if !matches!(locks.table(key).peek(key, now).map(|e| e.value), Some(Value::List(l)) if !l.is_empty())
            {
                return None;
            }
            // The destination may live in a slot this write does not hold; taking
            // it out of order could deadlock, so only try. If busy, the client
            // runs its command again itself.
            if !locks.try_acquire(key_slot(destination)) {
                return Some(Wake::Retry);
            }
            match locks
                .table(destination)
                .peek(destination, now)
                .map(|e| e.value)
            {
                None | Some(Value::List(_)) => {}
                // As Redis: this client gets the error and nothing is popped, so
                // the next waiter is served.
                Some(_) => {
                    reply.error(&crate::commands::CommandError::WrongType.to_string());
                    return Some(Wake::Reply(reply.into_vec()));
                }
            }
            let table = locks.table(key);
            let Value::List(list) = table.get(key, now)?.value else {
                return None;
            };
            let item = list.pop(*from)?;
            let deleted = table.remove_if_empty(key, now);
            popped(changes, notify::LIST, pop_event(*from), key, deleted);
            let target = locks
                .table(destination)
                .get_or_insert_with(destination, now, || {
                    Value::List(Box::new(List::new(limits)))
                });
            if let Value::List(list) = target.value {
                list.push(*to, item.as_bytes());
            }
            reply.bulk(item.as_bytes());
            let push = match to {
                End::Left => "lpush",
                End::Right => "rpush",
            };
            changes.record(1, notify::LIST, push, destination);
            changes.command(&[b"LMOVE", key, destination, from.word(), to.word()]);
        }
    }
    Some(Wake::Reply(reply.into_vec()))
}

/// Pops the lowest (or highest) member of a sorted set.
pub fn pop_one(zset: &mut ZSet, max: bool) -> Option<(Vec<u8>, f64)> {
    let len = zset.len();
    let rank = if max { len.checked_sub(1)? } else { 0 };
    zset.remove_ranks(rank, rank)
        .pop()
        .map(|(m, s)| (m.as_bytes().to_vec(), s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Expiry, Keyspace};

    fn push(ks: &Keyspace, key: &[u8], items: &[&str]) {
        let mut list = List::default();
        for i in items {
            list.push(End::Right, i.as_bytes());
        }
        ks.lock_key(key)
            .insert(key, Value::List(Box::new(list)), Expiry::Persist, 0);
    }

    fn waiter(client: u64, key: &str) -> Arc<Waiter> {
        Arc::new(Waiter::new(
            client,
            vec![key.as_bytes().to_vec()],
            BlockedOp::ListPop {
                end: End::Left,
                count: None,
            },
            Protocol::Resp2,
            None,
        ))
    }

    #[test]
    fn waiters_are_served_first_come_first_served_while_data_lasts() {
        let ks = Keyspace::new();
        let blocked = Blocked::default();
        let (a, b, c) = (waiter(1, "k"), waiter(2, "k"), waiter(3, "k"));
        for w in [&a, &b, &c] {
            blocked.register(w.clone());
        }
        assert_eq!(blocked.len(), 3);
        push(&ks, b"k", &["x", "y"]);
        let mut locks = Locked::new(&ks);
        locks.acquire_key(b"k");
        let mut changes = Changes::default();
        blocked.serve(&mut locks, b"k", 0, &mut changes);
        assert_eq!(
            a.take(),
            Some(Wake::Reply(b"*2\r\n$1\r\nk\r\n$1\r\nx\r\n".to_vec()))
        );
        assert_eq!(
            b.take(),
            Some(Wake::Reply(b"*2\r\n$1\r\nk\r\n$1\r\ny\r\n".to_vec()))
        );
        assert_eq!(c.take(), None);
        assert_eq!(blocked.len(), 1);
        // The emptied list is gone, as Redis never keeps an empty one.
        assert!(locks.table(b"k").peek(b"k", 0).is_none());
        let events: Vec<_> = changes.events().map(|(_, e, _)| e).collect();
        assert_eq!(events, ["lpop", "lpop", "del"]);
        assert_eq!(changes.dirty(), 2);
    }

    #[test]
    fn a_waiter_on_several_keys_leaves_every_queue() {
        let blocked = Blocked::default();
        let w = Arc::new(Waiter::new(
            1,
            vec![b"a".to_vec(), b"b".to_vec()],
            BlockedOp::ListPop {
                end: End::Left,
                count: None,
            },
            Protocol::Resp2,
            None,
        ));
        blocked.register(w.clone());
        assert_eq!(blocked.keys(), 2);
        blocked.unregister(&w);
        blocked.unregister(&w);
        assert_eq!(blocked.keys(), 0);
        assert_eq!(blocked.len(), 0);
    }

    #[test]
    fn lock_waiters_get_the_lock_one_at_a_time_in_arrival_order() {
        let keyspace = Keyspace::new();
        let blocked = Blocked::default();
        let held = Value::Lock(Box::new(Lock::new(b"holder", 1)));
        keyspace
            .lock_key(b"L")
            .insert(b"L", held, Expiry::At(1_000), 0);
        let waiter = |client: u64, owner: &[u8]| {
            Arc::new(Waiter::new(
                client,
                vec![b"L".to_vec()],
                BlockedOp::LockAcquire {
                    owner: owner.to_vec(),
                    ttl: 500,
                },
                Protocol::Resp2,
                None,
            ))
        };
        let (first, second) = (waiter(1, b"first"), waiter(2, b"second"));
        blocked.register(first.clone());
        blocked.register(second.clone());
        assert_eq!(blocked.lease_keys(), [b"L".to_vec()]);
        let serve_at = |now: Millis| {
            let mut locks = Locked::new(&keyspace);
            locks.acquire_key(b"L");
            blocked.serve(&mut locks, b"L", now, &mut Changes::default());
        };
        // Still leased: nobody is served.
        serve_at(999);
        assert_eq!(first.take(), None);
        // The lease ran out: the first waiter, and only it, gets the lock.
        serve_at(1_000);
        let Some(Wake::Reply(reply)) = first.take() else {
            panic!("first waiter not served");
        };
        assert!(reply.starts_with(b":"));
        assert_eq!(second.take(), None);
        assert_eq!(blocked.waiters_on(b"L"), 1);
        let owner = |now| match keyspace
            .lock_key(b"L")
            .peek(b"L", now)
            .map(|e| e.value.clone())
        {
            Some(Value::Lock(lock)) => lock.owner().to_vec(),
            other => panic!("{other:?}"),
        };
        assert_eq!(owner(1_000), b"first");
        // Its lease (500 ms) runs out in turn.
        serve_at(1_400);
        assert_eq!(second.take(), None);
        serve_at(1_500);
        assert!(matches!(second.take(), Some(Wake::Reply(_))));
        assert_eq!(owner(1_500), b"second");
        assert!(blocked.is_empty());
    }
}
