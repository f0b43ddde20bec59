//! The cluster protocol under the deterministic simulator (`cluster::sim`):
//! many seeds of small clusters forming, losing nodes, splitting and healing,
//! with the invariants of docs/CLUSTER.md checked after every step.
//!
//! `RINGKV_SIM_SEEDS` runs more seeds; `RINGKV_SIM_SEED` replays one.

use ringkv_server::cluster::machine::Settings;
use ringkv_server::cluster::message::Flags;
use ringkv_server::cluster::sim::{Network, Sim, Violation};
use ringkv_server::cluster::slots::SlotSet;

const TIMEOUT: u64 = 1_000;

fn settings() -> Settings {
    Settings {
        node_timeout: TIMEOUT,
        ..Settings::DEFAULT
    }
}

/// The seeds to run: one given, or `0..count`.
fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("RINGKV_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("RINGKV_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..count).collect()
}

/// `n` nodes that met through node 0 and split the slots by the ring.
fn formed(n: usize, network: Network, seed: u64) -> Result<Sim, Violation> {
    let mut sim = Sim::new(n, settings(), network, seed);
    for j in 1..n {
        sim.meet(0, j);
    }
    sim.run_for(3 * TIMEOUT)?;
    // One assignment: an `AddSlots` lost with its link is asked again.
    sim.with(0, |c, now| {
        c.ring_assign(now);
    });
    sim.run_for(5 * TIMEOUT)?;
    sim.converged()?;
    Ok(sim)
}

fn check(seed: u64, result: Result<(), Violation>) {
    if let Err(Violation(what)) = result {
        panic!("seed {seed}: {what} (replay with RINGKV_SIM_SEED={seed})");
    }
}

#[test]
fn clusters_form_from_meets_and_the_ring() {
    for seed in seeds(250) {
        let n = 3 + (seed % 5) as usize;
        check(seed, formed(n, Network::default(), seed).map(|_| ()));
    }
}

#[test]
fn a_crashed_master_is_failed_everywhere_and_the_cluster_goes_down() {
    for seed in seeds(250) {
        let n = 3 + (seed % 5) as usize;
        let result = (|| {
            let mut sim = formed(n, Network::default(), seed)?;
            let victim = 1 + (seed as usize % (n - 1));
            let id = sim.cluster(victim).expect("up").myself();
            sim.crash(victim);
            sim.run_for(TIMEOUT + 1_500)?;
            for i in (0..n).filter(|&i| i != victim) {
                let c = sim.cluster(i).expect("up");
                let flags = c.node(id).expect("known").flags;
                if !flags.has(Flags::FAIL) {
                    return Err(Violation(format!(
                        "node {i} sees the crashed node as {flags:?}"
                    )));
                }
                if c.state_ok() {
                    return Err(Violation(format!("node {i} is ok with slots lost")));
                }
            }
            Ok(())
        })();
        check(seed, result);
    }
}

#[test]
fn an_isolated_master_stops_serving_and_the_cluster_heals() {
    for seed in seeds(250) {
        let n = 3 + (seed % 5) as usize;
        let result = (|| {
            let mut sim = formed(n, Network::default(), seed)?;
            let victim = seed as usize % n;
            sim.isolate(victim, true);
            sim.run_for(TIMEOUT + 1_500)?;
            if sim.cluster(victim).expect("up").state_ok() {
                return Err(Violation("the isolated master still serves".into()));
            }
            sim.isolate(victim, false);
            sim.run_for(6 * TIMEOUT)?;
            sim.converged()
        })();
        check(seed, result);
    }
}

#[test]
fn a_lossy_network_with_pauses_and_splits_converges_once_healed() {
    for seed in seeds(250) {
        let n = 3 + (seed % 5) as usize;
        let network = Network {
            min_delay: 1,
            max_delay: 60,
            loss: 0.01,
            duplicate: 0.02,
        };
        let result = (|| {
            let mut sim = formed(n, network, seed)?;
            let a = seed as usize % n;
            let b = (seed as usize / 7 + 1) % n;
            match seed % 3 {
                0 => sim.pause(a, true),
                1 => sim.set_cut(a, b, true),
                _ => sim.isolate(a, true),
            }
            sim.run_for(TIMEOUT / 2 + (seed % 4) * TIMEOUT)?;
            sim.pause(a, false);
            sim.set_cut(a, b, false);
            sim.isolate(a, false);
            sim.run_for(8 * TIMEOUT)?;
            sim.converged()
        })();
        check(seed, result);
    }
}

#[test]
fn a_restarted_master_rejoins_with_its_identity_and_slots() {
    for seed in seeds(100) {
        let n = 3 + (seed % 5) as usize;
        let result = (|| {
            let mut sim = formed(n, Network::default(), seed)?;
            let victim = seed as usize % n;
            let before = sim.cluster(victim).expect("up");
            let (id, slots) = (
                before.myself(),
                before.node(before.myself()).expect("me").slots.clone(),
            );
            sim.crash(victim);
            sim.run_for((seed % 3) * TIMEOUT + 200)?;
            sim.restart(victim)?;
            let after = sim.cluster(victim).expect("restarted");
            if after.myself() != id || after.node(id).expect("me").slots != slots {
                return Err(Violation(
                    "the restarted node lost its identity or slots".into(),
                ));
            }
            sim.run_for(4 * TIMEOUT)?;
            sim.converged()
        })();
        check(seed, result);
    }
}

#[test]
fn convergence_names_a_slot_two_nodes_serve_differently() {
    let mut sim = formed(3, Network::default(), 1).expect("forms");
    let dropped: SlotSet = [0].into_iter().collect();
    // Before node 1's next step, its table differs in slot 0 and nothing else.
    sim.with(1, |c, _| c.del_slots(&dropped).expect("slot 0 is assigned"));
    let Err(Violation(what)) = sim.converged() else {
        panic!("converged with slot 0 dropped on node 1");
    };
    assert!(what.starts_with("I4: node 1 has slot 0 at None"), "{what}");
}
