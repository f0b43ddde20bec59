//! Slot migration end to end (docs/CLUSTER.md, M1-M13): Redis's resharding
//! commands against real processes.

use std::time::Duration;

use ringkv_tests::cluster::TestCluster;
use ringkv_tests::{expect_err, query as q};

const NODE_TIMEOUT: &[&str] = &["--cluster-node-timeout", "2000"];

/// The slot of `key`.
fn slot_of(cluster: &TestCluster, key: &str) -> u16 {
    q::<i64>(&mut cluster.connect(0), &["CLUSTER", "KEYSLOT", key]) as u16
}

/// Node `observer`'s `CLUSTER NODES` line for node `i`.
fn line(cluster: &TestCluster, observer: usize, i: usize) -> String {
    let id = cluster.id(i);
    cluster
        .nodes(observer)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_default()
        .to_string()
}

/// Opens `slot` for a move from node 0 to node 1 (`IMPORTING` on the
/// target, then `MIGRATING` on the source).
fn open(cluster: &TestCluster, slot: &str) {
    let (source, target) = (cluster.id(0), cluster.id(1));
    let _: () = q(
        &mut cluster.connect(1),
        &["CLUSTER", "SETSLOT", slot, "IMPORTING", &source],
    );
    let _: () = q(
        &mut cluster.connect(0),
        &["CLUSTER", "SETSLOT", slot, "MIGRATING", &target],
    );
}

#[test]
fn setslot_opens_a_slot_on_both_sides_and_node_hands_it_over_everywhere() {
    let cluster = TestCluster::start("setslot", 3, NODE_TIMEOUT);
    let (source, target) = (cluster.id(0), cluster.id(1));
    let key = cluster.key_of(0);
    let slot = slot_of(&cluster, &key).to_string();
    let (mut src, mut dst) = (cluster.connect(0), cluster.connect(1));
    // Redis's refusals.
    assert_eq!(
        expect_err(
            &mut dst,
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &source]
        ),
        format!("ERR I'm not the owner of hash slot {slot}")
    );
    assert_eq!(
        expect_err(
            &mut src,
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &target]
        ),
        format!("ERR I'm already the owner of hash slot {slot}")
    );
    assert_eq!(
        expect_err(
            &mut src,
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", "nobody"]
        ),
        "ERR I don't know about node nobody"
    );
    assert_eq!(
        expect_err(&mut src, &["CLUSTER", "SETSLOT", "16384", "STABLE"]),
        "ERR Invalid or out of range slot"
    );
    assert_eq!(
        expect_err(&mut src, &["CLUSTER", "SETSLOT", &slot, "SIDEWAYS"]),
        "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"
    );
    let _: () = q(&mut src, &["SET", &key, "v"]);
    // Open on both sides: shown on each node's own line, as Redis.
    open(&cluster, &slot);
    assert!(line(&cluster, 0, 0).contains(&format!("[{slot}->-{target}]")));
    assert!(line(&cluster, 1, 1).contains(&format!("[{slot}-<-{source}]")));
    assert!(!line(&cluster, 2, 0).contains("->-"), "not gossiped");
    // The source will not give the slot away while it holds a key of it.
    assert_eq!(
        expect_err(&mut src, &["CLUSTER", "SETSLOT", &slot, "NODE", &target]),
        format!(
            "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
        )
    );
    let _: i64 = q(&mut src, &["DEL", &key]);
    // The target takes it under a config epoch of its own; every node
    // follows its claim.
    let _: () = q(&mut dst, &["CLUSTER", "SETSLOT", &slot, "NODE", &target]);
    assert!(!line(&cluster, 1, 1).contains("-<-"));
    let _: () = q(&mut src, &["CLUSTER", "SETSLOT", &slot, "NODE", &target]);
    assert!(!line(&cluster, 0, 0).contains("->-"));
    let epoch = |l: &str| l.split(' ').nth(6).and_then(|e| e.parse::<u64>().ok());
    let target_epoch = epoch(&line(&cluster, 1, 1)).unwrap();
    assert!(
        (0..3)
            .filter(|&i| i != 1)
            .all(|i| epoch(&line(&cluster, i, i)).unwrap() < target_epoch),
        "the target's epoch is the single highest"
    );
    assert!(
        cluster.wait(Duration::from_secs(10), |c| [0, 2].iter().all(|&i| {
            let reply = redis::cmd("GET")
                .arg(&key)
                .query::<Option<String>>(&mut c.connect(i));
            reply.is_err_and(|e| e.to_string().contains(&format!(":{}", c.ports[1])))
        })),
        "not every node redirects the slot to its new owner"
    );
    let none: Option<String> = q(&mut cluster.connect(1), &["GET", &key]);
    assert_eq!(none, None);
}

