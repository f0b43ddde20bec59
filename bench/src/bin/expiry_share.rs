//! Active expiry under a stream of short-TTL writes: how many keys the server
//! holds that have already expired (neither read nor yet reclaimed), and how
//! long a client waits meanwhile.
//!
//! A writer streams `SET key value PX <ttl>` with new keys and TTLs spread over
//! `--min-ttl`..`--max-ttl` ms; it knows every key's deadline, so it knows how
//! many are live. A second connection samples `DBSIZE` and times a `PING`
//! every 50 ms. The expired share is `(DBSIZE - live) / DBSIZE`; the table gives
//! its mean and peak and the slowest PING, for ringkv and (when installed) Redis.
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! target/release/expiry_share --seconds 10
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rand::{RngExt, SeedableRng};
use ringkv_bench::{have_program, ringkv_release_binary, ServerProcess};

/// Measure expired-but-unreclaimed keys under short-TTL writes.
#[derive(Debug, Parser)]
struct Options {
    /// Seconds to run per server.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Shortest TTL in ms.
    #[arg(long, default_value_t = 100)]
    min_ttl: u64,
    /// Longest TTL in ms.
    #[arg(long, default_value_t = 2_000)]
    max_ttl: u64,
    /// SETs per pipelined batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Report {
    writes: u64,
    mean_share: f64,
    peak_share: f64,
    peak_keys: u64,
    slowest_ping: Duration,
}

fn run(port: u16, o: &Options) -> redis::RedisResult<Report> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut writer = client.get_connection()?;
    let mut sampler = client.get_connection()?;
    let live = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let samples = std::thread::spawn({
        let (live, done) = (live.clone(), done.clone());
        move || {
            let mut shares = Vec::new();
            let mut peak_keys = 0;
            let mut slowest = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let started = Instant::now();
                let _: String = redis::cmd("PING").query(&mut sampler).unwrap_or_default();
                slowest = slowest.max(started.elapsed());
                let keys: u64 = redis::cmd("DBSIZE").query(&mut sampler).unwrap_or(0);
                let live = live.load(Ordering::Relaxed);
                peak_keys = peak_keys.max(keys);
                if keys > 0 {
                    shares.push(keys.saturating_sub(live) as f64 / keys as f64);
                }
            }
            (shares, peak_keys, slowest)
        }
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut deadlines = BinaryHeap::new();
    let value = "v".repeat(32);
    let end = Instant::now() + Duration::from_secs(o.seconds);
    let mut writes = 0u64;
    while Instant::now() < end {
        let mut pipe = redis::pipe();
        let now = unix_ms();
        for _ in 0..o.batch {
            let ttl = rng.random_range(o.min_ttl..=o.max_ttl);
            pipe.cmd("SET")
                .arg(format!("t:{writes}"))
                .arg(&value)
                .arg("PX")
                .arg(ttl)
                .ignore();
            deadlines.push(Reverse(now + ttl));
            writes += 1;
        }
        pipe.query::<()>(&mut writer)?;
        let now = unix_ms();
        while deadlines.peek().is_some_and(|Reverse(at)| *at <= now) {
            deadlines.pop();
        }
        live.store(deadlines.len() as u64, Ordering::Relaxed);
    }
    done.store(true, Ordering::Relaxed);
    let (shares, peak_keys, slowest_ping) = samples.join().expect("sampler");
    // The first second fills the keyspace; judge the steady state after it.
    let steady: Vec<f64> = shares.iter().copied().skip(20).collect();
    Ok(Report {
        writes,
        mean_share: steady.iter().sum::<f64>() / steady.len().max(1) as f64,
        peak_share: steady.iter().copied().fold(0.0, f64::max),
        peak_keys,
        slowest_ping,
    })
}

fn main() {
    let o = Options::parse();
    let mut servers =
        vec![ServerProcess::ringkv(&ringkv_release_binary(), &[]).expect("start ringkv")];
    if have_program("redis-server") {
        servers.push(ServerProcess::redis(&[]).expect("start redis"));
    }
    println!(
        "{} s of SET ... PX {}..{} ms, new keys, {} per pipelined batch; shares sampled every 50 ms after the first second",
        o.seconds, o.min_ttl, o.max_ttl, o.batch
    );
    println!();
    println!("| server | writes/s | peak keys | mean expired share | peak expired share | slowest PING ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for server in &servers {
        let r = run(server.port, &o).expect("run");
        println!(
            "| {} | {:.0} | {} | {:.2}% | {:.2}% | {:.1} |",
            server.name,
            r.writes as f64 / o.seconds as f64,
            r.peak_keys,
            r.mean_share * 100.0,
            r.peak_share * 100.0,
            r.slowest_ping.as_secs_f64() * 1000.0
        );
    }
}
