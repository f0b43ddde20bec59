//! Eviction as units of work: each key the evictor removes is committed like
//! any other change.

use super::{commit, Changes};
use crate::clock::Millis;
use crate::dataset::Dataset;
use crate::eviction::OutOfMemory;
use crate::{memory, notify};

/// Evicts keys until memory use is at or under `maxmemory` (see
/// [`evict_while`]). Must be called holding no slot lock.
pub fn make_room(data: &Dataset, now: Millis) -> Result<usize, OutOfMemory> {
    let limit = data.config.maxmemory();
    if limit == 0 {
        return Ok(0);
    }
    evict_while(data, now, || memory::used() > limit)
}

/// Evicts keys by the configured policy while `over()` holds; each eviction is
/// a unit of work, committed while its slot is held (an `evicted` event, the
/// `WATCH`es it breaks, a change, a `DEL` in the write feed). Must be called
/// holding no slot lock.
pub fn evict_while(
    data: &Dataset,
    now: Millis,
    over: impl FnMut() -> bool,
) -> Result<usize, OutOfMemory> {
    let mut changes = Changes::default();
    let feeding = data.feed.is_active();
    data.evictor.evict_while(
        &data.keyspace,
        data.config.eviction(),
        now,
        over,
        |locks, evicted| {
            changes.begin(feeding);
            locks.take_expired(|key| changes.expired(key));
            if let Some(key) = evicted {
                changes.record(1, notify::EVICTED, "evicted", key);
                changes.command(&[b"DEL", key]);
            }
            commit(data, locks, &mut changes, now);
        },
    )
}
