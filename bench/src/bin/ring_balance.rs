//! Ring balance and movement: for 3, 10, 50 and 100 masters, the busiest
//! master's slots over the mean, and the slots that move when one master joins
//! or leaves, with the bounded-load ring and with plain consistent hashing.
//!
//! ```text
//! cargo run --release -p ringkv-bench --bin ring_balance -- --trials 20
//! ```

use clap::Parser;
use rand::{RngExt, SeedableRng};
use ringkv_server::cluster::{Ring, RingConfig};
use ringkv_server::keyspace::SLOTS;

/// Measure the slot ring.
#[derive(Debug, Parser)]
struct Options {
    /// Random member sets per size.
    #[arg(long, default_value_t = 20)]
    trials: u64,
    /// Points per master.
    #[arg(long, default_value_t = 256)]
    vnodes: u32,
}

fn node_ids(n: usize, rng: &mut rand::rngs::StdRng) -> Vec<String> {
    (0..n)
        .map(|_| format!("{:020x}{:020x}", rng.random::<u64>(), rng.random::<u64>()))
        .collect()
}

fn main() {
    let o = Options::parse();
    println!(
        "{} random member sets per size, {} points per master; worst and mean over the sets",
        o.trials, o.vnodes
    );
    println!();
    println!("| ring | masters | max/mean worst | join: moved / fair, worst | join mean | leave: others moved, worst | leave: others moved, mean |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (label, balance) in [("bounded 1.10", 1.10), ("plain", f64::INFINITY)] {
        let config = RingConfig {
            vnodes: o.vnodes,
            balance,
        };
        for n in [3usize, 10, 50, 100] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
            let (mut worst_balance, mut worst_join, mut sum_join) = (0f64, 0f64, 0f64);
            let (mut worst_leave, mut sum_leave) = (0usize, 0usize);
            for _ in 0..o.trials {
                let ids = node_ids(n + 1, &mut rng);
                let ring = Ring::build(&ids[..n], 1, &config);
                worst_balance = worst_balance.max(ring.max_over_mean());
                let joined = Ring::build(&ids, 2, &config);
                let join = ring.moved_to(&joined) as f64 / (SLOTS as f64 / (n + 1) as f64);
                worst_join = worst_join.max(join);
                sum_join += join;
                let leaver = ids[0].as_str();
                let left = Ring::build(&ids[1..n], 3, &config);
                let others = (0..SLOTS as u16)
                    .filter(|&s| ring.owner(s) != Some(leaver) && ring.owner(s) != left.owner(s))
                    .count();
                worst_leave = worst_leave.max(others);
                sum_leave += others;
            }
            println!(
                "| {label} | {n} | {worst_balance:.3} | {worst_join:.3}x | {:.3}x | {worst_leave} | {:.1} |",
                sum_join / o.trials as f64,
                sum_leave as f64 / o.trials as f64
            );
        }
    }
}
