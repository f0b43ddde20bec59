//! The cluster bus at scale, in the simulator: for each cluster size, how long
//! until every node knows every node after each node met the first one (as
//! `redis-cli --cluster create` does), how long until every node serves the
//! same slot table after `CLUSTER RING ASSIGN`, and the bus bytes per node per
//! second once the cluster is quiet. Times are checked every 100 simulated ms,
//! their granularity. Invariant checks and saved configs are off (nothing
//! crashes here; the tests check the invariants): at 1,000 nodes a run still
//! takes about 10 minutes and 7 GB (a thousand views of a thousand nodes).
//!
//! ```text
//! cargo run --release -p ringkv-bench --bin cluster_sim -- --sizes 10,100,1000
//! ```

use clap::Parser;
use ringkv_server::cluster::machine::Settings;
use ringkv_server::cluster::message::Flags;
use ringkv_server::cluster::sim::{Network, Sim};

/// Measure the simulated cluster bus.
#[derive(Debug, Parser)]
struct Options {
    /// Cluster sizes.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    sizes: Vec<usize>,
    /// `cluster-node-timeout` in ms.
    #[arg(long, default_value_t = 15_000)]
    node_timeout: u64,
    /// Seconds of quiet cluster to measure bytes over.
    #[arg(long, default_value_t = 60)]
    quiet_secs: u64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// True when every node knows all `n` nodes by id (no handshakes left).
fn everyone_knows_everyone(sim: &Sim, n: usize) -> bool {
    (0..n).all(|i| {
        sim.cluster(i)
            .is_some_and(|c| c.nodes().filter(|x| !x.flags.has(Flags::HANDSHAKE)).count() == n)
    })
}

/// Steps `sim` in `step` ms increments until `done` or `limit` ms passed;
/// returns the ms it took.
fn wait(sim: &mut Sim, step: u64, limit: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
    let start = sim.now();
    while sim.now() - start < limit {
        sim.run_for(step).expect("checks are off");
        if done(sim) {
            return Some(sim.now() - start);
        }
    }
    None
}

fn main() {
    let options = Options::parse();
    let settings = Settings {
        node_timeout: options.node_timeout,
        ..Settings::DEFAULT
    };
    println!(
        "| nodes | all know all (s) | same slot table (s) | bytes/node/s out (mean, max) | in (mean, max) | messages/node/s | with a claim |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &options.sizes {
        let mut sim = Sim::new(n, settings, Network::default(), options.seed);
        let started = std::time::Instant::now();
        sim.set_checks(false);
        sim.set_configs(false);
        for j in 1..n {
            sim.meet(j, 0);
        }
        let limit = 600_000;
        let known = wait(&mut sim, 100, limit, |s| everyone_knows_everyone(s, n));
        sim.with(0, |c, now| {
            c.ring_assign(now);
        });
        let agreed = wait(&mut sim, 100, limit, |s| s.converged().is_ok());
        let before: Vec<(u64, u64)> = (0..n).map(|i| sim.bytes(i)).collect();
        let (messages_before, claims_before) = (sim.messages, sim.claims);
        sim.run_for(options.quiet_secs * 1000)
            .expect("checks are off");
        let secs = options.quiet_secs as f64;
        let rates: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let (sent, received) = sim.bytes(i);
                (
                    (sent - before[i].0) as f64 / secs,
                    (received - before[i].1) as f64 / secs,
                )
            })
            .collect();
        let mean = |f: fn(&(f64, f64)) -> f64| rates.iter().map(f).sum::<f64>() / n as f64;
        let max = |f: fn(&(f64, f64)) -> f64| rates.iter().map(f).fold(0.0, f64::max);
        let show =
            |t: Option<u64>| t.map_or("-".to_string(), |ms| format!("{:.1}", ms as f64 / 1000.0));
        println!(
            "| {n} | {} | {} | {:.0}, {:.0} | {:.0}, {:.0} | {:.1} | {:.1}% |",
            show(known),
            show(agreed),
            mean(|r| r.0),
            max(|r| r.0),
            mean(|r| r.1),
            max(|r| r.1),
            (sim.messages - messages_before) as f64 / secs / n as f64,
            100.0 * (sim.claims - claims_before) as f64
                / (sim.messages - messages_before).max(1) as f64,
        );
        eprintln!(
            "{n} nodes: {:.0} s to simulate",
            started.elapsed().as_secs_f64()
        );
    }
}
