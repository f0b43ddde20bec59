//! Lock round trips: acquire + release pairs per second, and their latency,
//! with ringkv's native locks, with the Redis-compatible pattern on ringkv
//! (`SET NX PX` + `DELIFEQ`), and with Redis's classic pattern (`SET NX PX` +
//! a Lua compare-and-delete), each client on its own lock name.
//!
//! With `--replica`, each server gets a replica, and the native pattern is
//! measured with the lock changes acknowledged by it (the default,
//! docs/CLUSTER.md L1) and answered at once (`lock-replicas-to-ack 0`); Redis's
//! pattern with `WAIT 1` after each step is its acknowledged counterpart.
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! target/release/lock_bench --clients 1,16 --seconds 5 [--replica]
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use ringkv_bench::{have_program, median, ringkv_release_binary, ServerProcess};

/// Measure lock acquire+release round trips.
#[derive(Debug, Parser)]
struct Options {
    /// Concurrent clients (one connection and one lock name each).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16])]
    clients: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Give each server a replica, and measure with and without
    /// acknowledgements.
    #[arg(long)]
    replica: bool,
}

/// How a lock is taken and given back.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Native,
    SetNxDelIfEq,
    SetNxLua,
    /// `SET NX PX`, `WAIT 1`, the Lua release, `WAIT 1`.
    SetNxLuaWait,
}

const RELEASE_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

fn pair(
    con: &mut redis::Connection,
    pattern: Pattern,
    name: &str,
    owner: &str,
) -> redis::RedisResult<()> {
    match pattern {
        Pattern::Native => {
            let token: Option<u64> = redis::cmd("LOCK.ACQUIRE")
                .arg(name)
                .arg(owner)
                .arg(10_000)
                .query(con)?;
            assert!(token.is_some(), "uncontended lock not granted");
            let left: i64 = redis::cmd("LOCK.RELEASE").arg(name).arg(owner).query(con)?;
            assert_eq!(left, 0);
        }
        Pattern::SetNxDelIfEq | Pattern::SetNxLua | Pattern::SetNxLuaWait => {
            let wait = |con: &mut redis::Connection| -> redis::RedisResult<()> {
                if matches!(pattern, Pattern::SetNxLuaWait) {
                    let acked: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(con)?;
                    assert_eq!(acked, 1, "the replica did not acknowledge");
                }
                Ok(())
            };
            let set: Option<String> = redis::cmd("SET")
                .arg(name)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query(con)?;
            assert!(set.is_some(), "uncontended lock not granted");
            wait(con)?;
            let deleted: i64 = match pattern {
                Pattern::SetNxDelIfEq => redis::cmd("DELIFEQ").arg(name).arg(owner).query(con)?,
                _ => redis::cmd("EVAL")
                    .arg(RELEASE_SCRIPT)
                    .arg(1)
                    .arg(name)
                    .arg(owner)
                    .query(con)?,
            };
            assert_eq!(deleted, 1);
            wait(con)?;
        }
    }
    Ok(())
}

