//! Lock changes in a unit of work (docs/CLUSTER.md, L1 and L5): the gate the
//! unit's caller opens (whether its lock changes are answered at once, held
//! for acknowledgements, or refused), the state each changed lock key had
//! before the unit, and the compensating unit's changes when the
//! acknowledgements do not come.

use std::sync::Arc;

use crate::blocking::held::{Changed, Held, KeyState};
use crate::clock::Millis;
use crate::keyspace::{Expiry, Locked, SlotTable};
use crate::notify;

use super::{record_state, Changes};

/// What a unit may do with locks (a lock change: `LOCK.ACQUIRE`, `EXTEND`,
/// `RELEASE`, a fill lease granted, a lock or lease granted to a waiter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockGate {
    /// The unit's caller cannot hold replies (eviction, a dropped slot):
    /// lock and lease waiters stay queued (the cron hands them on), and a
    /// command's lock change is answered at once.
    #[default]
    Closed,
    /// Lock changes are refused, and waiters stay queued.
    Refused(LockRefusal),
    /// Lock changes are made.
    Open {
        /// `Some`: they are held until this many replicas acknowledge them,
        /// for at most this long (ms).
        acks: Option<(usize, Millis)>,
        /// New lock grants are refused for this many ms still (`lock-delay`,
        /// L5); 0: allowed.
        delay: Millis,
    },
}

/// Why a lock change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LockRefusal {
    /// Fewer replicas are in sync than `lock-replicas-to-ack` wants (L1).
    #[error(
        "NOREPLICAS Not enough in-sync replicas to change a lock ({in_sync} of {wanted} required)"
    )]
    NoReplicas {
        /// Replicas in the in-sync set.
        in_sync: usize,
        /// `lock-replicas-to-ack` in force.
        wanted: usize,
    },
    /// The node may have lost grants (it started, or was promoted without an
    /// acknowledged stream) and refuses new ones for `lock-delay` (L5).
    #[error("LOCKDELAY This node may have lost lock grants (it started or was promoted without acknowledged replication); new grants are refused for lock-delay, retry in {left} ms")]
    Delay {
        /// Milliseconds until grants are allowed.
        left: Millis,
    },
}

impl LockRefusal {
    /// The error code (the reply text's first word).
    pub fn code(&self) -> &'static str {
        match self {
            LockRefusal::NoReplicas { .. } => "NOREPLICAS",
            LockRefusal::Delay { .. } => "LOCKDELAY",
        }
    }
}

/// The state of `key` in `table` at `now`, for undoing a lock change.
pub fn key_state(table: &mut SlotTable, key: &[u8], now: Millis) -> KeyState {
    match table.peek(key, now) {
        Some(entry) => KeyState::of(Some(entry.value), entry.expire_at()),
        None => KeyState::Absent,
    }
}

/// Notes that the unit is about to change lock `key` (in `table`): refused by
/// the gate, or allowed (and, if its changes are held, the key's state before
/// it noted). `grant` for a new grant of a lock, which `lock-delay` refuses.
pub fn lock_change(
    changes: &mut Changes,
    table: &mut SlotTable,
    key: &[u8],
    now: Millis,
    grant: bool,
) -> Result<(), LockRefusal> {
    match changes.lock_gate() {
        LockGate::Closed => Ok(()),
        LockGate::Refused(refusal) => Err(refusal),
        LockGate::Open { delay, .. } if grant && delay > 0 => {
            Err(LockRefusal::Delay { left: delay })
        }
        LockGate::Open { acks, .. } => {
            if let Some((replicas, timeout)) = acks {
                let before = key_state(table, key, now);
                changes
                    .held_unit(now, replicas, timeout)
                    .note_before(key, before);
            }
            Ok(())
        }
    }
}

/// True if a waiter may be granted a lock (`grant`) or a fill lease on `key`
/// by this unit; if so the change is noted as [`lock_change`] notes it.
pub(super) fn may_serve(
    changes: &mut Changes,
    table: &mut SlotTable,
    key: &[u8],
    now: Millis,
    grant: bool,
) -> bool {
    !matches!(changes.lock_gate(), LockGate::Closed)
        && lock_change(changes, table, key, now, grant).is_ok()
}

/// Records, at the end of a held unit (its slots still held), the state it
/// left each changed lock key in.
pub fn seal(held: &Arc<Held>, locks: &mut Locked<'_>, now: Millis) {
    for key in held.keys() {
        let after = key_state(locks.table(&key), &key, now);
        held.set_after(&key, after);
    }
}

