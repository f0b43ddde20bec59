//! The write path: what a unit of work changed, and the one commit that makes
//! everything else follow from it.
//!
//! ```text
//! unit of work (command, EXEC, expiry step, eviction, lease hand-over)
//!   └─ records effects (key, keyspace event, changes) while it holds its slots
//!        └─ commit(), still under those slots:
//!             lazily expired keys ─▶ change counter, WATCH touches, keyspace events
//!             each effect ────────▶ change counter, WATCH touches, keyspace events
//!             changed keys with blocked clients ─▶ served; their pops are effects
//!                                                   of the same unit
//! ```
//! Nothing else counts changes, publishes keyspace events, touches watchers or
//! wakes blocked clients. May use the dataset (`crate::dataset`) and what it
//! holds; commands, the cron and the feed's applier use it, never the reverse.

mod changes;
mod evict;
mod locks;
mod serve;
mod stream_read;

use std::sync::atomic::Ordering::Relaxed;

use changes::Notice;
pub use changes::{Changes, CommandMark};
pub use evict::{evict_while, make_room};
pub use locks::{key_state, lock_change, seal, undo, LockGate, LockRefusal};
pub use stream_read::{owned as owned_entry, GroupRead};

use crate::clock::Millis;
use crate::dataset::Dataset;
use crate::feed::Scope;
use crate::keyspace::{dump_value, Locked, SlotTable};
use crate::notify;
use crate::protocol::encode_command;

/// Commits a unit of work's `changes` while `locks` still holds its slots (see
/// the module documentation), then clears them.
///
/// The unit must have recorded the keys its lookups found expired (see
/// [`Changes::end_command`] and [`Changes::expired`]).
#[inline]
pub fn commit(data: &Dataset, locks: &mut Locked<'_>, changes: &mut Changes, now: Millis) {
    if changes.is_empty() {
        return;
    }
    let watching = !data.watches.is_empty();
    let flags = data.config.notify_flags();
    let serving = !data.blocked.is_empty();
    // Most units run with no watcher, no event class, nobody blocked and nobody
    // following the feed: they only count their changes.
    if !watching && flags == 0 && !serving && !changes.feeding() {
        data.add_dirty(changes.dirty());
        changes.clear();
        return;
    }
    commit_each(data, locks, changes, now, (watching, flags, serving));
}

/// The commit's full walk over the effects (see [`commit`]).
#[inline(never)]
fn commit_each(
    data: &Dataset,
    locks: &mut Locked<'_>,
    changes: &mut Changes,
    now: Millis,
    (watching, flags, serving): (bool, u32, bool),
) {
    let mut next = 0;
    // Keys with blocked clients, served after every effect before them.
    let mut ready: Vec<Vec<u8>> = Vec::new();
    let mut served = 0;
    loop {
        while next < changes.len() {
            let (notice, key) = changes.get(next);
            next += 1;
            match notice {
                Notice::Event(class, event) => {
                    if watching {
                        data.watches.touch(key);
                    }
                    if flags != 0 {
                        data.notify_with(flags, class, event, key);
                    }
                }
                Notice::Touch if watching => data.watches.touch(key),
                Notice::Touch | Notice::Ready => {}
                Notice::Count => continue,
                Notice::Left(event) => {
                    if let Some((class, event)) = event {
                        if watching {
                            data.watches.touch(key);
                        }
                        if flags != 0 {
                            data.notify_with(flags, class, event, key);
                        }
                    }
                    if serving {
                        data.blocked.redirect(key);
                    }
                    continue;
                }
            }
            // Only keys whose slot the unit holds (all it changed) can be served.
            if serving
                && !ready[served..].iter().any(|k| k == key)
                && data.blocked.has_waiters(key)
                && locks.holds(crate::keyspace::key_slot(key))
            {
                ready.push(key.to_vec());
            }
        }
        let Some(key) = ready.get(served) else {
            break;
        };
        let key = key.clone();
        served += 1;
        let leases = serve::serve(data, locks, &key, now, changes);
        if leases > 0 {
            data.stats.cache.lease_grants.fetch_add(leases, Relaxed);
        }
    }
    data.add_dirty(changes.dirty());
    let (records, count) = changes.records();
    if count > 0 {
        let mut held = locks.held();
        let scope = match (held.next(), held.next()) {
            (Some(slot), None) => Scope::Slot(slot),
            _ => Scope::Several,
        };
        data.feed.append(records, count, scope);
    }
    changes.clear();
}

