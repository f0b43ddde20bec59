//! Lock round trips: acquire + release pairs per second, and their latency,
//! with ringkv's native locks, with the Redis-compatible pattern on ringkv
//! (`SET NX PX` + `DELIFEQ`), and with Redis's classic pattern (`SET NX PX` +
//! a Lua compare-and-delete), each client on its own lock name.
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! target/release/lock_bench --clients 1,16 --seconds 5
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
}

/// How a lock is taken and given back.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Native,
    SetNxDelIfEq,
    SetNxLua,
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
        Pattern::SetNxDelIfEq | Pattern::SetNxLua => {
            let set: Option<String> = redis::cmd("SET")
                .arg(name)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query(con)?;
            assert!(set.is_some(), "uncontended lock not granted");
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

fn main() {
    let o = Options::parse();
    let ringkv = ServerProcess::ringkv(&ringkv_release_binary(), &[]).expect("start ringkv");
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
