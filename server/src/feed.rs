//! The write feed: every unit of work's records, in commit order, each byte at
//! an offset that only grows. What a replica or a migration target applies to
//! reach the same dataset; on a master it is the replication stream.
//!
//! A unit's records are appended while it still holds its slots, so two units
//! that touch the same key appear in the order they ran. A unit with several
//! records (an `EXEC`, a command and the blocked clients it served) is wrapped in
//! `MULTI`/`EXEC`, so whoever applies the feed applies it whole.
//!
//! The feed keeps its last bytes in a backlog once a replica asked for it, so a
//! replica that reconnects continues where it stopped (`PSYNC`). A replica's
//! feed is its master's stream, byte for byte at the master's offsets (see
//! [`Feed::restart`]): its own units append nothing, and its backlog lets its
//! siblings continue from it after it is promoted.
//! Uses the protocol's request encoding.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::protocol::encode_command;

/// The record that reserves fencing tokens (docs/CLUSTER.md, L4):
/// `RINGKV.TOKENS <bound>`. Whoever applies it issues tokens only above
/// `bound`; it never stands for a change of the dataset.
pub const TOKENS: &[u8] = b"RINGKV.TOKENS";

/// The records that hide (or show again) slots being imported by an atomic
/// slot migration on a replica of the target (docs/CLUSTER.md, M9):
/// `RINGKV.HIDE <slot>...` and `RINGKV.SHOW <slot>...`. Like [`TOKENS`],
/// they change no key.
pub const HIDE: &[u8] = b"RINGKV.HIDE";
/// See [`HIDE`].
pub const SHOW: &[u8] = b"RINGKV.SHOW";

/// What one piece of the feed is about, so a follower that wants only some
/// slots (a migration's stream, docs/CLUSTER.md M8) can pick its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Records of a unit that held this one slot.
    Slot(u16),
    /// The fencing token bound ([`TOKENS`]), which holds for every slot.
    Tokens,
    /// Pings and acknowledgement requests, for replicas only.
    Link,
    /// Records of a unit over several slots (or none known): a master's
    /// stream replayed, `FLUSHALL`.
    Several,
}

/// Called with each appended piece of the feed, the offset it starts at and
/// what it is about.
pub type Follower = Box<dyn FnMut(u64, &[u8], Scope) + Send>;

/// The write feed of one server.
#[derive(Default)]
pub struct Feed {
    /// True while this node's own units must keep records: someone follows
    /// or a backlog is kept, and the feed is not a master's stream. Shared
    /// with the keyspace, which then names the keys that expire.
    active: Arc<AtomicBool>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Offset of the next byte.
    offset: u64,
    followers: Vec<(u64, Follower)>,
    next_id: u64,
    backlog: Option<Backlog>,
    /// The feed is a master's stream ([`Feed::restart`]).
    upstream: bool,
}

impl Inner {
    fn update_active(&self, active: &AtomicBool) {
        let on = !self.upstream && (!self.followers.is_empty() || self.backlog.is_some());
        active.store(on, Relaxed);
    }

    fn push(&mut self, bytes: &[u8], scope: Scope) {
        let start = self.offset;
        self.offset += bytes.len() as u64;
        if let Some(backlog) = &mut self.backlog {
            backlog.push(bytes);
        }
        for (_, follower) in &mut self.followers {
            follower(start, bytes, scope);
        }
    }
}

/// Why a follower could not start at the offset it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("offset {wanted} is not in the backlog (it holds {first} to {end})")]
pub struct NotInBacklog {
    /// The offset asked for.
    pub wanted: u64,
    /// The first offset the backlog holds.
    pub first: u64,
    /// The feed's offset.
    pub end: u64,
}

