use super::*;
use crate::cluster::machine::{InSync, Output, Settings};
use crate::cluster::nodes_conf;
use crate::cluster::sim::{Network, Sim};

const T: Millis = 1_000;

fn settings() -> Settings {
    Settings {
        node_timeout: T,
        ..Settings::DEFAULT
    }
}

/// `masters` masters with the slots split by the ring, and `replicas` more
/// nodes, node `masters + k` a replica of master `k % masters`; converged.
fn shard_cluster(masters: usize, replicas: usize, seed: u64) -> Sim {
    let replica_of: Vec<usize> = (0..replicas).map(|k| k % masters).collect();
    Sim::with_replicas(masters, &replica_of, settings(), Network::default(), seed).unwrap()
}

/// Runs `f` on node `i` and returns what it produced (then carried out).
fn outputs_of(sim: &mut Sim, i: usize, f: impl FnOnce(&mut Cluster, Millis)) -> Vec<Output> {
    let mut out = Vec::new();
    sim.with(i, |c, now| {
        f(c, now);
        out = c.take_outputs();
        c.outputs = out.clone();
    });
    out
}

/// Raises node `c`'s current epoch, as a request's header would.
fn see_epoch(c: &mut Cluster, epoch: u64) {
    if epoch > c.current_epoch {
        c.current_epoch = epoch;
        c.save = true;
    }
}

fn node(sim: &Sim, observer: usize, of: usize) -> &crate::cluster::machine::Node {
    let c = sim.cluster(observer).expect("up");
    c.node(sim.id(of)).expect("known")
}

#[test]
fn replicate_refuses_as_redis_does() {
    let mut sim = shard_cluster(3, 1, 1);
    let (m0, r) = (sim.id(0), sim.id(3));
    let unknown = Id([0xee; 20]);
    let mut errors = Vec::new();
    sim.with(3, |c, now| {
        errors.push(c.replicate(unknown, false, now).unwrap_err().to_string());
        errors.push(c.replicate(r, false, now).unwrap_err().to_string());
        // Already its replica: nothing to do.
        assert_eq!(c.replicate(m0, false, now), Ok(()));
    });
    sim.with(1, |c, now| {
        errors.push(c.replicate(r, false, now).unwrap_err().to_string());
        // A master with slots, then one with keys.
        errors.push(c.replicate(m0, false, now).unwrap_err().to_string());
    });
    let mut fresh = Sim::new(2, settings(), Network::default(), 2);
    fresh.meet(0, 1);
    fresh.run_for(2 * T).unwrap();
    let other = fresh.id(1);
    fresh.with(0, |c, now| {
        errors.push(c.replicate(other, true, now).unwrap_err().to_string());
    });
    assert_eq!(
        errors,
        [
            format!("ERR Unknown node {unknown}"),
            "ERR Can't replicate myself".to_string(),
            "ERR I can only replicate a master, not a replica.".to_string(),
            "ERR To set a master the node must be empty and without assigned slots.".to_string(),
            "ERR To set a master the node must be empty and without assigned slots.".to_string(),
        ]
    );
}

#[test]
fn a_replica_is_a_slave_of_its_master_everywhere_and_after_a_restart() {
    let sim = shard_cluster(3, 3, 3);
    for observer in 0..6 {
        for k in 0..3 {
            let r = node(&sim, observer, 3 + k);
            assert!(r.flags.has(Flags::REPLICA) && !r.flags.has(Flags::MASTER));
            assert_eq!(r.master, Some(sim.id(k)), "node {observer}'s view");
            assert_eq!(r.shard, node(&sim, observer, k).shard);
        }
    }
    let c = sim.cluster(4).unwrap();
    let line = c.node_line(c.node(c.myself()).unwrap());
    assert!(line.flags.replica && line.master == Some(sim.id(1).to_string()));
    // Shown with its master's config epoch, saved with its own.
    assert_eq!(line.config_epoch, node(&sim, 4, 1).config_epoch);
    let conf = nodes_conf::parse(&nodes_conf::format(&c.durable())).unwrap();
    let restored =
        Cluster::restore(settings(), &conf, node(&sim, 4, 4).addr, 9, sim.now()).unwrap();
    assert_eq!(
        restored.role(),
        Role::Replica {
            master: sim.id(1),
            ip: node(&sim, 4, 1).addr.ip,
            port: node(&sim, 4, 1).addr.port,
        }
    );
    let replicas = restored.replicas_of(sim.id(1)).unwrap();
    assert_eq!(
        replicas.iter().map(|n| n.id).collect::<Vec<_>>(),
        [sim.id(4)]
    );
    assert_eq!(
        restored.replicas_of(sim.id(4)).unwrap_err().to_string(),
        "ERR The specified node is not a master"
    );
}

