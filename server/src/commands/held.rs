//! Lock changes that wait for the in-sync replicas (docs/CLUSTER.md, L1): a
//! unit of work that may change locks opens the lock gate the replication
//! state allows, and once committed hands its held changes to the replication
//! state to wait for; when the acknowledgements do not come in time, the
//! compensating unit undoes them through the write path.
//!
//! ```text
//! open(): lock gate ─▶ unit runs, commits ─▶ close(): each changed lock's
//!   state left noted, held until every in-sync replica acknowledged the feed
//!   offset after the unit (GETACK asked) ─▶ the replies go
//!                                       └▶ deadline: expire() undoes it once;
//!                                          its clients get an error
//! ```
//! Used by `run` for commands, by the cron's lease hand-overs and by the
//! connections that wait on held replies.

use std::sync::Arc;
use std::time::Instant;

use crate::blocking::held::Phase;
use crate::blocking::Held;
use crate::clock::Millis;
use crate::keyspace::Locked;
use crate::protocol::Reply;
use crate::replication::Replica;
use crate::session::Session;
use crate::shared::Shared;
use crate::write::Changes;

use super::CommandError;

/// Opens the lock gate of a unit of work that may change locks (see
/// `Replication::lock_gate`); returns the in-sync replicas its changes wait
/// for, to hand to [`close`]. `at`: when the unit started.
pub fn open(shared: &Shared, changes: &mut Changes, at: Instant) -> Vec<Arc<Replica>> {
    let (gate, members) = shared
        .replication
        .lock_gate_at(&shared.config, &shared.cluster, at);
    changes.set_lock_gate(gate);
    members
}

/// Ends a unit that [`open`] opened, after its commit and with its slots
/// still held: its held lock changes, if any, wait from now on for `members`
/// to acknowledge the feed up to the unit. Returns them, and whether a
/// command of the unit made some itself (its reply then waits too).
pub fn close(
    shared: &Shared,
    locks: &mut Locked<'_>,
    changes: &mut Changes,
    members: Vec<Arc<Replica>>,
    now: Millis,
) -> Option<(Arc<Held>, bool)> {
    let (held, own) = changes.take_held()?;
    crate::write::seal(&held, locks, now);
    let feed = &shared.data.feed;
    shared
        .replication
        .hold(feed, held.clone(), feed.offset(), members, &shared.cluster);
    Some((held, own))
}

/// `held`'s deadline passed: undoes it, once, with a compensating unit of
/// work that puts each changed lock back if it is still as the unit left it
/// (replicas apply the undo from the stream too). Does nothing if it settled
/// or someone else undoes it; [`Held::settled`] then says when it is done.
pub fn expire(shared: &Shared, held: &Held) {
    let Some(changed) = held.start_undo() else {
        return;
    };
    // A node that became a replica meanwhile changes nothing on its own.
    if shared.replication.is_replica() {
        held.undone(false);
        return;
    }
    let now = shared.clock.now_ms();
    let data = &shared.data;
    let mut locks = Locked::new(&data.keyspace);
    locks.acquire_keys(changed.iter().map(|c| c.key.as_slice()));
    super::before_unit(shared, &mut locks, now);
    let mut changes = Changes::default();
    changes.begin(data.feed.is_active());
    let members = open(shared, &mut changes, Instant::now());
    // Leases that ran out go first, as any unit's lookups expire them.
    for change in &changed {
        locks.table(&change.key).peek(&change.key, now);
    }
    locks.take_expired(|key| changes.expired(key));
    let restored = crate::write::undo(&mut locks, &mut changes, &changed, now);
    crate::write::commit(data, &mut locks, &mut changes, now);
    close(shared, &mut locks, &mut changes, members, now);
    drop(locks);
    held.undone(restored);
    tracing::warn!(
        replicas = held.replicas,
        timeout_ms = held.timeout,
        restored,
        "lock change not acknowledged in time; undone"
    );
}

/// The error a client of `held`, which was undone, gets instead of its reply.
pub fn write_failure(shared: &Shared, session: &mut Session, held: &Held, out: &mut Reply) {
    let restored = matches!(held.phase(), Phase::Undone { restored: true });
    let err = CommandError::LockNotAcknowledged {
        replicas: held.replicas,
        timeout_ms: held.timeout,
        restored,
    };
    super::reply_error(shared, session, out, &err);
}
