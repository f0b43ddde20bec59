//! Replicas and failover between real processes on loopback: `CLUSTER
//! REPLICATE` seen by every node, a killed master replaced by its replica and
//! back as the replica of its successor, `CLUSTER FAILOVER` in its three
//! forms, routing on a replica (`-MOVED`, `READONLY`), and `redis-cli
//! --cluster` building and growing clusters with replicas. The data itself
//! does not move yet (the replication data plane comes separately): these
//! check the cluster's decisions.

use std::process::Command;
use std::time::{Duration, Instant};

use ringkv_tests::cluster::{count_replicas, output_text, run_limited, TestCluster};
use ringkv_tests::replication::{info, signal};
use ringkv_tests::{expect_err, have_program, query as q};

/// `cluster-node-timeout` of these tests, in ms.
const TIMEOUT_MS: u64 = 2000;
const NODE_TIMEOUT: &[&str] = &["--cluster-node-timeout", "2000"];

/// Whether node `i` says it is a master (its `myself` line).
fn is_master(cluster: &TestCluster, i: usize) -> bool {
    cluster.nodes(i).is_some_and(|text| {
        text.lines()
            .find(|l| l.contains("myself"))
            .and_then(|l| l.split(' ').nth(2))
            .is_some_and(|flags| flags.split(',').any(|f| f == "master"))
    })
}

/// Every running node serves slot `slot` from node `owner` and is `ok`.
fn all_serve(cluster: &TestCluster, owner: &str, key: &str) -> bool {
    cluster.running().into_iter().all(|i| {
        let ok = cluster.info_field(i, "cluster_state").as_deref() == Some("ok");
        let owns = cluster.nodes(i).is_some_and(|text| {
            let slot = key_slot_of(cluster, key);
            text.lines()
                .find(|l| l.starts_with(owner))
                .is_some_and(|l| serves(l, slot))
        });
        ok && owns
    })
}

fn key_slot_of(cluster: &TestCluster, key: &str) -> u16 {
    let i = cluster.running()[0];
    let slot: i64 = q(&mut cluster.connect(i), &["CLUSTER", "KEYSLOT", key]);
    slot as u16
}

/// Whether a `CLUSTER NODES` line lists `slot`.
fn serves(line: &str, slot: u16) -> bool {
    line.split(' ')
        .skip(8)
        .any(|range| match range.split_once('-') {
            Some((a, b)) => {
                a.parse().is_ok_and(|a: u16| a <= slot) && b.parse().is_ok_and(|b: u16| slot <= b)
            }
            None => range.parse() == Ok(slot),
        })
}

