//! Serving blocked clients, part of the commit: each waiter's operation done on
//! the key that got data, as an effect (and records) of the unit that gave it.
//! A lock or lease granted to a waiter is a lock change of the unit: the
//! unit's lock gate may refuse it (the waiter stays queued) or hold its reply
//! for acknowledgements (`Wake::Held`).

use crate::blocking::{BlockedOp, Outcome, ReadEntry, Step, StreamRead, Waiter, Wake};
use crate::clock::Millis;
use crate::keyspace::types::stream::StreamId;
use crate::keyspace::types::{End, List, Lock};
use crate::keyspace::{key_slot, Expiry, Locked, Value};
use crate::notify;

use super::locks::may_serve;
use super::stream_read::{owned, GroupRead};
use super::{record_state, Changes};

/// Serves the clients blocked on `key`, whose slot `locks` holds, first come
/// first served while it has data; what they change is recorded in `changes`.
/// Returns the cache fill leases granted.
pub(super) fn serve(
    data: &crate::dataset::Dataset,
    locks: &mut Locked<'_>,
    key: &[u8],
    now: Millis,
    changes: &mut Changes,
) -> u64 {
    let mut leases = 0;
    data.blocked.serve(key, |waiter| {
        if let BlockedOp::StreamRead(read) = &waiter.op {
            return serve_reader(locks, key, waiter, read, now, changes);
        }
        match serve_one(data, locks, key, waiter, now, changes, &mut leases) {
            Some(wake) => Step::Wake(wake),
            None => Step::Stop,
        }
    });
    leases
}

/// Serves a stream reader blocked on `key` if the stream has entries for
/// it; a group reader whose stream or group is gone gets an error, as the
/// command run again would.
fn serve_reader(
    locks: &mut Locked<'_>,
    key: &[u8],
    waiter: &Waiter,
    read: &StreamRead,
    now: Millis,
    changes: &mut Changes,
) -> Step {
    let table = locks.table(key);
    let stream = match table.get(key, now).map(|e| e.value) {
        Some(Value::Stream(stream)) => stream,
        Some(_) if read.group.is_some() => return Step::Wake(Wake::Served(Outcome::WrongType)),
        None if read.group.is_some() => {
            let group = read.group.as_ref().map(|g| g.0.clone()).unwrap_or_default();
            let key = key.to_vec();
            return Step::Wake(Wake::Served(Outcome::NoGroup { key, group }));
        }
        _ => return Step::Pass,
    };
    let Some(top) = stream.last_entry_id() else {
        return Step::Pass;
    };
    let entries: Vec<ReadEntry> = match &read.group {
        None => {
            let at = waiter.keys.iter().position(|k| k == key);
            let after = at.and_then(|i| read.after.get(i).copied());
            match after.filter(|&after| top > after).and_then(StreamId::next) {
                Some(start) => {
                    let count = if read.count == 0 {
                        usize::MAX
                    } else {
                        read.count
                    };
                    stream
                        .range(start, StreamId::MAX)
                        .take(count)
                        .map(|e| owned(&e))
                        .collect()
                }
                None => return Step::Pass,
            }
        }
        Some((group, consumer, noack)) => {
            let Some(last) = stream.group(group).map(|g| g.last_id) else {
                let (key, group) = (key.to_vec(), group.clone());
                return Step::Wake(Wake::Served(Outcome::NoGroup { key, group }));
            };
            if top <= last {
                return Step::Pass;
            }
            let reader = GroupRead {
                key,
                group,
                consumer,
                count: read.count,
                noack: *noack,
            };
            reader.run(stream, None, now, changes)
        }
    };
    Step::Wake(Wake::Served(Outcome::Stream {
        key: key.to_vec(),
        entries,
    }))
}

/// Records a pop from `key`, and its deletion if that emptied it.
fn popped(changes: &mut Changes, class: u32, event: &'static str, key: &[u8], deleted: bool) {
    changes.record(1, class, event, key);
    if deleted {
        changes.record(0, notify::GENERIC, "del", key);
    }
}

