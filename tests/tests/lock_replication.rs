//! Locks that survive a failover, between plain nodes (`REPLICAOF`):
//! a lock change is answered only once the in-sync replicas have it, and
//! undone when they do not acknowledge in time (L1); fencing tokens keep
//! growing across a promotion (L4); a node that may have lost grants refuses
//! new ones for `lock-delay` (L5). See docs/CLUSTER.md.

use std::time::{Duration, Instant};

use ringkv_tests::replication::{caught_up, follow, info, signal, wait_for};
use ringkv_tests::{error_text, expect_err, query as q, TestServer};

fn acquire(
    con: &mut redis::Connection,
    name: &str,
    owner: &str,
) -> redis::RedisResult<Option<i64>> {
    redis::cmd("LOCK.ACQUIRE")
        .arg(name)
        .arg(owner)
        .arg(60_000)
        .query(con)
}

/// The owner and fencing token of lock `name` (`LOCK.INFO`), if held.
fn holder(con: &mut redis::Connection, name: &str) -> Option<(String, i64)> {
    let info: Option<Vec<redis::Value>> = q(con, &["LOCK.INFO", name]);
    let info = info?;
    let owner = match &info[1] {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("owner {other:?}"),
    };
    match info[5] {
        redis::Value::Int(token) => Some((owner, token)),
        ref other => panic!("token {other:?}"),
    }
}

#[test]
fn a_lock_change_is_on_the_replica_when_its_client_hears_of_it() {
    let master = TestServer::start_with(&["--lock-ack-timeout", "10000"]);
    let replica = TestServer::start();
    follow(&replica, &master);
    let (mut m, mut r) = (master.connect(), replica.connect());
    for i in 0..50 {
        let name = format!("L{i}");
        let token = acquire(&mut m, &name, "alice").unwrap().expect("free");
        assert_eq!(
            holder(&mut r, &name),
            Some(("alice".to_string(), token)),
            "the grant reached the replica before its token reached the client"
        );
        assert_eq!(q::<i64>(&mut m, &["LOCK.RELEASE", &name, "alice"]), 0);
        assert_eq!(holder(&mut r, &name), None, "so did the release");
    }
    // A fill lease, and a grant inside a transaction.
    let lease: Vec<redis::Value> = q(&mut m, &["CACHE.GET", "page"]);
    assert_eq!(lease[0], redis::Value::BulkString(b"lease".to_vec()));
    assert_eq!(q::<i64>(&mut r, &["EXISTS", "page"]), 1);
    let exec: Vec<redis::Value> = redis::pipe()
        .atomic()
        .cmd("LOCK.ACQUIRE")
        .arg("T")
        .arg("bob")
        .arg(60_000)
        .cmd("SET")
        .arg("plain")
        .arg("1")
        .query(&mut m)
        .unwrap();
    let redis::Value::Int(token) = exec[0] else {
        panic!("{exec:?}");
    };
    assert_eq!(holder(&mut r, "T"), Some(("bob".to_string(), token)));
    // A waiter served by another client's release hears of its grant only
    // once the replica has it too; so does the releasing client.
    acquire(&mut m, "Q", "first").unwrap().expect("free");
    let waiting = {
        let mut w = master.connect();
        std::thread::spawn(move || -> Option<i64> {
            q(
                &mut w,
                &["LOCK.ACQUIRE", "Q", "second", "60000", "WAIT", "10000"],
            )
        })
    };
    wait_for("the waiter to queue", || {
        let info: Vec<redis::Value> = q(&mut m, &["LOCK.INFO", "Q"]);
        info[9] == redis::Value::Int(1)
    });
    let pid: u32 = info(&mut r, "server", "process_id").parse().unwrap();
    signal("STOP", pid);
    let releasing = {
        let mut c = master.connect();
        std::thread::spawn(move || -> i64 { q(&mut c, &["LOCK.RELEASE", "Q", "first"]) })
    };
    std::thread::sleep(Duration::from_millis(300));
    let unanswered = !releasing.is_finished() && !waiting.is_finished();
    signal("CONT", pid);
    assert!(unanswered, "answered while the replica was stopped");
    assert_eq!(releasing.join().unwrap(), 0);
    let token = waiting.join().unwrap().expect("granted");
    assert_eq!(holder(&mut r, "Q"), Some(("second".to_string(), token)));
}

