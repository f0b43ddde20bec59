//! The cluster bus between real processes on loopback: `redis-cli --cluster`
//! building and checking a cluster of fresh nodes, gossip spreading a new
//! member, failure detection of a killed master and its rejoin, no false
//! suspicion under full client load, a cut-off master refusing writes, and
//! PUBLISH reaching subscribers on other nodes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringkv_tests::cluster::{output_text as text, run_limited as run, TestCluster};
use ringkv_tests::{error_text, have_program, query as q};

/// `cluster-node-timeout` of these tests, in ms.
const TIMEOUT_MS: u64 = 2000;
const NODE_TIMEOUT: &[&str] = &["--cluster-node-timeout", "2000"];

/// The flags node `id` has in `nodes` (a `CLUSTER NODES` reply).
fn flags_of(nodes: &str, id: &str) -> Option<String> {
    nodes
        .lines()
        .find(|l| l.starts_with(id))
        .and_then(|l| l.split(' ').nth(2))
        .map(String::from)
}

fn is_fail(flags: &str) -> bool {
    flags.split(',').any(|f| f == "fail")
}

#[test]
fn redis_cli_creates_checks_and_calls_a_cluster_of_six_fresh_nodes() {
    if !have_program("redis-cli") {
        eprintln!("redis-cli not installed; skipped");
        return;
    }
    let cluster = TestCluster::fresh("cli-create", 6, NODE_TIMEOUT);
    let addrs: Vec<String> = cluster
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let created = run(
        Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"]),
        Duration::from_secs(60),
    );
    let out = text(&created);
    assert!(created.status.success(), "{out}");
    assert!(
        out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    for addr in &addrs {
        let checked = run(
            Command::new("redis-cli").args(["--cluster", "check", addr]),
            Duration::from_secs(30),
        );
        let out = text(&checked);
        assert!(checked.status.success(), "{addr}: {out}");
        assert!(
            out.contains("[OK] All nodes agree about slots configuration."),
            "{out}"
        );
        assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    }
    // Every node reports the cluster up and all six masters.
    assert!(cluster.wait(Duration::from_secs(10), |c| c.all_ok() && c.all_know(6)));
    assert_eq!(cluster.info_field(3, "cluster_size").as_deref(), Some("6"));
    // redis-cli's data commands over the cluster.
    for i in 0..30 {
        let set = run(
            Command::new("redis-cli").args([
                "-c",
                "-p",
                &cluster.ports[i % 6].to_string(),
                "SET",
                &format!("user:{i}"),
                "v",
            ]),
            Duration::from_secs(10),
        );
        assert_eq!(String::from_utf8_lossy(&set.stdout).trim(), "OK");
    }
    let info = run(
        Command::new("redis-cli").args(["--cluster", "info", &addrs[2]]),
        Duration::from_secs(30),
    );
    let out = text(&info);
    assert!(out.contains("[OK] 30 keys in 6 masters."), "{out}");
    let call = run(
        Command::new("redis-cli").args(["--cluster", "call", &addrs[0], "DBSIZE"]),
        Duration::from_secs(30),
    );
    let out = text(&call);
    let sizes: u64 = out
        .lines()
        .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(sizes, 30, "{out}");
}

#[test]
fn a_node_met_into_a_six_node_cluster_is_listed_by_every_node_within_two_seconds() {
    let cluster = TestCluster::fresh("meet7", 7, NODE_TIMEOUT);
    let mut first = cluster.connect(0);
    for port in &cluster.ports[1..6] {
        let _: () = q(
            &mut first,
            &["CLUSTER", "MEET", "127.0.0.1", &port.to_string()],
        );
    }
    let six = |c: &TestCluster| {
        (0..6).all(|i| c.info_field(i, "cluster_known_nodes").as_deref() == Some("6"))
    };
    assert!(cluster.wait(Duration::from_secs(20), six));
    let _: i64 = q(&mut first, &["CLUSTER", "RING", "ASSIGN"]);
    let up =
        |c: &TestCluster| (0..6).all(|i| c.info_field(i, "cluster_state").as_deref() == Some("ok"));
    assert!(cluster.wait(Duration::from_secs(20), up));
    let newcomer = cluster.id(6);
    let started = Instant::now();
    let _: () = q(
        &mut cluster.connect(3),
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &cluster.ports[6].to_string(),
        ],
    );
    let everyone = cluster.wait(Duration::from_secs(10), |c| {
        (0..6).all(|i| c.nodes(i).is_some_and(|n| n.contains(&newcomer)))
            && c.info_field(6, "cluster_known_nodes").as_deref() == Some("7")
    });
    let took = started.elapsed();
    assert!(everyone, "the new node was not listed everywhere");
    assert!(
        took <= Duration::from_secs(2),
        "listed by all after {took:?}"
    );
    eprintln!("listed by all 7 nodes after {took:?}");
}