#[test]
fn replicas_are_slaves_everywhere_take_over_a_killed_master_and_switch_roles_on_demand() {
    let mut cluster = TestCluster::with_replicas("failover", 3, 1, NODE_TIMEOUT);
    let ids: Vec<String> = (0..6).map(|i| cluster.id(i)).collect();
    // Every node lists node 3 as node 0's replica, in NODES and REPLICAS.
    for i in 0..6 {
        assert_eq!(
            cluster.master_of(i, &ids[3]).as_deref(),
            Some(ids[0].as_str())
        );
        let replicas: Vec<String> = q(&mut cluster.connect(i), &["CLUSTER", "REPLICAS", &ids[0]]);
        assert_eq!(replicas.len(), 1);
        assert!(replicas[0].starts_with(&ids[3]), "{replicas:?}");
    }
    let mut master = cluster.connect(0);
    assert_eq!(
        expect_err(&mut master, &["CLUSTER", "FAILOVER"]),
        "ERR You should send CLUSTER FAILOVER to a replica"
    );
    assert_eq!(
        expect_err(&mut master, &["CLUSTER", "REPLICATE", &ids[1]]),
        "ERR To set a master the node must be empty and without assigned slots."
    );
    assert_eq!(
        expect_err(&mut cluster.connect(3), &["CLUSTER", "REPLICAS", &ids[3]]),
        "ERR The specified node is not a master"
    );
    // A replica redirects keys to its master; READONLY lets reads run there.
    let key = cluster.key_of(0);
    let mut replica = cluster.connect(3);
    let moved = expect_err(&mut replica, &["GET", &key]);
    assert!(
        moved.starts_with("MOVED ") && moved.ends_with(&format!(":{}", cluster.ports[0])),
        "{moved}"
    );
    let _: () = q(&mut replica, &["READONLY"]);
    let none: Option<String> = q(&mut replica, &["GET", &key]);
    assert_eq!(none, None);
    assert!(expect_err(&mut replica, &["SET", &key, "v"]).starts_with("MOVED "));
    let _: () = q(&mut replica, &["READWRITE"]);
    assert!(expect_err(&mut replica, &["GET", &key]).starts_with("MOVED "));

    // kill -9 of master 0: its replica takes its slots.
    let killed = Instant::now();
    cluster.kill(0);
    assert!(
        cluster.wait(Duration::from_secs(15), |c| is_master(c, 3)
            && all_serve(c, &ids[3], &key)),
        "the replica did not take over"
    );
    let took = killed.elapsed();
    eprintln!("failover after kill -9: {took:?}");
    assert!(
        took <= Duration::from_millis(2 * TIMEOUT_MS + 1_500),
        "took {took:?}, over 2 x node-timeout + 1.5 s"
    );
    // The old master comes back as the replica of its successor.
    cluster.restart(0);
    assert!(
        cluster.wait(Duration::from_secs(15), |c| {
            (0..6).all(|i| c.master_of(i, &ids[0]).as_deref() == Some(ids[3].as_str()))
        }),
        "the old master did not come back as a replica"
    );
    assert!(cluster.wait(Duration::from_secs(10), |c| c.all_ok()));

    // CLUSTER FAILOVER: the old master takes its slots back. A master votes
    // for a replica of one master at most once per 2 x node-timeout (F4),
    // as in Redis: each election here waits that long after the last.
    let two_timeouts = Duration::from_millis(2 * TIMEOUT_MS + 200);
    std::thread::sleep(two_timeouts.saturating_sub(killed.elapsed()));
    let _: () = q(&mut cluster.connect(0), &["CLUSTER", "FAILOVER"]);
    let manual = Instant::now();
    assert!(
        cluster.wait(Duration::from_secs(10), |c| is_master(c, 0)
            && all_serve(c, &ids[0], &key)),
        "the manual failover did not happen"
    );
    assert!(cluster.wait(Duration::from_secs(10), |c| {
        (0..6).all(|i| c.master_of(i, &ids[3]).as_deref() == Some(ids[0].as_str()))
    }));
    // FORCE, then TAKEOVER.
    std::thread::sleep(two_timeouts.saturating_sub(manual.elapsed()));
    let _: () = q(&mut cluster.connect(3), &["CLUSTER", "FAILOVER", "FORCE"]);
    assert!(
        cluster.wait(Duration::from_secs(10), |c| is_master(c, 3)
            && all_serve(c, &ids[3], &key)),
        "FORCE did not switch the roles"
    );
    assert!(cluster.wait(Duration::from_secs(10), |c| c
        .master_of(0, &ids[0])
        .is_some()));
    let _: () = q(
        &mut cluster.connect(0),
        &["CLUSTER", "FAILOVER", "TAKEOVER"],
    );
    assert!(
        cluster.wait(Duration::from_secs(10), |c| is_master(c, 0)
            && all_serve(c, &ids[0], &key)),
        "TAKEOVER did not switch the roles"
    );
    assert_eq!(
        expect_err(&mut cluster.connect(3), &["CLUSTER", "FAILOVER", "NOW"]),
        "ERR syntax error"
    );
}