#[test]
fn a_lock_change_the_stopped_replica_does_not_acknowledge_is_undone_on_both() {
    let master = TestServer::start_with(&["--lock-ack-timeout", "400"]);
    let replica = TestServer::start();
    follow(&replica, &master);
    let (mut m, mut r) = (master.connect(), replica.connect());
    // Acknowledged: held by alice on both. The replica just acknowledged.
    let kept = acquire(&mut m, "kept", "alice").unwrap().expect("free");
    assert_eq!(info(&mut m, "replication", "lock_in_sync_replicas"), "1");
    let pid: u32 = info(&mut r, "server", "process_id").parse().unwrap();
    signal("STOP", pid);
    let started = Instant::now();
    let err = error_text(&acquire(&mut m, "L", "bob").unwrap_err());
    let waited = started.elapsed();
    assert_eq!(
        err,
        "NOREPLICAS Lock change not acknowledged by 1 replica(s) within 400 ms; undone"
    );
    assert!(waited >= Duration::from_millis(390), "{waited:?}");
    assert_eq!(holder(&mut m, "L"), None, "the grant was undone");
    // A release not acknowledged is undone too: alice still holds it.
    let err = error_text(
        &redis::cmd("LOCK.RELEASE")
            .arg("kept")
            .arg("alice")
            .query::<i64>(&mut m)
            .unwrap_err(),
    );
    assert!(err.starts_with("NOREPLICAS "), "{err}");
    assert_eq!(holder(&mut m, "kept"), Some(("alice".to_string(), kept)));
    // Silent for longer than the timeout plus a second, the replica is out
    // of the in-sync set: lock changes are refused at once.
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(info(&mut m, "replication", "lock_in_sync_replicas"), "0");
    let started = Instant::now();
    assert_eq!(
        error_text(&acquire(&mut m, "L", "bob").unwrap_err()),
        "NOREPLICAS Not enough in-sync replicas to change a lock (0 of 1 required)"
    );
    assert!(started.elapsed() < Duration::from_millis(300));
    // Plain writes are not lock changes.
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut m).unwrap();
    signal("CONT", pid);
    caught_up(&master, &replica);
    assert_eq!(holder(&mut r, "L"), None, "the replica undid the grant");
    assert_eq!(holder(&mut r, "kept"), Some(("alice".to_string(), kept)));
    // Back in sync (its next acknowledgement), lock changes go through.
    wait_for("the replica back in the in-sync set", || {
        acquire(&mut m, "L", "bob").is_ok()
    });
    let (_, token) = holder(&mut r, "L").expect("granted");
    assert!(token > kept);
}

/// `payload` (a DUMP of a lock) with its fencing token replaced by `token`:
/// the token is the 8 bytes before the format version (2 bytes) and the
/// CRC-64 (8 bytes), which is signed again.
fn forge_token(payload: &[u8], token: u64) -> Vec<u8> {
    const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);
    let mut forged = payload.to_vec();
    let n = forged.len();
    forged[n - 18..n - 10].copy_from_slice(&token.to_le_bytes());
    let crc = CRC64.checksum(&forged[..n - 8]);
    forged[n - 8..].copy_from_slice(&crc.to_le_bytes());
    forged
}

/// Makes `con`'s server issue tokens far ahead of every clock (a restored
/// lock raises the counter), so they grow by one per grant: a node that
/// missed them cannot be above them by its clock alone. Returns the token.
fn tokens_ahead(con: &mut redis::Connection) -> u64 {
    let first = acquire(con, "seed", "a").unwrap().expect("free");
    let dump: Vec<u8> = q(con, &["DUMP", "seed"]);
    let ahead = first as u64 + 365 * 86_400 * 1_000_000;
    let _: () = redis::cmd("RESTORE")
        .arg("ahead")
        .arg(0)
        .arg(forge_token(&dump, ahead))
        .query(con)
        .unwrap();
    let _: i64 = q(con, &["DEL", "ahead", "seed"]);
    ahead
}

/// Takes and releases `n` locks named `prefix:i` in one pipeline; the tokens.
fn grant_many(con: &mut redis::Connection, prefix: &str, n: usize) -> Vec<i64> {
    let mut pipe = redis::pipe();
    for i in 0..n {
        let name = format!("{prefix}:{i}");
        pipe.cmd("LOCK.ACQUIRE").arg(&name).arg("o").arg(60_000);
        pipe.cmd("LOCK.RELEASE").arg(&name).arg("o").ignore();
    }
    let tokens: Vec<i64> = pipe.query(con).unwrap();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]));
    tokens
}

#[test]
fn a_promoted_replica_issues_tokens_above_those_issued_before_its_sync() {
    let master = TestServer::start();
    let mut m = master.connect();
    let ahead = tokens_ahead(&mut m);
    // Issued and released before any replica exists: no lock carries them
    // when the replica syncs; the bound the sync announces covers them.
    let issued = grant_many(&mut m, "k", 2_000);
    let highest = *issued.last().unwrap();
    assert!(highest as u64 > ahead);
    let replica = TestServer::start();
    follow(&replica, &master);
    caught_up(&master, &replica);
    let mut r = replica.connect();
    let _: String = q(&mut r, &["REPLICAOF", "NO", "ONE"]);
    let next = acquire(&mut r, "after", "o").unwrap().expect("free");
    assert!(
        next > highest,
        "the promoted replica issued {next}, not above {highest}"
    );
}

