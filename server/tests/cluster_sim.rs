//! The cluster protocol under the deterministic simulator (`cluster::sim`):
//! many seeds of small clusters forming, losing nodes, splitting and healing,
//! failing over to replicas while lock clients run, moving slots while
//! clients write, with the invariants of docs/CLUSTER.md checked after every
//! step.
//!
//! 1,030 seeds by default (about two minutes of CPU in a debug build); `RINGKV_SIM_SEEDS` runs more of each (1,500 of
//! each pass in a release build); `RINGKV_SIM_SEED` replays one.

use ringkv_server::cluster::machine::{Role, Settings};
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
    for seed in seeds(150) {
        let n = 3 + (seed % 5) as usize;
        check(seed, formed(n, Network::default(), seed).map(|_| ()));
    }
}

#[test]
fn a_crashed_master_is_failed_everywhere_and_the_cluster_goes_down() {
    for seed in seeds(150) {
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
    for seed in seeds(150) {
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
    for seed in seeds(200) {
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
    for seed in seeds(60) {
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

/// `masters` masters with the slots split by the ring, each with `per`
/// replicas (node `masters + k` replicates master `k % masters`).
fn sharded(masters: usize, per: usize, network: Network, seed: u64) -> Result<Sim, Violation> {
    let replica_of: Vec<usize> = (0..masters * per).map(|k| k % masters).collect();
    Sim::with_replicas(masters, &replica_of, settings(), network, seed)
}

/// The node serving `slot` as every live node sees it, if they agree and it
/// is a master in its own view.
fn agreed_master(sim: &Sim, slot: u16) -> Option<usize> {
    let mut owner = None;
    for i in 0..sim.len() {
        let Some(c) = sim.cluster(i) else { continue };
        match (owner, c.owner(slot)) {
            (_, None) => return None,
            (None, Some(id)) => owner = Some(id),
            (Some(a), Some(b)) if a != b => return None,
            _ => {}
        }
    }
    let i = (0..sim.len()).find(|&i| Some(sim.id(i)) == owner)?;
    sim.cluster(i)?.role().is_master().then_some(i)
}

#[test]
fn a_crashed_master_is_replaced_by_its_best_replica_and_returns_as_a_replica() {
    for seed in seeds(100) {
        let masters = 3 + (seed % 2) as usize;
        let per = 1 + (seed % 3 == 0) as usize;
        let result = (|| {
            let mut sim = sharded(masters, per, Network::default(), seed)?;
            let victim = seed as usize % masters;
            let slot = (0..16384u16)
                .find(|&s| sim.cluster(0).unwrap().owner(s) == Some(sim.id(victim)))
                .expect("the victim serves slots");
            // Its replicas hold different amounts of the stream.
            let replicas: Vec<usize> = (masters..sim.len())
                .filter(|r| r % masters == victim)
                .collect();
            for (k, &r) in replicas.iter().enumerate() {
                sim.set_offset(r, 1_000 + 10 * k as u64);
            }
            sim.set_offset(victim, 2_000);
            sim.run_for(TIMEOUT)?;
            let crashed = sim.now();
            sim.crash(victim);
            let mut took = None;
            while sim.now() - crashed <= 3 * TIMEOUT + 2_000 {
                sim.run_for(100)?;
                let ok = (0..sim.len()).all(|i| sim.cluster(i).is_none_or(|c| c.state_ok()));
                if ok && agreed_master(&sim, slot).is_some() {
                    took = Some(sim.now() - crashed);
                    break;
                }
            }
            let Some(took) = took else {
                return Err(Violation("no replica took over".into()));
            };
            // FAIL after T, 0.5 to 1 s of election delay, a round of votes.
            if took > 2 * TIMEOUT + 1_500 {
                return Err(Violation(format!("the failover took {took} ms")));
            }
            let new = agreed_master(&sim, slot).expect("agreed");
            if new != *replicas.last().expect("a replica") {
                return Err(Violation(format!(
                    "node {new}, not the most up to date replica, won"
                )));
            }
            sim.restart(victim)?;
            sim.run_for(4 * TIMEOUT)?;
            let role = sim.cluster(victim).expect("up").role();
            if !matches!(role, Role::Replica { master, .. } if master == sim.id(new)) {
                return Err(Violation(format!("the old master came back as {role:?}")));
            }
            sim.converged()
        })();
        check(seed, result);
    }
}

#[test]
fn locks_granted_before_failovers_pauses_and_splits_are_never_lost_or_regranted() {
    for seed in seeds(60) {
        let masters = 3;
        let per = 1 + (seed % 2) as usize;
        let network = Network {
            min_delay: 1,
            max_delay: 30,
            loss: if seed % 4 == 0 { 0.005 } else { 0.0 },
            duplicate: 0.01,
        };
        let result = (|| {
            let mut sim = sharded(masters, per, network, seed)?;
            sim.set_locks(2);
            sim.run_for(2 * TIMEOUT)?;
            for round in 0..3u64 {
                let masters_now: Vec<usize> = (0..sim.len())
                    .filter(|&i| sim.cluster(i).is_some_and(|c| c.role().is_master()))
                    .collect();
                let victim = masters_now[((seed + round) as usize) % masters_now.len()];
                match (seed + round) % 4 {
                    0 => {
                        // Restarted only once replaced: a master back empty
                        // before its failover is L5's case (lock-delay).
                        let slot = (0..16384u16)
                            .find(|&s| {
                                sim.cluster(victim).unwrap().owner(s) == Some(sim.id(victim))
                            })
                            .expect("a master serves slots");
                        sim.crash(victim);
                        let crashed = sim.now();
                        while agreed_master(&sim, slot).is_none_or(|m| m == victim) {
                            if sim.now() - crashed > 12 * TIMEOUT {
                                return Err(Violation(
                                    "the crashed master was not replaced".into(),
                                ));
                            }
                            sim.run_for(100)?;
                        }
                        sim.restart(victim)?;
                    }
                    1 => {
                        sim.pause(victim, true);
                        sim.run_for(TIMEOUT / 2 + (seed % 3) * TIMEOUT)?;
                        sim.pause(victim, false);
                    }
                    2 => {
                        sim.isolate(victim, true);
                        sim.run_for(3 * TIMEOUT)?;
                        sim.isolate(victim, false);
                    }
                    _ => {
                        let other = (victim + 1) % sim.len();
                        sim.set_cut(victim, other, true);
                        sim.run_for(2 * TIMEOUT)?;
                        sim.set_cut(victim, other, false);
                    }
                }
                sim.run_for(6 * TIMEOUT)?;
            }
            sim.converged()?;
            let counts = sim.lock_counts();
            if counts.granted == 0 {
                return Err(Violation(format!("no lock was ever granted: {counts:?}")));
            }
            Ok(())
        })();
        check(seed, result);
    }
}

#[test]
fn a_manual_failover_under_load_keeps_every_grant_of_the_old_master() {
    for seed in seeds(40) {
        let result = (|| {
            let mut sim = sharded(3, 1, Network::default(), seed)?;
            sim.set_locks(3);
            sim.run_for(2 * TIMEOUT)?;
            let replica = 3 + seed as usize % 3;
            let master = replica % 3;
            sim.with(replica, |c, now| {
                c.failover(false, false, now).expect("a replica")
            });
            let started = sim.now();
            while !sim.cluster(replica).expect("up").role().is_master() {
                if sim.now() - started > 1_000 {
                    return Err(Violation("the manual failover took over 1 s".into()));
                }
                sim.run_for(10)?;
            }
            sim.run_for(TIMEOUT)?;
            // Every grant the old master wrote before it paused is on the new one.
            let old = sim.grants(master);
            let new = sim.grants(replica);
            if let Some(lost) = old.iter().find(|g| !new.contains(g)) {
                return Err(Violation(format!("grant {lost} of the old master is lost")));
            }
            sim.run_for(3 * TIMEOUT)?;
            sim.converged()
        })();
        check(seed, result);
    }
}

/// Atomic slot migrations (docs/CLUSTER.md, M7-M11) between four masters
/// while clients write, with crashes, pauses, partitions and a lossy
/// network: I9 (every slot one owner among the newest epochs, I2) after
/// every step, and I10 once healed: every acknowledged key on exactly its
/// slot's owner, nothing left hidden or kept by a former owner.
#[test]
fn slot_migrations_under_faults_keep_every_slot_and_key_in_one_owner() {
    let (mut runs, mut done, mut writes) = (0, 0, 0);
    for seed in seeds(120) {
        let network = Network {
            loss: if seed % 3 == 0 { 0.01 } else { 0.0 },
            ..Network::default()
        };
        let result = (|| {
            let mut sim = formed(4, network, seed)?;
            sim.set_moves();
            for round in 0..6u64 {
                sim.run_for(1_500)?;
                let victim = ((seed + round) % 4) as usize;
                match (seed + round) % 4 {
                    0 => {
                        sim.crash(victim);
                        sim.run_for(800)?;
                        sim.restart(victim)?;
                    }
                    1 => {
                        sim.isolate(victim, true);
                        sim.run_for(2 * TIMEOUT)?;
                        sim.isolate(victim, false);
                    }
                    2 => {
                        sim.pause(victim, true);
                        sim.run_for(700)?;
                        sim.pause(victim, false);
                    }
                    _ => {}
                }
            }
            sim.stop_moves();
            sim.run_for(20 * TIMEOUT)?;
            sim.converged()?;
            sim.check_moves()?;
            Ok(sim.move_counts())
        })();
        match result {
            Ok(counts) => {
                runs += 1;
                done += counts.done;
                writes += counts.writes;
            }
            Err(err) => check(seed, Err(err)),
        }
    }
    // The runs moved slots under writes (not only refused or failed moves).
    assert!(done >= runs, "{done} migrations done in {runs} runs");
    assert!(writes >= 1_000 * runs, "{writes} writes in {runs} runs");
}
