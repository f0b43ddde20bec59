//! Replication between plain nodes (`REPLICAOF`): full sync while the master
//! keeps writing, the live stream, partial resync from the backlog, promotion
//! keeping the old history for siblings, WAIT, min-replicas, and a replica's
//! refusals (docs/CLUSTER.md, R1-R8).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringkv_tests::replication::{caught_up, follow, info, signal, wait_for};
use ringkv_tests::{expect_err, query as q, TestServer};

fn in_sync(con: &mut redis::Connection) -> bool {
    info(con, "replication", "master_link_status") == "up"
        && info(con, "replication", "master_sync_in_progress") == "0"
}

/// Every key with its value's `DUMP` and whether it has a TTL.
fn dataset(server: &TestServer) -> BTreeMap<Vec<u8>, (Vec<u8>, bool)> {
    let mut con = server.connect();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.into_iter()
        .filter_map(|key| {
            let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query(&mut con).unwrap();
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).unwrap();
            dump.map(|d| (key, (d, ttl >= 0)))
        })
        .collect()
}

#[test]
fn a_replica_gets_every_key_and_every_write_made_during_its_full_sync() {
    let master = TestServer::start();
    let mut con = master.connect();
    for i in 0..20_000 {
        let k = format!("k:{i}");
        let _: () = redis::cmd("SET").arg(&k).arg(i).query(&mut con).unwrap();
    }
    let _: () = redis::cmd("RPUSH")
        .arg("list")
        .arg(&["a", "b", "c"])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("hash")
        .arg(&["f", "v"])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg("zset")
        .arg(&["1", "m"])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("set")
        .arg(&["x", "y"])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("ttl")
        .arg("v")
        .arg("PX")
        .arg(600_000)
        .query(&mut con)
        .unwrap();
    let token: i64 = q(&mut con, &["LOCK.ACQUIRE", "lock", "owner", "60000"]);
    // Writes keep coming while the replica syncs, many across slots: moves
    // between lists and renames read one slot to write another.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut con) = (stop.clone(), master.connect());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (a, b) = (format!("q:{}", n % 50), format!("q:{}", (n + 17) % 50));
                let _: () = redis::cmd("RPUSH").arg(&a).arg(n).query(&mut con).unwrap();
                let _: Option<String> = redis::cmd("LMOVE")
                    .arg(&a)
                    .arg(&b)
                    .arg("LEFT")
                    .arg("RIGHT")
                    .query(&mut con)
                    .unwrap();
                let (x, y) = (format!("r:{}", n % 30), format!("r:{}", (n + 1) % 30));
                let _: () = redis::cmd("SET").arg(&x).arg(n).query(&mut con).unwrap();
                let _: redis::RedisResult<()> =
                    redis::cmd("RENAME").arg(&x).arg(&y).query(&mut con);
                let _: () = redis::cmd("INCR")
                    .arg(format!("c:{}", n % 100))
                    .query(&mut con)
                    .unwrap();
                let _: () = redis::cmd("MSET")
                    .arg(format!("m:{}", n % 10))
                    .arg(n)
                    .arg(format!("m:{}", n % 13))
                    .arg(n)
                    .query(&mut con)
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let replica = TestServer::start();
    follow(&replica, &master);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(
        writes > 10,
        "the writer ran during the sync ({writes} rounds)"
    );
    caught_up(&master, &replica);
    let (ours, theirs) = (dataset(&master), dataset(&replica));
    assert_eq!(ours.len(), theirs.len());
    for (key, value) in &ours {
        assert_eq!(
            theirs.get(key),
            Some(value),
            "key {}",
            String::from_utf8_lossy(key)
        );
    }
    let mut r = replica.connect();
    assert_eq!(q::<String>(&mut r, &["GET", "k:777"]), "777");
    assert_eq!(info(&mut r, "replication", "role"), "slave");
    // The lock arrived with its token: a promoted replica grants above it.
    let _: String = q(&mut r, &["REPLICAOF", "NO", "ONE"]);
    let next: i64 = q(&mut r, &["LOCK.ACQUIRE", "other", "o", "1000"]);
    assert!(next > token, "token {next} after {token}");
    let mut m = master.connect();
    assert_eq!(info(&mut m, "stats", "sync_full"), "1");
}

