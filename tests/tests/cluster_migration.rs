//! Slot migration end to end (docs/CLUSTER.md, M1-M13): Redis's resharding
//! commands against real processes.

use std::process::Command;
use std::time::Duration;

use ringkv_tests::cluster::{output_text, run_limited, TestCluster};
use ringkv_tests::{expect_err, have_program, query as q, RawConnection, TestServer};

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

#[test]
fn migrate_moves_keys_with_their_ttls_and_lock_tokens() {
    let (source, target) = (TestServer::start(), TestServer::start());
    let (mut src, mut dst) = (source.connect(), target.connect());
    let port = target.port.to_string();
    let migrate = |con: &mut redis::Connection, rest: &[&str]| -> redis::RedisResult<String> {
        let mut cmd = redis::cmd("MIGRATE");
        cmd.arg("127.0.0.1").arg(&port);
        for arg in rest {
            cmd.arg(*arg);
        }
        cmd.query(con)
    };
    let _: () = q(&mut src, &["SET", "a", "1", "PX", "100000"]);
    let _: i64 = q(&mut src, &["RPUSH", "l", "x", "y"]);
    let token: i64 = q(&mut src, &["LOCK.ACQUIRE", "lk", "me", "60000"]);
    assert_eq!(migrate(&mut src, &["a", "0", "1000"]).unwrap(), "OK");
    let moved = ["", "0", "1000", "KEYS", "l", "lk", "missing"];
    assert_eq!(migrate(&mut src, &moved).unwrap(), "OK");
    assert_eq!(q::<i64>(&mut src, &["DBSIZE"]), 0);
    // The TTL, the value and the lock (owner, token) came along.
    let ttl: i64 = q(&mut dst, &["PTTL", "a"]);
    assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
    assert_eq!(
        q::<Vec<String>>(&mut dst, &["LRANGE", "l", "0", "-1"]),
        ["x", "y"]
    );
    assert_eq!(q::<i64>(&mut dst, &["LOCK.EXTEND", "lk", "me", "60000"]), 1);
    // Later grants on the target stay above the token it took in.
    let next: i64 = q(&mut dst, &["LOCK.ACQUIRE", "other", "me", "60000"]);
    assert!(next > token, "{next} after {token}");
    // Nothing to move.
    assert_eq!(migrate(&mut src, &["a", "0", "1000"]).unwrap(), "NOKEY");
    // Redis's refusals and errors, word for word.
    let _: () = q(&mut src, &["SET", "a", "2"]);
    let busy = migrate(&mut src, &["a", "0", "1000"]).unwrap_err();
    assert_eq!(
        ringkv_tests::error_text(&busy),
        "ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    assert_eq!(q::<String>(&mut src, &["GET", "a"]), "2", "kept on refusal");
    assert_eq!(
        migrate(&mut src, &["a", "0", "1000", "COPY", "REPLACE"]).unwrap(),
        "OK"
    );
    assert_eq!(q::<String>(&mut src, &["GET", "a"]), "2", "COPY keeps it");
    assert_eq!(q::<String>(&mut dst, &["GET", "a"]), "2");
    let keys_with_key = migrate(&mut src, &["a", "0", "1000", "KEYS", "a"]).unwrap_err();
    assert_eq!(
        ringkv_tests::error_text(&keys_with_key),
        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"
    );
    let db = migrate(&mut src, &["a", "5", "1000", "REPLACE"]).unwrap_err();
    assert_eq!(
        ringkv_tests::error_text(&db),
        "ERR Target instance replied with error: ERR DB index is out of range"
    );
    assert_eq!(
        expect_err(&mut src, &["MIGRATE", "127.0.0.1", "1", "a", "0", "100"]),
        "IOERR error or timeout connecting to the client"
    );
    assert_eq!(
        expect_err(&mut src, &["MIGRATE", "h", "1", "a", "0", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        expect_err(&mut src, &["MIGRATE", "h", "1", "a", "0", "100", "AUTH"]),
        "ERR syntax error"
    );
    // A target that takes the request and never answers: the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port().to_string();
    let args = [
        "MIGRATE",
        "127.0.0.1",
        &silent_port,
        "a",
        "0",
        "200",
        "REPLACE",
    ];
    assert_eq!(
        expect_err(&mut src, &args),
        "IOERR error or timeout reading to target instance"
    );
    assert_eq!(q::<String>(&mut src, &["GET", "a"]), "2", "kept on timeout");
}

#[test]
fn a_client_blocked_on_a_migrated_lock_is_asked_to_follow_it() {
    let cluster = TestCluster::start("migrate-blocked", 3, NODE_TIMEOUT);
    let tag = cluster.key_of(0);
    let slot = slot_of(&cluster, &tag).to_string();
    let lock = format!("{{{tag}}}lock");
    let mut src = cluster.connect(0);
    let token: i64 = q(&mut src, &["LOCK.ACQUIRE", &lock, "a", "60000"]);
    let mut waiting = RawConnection::connect(cluster.ports[0]);
    waiting.send_command(&["LOCK.ACQUIRE", &lock, "b", "60000", "WAIT", "20000"]);
    assert!(
        cluster.wait(Duration::from_secs(5), |c| {
            lock_field(&mut c.connect(0), &lock, "waiters").as_deref() == Some("1")
        }),
        "the second client never queued"
    );
    open(&cluster, &slot);
    let target_port = cluster.ports[1].to_string();
    let args = ["MIGRATE", "127.0.0.1", &target_port, &lock, "0", "5000"];
    assert_eq!(q::<String>(&mut src, &args), "OK");
    // Not granted here, where the lock no longer is: asked to the target,
    // which holds it with its token.
    assert_eq!(
        waiting.reply_text(),
        format!("-ASK {slot} 127.0.0.1:{target_port}")
    );
    let mut dst = cluster.connect(1);
    let _: () = q(&mut dst, &["ASKING"]);
    let busy: Option<i64> = q(&mut dst, &["LOCK.ACQUIRE", &lock, "b", "60000"]);
    assert_eq!(busy, None, "still held by its owner");
    let _: () = q(&mut dst, &["ASKING"]);
    assert_eq!(
        lock_field(&mut dst, &lock, "token"),
        Some(token.to_string())
    );
}

/// Field `field` of `LOCK.INFO lock` (none if the lock is free).
fn lock_field(con: &mut redis::Connection, lock: &str, field: &str) -> Option<String> {
    let info: Vec<String> = q(con, &["LOCK.INFO", lock]);
    let at = info.iter().position(|f| f == field)?;
    info.get(at + 1).cloned()
}

/// Keys `key:0..n` and their values, through a cluster client.
fn write_keys(url: &str, n: usize) {
    let client = redis::cluster::ClusterClient::new(vec![url]).unwrap();
    let mut con = client.get_connection().unwrap();
    for i in 0..n {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(format!("value:{i}"))
            .query(&mut con)
            .unwrap();
    }
}

/// Every key `key:0..n` reads back its value through a cluster client, and
/// the masters hold `n` keys between them (none twice).
fn check_keys(cluster: &TestCluster, masters: &[usize], n: usize) {
    let url = cluster.server(masters[0]).url();
    let client = redis::cluster::ClusterClient::new(vec![url]).unwrap();
    let mut con = client.get_connection().unwrap();
    for i in 0..n {
        let value: Option<String> = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(value, Some(format!("value:{i}")), "key:{i}");
    }
    let held: i64 = masters
        .iter()
        .map(|&m| q::<i64>(&mut cluster.connect(m), &["DBSIZE"]))
        .sum();
    assert_eq!(held, n as i64, "keys held by the masters");
}

/// Runs `redis-cli --cluster <args>` (within two minutes) and returns its
/// output; fails the test if it fails.
fn redis_cli_cluster(args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    command.arg("--cluster").args(args);
    let output = run_limited(&mut command, Duration::from_secs(120));
    let text = output_text(&output);
    assert!(
        output.status.success(),
        "redis-cli --cluster {args:?}:\n{text}"
    );
    text
}

#[test]
fn redis_cli_adds_reshards_rebalances_and_removes_a_master() {
    if !have_program("redis-cli") {
        eprintln!("redis-cli not installed; skipped");
        return;
    }
    let cluster = TestCluster::fresh("redis-cli-reshard", 4, NODE_TIMEOUT);
    let addr = |i: usize| format!("127.0.0.1:{}", cluster.ports[i]);
    let (a, b, c, d) = (addr(0), addr(1), addr(2), addr(3));
    redis_cli_cluster(&["create", &a, &b, &c, "--cluster-yes"]);
    assert!(cluster.wait(Duration::from_secs(20), |c| [0, 1, 2]
        .iter()
        .all(|&i| c.info_field(i, "cluster_state").as_deref() == Some("ok"))));
    const KEYS: usize = 3000;
    write_keys(&cluster.server(0).url(), KEYS);
    let text = redis_cli_cluster(&["add-node", &d, &a]);
    assert!(text.contains("[OK] New node added correctly."), "{text}");
    assert!(cluster.wait(Duration::from_secs(20), |c| c.all_know(4)));
    let new = cluster.id(3);
    redis_cli_cluster(&[
        "reshard",
        &a,
        "--cluster-from",
        "all",
        "--cluster-to",
        &new,
        "--cluster-slots",
        "600",
        "--cluster-yes",
    ]);
    check_keys(&cluster, &[0, 1, 2, 3], KEYS);
    assert!(q::<i64>(&mut cluster.connect(3), &["DBSIZE"]) > 0);
    // Weight 0: rebalance moves every slot of the new master back.
    let weight = format!("{new}=0");
    redis_cli_cluster(&["rebalance", &a, "--cluster-weight", &weight]);
    check_keys(&cluster, &[0, 1, 2], KEYS);
    let text = redis_cli_cluster(&["check", &a]);
    assert!(text.contains("[OK] All 16384 slots covered."), "{text}");
    assert!(!text.contains("[WARNING]"), "{text}");
    redis_cli_cluster(&["del-node", &a, &new]);
    assert!(cluster.wait(Duration::from_secs(10), |c| [0, 1, 2]
        .iter()
        .all(|&i| !c.nodes(i).unwrap_or_default().contains(&new))));
    check_keys(&cluster, &[0, 1, 2], KEYS);
}