#[test]
fn a_crashed_masters_replica_takes_its_slots_and_the_old_master_returns_as_its_replica() {
    let mut sim = shard_cluster(3, 3, 4);
    let slots = node(&sim, 0, 1).slots.clone();
    let epoch = sim.cluster(0).unwrap().current_epoch();
    sim.crash(1);
    sim.run_for(T + 1_500 + 500).unwrap();
    let promoted = sim.cluster(4).unwrap();
    assert_eq!(promoted.role(), Role::Master);
    let me = promoted.node(sim.id(4)).unwrap();
    assert_eq!(me.slots, slots);
    assert!(me.config_epoch > epoch);
    sim.run_for(2 * T).unwrap();
    for i in [0, 2, 3, 4, 5] {
        let c = sim.cluster(i).unwrap();
        assert!(c.state_ok(), "node {i} is not ok");
        assert_eq!(c.owner(slots.iter().next().unwrap()), Some(sim.id(4)));
    }
    sim.restart(1).unwrap();
    sim.run_for(3 * T).unwrap();
    let old = sim.cluster(1).unwrap();
    assert_eq!(
        old.role(),
        Role::Replica {
            master: sim.id(4),
            ip: node(&sim, 1, 4).addr.ip,
            port: 7000
        }
    );
    assert!(old.node(sim.id(1)).unwrap().slots.is_empty());
    sim.converged().unwrap();
}

#[test]
fn the_replica_with_the_larger_offset_ranks_first() {
    let mut sim = shard_cluster(3, 6, 5);
    // Nodes 3 and 6 replicate master 0; node 6 holds more of the stream.
    sim.set_offset(3, 100);
    sim.set_offset(6, 200);
    sim.run_for(T).unwrap();
    assert_eq!(sim.cluster(3).unwrap().rank(), 1);
    assert_eq!(sim.cluster(6).unwrap().rank(), 0);
    sim.crash(0);
    sim.run_for(T + 2_000).unwrap();
    assert_eq!(sim.cluster(6).unwrap().role(), Role::Master);
    let follows = sim.cluster(3).unwrap().role();
    assert!(matches!(follows, Role::Replica { master, .. } if master == sim.id(6)));
}

/// A request from replica 3 (of master 0) as master 1 receives it, after
/// master 0 was flagged `fail` everywhere.
fn failed_shard(seed: u64) -> Sim {
    let mut sim = shard_cluster(3, 3, seed);
    sim.set_no_failover(3, true);
    sim.crash(0);
    sim.run_for(T + 1_500).unwrap();
    assert!(node(&sim, 1, 0).flags.has(Flags::FAIL));
    sim
}

fn request(sim: &Sim, observer: usize, manual: bool) -> (u64, SlotSet, bool) {
    let m = node(sim, observer, 0);
    (m.config_epoch, (*m.slots).clone(), manual)
}

fn acks(outputs: &[Output]) -> Vec<u64> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(
                _,
                Message {
                    body: Body::FailoverAuthAck { epoch },
                    ..
                },
            ) => Some(*epoch),
            _ => None,
        })
        .collect()
}

