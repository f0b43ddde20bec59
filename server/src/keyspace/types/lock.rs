//! Native locks: what a lock key holds, and the rules for taking, re-taking,
//! releasing and extending it. The lease is the key's TTL, so TTL, PTTL, DEL,
//! TYPE and expiry work on locks as on any key; waiters queue with the other
//! blocked clients, first come first served.
//!
//! Fencing tokens (Kleppmann) come from [`FencingTokens`]: one counter for the
//! whole server, outside the keyspace so that deleting, expiring or evicting a
//! lock never lets a token repeat, and seeded from the clock so a restarted
//! server does not reuse tokens either. A token that arrives from elsewhere
//! (`RESTORE`, and later replication or migration) goes through
//! [`FencingTokens::observe`], so later grants stay above it.
//!
//! A master reserves tokens in blocks ([`FencingTokens::next_reserved`]): the
//! block's upper bound is written to its replication stream before any token
//! of the block is issued, so a promoted replica, which observed the bound,
//! issues only above every token the old master could have issued
//! (docs/CLUSTER.md, L4).

use std::sync::atomic::{AtomicU64, Ordering, Ordering::Relaxed};

use parking_lot::Mutex;

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

/// The largest token accepted from elsewhere. Tokens are replied as signed
/// 64-bit integers, so they must stay below 2^63; keeping the upper half of that
/// range for grants means no foreign token can exhaust the counter (2^62 more
/// grants at ten million a second would take 14,000 years).
pub const MAX_OBSERVED_TOKEN: u64 = 1 << 62;

/// A token from elsewhere that the counter cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("fencing token {0} is out of range (at most {MAX_OBSERVED_TOKEN})")]
pub struct TokenOutOfRange(pub u64);

/// Tokens reserved at a time (L4). A million tokens are one second of the
/// microsecond floor, so while grants follow the clock the stream carries one
/// bound a second: nothing next to the grants' own records.
pub const TOKEN_BLOCK: u64 = 1_000_000;

/// Hands out fencing tokens: strictly increasing across all locks, above every
/// token observed, and never below the current time in microseconds.
#[derive(Debug, Default)]
pub struct FencingTokens {
    last: AtomicU64,
    /// The upper bound of the block reserved last (0: none).
    reserved: AtomicU64,
    /// Held while a new block is reserved, so no token of it is handed out
    /// before its bound is written.
    reserving: Mutex<()>,
}

impl FencingTokens {
    /// The next token at `now` (Unix ms).
    pub fn next(&self, now: Millis) -> u64 {
        // Capped like observed tokens, so not even a wild clock nears 2^63.
        let floor = now.saturating_mul(1_000).min(MAX_OBSERVED_TOKEN);
        let previous = self
            .last
            .fetch_update(Relaxed, Relaxed, |last| {
                Some(last.saturating_add(1).max(floor))
            })
            .unwrap_or_default();
        previous.saturating_add(1).max(floor)
    }

    /// The next token at `now`, reserving a new block first when the token
    /// passes the bound reserved: `reserve` gets the new bound and writes it
    /// where replicas see it before the token is handed out.
    pub fn next_reserved(&self, now: Millis, reserve: impl FnOnce(u64)) -> u64 {
        let token = self.next(now);
        if token > self.reserved.load(Ordering::Acquire) {
            let _reserving = self.reserving.lock();
            if token > self.reserved.load(Relaxed) {
                let bound = token
                    .saturating_add(TOKEN_BLOCK)
                    .min(MAX_OBSERVED_TOKEN.max(token));
                reserve(bound);
                self.reserved.store(bound, Ordering::Release);
            }
        }
        token
    }

    /// The upper bound reserved last (0: none).
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }

    /// Forgets the block reserved: the node starts a new history (promoted),
    /// whose stream must carry a bound of its own before its next grant.
    pub fn forget_reserved(&self) {
        let _reserving = self.reserving.lock();
        self.reserved.store(0, Ordering::Release);
    }

    /// Accounts for `token`, granted elsewhere (a restored, replicated or
    /// migrated lock or lease): every later token is greater. The one place a
    /// foreign token reaches the counter.
    pub fn observe(&self, token: u64) -> Result<(), TokenOutOfRange> {
        if token > MAX_OBSERVED_TOKEN {
            return Err(TokenOutOfRange(token));
        }
        self.last.fetch_max(token, Relaxed);
        Ok(())
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

    #[test]
    fn an_observed_token_raises_the_counter_past_it() {
        let tokens = FencingTokens::default();
        let granted = tokens.next(1_000);
        let forged = granted + 1_000_000_000;
        tokens.observe(forged).unwrap();
        assert!(tokens.next(1_000) > forged);
        // An older token changes nothing: the counter never goes back.
        let latest = tokens.next(1_000);
        tokens.observe(granted).unwrap();
        assert_eq!(tokens.next(1_000), latest + 1);
    }

    #[test]
    fn a_block_is_reserved_before_its_first_token_is_handed_out() {
        let tokens = FencingTokens::default();
        let mut bounds = Vec::new();
        let first = tokens.next_reserved(1_000, |b| bounds.push(b));
        assert_eq!(bounds, [first + TOKEN_BLOCK]);
        // Within the block: nothing more to write.
        let second = tokens.next_reserved(1_000, |b| bounds.push(b));
        assert_eq!((second, bounds.len()), (first + 1, 1));
        // The clock moved past the block: a new one first.
        let later = tokens.next_reserved(3_000, |b| bounds.push(b));
        assert_eq!(bounds, [first + TOKEN_BLOCK, later + TOKEN_BLOCK]);
        // A replica observes the bound; promoted, it issues above it however
        // far behind its own clock is.
        let replica = FencingTokens::default();
        replica.observe(bounds[1]).unwrap();
        assert!(replica.next(0) > later + TOKEN_BLOCK);
        tokens.forget_reserved();
        tokens.next_reserved(3_000, |b| bounds.push(b));
        assert_eq!(bounds.len(), 3, "a new history reserves again");
    }

    #[test]
    fn tokens_stay_below_2_pow_63() {
        let tokens = FencingTokens::default();
        for refused in [MAX_OBSERVED_TOKEN + 1, 1 << 63, u64::MAX] {
            assert_eq!(tokens.observe(refused), Err(TokenOutOfRange(refused)));
        }
        assert_eq!(tokens.next(0), 1, "refused tokens leave the counter alone");
        tokens.observe(MAX_OBSERVED_TOKEN).unwrap();
        assert_eq!(tokens.next(0), MAX_OBSERVED_TOKEN + 1);
        // Neither a clock far in the future nor the largest time moves the
        // floor past the observable range.
        assert_eq!(tokens.next(u64::MAX), MAX_OBSERVED_TOKEN + 2);
        assert_eq!(FencingTokens::default().next(u64::MAX), MAX_OBSERVED_TOKEN);
        assert!(i64::try_from(tokens.next(u64::MAX)).is_ok());
    }
}