#[test]
fn a_killed_master_is_failed_by_every_survivor_and_rejoins_with_its_slots() {
    let mut cluster = TestCluster::start("kill9", 6, NODE_TIMEOUT);
    let victim = 5;
    let id = cluster.id(victim);
    let own_key = cluster.key_of(victim);
    let slots_before: String = cluster.nodes(0).expect("node 0 answers");
    let line_before = slots_before
        .lines()
        .find(|l| l.starts_with(&id))
        .map(|l| l.split(' ').skip(8).collect::<Vec<_>>().join(" "))
        .expect("victim listed");

    cluster.kill(victim);
    let killed = Instant::now();
    let failed = cluster.wait(Duration::from_secs(10), |c| {
        (0..5).all(|i| {
            c.nodes(i)
                .and_then(|n| flags_of(&n, &id))
                .is_some_and(|f| is_fail(&f))
        })
    });
    let took = killed.elapsed();
    assert!(failed, "the survivors did not fail the killed master");
    assert!(
        took <= Duration::from_millis(TIMEOUT_MS + 1500),
        "failed by all after {took:?}"
    );
    eprintln!("failed by every survivor after {took:?}");

    // Full coverage (the default): the cluster is down.
    let mut con = cluster.connect(0);
    let err = redis::cmd("GET")
        .arg(&own_key)
        .query::<Option<String>>(&mut con)
        .unwrap_err();
    assert_eq!(error_text(&err), "CLUSTERDOWN The cluster is down");
    // Without it, the other masters' slots are served, the dead one's redirect to it.
    for i in 0..5 {
        let _: () = q(
            &mut cluster.connect(i),
            &["CONFIG", "SET", "cluster-require-full-coverage", "no"],
        );
    }
    assert!(cluster.wait(Duration::from_secs(5), |c| c.all_ok()));
    let served = cluster.key_of(0);
    let _: () = q(&mut con, &["SET", &served, "v"]);
    let err = redis::cmd("GET")
        .arg(&own_key)
        .query::<Option<String>>(&mut con)
        .unwrap_err();
    assert!(
        error_text(&err).starts_with("MOVED "),
        "{}",
        error_text(&err)
    );
    for i in 0..5 {
        let _: () = q(
            &mut cluster.connect(i),
            &["CONFIG", "SET", "cluster-require-full-coverage", "yes"],
        );
    }
    assert!(cluster.wait(Duration::from_secs(5), |c| (0..5)
        .all(|i| c.info_field(i, "cluster_state").as_deref() == Some("fail"))));

    cluster.restart(victim);
    let restarted = Instant::now();
    let back = cluster.wait(Duration::from_secs(10), |c| c.all_ok());
    let took = restarted.elapsed();
    assert!(back, "the cluster did not recover");
    assert!(took <= Duration::from_secs(3), "back to ok after {took:?}");
    eprintln!("every node back to cluster_state:ok {took:?} after the restart");
    assert_eq!(cluster.id(victim), id, "the node kept its id");
    let nodes = cluster.nodes(victim).expect("restarted node answers");
    let line_after = nodes
        .lines()
        .find(|l| l.starts_with(&id))
        .map(|l| l.split(' ').skip(8).collect::<Vec<_>>().join(" "))
        .expect("myself listed");
    assert_eq!(line_after, line_before, "the node kept its slots");
    let value: Option<String> = q(&mut cluster.connect(victim), &["GET", &own_key]);
    assert_eq!(value, None);
}