#[test]
fn redis_cli_creates_three_masters_with_a_replica_each_and_adds_replicas() {
    if !have_program("redis-cli") {
        eprintln!("redis-cli not installed; skipped");
        return;
    }
    let cluster = TestCluster::fresh("cli-replicas", 9, NODE_TIMEOUT);
    let addrs: Vec<String> = cluster
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let created = run_limited(
        Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs[..6])
            .args(["--cluster-replicas", "1", "--cluster-yes"]),
        Duration::from_secs(60),
    );
    let out = output_text(&created);
    assert!(
        out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(cluster.wait(Duration::from_secs(10), |c| {
        (0..6).all(|i| c.nodes(i).is_some_and(|t| count_replicas(&t) == 3))
    }));
    let checked = run_limited(
        Command::new("redis-cli").args(["--cluster", "check", &addrs[0]]),
        Duration::from_secs(30),
    );
    let out = output_text(&checked);
    assert!(checked.status.success(), "{out}");
    assert_eq!(out.matches("1 additional replica(s)").count(), 3, "{out}");
    // A new node as the replica of the master with the fewest (a tie: any).
    let added = run_limited(
        Command::new("redis-cli").args([
            "--cluster",
            "add-node",
            &addrs[6],
            &addrs[0],
            "--cluster-slave",
        ]),
        Duration::from_secs(60),
    );
    let out = output_text(&added);
    assert!(out.contains("[OK] New node added correctly."), "{out}");
    let first = cluster.id(6);
    assert!(cluster.wait(Duration::from_secs(10), |c| c
        .master_of(0, &first)
        .is_some()));
    let chosen = cluster.master_of(0, &first).expect("a replica");
    // And one as the replica of a chosen master, another one.
    let master = (0..6)
        .map(|i| cluster.id(i))
        .find(|id| *id != chosen && cluster.master_of(0, id).is_none())
        .expect("another master");
    let added = run_limited(
        Command::new("redis-cli").args([
            "--cluster",
            "add-node",
            &addrs[7],
            &addrs[0],
            "--cluster-slave",
            "--cluster-master-id",
            &master,
        ]),
        Duration::from_secs(60),
    );
    let out = output_text(&added);
    assert!(out.contains("[OK] New node added correctly."), "{out}");
    let new = cluster.id(7);
    assert!(cluster.wait(Duration::from_secs(10), |c| {
        (0..8).all(|i| c.master_of(i, &new).as_deref() == Some(master.as_str()))
    }));
    let checked = run_limited(
        Command::new("redis-cli").args(["--cluster", "check", &addrs[7]]),
        Duration::from_secs(30),
    );
    let out = output_text(&checked);
    assert!(checked.status.success(), "{out}");
    assert_eq!(out.matches("2 additional replica(s)").count(), 2, "{out}");
    assert!(cluster.wait(Duration::from_secs(10), |c| {
        (0..8).all(|i| c.info_field(i, "cluster_state").as_deref() == Some("ok"))
    }));
}

/// Whether node `i` is a replica whose link is up and whose sync is done.
fn synced(cluster: &TestCluster, i: usize) -> bool {
    let Some(server) = cluster.servers[i].as_ref() else {
        return false;
    };
    let Ok(text) = redis::Client::open(server.url())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut con| {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut con)
        })
    else {
        return false;
    };
    text.contains("master_link_status:up") && text.contains("master_sync_in_progress:0")
}

/// Writes `count` keys `{tag}:prefix:n` on node `i`, each acknowledged by a
/// replica (`WAIT 1`) in batches.
fn write_acknowledged(cluster: &TestCluster, i: usize, tag: &str, prefix: &str, count: usize) {
    let mut con = cluster.connect(i);
    for batch in (0..count).collect::<Vec<_>>().chunks(100) {
        for n in batch {
            let _: () = q(
                &mut con,
                &["SET", &format!("{{{tag}}}:{prefix}:{n}"), &n.to_string()],
            );
        }
        assert_eq!(
            q::<i64>(&mut con, &["WAIT", "1", "2000"]),
            1,
            "a replica acknowledged"
        );
    }
}

