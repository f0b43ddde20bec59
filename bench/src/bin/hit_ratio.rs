//! Hit ratio of a cache under a memory limit: replays key traces cache-aside
//! (GET; on a miss, SET the value with a TTL) against ringkv under each of its
//! eviction policies and, when installed, Redis under allkeys-lru and
//! allkeys-lfu, all with the same `maxmemory`, and prints one table.
//!
//! `maxmemory` is what Redis needs to hold `--fit` (10%) of the keys: measured
//! by loading that many into a Redis without a limit (or into ringkv when Redis
//! is not installed). Hit ratios count the second half of each trace; the first
//! half warms the cache.
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! target/release/hit_ratio
//! ```

use std::io::Write;

use clap::Parser;
use ringkv_bench::trace::{generate, TraceKind};
use ringkv_bench::{have_program, info_field, ringkv_release_binary, ServerProcess};
use ringkv_server::memory;

/// Replay traces cache-aside and compare hit ratios.
#[derive(Debug, Parser)]
struct Options {
    /// Distinct keys of the Zipf population.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Zipf requests per trace (scans come on top).
    #[arg(long, default_value_t = 2_000_000)]
    requests: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Share of the keys that must fit Redis at the chosen maxmemory.
    #[arg(long, default_value_t = 0.10)]
    fit: f64,
    /// GETs per pipelined batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// ringkv policies to run (default: all).
    #[arg(long, value_delimiter = ',')]
    policies: Option<Vec<String>>,
    /// Traces to run: zipf0.99, zipf0.7, scan (default: all three).
    #[arg(long, value_delimiter = ',')]
    traces: Option<Vec<String>>,
    /// Skip Redis even when installed.
    #[arg(long)]
    no_redis: bool,
}

const RINGKV_POLICIES: [&str; 9] = [
    "allkeys-tinylfu",
    "allkeys-lfu",
    "allkeys-lru",
    "allkeys-random",
    "volatile-lfu",
    "volatile-lru",
    "volatile-random",
    "volatile-ttl",
    "noeviction",
];
const REDIS_POLICIES: [&str; 2] = ["allkeys-lfu", "allkeys-lru"];
/// TTL of cached values: long enough never to expire during a run, and what
/// makes the volatile-* policies apply.
const TTL_SECONDS: u64 = 3_600;

fn key_name(id: u64) -> String {
    format!("object:{id:010}")
}

fn value_for(id: u64, size: usize) -> Vec<u8> {
    let mut value = format!("v{id}:").into_bytes();
    value.resize(size, b'x');
    value
}

/// What one replay measured.
struct Outcome {
    hits: u64,
    lookups: u64,
    refused_sets: u64,
}

/// Replays `trace` cache-aside; counts hits from `count_from` on.
fn replay(port: u16, trace: &[u64], count_from: usize, o: &Options) -> redis::RedisResult<Outcome> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut con = client.get_connection()?;
    let mut outcome = Outcome {
        hits: 0,
        lookups: 0,
        refused_sets: 0,
    };
    for (batch_index, batch) in trace.chunks(o.batch).enumerate() {
        let mut gets = redis::pipe();
        for &id in batch {
            gets.get(key_name(id));
        }
        let values: Vec<Option<Vec<u8>>> = gets.query(&mut con)?;
        let counted = batch_index * o.batch >= count_from;
        let mut fills = redis::pipe();
        let mut misses = 0;
        for (&id, value) in batch.iter().zip(&values) {
            if counted {
                outcome.lookups += 1;
                outcome.hits += u64::from(value.is_some());
            }
            if value.is_none() {
                misses += 1;
                fills
                    .cmd("SET")
                    .arg(key_name(id))
                    .arg(value_for(id, o.value_size))
                    .arg("EX")
                    .arg(TTL_SECONDS);
            }
        }
        if misses > 0 {
            // Each SET answers OK or, under noeviction, an OOM error.
            let replies: Vec<redis::Value> = fills.query(&mut con).unwrap_or_default();
            let stored = replies
                .iter()
                .filter(|r| matches!(r, redis::Value::Okay))
                .count();
            outcome.refused_sets += (misses - stored) as u64;
        }
    }
    Ok(outcome)
}