fn vote(sim: &mut Sim, voter: usize, candidate: usize, epoch: u64, manual: bool) -> Vec<Output> {
    let (config, slots, manual) = request(sim, voter, manual);
    let id = sim.id(candidate);
    outputs_of(sim, voter, |c, now| {
        see_epoch(c, epoch);
        c.vote_requested(Link::From(1), id, epoch, (config, &slots, manual), now);
    })
}

#[test]
fn a_master_votes_once_per_epoch_and_saves_before_it_acks() {
    let mut sim = failed_shard(6);
    let epoch = sim.cluster(1).unwrap().current_epoch() + 1;
    let out = vote(&mut sim, 1, 3, epoch, false);
    assert_eq!(acks(&out), [epoch]);
    assert_eq!(
        out.first(),
        Some(&Output::Save),
        "saved before the ack: {out:?}"
    );
    assert_eq!(sim.cluster(1).unwrap().last_vote_epoch(), epoch);
    // The same epoch again, even for the other replica: no.
    assert!(acks(&vote(&mut sim, 1, 3, epoch, false)).is_empty());
    // A later epoch within 2T for the same master: no.
    assert!(acks(&vote(&mut sim, 1, 3, epoch + 1, false)).is_empty());
    sim.run_for(2 * T + 100).unwrap();
    let later = sim.cluster(1).unwrap().current_epoch() + 1;
    assert_eq!(acks(&vote(&mut sim, 1, 3, later, false)), [later]);
}

#[test]
fn one_vote_per_epoch_holds_across_a_restart() {
    let mut sim = failed_shard(7);
    let epoch = sim.cluster(2).unwrap().current_epoch() + 1;
    assert_eq!(acks(&vote(&mut sim, 2, 3, epoch, false)), [epoch]);
    sim.crash(2);
    sim.restart(2).unwrap();
    sim.run_for(T).unwrap();
    assert_eq!(sim.cluster(2).unwrap().last_vote_epoch(), epoch);
    // The voter came back knowing it voted; the old master is failed again.
    sim.run_for(2 * T).unwrap();
    let out = vote(&mut sim, 2, 3, epoch, false);
    assert!(acks(&out).is_empty(), "{out:?}");
}

#[test]
fn votes_are_refused_by_redis_rules_and_the_in_sync_set() {
    let mut sim = failed_shard(8);
    let epoch = sim.cluster(1).unwrap().current_epoch() + 1;
    // An older epoch than the voter's.
    let id = sim.id(3);
    let (config, slots, _) = request(&sim, 1, false);
    let out = outputs_of(&mut sim, 1, |c, now| {
        see_epoch(c, epoch + 5);
        c.vote_requested(Link::From(1), id, epoch, (config, &slots, false), now);
    });
    assert!(acks(&out).is_empty());
    let epoch = epoch + 6;
    // A replica does not vote.
    assert!(acks(&vote(&mut sim, 4, 3, epoch, false)).is_empty());
    // A master is no candidate.
    assert!(acks(&vote(&mut sim, 1, 2, epoch, false)).is_empty());
    // A claim of the slots newer than the request's.
    let (_, slots, _) = request(&sim, 1, false);
    let out = outputs_of(&mut sim, 1, |c, now| {
        see_epoch(c, epoch);
        c.vote_requested(Link::From(1), id, epoch, (0, &slots, false), now);
    });
    assert!(acks(&out).is_empty());
    // Outside the in-sync set the voter holds for the master.
    let m0 = sim.id(0);
    let r6 = Id([0x66; 20]);
    sim.with(1, |c, _| {
        c.nodes.get_mut(&m0).unwrap().in_sync = Some(InSync {
            version: 9,
            members: vec![r6],
        });
    });
    assert!(acks(&vote(&mut sim, 1, 3, epoch, false)).is_empty());
    sim.with(1, |c, _| {
        c.nodes.get_mut(&m0).unwrap().in_sync = Some(InSync {
            version: 10,
            members: vec![r6, id],
        });
    });
    assert_eq!(acks(&vote(&mut sim, 1, 3, epoch, false)), [epoch]);
}

