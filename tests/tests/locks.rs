//! Native locks against the real server: LOCK.ACQUIRE / RELEASE / EXTEND / INFO,
//! fencing tokens, leases, and fair waiting.

use std::time::{Duration, Instant};

use ringkv_tests::{expect_err, query as q, RawConnection, TestServer};

fn acquire(con: &mut redis::Connection, name: &str, owner: &str, ttl: u64) -> Option<i64> {
    q(con, &["LOCK.ACQUIRE", name, owner, &ttl.to_string()])
}

#[test]
fn acquire_reenter_release_extend_and_info() {
    let server = TestServer::start();
    let mut con = server.connect();
    let token = acquire(&mut con, "L", "alice", 10_000).expect("free lock");
    assert_eq!(acquire(&mut con, "L", "bob", 10_000), None);
    // Reentrant: same owner, same grant, one more hold.
    assert_eq!(acquire(&mut con, "L", "alice", 10_000), Some(token));
    let info: Vec<redis::Value> = q(&mut con, &["LOCK.INFO", "L"]);
    assert_eq!(info.len(), 10);
    assert_eq!(q::<String>(&mut con, &["TYPE", "L"]), "lock");
    let pttl: i64 = q(&mut con, &["PTTL", "L"]);
    assert!((9_000..=10_000).contains(&pttl), "{pttl}");
    assert_eq!(q::<i64>(&mut con, &["LOCK.RELEASE", "L", "bob"]), -1);
    assert_eq!(q::<i64>(&mut con, &["LOCK.EXTEND", "L", "bob", "50000"]), 0);
    assert_eq!(
        q::<i64>(&mut con, &["LOCK.EXTEND", "L", "alice", "50000"]),
        1
    );
    assert!(q::<i64>(&mut con, &["PTTL", "L"]) > 40_000);
    assert_eq!(q::<i64>(&mut con, &["LOCK.RELEASE", "L", "alice"]), 1);
    assert_eq!(q::<i64>(&mut con, &["LOCK.RELEASE", "L", "alice"]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "L"]), 0);
    assert_eq!(q::<i64>(&mut con, &["LOCK.RELEASE", "L", "alice"]), -1);
    assert_eq!(q::<Option<String>>(&mut con, &["LOCK.INFO", "L"]), None);

    let _: () = q(&mut con, &["SET", "s", "v"]);
    assert_eq!(
        expect_err(&mut con, &["LOCK.ACQUIRE", "s", "a", "100"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert!(expect_err(&mut con, &["LOCK.ACQUIRE", "x", "a", "0"]).starts_with("ERR invalid lease"));
    assert!(expect_err(&mut con, &["LOCK.ACQUIRE", "x", "a", "ten"])
        .starts_with("ERR value is not an integer"));
    assert_eq!(
        expect_err(&mut con, &["LOCK.ACQUIRE", "x", "a", "10", "WAIT"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["LOCK.ACQUIRE", "x", "a", "10", "NOPE", "1"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["LOCK.RELEASE", "x"]),
        "ERR wrong number of arguments for 'lock.release' command"
    );
    // DUMP / RESTORE carry a lock (slot migration will need it).
    acquire(&mut con, "D", "o", 60_000).unwrap();
    let dump: Vec<u8> = q(&mut con, &["DUMP", "D"]);
    let _: () = redis::cmd("RESTORE")
        .arg("D2")
        .arg(0)
        .arg(dump)
        .query(&mut con)
        .unwrap();
    assert_eq!(q::<i64>(&mut con, &["LOCK.RELEASE", "D2", "o"]), 0);
}

#[test]
fn fencing_tokens_increase_across_grants_expiry_delete_and_recreation() {
    let server = TestServer::start();
    let mut con = server.connect();
    let mut tokens = Vec::new();
    tokens.push(acquire(&mut con, "F", "a", 10_000).unwrap());
    let _: i64 = q(&mut con, &["LOCK.RELEASE", "F", "a"]);
    tokens.push(acquire(&mut con, "F", "b", 50).unwrap());
    std::thread::sleep(Duration::from_millis(80));
    tokens.push(acquire(&mut con, "F", "c", 10_000).unwrap());
    let _: i64 = q(&mut con, &["DEL", "F"]);
    tokens.push(acquire(&mut con, "F", "d", 10_000).unwrap());
    let _: () = q(&mut con, &["FLUSHALL"]);
    tokens.push(acquire(&mut con, "F", "e", 10_000).unwrap());
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

/// `payload` (a DUMP of a lock or fill lease) with its fencing token replaced by `token`,
/// re-signed as a forger would: the token is the 8 bytes before the format
/// version (2 bytes) and the CRC-64 (8 bytes).
fn forge_token(payload: &[u8], token: u64) -> Vec<u8> {
    const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);
    let mut forged = payload.to_vec();
    let n = forged.len();
    forged[n - 18..n - 10].copy_from_slice(&token.to_le_bytes());
    let crc = CRC64.checksum(&forged[..n - 8]);
    forged[n - 8..].copy_from_slice(&crc.to_le_bytes());
    forged
}

fn restore(con: &mut redis::Connection, key: &str, payload: &[u8]) -> redis::RedisResult<()> {
    redis::cmd("RESTORE")
        .arg(key)
        .arg(0)
        .arg(payload)
        .query(con)
}

#[test]
fn a_restored_token_ahead_of_the_counter_raises_it_so_tokens_still_increase() {
    let server = TestServer::start();
    let mut con = server.connect();
    let honest = acquire(&mut con, "L", "alice", 60_000).unwrap();
    let dump: Vec<u8> = q(&mut con, &["DUMP", "L"]);
    // Far ahead of the counter (a microsecond clock): a year's worth of grants.
    let forged = honest as u64 + 365 * 86_400 * 1_000_000;
    restore(&mut con, "forged", &forge_token(&dump, forged)).unwrap();
    let info: Vec<redis::Value> = q(&mut con, &["LOCK.INFO", "forged"]);
    assert_eq!(info[5], redis::Value::Int(forged as i64), "{info:?}");
    let next = acquire(&mut con, "fresh", "bob", 60_000).unwrap();
    assert!(next as u64 > forged, "next grant {next} <= forged {forged}");
    // Fill leases come from the same counter, and a restored one raises it too
    // (its token sits where a lock's does: just before version and checksum).
    let lease: Vec<redis::Value> = q(&mut con, &["CACHE.GET", "missing"]);
    assert!(
        matches!(lease.get(1), Some(redis::Value::Int(t)) if *t > next),
        "{lease:?}"
    );
    let dump: Vec<u8> = q(&mut con, &["DUMP", "missing"]);
    let forged_lease = forged + 365 * 86_400 * 1_000_000;
    restore(&mut con, "forged-lease", &forge_token(&dump, forged_lease)).unwrap();
    let next = acquire(&mut con, "fresher", "bob", 60_000).unwrap();
    assert!(
        next as u64 > forged_lease,
        "next grant {next} <= forged lease {forged_lease}"
    );
}

#[test]
fn a_restored_token_above_2_pow_62_is_refused_and_tokens_never_go_negative() {
    let server = TestServer::start();
    let mut con = server.connect();
    acquire(&mut con, "L", "alice", 60_000).unwrap();
    let dump: Vec<u8> = q(&mut con, &["DUMP", "L"]);
    for refused in [(1u64 << 62) + 1, 1 << 63, u64::MAX] {
        let err = restore(&mut con, "forged", &forge_token(&dump, refused)).unwrap_err();
        assert_eq!(
            ringkv_tests::error_text(&err),
            format!(
                "ERR Bad data format: fencing token {refused} is out of range (at most {})",
                1u64 << 62
            )
        );
        assert_eq!(q::<i64>(&mut con, &["EXISTS", "forged"]), 0);
    }
    // The largest accepted token still leaves the next grants positive.
    restore(&mut con, "highest", &forge_token(&dump, 1 << 62)).unwrap();
    for name in ["a", "b", "c"] {
        let token = acquire(&mut con, name, "bob", 60_000).unwrap();
        assert!(token > 1 << 62, "{token}");
    }
}

#[test]
fn waiters_are_served_in_arrival_order_one_per_release() {
    let server = TestServer::start();
    let mut holder = server.connect();
    acquire(&mut holder, "Q", "holder", 30_000).unwrap();
    let mut waiters: Vec<RawConnection> = (0..3).map(|_| server.raw()).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        w.send_command(&[
            "LOCK.ACQUIRE",
            "Q",
            &format!("w{i}"),
            "30000",
            "WAIT",
            "10000",
        ]);
        // Let each request arrive before the next, so the order is known.
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in &mut waiters {
        w.set_timeout(Duration::from_millis(200));
    }
    for (i, w) in waiters.iter_mut().enumerate() {
        assert!(!w.is_closed(), "waiter {i} still connected");
    }
    let info: Vec<redis::Value> = q(&mut holder, &["LOCK.INFO", "Q"]);
    assert_eq!(info[9], redis::Value::Int(3));
    let mut previous = 0;
    for i in 0..3 {
        let owner = if i == 0 {
            "holder".to_string()
        } else {
            format!("w{}", i - 1)
        };
        assert_eq!(q::<i64>(&mut holder, &["LOCK.RELEASE", "Q", &owner]), 0);
        waiters[i].set_timeout(Duration::from_secs(5));
        let token: i64 = waiters[i].reply_text()[1..].parse().unwrap();
        assert!(token > previous);
        previous = token;
        // Exactly one woke: the others are still waiting.
        for later in waiters.iter_mut().skip(i + 1) {
            later.set_timeout(Duration::from_millis(100));
            assert!(!later.is_closed());
        }
    }
}

#[test]
fn a_vanished_holder_frees_the_lock_after_its_lease_and_dead_waiters_leave_the_queue() {
    let server = TestServer::start();
    {
        let mut gone = server.raw();
        assert!(gone
            .call(&["LOCK.ACQUIRE", "V", "gone", "300"])
            .starts_with(':'));
        // Dropped without releasing.
    }
    // A waiter that disconnects must not keep the lock from the next one.
    let mut quitter = server.raw();
    quitter.send_command(&["LOCK.ACQUIRE", "V", "quitter", "10000", "WAIT", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    drop(quitter);
    let mut waiter = server.connect();
    let started = Instant::now();
    let token: Option<i64> = q(
        &mut waiter,
        &["LOCK.ACQUIRE", "V", "next", "10000", "WAIT", "5000"],
    );
    assert!(token.is_some());
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(1_000), "{waited:?}");
    let info: Vec<redis::Value> = q(&mut waiter, &["LOCK.INFO", "V"]);
    assert_eq!(info[1], redis::Value::BulkString(b"next".to_vec()));
    // A wait that runs out answers nil.
    let mut other = server.connect();
    let none: Option<i64> = q(
        &mut other,
        &["LOCK.ACQUIRE", "V", "late", "1000", "WAIT", "100"],
    );
    assert_eq!(none, None);
}