/// Commits a change of state that lives beside the keyspace (the function
/// libraries, `FUNCTION LOAD`): one change, its request the record, for
/// replicas only (slot migrations move keys, not libraries).
pub fn beside_keyspace(data: &Dataset, request: &[&[u8]]) {
    data.add_dirty(1);
    to_replicas(data, request);
}

/// Gives replicas starting a full sync the function libraries `dump` (a
/// `FUNCTION DUMP`), which slot snapshots do not carry: they replace
/// whatever the replica had. Not a change of the master's.
pub fn functions_for_full_sync(data: &Dataset, dump: &[u8]) {
    to_replicas(data, &[b"FUNCTION", b"RESTORE", dump, b"FLUSH"]);
}

fn to_replicas(data: &Dataset, request: &[&[u8]]) {
    if data.feed.is_active() {
        let mut record = Vec::new();
        encode_command(&mut record, request);
        data.feed.append(&record, 1, Scope::Link);
    }
}

/// Commits the expiry of `key` (found expired by a lookup or the active expiry
/// walk), its slot still held.
pub fn expired(data: &Dataset, key: &[u8]) {
    data.add_dirty(1);
    data.watches.touch(key);
    data.notify(notify::EXPIRED, "expired", key);
    if data.feed.is_active() {
        let mut del = Vec::new();
        encode_command(&mut del, &[b"DEL", key]);
        let slot = crate::keyspace::key_slot(key);
        data.feed.append(&del, 1, Scope::Slot(slot));
    }
}

/// Deletes every key of `slot`, which this node no longer serves (another
/// master took it under a newer epoch): one unit of work per slot, each key a
/// `del` as Redis's `delKeysInSlot` makes it. Clients blocked on keys of the
/// slot run their commands again, and are redirected to the new owner.
pub fn drop_slot(data: &Dataset, slot: u16, now: Millis) -> usize {
    let mut locks = Locked::new(&data.keyspace);
    locks.acquire([slot]);
    let keys: Vec<Vec<u8>> = locks.with_slot(slot, |table| {
        table.iter().map(|(k, _)| k.as_bytes().to_vec()).collect()
    });
    let waited = data.blocked.keys_in_slot(slot);
    if keys.is_empty() && waited.is_empty() {
        data.keyspace.show_slot(slot);
        return 0;
    }
    let mut changes = Changes::default();
    changes.begin(data.feed.is_active());
    locks.with_slot(slot, |table| {
        for key in &keys {
            table.remove(key, now);
            changes.left(key);
            changes.command(&[b"DEL", key]);
        }
    });
    for key in &waited {
        changes.redirect(key);
    }
    commit(data, &mut locks, &mut changes, now);
    // Hidden while it went (a migration's source hides a slot it handed
    // off at once, M9): gone, it shows again, empty.
    data.keyspace.show_slot(slot);
    keys.len()
}

