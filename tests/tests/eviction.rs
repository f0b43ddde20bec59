//! The memory limit against the real server: what each policy evicts, OOM
//! under noeviction, runtime CONFIG SET of maxmemory, and used_memory staying
//! under the limit while writes keep coming.

use ringkv_tests::{expect_err, query as q, TestServer};

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let text: String = q(con, &["INFO", section]);
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

fn used_memory(con: &mut redis::Connection) -> u64 {
    info_field(con, "memory", "used_memory")
}

/// What `used_memory` may read above the limit besides the last write: the
/// `INFO` reply being built, and up to 64 KiB each that background threads
/// have not yet published.
const SLACK: u64 = 192 << 10;

/// Sets the limit to what the server uses now plus `headroom` bytes.
fn limit_above_now(con: &mut redis::Connection, policy: &str, headroom: u64) -> u64 {
    let limit = used_memory(con) + headroom;
    let _: () = q(
        con,
        &[
            "CONFIG",
            "SET",
            "maxmemory",
            &limit.to_string(),
            "maxmemory-policy",
            policy,
        ],
    );
    limit
}

/// SETs keys `prefix0..prefix{count}` with `size`-byte values, pipelined.
fn fill(
    con: &mut redis::Connection,
    prefix: &str,
    range: std::ops::Range<usize>,
    size: usize,
    ttl: bool,
) {
    let value = "v".repeat(size);
    let keys: Vec<usize> = range.collect();
    for chunk in keys.chunks(200) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let cmd = pipe.cmd("SET").arg(format!("{prefix}{i}")).arg(&value);
            if ttl {
                cmd.arg("EX").arg(3_600);
            }
            cmd.ignore();
        }
        pipe.query::<()>(con).expect("fill");
    }
}

fn exists(con: &mut redis::Connection, key: &str) -> bool {
    q::<i64>(con, &["EXISTS", key]) == 1
}

#[test]
fn lru_keeps_the_keys_in_use() {
    let server = TestServer::start();
    let mut con = server.connect();
    let limit = limit_above_now(&mut con, "allkeys-lru", 4 << 20);
    fill(&mut con, "hot:", 0..200, 100, false);
    // 40,000 keys of ~200 bytes: twice what fits. The hot keys are read
    // between every batch of writes.
    for round in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(15));
        let mut reads = redis::pipe();
        for i in 0..200 {
            reads.get(format!("hot:{i}")).ignore();
        }
        reads.query::<()>(&mut con).unwrap();
        fill(
            &mut con,
            "cold:",
            round * 1_000..(round + 1) * 1_000,
            100,
            false,
        );
    }
    assert!(info_field(&mut con, "stats", "evicted_keys") > 5_000);
    assert!(used_memory(&mut con) <= limit + SLACK);
    let lost: Vec<usize> = (0..200)
        .filter(|i| !exists(&mut con, &format!("hot:{i}")))
        .collect();
    assert!(lost.is_empty(), "hot keys evicted: {lost:?}");
}

#[test]
fn volatile_policies_never_evict_keys_without_ttl() {
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let server = TestServer::start();
        let mut con = server.connect();
        limit_above_now(&mut con, policy, 3 << 20);
        fill(&mut con, "keep:", 0..2_000, 500, false);
        fill(&mut con, "cache:", 0..20_000, 500, true);
        assert!(
            info_field(&mut con, "stats", "evicted_keys") > 10_000,
            "{policy}"
        );
        assert!(
            (0..2_000).all(|i| exists(&mut con, &format!("keep:{i}"))),
            "{policy}"
        );
        // Once no key has a TTL, writes that need memory are refused.
        let mut refused = None;
        for i in 0..20_000 {
            let reply: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("more:{i}"))
                .arg("v".repeat(500))
                .query(&mut con);
            if let Err(err) = reply {
                refused = Some(ringkv_tests::error_text(&err));
                break;
            }
        }
        assert_eq!(
            refused.as_deref(),
            Some("OOM command not allowed when used memory > 'maxmemory'."),
            "{policy}"
        );
        assert!(q::<u64>(&mut con, &["DBSIZE"]) >= 2_000);
    }
}