#[test]
fn a_replica_refuses_client_writes_and_removes_keys_only_when_its_master_says() {
    let master = TestServer::start();
    let replica = TestServer::start();
    follow(&replica, &master);
    let (mut m, mut r) = (master.connect(), replica.connect());
    assert_eq!(
        expect_err(&mut r, &["SET", "k", "v"]),
        "READONLY You can't write against a read only replica."
    );
    let set_at = Instant::now();
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("v")
        .arg("PX")
        .arg(2000)
        .query(&mut m)
        .unwrap();
    caught_up(&master, &replica);
    // Pause the master past the TTL: the replica hides the key but keeps it.
    let pid = master_pid(&master);
    signal("STOP", pid);
    assert!(
        set_at.elapsed() < Duration::from_millis(1900),
        "paused before the TTL"
    );
    std::thread::sleep(Duration::from_millis(2300).saturating_sub(set_at.elapsed()));
    let hidden: Option<String> = q(&mut r, &["GET", "short"]);
    let count: i64 = q(&mut r, &["DBSIZE"]);
    signal("CONT", pid);
    assert_eq!(hidden, None, "past its TTL the key is not served");
    assert_eq!(count, 1, "but stays until the master's stream removes it");
    wait_for("the master's expiry to reach the replica", || {
        q::<i64>(&mut r, &["DBSIZE"]) == 0
    });
    // replica-read-only no: local writes are allowed.
    let _: String = q(&mut r, &["CONFIG", "SET", "replica-read-only", "no"]);
    let _: String = q(&mut r, &["SET", "local", "1"]);
}

fn master_pid(server: &TestServer) -> u32 {
    let mut con = server.connect();
    info(&mut con, "server", "process_id").parse().unwrap()
}

#[test]
fn a_replica_that_reconnects_continues_from_the_backlog() {
    let master = TestServer::start();
    let replica = TestServer::start();
    follow(&replica, &master);
    let (mut m, mut r) = (master.connect(), replica.connect());
    let listed: String = q(&mut m, &["CLIENT", "LIST", "TYPE", "replica"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains(" flags=S "), "{listed}");
    let killed: i64 = q(&mut m, &["CLIENT", "KILL", "TYPE", "replica"]);
    assert_eq!(killed, 1);
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut m)
        .unwrap();
    wait_for("the replica to reconnect", || {
        info(&mut m, "stats", "sync_partial_ok") == "1" && in_sync(&mut r)
    });
    caught_up(&master, &replica);
    assert_eq!(q::<String>(&mut r, &["GET", "after"]), "1");
    assert_eq!(
        info(&mut m, "stats", "sync_full"),
        "1",
        "no second full sync"
    );
}

#[test]
fn a_promoted_replica_lets_its_sibling_continue_the_old_history() {
    let master = TestServer::start();
    let (a, b) = (TestServer::start(), TestServer::start());
    follow(&a, &master);
    follow(&b, &master);
    let mut m = master.connect();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut m)
            .unwrap();
    }
    caught_up(&master, &a);
    caught_up(&master, &b);
    drop(master);
    let (mut ca, mut cb) = (a.connect(), b.connect());
    let old_id = info(&mut ca, "replication", "master_replid");
    let _: String = q(&mut ca, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(info(&mut ca, "replication", "master_replid2"), old_id);
    let _: () = redis::cmd("SET")
        .arg("new")
        .arg("1")
        .query(&mut ca)
        .unwrap();
    follow(&b, &a);
    assert_eq!(info(&mut ca, "stats", "sync_partial_ok"), "1");
    assert_eq!(info(&mut ca, "stats", "sync_full"), "0");
    caught_up(&a, &b);
    assert_eq!(q::<String>(&mut cb, &["GET", "new"]), "1");
    assert_eq!(q::<i64>(&mut cb, &["DBSIZE"]), 101);
}

#[test]
fn wait_returns_how_many_replicas_acknowledged_the_writes_before_it() {
    let master = TestServer::start();
    let replica = TestServer::start();
    follow(&replica, &master);
    let mut m = master.connect();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut m).unwrap();
    let started = Instant::now();
    assert_eq!(q::<i64>(&mut m, &["WAIT", "1", "5000"]), 1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "acknowledged when asked, not at the next second"
    );
    let started = Instant::now();
    assert_eq!(
        q::<i64>(&mut m, &["WAIT", "2", "300"]),
        1,
        "times out with the count"
    );
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(q::<i64>(&mut m, &["WAIT", "0", "0"]), 1);
    assert_eq!(
        expect_err(&mut m, &["WAIT", "1", "-1"]),
        "ERR timeout is negative"
    );
    let mut r = replica.connect();
    assert!(expect_err(&mut r, &["WAIT", "1", "0"])
        .starts_with("ERR WAIT cannot be used with replica instances"));
}

#[test]
fn min_replicas_to_write_refuses_writes_without_enough_good_replicas() {
    let master = TestServer::start();
    let mut m = master.connect();
    let _: String = q(&mut m, &["CONFIG", "SET", "min-replicas-to-write", "1"]);
    assert_eq!(
        expect_err(&mut m, &["SET", "k", "v"]),
        "NOREPLICAS Not enough good replicas to write."
    );
    let _: Option<String> = q(&mut m, &["GET", "k"]);
    let replica = TestServer::start();
    follow(&replica, &master);
    let _: String = q(&mut m, &["SET", "k", "v"]);
    assert_eq!(info(&mut m, "replication", "min_slaves_good_slaves"), "1");
}

