//! ringkv's cluster bus side by side with Redis 7's, on loopback: six fresh
//! masters built by `redis-cli --cluster create`, then half a quiet minute's bus
//! traffic, `kill -9` of a master and its restart, a lost majority (three of
//! six masters stopped with SIGSTOP) and its return, and a seventh node joined
//! with `CLUSTER MEET`. Each timing is taken by polling every node every 20 ms
//! over open connections, on a fresh cluster per run; the median and maximum
//! of the runs are printed as a Markdown table.
//!
//! Failover (replicas, `kill -9` under load, `CLUSTER FAILOVER`) is measured by
//! `failover_compare`.
//!
//! ```text
//! bench/cluster-bus-compare.sh            # builds, runs, cleans up on any exit
//! target/release/cluster_bus_compare --runs 3 --idle-secs 30
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use ringkv_bench::cluster::{flags_of, poll, Cluster, Server, Settings};
use ringkv_bench::{median, median_max};

/// Compare ringkv's cluster bus with Redis's.
#[derive(Debug, Parser)]
struct Options {
    /// Fresh clusters per server (median and max are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of quiet cluster over which bus traffic is counted.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// `cluster-node-timeout` in milliseconds, for both servers.
    #[arg(long, default_value_t = 2000)]
    node_timeout: u64,
    /// Servers to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "ringkv,redis")]
    servers: Vec<String>,
    /// Where each cluster's config files, logs and pid files go (one fresh
    /// subdirectory per cluster, removed after it); the system temp dir if unset.
    #[arg(long)]
    workdir: Option<PathBuf>,
}

/// Masters the cluster is created with.
const MASTERS: usize = 6;
/// Node that is killed and restarted (never the one the join goes through).
const VICTIM: usize = 5;
/// Node the seventh is met through ("node 4").
const MEET_THROUGH: usize = 3;
/// Masters stopped to take the majority away.
const STOPPED: [usize; 3] = [3, 4, 5];

/// Bus bytes (sent, received) of each node, from `ss`, per socket.
fn bus_sockets(cluster: &Cluster) -> std::io::Result<HashMap<SocketKey, (u64, u64)>> {
    let out = Command::new("ss")
        .args(["-tinpH", "state", "established"])
        .output()?;
    let pids: HashMap<u32, usize> = (0..cluster.ports.len())
        .filter_map(|i| Some((cluster.pid(i)?, i)))
        .collect();
    let bus: Vec<u16> = cluster.ports.iter().map(|p| p + 10_000).collect();
    let mut sockets = HashMap::new();
    for (key, sent, received) in parse_ss(&String::from_utf8_lossy(&out.stdout)) {
        let Some(&node) = pids.get(&key.pid) else {
            continue;
        };
        if key.local_port == bus[node] || bus.contains(&key.peer_port) {
            sockets.insert(key, (sent, received));
        }
    }
    Ok(sockets)
}

/// One TCP socket of one process, as `ss` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SocketKey {
    pid: u32,
    local_port: u16,
    peer_port: u16,
}

/// Parses `ss -tinpH state established`: a line per socket (`recv-q send-q
/// local peer users:(("name",pid=N,fd=M))`) followed by an indented info line
/// with `bytes_sent:` and `bytes_received:` (absent when zero).
fn parse_ss(text: &str) -> Vec<(SocketKey, u64, u64)> {
    let mut sockets = Vec::new();
    let mut current: Option<SocketKey> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| addr.rsplit(':').next()?.parse::<u16>().ok();
            let pid = line
                .split("pid=")
                .nth(1)
                .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|s| s.parse().ok());
            current = match (fields.get(2), fields.get(3), pid) {
                (Some(local), Some(peer), Some(pid)) => Some(SocketKey {
                    pid,
                    local_port: port(local).unwrap_or(0),
                    peer_port: port(peer).unwrap_or(0),
                }),
                _ => None,
            };
        } else if let Some(key) = current.take() {
            let counter = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            sockets.push((key, counter("bytes_sent:"), counter("bytes_received:")));
        }
    }
    sockets
}

/// One run's measurements, in seconds, bytes and messages (`None`: timed out).
#[derive(Debug, Default)]
struct Run {
    slots_covered: Option<f64>,
    create_ok: Option<f64>,
    out_mean: f64,
    out_max: f64,
    in_mean: f64,
    in_max: f64,
    messages_sent: f64,
    messages_received: f64,
    sockets_changed: usize,
    all_flag_fail: Option<f64>,
    all_state_fail: Option<f64>,
    rejoin_unflagged: Option<f64>,
    rejoin_ok: Option<f64>,
    minority_refuses: Option<f64>,
    majority_back_ok: Option<f64>,
    join_listed: Option<f64>,
}