#[test]
fn tokens_whose_grants_were_lost_with_the_master_stay_below_the_promoted_replicas() {
    // Lock changes answered at once (no acknowledgements): grants made
    // after the replica fell behind are lost with the master.
    let master = TestServer::start_with(&["--lock-replicas-to-ack", "0"]);
    let replica = TestServer::start();
    let mut m = master.connect();
    tokens_ahead(&mut m);
    follow(&replica, &master);
    let before = grant_many(&mut m, "k", 10);
    caught_up(&master, &replica);
    let mut r = replica.connect();
    let pid: u32 = info(&mut r, "server", "process_id").parse().unwrap();
    signal("STOP", pid);
    let _: i64 = q(&mut m, &["CLIENT", "KILL", "TYPE", "replica"]);
    let lost = grant_many(&mut m, "lost", 500);
    assert!(lost[0] > *before.last().unwrap());
    drop(master);
    signal("CONT", pid);
    wait_for("the replica to see its master gone", || {
        info(&mut r, "replication", "master_link_status") == "down"
    });
    let _: String = q(&mut r, &["REPLICAOF", "NO", "ONE"]);
    let next = acquire(&mut r, "after", "o").unwrap().expect("free");
    let highest = *lost.last().unwrap();
    assert!(
        next > highest,
        "the promoted replica issued {next}, not above the lost {highest}"
    );
}

#[test]
fn a_started_node_refuses_new_grants_for_its_lock_delay() {
    let server = TestServer::start_with(&["--lock-delay", "1500"]);
    let started = Instant::now();
    let mut con = server.connect();
    let remaining: u64 = info(&mut con, "replication", "lock_delay_remaining_ms")
        .parse()
        .unwrap();
    assert!(remaining > 0 && remaining <= 1500, "{remaining}");
    let err = expect_err(&mut con, &["LOCK.ACQUIRE", "L", "a", "1000"]);
    assert!(err.starts_with("LOCKDELAY "), "{err}");
    let left: u64 = err
        .rsplit("retry in ")
        .next()
        .and_then(|t| t.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(left <= 1500 && left > 0, "{left}");
    // A lock it holds (brought in by RESTORE) is taken again and extended
    // by its owner: not a new grant.
    let payload = {
        let other = TestServer::start();
        let mut o = other.connect();
        acquire(&mut o, "L", "owner").unwrap().expect("free");
        q::<Vec<u8>>(&mut o, &["DUMP", "L"])
    };
    let _: () = redis::cmd("RESTORE")
        .arg("held")
        .arg(0)
        .arg(payload)
        .query(&mut con)
        .unwrap();
    assert!(acquire(&mut con, "held", "owner").unwrap().is_some());
    assert_eq!(
        q::<i64>(&mut con, &["LOCK.EXTEND", "held", "owner", "5000"]),
        1
    );
    // Fill leases are not lock grants.
    let lease: Vec<redis::Value> = q(&mut con, &["CACHE.GET", "page"]);
    assert_eq!(lease[0], redis::Value::BulkString(b"lease".to_vec()));
    // Released meanwhile, the lock goes to its waiter only after the delay.
    let waiting = {
        let mut w = server.connect();
        std::thread::spawn(move || -> Option<i64> {
            q(&mut w, &["LOCK.ACQUIRE", "held", "w", "1000", "WAIT", "0"])
        })
    };
    wait_for("the waiter to queue", || {
        let info: Vec<redis::Value> = q(&mut con, &["LOCK.INFO", "held"]);
        info[9] == redis::Value::Int(1)
    });
    assert_eq!(q::<i64>(&mut con, &["LOCK.RELEASE", "held", "owner"]), 1);
    assert_eq!(q::<i64>(&mut con, &["LOCK.RELEASE", "held", "owner"]), 0);
    wait_for("the delay to end", || acquire(&mut con, "L", "a").is_ok());
    assert!(started.elapsed() >= Duration::from_millis(1_400));
    assert_eq!(
        info(&mut con, "replication", "lock_delay_remaining_ms"),
        "0"
    );
    assert!(waiting.join().unwrap().is_some(), "served after the delay");
    // Leases are capped by lock-max-ttl.
    assert_eq!(
        expect_err(&mut con, &["LOCK.ACQUIRE", "long", "a", "60001"]),
        "ERR lease is longer than lock-max-ttl (60000 ms)"
    );
}

#[test]
fn a_replica_promoted_while_following_grants_at_once_and_one_cut_off_waits() {
    let master = TestServer::start();
    let (a, b) = (
        TestServer::start_with(&["--lock-delay", "60000"]),
        TestServer::start_with(&["--lock-delay", "60000"]),
    );
    follow(&a, &master);
    follow(&b, &master);
    let mut m = master.connect();
    acquire(&mut m, "L", "o").unwrap().expect("free");
    caught_up(&master, &a);
    caught_up(&master, &b);
    // a follows the stream to the end: it holds every acknowledged grant,
    // and grants at once although it started a moment ago.
    let mut ca = a.connect();
    let _: String = q(&mut ca, &["REPLICAOF", "NO", "ONE"]);
    assert!(acquire(&mut ca, "fresh", "o").unwrap().is_some());
    // b's master is gone when it is promoted: it may miss grants.
    drop(master);
    let mut cb = b.connect();
    wait_for("b to see its master gone", || {
        info(&mut cb, "replication", "master_link_status") == "down"
    });
    let _: String = q(&mut cb, &["REPLICAOF", "NO", "ONE"]);
    let err = expect_err(&mut cb, &["LOCK.ACQUIRE", "fresh2", "o", "1000"]);
    assert!(err.starts_with("LOCKDELAY "), "{err}");
}