fn pop_names(end: End) -> (&'static str, &'static [u8]) {
    match end {
        End::Left => ("lpop", b"LPOP"),
        End::Right => ("rpop", b"RPOP"),
    }
}

/// Performs `waiter`'s operation on `key` if it holds data; `None` leaves it
/// waiting.
fn serve_one(
    data: &crate::dataset::Dataset,
    locks: &mut Locked<'_>,
    key: &[u8],
    waiter: &Waiter,
    now: Millis,
    changes: &mut Changes,
    leases: &mut u64,
) -> Option<Wake> {
    // A slot being handed to another master grants nothing: the grant would
    // not reach the new owner (M10); the waiter is redirected once it moved.
    if waiter.op.is_lease() && data.paused.contains(key_slot(key)) {
        return None;
    }
    let outcome = match &waiter.op {
        // Waits on no key: never in the registry.
        BlockedOp::Replicas { .. } | BlockedOp::Paused => return None,
        // Served by `serve_reader`.
        BlockedOp::StreamRead(_) => return None,
        BlockedOp::ListPop { end, count } => {
            let table = locks.table(key);
            let list = match table.get(key, now)?.value {
                Value::List(l) if !l.is_empty() => l,
                _ => return None,
            };
            let n = count.map_or(1, |n| n.min(list.len()));
            let items: Vec<Vec<u8>> = (0..n)
                .filter_map(|_| list.pop(*end).map(|i| i.as_bytes().to_vec()))
                .collect();
            let deleted = table.remove_if_empty(key, now);
            let (event, pop) = pop_names(*end);
            popped(changes, notify::LIST, event, key, deleted);
            match count {
                None => changes.command(&[pop, key]),
                Some(_) => {
                    let n = itoa::Buffer::new().format(items.len()).to_string();
                    changes.command(&[pop, key, n.as_bytes()]);
                }
            }
            Outcome::ListPop {
                key: key.to_vec(),
                items,
                counted: count.is_some(),
            }
        }
        BlockedOp::ZPop { max, count } => {
            let table = locks.table(key);
            let zset = match table.get(key, now)?.value {
                Value::ZSet(z) if !z.is_empty() => z,
                _ => return None,
            };
            let n = count.unwrap_or(1).min(zset.len());
            let pairs: Vec<(Vec<u8>, f64)> = (0..n).filter_map(|_| zset.pop_end(*max)).collect();
            let deleted = table.remove_if_empty(key, now);
            let (event, pop): (_, &[u8]) = match max {
                true => ("zpopmax", b"ZPOPMAX"),
                false => ("zpopmin", b"ZPOPMIN"),
            };
            popped(changes, notify::ZSET, event, key, deleted);
            match count {
                None => changes.command(&[pop, key]),
                Some(_) => {
                    let n = itoa::Buffer::new().format(pairs.len()).to_string();
                    changes.command(&[pop, key, n.as_bytes()]);
                }
            }
            Outcome::ZPop {
                key: key.to_vec(),
                popped: pairs,
                counted: count.is_some(),
            }
        }
        BlockedOp::CacheRead { lease } => match locks.table(key).get(key, now).map(|e| &*e.value) {
            Some(Value::Lease(_)) => return None,
            Some(Value::Absent) => Outcome::Cached(None),
            Some(value) => Outcome::Cached(Some(value.string_bytes()?.into_owned())),
            None => {
                if !may_serve(changes, locks.table(key), key, now, false) {
                    return None;
                }
                let token = data.next_token(now);
                let table = locks.table(key);
                table.insert(key, Value::Lease(token), Expiry::At(now + lease), now);
                changes.record(1, notify::GENERIC, "cache.lease", key);
                record_state(changes, table, key, now);
                *leases += 1;
                Outcome::Lease(token)
            }
        },
        BlockedOp::LockAcquire { owner, ttl } => {
            let table = locks.table(key);
            if table.contains(key, now) || !may_serve(changes, table, key, now, true) {
                return None;
            }
            let token = data.next_token(now);
            let table = locks.table(key);
            let lock = Value::Lock(Box::new(Lock::new(owner, token)));
            table.insert(key, lock, Expiry::At(now + ttl), now);
            changes.record(1, notify::GENERIC, "lock.acquire", key);
            record_state(changes, table, key, now);
            Outcome::Locked(token)
        }
        BlockedOp::ListMove {
            destination,
            from,
            to,
            limits,
        } => {
            let has_data = |v: Option<&Value>| matches!(v, Some(Value::List(l)) if !l.is_empty());
            if !has_data(locks.table(key).peek(key, now).map(|e| e.value)) {
                return None;
            }
            // The destination may live in a slot this unit does not hold; taking
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
                Some(_) => return Some(Wake::Served(Outcome::WrongType)),
            }
            let table = locks.table(key);
            let Value::List(list) = table.get(key, now)?.value else {
                return None;
            };
            let item = list.pop(*from)?;
            let deleted = table.remove_if_empty(key, now);
            popped(changes, notify::LIST, pop_names(*from).0, key, deleted);
            let target = locks
                .table(destination)
                .get_or_insert_with(destination, now, || {
                    Value::List(Box::new(List::new(limits)))
                });
            if let Value::List(list) = target.value {
                list.push(*to, item.as_bytes());
            }
            let push = match to {
                End::Left => "lpush",
                End::Right => "rpush",
            };
            changes.record(1, notify::LIST, push, destination);
            changes.command(&[b"LMOVE", key, destination, from.word(), to.word()]);
            Outcome::Moved(item.as_bytes().to_vec())
        }
    };
    // A grant the unit holds for acknowledgements waits with it.
    match (&outcome, changes.held()) {
        (Outcome::Lease(_) | Outcome::Locked(_), Some(held)) => {
            Some(Wake::Held(outcome, held.clone()))
        }
        _ => Some(Wake::Served(outcome)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Config, LiveConfig};
    use crate::dataset::Dataset;
    use crate::keyspace::Keyspace;
    use crate::stats::Stats;
    use crate::write::LockGate;

    fn dataset() -> Dataset {
        let config = Arc::new(LiveConfig::new(&Config::default(), None));
        Dataset::new(config, Arc::new(Stats::new(0)))
    }

    fn push(ks: &Keyspace, key: &[u8], items: &[&str]) {
        let mut list = List::default();
        for i in items {
            list.push(End::Right, i.as_bytes());
        }
        ks.lock_key(key)
            .insert(key, Value::List(Box::new(list)), Expiry::Persist, 0);
    }

    /// Serves `key`'s waiters in a unit whose lock gate is `gate`.
    fn serve_all(data: &Dataset, key: &[u8], now: Millis, gate: LockGate) -> Changes {
        let mut locks = Locked::new(&data.keyspace);
        locks.acquire_key(key);
        let mut changes = Changes::default();
        changes.begin(true);
        changes.set_lock_gate(gate);
        let mut leases = 0;
        data.blocked.serve(key, |w| {
            match serve_one(data, &mut locks, key, w, now, &mut changes, &mut leases) {
                Some(wake) => Step::Wake(wake),
                None => Step::Stop,
            }
        });
        changes
    }

    const OPEN: LockGate = LockGate::Open {
        acks: None,
        delay: 0,
    };

    #[test]
    fn pops_serve_waiters_in_order_while_data_lasts() {
        let data = dataset();
        let waiter = |client| {
            Arc::new(Waiter::new(
                client,
                vec![b"k".to_vec()],
                BlockedOp::ListPop {
                    end: End::Left,
                    count: None,
                },
                None,
            ))
        };
        let (a, b, c) = (waiter(1), waiter(2), waiter(3));
        for w in [&a, &b, &c] {
            data.blocked.register(w.clone());
        }
        push(&data.keyspace, b"k", &["x", "y"]);
        // Pops need no open gate.
        let changes = serve_all(&data, b"k", 0, LockGate::Closed);
        let popped = |item: &str| {
            Some(Wake::Served(Outcome::ListPop {
                key: b"k".to_vec(),
                items: vec![item.as_bytes().to_vec()],
                counted: false,
            }))
        };
        assert_eq!(a.take(), popped("x"));
        assert_eq!(b.take(), popped("y"));
        assert_eq!(c.take(), None);
        // The emptied list is gone, as Redis never keeps an empty one.
        assert!(data.keyspace.lock_key(b"k").peek(b"k", 0).is_none());
        let events: Vec<_> = changes.events().map(|(_, e, _)| e).collect();
        assert_eq!(events, ["lpop", "lpop", "del"]);
        assert_eq!(changes.dirty(), 2);
    }

    fn lock_waiter(client: u64, owner: &[u8]) -> Arc<Waiter> {
        Arc::new(Waiter::new(
            client,
            vec![b"L".to_vec()],
            BlockedOp::LockAcquire {
                owner: owner.to_vec(),
                ttl: 500,
            },
            None,
        ))
    }

    #[test]
    fn lock_waiters_get_the_lock_one_at_a_time_in_arrival_order() {
        let data = dataset();
        let keyspace = &data.keyspace;
        let held = Value::Lock(Box::new(Lock::new(b"holder", 1)));
        keyspace
            .lock_key(b"L")
            .insert(b"L", held, Expiry::At(1_000), 0);
        let (first, second) = (lock_waiter(1, b"first"), lock_waiter(2, b"second"));
        data.blocked.register(first.clone());
        data.blocked.register(second.clone());
        assert_eq!(data.blocked.lease_keys(), [b"L".to_vec()]);
        assert_eq!(data.blocked.lease_waiters(), 2);
        // Still leased: nobody is served.
        serve_all(&data, b"L", 999, OPEN);
        assert_eq!(first.take(), None);
        // The lease ran out: the first waiter, and only it, gets the lock.
        serve_all(&data, b"L", 1_000, OPEN);
        assert!(matches!(
            first.take(),
            Some(Wake::Served(Outcome::Locked(_)))
        ));
        assert_eq!(second.take(), None);
        assert_eq!(data.blocked.waiters_on(b"L"), 1);
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
        serve_all(&data, b"L", 1_400, OPEN);
        assert_eq!(second.take(), None);
        serve_all(&data, b"L", 1_500, OPEN);
        assert!(matches!(second.take(), Some(Wake::Served(_))));
        assert_eq!(owner(1_500), b"second");
        assert!(data.blocked.is_empty());
        assert_eq!(data.blocked.lease_waiters(), 0);
    }

    #[test]
    fn a_lock_gate_keeps_waiters_queued_or_holds_their_grant() {
        let data = dataset();
        let waiter = lock_waiter(1, b"w");
        data.blocked.register(waiter.clone());
        // A unit that cannot hold replies, or a node in its lock-delay,
        // grants nothing.
        serve_all(&data, b"L", 0, LockGate::Closed);
        let delayed = LockGate::Open {
            acks: None,
            delay: 5,
        };
        serve_all(&data, b"L", 0, delayed);
        assert_eq!(waiter.take(), None);
        assert_eq!(data.blocked.waiters_on(b"L"), 1);
        // Held for acknowledgements: the grant is made, its reply waits.
        let held = LockGate::Open {
            acks: Some((1, 100)),
            delay: 0,
        };
        let mut changes = serve_all(&data, b"L", 0, held);
        let (unit, own) = changes.take_held().expect("held");
        assert!(!own);
        match waiter.take() {
            Some(Wake::Held(Outcome::Locked(_), h)) => assert!(Arc::ptr_eq(&h, &unit)),
            other => panic!("{other:?}"),
        }
        assert_eq!(unit.keys(), [b"L".to_vec()]);
    }
}
