//! Failover under write load, ringkv side by side with Redis 7: on a fresh
//! cluster of 3 masters + 3 replicas per run (`redis-cli --cluster create
//! --cluster-replicas 1`, `cluster-node-timeout` 2000 ms), with a
//! `redis-benchmark --cluster -t set` load running:
//!
//! * `kill`: `kill -9` of a master; the time until a write to a key of its
//!   shard succeeds on its replica, and until every running node says
//!   `cluster_state:ok` and sees the replica serving the shard. Meanwhile a checker writes unique keys to that shard,
//!   each followed by `WAIT 1 500`, until the kill; after the failover it reads
//!   back every key `WAIT` said one replica had, and counts the missing.
//! * `manual`: `CLUSTER FAILOVER` sent to a replica; the time until a write to
//!   its shard succeeds on it, and the writes acknowledged (`OK`) by the old
//!   master that the new one does not have.
//!
//! Each timing is taken by polling every 20 ms over open connections; the
//! median and maximum of the runs are printed as a Markdown table.
//!
//! ```text
//! bench/failover-compare.sh --runs 10                    # both servers
//! target/release/failover_compare --servers ringkv --scenarios kill,manual
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use ringkv_bench::cluster::{poll, Cluster, Server, Settings, Spawned};
use ringkv_bench::median_max;

/// Failover under load: ringkv and Redis side by side.
#[derive(Debug, Parser)]
struct Options {
    /// Fresh clusters per scenario and server (median and max are reported).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Servers to measure, in order (`ringkv`, `redis`).
    #[arg(long, value_delimiter = ',', default_value = "ringkv,redis")]
    servers: Vec<String>,
    /// Scenarios: `kill` (kill -9 of a master, with the WAIT checker) and
    /// `manual` (CLUSTER FAILOVER).
    #[arg(long, value_delimiter = ',', default_value = "kill,manual")]
    scenarios: Vec<String>,
    /// `cluster-node-timeout` in milliseconds, for both servers.
    #[arg(long, default_value_t = 2000)]
    node_timeout: u64,
    /// Seconds of load (and checked writes) before the fault.
    #[arg(long, default_value_t = 3)]
    load_secs: u64,
    /// redis-benchmark clients.
    #[arg(long, default_value_t = 16)]
    load_clients: usize,
    /// Where each cluster's files go (a fresh subdirectory, removed after).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

/// Masters (each with one replica).
const MASTERS: usize = 3;
/// The hash tag of the faulted shard's keys.
const TAG: &str = "failover";
/// How long any wait may take.
const LIMIT: Duration = Duration::from_secs(30);

/// One run's measurements (`None`: not seen within the limit).
#[derive(Debug, Default)]
struct Run {
    /// Seconds from the fault until a write to the shard succeeded on the replica.
    write_ok: Option<f64>,
    /// Seconds from the fault until every running node said `cluster_state:ok`
    /// with the replica serving the shard.
    all_ok: Option<f64>,
    /// Writes the checker had acknowledged before the fault.
    acked: usize,
    /// Of those, missing on the shard's master after the fault (`None`: no
    /// running node serves the shard).
    missing: Option<usize>,
    /// Whether redis-benchmark was still running when the fault came.
    load_running: bool,
}

/// A fresh healthy cluster of 3 masters with a replica each.
fn cluster(server: &Server, options: &Options) -> std::io::Result<Cluster> {
    let extra = match server {
        Server::Ringkv(_) => Vec::new(),
        // A replica syncs at once rather than after 5 s waiting for others.
        Server::Redis => vec!["--repl-diskless-sync-delay".into(), "0".into()],
    };
    let settings = Settings {
        node_timeout: options.node_timeout,
        workdir: options.workdir.clone(),
        extra,
    };
    Cluster::with_replicas(server, MASTERS, &settings)
}

/// `redis-benchmark --cluster -t set` against the cluster through node `seed`,
/// running until killed.
fn start_load(cluster: &Cluster, seed: usize, clients: usize) -> std::io::Result<Spawned> {
    Spawned::start(
        Command::new("redis-benchmark")
            .args(["--cluster", "-h", "127.0.0.1"])
            .args(["-p", &cluster.ports[seed].to_string()])
            .args(["-t", "set", "-r", "100000", "-n", "1000000000", "-q"])
            .args(["-c", &clients.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Writes unique keys of the faulted shard to node `port` until `stop` or an
/// error; with `wait`, each write is followed by `WAIT 1 500` and counts only
/// if a replica acknowledged it. Returns the acknowledged keys.
fn checked_writer(port: u16, wait: bool, stop: Arc<AtomicBool>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
            return acked;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return acked;
        };
        // A paused master (manual failover) holds the write back: wait for it.
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        for n in 0u64.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let key = format!("{{{TAG}}}:checked:{n}");
            let set: redis::RedisResult<String> =
                redis::cmd("SET").arg(&key).arg(n).query(&mut con);
            if set.is_err() {
                break;
            }
            if wait {
                let replicas: redis::RedisResult<i64> =
                    redis::cmd("WAIT").arg(1).arg(500).query(&mut con);
                match replicas {
                    Ok(r) if r >= 1 => {}
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
            acked.push(key);
        }
        acked
    })
}

/// How many of `keys` the shard's master (as node `from` sees it) does not
/// have; `None` if that master is not running.
fn missing(cluster: &mut Cluster, from: usize, keys: &[String]) -> Option<usize> {
    let slot = ringkv_server::keyspace::key_slot(TAG.as_bytes());
    // A node busy after the failover may not answer the first time.
    let mut master = None;
    poll(Instant::now(), Duration::from_secs(5), || {
        master = cluster.shard_of(from, slot).map(|(m, _)| m);
        master.is_some()
    });
    let i = master?;
    if !cluster.is_running(i) {
        return None;
    }
    let missing = keys
        .chunks(500)
        .map(|chunk| {
            let mut args = vec!["EXISTS"];
            args.extend(chunk.iter().map(String::as_str));
            match cluster.call(i, &args) {
                Some(Ok(redis::Value::Int(n))) => chunk.len() - n as usize,
                _ => chunk.len(),
            }
        })
        .sum();
    Some(missing)
}

/// The faulted shard: its master and its replica.
fn shard(cluster: &mut Cluster) -> std::io::Result<(usize, usize)> {
    let slot = ringkv_server::keyspace::key_slot(TAG.as_bytes());
    let (master, replicas) = cluster
        .shard_of(0, slot)
        .ok_or_else(|| std::io::Error::other("no master for the shard"))?;
    let replica = *replicas
        .first()
        .ok_or_else(|| std::io::Error::other("the shard has no replica"))?;
    Ok((master, replica))
}

/// A node outside the faulted shard, for redis-benchmark to start from.
fn seed(master: usize, replica: usize) -> usize {
    (0..MASTERS * 2)
        .find(|&i| i != master && i != replica)
        .expect("six nodes")
}

/// Every node of `nodes` says `cluster_state:ok` and sees node `master` serving
/// the faulted shard's slot.
fn all_agree(cluster: &mut Cluster, nodes: &[usize], master: usize) -> bool {
    let slot = ringkv_server::keyspace::key_slot(TAG.as_bytes());
    cluster.all_state(nodes, "ok")
        && nodes
            .iter()
            .all(|&i| cluster.shard_of(i, slot).map(|(m, _)| m) == Some(master))
}

fn write_succeeds(cluster: &mut Cluster, i: usize) -> bool {
    let key = format!("{{{TAG}}}:probe");
    matches!(cluster.call(i, &["SET", &key, "v"]), Some(Ok(_)))
}

/// A fresh cluster under load, with the checked writer on the faulted
/// shard's master, after `--load-secs` of it.
struct Loaded {
    cluster: Cluster,
    master: usize,
    replica: usize,
    load: Spawned,
    stop: Arc<AtomicBool>,
    writer: JoinHandle<Vec<String>>,
    run: Run,
}

impl Loaded {
    /// `wait`: the writer counts a write once `WAIT 1` says a replica has it.
    fn start(server: &Server, options: &Options, wait: bool) -> std::io::Result<Loaded> {
        let mut cluster = cluster(server, options)?;
        let (master, replica) = shard(&mut cluster)?;
        let mut load = start_load(&cluster, seed(master, replica), options.load_clients)?;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = checked_writer(cluster.ports[master], wait, stop.clone());
        std::thread::sleep(Duration::from_secs(options.load_secs));
        let run = Run {
            load_running: load
                .child()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None))),
            ..Run::default()
        };
        Ok(Loaded {
            cluster,
            master,
            replica,
            load,
            stop,
            writer,
            run,
        })
    }