#[test]
fn a_replica_whose_master_is_gone_serves_stale_data_or_masterdown_as_configured() {
    let master = TestServer::start();
    let replica = TestServer::start();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut master.connect())
        .unwrap();
    follow(&replica, &master);
    drop(master);
    let mut r = replica.connect();
    wait_for("the link to go down", || {
        info(&mut r, "replication", "master_link_status") == "down"
    });
    assert_eq!(q::<String>(&mut r, &["GET", "k"]), "v");
    let _: String = q(&mut r, &["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    assert_eq!(
        expect_err(&mut r, &["GET", "k"]),
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    );
    let role: Vec<redis::Value> = q(&mut r, &["ROLE"]);
    assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
    let _: String = q(&mut r, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(q::<String>(&mut r, &["GET", "k"]), "v");
}

#[test]
fn a_replica_authenticates_with_masterauth() {
    let master = TestServer::start_with(&["--requirepass", "s3cret"]);
    let replica = TestServer::start_with(&["--masterauth", "s3cret"]);
    let mut m = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", master.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut m).unwrap();
    // The master needs a password, so only the replica's side is watched.
    let mut r = replica.connect();
    let port = master.port.to_string();
    let _: String = q(&mut r, &["REPLICAOF", "127.0.0.1", &port]);
    wait_for("the replica's sync", || in_sync(&mut r));
    assert_eq!(q::<String>(&mut replica.connect(), &["GET", "k"]), "v");
}

#[test]
fn psync_from_a_replica_that_is_not_ringkv_is_refused_clearly() {
    let master = TestServer::start();
    let mut raw = master.raw();
    let reply = raw.call(&["PSYNC", "?", "-1"]);
    assert!(
        reply.starts_with("-ERR ringkv streams replication in its own format"),
        "{reply}"
    );
    assert_eq!(
        raw.call(&["REPLCONF", "bogus", "1"]),
        "-ERR Unrecognized REPLCONF option: bogus"
    );
    assert_eq!(
        raw.call(&["REPLCONF", "listening-port"]),
        "-ERR syntax error"
    );
    let mut con = master.connect();
    assert_eq!(
        expect_err(&mut con, &["REPLICAOF", "127.0.0.1", "70000"]),
        "ERR Invalid master port"
    );
}

#[test]
fn a_node_started_with_replicaof_syncs_from_its_master() {
    let master = TestServer::start();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut master.connect())
        .unwrap();
    let port = master.port.to_string();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let mut r = replica.connect();
    wait_for("the replica's sync", || in_sync(&mut r));
    assert_eq!(q::<String>(&mut r, &["GET", "k"]), "v");
    let shown: Vec<String> = q(&mut r, &["CONFIG", "GET", "replicaof"]);
    assert_eq!(shown[1], format!("127.0.0.1 {port}"));
    // It shows where the node replicates from now.
    let _: () = q(&mut r, &["REPLICAOF", "NO", "ONE"]);
    let shown: Vec<String> = q(&mut r, &["CONFIG", "GET", "replicaof"]);
    assert_eq!(shown[1], "");
}

#[test]
fn a_replica_that_sends_garbage_is_disconnected() {
    use std::io::{Read, Write};
    let master = TestServer::start();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", master.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let hello = ringkv_tests::request(&[b"REPLCONF", b"capa", b"ringkv"]);
    let psync = ringkv_tests::request(&[b"PSYNC", b"?", b"-1"]);
    stream.write_all(&[hello, psync].concat()).unwrap();
    stream.write_all(b"*x\r\n").unwrap();
    let started = Instant::now();
    let mut buf = vec![0; 64 * 1024];
    let mut received = Vec::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(err) => panic!("not disconnected: {err}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(received.starts_with(b"+OK\r\n+FULLRESYNC "));
    let mut m = master.connect();
    wait_for("the replica to be forgotten", || {
        info(&mut m, "replication", "connected_slaves") == "0"
    });
}

#[test]
fn a_master_answers_its_clients_between_the_steps_of_a_full_sync() {
    // One worker thread: the replica's stream and this client share it.
    let master = TestServer::start_with(&["--threads", "1"]);
    let mut con = master.connect();
    for batch in 0..200 {
        let mut mset = redis::cmd("MSET");
        for i in 0..1000 {
            mset.arg(format!("key:{batch}:{i}")).arg("0123456789abcdef");
        }
        let _: () = mset.query(&mut con).unwrap();
    }
    let replica = TestServer::start();
    let port = master.port.to_string();
    let _: String = q(&mut replica.connect(), &["REPLICAOF", "127.0.0.1", &port]);
    // INFOs are answered between the snapshot's steps (about 9 MB in 256 KB
    // steps: some 35 of them), not once the whole dataset was sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = 0;
    loop {
        assert!(Instant::now() < deadline, "the full sync never ended");
        let text: String = q(&mut con, &["INFO", "replication"]);
        if text.contains("state=online") {
            break;
        }
        answered += u32::from(text.contains("state=send_bulk"));
    }
    assert!(
        answered >= 5,
        "{answered} INFOs answered while 200k keys were sent"
    );
}