fn one_run(server: &Server, options: &Options) -> std::io::Result<Run> {
    let mut run = Run::default();
    let settings = Settings {
        node_timeout: options.node_timeout,
        workdir: options.workdir.clone(),
        extra: Vec::new(),
    };
    let mut cluster = Cluster::fresh(server, MASTERS + 1, &settings)?;
    let masters: Vec<usize> = (0..MASTERS).collect();

    // redis-cli --cluster create; every node polled while it works.
    let mut cli = Command::new("redis-cli");
    cli.args(["--cluster", "create"])
        .args(
            cluster.ports[..MASTERS]
                .iter()
                .map(|p| format!("127.0.0.1:{p}")),
        )
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = ringkv_bench::cluster::Spawned::start(&mut cli)?;
    let stdout = child.child().and_then(|c| c.stdout.take()).expect("piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("[OK] All 16384 slots covered") {
                let _ = tx.send(Instant::now());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let limit = Duration::from_secs(60);
    poll(started, limit, || {
        if run.slots_covered.is_none() {
            if let Ok(at) = rx.try_recv() {
                run.slots_covered = Some((at - started).as_secs_f64());
            }
        }
        if run.create_ok.is_none() && cluster.all_state(&masters, "ok") {
            run.create_ok = Some(started.elapsed().as_secs_f64());
        }
        run.slots_covered.is_some() && run.create_ok.is_some()
    });
    // redis-cli waits for the nodes to agree with no end of its own.
    if run.create_ok.is_none() {
        child.kill();
    }
    let succeeded = child.wait().is_ok_and(|status| status.success());
    let output = reader.join().unwrap_or_default();
    if !succeeded || run.create_ok.is_none() {
        return Err(std::io::Error::other(format!(
            "{}: cluster create failed:\n{output}",
            server.name()
        )));
    }

    // A quiet cluster's bus traffic.
    std::thread::sleep(Duration::from_secs(3));
    let stats = |c: &mut Cluster, way: &str| -> Vec<f64> {
        masters
            .iter()
            .map(|&i| {
                c.info_field(i, &format!("cluster_stats_messages_{way}"))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN)
            })
            .collect()
    };
    let (sent0, received0) = (stats(&mut cluster, "sent"), stats(&mut cluster, "received"));
    let before = bus_sockets(&cluster)?;
    let idle_start = Instant::now();
    std::thread::sleep(Duration::from_secs(options.idle_secs));
    let after = bus_sockets(&cluster)?;
    let secs = idle_start.elapsed().as_secs_f64();
    let (sent1, received1) = (stats(&mut cluster, "sent"), stats(&mut cluster, "received"));
    let mut per_node = [(0u64, 0u64); MASTERS];
    for (key, (sent, received)) in &after {
        let (s0, r0) = before.get(key).copied().unwrap_or((0, 0));
        let node = (0..MASTERS).find(|&i| cluster.pid(i) == Some(key.pid));
        if let Some(node) = node {
            per_node[node].0 += sent.saturating_sub(s0);
            per_node[node].1 += received.saturating_sub(r0);
        }
    }
    run.sockets_changed = before.keys().filter(|k| !after.contains_key(k)).count()
        + after.keys().filter(|k| !before.contains_key(k)).count();
    let rate = |v: u64| v as f64 / secs;
    run.out_mean = per_node.iter().map(|p| rate(p.0)).sum::<f64>() / MASTERS as f64;
    run.out_max = per_node.iter().map(|p| rate(p.0)).fold(0.0, f64::max);
    run.in_mean = per_node.iter().map(|p| rate(p.1)).sum::<f64>() / MASTERS as f64;
    run.in_max = per_node.iter().map(|p| rate(p.1)).fold(0.0, f64::max);
    let delta = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).map(|(x, y)| y - x).sum::<f64>() / (MASTERS as f64 * secs)
    };
    run.messages_sent = delta(&sent0, &sent1);
    run.messages_received = delta(&received0, &received1);

    // kill -9 of a master.
    let victim = cluster
        .text(VICTIM, &["CLUSTER", "MYID"])
        .ok_or_else(|| std::io::Error::other("no MYID"))?;
    let survivors: Vec<usize> = masters.iter().copied().filter(|&i| i != VICTIM).collect();
    let killed = Instant::now();
    cluster.kill(VICTIM);
    let limit = Duration::from_secs(30);
    let mut flagged_at = None;
    poll(killed, limit, || {
        if run.all_flag_fail.is_none()
            && survivors.iter().all(|&i| {
                cluster
                    .text(i, &["CLUSTER", "NODES"])
                    .and_then(|n| Some(flags_of(&n, &victim)?.contains(&"fail")))
                    == Some(true)
            })
        {
            run.all_flag_fail = Some(killed.elapsed().as_secs_f64());
            flagged_at = Some(Instant::now());
        }
        if run.all_state_fail.is_none() && cluster.all_state(&survivors, "fail") {
            run.all_state_fail = Some(killed.elapsed().as_secs_f64());
        }
        run.all_flag_fail.is_some() && run.all_state_fail.is_some()
    });

    // Restarted 5 s after every survivor flagged it `fail`.
    let flagged_at = flagged_at.unwrap_or_else(Instant::now);
    std::thread::sleep(
        (flagged_at + Duration::from_secs(5)).saturating_duration_since(Instant::now()),
    );
    let restarted = Instant::now();
    cluster.launch(VICTIM)?;
    poll(restarted, limit, || {
        if run.rejoin_unflagged.is_none()
            && survivors.iter().all(|&i| {
                cluster.text(i, &["CLUSTER", "NODES"]).and_then(|n| {
                    Some(!flags_of(&n, &victim)?.iter().any(|f| f.starts_with("fail")))
                }) == Some(true)
            })
        {
            run.rejoin_unflagged = Some(restarted.elapsed().as_secs_f64());
        }
        if run.rejoin_ok.is_none() && cluster.all_state(&masters, "ok") {
            run.rejoin_ok = Some(restarted.elapsed().as_secs_f64());
        }
        run.rejoin_unflagged.is_some() && run.rejoin_ok.is_some()
    });

    // Three of six masters stopped: the other three lost the majority.
    let minority: Vec<usize> = masters
        .iter()
        .copied()
        .filter(|i| !STOPPED.contains(i))
        .collect();
    let mut keys = Vec::new();
    for &i in &minority {
        keys.push(
            cluster
                .key_served_by(i)
                .ok_or_else(|| std::io::Error::other("no key served"))?,
        );
    }
    let stopped = Instant::now();
    for &i in &STOPPED {
        cluster.signal(i, "STOP")?;
    }
    run.minority_refuses = poll(stopped, limit, || {
        minority.iter().zip(&keys).all(|(&i, key)| {
            matches!(cluster.call(i, &["SET", key.as_str(), "v"]), Some(Err(error)) if error.starts_with("CLUSTERDOWN"))
        })
    });
    let resumed = Instant::now();
    for &i in &STOPPED {
        cluster.signal(i, "CONT")?;
    }
    run.majority_back_ok = poll(resumed, Duration::from_secs(60), || {
        cluster.all_state(&masters, "ok")
    });

    // A seventh fresh node met through node 4.
    let newcomer = MASTERS;
    let new_id = cluster
        .text(newcomer, &["CLUSTER", "MYID"])
        .ok_or_else(|| std::io::Error::other("no MYID"))?;
    let new_port = cluster.ports[newcomer].to_string();
    let met = Instant::now();
    match cluster.call(MEET_THROUGH, &["CLUSTER", "MEET", "127.0.0.1", &new_port]) {
        Some(Ok(_)) => {}
        other => return Err(std::io::Error::other(format!("MEET: {other:?}"))),
    }
    run.join_listed = poll(met, limit, || {
        let listed = masters.iter().all(|&i| {
            cluster
                .text(i, &["CLUSTER", "NODES"])
                .and_then(|n| Some(!flags_of(&n, &new_id)?.contains(&"handshake")))
                == Some(true)
        });
        listed
            && cluster
                .text(newcomer, &["CLUSTER", "NODES"])
                .is_some_and(|n| n.lines().count() == MASTERS + 1 && !n.contains("handshake"))
    });
    Ok(run)
}