    /// Times, from `fault`, until a write succeeds on the replica and until
    /// every node of `nodes` agrees it serves the shard; shows the replica's
    /// log if it never took over.
    fn measure(&mut self, server: &Server, fault: Instant, nodes: &[usize]) {
        let (cluster, run, replica) = (&mut self.cluster, &mut self.run, self.replica);
        poll(fault, LIMIT, || {
            if run.write_ok.is_none() && write_succeeds(cluster, replica) {
                run.write_ok = Some(fault.elapsed().as_secs_f64());
            }
            if run.all_ok.is_none() && all_agree(cluster, nodes, replica) {
                run.all_ok = Some(fault.elapsed().as_secs_f64());
            }
            run.write_ok.is_some() && run.all_ok.is_some()
        });
        if run.write_ok.is_none() {
            eprintln!(
                "{}: no failover; the replica's log ends:\n{}",
                server.name(),
                cluster.log_tail(replica, 15)
            );
        }
    }

    /// Stops the load and the writer, and reads back from the replica what
    /// the writer counted.
    fn finish(mut self) -> Run {
        self.stop.store(true, Ordering::Relaxed);
        self.load.kill();
        let acked = self.writer.join().unwrap_or_default();
        self.run.acked = acked.len();
        self.run.missing = missing(&mut self.cluster, self.replica, &acked);
        self.run
    }
}

