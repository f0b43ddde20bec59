//! Per-key access tracking for eviction, `OBJECT IDLETIME` and `OBJECT FREQ`.
//!
//! Every key has one 32-bit stamp. Under an LRU (or non-LFU) policy it is the
//! time of the last access in hundredths of a second, wrapping every 497 days
//! (Redis's LRU clock ticks once a second, too coarse to order a busy cache's
//! keys, and wraps every 194 days). Under an LFU policy it is Redis's layout: the
//! minute of the last decrement (24 bits, wrapping) above an 8-bit logarithmic
//! access counter that starts at 5, grows with probability 1/((c-5)·factor+1)
//! per access, and loses one per `lfu-decay-time` minutes without access.
//!
//! The keyspace holds the tracking in force and hands it to each table it
//! locks. Switching modes does not rewrite existing stamps; as in Redis, they
//! take a while to mean the new thing.

use crate::clock::Millis;

/// A new key's LFU counter, so it is not evicted before it had a chance.
pub const LFU_INIT: u8 = 5;

/// How keys' access is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracking {
    /// Count accesses (LFU) instead of stamping the time (LRU).
    pub lfu: bool,
    /// `lfu-log-factor`.
    pub log_factor: u32,
    /// `lfu-decay-time` in minutes (0: never decay).
    pub decay_minutes: u32,
    /// Report the hashes of keys read to the keyspace's frequency sketch (the
    /// TinyLFU policy).
    pub sketch: bool,
}

impl Default for Tracking {
    /// LRU stamps, with Redis's LFU defaults ready.
    fn default() -> Self {
        Tracking {
            lfu: false,
            log_factor: 10,
            decay_minutes: 1,
            sketch: false,
        }
    }
}

impl Tracking {
    /// Packs into one word, so the keyspace can hold it in an atomic.
    pub fn pack(self) -> u64 {
        // Both settings are at most 2^31 - 1 (checked by the configuration).
        u64::from(self.lfu)
            | u64::from(self.sketch) << 1
            | u64::from(self.log_factor) << 2
            | u64::from(self.decay_minutes) << 33
    }

    /// Unpacks [`Tracking::pack`].
    pub fn unpack(word: u64) -> Tracking {
        Tracking {
            lfu: word & 1 == 1,
            sketch: word & 2 == 2,
            log_factor: ((word >> 2) as u32) & (u32::MAX >> 1),
            decay_minutes: (word >> 33) as u32,
        }
    }

    /// The stamp of a key created at `now`.
    pub fn new_stamp(self, now: Millis) -> u32 {
        if self.lfu {
            lfu_stamp(minutes(now), LFU_INIT)
        } else {
            ticks(now)
        }
    }

    /// The stamp after an access at `now`; `chance` is a uniform draw in [0, 1).
    pub fn touched(self, stamp: u32, now: Millis, chance: f64) -> u32 {
        if !self.lfu {
            return ticks(now);
        }
        let counter = self.decayed(stamp, now);
        let counter = if counter == u8::MAX {
            counter
        } else {
            let base = f64::from(counter.saturating_sub(LFU_INIT));
            let p = 1.0 / (base * f64::from(self.log_factor) + 1.0);
            counter + u8::from(chance < p)
        };
        lfu_stamp(minutes(now), counter)
    }

    /// The LFU counter of `stamp` at `now`, after decay (`OBJECT FREQ`).
    pub fn decayed(self, stamp: u32, now: Millis) -> u8 {
        let counter = (stamp & 0xff) as u8;
        if self.decay_minutes == 0 {
            return counter;
        }
        let elapsed = minutes(now).wrapping_sub(stamp >> 8) & MINUTES_MASK;
        let periods = elapsed / self.decay_minutes;
        counter.saturating_sub(u8::try_from(periods).unwrap_or(u8::MAX))
    }

    /// Seconds since the access recorded in an LRU `stamp`.
    pub fn idle_seconds(stamp: u32, now: Millis) -> u64 {
        u64::from(idle_ticks(stamp, now)) / TICKS_PER_SECOND
    }

    /// The stamp of a key last accessed `idle` seconds before `now` (`RESTORE
    /// IDLETIME`), capped at what a stamp can tell.
    pub fn idle_stamp(idle: u64, now: Millis) -> u32 {
        let idle = idle
            .saturating_mul(TICKS_PER_SECOND)
            .min(u64::from(MAX_IDLE));
        ticks(now).wrapping_sub(idle as u32)
    }

    /// The stamp of a key with LFU counter `frequency` at `now` (`RESTORE FREQ`).
    pub fn frequency_stamp(frequency: u8, now: Millis) -> u32 {
        lfu_stamp(minutes(now), frequency)
    }