/// Pairs per second and the median and 99th-percentile pair latency in µs.
fn measure(port: u16, pattern: Pattern, clients: usize, seconds: u64) -> (f64, f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            std::thread::spawn(move || {
                let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
                let mut con = client.get_connection().unwrap();
                let (name, owner) = (format!("bench:lock:{i}"), format!("owner-{i}"));
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    pair(&mut con, pattern, &name, &owner).expect("lock round trip");
                    latencies.push(started.elapsed().as_secs_f64() * 1e6);
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let rate = all.len() as f64 / seconds as f64;
    all.sort_by(f64::total_cmp);
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or(0.0);
    (rate, median(&mut all), p99)
}

/// Starts a replica of `master` (started by `start`) and waits until its
/// master counts it online.
fn with_replica(
    master: &ServerProcess,
    start: impl FnOnce() -> std::io::Result<ServerProcess>,
) -> ServerProcess {
    let replica = start().expect("start replica");
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", replica.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: String = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port)
        .query(&mut con)
        .unwrap();
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", master.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut con)
            .unwrap();
        if info.contains("state=online") {
            return replica;
        }
        assert!(Instant::now() < deadline, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set_config(port: u16, name: &str, value: &str) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(&mut con)
        .unwrap();
}

/// `--replica`: lock round trips with lock changes acknowledged by a replica
/// and answered at once, against Redis with and without `WAIT 1`.
fn replicated(o: &Options) {
    // Granting at once after the start (the default refuses grants for
    // lock-max-ttl after a start, L5).
    let binary = ringkv_release_binary();
    let start = || ServerProcess::ringkv(&binary, &["--lock-delay", "0"]);
    let ringkv = start().expect("start ringkv");
    let _ringkv_replica = with_replica(&ringkv, start);
    let redis =
        have_program("redis-server").then(|| ServerProcess::redis(&[]).expect("start redis"));
    let _redis_replica = redis
        .as_ref()
        .map(|redis| with_replica(redis, || ServerProcess::redis(&[])));
    println!(
        "acquire + release pairs with one replica, each client on its own lock, {} s per row",
        o.seconds
    );
    println!();
    println!("| server | pattern | clients | pairs/s | p50 µs | p99 µs |");
    println!("|---|---|---:|---:|---:|---:|");
    for &clients in &o.clients {
        for (acks, label) in [
            ("-1", "LOCK.ACQUIRE + LOCK.RELEASE, acknowledged"),
            ("0", "LOCK.ACQUIRE + LOCK.RELEASE, lock-replicas-to-ack 0"),
        ] {
            set_config(ringkv.port, "lock-replicas-to-ack", acks);
            let (rate, p50, p99) = measure(ringkv.port, Pattern::Native, clients, o.seconds);
            println!("| ringkv | {label} | {clients} | {rate:.0} | {p50:.1} | {p99:.1} |");
        }
        if let Some(redis) = &redis {
            for (pattern, label) in [
                (
                    Pattern::SetNxLuaWait,
                    "SET NX PX + WAIT 1 + EVAL release + WAIT 1",
                ),
                (Pattern::SetNxLua, "SET NX PX + EVAL release"),
            ] {
                let (rate, p50, p99) = measure(redis.port, pattern, clients, o.seconds);
                println!("| redis | {label} | {clients} | {rate:.0} | {p50:.1} | {p99:.1} |");
            }
        }
    }
}

fn main() {
    let o = Options::parse();
    if o.replica {
        return replicated(&o);
    }
    let ringkv = ServerProcess::ringkv(&ringkv_release_binary(), &["--lock-delay", "0"])
        .expect("start ringkv");
    let redis =
        have_program("redis-server").then(|| ServerProcess::redis(&[]).expect("start redis"));
    println!(
        "acquire + release pairs, each client on its own lock, {} s per row",
        o.seconds
    );
    println!();
    println!("| server | pattern | clients | pairs/s | p50 µs | p99 µs |");
    println!("|---|---|---:|---:|---:|---:|");
    for &clients in &o.clients {
        let mut rows = vec![
            (
                "ringkv",
                ringkv.port,
                Pattern::Native,
                "LOCK.ACQUIRE + LOCK.RELEASE",
            ),
            (
                "ringkv",
                ringkv.port,
                Pattern::SetNxDelIfEq,
                "SET NX PX + DELIFEQ",
            ),
        ];
        if let Some(redis) = &redis {
            rows.push((
                "redis",
                redis.port,
                Pattern::SetNxLua,
                "SET NX PX + EVAL release",
            ));
        }
        for (server, port, pattern, label) in rows {
            let (rate, p50, p99) = measure(port, pattern, clients, o.seconds);
            println!("| {server} | {label} | {clients} | {rate:.0} | {p50:.1} | {p99:.1} |");
        }
    }
}
