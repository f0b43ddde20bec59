//! A connection storm: N connections opened back to back (blocking connects,
//! as fast as one client thread can), then a PING on each. Reports how long
//! until every connection had its PONG and how many connects waited for a SYN
//! retry (>= 1 s: the kernel dropped the SYN because the accept queue was
//! full). Runs ringkv with the old backlog (128, what `TcpListener::bind`
//! asked for), with its default `tcp-backlog` (511), and Redis 7.
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! ulimit -n 20000; target/release/conn_storm --connections 3000 --runs 3
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use clap::Parser;
use ringkv_bench::{have_program, median, ringkv_release_binary, ServerProcess};

/// Measure a connection storm.
#[derive(Debug, Parser)]
struct Options {
    /// Connections opened back to back.
    #[arg(long, default_value_t = 3_000)]
    connections: usize,
    /// Storms per server (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// One storm's outcome.
struct Storm {
    /// Until every connection had its PONG.
    total: Duration,
    /// Connects that took a second or more.
    retried: usize,
    /// The slowest connect.
    slowest: Duration,
}

fn storm(port: u16, connections: usize) -> std::io::Result<Storm> {
    let started = Instant::now();
    let (mut retried, mut slowest) = (0, Duration::ZERO);
    let mut open = Vec::with_capacity(connections);
    for _ in 0..connections {
        let before = Instant::now();
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        let took = before.elapsed();
        slowest = slowest.max(took);
        retried += usize::from(took >= Duration::from_secs(1));
        open.push(stream);
    }
    for stream in &mut open {
        stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    }
    for stream in &mut open {
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply)?;
        if &reply != b"+PONG\r\n" {
            return Err(std::io::Error::other("unexpected reply"));
        }
    }
    Ok(Storm {
        total: started.elapsed(),
        retried,
        slowest,
    })
}

fn measure(server: &ServerProcess, label: &str, options: &Options) -> std::io::Result<()> {
    let mut totals = Vec::new();
    let mut retried = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..options.runs {
        let result = storm(server.port, options.connections)?;
        totals.push(result.total.as_secs_f64());
        retried.push(result.retried.to_string());
        slowest = slowest.max(result.slowest);
        // Let the server see every close before the next storm.
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "| {label} | {} | {:.2} | {} | {:.2} |",
        options.connections,
        median(&mut totals),
        retried.join(", "),
        slowest.as_secs_f64()
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let options = Options::parse();
    let binary = ringkv_release_binary();
    println!("| server | connections | seconds to all PONGs (median) | connects retried, each run | slowest connect, s |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let old = ServerProcess::ringkv(&binary, &["--tcp-backlog", "128"])?;
    measure(&old, "ringkv, backlog 128 (before)", &options)?;
    drop(old);
    let new = ServerProcess::ringkv(&binary, &[])?;
    measure(&new, "ringkv, tcp-backlog 511 (after)", &options)?;
    drop(new);
    if have_program("redis-server") {
        let redis = ServerProcess::redis(&[])?;
        measure(&redis, "Redis 7, tcp-backlog 511", &options)?;
    }
    Ok(())
}
