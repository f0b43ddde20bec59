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
