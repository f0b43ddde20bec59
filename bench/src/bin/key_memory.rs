//! Memory per key: fills a fresh ringkv and (when installed) a fresh Redis with
//! N string keys of 16-byte names and 16-byte values, without and with a TTL,
//! and reports each server's RSS growth per key beside its own `used_memory`
//! growth (how well the server's accounting tracks reality).
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! target/release/key_memory --count 1000000
//! ```

use std::time::Duration;

use clap::Parser;
use ringkv_bench::{
    encode_command, have_program, info_field, redis_cli_pipe, ringkv_release_binary, ServerProcess,
};
use ringkv_server::memory;

/// Measure bytes per key of small string keys.
#[derive(Debug, Parser)]
struct Options {
    /// Keys to create.
    #[arg(long, default_value_t = 1_000_000)]
    count: usize,
    /// Seconds to wait after loading before reading RSS, so both allocators
    /// have returned the pages they freed while growing (jemalloc's decay is 10 s).
    #[arg(long, default_value_t = 12)]
    settle: u64,
    /// Extra ringkv-server flags, e.g. "--threads 1".
    #[arg(long, allow_hyphen_values = true)]
    ringkv_args: Option<String>,
}

/// `SET key:000000000042 value:0000000042 [EX 100000]` for every key: 16-byte
/// names and 16-byte values that are not numbers.
fn fill_commands(count: usize, ttl: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 80);
    for i in 0..count {
        let key = format!("key:{i:012}");
        let value = format!("value:{i:010}");
        if ttl {
            encode_command(&["SET", &key, &value, "EX", "100000"], &mut out);
        } else {
            encode_command(&["SET", &key, &value], &mut out);
        }
    }
    out
}

/// RSS growth and `used_memory` growth per key.
fn measure(server: &ServerProcess, commands: &[u8], count: usize, settle: u64) -> (f64, f64) {
    let rss = || memory::rss_of(Some(server.pid()));
    let used = || info_field(server.port, "used_memory").unwrap_or(0);
    let (rss_before, used_before) = (rss(), used());
    redis_cli_pipe(server.port, commands).expect("load");
    std::thread::sleep(Duration::from_secs(settle));
    let per_key = |after: u64, before: u64| after.saturating_sub(before) as f64 / count as f64;
    (per_key(rss(), rss_before), per_key(used(), used_before))
}

fn main() {
    let o = Options::parse();
    if !have_program("redis-cli") {
        eprintln!("redis-cli is needed (apt-get install redis-tools)");
        std::process::exit(2);
    }
    let extra: Vec<&str> = o
        .ringkv_args
        .as_deref()
        .map(|a| a.split_whitespace().collect())
        .unwrap_or_default();
    println!(
        "{} keys: 16-byte names, 16-byte values; growth per key after loading",
        o.count
    );
    println!();
    println!("| server | TTL | RSS B/key | used_memory B/key |");
    println!("|---|---|---:|---:|");
    for ttl in [false, true] {
        let commands = fill_commands(o.count, ttl);
        let mut servers =
            vec![ServerProcess::ringkv(&ringkv_release_binary(), &extra).expect("start ringkv")];
        if have_program("redis-server") {
            servers.push(ServerProcess::redis(&[]).expect("start redis"));
        }
        for server in &servers {
            let (rss, used) = measure(server, &commands, o.count, o.settle);
            let ttl = if ttl { "yes" } else { "no" };
            println!("| {} | {ttl} | {rss:.1} | {used:.1} |", server.name);
        }
    }
}
