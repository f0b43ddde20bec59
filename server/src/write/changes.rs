//! What one unit of work changed: its effects, and (while someone follows the
//! write feed) the records that reproduce them.

use std::sync::Arc;

use crate::blocking::Held;
use crate::clock::Millis;
use crate::notify;
use crate::protocol::encode_command;

use super::LockGate;

/// What the commit does for one effect's key besides counting its changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notice {
    /// Touch its watchers and publish this keyspace event (class, event).
    Event(u32, &'static str),
    /// Touch its watchers only (a key `FLUSHALL` removed).
    Touch,
    /// Neither: only serve its blocked clients (a lease that ran out).
    Ready,
    /// Nothing: changes counted without a key (`FLUSHALL`'s own).
    Count,
    /// The key left this node for another master (`MIGRATE`, a slot lost):
    /// touch its watchers and publish this event, if any, and send its blocked
    /// clients to run their commands again, to be redirected.
    Left(Option<(u32, &'static str)>),
}

/// One recorded change: what to announce, and where its key lies in
/// [`Changes::keys`].
#[derive(Debug, Clone, Copy)]
struct Effect {
    notice: Notice,
    key_start: usize,
    key_len: usize,
}

/// Where a command's own effects and records begin (see
/// [`Changes::start_command`]).
#[derive(Debug, Clone, Copy)]
pub struct CommandMark {
    effects: usize,
    records: usize,
}

/// The effects of one unit of work, in the order they happened, and the write
/// feed's records for them. Kept by a session and reused, so recording
/// allocates nothing once warm.
#[derive(Debug, Default)]
pub struct Changes {
    effects: Vec<Effect>,
    /// The changes counted (the effects' counts summed).
    dirty: u64,
    /// The effects' keys.
    keys: Vec<u8>,
    /// Whether records are kept: someone follows the write feed.
    feeding: bool,
    /// The unit's records, RESP-encoded commands back to back.
    records: Vec<u8>,
    record_count: usize,
    /// Effects whose records were written (the command that made them ended).
    covered: usize,
    /// The running command wrote its own records instead of its request.
    rewritten: bool,
    /// What the unit may do with locks (set by its caller).
    gate: LockGate,
    /// The unit's lock changes held for acknowledgements, if any.
    held: Option<Arc<Held>>,
    /// A command of the unit changed a lock itself (its reply waits too),
    /// beyond the grants the commit made to waiters.
    own_lock_change: bool,
}

impl Changes {
    /// Starts a unit of work; records are kept only if `feeding`.
    pub fn begin(&mut self, feeding: bool) {
        // A unit's commit leaves this empty; only a unit cut short does not.
        if !self.effects.is_empty() || self.record_count > 0 {
            self.clear();
        }
        self.covered = 0;
        self.feeding = feeding;
        self.gate = LockGate::Closed;
        self.held = None;
        self.own_lock_change = false;
    }

    /// Sets what the unit may do with locks (after [`Changes::begin`]).
    pub fn set_lock_gate(&mut self, gate: LockGate) {
        self.gate = gate;
    }

    /// What the unit may do with locks.
    pub fn lock_gate(&self) -> LockGate {
        self.gate
    }

    /// The unit's held lock changes, started at `now` if this is the first
    /// (`replicas` must acknowledge them within `timeout` ms).
    pub(super) fn held_unit(
        &mut self,
        now: Millis,
        replicas: usize,
        timeout: Millis,
    ) -> &Arc<Held> {
        self.held
            .get_or_insert_with(|| Arc::new(Held::new(now, replicas, timeout)))
    }

    /// The unit's held lock changes, if any so far.
    pub(super) fn held(&self) -> Option<&Arc<Held>> {
        self.held.as_ref()
    }

    /// The lock change being noted is the running command's own (its reply
    /// waits with the unit).
    pub fn own_lock_change(&mut self) {
        self.own_lock_change = true;
    }

    /// Takes the unit's held lock changes, and whether a command of the unit
    /// made some itself (not only grants to waiters).
    pub fn take_held(&mut self) -> Option<(Arc<Held>, bool)> {
        let own = std::mem::take(&mut self.own_lock_change);
        self.held.take().map(|held| (held, own))
    }

    /// True while the unit keeps records for the write feed.
    pub fn feeding(&self) -> bool {
        self.feeding
    }

    /// Records that `key` changed: `count` changes (Redis's dirty counter; 0 for
    /// an event that only describes a change already counted, like the `del` of
    /// a collection a pop emptied), announced as `event` of `class`.
    pub fn record(&mut self, count: u64, class: u32, event: &'static str, key: &[u8]) {
        self.push(count, Notice::Event(class, event), key);
    }

    /// Records that `key` went with a change counted elsewhere and no event of
    /// its own (`FLUSHALL` touches the watchers of the keys that existed).
    pub fn touch(&mut self, key: &[u8]) {
        self.push(0, Notice::Touch, key);
    }

    /// Counts `count` changes that name no key (`FLUSHALL`'s own).
    pub fn count(&mut self, count: u64) {
        self.push(count, Notice::Count, b"");
    }

    /// Asks the commit to serve the clients blocked on `key`, which may be free
    /// for them without a change of this unit's (a lock or fill lease ran out).
    pub fn ready(&mut self, key: &[u8]) {
        self.push(0, Notice::Ready, key);
    }

    /// Records that `key` left this node for another master, deleted here as a
    /// `del` (`MIGRATE`, a slot taken over): its blocked clients are sent
    /// after it (they run again and are redirected) instead of being served
    /// here, where a lock or lease granted anew would be granted twice.
    pub fn left(&mut self, key: &[u8]) {
        self.push(1, Notice::Left(Some((notify::GENERIC, "del"))), key);
    }

    /// Sends the clients blocked on `key`, which is not here and now belongs
    /// to another master, to run their commands again (to be redirected).
    pub fn redirect(&mut self, key: &[u8]) {
        self.push(0, Notice::Left(None), key);
    }

    /// Records that `key` expired under the unit (found so by a lookup): its
    /// `expired` event, and its deletion in the write feed.
    pub fn expired(&mut self, key: &[u8]) {
        self.push(1, Notice::Event(notify::EXPIRED, "expired"), key);
        self.command(&[b"DEL", key]);
    }

    fn push(&mut self, count: u64, notice: Notice, key: &[u8]) {
        self.dirty += count;
        let key_start = self.keys.len();
        self.keys.extend_from_slice(key);
        self.effects.push(Effect {
            notice,
            key_start,
            key_len: key.len(),
        });
    }

    /// Adds a record for the write feed: a command that, applied after the
    /// unit's earlier records, reproduces what the unit did (times absolute,
    /// random choices made). Nothing is kept while nobody follows the feed.
    pub fn command(&mut self, args: &[&[u8]]) {
        if !self.feeding {
            return;
        }
        encode_command(&mut self.records, args);
        self.record_count += 1;
    }

    /// Marks the start of a command of the unit.
    pub fn start_command(&mut self) -> CommandMark {
        self.rewritten = false;
        CommandMark {
            effects: self.effects.len(),
            records: self.records.len(),
        }
    }

    /// Adds a record of the running command's own, which replaces its request
    /// as its record (see [`Changes::end_command`]).
    pub fn rewrite(&mut self, args: &[&[u8]]) {
        self.rewritten = true;
        self.command(args);
    }

    /// Says the running command writes its own records, with
    /// [`Changes::command`] or [`super::record_state`].
    pub fn rewritten(&mut self) {
        self.rewritten = true;
    }

    /// Ends the command started at `mark`: the keys that expired while it ran
    /// (`expired`) go before its effects and records, as expiries Redis
    /// announces and propagates before the command that found them; then, if
    /// the command changed anything and wrote no records of its own, `request`
    /// (its arguments) is its record.
    pub fn end_command<'k>(
        &mut self,
        mark: CommandMark,
        expired: impl IntoIterator<Item = &'k [u8]>,
        request: impl FnOnce() -> Vec<&'k [u8]>,
    ) {
        let changed = self.effects.len() > self.covered.max(mark.effects);
        let (mut at, mut record_at) = (mark.effects, mark.records);
        for key in expired {
            let key_start = self.keys.len();
            self.keys.extend_from_slice(key);
            let effect = Effect {
                notice: Notice::Event(notify::EXPIRED, "expired"),
                key_start,
                key_len: key.len(),
            };
            self.effects.insert(at, effect);
            self.dirty += 1;
            at += 1;
            if self.feeding {
                let mut del = Vec::new();
                encode_command(&mut del, &[b"DEL", key]);
                let len = del.len();
                self.records.splice(record_at..record_at, del);
                record_at += len;
                self.record_count += 1;
            }
        }
        if changed && !self.rewritten && self.feeding {
            self.command(&request());
        }
        self.covered = self.effects.len();
    }

    /// Number of effects recorded.
    pub fn len(&self) -> usize {
        self.effects.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.effects.is_empty()
    }

    /// The first key the unit stored or changed in place (not one it removed):
    /// the key TinyLFU admission weighs.
    pub fn first_stored(&self) -> Option<&[u8]> {
        (0..self.effects.len())
            .map(|i| self.get(i))
            .find(|(notice, _)| match notice {
                Notice::Event(class, event) => {
                    *class & (notify::EXPIRED | notify::EVICTED) == 0 && *event != "del"
                }
                _ => false,
            })
            .map(|(_, key)| key)
    }

    /// Effect `i`: its notice and key.
    pub(super) fn get(&self, i: usize) -> (Notice, &[u8]) {
        let e = self.effects[i];
        (e.notice, &self.keys[e.key_start..e.key_start + e.key_len])
    }

    /// The unit's records and how many there are.
    pub(super) fn records(&self) -> (&[u8], usize) {
        (&self.records, self.record_count)
    }

    /// The recorded events, in order: class, event and key.
    #[cfg(test)]
    pub fn events(&self) -> impl Iterator<Item = (u32, &'static str, &[u8])> {
        (0..self.len()).filter_map(|i| match self.get(i) {
            (Notice::Event(class, event), key) => Some((class, event, key)),
            _ => None,
        })
    }

    /// The changes counted so far.
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// Forgets everything, keeping the allocations.
    #[inline]
    pub fn clear(&mut self) {
        self.dirty = 0;
        self.effects.clear();
        self.keys.clear();
        self.records.clear();
        self.record_count = 0;
        self.covered = 0;
        self.rewritten = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stored_key_skips_removals() {
        let mut changes = Changes::default();
        assert_eq!(changes.first_stored(), None);
        changes.expired(b"old");
        changes.record(1, notify::GENERIC, "del", b"gone");
        changes.record(1, notify::EVICTED, "evicted", b"evicted");
        assert_eq!(changes.first_stored(), None);
        changes.record(1, notify::STRING, "set", b"new");
        changes.record(1, notify::LIST, "lpush", b"later");
        assert_eq!(changes.first_stored(), Some(&b"new"[..]));
    }

    #[test]
    fn effects_keep_their_keys_and_order() {
        let mut changes = Changes::default();
        changes.record(3, notify::LIST, "lpush", b"list");
        changes.record(0, notify::GENERIC, "del", b"");
        changes.record(1, notify::STRING, "set", b"k");
        changes.touch(b"w");
        changes.ready(b"lock");
        changes.count(5);
        assert_eq!(changes.len(), 6);
        let events: Vec<_> = changes.events().collect();
        assert_eq!(
            events,
            [
                (notify::LIST, "lpush", &b"list"[..]),
                (notify::GENERIC, "del", b""),
                (notify::STRING, "set", b"k")
            ]
        );
        assert_eq!(changes.get(3), (Notice::Touch, &b"w"[..]));
        assert_eq!(changes.get(4), (Notice::Ready, &b"lock"[..]));
        assert_eq!(changes.dirty(), 9);
        changes.clear();
        assert!(changes.is_empty());
    }

    #[test]
    fn a_command_records_its_request_after_the_keys_that_expired_under_it() {
        let mut changes = Changes::default();
        changes.begin(true);
        let first = changes.start_command();
        changes.record(1, notify::STRING, "set", b"a");
        changes.end_command(first, [&b"old"[..]], || vec![&b"SET"[..], b"a", b"1"]);
        // A command that writes its own records, and one that changes nothing.
        let second = changes.start_command();
        changes.record(1, notify::SET, "spop", b"s");
        changes.rewrite(&[b"SREM", b"s", b"m"]);
        changes.end_command(second, [], || vec![&b"SPOP"[..], b"s"]);
        let third = changes.start_command();
        changes.end_command(third, [], || vec![&b"GET"[..], b"a"]);
        let (records, count) = changes.records();
        assert_eq!(count, 3);
        assert_eq!(
            records,
            &b"*2\r\n$3\r\nDEL\r\n$3\r\nold\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n\
               *3\r\n$4\r\nSREM\r\n$1\r\ns\r\n$1\r\nm\r\n"[..]
        );
        let events: Vec<_> = changes.events().map(|(_, e, k)| (e, k)).collect();
        assert_eq!(
            events,
            [("expired", &b"old"[..]), ("set", b"a"), ("spop", b"s")]
        );
    }

    #[test]
    fn nothing_is_recorded_while_nobody_follows_the_feed() {
        let mut changes = Changes::default();
        changes.begin(false);
        let mark = changes.start_command();
        changes.record(1, notify::STRING, "set", b"a");
        changes.end_command(mark, [&b"old"[..]], || vec![&b"SET"[..], b"a", b"1"]);
        assert_eq!(changes.records(), (&b""[..], 0));
        assert_eq!(changes.len(), 2);
    }
}
