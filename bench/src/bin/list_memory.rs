//! List memory: pushes `--elements` values onto one list with `redis-benchmark -t
//! lpush` (pipelined, as its LPUSH test does) into a fresh ringkv and a fresh Redis,
//! one server at a time, and reports each server's peak resident memory
//! (`VmHWM`), its growth over the idle server, and ringkv's ratio to Redis.
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! target/release/list_memory --elements 3000000 --sizes 3,16
//! ```

use std::process::{Command, Stdio};

use clap::Parser;
use ringkv_bench::{have_program, info_field, ringkv_release_binary, ServerProcess};

/// Peak memory of one long list, ringkv against Redis.
#[derive(Debug, Parser)]
struct Options {
    /// Elements to push.
    #[arg(long, default_value_t = 3_000_000)]
    elements: u64,
    /// Value sizes in bytes to try (redis-benchmark's -d; its default is 3).
    #[arg(long, default_value = "3,16", value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Pipeline depth (-P).
    #[arg(long, default_value_t = 64)]
    pipeline: u32,
    /// Parallel connections (-c).
    #[arg(long, default_value_t = 50)]
    clients: u32,
    /// The ringkv-server binary (default: target/release/ringkv-server).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in bytes.
fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// What one server used for one run.
struct Usage {
    idle: u64,
    peak: u64,
    used_memory: u64,
    length: u64,
}

fn run(server: &ServerProcess, size: usize, o: &Options) -> Usage {
    std::thread::sleep(std::time::Duration::from_millis(300));
    let idle = status_field(server.pid(), "VmRSS");
    let status = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string(), "-q"])
        .args(["-t", "lpush", "-n", &o.elements.to_string()])
        .args(["-P", &o.pipeline.to_string(), "-c", &o.clients.to_string()])
        .args(["-d", &size.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run redis-benchmark");
    assert!(status.success(), "redis-benchmark failed");
    let length = Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "LLEN", "mylist"])
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(0);
    Usage {
        idle,
        peak: status_field(server.pid(), "VmHWM"),
        used_memory: info_field(server.port, "used_memory").unwrap_or(0),
        length,
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn main() {
    let o = Options::parse();
    if !have_program("redis-benchmark") {
        eprintln!("redis-benchmark is needed (apt-get install redis-tools)");
        std::process::exit(2);
    }
    let binary = o.server_bin.clone().unwrap_or_else(ringkv_release_binary);
    let with_redis = have_program("redis-server");
    println!(
        "{} x LPUSH mylist <value> (redis-benchmark -t lpush -P {} -c {}), one fresh server per run",
        o.elements, o.pipeline, o.clients
    );
    println!();
    println!("| value | server | LLEN | idle RSS | peak RSS (VmHWM) | growth | used_memory | peak ratio | growth ratio |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &size in &o.sizes {
        let ours = {
            let server = ServerProcess::ringkv(&binary, &[]).expect("start ringkv");
            run(&server, size, &o)
        };
        let theirs = with_redis.then(|| {
            let server = ServerProcess::redis(&[]).expect("start redis");
            run(&server, size, &o)
        });
        for (name, usage) in [("ringkv", Some(&ours)), ("redis", theirs.as_ref())] {
            let Some(u) = usage else { continue };
            let (peak_ratio, growth_ratio) = match (name, &theirs) {
                ("ringkv", Some(r)) => (
                    format!("{:.2}", u.peak as f64 / r.peak as f64),
                    format!(
                        "{:.2}",
                        u.peak.saturating_sub(u.idle) as f64 / r.peak.saturating_sub(r.idle) as f64
                    ),
                ),
                _ => ("".into(), "".into()),
            };
            println!(
                "| {size} B | {name} | {} | {} | {} | {} | {} | {peak_ratio} | {growth_ratio} |",
                u.length,
                mb(u.idle),
                mb(u.peak),
                mb(u.peak.saturating_sub(u.idle)),
                mb(u.used_memory),
            );
        }
    }
}
