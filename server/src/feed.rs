//! The write feed: every unit of work's records, in commit order, each byte at
//! an offset that only grows. What a replica or a migration target applies to
//! reach the same dataset.
//!
//! A unit's records are appended while it still holds its slots, so two units
//! that touch the same key appear in the order they ran. A unit with several
//! records (an `EXEC`, a command and the blocked clients it served) is wrapped in
//! `MULTI`/`EXEC`, so whoever applies the feed applies it whole.
//! Uses the protocol's request encoding.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::protocol::encode_command;

/// Called with each appended piece of the feed and the offset it starts at.
pub type Follower = Box<dyn FnMut(u64, &[u8]) + Send>;

/// The write feed of one server.
#[derive(Default)]
pub struct Feed {
    /// True while someone follows: units keep records only then.
    active: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Offset of the next byte.
    offset: u64,
    followers: Vec<(u64, Follower)>,
    next_id: u64,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("offset", &self.offset())
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// True while someone follows the feed.
    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// The offset the next record will start at.
    pub fn offset(&self) -> u64 {
        self.inner.lock().offset
    }

    /// Starts following: `follower` gets every piece appended from now on.
    /// Returns an id for [`Feed::unfollow`].
    pub fn follow(&self, follower: Follower) -> u64 {
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.followers.push((id, follower));
        self.active.store(true, Relaxed);
        id
    }

    /// Stops the follower `id`.
    pub fn unfollow(&self, id: u64) {
        let mut inner = self.inner.lock();
        inner.followers.retain(|(f, _)| *f != id);
        self.active.store(!inner.followers.is_empty(), Relaxed);
    }

    /// Appends one unit's `records` (`count` commands), wrapped in
    /// `MULTI`/`EXEC` when there are several.
    pub(super) fn append(&self, records: &[u8], count: usize) {
        if count == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        let start = inner.offset;
        let piece;
        let bytes = if count == 1 {
            records
        } else {
            let mut wrapped = Vec::with_capacity(records.len() + 32);
            encode_command(&mut wrapped, &[b"MULTI"]);
            wrapped.extend_from_slice(records);
            encode_command(&mut wrapped, &[b"EXEC"]);
            piece = wrapped;
            &piece[..]
        };
        inner.offset += bytes.len() as u64;
        for (_, follower) in &mut inner.followers {
            follower(start, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn followers_get_units_whole_at_growing_offsets() {
        let feed = Feed::default();
        assert!(!feed.is_active());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let id = feed.follow(Box::new(move |offset, bytes| {
            log.lock().push((offset, bytes.to_vec()))
        }));
        assert!(feed.is_active());
        let mut one = Vec::new();
        encode_command(&mut one, &[b"DEL", b"k"]);
        feed.append(&one, 1);
        let mut two = one.clone();
        encode_command(&mut two, &[b"SET", b"k", b"v"]);
        feed.append(&two, 2);
        feed.append(b"", 0);
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
}
