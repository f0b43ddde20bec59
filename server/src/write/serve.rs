//! Serving blocked clients, part of the commit: each waiter's operation done on
//! the key that got data, as an effect (and records) of the unit that gave it.

use crate::blocking::{BlockedOp, Outcome, Waiter, Wake};
use crate::clock::Millis;
use crate::keyspace::types::{End, List, Lock};
use crate::keyspace::{key_slot, Expiry, Locked, Value};
use crate::notify;

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
        serve_one(locks, key, waiter, now, changes, &mut leases)
    });
    leases
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
    locks: &mut Locked<'_>,
    key: &[u8],
    waiter: &Waiter,
    now: Millis,
    changes: &mut Changes,
    leases: &mut u64,
) -> Option<Wake> {
    let outcome = match &waiter.op {
        // Waits on no key: never in the registry.
        BlockedOp::Replicas { .. } | BlockedOp::Paused => return None,
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
        BlockedOp::ZPop { max } => {
            let table = locks.table(key);
            let zset = match table.get(key, now)?.value {
                Value::ZSet(z) if !z.is_empty() => z,
                _ => return None,
            };
            let (member, score) = zset.pop_end(*max)?;
            let deleted = table.remove_if_empty(key, now);
            let (event, pop): (_, &[u8]) = match max {
                true => ("zpopmax", b"ZPOPMAX"),
                false => ("zpopmin", b"ZPOPMIN"),
            };
            popped(changes, notify::ZSET, event, key, deleted);
            changes.command(&[pop, key]);
            Outcome::ZPop {
                key: key.to_vec(),
                member,
                score,
            }
        }
        BlockedOp::CacheRead { lease } => match locks.table(key).get(key, now).map(|e| &*e.value) {
            Some(Value::Lease(_)) => return None,
            Some(Value::Absent) => Outcome::Cached(None),
            Some(value) => Outcome::Cached(Some(value.string_bytes()?.into_owned())),
            None => {
                let token = locks.keyspace().next_token(now);
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
            if table.contains(key, now) {
                return None;
            }
            let token = locks.keyspace().next_token(now);
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
    Some(Wake::Served(outcome))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blocking::Blocked;
    use crate::keyspace::Keyspace;

    fn push(ks: &Keyspace, key: &[u8], items: &[&str]) {
        let mut list = List::default();
        for i in items {
            list.push(End::Right, i.as_bytes());
        }
        ks.lock_key(key)
            .insert(key, Value::List(Box::new(list)), Expiry::Persist, 0);
    }

    fn serve_all(blocked: &Blocked, locks: &mut Locked<'_>, key: &[u8], now: Millis) -> Changes {
        let mut changes = Changes::default();
        let mut leases = 0;
        blocked.serve(key, |w| {
            serve_one(locks, key, w, now, &mut changes, &mut leases)
        });
        changes
    }

    #[test]
    fn pops_serve_waiters_in_order_while_data_lasts() {
        let ks = Keyspace::new();
        let blocked = Blocked::default();
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
            blocked.register(w.clone());
        }
        push(&ks, b"k", &["x", "y"]);
        let mut locks = Locked::new(&ks);
        locks.acquire_key(b"k");
        let changes = serve_all(&blocked, &mut locks, b"k", 0);
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
        assert!(locks.table(b"k").peek(b"k", 0).is_none());
        let events: Vec<_> = changes.events().map(|(_, e, _)| e).collect();
        assert_eq!(events, ["lpop", "lpop", "del"]);
        assert_eq!(changes.dirty(), 2);
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
            serve_all(&blocked, &mut locks, b"L", now);
        };
        // Still leased: nobody is served.
        serve_at(999);
        assert_eq!(first.take(), None);
        // The lease ran out: the first waiter, and only it, gets the lock.
        serve_at(1_000);
        assert!(matches!(
            first.take(),
            Some(Wake::Served(Outcome::Locked(_)))
        ));
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
        assert!(matches!(second.take(), Some(Wake::Served(_))));
        assert_eq!(owner(1_500), b"second");
        assert!(blocked.is_empty());
    }
}