/// The compensating unit's changes (L1): each key the unit left as it is now
/// goes back to its state before the unit (a lock whose lease ran out since:
/// none), recorded for the feed so replicas undo it too. Keys changed since
/// are left alone. The caller holds the keys' slots and commits `changes`.
/// True if every key was put back.
pub fn undo(
    locks: &mut Locked<'_>,
    changes: &mut Changes,
    changed: &[Changed],
    now: Millis,
) -> bool {
    let mut restored = true;
    for change in changed {
        let key = change.key.as_slice();
        let table = locks.table(key);
        if !key_state(table, key, now).same_as(&change.after) {
            restored = false;
            continue;
        }
        match &change.before {
            KeyState::Lock { value, expire_at } if expire_at.is_none_or(|at| at > now) => {
                let expiry = expire_at.map_or(Expiry::Persist, Expiry::At);
                table.insert(key, value.clone(), expiry, now);
                changes.record(1, notify::GENERIC, "restore", key);
            }
            _ => {
                if table.remove(key, now).is_none() {
                    continue;
                }
                changes.record(1, notify::GENERIC, "del", key);
            }
        }
        record_state(changes, table, key, now);
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::types::Lock;
    use crate::keyspace::{Keyspace, Value};

    fn lock(owner: &[u8], token: u64) -> Value {
        Value::Lock(Box::new(Lock::new(owner, token)))
    }

    fn open(acks: bool, delay: Millis) -> Changes {
        let mut changes = Changes::default();
        changes.begin(true);
        changes.set_lock_gate(LockGate::Open {
            acks: acks.then_some((1, 100)),
            delay,
        });
        changes
    }

    #[test]
    fn the_gate_refuses_or_notes_the_state_before_the_first_change() {
        let keyspace = Keyspace::new();
        let mut locks = Locked::new(&keyspace);
        locks.acquire_key(b"L");
        let table = locks.table(b"L");
        let mut changes = open(false, 0);
        assert_eq!(lock_change(&mut changes, table, b"L", 0, true), Ok(()));
        assert!(changes.take_held().is_none(), "nothing held without acks");
        let mut changes = open(true, 500);
        assert_eq!(
            lock_change(&mut changes, table, b"L", 0, true),
            Err(LockRefusal::Delay { left: 500 })
        );
        assert_eq!(lock_change(&mut changes, table, b"L", 0, false), Ok(()));
        table.insert(b"L", lock(b"a", 9), Expiry::At(1_000), 0);
        assert_eq!(lock_change(&mut changes, table, b"L", 0, false), Ok(()));
        let (held, own) = changes.take_held().expect("held");
        assert!(!own, "noted through the write path, not by a command");
        assert_eq!(held.keys(), [b"L".to_vec()]);
        seal(&held, &mut locks, 0);
        let changed = held.start_undo().unwrap();
        assert_eq!(
            changed[0].before,
            KeyState::Absent,
            "the first change counts"
        );
        let refused = LockRefusal::NoReplicas {
            in_sync: 0,
            wanted: 1,
        };
        let mut changes = Changes::default();
        changes.set_lock_gate(LockGate::Refused(refused));
        let table = locks.table(b"L");
        assert_eq!(
            lock_change(&mut changes, table, b"L", 0, false),
            Err(refused)
        );
        assert!(!may_serve(&mut Changes::default(), table, b"L", 0, false));
    }

    #[test]
    fn the_undo_puts_back_only_what_the_unit_left() {
        let keyspace = Keyspace::new();
        let mut locks = Locked::new(&keyspace);
        locks.acquire_keys([&b"a"[..], b"b", b"c"]);
        let before = |owner: &[u8]| KeyState::Lock {
            value: lock(owner, 1),
            expire_at: Some(1_000),
        };
        // a: granted by the unit (was free); b: released by the unit, then
        // taken by someone else; c: extended, its old lease ran out since.
        locks
            .table(b"a")
            .insert(b"a", lock(b"me", 5), Expiry::At(900), 0);
        locks
            .table(b"b")
            .insert(b"b", lock(b"other", 6), Expiry::At(900), 0);
        locks
            .table(b"c")
            .insert(b"c", lock(b"me", 1), Expiry::At(5_000), 0);
        let changed = vec![
            Changed {
                key: b"a".to_vec(),
                before: KeyState::Absent,
                after: key_state(locks.table(b"a"), b"a", 0),
            },
            Changed {
                key: b"b".to_vec(),
                before: before(b"me"),
                after: KeyState::Absent,
            },
            Changed {
                key: b"c".to_vec(),
                before: KeyState::Lock {
                    value: lock(b"me", 1),
                    expire_at: Some(10),
                },
                after: key_state(locks.table(b"c"), b"c", 0),
            },
        ];
        let mut changes = Changes::default();
        changes.begin(true);
        assert!(!undo(&mut locks, &mut changes, &changed, 20), "b moved on");
        assert!(locks.table(b"a").peek(b"a", 20).is_none(), "grant undone");
        assert!(locks.table(b"b").peek(b"b", 20).is_some(), "left alone");
        assert!(
            locks.table(b"c").peek(b"c", 20).is_none(),
            "its lease ran out"
        );
        let (records, count) = changes.records();
        assert_eq!(count, 2);
        assert!(records.starts_with(b"*2\r\n$3\r\nDEL\r\n$1\r\na\r\n"));
    }
}
