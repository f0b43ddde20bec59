//! Peak memory of single large requests: for each scenario, starts a fresh ringkv
//! and a fresh Redis, runs the scenario with one client, and reports how far the
//! server's peak RSS (`VmHWM`) rose above its idle level. A server that copies a
//! large argument, or reallocates a growing string exactly, shows here as a
//! multiple of the data it holds.
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! target/release/peak_memory            # every scenario
//! target/release/peak_memory --only SET # those whose name contains "SET"
//! ```
//!
//! To add a scenario, add an entry to [`SCENARIOS`]: a name and a function that
//! drives the server through a [`RespClient`].

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::Parser;
use ringkv_bench::{have_program, peak_rss_of, ringkv_release_binary, ServerProcess};

/// Measure the peak RSS of large single requests on ringkv and Redis.
#[derive(Debug, Parser)]
struct Options {
    /// Run only the scenarios whose name contains this (case-insensitive).
    #[arg(long)]
    only: Option<String>,
    /// The ringkv-server binary (default: the workspace's release build).
    #[arg(long)]
    ringkv_binary: Option<std::path::PathBuf>,
    /// Extra ringkv-server flags, e.g. "--threads 1".
    #[arg(long, allow_hyphen_values = true)]
    ringkv_args: Option<String>,
}

/// One measured workload.
struct Scenario {
    /// Shown in the table.
    name: &'static str,
    /// Drives a fresh server; returns once every reply has been read.
    run: fn(&mut RespClient) -> io::Result<()>,
}

/// The workloads, each run on a fresh server.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "SET of a 400 MB value",
        run: |c| c.call(&[b"SET", b"k", &vec![b'v'; 400 << 20]]),
    },
    Scenario {
        name: "512 x APPEND of 1 MB",
        run: |c| {
            let chunk = vec![b'a'; 1 << 20];
            for _ in 0..512 {
                c.call(&[b"APPEND", b"k", &chunk])?;
            }
            Ok(())
        },
    },
    Scenario {
        name: "SETRANGE k 536870911 x (512 MB)",
        run: |c| c.call(&[b"SETRANGE", b"k", b"536870911", b"x"]),
    },
    Scenario {
        name: "SRANDMEMBER -5000000 of a 1000-member set",
        run: |c| {
            let mut sadd: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"s".to_vec()];
            sadd.extend((0..1000).map(|i| format!("member:{i:06}").into_bytes()));
            let args: Vec<&[u8]> = sadd.iter().map(Vec::as_slice).collect();
            c.call(&args)?;
            c.call(&[b"SRANDMEMBER", b"s", b"-5000000"])
        },
    },
];

/// A minimal RESP2 client that streams requests out and reads replies without
/// keeping them, so the client's own memory never matters.
struct RespClient {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl RespClient {
    fn connect(port: u16) -> io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        Ok(RespClient {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone()?),
            writer: BufWriter::with_capacity(1 << 16, stream),
        })
    }

    /// Sends one command and reads (and discards) its whole reply; an error
    /// reply is an error.
    fn call(&mut self, args: &[&[u8]]) -> io::Result<()> {
        write!(self.writer, "*{}\r\n", args.len())?;
        for arg in args {
            write!(self.writer, "${}\r\n", arg.len())?;
            self.writer.write_all(arg)?;
            self.writer.write_all(b"\r\n")?;
        }
        self.writer.flush()?;
        self.skip_reply()
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end().to_string())
    }

    /// Reads one reply, nested arrays included, keeping nothing.
    fn skip_reply(&mut self) -> io::Result<()> {
        let mut pending = 1u64;
        while pending > 0 {
            pending -= 1;
            let line = self.line()?;
            let (kind, rest) = line.split_at(1);
            let number = || -> io::Result<i64> {
                rest.parse()
                    .map_err(|_| io::Error::other(format!("bad reply line {line:?}")))
            };
            match kind {
                "+" | ":" => {}
                "-" => return Err(io::Error::other(format!("error reply: {rest}"))),
                "$" => {
                    let len = number()?;
                    if len >= 0 {
                        let copied = io::copy(
                            &mut (&mut self.reader).take(len as u64 + 2),
                            &mut io::sink(),
                        )?;
                        if copied != len as u64 + 2 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                }
                "*" => pending += number()?.max(0) as u64,
                _ => return Err(io::Error::other(format!("bad reply line {line:?}"))),
            }
        }
        Ok(())
    }
}

/// Peak RSS growth in bytes of `server` while `scenario` runs on it.
fn measure(server: &ServerProcess, scenario: &Scenario) -> io::Result<u64> {
    let mut client = RespClient::connect(server.port)?;
    client.call(&[b"PING"])?;
    let idle = peak_rss_of(server.pid());
    (scenario.run)(&mut client)?;
    Ok(peak_rss_of(server.pid()).saturating_sub(idle))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn main() {
    let o = Options::parse();
    let extra: Vec<&str> = o
        .ringkv_args
        .as_deref()
        .map(|a| a.split_whitespace().collect())
        .unwrap_or_default();
    let redis = have_program("redis-server");
    if !redis {
        eprintln!("redis-server not found: measuring ringkv only");
    }
    let binary = o.ringkv_binary.unwrap_or_else(ringkv_release_binary);
    let only = o.only.map(|s| s.to_lowercase());
    println!("Peak RSS above idle (VmHWM), one fresh server per scenario and server");
    println!();
    println!("| scenario | ringkv MB | Redis MB | ratio |");
    println!("|---|---:|---:|---:|");
    for scenario in SCENARIOS {
        if let Some(only) = &only {
            if !scenario.name.to_lowercase().contains(only) {
                continue;
            }
        }
        let ringkv = ServerProcess::ringkv(&binary, &extra)
            .and_then(|server| measure(&server, scenario))
            .expect("ringkv run");
        let theirs = redis.then(|| {
            ServerProcess::redis(&[])
                .and_then(|server| measure(&server, scenario))
                .expect("redis run")
        });
        let (redis_mb, ratio) = match theirs {
            Some(r) => (
                format!("{:.1}", mb(r)),
                format!("{:.2}x", ringkv as f64 / r.max(1) as f64),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {:.1} | {redis_mb} | {ratio} |",
            scenario.name,
            mb(ringkv)
        );
    }
}