/// What `INFO replication` shows of the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogInfo {
    /// Its capacity in bytes (`repl-backlog-size`).
    pub size: usize,
    /// The offset of the first byte it holds.
    pub first: u64,
    /// How many bytes it holds.
    pub len: usize,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("offset", &self.offset())
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// True while this node's units must keep records for the feed.
    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// The flag [`Feed::is_active`] reads, for whoever must follow it.
    pub fn activity(&self) -> Arc<AtomicBool> {
        self.active.clone()
    }

    /// The offset the next record will start at.
    pub fn offset(&self) -> u64 {
        self.inner.lock().offset
    }

    /// Starts following: `follower` gets every piece appended from now on.
    /// Returns an id for [`Feed::unfollow`] and the offset it starts at.
    pub fn follow(&self, follower: Follower) -> (u64, u64) {
        let mut inner = self.inner.lock();
        let offset = inner.offset;
        (self.add(&mut inner, follower), offset)
    }

    /// Starts following at `from`: the backlog's bytes from `from` go to
    /// `follower` at once, then every piece appended. Fails if the backlog no
    /// longer (or never) held `from`.
    pub fn follow_from(&self, from: u64, mut follower: Follower) -> Result<u64, NotInBacklog> {
        let mut inner = self.inner.lock();
        let end = inner.offset;
        if from != end {
            let held = inner.backlog.as_ref().and_then(|b| b.since(from, end));
            let Some(bytes) = held else {
                let first = inner.backlog.as_ref().map_or(end, |b| end - b.len() as u64);
                return Err(NotInBacklog {
                    wanted: from,
                    first,
                    end,
                });
            };
            follower(from, &bytes, Scope::Several);
        }
        Ok(self.add(&mut inner, follower))
    }

    fn add(&self, inner: &mut Inner, follower: Follower) -> u64 {
        let id = inner.next_id;
        inner.next_id += 1;
        inner.followers.push((id, follower));
        inner.update_active(&self.active);
        id
    }

    /// Stops the follower `id`.
    pub fn unfollow(&self, id: u64) {
        let mut inner = self.inner.lock();
        inner.followers.retain(|(f, _)| *f != id);
        inner.update_active(&self.active);
    }

    /// Keeps (from now on) the last `size` bytes, resizing a backlog kept
    /// already (its newest bytes stay).
    pub fn keep_backlog(&self, size: usize) {
        let mut inner = self.inner.lock();
        let size = size.max(1);
        match &mut inner.backlog {
            Some(backlog) => backlog.resize(size),
            None => inner.backlog = Some(Backlog::new(size)),
        }
        inner.update_active(&self.active);
    }

    /// The backlog's extent, if one is kept.
    pub fn backlog(&self) -> Option<BacklogInfo> {
        let inner = self.inner.lock();
        let end = inner.offset;
        inner.backlog.as_ref().map(|b| BacklogInfo {
            size: b.capacity(),
            first: end - b.len() as u64,
            len: b.len(),
        })
    }

    /// Starts a new history at `offset`: the backlog empties and followers
    /// stop. With `upstream`, the feed is from now on a master's stream
    /// ([`Feed::append_upstream`]) and this node's units add nothing; without,
    /// they append as usual.
    pub fn restart(&self, offset: u64, upstream: bool) {
        let mut inner = self.inner.lock();
        inner.offset = offset;
        inner.followers.clear();
        if let Some(backlog) = &mut inner.backlog {
            backlog.clear();
        }
        inner.upstream = upstream;
        inner.update_active(&self.active);
    }

    /// Keeps the current history but makes this node's units its source again
    /// (a replica promoted to master) or stops them (`upstream`, a master
    /// demoted that continues its new master's history from its own offset).
    pub fn set_upstream(&self, upstream: bool) {
        let mut inner = self.inner.lock();
        inner.upstream = upstream;
        inner.update_active(&self.active);
    }

    /// Appends bytes of the master's stream (on a replica, see
    /// [`Feed::restart`]).
    pub fn append_upstream(&self, bytes: &[u8]) {
        let mut inner = self.inner.lock();
        debug_assert!(inner.upstream, "a master's bytes on a master's own feed");
        inner.push(bytes, Scope::Several);
    }

    /// Appends the bound of the fencing tokens reserved (see [`TOKENS`]).
    pub fn append_token_bound(&self, bound: u64) {
        let mut record = Vec::new();
        let bound = itoa::Buffer::new().format(bound).as_bytes().to_vec();
        encode_command(&mut record, &[TOKENS, &bound]);
        self.append(&record, 1, Scope::Tokens);
    }

    /// Appends `RINGKV.HIDE` (or, `hide` false, `RINGKV.SHOW`) for `slots`,
    /// for replicas only.
    pub fn append_hidden(&self, slots: impl IntoIterator<Item = u16>, hide: bool) {
        let names: Vec<String> = slots.into_iter().map(|s| s.to_string()).collect();
        if names.is_empty() {
            return;
        }
        let mut args: Vec<&[u8]> = vec![if hide { HIDE } else { SHOW }];
        args.extend(names.iter().map(String::as_bytes));
        let mut record = Vec::new();
        encode_command(&mut record, &args);
        self.append(&record, 1, Scope::Link);
    }

    /// Appends one unit's `records` (`count` commands) about `scope`,
    /// wrapped in `MULTI`/`EXEC` when there are several.
    pub fn append(&self, records: &[u8], count: usize, scope: Scope) {
        let mut inner = self.inner.lock();
        if count == 0 || inner.upstream {
            return;
        }
        if count == 1 {
            inner.push(records, scope);
        } else {
            let mut wrapped = Vec::with_capacity(records.len() + 32);
            encode_command(&mut wrapped, &[b"MULTI"]);
            wrapped.extend_from_slice(records);
            encode_command(&mut wrapped, &[b"EXEC"]);
            inner.push(&wrapped, scope);
        }
    }
}

/// The last bytes of the feed, in a ring.
struct Backlog {
    ring: Vec<u8>,
    /// Where the next byte goes.
    head: usize,
    /// Bytes held (at most the ring's length).
    len: usize,
}

