//! `maxmemory-policy`: which keys go when memory runs out.

use serde::{Deserialize, Serialize};

/// An eviction policy: Redis's eight, and TinyLFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Evict nothing; writes that need memory fail with `-OOM`.
    #[value(name = "noeviction")]
    #[serde(rename = "noeviction")]
    NoEviction,
    /// Least recently used of all keys (approximated by sampling).
    AllkeysLru,
    /// Least frequently used of all keys (Redis's decaying log counter).
    AllkeysLfu,
    /// Any key.
    AllkeysRandom,
    /// TinyLFU: least frequent by a sketch that remembers requests for keys the
    /// cache does not hold, and new keys must be more popular than the victim
    /// to stay. Resists scans and one-hit wonders; see `docs/DESIGN.md`.
    AllkeysTinylfu,
    /// Least recently used of the keys with a TTL.
    VolatileLru,
    /// Least frequently used of the keys with a TTL.
    VolatileLfu,
    /// Any key with a TTL.
    VolatileRandom,
    /// The key with a TTL that expires soonest.
    VolatileTtl,
}

/// What a policy ranks candidates by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Longest idle first.
    Idle,
    /// Lowest LFU counter first.
    Frequency,
    /// Lowest sketch estimate first, then longest idle.
    Sketch,
    /// Nearest expiry first.
    Ttl,
    /// No ranking: any sampled key.
    Random,
}

impl Policy {
    /// The name used in files, flags, `CONFIG` and `INFO`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllkeysLru => "allkeys-lru",
            Policy::AllkeysLfu => "allkeys-lfu",
            Policy::AllkeysRandom => "allkeys-random",
            Policy::AllkeysTinylfu => "allkeys-tinylfu",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }

    /// Parses a policy name (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        <Self as clap::ValueEnum>::from_str(name, true).ok()
    }

    /// Every policy, for listings and tests.
    pub fn all() -> &'static [Policy] {
        <Self as clap::ValueEnum>::value_variants()
    }

    /// True if only keys with a TTL may be evicted.
    pub fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    /// How candidates are ranked (`None`: nothing is evicted).
    pub fn rank(self) -> Option<Rank> {
        Some(match self {
            Policy::NoEviction => return None,
            Policy::AllkeysLru | Policy::VolatileLru => Rank::Idle,
            Policy::AllkeysLfu | Policy::VolatileLfu => Rank::Frequency,
            Policy::AllkeysTinylfu => Rank::Sketch,
            Policy::VolatileTtl => Rank::Ttl,
            Policy::AllkeysRandom | Policy::VolatileRandom => Rank::Random,
        })
    }

    /// True if key accesses must keep Redis's LFU counters (`OBJECT FREQ`).
    pub fn counts_frequency(self) -> bool {
        self.rank() == Some(Rank::Frequency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(Policy::all().len(), 9);
        for &policy in Policy::all() {
            assert_eq!(Policy::parse(policy.name()), Some(policy));
            let toml = toml::to_string(&std::collections::BTreeMap::from([("p", policy)])).unwrap();
            assert_eq!(toml.trim(), format!("p = \"{}\"", policy.name()));
        }
        assert_eq!(Policy::parse("ALLKEYS-LRU"), Some(Policy::AllkeysLru));
        assert_eq!(Policy::parse("lru"), None);
    }
}