#[test]
fn a_master_under_saturating_client_load_is_never_suspected() {
    if !have_program("redis-benchmark") {
        eprintln!("redis-benchmark not installed; skipped");
        return;
    }
    let cluster = TestCluster::start("load", 3, NODE_TIMEOUT);
    let loaded = 0;
    let id = cluster.id(loaded);
    // A hash tag this node serves, so every request does real work.
    let tag = (0..)
        .map(|n| format!("{{t{n}}}"))
        .find(|t| {
            redis::cmd("GET")
                .arg(t.as_str())
                .query::<Option<String>>(&mut cluster.connect(loaded))
                .is_ok()
        })
        .unwrap();
    let mut bench = Command::new("redis-benchmark")
        .args([
            "-p",
            &cluster.ports[loaded].to_string(),
            "-P",
            "64",
            "-c",
            "50",
            "-n",
            "1000000000",
            "-r",
            "100000",
            "-q",
            "SET",
            &format!("{tag}:__rand_int__"),
            "value",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-benchmark");
    let started = Instant::now();
    let mut suspected = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        for i in 1..3 {
            if let Some(flags) = cluster.nodes(i).and_then(|n| flags_of(&n, &id)) {
                if flags.contains("fail") {
                    suspected.push((started.elapsed(), i, flags));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = bench.kill();
    let _ = bench.wait();
    assert!(suspected.is_empty(), "suspected under load: {suspected:?}");
    let stats: String = q(&mut cluster.connect(loaded), &["INFO", "commandstats"]);
    let calls: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_set:calls="))
        .and_then(|v| v.split(',').next()?.parse().ok())
        .unwrap_or(0);
    assert!(calls > 100_000, "the load ran: {calls} SETs");
    eprintln!("{calls} SETs in 30 s; never suspected");
}

#[test]
fn a_master_cut_off_by_the_drop_command_refuses_writes_within_the_node_timeout() {
    let mut args = NODE_TIMEOUT.to_vec();
    args.extend(["--enable-debug-command", "yes"]);
    let cluster = TestCluster::start("isolate", 3, &args);
    let cut = 0;
    let key = cluster.key_of(cut);
    let mut con = cluster.connect(cut);
    let _: () = q(&mut con, &["SET", &key, "before"]);
    cluster.bus_drop(cut, "both");
    let cut_at = Instant::now();
    let refused = loop {
        match redis::cmd("SET")
            .arg(&key)
            .arg("after")
            .query::<()>(&mut con)
        {
            Err(e) if error_text(&e).starts_with("CLUSTERDOWN") => break cut_at.elapsed(),
            Err(e) => panic!("{}", error_text(&e)),
            Ok(()) => {}
        }
        assert!(cut_at.elapsed() < Duration::from_secs(10), "never refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("writes refused {refused:?} after the cut");
    assert!(
        refused <= Duration::from_millis(TIMEOUT_MS + 250),
        "writes refused only after {refused:?}"
    );
    // Healed, the cluster comes back.
    cluster.bus_drop(cut, "none");
    assert!(cluster.wait(Duration::from_secs(15), |c| c.all_ok()));
}

#[test]
fn publish_reaches_subscribers_on_other_nodes_through_redis_cli() {
    if !have_program("redis-cli") {
        eprintln!("redis-cli not installed; skipped");
        return;
    }
    let cluster = TestCluster::start("publish-cli", 3, NODE_TIMEOUT);
    let mut subscriber = Command::new("redis-cli")
        .args(["-p", &cluster.ports[2].to_string(), "SUBSCRIBE", "news"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli");
    let mut lines = BufReader::new(subscriber.stdout.take().expect("stdout")).lines();
    // The subscription's confirmation: "subscribe", "news", 1.
    for _ in 0..3 {
        lines.next();
    }
    let publish = run(
        Command::new("redis-cli").args([
            "-p",
            &cluster.ports[0].to_string(),
            "PUBLISH",
            "news",
            "hello",
        ]),
        Duration::from_secs(10),
    );
    assert!(publish.status.success());
    let got: Vec<String> = lines.by_ref().take(3).map_while(Result::ok).collect();
    let _ = subscriber.kill();
    let _ = subscriber.wait();
    assert_eq!(got, ["message", "news", "hello"]);
}

#[test]
fn publish_through_the_redis_crate_cluster_client_reaches_every_node() {
    let cluster = TestCluster::start("publish-rs", 3, NODE_TIMEOUT);
    let mut connections: Vec<redis::Connection> = (0..3).map(|i| cluster.connect(i)).collect();
    let mut subscribers: Vec<redis::PubSub<'_>> =
        connections.iter_mut().map(|c| c.as_pubsub()).collect();
    for pubsub in &mut subscribers {
        pubsub.subscribe("alerts").unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
    let client = redis::cluster::ClusterClient::new(vec![cluster.server(1).url()]).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("alerts")
        .arg("disk full")
        .query(&mut con)
        .unwrap();
    for (i, pubsub) in subscribers.iter_mut().enumerate() {
        let message = pubsub
            .get_message()
            .unwrap_or_else(|e| panic!("node {i}'s subscriber got nothing: {e}"));
        assert_eq!(message.get_channel_name(), "alerts");
        assert_eq!(message.get_payload::<String>().unwrap(), "disk full");
    }
}

#[test]
fn with_a_bus_secret_only_nodes_that_know_it_are_believed() {
    let mut args = NODE_TIMEOUT.to_vec();
    args.extend(["--cluster-bus-secret", "s3cret"]);
    let cluster = TestCluster::fresh("secret", 2, &args);
    let mut first = cluster.connect(0);
    let _: () = q(
        &mut first,
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &cluster.ports[1].to_string(),
        ],
    );
    assert!(cluster.wait(Duration::from_secs(10), |c| c.all_know(2)));

    // Nodes with another secret, or none, are refused both ways.
    for (name, secret) in [("wrong", Some("guess")), ("none", None)] {
        let mut args = NODE_TIMEOUT.to_vec();
        if let Some(secret) = secret {
            args.extend(["--cluster-bus-secret", secret]);
        }
        let intruder = TestCluster::fresh(name, 1, &args);
        let port = intruder.ports[0].to_string();
        let _: () = q(&mut first, &["CLUSTER", "MEET", "127.0.0.1", &port]);
        let _: () = q(
            &mut intruder.connect(0),
            &[
                "CLUSTER",
                "MEET",
                "127.0.0.1",
                &cluster.ports[0].to_string(),
            ],
        );
        // Handshakes that never complete are dropped after the node timeout.
        std::thread::sleep(Duration::from_millis(TIMEOUT_MS + 1500));
        assert!(cluster.all_know(2), "{name}: {:?}", cluster.nodes(0));
        assert_eq!(
            intruder.info_field(0, "cluster_known_nodes").as_deref(),
            Some("1"),
            "{name}"
        );
    }
}

#[test]
fn a_second_node_on_the_same_config_file_refuses_to_start() {
    let cluster = TestCluster::fresh("lock", 1, NODE_TIMEOUT);
    let file = cluster.dir.join(format!("nodes-{}.conf", cluster.ports[0]));
    let port = ringkv_tests::cluster::cluster_ports(1)[0].to_string();
    let second = run(
        Command::new(ringkv_tests::server_binary()).args([
            "--port",
            &port,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            file.to_str().unwrap(),
        ]),
        Duration::from_secs(20),
    );
    assert!(!second.status.success());
    assert!(
        text(&second).contains("is already used by another ringkv node"),
        "{}",
        text(&second)
    );
    // The first node still runs with its identity.
    assert_eq!(
        cluster.info_field(0, "cluster_known_nodes").as_deref(),
        Some("1")
    );
}
