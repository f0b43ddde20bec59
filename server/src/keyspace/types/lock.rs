//! Native locks: what a lock key holds, and the rules for taking, re-taking,
//! releasing and extending it. The lease is the key's TTL, so TTL, PTTL, DEL,
//! TYPE and expiry work on locks as on any key; waiters queue with the other
//! blocked clients (`crate::blocking`), first come first served.
//!
//! Fencing tokens (Kleppmann) come from [`FencingTokens`]: one counter for the
//! whole server, outside the keyspace so that deleting, expiring or evicting a
//! lock never lets a token repeat, and seeded from the clock so a restarted
//! server does not reuse tokens either.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::clock::Millis;

/// A held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    owner: Box<[u8]>,
    /// Acquisitions by the owner not yet released (reentrancy).
    holds: u32,
    /// The fencing token of this grant.
    token: u64,
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The lock is held by someone else.
    NotOwner,
    /// One hold released; this many remain (0: the lock is free now).
    Remaining(u32),
}

impl Lock {
    /// A lock just granted to `owner` with `token`.
    pub fn new(owner: &[u8], token: u64) -> Self {
        Lock {
            owner: owner.into(),
            holds: 1,
            token,
        }
    }

    /// A lock as `RESTORE` rebuilds it.
    pub fn restored(owner: &[u8], holds: u32, token: u64) -> Self {
        Lock {
            owner: owner.into(),
            holds: holds.max(1),
            token,
        }
    }

    /// Who holds it.
    pub fn owner(&self) -> &[u8] {
        &self.owner
    }

    /// How many times the owner holds it.
    pub fn holds(&self) -> u32 {
        self.holds
    }

    /// The fencing token of the grant.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The owner takes it once more; `None` if `owner` is someone else.
    pub fn reenter(&mut self, owner: &[u8]) -> Option<u32> {
        if *self.owner != *owner {
            return None;
        }
        self.holds = self.holds.saturating_add(1);
        Some(self.holds)
    }

    /// The owner gives back one hold.
    pub fn release(&mut self, owner: &[u8]) -> Release {
        if *self.owner != *owner {
            return Release::NotOwner;
        }
        self.holds -= 1;
        Release::Remaining(self.holds)
    }

    /// True if `owner` holds it.
    pub fn is_owned_by(&self, owner: &[u8]) -> bool {
        *self.owner == *owner
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Lock>() + self.owner.len()
    }
}

/// Hands out fencing tokens: strictly increasing across all locks, never
/// below the current time in microseconds.
#[derive(Debug, Default)]
pub struct FencingTokens {
    last: AtomicU64,
}

impl FencingTokens {
    /// The next token at `now` (Unix ms).
    pub fn next(&self, now: Millis) -> u64 {
        let floor = now.saturating_mul(1_000);
        let previous = self
            .last
            .fetch_update(Relaxed, Relaxed, |last| {
                Some(last.saturating_add(1).max(floor))
            })
            .unwrap_or_default();
        previous.saturating_add(1).max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reentrant_holds_count_up_and_down_for_the_owner_only() {
        let mut lock = Lock::new(b"a", 7);
        assert_eq!(lock.reenter(b"b"), None);
        assert_eq!(lock.reenter(b"a"), Some(2));
        assert_eq!(lock.release(b"b"), Release::NotOwner);
        assert_eq!(lock.release(b"a"), Release::Remaining(1));
        assert_eq!(lock.release(b"a"), Release::Remaining(0));
        assert_eq!(lock.token(), 7);
    }

    #[test]
    fn tokens_strictly_increase_even_when_the_clock_goes_back() {
        let tokens = FencingTokens::default();
        let a = tokens.next(1_000);
        let b = tokens.next(1_000);
        let c = tokens.next(500);
        let d = tokens.next(2_000);
        assert_eq!(a, 1_000_000);
        assert!(a < b && b < c && c < d);
        assert_eq!(d, 2_000_000);
        // A restarted server (a fresh counter) starts above every earlier token
        // as long as the clock moved on.
        assert!(FencingTokens::default().next(2_001) > d);
    }
}
