use super::*;
use crate::cluster::machine::{Settings, TICK};
use crate::cluster::sim::{Network, Sim};

const T: Millis = 1_000;

/// Five masters with the slots, and two more nodes replicating master 0.
fn cluster(seed: u64) -> Sim {
    let settings = Settings {
        node_timeout: T,
        ..Settings::DEFAULT
    };
    Sim::with_replicas(5, &[0, 0], settings, Network::default(), seed).unwrap()
}

fn propose(sim: &mut Sim, members: &[usize]) -> u64 {
    let ids: Vec<Id> = members.iter().map(|&i| sim.id(i)).collect();
    let mut version = 0;
    sim.with(0, |c, now| version = c.propose_in_sync(ids, now));
    version
}

fn confirmed(sim: &Sim, version: u64) -> bool {
    sim.cluster(0).unwrap().in_sync_confirmed(version)
}

/// The set node `observer` holds for master 0.
fn held(sim: &Sim, observer: usize) -> Option<InSync> {
    let c = sim.cluster(observer).unwrap();
    c.node(sim.id(0)).unwrap().in_sync.clone()
}

#[test]
fn a_grown_set_is_in_force_at_once_and_a_shrunk_one_once_a_majority_stored_it() {
    let mut sim = cluster(1);
    let grown = propose(&mut sim, &[5, 6]);
    assert!(confirmed(&sim, grown));
    // The same set again is the same version.
    assert_eq!(propose(&mut sim, &[6, 5]), grown);
    sim.run_for(100).unwrap();
    for i in 1..7 {
        let set = held(&sim, i).expect("heard");
        assert_eq!(set.version, grown);
    }
    // Masters 3 and 4 cut off: with 0, 1 and 2 a majority of five remains.
    for m in [3, 4] {
        sim.set_cut(0, m, true);
    }
    let shrunk = propose(&mut sim, &[5]);
    assert!(shrunk > grown && !confirmed(&sim, shrunk));
    sim.run_for(100).unwrap();
    assert!(confirmed(&sim, shrunk), "three of five masters stored it");
    assert_eq!(held(&sim, 3).unwrap().version, grown);
    // Master 2 cut off too: a further shrink cannot be confirmed.
    sim.set_cut(0, 2, true);
    let empty = propose(&mut sim, &[]);
    sim.run_for(500).unwrap();
    assert!(!confirmed(&sim, empty));
    // Healed: it is sent again and confirmed.
    for m in [2, 3, 4] {
        sim.set_cut(0, m, false);
    }
    sim.run_for(3 * T).unwrap();
    assert!(confirmed(&sim, empty));
    for i in 1..7 {
        assert_eq!(
            held(&sim, i).unwrap(),
            InSync {
                version: empty,
                members: vec![]
            }
        );
    }
}

#[test]
fn a_voter_keeps_only_the_newest_set_and_across_a_restart() {
    let mut sim = cluster(2);
    let first = propose(&mut sim, &[5]);
    sim.run_for(100).unwrap();
    let second = propose(&mut sim, &[5, 6]);
    sim.run_for(100).unwrap();
    assert!(second > first);
    // An old set arriving late changes nothing.
    let (m0, r5) = (sim.id(0), sim.id(5));
    sim.with(2, |c, now| {
        let old = InSync {
            version: first,
            members: vec![r5],
        };
        c.in_sync_received(Link::From(1), m0, old, now);
    });
    assert_eq!(held(&sim, 2).unwrap().version, second);
    sim.crash(2);
    sim.restart(2).unwrap();
    let mut both = vec![sim.id(5), sim.id(6)];
    both.sort();
    assert_eq!(held(&sim, 2).unwrap().members, both);
    // The master's own set too: its next version is newer.
    sim.crash(0);
    sim.restart(0).unwrap();
    assert!(propose(&mut sim, &[6]) > second);
}

#[test]
fn a_master_hears_a_majority_within_a_quarter_timeout_until_cut_off() {
    let mut sim = cluster(3);
    for _ in 0..20 {
        sim.run_for(T / 10).unwrap();
        let c = sim.cluster(0).unwrap();
        let heard = c.heard_majority().expect("a master");
        assert!(
            sim.now() - heard <= T / 4 + 2 * TICK,
            "heard at {heard}, now {}",
            sim.now()
        );
    }
    assert_eq!(sim.cluster(5).unwrap().heard_majority(), None, "a replica");
    sim.isolate(0, true);
    let cut = sim.now();
    sim.run_for(T).unwrap();
    let heard = sim.cluster(0).unwrap().heard_majority().unwrap();
    assert!(heard <= cut, "heard at {heard}, cut off at {cut}");
}