/// The keys `{tag}:prefix:0..count` node `i` is missing.
fn missing(cluster: &TestCluster, i: usize, tag: &str, prefix: &str, count: usize) -> usize {
    let mut con = cluster.connect(i);
    (0..count)
        .filter(|n| {
            let key = format!("{{{tag}}}:{prefix}:{n}");
            q::<Option<String>>(&mut con, &["GET", &key]) != Some(n.to_string())
        })
        .count()
}

#[test]
fn acknowledged_writes_survive_a_killed_master_and_a_manual_failover_under_load() {
    let mut cluster = TestCluster::with_replicas("failover-data", 3, 1, NODE_TIMEOUT);
    assert!(cluster.wait(Duration::from_secs(20), |c| synced(c, 3)));
    let tag = cluster.key_of(0);
    let ids: Vec<String> = (0..6).map(|i| cluster.id(i)).collect();
    write_acknowledged(&cluster, 0, &tag, "before-kill", 1000);
    let killed = Instant::now();
    cluster.kill(0);
    assert!(
        cluster.wait(Duration::from_secs(15), |c| is_master(c, 3)
            && all_serve(c, &ids[3], &tag)),
        "the replica did not take over"
    );
    eprintln!("kill -9 to the replica serving: {:?}", killed.elapsed());
    assert_eq!(
        missing(&cluster, 3, &tag, "before-kill", 1000),
        0,
        "acknowledged writes lost"
    );
    let _: () = q(
        &mut cluster.connect(3),
        &["SET", &format!("{{{tag}}}:after"), "1"],
    );

    // The old master comes back as a replica and syncs; then a manual
    // failover under a write load: every write answered OK is kept.
    cluster.restart(0);
    assert!(cluster.wait(Duration::from_secs(20), |c| synced(c, 0)));
    let two_timeouts = Duration::from_millis(2 * TIMEOUT_MS + 200);
    std::thread::sleep(two_timeouts.saturating_sub(killed.elapsed()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, mut con, tag) = (stop.clone(), cluster.connect(3), tag.clone());
        std::thread::spawn(move || {
            let mut acknowledged = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("{{{tag}}}:load:{acknowledged}");
                match redis::cmd("SET")
                    .arg(&key)
                    .arg(acknowledged)
                    .query::<()>(&mut con)
                {
                    Ok(()) => acknowledged += 1,
                    // Redirected: the failover happened.
                    Err(_) => break,
                }
            }
            acknowledged
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let _: () = q(&mut cluster.connect(0), &["CLUSTER", "FAILOVER"]);
    let manual = Instant::now();
    assert!(
        cluster.wait(Duration::from_secs(10), |c| is_master(c, 0)),
        "the manual failover did not happen"
    );
    let took = manual.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = writer.join().unwrap();
    eprintln!("manual failover under load: {took:?}, {acknowledged} writes acknowledged");
    assert!(acknowledged > 0);
    assert_eq!(
        missing(&cluster, 0, &tag, "load", acknowledged),
        0,
        "acknowledged writes lost"
    );
    assert_eq!(missing(&cluster, 0, &tag, "before-kill", 1000), 0);
}

/// `LOCK.ACQUIRE {tag}name me 30000`: the token.
fn acquire(con: &mut redis::Connection, tag: &str, name: &str) -> redis::RedisResult<i64> {
    redis::cmd("LOCK.ACQUIRE")
        .arg(format!("{{{tag}}}{name}"))
        .arg("me")
        .arg(30_000)
        .query(con)
}

/// The process id of node `i`.
fn pid(cluster: &mut TestCluster, i: usize) -> u32 {
    cluster.servers[i].as_mut().expect("running").child().id()
}

#[test]
fn a_replica_that_let_a_lock_change_time_out_is_never_elected() {
    let mut cluster = TestCluster::with_replicas("in-sync", 3, 1, NODE_TIMEOUT);
    assert!(cluster.wait(Duration::from_secs(20), |c| synced(c, 3)));
    let tag = cluster.key_of(0);
    let in_sync = |c: &TestCluster, n: &str| {
        info(&mut c.connect(0), "replication", "lock_in_sync_replicas") == n
    };
    assert!(cluster.wait(Duration::from_secs(10), |c| in_sync(c, "1")));
    let mut master = cluster.connect(0);
    let lock = |con: &mut redis::Connection, name: &str| acquire(con, &tag, name);
    // Acknowledged by the replica (once the master's round trips with the
    // other masters are fresh: it just gained a replica, L3).
    assert!(
        cluster.wait(Duration::from_secs(5), |c| lock(&mut c.connect(0), "a")
            .is_ok())
    );
    // The replica stops: the next lock change is undone, and the master
    // drops it from its in-sync set once a majority of masters stored that.
    signal("STOP", pid(&mut cluster, 3));
    let err = lock(&mut master, "b").unwrap_err();
    assert_eq!(err.code(), Some("NOREPLICAS"), "{err}");
    assert!(
        cluster.wait(Duration::from_secs(10), |c| in_sync(c, "0")),
        "the smaller set was not put in force"
    );
    // The master dies; the replica, back, must not take its slots: it may
    // lack an acknowledged lock change (L2, F4).
    cluster.kill(0);
    signal("CONT", pid(&mut cluster, 3));
    std::thread::sleep(Duration::from_millis(3 * TIMEOUT_MS + 2_000));
    assert!(
        !is_master(&cluster, 3),
        "a replica outside the set was elected"
    );
    assert_eq!(
        info(&mut cluster.connect(3), "replication", "role"),
        "slave"
    );
}

#[test]
fn a_master_cut_off_from_the_majority_stops_granting_locks_before_a_successor_can_exist() {
    let mut args = NODE_TIMEOUT.to_vec();
    args.extend(["--enable-debug-command", "yes"]);
    let cluster = TestCluster::with_replicas("cut-locks", 3, 1, &args);
    assert!(cluster.wait(Duration::from_secs(20), |c| synced(c, 3)));
    let tag = cluster.key_of(0);
    let mut master = cluster.connect(0);
    assert!(cluster.wait(Duration::from_secs(10), |c| info(
        &mut c.connect(0),
        "replication",
        "lock_in_sync_replicas"
    ) == "1"));
    let acquire = |con: &mut redis::Connection, name: &str| acquire(con, &tag, name);
    // A master that just gained its replica grants once its round trips
    // with the other masters are fresh (L3).
    assert!(cluster.wait(Duration::from_secs(5), |c| acquire(
        &mut c.connect(0),
        "held"
    )
    .is_ok()));
    // Cut off from every other node's bus; its replica stream still flows.
    cluster.bus_drop(0, "both");
    let cut_at = Instant::now();
    let refused = loop {
        match acquire(&mut master, "new") {
            Err(e) if e.code() == Some("CLUSTERDOWN") => break cut_at.elapsed(),
            Err(e) => panic!("{e}"),
            Ok(_) => {
                let _: i64 = q(
                    &mut master,
                    &["LOCK.RELEASE", &format!("{{{tag}}}new"), "me"],
                );
            }
        }
        assert!(cut_at.elapsed() < Duration::from_secs(10), "never refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("lock grants refused {refused:?} after the cut");
    // L3: within half the node timeout (plus a tick), long before an election
    // can end (T + 500 ms at the earliest).
    assert!(
        refused <= Duration::from_millis(TIMEOUT_MS / 2 + 400),
        "grants refused only after {refused:?}"
    );
    let err = redis::cmd("LOCK.EXTEND")
        .arg(format!("{{{tag}}}held"))
        .arg("me")
        .arg(30_000)
        .query::<i64>(&mut master)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("has not heard a majority of masters"),
        "{err}"
    );
}
