//! Limits on a client's pending output (`client-output-buffer-limit` holds one
//! per client class).

use std::time::{Duration, Instant};

/// The output buffer limits of a client class (`client-output-buffer-limit`):
/// a client whose pending output passes `hard` bytes, or stays over `soft`
/// bytes for `soft_seconds`, is disconnected. 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    /// Disconnect at once above this many pending bytes.
    pub hard: u64,
    /// Disconnect when above this many bytes for `soft_seconds`.
    pub soft: u64,
    /// See `soft`.
    pub soft_seconds: u64,
}

impl OutputLimit {
    /// Whether `len` pending bytes at `now` break the limit. `over_soft_since`
    /// remembers when the soft limit was passed; it is cleared once under it.
    pub fn exceeded(self, len: u64, over_soft_since: &mut Option<Instant>, now: Instant) -> bool {
        if self.hard > 0 && len > self.hard {
            return true;
        }
        if self.soft > 0 && len > self.soft {
            let since = *over_soft_since.get_or_insert(now);
            return now.duration_since(since) >= self.soft_grace();
        }
        *over_soft_since = None;
        false
    }

    /// How long pending output may stay over the soft limit.
    pub fn soft_grace(self) -> Duration {
        Duration::from_secs(self.soft_seconds)
    }
}