/// Records `key`'s whole state as it is now in `table`, for values no command
/// of the protocol recreates (locks, fill leases, cached absences) and for
/// changes with a value chosen here: `RESTORE key <expiry> <payload> REPLACE
/// ABSTTL` (the payload carries a lock's or lease's fencing token, so whoever
/// applies it raises its counter past it), or `DEL key` if it is gone.
pub fn record_state(changes: &mut Changes, table: &mut SlotTable, key: &[u8], now: Millis) {
    if !changes.feeding() {
        return;
    }
    match table.peek(key, now) {
        Some(entry) => {
            let payload = dump_value(entry.value);
            let mut at = itoa::Buffer::new();
            let expiry = at.format(entry.expire_at().unwrap_or(0));
            changes.command(&[
                b"RESTORE",
                key,
                expiry.as_bytes(),
                &payload,
                b"REPLACE",
                b"ABSTTL",
            ]);
        }
        None => changes.command(&[b"DEL", key]),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blocking::{BlockedOp, Outcome, Waiter, Wake};
    use crate::config::{Config, LiveConfig};
    use crate::keyspace::types::{End, List};
    use crate::keyspace::{Expiry, Value};
    use crate::protocol::Protocol;
    use crate::pubsub::Mailbox;
    use crate::stats::Stats;

    /// A dataset with every keyspace event on, and a subscriber to all of them.
    fn data_with_subscriber() -> (Dataset, Arc<Mailbox>) {
        let config = Config {
            notify_keyspace_events: crate::notify::parse_flags("KEA").expect("valid"),
            ..Config::default()
        };
        let data = Dataset::new(
            Arc::new(LiveConfig::new(&config, None)),
            Arc::new(Stats::new(0)),
        );
        let mailbox = Mailbox::new(1, Protocol::Resp2, Default::default());
        data.pubsub
            .subscribe(crate::pubsub::Kind::Pattern, b"__keyevent@0__:*", &mailbox);
        (data, mailbox)
    }

    /// A client blocked in `BLPOP l 0` on `data`.
    fn left_pop_waiter(data: &Dataset) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter::new(
            7,
            vec![b"l".to_vec()],
            BlockedOp::ListPop {
                end: End::Left,
                count: None,
            },
            None,
        ));
        data.blocked.register(waiter.clone());
        waiter
    }

    /// The `event key` pairs the subscriber received, in order.
    fn received(mailbox: &Mailbox) -> Vec<String> {
        let text = String::from_utf8(mailbox.take()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        lines
            .chunks(9)
            .filter(|c| c.len() == 9)
            .map(|c| format!("{} {}", c[6].trim_start_matches("__keyevent@0__:"), c[8]))
            .collect()
    }

    #[test]
    fn the_commit_announces_expiries_then_effects_then_serves_waiters() {
        let (data, mailbox) = data_with_subscriber();
        let ks = &data.keyspace;
        ks.lock_key(b"old")
            .insert(b"old", Value::Int(1), Expiry::At(10), 0);
        let waiter = left_pop_waiter(&data);
        let mut locks = Locked::new(ks);
        locks.acquire_keys([&b"old"[..], b"l"]);
        let mut changes = Changes::default();
        // The unit's command looks "old" up after its TTL (it expires), then
        // pushes twice.
        changes.begin(false);
        let command = changes.start_command();
        assert!(locks.table(b"old").get(b"old", 100).is_none());
        let mut list = List::default();
        list.push(End::Right, b"x");
        list.push(End::Right, b"y");
        let table = locks.table(b"l");
        table.insert(b"l", Value::List(Box::new(list)), Expiry::Persist, 100);
        changes.record(2, notify::LIST, "rpush", b"l");
        let mut expired = Vec::new();
        locks.take_expired(|key| expired.push(key.to_vec()));
        changes.end_command(command, expired.iter().map(Vec::as_slice), Vec::new);
        commit(&data, &mut locks, &mut changes, 100);
        assert_eq!(
            received(&mailbox),
            ["expired old", "rpush l", "lpop l"],
            "expiry first, then the unit's effects, then the served pop"
        );
        assert_eq!(
            waiter.take(),
            Some(Wake::Served(Outcome::ListPop {
                key: b"l".to_vec(),
                items: vec![b"x".to_vec()],
                counted: false
            }))
        );
        assert_eq!(data.dirty(), 4);
        assert!(changes.is_empty());
    }

    #[test]
    fn a_key_emptied_within_the_unit_wakes_nobody() {
        let (data, mailbox) = data_with_subscriber();
        let waiter = left_pop_waiter(&data);
        let mut locks = Locked::new(&data.keyspace);
        locks.acquire_key(b"l");
        let mut changes = Changes::default();
        // Pushed and deleted in one unit (MULTI; LPUSH; DEL; EXEC).
        changes.record(1, notify::LIST, "lpush", b"l");
        changes.record(1, notify::GENERIC, "del", b"l");
        commit(&data, &mut locks, &mut changes, 0);
        assert_eq!(received(&mailbox), ["lpush l", "del l"]);
        assert_eq!(waiter.take(), None);
        assert_eq!(data.blocked.len(), 1);
    }
}
