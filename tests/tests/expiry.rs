//! TTL behaviour against the real server: the EXPIRE family, lazy expiry on access,
//! and active expiry reclaiming keys nobody touches.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringkv_tests::{expect_err, query as q, TestServer};

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn expire_family_and_ttl_readers() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]), -1);
    assert_eq!(q::<i64>(&mut con, &["TTL", "missing"]), -2);
    assert_eq!(q::<i64>(&mut con, &["PTTL", "missing"]), -2);
    assert_eq!(q::<i64>(&mut con, &["EXPIRETIME", "k"]), -1);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "100"]), 1);
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]), 100);
    assert_eq!(q::<i64>(&mut con, &["PEXPIRE", "k", "50000"]), 1);
    let pttl: i64 = q(&mut con, &["PTTL", "k"]);
    assert!((49_000..=50_000).contains(&pttl), "{pttl}");
    let at = unix_ms() / 1000 + 1000;
    assert_eq!(q::<i64>(&mut con, &["EXPIREAT", "k", &at.to_string()]), 1);
    assert_eq!(q::<u64>(&mut con, &["EXPIRETIME", "k"]), at);
    assert_eq!(q::<u64>(&mut con, &["PEXPIRETIME", "k"]), at * 1000);
    let pat = unix_ms() + 2_000_000;
    assert_eq!(q::<i64>(&mut con, &["PEXPIREAT", "k", &pat.to_string()]), 1);
    assert_eq!(q::<u64>(&mut con, &["PEXPIRETIME", "k"]), pat);
    assert_eq!(q::<i64>(&mut con, &["PERSIST", "k"]), 1);
    assert_eq!(q::<i64>(&mut con, &["PERSIST", "k"]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "missing", "10"]), 0);
    // A time in the past deletes the key.
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "-1"]), 1);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "k"]), 0);
}

#[test]
fn expire_conditions_nx_xx_gt_lt() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "100", "XX"]), 0);
    assert_eq!(
        q::<i64>(&mut con, &["EXPIRE", "k", "100", "GT"]),
        0,
        "no TTL counts as infinite"
    );
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "100", "NX"]), 1);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "200", "NX"]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "50", "GT"]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "200", "GT"]), 1);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "300", "LT"]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "100", "LT", "XX"]), 1);
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]), 100);
    let _: () = q(&mut con, &["SET", "p", "v"]);
    assert_eq!(
        q::<i64>(&mut con, &["EXPIRE", "p", "100", "LT", "XX"]),
        0,
        "XX needs a TTL"
    );
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "p", "100", "LT"]), 1);
    assert_eq!(
        expect_err(&mut con, &["EXPIRE", "k", "1", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        expect_err(&mut con, &["EXPIRE", "k", "1", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        expect_err(&mut con, &["EXPIRE", "k", "1", "YY"]),
        "ERR Unsupported option YY"
    );
    assert_eq!(
        expect_err(&mut con, &["EXPIRE", "k", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["EXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        expect_err(&mut con, &["PEXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'pexpire' command"
    );
}

#[test]
fn expired_keys_are_gone_on_access() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "v", "PX", "50"]);
    assert_eq!(q::<String>(&mut con, &["GET", "k"]), "v");
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(q::<Option<String>>(&mut con, &["GET", "k"]), None);
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]), -2);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "k"]), 0);
    // KEEPTTL on an expired key does not resurrect its TTL.
    let _: () = q(&mut con, &["SET", "j", "v", "PX", "30"]);
    std::thread::sleep(Duration::from_millis(80));
    let _: () = q(&mut con, &["SET", "j", "w", "KEEPTTL"]);
    assert_eq!(q::<i64>(&mut con, &["TTL", "j"]), -1);
}

#[test]
fn untouched_expired_keys_are_reclaimed_by_active_expiry() {
    let server = TestServer::start();
    let mut con = server.connect();
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET")
            .arg(format!("short:{i}"))
            .arg("v")
            .arg("PX")
            .arg(100)
            .ignore();
    }
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("keep:{i}")).arg("v").ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // DBSIZE counts without touching keys, so only active expiry can lower it.
        let size: i64 = q(&mut con, &["DBSIZE"]);
        if size == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "{size} keys left after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info: String = q(&mut con, &["INFO", "stats"]);
    assert!(info.contains("expired_keys:20000"), "{info}");
}
