//! Cache-penetration protection against the real server: CACHE.GET leases,
//! CACHE.FILL values and known absences, stale fills, waiting readers, jitter.

use std::time::Duration;

use redis::Value;
use ringkv_tests::{expect_err, query as q, TestServer};

fn info_stat(con: &mut redis::Connection, field: &str) -> u64 {
    let text: String = q(con, &["INFO", "stats"]);
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field}"))
}

/// A `CACHE.GET` reply as (kind, payload).
fn cache_get(con: &mut redis::Connection, args: &[&str]) -> (String, Option<Value>) {
    let mut cmd = redis::cmd("CACHE.GET");
    for a in args {
        cmd.arg(*a);
    }
    let reply: Vec<Value> = cmd.query(con).expect("CACHE.GET");
    let kind = match &reply[0] {
        Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("{other:?}"),
    };
    (kind, reply.get(1).cloned())
}

fn lease_of(reply: (String, Option<Value>)) -> i64 {
    match reply {
        (kind, Some(Value::Int(token))) if kind == "lease" => token,
        other => panic!("expected a lease, got {other:?}"),
    }
}

#[test]
fn a_miss_leases_one_filler_others_wait_and_the_fill_serves_everyone() {
    let server = TestServer::start();
    let mut a = server.connect();
    let mut b = server.connect();
    let token = lease_of(cache_get(&mut a, &["user:1"]));
    assert_eq!(cache_get(&mut b, &["user:1"]).0, "wait");
    // Plain GET sees no value while the fill is pending.
    assert_eq!(q::<Option<String>>(&mut b, &["GET", "user:1"]), None);
    assert_eq!(q::<String>(&mut b, &["TYPE", "user:1"]), "cache-lease");
    let filled: i64 = q(
        &mut a,
        &["CACHE.FILL", "user:1", &token.to_string(), "VALUE", "alice"],
    );
    assert_eq!(filled, 1);
    assert_eq!(
        cache_get(&mut b, &["user:1"]),
        ("value".into(), Some(Value::BulkString(b"alice".to_vec())))
    );
    assert_eq!(q::<String>(&mut b, &["GET", "user:1"]), "alice");
    // A second fill with the used lease is stale.
    assert_eq!(
        q::<i64>(
            &mut a,
            &["CACHE.FILL", "user:1", &token.to_string(), "VALUE", "x"]
        ),
        0
    );
    assert_eq!(info_stat(&mut a, "cache_lease_grants"), 1);
    assert_eq!(info_stat(&mut a, "cache_stale_fills_rejected"), 1);
}

#[test]
fn known_absences_are_cached_and_told_apart_from_misses() {
    let server = TestServer::start();
    let mut con = server.connect();
    let token = lease_of(cache_get(&mut con, &["user:404"]));
    let _: i64 = q(
        &mut con,
        &[
            "CACHE.FILL",
            "user:404",
            &token.to_string(),
            "NULL",
            "PX",
            "300",
        ],
    );
    for _ in 0..3 {
        assert_eq!(cache_get(&mut con, &["user:404"]), ("null".into(), None));
    }
    assert_eq!(q::<Option<String>>(&mut con, &["GET", "user:404"]), None);
    assert_eq!(q::<String>(&mut con, &["TYPE", "user:404"]), "cache-null");
    assert_eq!(info_stat(&mut con, "cache_null_hits"), 3);
    std::thread::sleep(Duration::from_millis(350));
    // The absence expired: the next reader is the one to look again.
    lease_of(cache_get(&mut con, &["user:404"]));
}