#[test]
fn a_migrating_slot_serves_the_keys_it_still_has_and_asks_for_the_others() {
    let cluster = TestCluster::start("ask", 3, NODE_TIMEOUT);
    let tag = cluster.key_of(0);
    let slot = slot_of(&cluster, &tag).to_string();
    let (here, gone) = (format!("{{{tag}}}here"), format!("{{{tag}}}gone"));
    let (mut src, mut dst) = (cluster.connect(0), cluster.connect(1));
    let _: () = q(&mut src, &["SET", &here, "v"]);
    open(&cluster, &slot);
    let ask = format!("ASK {slot} 127.0.0.1:{}", cluster.ports[1]);
    let moved = format!("MOVED {slot} 127.0.0.1:{}", cluster.ports[0]);
    // The source: its keys run, the others are asked of the target (a write
    // that would create one too), a mix is retried.
    assert_eq!(q::<String>(&mut src, &["GET", &here]), "v");
    assert_eq!(expect_err(&mut src, &["GET", &gone]), ask);
    assert_eq!(expect_err(&mut src, &["SET", &gone, "w"]), ask);
    assert_eq!(
        expect_err(&mut src, &["MGET", &here, &gone]),
        "TRYAGAIN Multiple keys request during rehashing of slot"
    );
    // The target: only right after ASKING, for one command.
    assert_eq!(expect_err(&mut dst, &["GET", &gone]), moved);
    let _: () = q(&mut dst, &["ASKING"]);
    let _: () = q(&mut dst, &["SET", &gone, "w"]);
    assert_eq!(expect_err(&mut dst, &["GET", &gone]), moved);
    let _: () = q(&mut dst, &["ASKING"]);
    assert_eq!(q::<String>(&mut dst, &["GET", &gone]), "w");
    let _: () = q(&mut dst, &["ASKING"]);
    assert_eq!(
        expect_err(&mut dst, &["MGET", &gone, &here]),
        "TRYAGAIN Multiple keys request during rehashing of slot"
    );
    // RESTORE-ASKING needs no ASKING (MIGRATE's way in, M4).
    let dump: Vec<u8> = redis::cmd("DUMP").arg(&here).query(&mut src).unwrap();
    let _: () = redis::cmd("RESTORE-ASKING")
        .arg(&here)
        .arg(0)
        .arg(dump)
        .query(&mut dst)
        .unwrap();
    let _: () = q(&mut dst, &["ASKING"]);
    assert_eq!(q::<String>(&mut dst, &["GET", &here]), "v");
    // Closed again: the slot is the source's as before.
    let _: () = q(&mut src, &["CLUSTER", "SETSLOT", &slot, "STABLE"]);
    let _: () = q(&mut dst, &["CLUSTER", "SETSLOT", &slot, "STABLE"]);
    let none: Option<String> = q(&mut src, &["GET", &gone]);
    assert_eq!(none, None);
    let _: () = q(&mut dst, &["ASKING"]);
    assert_eq!(expect_err(&mut dst, &["GET", &gone]), moved);
}
