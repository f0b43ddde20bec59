//! Consumer groups: where a group has read up to, which entries it delivered
//! and to whom (its pending entries list, PEL), and its consumers.
//!
//! Invariant: an id is in a consumer's PEL exactly when the group's PEL has it
//! and names that consumer.

use std::collections::{BTreeMap, BTreeSet};

use super::{EntryRef, Stream, StreamId};
use crate::keyspace::value::Blob;

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The last id delivered to the group (`>` reads after it).
    pub last_id: StreamId,
    /// Entries the group has read since the stream began, where known.
    pub entries_read: Option<u64>,
    pel: BTreeMap<StreamId, Pending>,
    consumers: BTreeMap<Blob, Consumer>,
}

/// A delivered entry not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The consumer it was delivered to.
    pub consumer: Blob,
    /// When it was last delivered (Unix ms).
    pub delivery_time: u64,
    /// How many times it was delivered.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Consumer {
    /// When it last read or claimed (or was created), Unix ms.
    pub seen_time: u64,
    /// When it last got entries, if ever.
    pub active_time: Option<u64>,
    pel: BTreeSet<StreamId>,
}

impl Consumer {
    /// A consumer created at `now`.
    fn new(now: u64) -> Self {
        Consumer {
            seen_time: now,
            active_time: None,
            pel: BTreeSet::new(),
        }
    }

    /// The ids delivered to it and not acknowledged.
    pub fn pending(&self) -> &BTreeSet<StreamId> {
        &self.pel
    }
}

impl Group {
    /// A group that has read up to `last_id`.
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> Self {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The pending entries by id.
    pub fn pending(&self) -> &BTreeMap<StreamId, Pending> {
        &self.pel
    }

    /// The consumers by name.
    pub fn consumers(&self) -> &BTreeMap<Blob, Consumer> {
        &self.consumers
    }

    /// The consumer `name`.
    pub fn consumer(&self, name: &[u8]) -> Option<&Consumer> {
        self.consumers.get(name)
    }

    /// Creates the consumer `name`; false if it exists.
    pub fn create_consumer(&mut self, name: &[u8], now: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(Blob::new(name), Consumer::new(now));
        true
    }

    /// Marks the consumer `name` seen at `now`, creating it if needed; true if
    /// it was created.
    pub fn seen(&mut self, name: &[u8], now: u64) -> bool {
        let created = self.create_consumer(name, now);
        if let Some(consumer) = self.consumers.get_mut(name) {
            consumer.seen_time = now;
        }
        created
    }

    /// Marks the consumer `name` (which exists) active at `now`.
    pub fn active(&mut self, name: &[u8], now: u64) {
        if let Some(consumer) = self.consumers.get_mut(name) {
            consumer.active_time = Some(now);
        }
    }

    /// Deletes the consumer `name` and its pending entries; how many it had,
    /// or `None` if there is no such consumer.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pel {
            self.pel.remove(id);
        }
        Some(consumer.pel.len())
    }

    /// Records `id` delivered to `consumer` (which exists) at `now`: a new
    /// pending entry, or one taken over from whoever had it, counted once.
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now: u64) {
        self.assign(id, consumer, now, 1);
    }

    /// Gives the pending entry `id` (or a new one) to `consumer`, which
    /// exists, with this delivery time and count.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], time: u64, count: u64) {
        if let Some(old) = self.pel.get(&id) {
            if let Some(owner) = self.consumers.get_mut(old.consumer.as_bytes()) {
                owner.pel.remove(&id);
            }
        }
        let Some(owner) = self.consumers.get_mut(consumer) else {
            return;
        };
        owner.pel.insert(id);
        let pending = Pending {
            consumer: Blob::new(consumer),
            delivery_time: time,
            delivery_count: count,
        };
        self.pel.insert(id, pending);
    }

    /// The pending entry `id`, to update its delivery time and count.
    pub fn pending_mut(&mut self, id: StreamId) -> Option<&mut Pending> {
        self.pel.get_mut(&id)
    }

    /// Acknowledges `id`; false if it was not pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        self.remove_pending(id).is_some()
    }

    /// Takes `id` out of the PEL (and its consumer's), returning what it was.
    fn remove_pending(&mut self, id: StreamId) -> Option<Pending> {
        let pending = self.pel.remove(&id)?;
        if let Some(owner) = self.consumers.get_mut(pending.consumer.as_bytes()) {
            owner.pel.remove(&id);
        }
        Some(pending)
    }

    /// Moves the group to `last_id` with this read counter (`XGROUP SETID`).
    pub fn set_id(&mut self, last_id: StreamId, entries_read: Option<u64>) {
        self.last_id = last_id;
        self.entries_read = entries_read;
    }

    /// Claims the pending entry `id` of a live entry for `consumer` (which
    /// exists), as XCLAIM does for one id: see [`Stream::claim`].
    fn claim_live(&mut self, id: StreamId, consumer: &[u8], claim: &ClaimArgs, now: u64) -> Claim {
        let current = match self.pel.get(&id) {
            Some(pending) => {
                if claim.min_idle != 0 && idle(now, pending.delivery_time) < claim.min_idle {
                    return Claim::Skipped;
                }
                pending.delivery_count
            }
            // FORCE makes a pending entry first (delivered once), whatever
            // the minimum idle time.
            None if claim.force => 1,
            None => return Claim::Skipped,
        };
        let count = match claim.retry_count {
            Some(count) => count,
            None if claim.justid => current,
            None => current.wrapping_add(1),
        };
        self.assign(id, consumer, claim.delivery_time, count);
        self.active(consumer, now);
        Claim::Claimed(self.pel[&id].clone())
    }

    /// Heap bytes used, roughly: the trees' slots and the names.
    pub fn heap_size(&self) -> usize {
        let pending = std::mem::size_of::<(StreamId, Pending)>() * 3 / 2;
        let consumer = std::mem::size_of::<(Blob, Consumer)>() * 3 / 2;
        let owned = std::mem::size_of::<StreamId>() * 3 / 2;
        self.pel.len() * (pending + owned)
            + self
                .consumers
                .keys()
                .map(|name| consumer + name.heap_size())
                .sum::<usize>()
    }
}