impl Backlog {
    fn new(size: usize) -> Self {
        Backlog {
            ring: vec![0; size],
            head: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.ring.len()
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let size = self.ring.len();
        if bytes.len() >= size {
            bytes = &bytes[bytes.len() - size..];
        }
        let first = bytes.len().min(size - self.head);
        self.ring[self.head..self.head + first].copy_from_slice(&bytes[..first]);
        self.ring[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.head = (self.head + bytes.len()) % size;
        self.len = (self.len + bytes.len()).min(size);
    }

    /// The bytes from `from` to `end` (the feed's offset), if all are held.
    fn since(&self, from: u64, end: u64) -> Option<Vec<u8>> {
        let wanted = usize::try_from(end.checked_sub(from)?).ok()?;
        if wanted > self.len {
            return None;
        }
        let size = self.ring.len();
        let start = (self.head + size - wanted) % size;
        let mut out = Vec::with_capacity(wanted);
        let first = wanted.min(size - start);
        out.extend_from_slice(&self.ring[start..start + first]);
        out.extend_from_slice(&self.ring[..wanted - first]);
        Some(out)
    }

    /// Changes the capacity, keeping the newest bytes that fit.
    fn resize(&mut self, size: usize) {
        if size == self.ring.len() {
            return;
        }
        let keep = self.len.min(size);
        let end = self.len as u64;
        let newest = self.since(end - keep as u64, end).unwrap_or_default();
        *self = Backlog::new(size);
        self.push(&newest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Seen = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

    fn recorder() -> (Seen, Follower) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let follower: Follower =
            Box::new(move |offset, bytes: &[u8], _| log.lock().push((offset, bytes.to_vec())));
        (seen, follower)
    }

    #[test]
    fn followers_get_units_whole_at_growing_offsets() {
        let feed = Feed::default();
        assert!(!feed.is_active());
        let (seen, follower) = recorder();
        let (id, start) = feed.follow(follower);
        assert_eq!(start, 0);
        assert!(feed.is_active());
        let mut one = Vec::new();
        encode_command(&mut one, &[b"DEL", b"k"]);
        feed.append(&one, 1, Scope::Slot(0));
        let mut two = one.clone();
        encode_command(&mut two, &[b"SET", b"k", b"v"]);
        feed.append(&two, 2, Scope::Slot(0));
        feed.append(b"", 0, Scope::Slot(0));
        let seen = seen.lock().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (0, one.clone()));
        assert_eq!(seen[1].0, one.len() as u64);
        assert!(seen[1]
            .1
            .starts_with(b"*1\r\n$5\r\nMULTI\r\n*2\r\n$3\r\nDEL"));
        assert!(seen[1].1.ends_with(b"*1\r\n$4\r\nEXEC\r\n"));
        assert_eq!(feed.offset(), (one.len() + seen[1].1.len()) as u64);
        feed.unfollow(id);
        assert!(!feed.is_active());
    }

    #[test]
    fn a_follower_continues_from_the_backlog_while_it_holds_the_offset() {
        let feed = Feed::default();
        feed.keep_backlog(10);
        assert!(feed.is_active(), "a kept backlog keeps records");
        feed.append(b"0123456", 1, Scope::Slot(0));
        feed.append(b"789ab", 1, Scope::Slot(0));
        let info = feed.backlog().unwrap();
        assert_eq!((info.size, info.first, info.len), (10, 2, 10));
        let (seen, follower) = recorder();
        feed.follow_from(4, follower).unwrap();
        feed.append(b"c", 1, Scope::Slot(0));
        assert_eq!(
            *seen.lock(),
            [(4, b"456789ab".to_vec()), (12, b"c".to_vec())]
        );
        let (_, follower) = recorder();
        let gap = feed.follow_from(2, follower).unwrap_err();
        assert_eq!((gap.wanted, gap.first, gap.end), (2, 3, 13));
        let (_, follower) = recorder();
        assert!(feed.follow_from(14, follower).is_err(), "not written yet");
    }

    #[test]
    fn the_backlog_keeps_the_newest_bytes_when_resized_and_written_past_its_size() {
        let mut ring = Backlog::new(4);
        ring.push(b"abcdefg");
        assert_eq!(ring.since(3, 7).unwrap(), b"defg");
        ring.push(b"hi");
        assert_eq!(ring.since(5, 9).unwrap(), b"fghi");
        ring.resize(8);
        assert_eq!(ring.since(5, 9).unwrap(), b"fghi");
        ring.push(b"jk");
        assert_eq!(ring.since(5, 11).unwrap(), b"fghijk");
        ring.resize(3);
        assert_eq!(ring.since(8, 11).unwrap(), b"ijk");
        assert!(ring.since(7, 11).is_none());
    }

    #[test]
    fn a_replicas_feed_is_its_masters_stream_and_its_own_units_add_nothing() {
        let feed = Feed::default();
        feed.keep_backlog(64);
        feed.restart(1000, true);
        assert!(!feed.is_active(), "the replica's units keep no records");
        feed.append(b"local", 1, Scope::Slot(0));
        assert_eq!(feed.offset(), 1000);
        feed.append_upstream(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(feed.offset(), 1014);
        let (seen, follower) = recorder();
        feed.follow_from(1000, follower).unwrap();
        assert_eq!(seen.lock()[0], (1000, b"*1\r\n$4\r\nPING\r\n".to_vec()));
        feed.set_upstream(false);
        assert!(
            feed.is_active(),
            "promoted: its own units feed its followers"
        );
        feed.append(b"x", 1, Scope::Slot(0));
        assert_eq!(feed.offset(), 1015);
    }
}