    /// How good an eviction candidate a key with `stamp` is: higher is better
    /// (longer idle under LRU, rarer under LFU).
    pub fn eviction_score(self, stamp: u32, now: Millis) -> u64 {
        if self.lfu {
            u64::from(u8::MAX - self.decayed(stamp, now))
        } else {
            u64::from(idle_ticks(stamp, now))
        }
    }
}

const TICKS_PER_SECOND: u64 = 100;
/// Longest idle time a stamp can represent, in ticks: short of a full wrap so
/// that stamps from slightly in the future (clock adjustments) still read as 0.
const MAX_IDLE: u32 = u32::MAX - u32::MAX / 16;

/// The time in hundredths of a second, wrapping.
fn ticks(now: Millis) -> u32 {
    (now / 10) as u32
}

fn idle_ticks(stamp: u32, now: Millis) -> u32 {
    let idle = ticks(now).wrapping_sub(stamp);
    if idle > MAX_IDLE {
        0
    } else {
        idle
    }
}

const MINUTES_MASK: u32 = (1 << 24) - 1;

fn minutes(now: Millis) -> u32 {
    ((now / 60_000) as u32) & MINUTES_MASK
}

fn lfu_stamp(minutes: u32, counter: u8) -> u32 {
    (minutes << 8) | u32::from(counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LFU_DEFAULT: Tracking = Tracking {
        lfu: true,
        log_factor: 10,
        decay_minutes: 1,
        sketch: false,
    };

    #[test]
    fn packing_round_trips() {
        assert_eq!(Tracking::unpack(LFU_DEFAULT.pack()), LFU_DEFAULT);
        let extreme = Tracking {
            lfu: false,
            log_factor: i32::MAX as u32,
            decay_minutes: i32::MAX as u32,
            sketch: true,
        };
        assert_eq!(Tracking::unpack(extreme.pack()), extreme);
        assert_eq!(
            Tracking::unpack(Tracking::default().pack()),
            Tracking::default()
        );
    }

    #[test]
    fn lru_stamps_are_hundredths_of_seconds() {
        let lru = Tracking {
            lfu: false,
            ..LFU_DEFAULT
        };
        let stamp = lru.touched(lru.new_stamp(0), 5_000, 0.0);
        assert_eq!(Tracking::idle_seconds(stamp, 65_000), 60);
        assert_eq!(
            Tracking::idle_seconds(Tracking::idle_stamp(30, 65_000), 65_000),
            30
        );
        assert!(lru.eviction_score(stamp, 65_000) > lru.eviction_score(stamp, 10_000));
        // Accesses 10 ms apart are ordered.
        assert!(lru.eviction_score(stamp, 5_010) > lru.eviction_score(stamp, 5_000));
        // Stamps survive the wrap of the 32-bit tick counter.
        let late = (1u64 << 32) * 10 + 500;
        let stamp = lru.touched(0, late - 2_000, 0.0);
        assert_eq!(Tracking::idle_seconds(stamp, late), 2);
        // A stamp from slightly in the future reads as just used.
        assert_eq!(Tracking::idle_seconds(lru.new_stamp(70_000), 65_000), 0);
    }

    #[test]
    fn lfu_counters_grow_logarithmically_and_decay() {
        let t = LFU_DEFAULT;
        let now = 1_000 * 60_000;
        let mut stamp = t.new_stamp(now);
        assert_eq!(t.decayed(stamp, now), LFU_INIT);
        // Always winning the draw counts every access.
        for _ in 0..10 {
            stamp = t.touched(stamp, now, 0.0);
        }
        assert_eq!(t.decayed(stamp, now), LFU_INIT + 10);
        // Never winning it counts none past the initial value.
        assert_eq!(t.decayed(t.touched(stamp, now, 0.999), now), LFU_INIT + 10);
        // One point lost per idle minute.
        assert_eq!(t.decayed(stamp, now + 3 * 60_000), LFU_INIT + 7);
        assert_eq!(t.decayed(stamp, now + 600 * 60_000), 0);
        let no_decay = Tracking {
            decay_minutes: 0,
            ..t
        };
        assert_eq!(no_decay.decayed(stamp, now + 600 * 60_000), LFU_INIT + 10);
    }

    #[test]
    fn lfu_increments_become_rare_as_counters_grow() {
        let t = LFU_DEFAULT;
        let now = 60_000;
        let mut stamp = t.new_stamp(now);
        let mut draw = 0.0f64;
        for _ in 0..100_000 {
            // A deterministic, evenly spread sequence of draws.
            draw = (draw + 0.618_033_988_75) % 1.0;
            stamp = t.touched(stamp, now, draw);
        }
        // Redis's table for factor 10: 100k hits reach about 142.
        let counter = t.decayed(stamp, now);
        assert!((120..=170).contains(&counter), "{counter}");
        assert_eq!(t.eviction_score(stamp, now), u64::from(255 - counter));
    }
}