/// Milliseconds since `time` at `now`, as Redis's signed arithmetic gives
/// them (negative for a time ahead of the clock).
pub fn idle(now: u64, time: u64) -> i64 {
    (now as i64).wrapping_sub(time as i64)
}

/// How XCLAIM claims each id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimArgs {
    /// Pending entries idle for less than this are left alone (0: none is).
    pub min_idle: i64,
    /// The delivery time claimed entries get (Unix ms).
    pub delivery_time: u64,
    /// The delivery count claimed entries get (`RETRYCOUNT`); by default it
    /// goes up by one.
    pub retry_count: Option<u64>,
    /// `FORCE`: an entry of the stream that nobody has pending becomes
    /// pending.
    pub force: bool,
    /// `JUSTID`: the delivery count stays as it was (unless `retry_count`).
    pub justid: bool,
}

/// What claiming one id did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// It is the consumer's now: the pending entry as it became.
    Claimed(Pending),
    /// Its entry is no longer in the stream: its pending entry, as it was,
    /// left the PEL.
    Gone(Pending),
    /// Nothing changed (not pending, or not idle long enough).
    Skipped,
}

/// What XAUTOCLAIM did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoClaimed {
    /// The ids claimed, in order, with their pending entries as they became.
    pub claimed: Vec<(StreamId, Pending)>,
    /// The ids whose entries were gone, with their pending entries as they
    /// were (they left the PEL).
    pub deleted: Vec<(StreamId, Pending)>,
    /// Where the next call starts: the first pending id not looked at, or
    /// `0-0` when the PEL was scanned to its end.
    pub next: StreamId,
}

/// What a `>` read of a group delivers, entry by entry.
pub struct Delivered<'a> {
    /// The entry.
    pub entry: EntryRef<'a>,
    /// The pending entry made for it (`None` with NOACK).
    pub pending: Option<&'a Pending>,
}

