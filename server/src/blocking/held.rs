//! Replies held until replicas acknowledge a unit of work's lock changes
//! (docs/CLUSTER.md, L1): what the unit changed (each lock key's state before
//! it and the state it left, for the compensating unit), when the
//! acknowledgement is due, and how the wait settled.
//!
//! ```text
//! unit changes a lock ─▶ Held (pending) ─▶ its client's reply and the replies of
//!   the clients its commit served are kept ─▶ every in-sync replica acknowledged
//!   the feed offset after the unit ─▶ Acked: the replies go
//!                                   └▶ deadline first ─▶ Undoing ─▶ Undone: errors
//! ```
//! The replication state settles it as acknowledged; whoever first sees the
//! deadline pass undoes it (the write path's compensating unit). Uses the
//! clock and the keyspace's values.

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::Millis;
use crate::keyspace::Value;

/// How a held unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for acknowledgements.
    Pending,
    /// Every replica it waited for acknowledged it: its replies go.
    Acked,
    /// Its deadline passed: the compensating unit runs.
    Undoing,
    /// Undone: its clients get an error. `restored` is false when some lock
    /// had changed since (it was left as it was).
    Undone {
        /// Every changed lock was put back as it was before the unit.
        restored: bool,
    },
}

impl Phase {
    /// True once the replies can be written (acknowledged or undone).
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Acked | Phase::Undone { .. })
    }
}

/// A lock key's state, as far as undoing a lock change needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyState {
    /// No key.
    Absent,
    /// A lock, fill lease or cached absence, with its expiry.
    Lock {
        /// The value (a lock or a lease carries its fencing token).
        value: Value,
        /// When it expires (ms), if ever.
        expire_at: Option<Millis>,
    },
    /// Another kind of value (a transaction wrote over the lock): never
    /// undone.
    Other,
}

impl KeyState {
    /// The state of a key holding `value` (none: absent) with `expire_at`.
    pub fn of(value: Option<&Value>, expire_at: Option<Millis>) -> KeyState {
        match value {
            None => KeyState::Absent,
            Some(v @ (Value::Lock(_) | Value::Lease(_) | Value::Absent)) => KeyState::Lock {
                value: v.clone(),
                expire_at,
            },
            Some(_) => KeyState::Other,
        }
    }

    /// True if `self` is known to be `other` (`Other` is never known).
    pub fn same_as(&self, other: &KeyState) -> bool {
        !matches!(self, KeyState::Other) && self == other
    }
}

/// One lock key a held unit changed.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The key.
    pub key: Vec<u8>,
    /// Its state before the unit.
    pub before: KeyState,
    /// The state the unit left (set when the unit ends).
    pub after: KeyState,
}

/// A unit of work whose lock changes wait for acknowledgements.
#[derive(Debug)]
pub struct Held {
    phase: watch::Sender<Phase>,
    changed: Mutex<Vec<Changed>>,
    /// When the acknowledgements are due (ms on the node's clock).
    pub deadline: Millis,
    /// How many replicas must acknowledge.
    pub replicas: usize,
    /// `lock-ack-timeout` when the unit ran (ms).
    pub timeout: Millis,
}