#[test]
fn noeviction_refuses_writes_but_serves_reads_and_deletes() {
    let server = TestServer::start();
    let mut con = server.connect();
    limit_above_now(&mut con, "noeviction", 1 << 20);
    let mut written = 0;
    let err = loop {
        let reply: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("k{written}"))
            .arg("v".repeat(1_000))
            .query(&mut con);
        match reply {
            Ok(()) => written += 1,
            Err(err) => break ringkv_tests::error_text(&err),
        }
        assert!(written < 10_000, "the limit never applied");
    };
    assert_eq!(
        err,
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert!(written > 500);
    assert_eq!(
        expect_err(&mut con, &["LPUSH", "list", "x"]),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    // Reads and deletes still work, and deleting makes room again.
    assert_eq!(q::<String>(&mut con, &["GET", "k0"]).len(), 1_000);
    let keys: Vec<String> = (0..written).map(|i| format!("k{i}")).collect();
    let mut del = redis::cmd("DEL");
    for key in &keys {
        del.arg(key);
    }
    assert_eq!(del.query::<usize>(&mut con).unwrap(), written);
    let _: () = q(&mut con, &["SET", "again", "v"]);
    // A queued write under OOM aborts the transaction.
    let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", "1"]);
    let _: () = q(&mut con, &["MULTI"]);
    assert!(expect_err(&mut con, &["SET", "t", "v"]).starts_with("OOM"));
    assert!(expect_err(&mut con, &["EXEC"]).starts_with("EXECABORT"));
    assert_eq!(info_field(&mut con, "stats", "evicted_keys"), 0);
}

#[test]
fn lowering_maxmemory_at_runtime_evicts_at_once() {
    let server = TestServer::start();
    let mut con = server.connect();
    fill(&mut con, "k", 0..50_000, 100, false);
    let full = used_memory(&mut con);
    let baseline = {
        let fresh = TestServer::start();
        used_memory(&mut fresh.connect())
    };
    let limit = baseline + (full - baseline) / 2;
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    );
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory", &limit.to_string()],
    );
    assert!(used_memory(&mut con) <= limit + SLACK);
    // Every key is either still there or counted as evicted. The cron may
    // evict a few more between the two reads (memory hovers at the limit and
    // INFO's own replies take some), so the counter, read second, may be ahead.
    let left: u64 = q(&mut con, &["DBSIZE"]);
    let evicted = info_field(&mut con, "stats", "evicted_keys");
    assert!((15_000..30_000).contains(&left), "{left} keys left");
    assert!(
        (50_000..50_500).contains(&(left + evicted)),
        "{evicted} evicted, {left} left"
    );
    assert_eq!(info_field(&mut con, "memory", "maxmemory"), limit);
    let text: String = q(&mut con, &["INFO", "memory"]);
    assert!(text.contains("maxmemory_policy:allkeys-random"));
    assert!(text.contains("mem_fragmentation_ratio:"));
    assert!(text.contains("used_memory_peak:"));
}

#[test]
fn used_memory_never_passes_the_limit_by_more_than_one_write() {
    let server = TestServer::start();
    let mut con = server.connect();
    let limit = limit_above_now(&mut con, "allkeys-lru", 4 << 20);
    let mut peak_excess = 0i64;
    for round in 0..30 {
        // Batches of small writes, then one large one.
        fill(&mut con, &format!("r{round}:"), 0..500, 200, false);
        let large = "x".repeat(256 << 10);
        let _: () = q(&mut con, &["SET", &format!("large{round}"), &large]);
        peak_excess = peak_excess.max(used_memory(&mut con) as i64 - limit as i64);
    }
    assert!(info_field(&mut con, "stats", "evicted_keys") > 0);
    // One 256 KiB value (in its 320 KiB size class) over, at most.
    assert!(
        peak_excess <= (320 << 10) + SLACK as i64,
        "{peak_excess} bytes over the limit"
    );
}

#[test]
fn lfu_policies_count_frequency_and_object_answers_as_redis() {
    let server = TestServer::start_with(&["--maxmemory-policy", "allkeys-lfu"]);
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "v"]);
    for _ in 0..100 {
        let _: String = q(&mut con, &["GET", "k"]);
    }
    let freq: i64 = q(&mut con, &["OBJECT", "FREQ", "k"]);
    assert!(freq > 5, "{freq}");
    assert!(expect_err(&mut con, &["OBJECT", "IDLETIME", "k"])
        .starts_with("ERR An LFU maxmemory policy is selected, idle time not tracked"));
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-tinylfu"],
    );
    // As in Redis, keys stamped under the old policy take a while to adjust;
    // keys written now are stamped for the new one.
    let _: () = q(&mut con, &["SET", "fresh", "v"]);
    assert_eq!(q::<i64>(&mut con, &["OBJECT", "IDLETIME", "fresh"]), 0);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["CONFIG", "GET", "maxmemory-policy"]),
        ["maxmemory-policy", "allkeys-tinylfu"]
    );
    assert!(
        expect_err(&mut con, &["CONFIG", "SET", "maxmemory-policy", "lru"])
            .contains("allkeys-tinylfu")
    );
}

#[test]
fn evictions_are_announced_as_keyspace_events() {
    let server = TestServer::start_with(&["--notify-keyspace-events", "Ee"]);
    let mut subscriber = server.connect();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("__keyevent@0__:evicted").unwrap();
    pubsub
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut con = server.connect();
    fill(&mut con, "k", 0..2_000, 100, false);
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", "1"]);
    assert_eq!(q::<u64>(&mut con, &["DBSIZE"]), 0);
    let message = pubsub.get_message().expect("an evicted event");
    let key: String = message.get_payload().unwrap();
    assert!(key.starts_with('k'), "{key}");
}