impl Stream {
    /// Reads for `consumer` (which exists) of group `name` (which exists) the
    /// entries after the group's last id, at most `count` (0: all), as
    /// XREADGROUP's `>` does: the group's last id and read counter move on,
    /// and unless `noack` each entry becomes pending for the consumer.
    /// `each` sees every entry delivered; returns how many.
    pub fn read_new(
        &mut self,
        name: &[u8],
        consumer: &[u8],
        count: usize,
        noack: bool,
        now: u64,
        mut each: impl FnMut(Delivered<'_>),
    ) -> usize {
        let Some(mut group) = self.groups.remove(name) else {
            return 0;
        };
        let start = group.last_id.next();
        let mut delivered = 0;
        for entry in start
            .into_iter()
            .flat_map(|start| self.range(start, StreamId::MAX))
        {
            // The counter goes on by one only when nothing the group skips
            // lies between: no tombstone after its last id (Redis 8 checks
            // from there, 7.2 from the entry), and no entry trimmed since
            // (the group is not behind the first entry; Redis counts those
            // as read).
            let contiguous = group.last_id >= self.first_id && !self.tombstones_from(group.last_id);
            if group.entries_read.is_some() && contiguous {
                group.entries_read = group.entries_read.map(|n| n + 1);
            } else if self.entries_added != 0 {
                group.entries_read = self.entries_read_at(entry.id);
            }
            group.last_id = entry.id;
            let pending = (!noack).then(|| {
                group.deliver(entry.id, consumer, now);
                group.active(consumer, now);
                &group.pel[&entry.id]
            });
            each(Delivered { entry, pending });
            delivered += 1;
            if delivered == count {
                break;
            }
        }
        self.groups.insert(Blob::new(name), group);
        delivered
    }
}

impl Stream {
    /// The group `name`, to change.
    pub fn group_mut(&mut self, name: &[u8]) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }

    /// Creates the group `name` at `last_id`; false if it exists.
    pub fn create_group(
        &mut self,
        name: &[u8],
        last_id: StreamId,
        entries_read: Option<u64>,
    ) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        let group = Group::new(last_id, entries_read);
        self.groups.insert(Blob::new(name), group);
        true
    }

    /// Deletes the group `name`, its consumers and PEL; false if none.
    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        self.groups.remove(name).is_some()
    }

    /// Claims `id` for `consumer` (which exists) of group `name` as XCLAIM
    /// does: a pending entry idle long enough (or, with `force`, any entry of
    /// the stream) becomes the consumer's with the claim's delivery time and
    /// count; a pending entry whose entry is gone leaves the PEL.
    pub fn claim(
        &mut self,
        name: &[u8],
        consumer: &[u8],
        id: StreamId,
        claim: &ClaimArgs,
        now: u64,
    ) -> Claim {
        let live = self.get(id).is_some();
        let Some(group) = self.groups.get_mut(name) else {
            return Claim::Skipped;
        };
        match live {
            true => group.claim_live(id, consumer, claim, now),
            false => group.remove_pending(id).map_or(Claim::Skipped, Claim::Gone),
        }
    }

    /// Claims for `consumer` (which exists) of group `name` the pending
    /// entries from `start` on idle for at least `min_idle` ms (0: any), as
    /// XAUTOCLAIM does: at most `count` ids claimed or found gone (gone ones
    /// leave the PEL), looking at no more than ten times `count` pending
    /// entries. Claimed entries are delivered again at `now`, counted once
    /// more unless `justid`.
    #[allow(clippy::too_many_arguments)]
    pub fn auto_claim(
        &mut self,
        name: &[u8],
        consumer: &[u8],
        start: StreamId,
        min_idle: i64,
        count: usize,
        justid: bool,
        now: u64,
    ) -> AutoClaimed {
        let mut done = AutoClaimed::default();
        let Some(mut group) = self.groups.remove(name) else {
            return done;
        };
        let mut attempts = count.saturating_mul(10);
        let mut left = count;
        // The next pending id to look at is the first at or after `from`.
        let mut from = Some(start);
        while attempts > 0 && left > 0 {
            attempts -= 1;
            let Some(id) = from.and_then(|from| group.pel.range(from..).next().map(|(&id, _)| id))
            else {
                from = None;
                break;
            };
            from = id.next();
            if self.get(id).is_none() {
                if let Some(pending) = group.remove_pending(id) {
                    done.deleted.push((id, pending));
                }
                left -= 1;
                continue;
            }
            let pending = &group.pel[&id];
            if min_idle != 0 && idle(now, pending.delivery_time) < min_idle {
                continue;
            }
            let count = match justid {
                true => pending.delivery_count,
                false => pending.delivery_count.wrapping_add(1),
            };
            group.assign(id, consumer, now, count);
            group.active(consumer, now);
            done.claimed.push((id, group.pel[&id].clone()));
            left -= 1;
        }
        done.next = from
            .and_then(|from| group.pel.range(from..).next().map(|(&id, _)| id))
            .unwrap_or(StreamId::MIN);
        self.groups.insert(Blob::new(name), group);
        done
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::keyspace::types::stream::{IdArg, NodeLimits, Trim};

    const LIMITS: NodeLimits = NodeLimits {
        bytes: 0,
        entries: 3,
    };

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    /// A stream with entries `1-0`..`n-0` and group `g` at `0-0`.
    fn stream(n: u64) -> Stream {
        let mut s = Stream::default();
        for ms in 1..=n {
            s.append(Some(IdArg::Id(id(ms, 0))), &[b"f", b"v"], LIMITS, 0)
                .unwrap();
        }
        assert!(s.create_group(b"g", StreamId::MIN, None));
        s
    }

    /// XREADGROUP `>` of group `g` for `consumer` (made first).
    fn read(s: &mut Stream, consumer: &[u8], count: usize, now: u64) -> usize {
        s.group_mut(b"g").unwrap().seen(consumer, now);
        s.read_new(b"g", consumer, count, false, now, |_| {})
    }

    /// The PEL invariant (see the module documentation).
    fn check(group: &Group) {
        for (id, pending) in &group.pel {
            let owner = &group.consumers[pending.consumer.as_bytes()];
            assert!(owner.pel.contains(id), "{id} not in its owner's PEL");
        }
        for (name, consumer) in &group.consumers {
            for id in &consumer.pel {
                assert_eq!(group.pel[id].consumer, *name, "{id} owned by another");
            }
        }
    }

    fn claim_args(min_idle: i64, time: u64) -> ClaimArgs {
        ClaimArgs {
            min_idle,
            delivery_time: time,
            retry_count: None,
            force: false,
            justid: false,
        }
    }

    #[test]
    fn groups_are_created_once_and_destroyed() {
        let mut s = stream(2);
        assert!(!s.create_group(b"g", id(1, 0), Some(1)));
        assert!(s.create_group(b"h", id(1, 0), Some(1)));
        s.group_mut(b"h").unwrap().set_id(id(2, 0), None);
        assert_eq!(s.group(b"h").unwrap().last_id, id(2, 0));
        assert_eq!(s.group(b"h").unwrap().entries_read, None);
        assert!(s.destroy_group(b"h"));
        assert!(!s.destroy_group(b"h"));
    }

    #[test]
    fn claims_move_idle_entries_and_count_deliveries() {
        let mut s = stream(3);
        let n = read(&mut s, b"a", 0, 100);
        assert_eq!(n, 3);
        s.group_mut(b"g").unwrap().seen(b"b", 150);
        // Idle 50 ms: not claimed with a minimum of 60.
        let claimed = s.claim(b"g", b"b", id(1, 0), &claim_args(60, 150), 150);
        assert_eq!(claimed, Claim::Skipped);
        let Claim::Claimed(p) = s.claim(b"g", b"b", id(1, 0), &claim_args(50, 150), 150) else {
            panic!("not claimed");
        };
        assert_eq!(
            (p.consumer.as_bytes(), p.delivery_time, p.delivery_count),
            (&b"b"[..], 150, 2)
        );
        // JUSTID keeps the count; RETRYCOUNT sets it.
        let justid = ClaimArgs {
            justid: true,
            ..claim_args(0, 160)
        };
        let Claim::Claimed(p) = s.claim(b"g", b"b", id(2, 0), &justid, 160) else {
            panic!("not claimed");
        };
        assert_eq!(p.delivery_count, 1);
        let retry = ClaimArgs {
            retry_count: Some(9),
            ..claim_args(0, 160)
        };
        let Claim::Claimed(p) = s.claim(b"g", b"b", id(3, 0), &retry, 160) else {
            panic!("not claimed");
        };
        assert_eq!(p.delivery_count, 9);
        let g = s.group(b"g").unwrap();
        assert!(g.consumer(b"a").unwrap().pending().is_empty());
        assert_eq!(g.consumer(b"b").unwrap().pending().len(), 3);
        assert_eq!(g.consumer(b"b").unwrap().active_time, Some(160));
        check(g);
    }

    #[test]
    fn force_makes_entries_pending_and_gone_entries_leave() {
        let mut s = stream(3);
        s.group_mut(b"g").unwrap().seen(b"c", 10);
        assert_eq!(
            s.claim(b"g", b"c", id(1, 0), &claim_args(0, 10), 10),
            Claim::Skipped
        );
        let force = ClaimArgs {
            force: true,
            ..claim_args(1000, 10)
        };
        // A new pending entry counts as delivered once, then once more.
        let Claim::Claimed(p) = s.claim(b"g", b"c", id(1, 0), &force, 10) else {
            panic!("not claimed");
        };
        assert_eq!(p.delivery_count, 2);
        // No entry, nothing pending: nothing, even forced.
        assert_eq!(s.claim(b"g", b"c", id(9, 0), &force, 10), Claim::Skipped);
        assert!(s.delete(id(1, 0)));
        let Claim::Gone(p) = s.claim(b"g", b"c", id(1, 0), &force, 10) else {
            panic!("not gone");
        };
        assert_eq!(p.delivery_count, 2);
        let g = s.group(b"g").unwrap();
        assert!(g.pending().is_empty());
        check(g);
    }

    #[test]
    fn auto_claims_stop_at_count_and_attempts_and_say_where_to_go_on() {
        let mut s = stream(30);
        read(&mut s, b"a", 0, 100);
        s.group_mut(b"g").unwrap().seen(b"b", 200);
        assert!(s.delete(id(2, 0)));
        let done = s.auto_claim(b"g", b"b", StreamId::MIN, 0, 3, false, 200);
        let claimed: Vec<StreamId> = done.claimed.iter().map(|(id, _)| *id).collect();
        assert_eq!(claimed, [id(1, 0), id(3, 0)]);
        assert_eq!(done.deleted.len(), 1);
        assert_eq!(done.deleted[0].0, id(2, 0));
        assert_eq!(done.next, id(4, 0));
        assert_eq!(done.claimed[0].1.delivery_count, 2);
        // Entries not idle long enough use up the attempts (ten per count).
        s.group_mut(b"g")
            .unwrap()
            .pel
            .get_mut(&id(25, 0))
            .unwrap()
            .delivery_time = 0;
        let done = s.auto_claim(b"g", b"b", id(4, 0), 150, 1, true, 200);
        assert!(done.claimed.is_empty());
        assert_eq!(done.next, id(14, 0));
        let done = s.auto_claim(b"g", b"b", id(14, 0), 150, 2, true, 200);
        assert_eq!(done.claimed[0].0, id(25, 0));
        assert_eq!(done.claimed[0].1.delivery_count, 1);
        assert_eq!(done.next, StreamId::MIN, "scanned to the end");
        check(s.group(b"g").unwrap());
    }

    #[test]
    fn lag_is_right_after_deletions_and_trims() {
        // Redis 7.2 answers 1 and 3 here.
        let mut s = stream(3);
        read(&mut s, b"c", 1, 0);
        assert!(s.delete(id(2, 0)));
        read(&mut s, b"c", 1, 0);
        assert_eq!(s.lag(s.group(b"g").unwrap()), Some(0));
        let mut s = stream(5);
        read(&mut s, b"c", 1, 0);
        s.trim(Trim::MaxLen(3), false, 0);
        read(&mut s, b"c", 1, 0);
        let g = s.group(b"g").unwrap();
        assert_eq!((g.entries_read, s.lag(g)), (Some(3), Some(2)));
    }

    /// One step of the model test.
    #[derive(Debug, Clone)]
    enum Op {
        /// XADD: an id from the clock, or this far past the last id's ms.
        Add(Option<u8>),
        /// XDEL of the nth id ever added (mod their count).
        Del(usize),
        /// XTRIM MAXLEN, exact or `~`.
        MaxLen(u64, bool),
        /// XTRIM MINID at the nth id ever added, exact or `~`.
        MinId(usize, bool),
        /// XGROUP CREATE of group 0 or 1 at 0, `$`, or the nth id added.
        Create(u8, Option<Option<usize>>),
        /// XREADGROUP `>` of a group for a consumer, COUNT, NOACK.
        Read(u8, u8, usize, bool),
        /// XACK of the nth pending entry.
        Ack(u8, usize),
        /// XCLAIM of the nth id added for a consumer, min idle, FORCE.
        Claim(u8, u8, usize, i64, bool),
        /// XAUTOCLAIM from the nth id added, COUNT.
        AutoClaim(u8, u8, usize, usize),
        /// XGROUP DELCONSUMER.
        DelConsumer(u8, u8),
        /// Time passes.
        Wait(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let g = 0u8..2;
        let c = 0u8..3;
        prop_oneof![
            4 => proptest::option::of(0u8..3).prop_map(Op::Add),
            1 => any::<usize>().prop_map(Op::Del),
            1 => (0u64..8, any::<bool>()).prop_map(|(n, a)| Op::MaxLen(n, a)),
            1 => (any::<usize>(), any::<bool>()).prop_map(|(n, a)| Op::MinId(n, a)),
            1 => (g.clone(), proptest::option::of(proptest::option::of(any::<usize>())))
                .prop_map(|(g, at)| Op::Create(g, at)),
            2 => (g.clone(), c.clone(), 0usize..4, any::<bool>())
                .prop_map(|(g, c, n, noack)| Op::Read(g, c, n, noack)),
            1 => (g.clone(), any::<usize>()).prop_map(|(g, n)| Op::Ack(g, n)),
            1 => (g.clone(), c.clone(), any::<usize>(), 0i64..20, any::<bool>())
                .prop_map(|(g, c, n, idle, force)| Op::Claim(g, c, n, idle, force)),
            1 => (g.clone(), c.clone(), any::<usize>(), 1usize..4)
                .prop_map(|(g, c, n, count)| Op::AutoClaim(g, c, n, count)),
            1 => (g, c).prop_map(|(g, c)| Op::DelConsumer(g, c)),
            1 => (0u8..20).prop_map(Op::Wait),
        ]
    }

    /// What the model knows: every id ever added, and those still live.
    #[derive(Debug, Default)]
    struct Model {
        added: Vec<StreamId>,
        live: BTreeSet<StreamId>,
    }

    impl Model {
        fn nth(&self, n: usize) -> Option<StreamId> {
            (!self.added.is_empty()).then(|| self.added[n % self.added.len()])
        }
    }

    const GROUPS: [&[u8]; 2] = [b"g0", b"g1"];
    const CONSUMERS: [&[u8]; 3] = [b"c0", b"c1", b"c2"];

    fn apply(s: &mut Stream, m: &mut Model, op: &Op, now: &mut u64) -> Result<(), TestCaseError> {
        match *op {
            Op::Add(step) => {
                let arg = step.map(|step| IdArg::Id(id(s.last_id().ms + u64::from(step), 7)));
                let before = s.last_id();
                match s.append(arg, &[b"f", b"v"], LIMITS, *now) {
                    Ok(added) => {
                        prop_assert!(added > before);
                        m.added.push(added);
                        m.live.insert(added);
                    }
                    Err(_) => prop_assert!(matches!(arg, Some(IdArg::Id(a)) if a <= before)),
                }
            }
            Op::Del(n) => {
                if let Some(id) = m.nth(n) {
                    prop_assert_eq!(s.delete(id), m.live.remove(&id));
                }
            }
            Op::MaxLen(max, approx) => {
                let removed = s.trim(Trim::MaxLen(max), approx, 0);
                let gone: Vec<StreamId> = m.live.iter().take(removed as usize).copied().collect();
                for id in gone {
                    m.live.remove(&id);
                }
                prop_assert!(approx || s.len() <= max);
            }
            Op::MinId(n, approx) => {
                if let Some(min) = m.nth(n) {
                    let removed = s.trim(Trim::MinId(min), approx, 0);
                    let below = m.live.range(..min).count() as u64;
                    prop_assert!(removed <= below && (approx || removed == below));
                    let gone: Vec<StreamId> =
                        m.live.iter().take(removed as usize).copied().collect();
                    for id in gone {
                        m.live.remove(&id);
                    }
                }
            }
            Op::Create(g, at) => {
                let at = match at {
                    None => StreamId::MIN,
                    Some(None) => s.last_id(),
                    Some(Some(n)) => m.nth(n).unwrap_or(StreamId::MIN),
                };
                s.create_group(GROUPS[g as usize], at, None);
            }
            Op::Read(g, c, count, noack) => {
                let (g, c) = (GROUPS[g as usize], CONSUMERS[c as usize]);
                if let Some(group) = s.group_mut(g) {
                    group.seen(c, *now);
                    let start = group.last_id;
                    let mut got = Vec::new();
                    s.read_new(g, c, count, noack, *now, |d| got.push(d.entry.id));
                    let want: Vec<StreamId> = m
                        .live
                        .range(start..)
                        .filter(|&&id| id > start)
                        .take(if count == 0 { usize::MAX } else { count })
                        .copied()
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
            Op::Ack(g, n) => {
                if let Some(group) = s.group_mut(GROUPS[g as usize]) {
                    let ids: Vec<StreamId> = group.pending().keys().copied().collect();
                    if !ids.is_empty() {
                        prop_assert!(group.ack(ids[n % ids.len()]));
                    }
                }
            }
            Op::Claim(g, c, n, min_idle, force) => {
                let (g, c) = (GROUPS[g as usize], CONSUMERS[c as usize]);
                if let (Some(group), Some(id)) = (s.group_mut(g), m.nth(n)) {
                    group.seen(c, *now);
                    let was = group.pending().get(&id).cloned();
                    let claim = ClaimArgs {
                        force,
                        ..claim_args(min_idle, *now)
                    };
                    let done = s.claim(g, c, id, &claim, *now);
                    let live = m.live.contains(&id);
                    match (&done, &was) {
                        (Claim::Gone(p), Some(was)) => prop_assert!(!live && p == was),
                        (Claim::Claimed(p), _) => prop_assert!(live && p.consumer.as_bytes() == c),
                        (Claim::Skipped, None) => prop_assert!(!force || !live),
                        (Claim::Skipped, Some(was)) => {
                            prop_assert!(live && idle(*now, was.delivery_time) < min_idle)
                        }
                        (Claim::Gone(_), None) => prop_assert!(false, "gone but not pending"),
                    }
                }
            }
            Op::AutoClaim(g, c, n, count) => {
                let (g, c) = (GROUPS[g as usize], CONSUMERS[c as usize]);
                if let Some(group) = s.group_mut(g) {
                    group.seen(c, *now);
                    let start = m.nth(n).unwrap_or(StreamId::MIN);
                    let done = s.auto_claim(g, c, start, 5, count, false, *now);
                    prop_assert!(done.claimed.len() + done.deleted.len() <= count);
                    for (id, _) in &done.claimed {
                        prop_assert!(m.live.contains(id) && *id >= start);
                    }
                    for (id, _) in &done.deleted {
                        prop_assert!(!m.live.contains(id));
                    }
                }
            }
            Op::DelConsumer(g, c) => {
                if let Some(group) = s.group_mut(GROUPS[g as usize]) {
                    let had = group.consumer(CONSUMERS[c as usize]).map(|c| c.pel.len());
                    prop_assert_eq!(group.delete_consumer(CONSUMERS[c as usize]), had);
                }
            }
            Op::Wait(ms) => *now += u64::from(ms),
        }
        Ok(())
    }

    /// What must hold after every step.
    fn invariants(s: &Stream, m: &Model) -> Result<(), TestCaseError> {
        let ids: Vec<StreamId> = s
            .range(StreamId::MIN, StreamId::MAX)
            .map(|e| e.id)
            .collect();
        let live: Vec<StreamId> = m.live.iter().copied().collect();
        prop_assert_eq!(&ids, &live);
        let mut rev: Vec<StreamId> = s
            .range_rev(StreamId::MIN, StreamId::MAX)
            .map(|e| e.id)
            .collect();
        rev.reverse();
        prop_assert_eq!(&rev, &live);
        prop_assert_eq!(s.len(), m.live.len() as u64);
        prop_assert_eq!(s.entries_added(), m.added.len() as u64);
        prop_assert_eq!(
            s.first_id(),
            m.live.first().copied().unwrap_or(StreamId::MIN)
        );
        prop_assert!(m.added.last().is_none_or(|&last| s.last_id() == last));
        for (name, group) in s.groups() {
            check(group);
            // A counter or lag given is the true one.
            if let Some(read) = group.entries_read {
                let truth = m.added.iter().filter(|&&id| id <= group.last_id).count() as u64;
                prop_assert_eq!(read, truth, "entries_read of {:?}", name);
            }
            if let Some(lag) = s.lag(group) {
                let truth = m
                    .live
                    .range(group.last_id..)
                    .filter(|&&id| id > group.last_id)
                    .count();
                prop_assert_eq!(lag, truth as i64, "lag of {:?}", name);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn streams_and_groups_match_a_model(ops in proptest::collection::vec(op(), 0..80)) {
            let mut s = Stream::default();
            let mut m = Model::default();
            let mut now = 1_000;
            for op in &ops {
                apply(&mut s, &mut m, op, &mut now)?;
                invariants(&s, &m)?;
            }
        }
    }
}
