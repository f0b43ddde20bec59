//! The cluster bus at scale, in the simulator: for each cluster size, how long
//! until every node knows every node after each node met the first one (as
//! `redis-cli --cluster create` does), how long until every node serves the
//! same slot table after `CLUSTER RING ASSIGN`, and the bus bytes per node per
//! second once the cluster is quiet. Times are checked every 100 simulated ms,
//! their granularity. Invariant checks and saved configs are off (nothing
//! restarts here; the tests check the invariants): at 1,000 nodes a run still
//! takes about 10 minutes and 7 GB (a thousand views of a thousand nodes).
//!
//! Then, for clusters of masters with one replica each, a master crash: how
//! long until every survivor flags it `fail`, until its replica won the
//! election, and until every node serves the new master's claim and is `ok`
//! again (checked every 10 simulated ms), in simulated time.
//!
//! ```text
//! cargo run --release -p ringkv-bench --bin cluster_sim -- --sizes 10,100,1000 --failover-sizes 6,20,100
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
    /// Cluster sizes (masters and as many replicas) for the failover runs.
    #[arg(long, value_delimiter = ',', default_value = "6,20,100")]
    failover_sizes: Vec<usize>,
    /// Failover runs (seeds) per size.
    #[arg(long, default_value_t = 5)]
    failover_runs: u64,
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

/// `n` nodes, half of them masters with the slots, each other one a replica
/// of one of them; converged. `None` if it did not converge in 10 minutes.
fn shards(n: usize, settings: Settings, seed: u64) -> Option<Sim> {
    let masters = n / 2;
    let mut sim = Sim::new(n, settings, Network::default(), seed);
    sim.set_checks(false);
    sim.set_configs(false);
    for j in 1..n {
        sim.meet(j, 0);
    }
    let limit = 600_000;
    wait(&mut sim, 100, limit, |s| everyone_knows_everyone(s, n))?;
    for r in masters..n {
        let master = sim.id(r - masters);
        sim.with(r, |c, now| {
            c.replicate(master, false, now).expect("a master")
        });
    }
    wait(&mut sim, 100, limit, |s| {
        (0..n).all(|i| {
            let c = s.cluster(i).expect("up");
            (masters..n).all(|r| c.node(s.id(r)).is_some_and(|x| x.flags.has(Flags::REPLICA)))
        })
    })?;
    sim.with(0, |c, now| {
        c.ring_assign(now);
    });
    wait(&mut sim, 100, limit, |s| s.converged().is_ok())?;
    Some(sim)
}

/// Crashes a master of `sim` (`n` nodes, the first half masters) and times
/// the failover: every survivor flags it `fail`, its replica is master,
/// every node serves the replica's claim and is `ok`.
fn failover(mut sim: Sim, n: usize) -> Option<Failover> {
    let masters = n / 2;
    // Quiet first: the bus bytes a master and a replica send (a master with a
    // replica keeps T/4 round trips with the other masters, L3).
    let before: Vec<u64> = (0..n).map(|i| sim.bytes(i).0).collect();
    let quiet = 30_000;
    sim.run_for(quiet).expect("checks are off");
    let rate = |range: std::ops::Range<usize>| {
        let count = range.len() as f64;
        range
            .map(|i| (sim.bytes(i).0 - before[i]) as f64)
            .sum::<f64>()
            / count
            / (quiet as f64 / 1000.0)
    };
    let (master_rate, replica_rate) = (rate(0..masters), rate(masters..n));
    let (victim, replica) = (1, 1 + masters);
    let (victim_id, replica_id) = (sim.id(victim), sim.id(replica));
    let slot =
        (0..16384u16).find(|&s| sim.cluster(0).and_then(|c| c.owner(s)) == Some(victim_id))?;
    sim.crash(victim);
    let limit = 600_000;
    let failed = wait(&mut sim, 10, limit, |s| {
        (0..n).filter(|&i| i != victim).all(|i| {
            let c = s.cluster(i).expect("up");
            c.node(victim_id).is_some_and(|x| x.flags.has(Flags::FAIL))
        })
    })?;
    let elected = failed
        + wait(&mut sim, 10, limit, |s| {
            s.cluster(replica).is_some_and(|c| c.role().is_master())
        })?;
    let served = elected
        + wait(&mut sim, 10, limit, |s| {
            (0..n).filter(|&i| i != victim).all(|i| {
                let c = s.cluster(i).expect("up");
                c.state_ok() && c.owner(slot) == Some(replica_id)
            })
        })?;
    Some(Failover {
        failed,
        elected,
        served,
        master_rate,
        replica_rate,
    })
}

/// One failover run: ms from the crash to each event, and the quiet bus
/// bytes per second a master and a replica sent before it.
struct Failover {
    failed: u64,
    elected: u64,
    served: u64,
    master_rate: f64,
    replica_rate: f64,
}

fn main() {
    let options = Options::parse();
    let settings = Settings {
        node_timeout: options.node_timeout,
        ..Settings::DEFAULT
    };
    run_bus(&options, settings);
    println!();
    println!(
        "Failover, cluster-node-timeout {} ms: simulated seconds after the crash (median, max of {} runs)",
        options.node_timeout, options.failover_runs
    );
    println!();
    println!(
        "| nodes (masters + replicas) | all flag it fail | replica elected | all serve it, ok | quiet bus bytes/s out: master, replica |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for &n in &options.failover_sizes {
        let started = std::time::Instant::now();
        let runs: Vec<Failover> = (0..options.failover_runs)
            .filter_map(|k| shards(n, settings, options.seed + k).and_then(|sim| failover(sim, n)))
            .collect();
        let show = |mut v: Vec<u64>| {
            v.sort_unstable();
            match (v.get(v.len() / 2), v.last()) {
                (Some(mid), Some(max)) => {
                    format!("{:.2}, {:.2}", *mid as f64 / 1000.0, *max as f64 / 1000.0)
                }
                _ => "-".to_string(),
            }
        };
        let mean =
            |f: fn(&Failover) -> f64| runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64;
        println!(
            "| {n} ({} + {}) | {} | {} | {} | {:.0}, {:.0} |",
            n / 2,
            n - n / 2,
            show(runs.iter().map(|r| r.failed).collect()),
            show(runs.iter().map(|r| r.elected).collect()),
            show(runs.iter().map(|r| r.served).collect()),
            mean(|r| r.master_rate),
            mean(|r| r.replica_rate),
        );
        eprintln!(
            "{n} nodes: {} failovers, {:.0} s to simulate",
            runs.len(),
            started.elapsed().as_secs_f64()
        );
    }
}

fn run_bus(options: &Options, settings: Settings) {
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
