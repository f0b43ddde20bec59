//! The Redis tools people already have: redis-cli and redis-benchmark work
//! unchanged. Skipped (with a note) where redis-tools is not installed; CI installs it.

use std::process::Command;

use ringkv_tests::{have_program, TestServer};

fn cli(server: &TestServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn redis_cli_set_get_ttl() {
    if !have_program("redis-cli") {
        eprintln!("redis-cli not installed; skipping");
        return;
    }
    let server = TestServer::start();
    assert_eq!(cli(&server, &["set", "k", "v", "EX", "10"]), "OK");
    assert_eq!(cli(&server, &["get", "k"]), "v");
    let ttl: i64 = cli(&server, &["ttl", "k"]).parse().unwrap();
    assert!((9..=10).contains(&ttl));
    assert_eq!(cli(&server, &["incr", "n"]), "1");
    assert_eq!(cli(&server, &["get", "missing"]), "");
    assert_eq!(cli(&server, &["-3", "get", "missing"]), "");
    assert!(cli(&server, &["info", "server"]).contains("redis_version:7.2.4"));
    assert_eq!(
        cli(&server, &["nosuchcmd"]),
        "ERR unknown command 'nosuchcmd', with args beginning with:"
    );
}

#[test]
fn the_plain_redis_benchmark_default_suite_runs_without_errors() {
    if !have_program("redis-benchmark") {
        eprintln!("redis-benchmark not installed; skipping");
        return;
    }
    let server = TestServer::start();
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-n", "5000", "-q", "--csv"])
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("ERR") && !stdout.contains("ERR"),
        "{stdout}\n{stderr}"
    );
    for test in [
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LRANGE_100 (first 100 elements)",
        "LRANGE_300 (first 300 elements)",
        "LRANGE_500 (first 500 elements)",
        "LRANGE_600 (first 600 elements)",
        "MSET (10 keys)",
    ] {
        assert!(
            stdout.contains(&format!("\"{test}\"")),
            "{test} missing:\n{stdout}"
        );
    }
}

#[test]
fn redis_benchmark_finishes_without_errors() {
    if !have_program("redis-benchmark") {
        eprintln!("redis-benchmark not installed; skipping");
        return;
    }
    let server = TestServer::start();
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-t", "ping,set,get,incr,mset", "-n", "20000", "-q", "--csv"])
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("ERR") && !stdout.contains("ERR"),
        "{stdout}\n{stderr}"
    );
    for test in [
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "MSET (10 keys)",
    ] {
        assert!(
            stdout.contains(&format!("\"{test}\"")),
            "{test} missing:\n{stdout}"
        );
    }
    // Every request ran: 20000 each of PING x2, SET, GET, INCR, MSET.
    let mut con = server.connect();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    for cmd in ["ping", "set", "get", "incr", "mset"] {
        let calls = info
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(calls >= 20_000, "{cmd}: {calls}");
    }
}