/// `median (max)` of plain values, with `digits` decimals.
fn summary_of(values: &[f64], digits: usize) -> String {
    let mut v = values.to_vec();
    let max = v.iter().copied().fold(0.0, f64::max);
    format!("{:.digits$} ({:.digits$})", median(&mut v), max)
}

fn main() {
    let options = Options::parse();
    ringkv_bench::cluster::harness_start(&["redis-cli"]);
    let mut results: Vec<(String, Vec<Run>)> = Vec::new();
    for name in &options.servers {
        let Some(server) = Server::named(name) else {
            eprintln!("unknown server {name} (ringkv, redis)");
            std::process::exit(2);
        };
        let mut runs = Vec::new();
        for r in 0..options.runs {
            match one_run(&server, &options) {
                Ok(run) => {
                    eprintln!("{name} run {}: {run:?}", r + 1);
                    runs.push(run);
                }
                Err(e) => {
                    eprintln!("{name} run {}: {e}", r + 1);
                    std::process::exit(1);
                }
            }
        }
        results.push((name.clone(), runs));
    }

    let header: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    println!(
        "\n{} runs, {MASTERS} masters, cluster-node-timeout {} ms, {} s idle; times in s: median (max)\n",
        options.runs, options.node_timeout, options.idle_secs
    );
    println!("| measurement | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    type Timing = fn(&Run) -> Option<f64>;
    let timings: [(&str, Timing); 9] = [
        ("create: `[OK] All 16384 slots covered` printed", |r| {
            r.slots_covered
        }),
        ("create: every node `cluster_state:ok`", |r| r.create_ok),
        ("join: every node lists the 7th, it knows all 7", |r| {
            r.join_listed
        }),
        ("kill -9: every survivor flags it `fail`", |r| {
            r.all_flag_fail
        }),
        ("kill -9: every survivor `cluster_state:fail`", |r| {
            r.all_state_fail
        }),
        (
            "restart 5 s after `fail`: no survivor flags it `fail`",
            |r| r.rejoin_unflagged,
        ),
        (
            "restart 5 s after `fail`: every node `cluster_state:ok`",
            |r| r.rejoin_ok,
        ),
        (
            "3 of 6 stopped: the other 3 refuse writes (CLUSTERDOWN)",
            |r| r.minority_refuses,
        ),
        ("3 resumed: every node `cluster_state:ok`", |r| {
            r.majority_back_ok
        }),
    ];
    for (label, get) in timings {
        let cells: Vec<String> = results
            .iter()
            .map(|(_, runs)| median_max(&runs.iter().map(get).collect::<Vec<_>>()))
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    type Rate = fn(&Run) -> f64;
    let rates: [(&str, Rate, usize); 6] = [
        (
            "idle: bus bytes/s sent per node (mean over nodes)",
            |r| r.out_mean,
            0,
        ),
        ("idle: bus bytes/s sent, busiest node", |r| r.out_max, 0),
        (
            "idle: bus bytes/s received per node (mean)",
            |r| r.in_mean,
            0,
        ),
        ("idle: bus bytes/s received, busiest node", |r| r.in_max, 0),
        ("idle: bus messages/s sent per node", |r| r.messages_sent, 2),
        (
            "idle: bus messages/s received per node",
            |r| r.messages_received,
            2,
        ),
    ];
    for (label, get, digits) in rates {
        let cells: Vec<String> = results
            .iter()
            .map(|(_, runs)| summary_of(&runs.iter().map(get).collect::<Vec<_>>(), digits))
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    for (name, runs) in &results {
        let changed: usize = runs.iter().map(|r| r.sockets_changed).sum();
        if changed > 0 {
            println!("\n{name}: {changed} bus sockets opened or closed during the idle windows");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ss_sockets_with_missing_counters() {
        let text = "0 0 127.0.0.1:40001 127.0.0.1:51234 users:((\"redis-server\",pid=42,fd=7))\n\
                    \t bbr bytes_sent:1200 bytes_acked:1201 bytes_received:900 segs_out:3\n\
                    0 0 [::ffff:127.0.0.1]:5000 127.0.0.1:40002 users:((\"ringkv\",pid=43,fd=9))\n\
                    \t bbr bytes_received:10\n";
        assert_eq!(
            parse_ss(text),
            [
                (
                    SocketKey {
                        pid: 42,
                        local_port: 40001,
                        peer_port: 51234
                    },
                    1200,
                    900
                ),
                (
                    SocketKey {
                        pid: 43,
                        local_port: 5000,
                        peer_port: 40002
                    },
                    0,
                    10
                )
            ]
        );
    }
}