#[test]
fn a_live_masters_replica_gets_votes_only_for_a_manual_failover() {
    let mut sim = shard_cluster(3, 3, 9);
    let epoch = sim.cluster(1).unwrap().current_epoch() + 1;
    assert!(acks(&vote(&mut sim, 1, 3, epoch, false)).is_empty());
    assert_eq!(acks(&vote(&mut sim, 1, 3, epoch, true)), [epoch]);
}

#[test]
fn cluster_failover_refuses_as_redis_does() {
    let mut sim = shard_cluster(3, 3, 10);
    let mut errors = Vec::new();
    sim.with(0, |c, now| {
        errors.push(c.failover(false, false, now).unwrap_err().to_string())
    });
    sim.crash(0);
    sim.run_for(T / 2).unwrap();
    sim.set_no_failover(3, true);
    sim.with(3, |c, now| {
        errors.push(c.failover(false, false, now).unwrap_err().to_string())
    });
    assert_eq!(
        errors,
        [
            "ERR You should send CLUSTER FAILOVER to a replica",
            "ERR Master is down or failed, please use CLUSTER FAILOVER FORCE",
        ]
    );
    // FORCE goes ahead without the master.
    sim.with(3, |c, now| c.failover(true, false, now).unwrap());
    sim.run_for(1_000).unwrap();
    assert_eq!(sim.cluster(3).unwrap().role(), Role::Master);
}

#[test]
fn a_manual_failover_waits_for_the_paused_offset_then_swaps_roles() {
    let mut sim = shard_cluster(3, 3, 11);
    sim.set_offset(0, 500);
    sim.set_offset(3, 400);
    sim.run_for(T).unwrap();
    sim.with(3, |c, now| c.failover(false, false, now).unwrap());
    sim.run_for(300).unwrap();
    let master = sim.cluster(0).unwrap();
    assert!(master.writes_paused_until() > sim.now());
    // The replica has not caught up: no election yet.
    assert!(!sim.cluster(3).unwrap().role().is_master());
    assert_eq!(sim.cluster(3).unwrap().manual.master_offset, Some(500));
    assert_eq!(sim.cluster(3).unwrap().manual_target(), Some(500));
    // Reaching the offset starts the election at once, not at a tick.
    sim.set_offset(3, 500);
    let out = outputs_of(&mut sim, 3, |c, now| c.manual_caught_up(now));
    let asked = out.iter().any(
        |o| matches!(o, Output::Send(_, m) if matches!(m.body, Body::FailoverAuthRequest { .. })),
    );
    assert!(asked, "{out:?}");
    assert_eq!(sim.cluster(3).unwrap().manual_target(), None);
    sim.run_for(400).unwrap();
    assert_eq!(sim.cluster(3).unwrap().role(), Role::Master);
    sim.run_for(300).unwrap();
    let old = sim.cluster(0).unwrap();
    assert!(matches!(old.role(), Role::Replica { master, .. } if master == sim.id(3)));
    assert_eq!(old.writes_paused_until(), 0);
    sim.run_for(2 * T).unwrap();
    sim.converged().unwrap();
}

#[test]
fn a_paused_master_sends_its_final_offset_as_soon_as_the_pause_settles() {
    let mut sim = shard_cluster(3, 3, 13);
    sim.run_for(T).unwrap();
    let replica = sim.id(3);
    let started = sim.now();
    sim.with(0, |c, now| c.manual_start_asked(replica, now));
    assert_eq!(
        sim.cluster(0).unwrap().wake_at(),
        Some(started + PAUSE_SETTLE)
    );
    let early = outputs_of(&mut sim, 0, |c, now| c.wake(now + PAUSE_SETTLE - 1));
    assert!(early.is_empty(), "not settled yet");
    let out = outputs_of(&mut sim, 0, |c, now| c.wake(now + PAUSE_SETTLE));
    let paused = out
        .iter()
        .any(|o| matches!(o, Output::Send(_, m) if m.header.paused));
    assert!(paused, "{out:?}");
    assert_eq!(sim.cluster(0).unwrap().wake_at(), None);
}