#[test]
fn a_write_between_lease_and_fill_makes_the_fill_stale() {
    let server = TestServer::start();
    let mut con = server.connect();
    let token = lease_of(cache_get(&mut con, &["k"]));
    let _: () = q(&mut con, &["SET", "k", "fresh"]);
    assert_eq!(
        q::<i64>(
            &mut con,
            &["CACHE.FILL", "k", &token.to_string(), "VALUE", "old"]
        ),
        0
    );
    assert_eq!(q::<String>(&mut con, &["GET", "k"]), "fresh");
    let token = lease_of(cache_get(&mut con, &["gone"]));
    let _: i64 = q(&mut con, &["DEL", "gone"]);
    assert_eq!(
        q::<i64>(
            &mut con,
            &["CACHE.FILL", "gone", &token.to_string(), "VALUE", "old"]
        ),
        0
    );
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "gone"]), 0);
    assert_eq!(info_stat(&mut con, "cache_stale_fills_rejected"), 2);
}

#[test]
fn waiting_readers_get_the_fill_or_a_new_lease_when_the_filler_dies() {
    let server = TestServer::start();
    let mut filler = server.connect();
    let token = lease_of(cache_get(&mut filler, &["slow"]));
    let waiter = {
        let url = server.url();
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
            cache_get(&mut con, &["slow", "WAIT", "5000"])
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let _: i64 = q(
        &mut filler,
        &["CACHE.FILL", "slow", &token.to_string(), "VALUE", "done"],
    );
    assert_eq!(
        waiter.join().unwrap(),
        ("value".into(), Some(Value::BulkString(b"done".to_vec())))
    );

    // A filler that vanishes: its short lease runs out and a waiter gets a new one.
    lease_of(cache_get(&mut filler, &["orphan", "LEASE", "200"]));
    let mut reader = server.connect();
    let started = std::time::Instant::now();
    let next = lease_of(cache_get(&mut reader, &["orphan", "WAIT", "5000"]));
    assert!(next > token);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The lease handed on when the first ran out counts too.
    assert_eq!(info_stat(&mut reader, "cache_lease_grants"), 3);
}

#[test]
fn fills_take_ttls_with_jitter_and_bad_input_gets_errors() {
    let server = TestServer::start();
    let mut con = server.connect();
    for i in 0..20 {
        let key = format!("j{i}");
        let token = lease_of(cache_get(&mut con, &[&key]));
        let _: i64 = q(
            &mut con,
            &[
                "CACHE.FILL",
                &key,
                &token.to_string(),
                "VALUE",
                "v",
                "PX",
                "10000",
                "JITTER",
                "20",
            ],
        );
        let pttl: i64 = q(&mut con, &["PTTL", &key]);
        assert!((7_900..=12_000).contains(&pttl), "{pttl}");
    }
    assert_eq!(
        expect_err(&mut con, &["CACHE.FILL", "k", "1", "MAYBE", "v"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(
            &mut con,
            &["CACHE.FILL", "k", "1", "VALUE", "v", "JITTER", "101"]
        ),
        "ERR JITTER must be a percentage from 0 to 100"
    );
    assert_eq!(
        expect_err(&mut con, &["CACHE.FILL", "k", "x", "NULL"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["CACHE.GET", "k", "LEASE", "0"]),
        "ERR invalid LEASE: expected milliseconds > 0"
    );
    let _: () = q(&mut con, &["RPUSH", "list", "a"]);
    assert_eq!(
        expect_err(&mut con, &["CACHE.GET", "list"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[test]
fn a_released_lease_goes_to_the_next_waiting_reader_at_once() {
    let server = TestServer::start();
    let mut failed_loader = server.connect();
    let token = lease_of(cache_get(&mut failed_loader, &["k", "LEASE", "60000"]));
    let waiter = {
        let url = server.url();
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
            let started = std::time::Instant::now();
            (
                cache_get(&mut con, &["k", "WAIT", "5000"]),
                started.elapsed(),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        q::<i64>(&mut failed_loader, &["CACHE.RELEASE", "k", "1"]),
        0
    );
    assert_eq!(
        q::<i64>(
            &mut failed_loader,
            &["CACHE.RELEASE", "k", &token.to_string()]
        ),
        1
    );
    let (reply, waited) = waiter.join().unwrap();
    assert!(lease_of(reply) > token);
    assert!(waited < Duration::from_secs(2));
}