fn kill_run(server: &Server, options: &Options) -> std::io::Result<Run> {
    let mut loaded = Loaded::start(server, options, true)?;
    let killed = Instant::now();
    loaded.cluster.kill(loaded.master);
    loaded.stop.store(true, Ordering::Relaxed);
    let running: Vec<usize> = (0..loaded.cluster.len())
        .filter(|&i| i != loaded.master)
        .collect();
    loaded.measure(server, killed, &running);
    Ok(loaded.finish())
}

fn manual_run(server: &Server, options: &Options) -> std::io::Result<Run> {
    let mut loaded = Loaded::start(server, options, false)?;
    let started = Instant::now();
    match loaded
        .cluster
        .call(loaded.replica, &["CLUSTER", "FAILOVER"])
    {
        Some(Ok(_)) => {}
        other => {
            return Err(std::io::Error::other(format!(
                "{}: CLUSTER FAILOVER: {other:?}",
                server.name()
            )))
        }
    }
    let all: Vec<usize> = (0..loaded.cluster.len()).collect();
    loaded.measure(server, started, &all);
    // Writes the old master acknowledged up to the switch (it answers
    // MOVED after it, which ends the writer).
    std::thread::sleep(Duration::from_millis(200));
    Ok(loaded.finish())
}

/// `missing of acked` summed over the runs where the shard had a master to
/// read from afterwards.
fn losses(runs: &[Run]) -> String {
    let checked: Vec<&Run> = runs.iter().filter(|r| r.missing.is_some()).collect();
    let acked: usize = checked.iter().map(|r| r.acked).sum();
    let missing: usize = checked.iter().filter_map(|r| r.missing).sum();
    let mut text = format!("{missing} of {acked}");
    if checked.len() < runs.len() {
        text.push_str(&format!(
            " ({} runs without a master to read from)",
            runs.len() - checked.len()
        ));
    }
    text
}

fn main() {
    let options = Options::parse();
    ringkv_bench::cluster::harness_start(&["redis-cli", "redis-benchmark"]);
    type Scenario = fn(&Server, &Options) -> std::io::Result<Run>;
    let mut table: Vec<(String, Vec<String>)> = Vec::new();
    let mut header = Vec::new();
    for name in &options.servers {
        let Some(server) = Server::named(name) else {
            eprintln!("unknown server {name} (ringkv, redis)");
            std::process::exit(2);
        };
        header.push(name.clone());
        let mut cells = Vec::new();
        for scenario in &options.scenarios {
            let (run_one, rows): (Scenario, [&str; 4]) = match scenario.as_str() {
                "kill" => (
                    kill_run,
                    [
                        "kill -9 of a master: a write to its shard succeeds on its replica (s)",
                        "kill -9 of a master: every running node `cluster_state:ok`, replica serving the shard (s)",
                        "kill -9: writes acknowledged by `WAIT 1 500` before it, missing after",
                        "kill -9: redis-benchmark load still running at the kill (runs)",
                    ],
                ),
                "manual" => (
                    manual_run,
                    [
                        "`CLUSTER FAILOVER` under load: a write succeeds on the new master (s)",
                        "`CLUSTER FAILOVER` under load: every node `cluster_state:ok`, new master serving the shard (s)",
                        "`CLUSTER FAILOVER`: writes acknowledged by the old master, missing after",
                        "`CLUSTER FAILOVER`: redis-benchmark load still running (runs)",
                    ],
                ),
                other => {
                    eprintln!("unknown scenario {other} (kill, manual)");
                    std::process::exit(2);
                }
            };
            let mut runs = Vec::new();
            for r in 0..options.runs {
                match run_one(&server, &options) {
                    Ok(run) => {
                        eprintln!("{name} {scenario} run {}: {run:?}", r + 1);
                        runs.push(run);
                    }
                    Err(e) => {
                        eprintln!("{name} {scenario} run {}: {e}", r + 1);
                        std::process::exit(1);
                    }
                }
            }
            let loaded = runs.iter().filter(|r| r.load_running).count();
            let values = [
                median_max(&runs.iter().map(|r| r.write_ok).collect::<Vec<_>>()),
                median_max(&runs.iter().map(|r| r.all_ok).collect::<Vec<_>>()),
                losses(&runs),
                format!("{loaded} of {}", runs.len()),
            ];
            for (row, value) in rows.iter().zip(values) {
                cells.push((row.to_string(), value));
            }
        }
        for (row, value) in cells {
            match table.iter_mut().find(|(r, _)| *r == row) {
                Some((_, values)) => values.push(value),
                None => table.push((row, vec![value])),
            }
        }
    }
    println!(
        "\n{} runs per scenario, {MASTERS} masters + {MASTERS} replicas, cluster-node-timeout {} ms, \
         {} s of load before the fault; times: median (max)\n",
        options.runs, options.node_timeout, options.load_secs
    );
    println!("| measurement | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    for (row, values) in table {
        println!("| {row} | {} |", values.join(" | "));
    }
}