#[test]
fn a_manual_failover_that_cannot_finish_unpauses_the_master_after_5_s() {
    let mut sim = shard_cluster(3, 3, 12);
    sim.set_offset(0, 500);
    sim.with(3, |c, now| c.failover(false, false, now).unwrap());
    sim.run_for(1_000).unwrap();
    assert!(sim.cluster(0).unwrap().writes_paused_until() > 0);
    sim.run_for(MANUAL_TIMEOUT).unwrap();
    assert_eq!(sim.cluster(0).unwrap().writes_paused_until(), 0);
    assert_eq!(sim.cluster(0).unwrap().role(), Role::Master);
}

#[test]
fn takeover_needs_no_votes() {
    let mut sim = shard_cluster(3, 3, 13);
    // Every other master cut off: no vote could come.
    for m in [1, 2] {
        sim.set_cut(3, m, true);
    }
    sim.with(3, |c, now| c.failover(false, true, now).unwrap());
    assert_eq!(sim.cluster(3).unwrap().role(), Role::Master);
    let highest = (0..6)
        .filter_map(|i| sim.cluster(i))
        .flat_map(|c| c.nodes().map(|n| n.config_epoch).collect::<Vec<_>>())
        .max()
        .unwrap();
    assert_eq!(node(&sim, 3, 3).config_epoch, highest);
    for m in [1, 2] {
        sim.set_cut(3, m, false);
    }
    sim.run_for(3 * T).unwrap();
    sim.converged().unwrap();
    assert!(
        matches!(sim.cluster(0).unwrap().role(), Role::Replica { master, .. } if master == sim.id(3))
    );
}

#[test]
fn no_failover_replicas_and_stale_replicas_do_not_stand() {
    let mut sim = shard_cluster(3, 3, 14);
    sim.set_no_failover(3, true);
    sim.crash(0);
    sim.run_for(6 * T).unwrap();
    assert!(!sim.cluster(3).unwrap().role().is_master());
    assert!(node(&sim, 1, 3).flags.has(Flags::NOFAILOVER));
}

#[test]
fn a_replica_migrates_to_a_master_left_without_any() {
    let mut sim = shard_cluster(3, 4, 15);
    // Master 0 has replicas 3 and 6; master 1 only 4.
    let follows = |sim: &Sim, r: usize| match sim.cluster(r).unwrap().role() {
        Role::Replica { master, .. } => master,
        Role::Master => sim.id(r),
    };
    assert_eq!((follows(&sim, 3), follows(&sim, 6)), (sim.id(0), sim.id(0)));
    sim.crash(4);
    sim.run_for(T + 4_000).unwrap();
    assert_eq!(
        (follows(&sim, 3), follows(&sim, 6)),
        (sim.id(0), sim.id(0)),
        "within the delay"
    );
    sim.run_for(3_000).unwrap();
    let moved: Vec<usize> = [3, 6]
        .into_iter()
        .filter(|&r| follows(&sim, r) == sim.id(1))
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "one of master 0's replicas moved to master 1"
    );
    let smaller = if sim.id(3) < sim.id(6) { 3 } else { 6 };
    assert_eq!(moved, [smaller]);
    // With the migration off, nobody moves.
    let mut sim = shard_cluster(3, 4, 16);
    for r in [3, 6] {
        sim.with(r, |c, _| {
            let settings = Settings {
                allow_replica_migration: false,
                ..c.settings()
            };
            c.set_settings(settings);
        });
    }
    sim.crash(4);
    sim.run_for(T + 8_000).unwrap();
    assert_eq!((follows(&sim, 3), follows(&sim, 6)), (sim.id(0), sim.id(0)));
}
