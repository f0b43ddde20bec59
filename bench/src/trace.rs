//! Key traces for cache benchmarks: Zipf-distributed requests over a fixed key
//! population, optionally interrupted by one-off scans.

use rand::{RngExt, SeedableRng};

/// Which trace to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceKind {
    /// Zipf requests with this exponent.
    Zipf(f64),
    /// Zipf requests with this exponent, and after every `every` of them a scan
    /// of `length` keys never requested before or after.
    ScanMixed {
        /// The Zipf exponent.
        alpha: f64,
        /// Zipf requests between scans.
        every: usize,
        /// Keys per scan.
        length: usize,
    },
}

impl TraceKind {
    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            TraceKind::Zipf(alpha) => format!("zipf {alpha}"),
            TraceKind::ScanMixed {
                alpha,
                every,
                length,
            } => format!("zipf {alpha} + {length}-key scan every {every}"),
        }
    }
}

/// Samples ranks 0..n with probability proportional to 1/(rank+1)^alpha, by
/// binary search in the cumulative distribution.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks.
    pub fn new(n: usize, alpha: f64) -> Self {
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = (1..=n)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(alpha);
                total
            })
            .collect();
        for c in &mut cumulative {
            *c /= total;
        }
        Zipf { cumulative }
    }

    /// A rank, given a uniform draw in [0, 1).
    pub fn rank(&self, uniform: f64) -> usize {
        self.cumulative
            .partition_point(|&c| c < uniform)
            .min(self.cumulative.len() - 1)
    }
}

/// `requests` key ids (plus scans, if any) drawn over `keys` keys; the same
/// `seed` gives the same trace. Popular ranks are scattered over the key ids
/// (and so over hash slots); scan keys are ids from `keys` upward.
pub fn generate(kind: TraceKind, keys: usize, requests: usize, seed: u64) -> Vec<u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let alpha = match kind {
        TraceKind::Zipf(alpha) | TraceKind::ScanMixed { alpha, .. } => alpha,
    };
    let zipf = Zipf::new(keys, alpha);
    // Multiplying by a large prime coprime with the key count permutes the ids.
    let scatter = |rank: usize| (rank as u64 * 1_000_003) % keys as u64;
    let mut next_scan_key = keys as u64;
    let mut out = Vec::with_capacity(requests + requests / 4);
    for i in 0..requests {
        out.push(scatter(zipf.rank(rng.random::<f64>())));
        if let TraceKind::ScanMixed { every, length, .. } = kind {
            if (i + 1) % every == 0 {
                out.extend(next_scan_key..next_scan_key + length as u64);
                next_scan_key += length as u64;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn zipf_favours_low_ranks_as_its_exponent_says() {
        let zipf = Zipf::new(1_000, 1.0);
        assert_eq!(zipf.rank(0.0), 0);
        assert_eq!(zipf.rank(0.999_999_9), 999);
        let trace = generate(TraceKind::Zipf(1.0), 1_000, 100_000, 7);
        let mut counts: HashMap<u64, usize> = HashMap::new();
        for key in &trace {
            *counts.entry(*key).or_default() += 1;
        }
        let first = counts[&0];
        let second = counts[&(1_000_003 % 1_000)];
        // Rank 1 is drawn about twice as often as rank 2 (alpha 1).
        let ratio = first as f64 / second as f64;
        assert!((1.7..2.3).contains(&ratio), "{ratio}");
    }

    #[test]
    fn traces_are_reproducible_and_scans_never_repeat() {
        let kind = TraceKind::ScanMixed {
            alpha: 0.99,
            every: 1_000,
            length: 300,
        };
        let a = generate(kind, 10_000, 5_000, 1);
        assert_eq!(a, generate(kind, 10_000, 5_000, 1));
        assert_eq!(a.len(), 5_000 + 5 * 300);
        let scans: Vec<u64> = a.iter().copied().filter(|&k| k >= 10_000).collect();
        let mut unique = scans.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), scans.len());
        assert_eq!(scans.len(), 1_500);
    }
}