/// `maxmemory` that holds `fit` of the keys in `server` (started without a limit).
fn measure_maxmemory(server: &ServerProcess, o: &Options) -> redis::RedisResult<u64> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port))?;
    let mut con = client.get_connection()?;
    let count = (o.keys as f64 * o.fit) as u64;
    for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for &id in chunk {
            pipe.cmd("SET")
                .arg(key_name(id))
                .arg(value_for(id, o.value_size))
                .arg("EX")
                .arg(TTL_SECONDS)
                .ignore();
        }
        pipe.query::<()>(&mut con)?;
    }
    Ok(info_field(server.port, "used_memory").unwrap_or(0))
}

fn main() {
    let o = Options::parse();
    let binary = ringkv_release_binary();
    let redis = !o.no_redis && have_program("redis-server");
    let sizing = if redis {
        ServerProcess::redis(&[]).expect("start redis")
    } else {
        ServerProcess::ringkv(&binary, &[]).expect("start ringkv")
    };
    let maxmemory = measure_maxmemory(&sizing, &o).expect("sizing load");
    let sized_on = sizing.name.clone();
    drop(sizing);

    let policies: Vec<String> = o
        .policies
        .clone()
        .unwrap_or_else(|| RINGKV_POLICIES.iter().map(|p| p.to_string()).collect());
    let mut runs: Vec<(&str, String)> = policies.iter().map(|p| ("ringkv", p.clone())).collect();
    if redis {
        runs.extend(REDIS_POLICIES.iter().map(|p| ("redis", p.to_string())));
    }
    let traces = [
        ("zipf0.99", TraceKind::Zipf(0.99)),
        ("zipf0.7", TraceKind::Zipf(0.7)),
        (
            "scan",
            TraceKind::ScanMixed {
                alpha: 0.99,
                every: 200_000,
                length: o.keys / 10,
            },
        ),
    ];
    println!(
        "{} keys, {}-byte values, TTL {TTL_SECONDS} s; maxmemory {maxmemory} bytes ({:.0}% of the keys in {sized_on}); {} Zipf requests per trace, hit ratio over the second half",
        o.keys,
        o.value_size,
        o.fit * 100.0,
        o.requests
    );
    println!();
    println!("| trace | server | policy | hit ratio | keys held | evicted | RSS MB |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for (seed, (name, kind)) in traces.into_iter().enumerate() {
        if o.traces
            .as_ref()
            .is_some_and(|t| !t.iter().any(|t| t == name))
        {
            continue;
        }
        let trace = generate(kind, o.keys, o.requests, seed as u64 + 1);
        for (server_name, policy) in &runs {
            let limit = maxmemory.to_string();
            let flags = ["--maxmemory", &limit, "--maxmemory-policy", policy];
            let server = match *server_name {
                "redis" => ServerProcess::redis(&flags),
                _ => ServerProcess::ringkv(&binary, &flags),
            }
            .expect("start server");
            let outcome = replay(server.port, &trace, trace.len() / 2, &o).expect("replay");
            let held = info_field(server.port, "db0").unwrap_or(0);
            let keys = dbsize(server.port).unwrap_or(held);
            let evicted = info_field(server.port, "evicted_keys").unwrap_or(0);
            let rss = memory::rss_of(Some(server.pid())) as f64 / 1048576.0;
            let ratio = outcome.hits as f64 / outcome.lookups.max(1) as f64;
            let refused = if outcome.refused_sets > 0 {
                format!(" ({} SETs refused)", outcome.refused_sets)
            } else {
                String::new()
            };
            println!(
                "| {} | {server_name} | {policy}{refused} | {:.4} | {keys} | {evicted} | {rss:.1} |",
                kind.label(),
                ratio
            );
            let _ = std::io::stdout().flush();
        }
    }
}

fn dbsize(port: u16) -> Option<u64> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut con = client.get_connection().ok()?;
    redis::cmd("DBSIZE").query(&mut con).ok()
}