/// Held units are told apart by identity (a woken client's `Wake` names one).
impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Held {
    /// A pending unit started at `now` that `replicas` replicas must
    /// acknowledge within `timeout` ms.
    pub fn new(now: Millis, replicas: usize, timeout: Millis) -> Self {
        Held {
            phase: watch::Sender::new(Phase::Pending),
            changed: Mutex::new(Vec::new()),
            deadline: now.saturating_add(timeout),
            replicas,
            timeout,
        }
    }

    /// Notes that the unit is about to change `key`, which is in state
    /// `before`; only the first change of a key counts (the state before the
    /// whole unit).
    pub fn note_before(&self, key: &[u8], before: KeyState) {
        let mut changed = self.changed.lock();
        if !changed.iter().any(|c| c.key == key) {
            changed.push(Changed {
                key: key.to_vec(),
                before,
                after: KeyState::Other,
            });
        }
    }

    /// The keys the unit changed.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.changed.lock().iter().map(|c| c.key.clone()).collect()
    }

    /// Records the state the unit left `key` in.
    pub fn set_after(&self, key: &[u8], after: KeyState) {
        if let Some(c) = self.changed.lock().iter_mut().find(|c| c.key == key) {
            c.after = after;
        }
    }

    /// Where it stands.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// The replicas acknowledged it; false if it had settled otherwise.
    pub fn acknowledged(&self) -> bool {
        self.phase.send_if_modified(|phase| match phase {
            Phase::Pending => {
                *phase = Phase::Acked;
                true
            }
            _ => false,
        })
    }

    /// Its deadline passed: the caller undoes the returned changes and then
    /// calls [`Held::undone`]. `None` if it settled already or someone else
    /// is undoing it.
    pub fn start_undo(&self) -> Option<Vec<Changed>> {
        let started = self.phase.send_if_modified(|phase| match phase {
            Phase::Pending => {
                *phase = Phase::Undoing;
                true
            }
            _ => false,
        });
        started.then(|| self.changed.lock().clone())
    }

    /// The compensating unit ran.
    pub fn undone(&self, restored: bool) {
        self.phase.send_replace(Phase::Undone { restored });
    }

    /// Waits until it is acknowledged or undone.
    pub async fn settled(&self) -> Phase {
        let mut phase = self.phase.subscribe();
        let settled = match phase.wait_for(|p| p.is_final()).await {
            Ok(p) => Some(*p),
            // The sender lives as long as `self`.
            Err(_) => None,
        };
        settled.unwrap_or_else(|| self.phase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::types::Lock;

    fn lock(owner: &[u8], token: u64) -> KeyState {
        KeyState::Lock {
            value: Value::Lock(Box::new(Lock::new(owner, token))),
            expire_at: Some(1_000),
        }
    }

    #[test]
    fn a_held_unit_settles_once_acknowledged_or_once_undone() {
        let held = Held::new(100, 1, 50);
        assert_eq!(held.deadline, 150);
        held.note_before(b"L", KeyState::Absent);
        held.note_before(b"L", lock(b"a", 1));
        held.set_after(b"L", lock(b"a", 7));
        assert!(held.acknowledged());
        assert_eq!(held.phase(), Phase::Acked);
        assert_eq!(
            held.start_undo().map(|c| c.len()),
            None,
            "acknowledged first"
        );
        let late = Held::new(100, 1, 50);
        late.note_before(b"L", KeyState::Absent);
        let changed = late.start_undo().expect("pending");
        assert_eq!(
            changed[0].before,
            KeyState::Absent,
            "the state before the unit"
        );
        assert!(late.start_undo().is_none(), "one undo");
        assert!(!late.acknowledged(), "too late to acknowledge");
        late.undone(true);
        assert_eq!(late.phase(), Phase::Undone { restored: true });
    }

    #[test]
    fn other_values_are_never_the_same_state() {
        let string = KeyState::of(Some(&Value::Int(1)), None);
        assert_eq!(string, KeyState::Other);
        assert!(!string.same_as(&KeyState::Other));
        assert!(lock(b"a", 1).same_as(&lock(b"a", 1)));
        assert!(!lock(b"a", 1).same_as(&lock(b"a", 2)));
        assert!(KeyState::Absent.same_as(&KeyState::of(None, None)));
    }

    #[tokio::test]
    async fn waiters_see_the_final_phase() {
        let held = std::sync::Arc::new(Held::new(0, 1, 10));
        let waiting = tokio::spawn({
            let held = held.clone();
            async move { held.settled().await }
        });
        tokio::task::yield_now().await;
        held.start_undo();
        held.undone(false);
        assert_eq!(waiting.await.unwrap(), Phase::Undone { restored: false });
    }
}
