use super::*;
use crate::cluster::machine::Settings;
use crate::cluster::sim::{Network, Sim};

const T: Millis = 1_000;

/// Three masters with the slots, and a replica of master 0; converged.
fn cluster(seed: u64) -> Sim {
    let settings = Settings {
        node_timeout: T,
        ..Settings::DEFAULT
    };
    Sim::with_replicas(3, &[0], settings, Network::default(), seed).unwrap()
}

/// A slot node `i` owns.
fn slot_of(sim: &Sim, i: usize) -> u16 {
    let me = sim.cluster(i).unwrap();
    me.node(me.myself()).unwrap().slots.iter().next().unwrap()
}

#[test]
fn setslot_refuses_as_redis_does() {
    let mut sim = cluster(1);
    let (ids, mine, theirs) = (
        (0..4).map(|i| sim.id(i)).collect::<Vec<_>>(),
        slot_of(&sim, 0),
        slot_of(&sim, 1),
    );
    let set = |sim: &mut Sim, i: usize, slot: u16, action: SetSlot| {
        let mut result = Ok(());
        sim.with(i, |c, now| result = c.set_slot(slot, action, 0, now));
        result
    };
    assert_eq!(
        set(&mut sim, 0, theirs, SetSlot::Migrating(ids[1])),
        Err(AdminError::NotOwner(theirs))
    );
    assert_eq!(
        set(&mut sim, 0, mine, SetSlot::Importing(ids[1])),
        Err(AdminError::AlreadyOwner(mine))
    );
    assert_eq!(
        set(&mut sim, 0, mine, SetSlot::Migrating(ids[3])),
        Err(AdminError::TargetNotMaster)
    );
    let stranger = Id([7; 20]);
    assert_eq!(
        set(&mut sim, 0, mine, SetSlot::Migrating(stranger)),
        Err(AdminError::UnknownSetSlotNode(stranger.to_string()))
    );
    assert_eq!(
        set(&mut sim, 3, mine, SetSlot::Stable),
        Err(AdminError::SetSlotOnReplica)
    );
    let mut result = Ok(());
    sim.with(0, |c, now| {
        result = c.set_slot(mine, SetSlot::Node(ids[1]), 3, now)
    });
    assert_eq!(result, Err(AdminError::StillHoldsKeys(mine)));
}

#[test]
fn a_slot_moved_by_setslot_is_claimed_by_its_importer_under_a_new_epoch_and_spreads() {
    let mut sim = cluster(2);
    let epoch = |sim: &Sim, i: usize| {
        sim.cluster(i)
            .unwrap()
            .node(sim.id(i))
            .unwrap()
            .config_epoch
    };
    // The importer is the master with the lowest config epoch: it must bump.
    let t = if epoch(&sim, 1) < epoch(&sim, 2) {
        1
    } else {
        2
    };
    let other = 3 - t;
    let (source, target) = (sim.id(0), sim.id(t));
    let slot = slot_of(&sim, 0);
    sim.with(t, |c, now| {
        c.set_slot(slot, SetSlot::Importing(source), 0, now)
            .unwrap()
    });
    sim.with(0, |c, now| {
        c.set_slot(slot, SetSlot::Migrating(target), 0, now)
            .unwrap()
    });
    assert_eq!(sim.cluster(0).unwrap().migrating(slot), Some(target));
    assert_eq!(sim.cluster(t).unwrap().importing(slot), Some(source));
    // Shown on the `myself` line, and kept across a restart.
    let conf = sim.cluster(0).unwrap().durable();
    let me = conf.nodes.iter().find(|l| l.flags.myself).unwrap();
    assert_eq!(me.migrating, vec![(slot, target.to_string())]);
    let addr = sim.cluster(0).unwrap().node(source).unwrap().addr;
    let restored = Cluster::restore(
        sim.cluster(0).unwrap().settings(),
        &conf,
        addr,
        5,
        sim.now(),
    );
    assert_eq!(restored.unwrap().migrating(slot), Some(target));
    let epochs = |sim: &Sim| {
        (0..4)
            .map(|i| {
                sim.cluster(i)
                    .unwrap()
                    .node(sim.id(i))
                    .unwrap()
                    .config_epoch
            })
            .collect::<Vec<_>>()
    };
    // The importer takes it under a config epoch above every other master's
    // (its own, if it was the single highest already); every node follows.
    assert!(epoch(&sim, t) < epoch(&sim, 0).max(epoch(&sim, other)));
    sim.with(t, |c, now| {
        c.set_slot(slot, SetSlot::Node(target), 0, now).unwrap()
    });
    assert_eq!(sim.cluster(t).unwrap().importing(slot), None);
    let after = epochs(&sim);
    assert!([0, other].iter().all(|&i| after[t] > after[i]), "{after:?}");
    sim.run_for(2 * T).unwrap();
    for i in 0..4 {
        assert_eq!(
            sim.cluster(i).unwrap().owner(slot),
            Some(target),
            "node {i}"
        );
    }
    // The source, now without the slot, clears its state.
    sim.with(0, |c, now| {
        c.set_slot(slot, SetSlot::Node(target), 0, now).unwrap()
    });
    assert_eq!(sim.cluster(0).unwrap().migrating(slot), None);
    sim.run_for(2 * T).unwrap();
    sim.converged().unwrap();
}
