//! Replication speed, ringkv against Redis 7 on this machine (issue 13).
//!
//! * **Full sync**: a master holding `--keys` keys (`--value-size` byte values)
//!   and an empty replica; the time from `REPLICAOF` until the replica reports
//!   `master_link_status:up`, `master_sync_in_progress:0` and `DBSIZE` equal to
//!   the master's, polled every 10 ms; the master's peak RSS during the sync
//!   against its RSS before (`VmHWM` reset through `/proc/<pid>/clear_refs`);
//!   the CPU seconds of master and replica (`/proc/<pid>/stat`, with reaped
//!   children: Redis's forked RDB writer).
//! * **Keep-up**: `redis-benchmark -t set` against a master alone, then against
//!   a fresh master with a replica following; during the second run the
//!   master's `master_repl_offset` and the replica's `slave_repl_offset` are
//!   sampled every 100 ms (max and p99 of the difference), and after it the
//!   time until the replica applied the master's last offset.
//!
//! Every measurement runs on fresh processes, `--runs` times with the servers'
//! order alternating; medians and ranges are printed as Markdown tables.
//!
//! ```text
//! bench/repl-bench.sh                          # builds, runs, cleans up on any exit
//! target/release/repl_bench --servers ringkv,redis --phases sync --runs 1
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ringkv_bench::{
    have_program, median, peak_rss_of, redis_benchmark, redis_cli_pipe, reset_peak_rss,
    ringkv_release_binary, rss_of, ServerProcess,
};

/// Replication speed of ringkv and Redis.
#[derive(Debug, Parser)]
struct Options {
    /// Servers, in order (alternated every run): `ringkv`; `redis` (Redis 7's
    /// defaults: diskless sync, the replica loads through a file, but no 5 s
    /// sync delay); `redis-disk` (the master writes an RDB file first);
    /// `redis-mem` (diskless on both sides). Keep-up runs `ringkv` and `redis`
    /// only: how the first sync went does not change the stream.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ringkv,redis,redis-disk,redis-mem"
    )]
    servers: Vec<String>,
    /// What to measure: `sync`, `keepup`.
    #[arg(long, value_delimiter = ',', default_value = "sync,keepup")]
    phases: Vec<String>,
    /// Runs per measurement (median and range are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Keys on the master before a full sync.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Value size in bytes (the full sync's keys and redis-benchmark's -d).
    #[arg(long, default_value_t = 16)]
    value_size: usize,
    /// redis-benchmark requests per keep-up run (-n).
    #[arg(long, default_value_t = 6_000_000)]
    requests: u64,
    /// redis-benchmark random keyspace (-r).
    #[arg(long, default_value_t = 1_000_000)]
    keyspace: u64,
    /// redis-benchmark pipeline depth (-P).
    #[arg(long, default_value_t = 16)]
    pipeline: u32,
    /// redis-benchmark connections (-c).
    #[arg(long, default_value_t = 50)]
    clients: u32,
    /// The ringkv-server binary (default: target/release/ringkv-server).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Runs the full sync while redis-benchmark writes to the master (SET over
    /// the same keys, -P and -c as for keep-up), stopped once the sync is done.
    #[arg(long)]
    sync_under_load: bool,
    /// A CSV file for every lag sample (server, run, ms since the load
    /// started, master offset, replica offset).
    #[arg(long)]
    lag_log: Option<PathBuf>,
    /// Where each server's directory (Redis's RDB files, a pid file while it
    /// runs) goes, removed after it; the system temp dir if unset.
    #[arg(long)]
    workdir: Option<PathBuf>,
}

/// Longest a sync or a catch-up may take before the run is given up.
const GIVE_UP: Duration = Duration::from_secs(600);
/// Poll period of the sync and catch-up waits.
const POLL: Duration = Duration::from_millis(10);
/// Sample period of the replication lag under load.
const SAMPLE: Duration = Duration::from_millis(100);
/// Key-value pairs per `MSET` of the fill.
const FILL_BATCH: u64 = 1000;

/// A server and how it replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ringkv,
    Redis,
    RedisDisk,
    RedisMem,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "ringkv" => Kind::Ringkv,
            "redis" => Kind::Redis,
            "redis-disk" => Kind::RedisDisk,
            "redis-mem" => Kind::RedisMem,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Ringkv => "ringkv",
            Kind::Redis => "redis",
            Kind::RedisDisk => "redis-disk",
            Kind::RedisMem => "redis-mem",
        }
    }

    /// Starts one node in a fresh directory under `base`.
    fn start(self, bin: &Path, base: &Path) -> std::io::Result<Node> {
        let dir = base.join(format!(
            "repl-{}-{}-{}",
            self.name(),
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        let dir_arg = dir.to_str().expect("utf-8 temp path").to_string();
        // Redis 7's default `repl-diskless-sync-delay` of 5 s waits for more
        // replicas; with one replica it is only a delay, so it is 0 for all.
        let (sync, load) = match self {
            Kind::Ringkv => ("", ""),
            Kind::Redis => ("yes", "disabled"),
            Kind::RedisDisk => ("no", "disabled"),
            Kind::RedisMem => ("yes", "on-empty-db"),
        };
        let started = match self {
            Kind::Ringkv => ServerProcess::ringkv(bin, &[]),
            _ => ServerProcess::redis(&[
                "--dir",
                &dir_arg,
                "--repl-diskless-sync",
                sync,
                "--repl-diskless-sync-delay",
                "0",
                "--repl-diskless-load",
                load,
            ]),
        };
        let process = match started {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // Written for bench/repl-bench.sh, which kills what a killed harness left.
        std::fs::write(dir.join("server.pid"), process.pid().to_string())?;
        let con = connect(process.port)?;
        Ok(Node {
            process: Some(process),
            dir,
            con,
        })
    }
}

/// A running server, stopped and its directory removed on drop.
struct Node {
    process: Option<ServerProcess>,
    dir: PathBuf,
    con: redis::Connection,
}

impl Drop for Node {
    fn drop(&mut self) {
        // Killed (and reaped) before its directory goes.
        drop(self.process.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    fn process(&self) -> &ServerProcess {
        self.process.as_ref().expect("running until dropped")
    }

    fn port(&self) -> u16 {
        self.process().port
    }

    fn pid(&self) -> u32 {
        self.process().pid()
    }

    /// CPU seconds so far, with reaped children.
    fn cpu(&self) -> f64 {
        self.process().cpu_seconds_with_children()
    }

    fn query<T: redis::FromRedisValue>(&mut self, args: &[&str]) -> redis::RedisResult<T> {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut self.con)
    }

    /// One `INFO` field (`None` if the server has no such field or errs).
    fn field(&mut self, section: &str, name: &str) -> Option<String> {
        let info: String = self.query(&["INFO", section]).ok()?;
        info_field(&info, name).map(str::to_string)
    }
}

/// A connection to `port` with timeouts, so a stuck server fails the run.
fn connect(port: u16) -> std::io::Result<redis::Connection> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(std::io::Error::other)?;
    let con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(std::io::Error::other)?;
    con.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(std::io::Error::other)?;
    Ok(con)
}

/// A field of an `INFO` reply.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// A replication offset (`master_repl_offset`, `slave_repl_offset`).
fn offset(con: &mut redis::Connection, name: &str) -> Option<u64> {
    let info: String = redis::cmd("INFO").arg("replication").query(con).ok()?;
    info_field(&info, name)?.parse().ok()
}

fn other(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

/// Writes `keys` keys `key:<12 digits>` (the shape of redis-benchmark's keys)
/// with `size`-byte values, in `MSET`s through `redis-cli --pipe`.
fn fill(node: &mut Node, keys: u64, size: usize) -> std::io::Result<()> {
    let mut commands = Vec::new();
    let mut i = 0;
    while i < keys {
        let end = (i + FILL_BATCH).min(keys);
        commands.extend_from_slice(format!("*{}\r\n$4\r\nMSET\r\n", 1 + 2 * (end - i)).as_bytes());
        for k in i..end {
            let key = format!("key:{k:012}");
            let value = format!("{k:0size$}");
            let value = &value[value.len() - size..];
            for part in [key.as_str(), value] {
                commands.extend_from_slice(format!("${}\r\n{part}\r\n", part.len()).as_bytes());
            }
        }
        i = end;
    }
    redis_cli_pipe(node.port(), &commands)?;
    let n: u64 = node.query(&["DBSIZE"]).map_err(other)?;
    if n != keys {
        return Err(other(format!("filled {n} keys, not {keys}")));
    }
    Ok(())
}

/// Tells `replica` to follow `master`.
fn replicaof(replica: &mut Node, master: &Node) -> std::io::Result<()> {
    let port = master.port().to_string();
    let _: String = replica
        .query(&["REPLICAOF", "127.0.0.1", &port])
        .map_err(other)?;
    Ok(())
}

/// True once `replica` says its sync is over, the link up, and it holds `keys` keys.
fn synced(replica: &mut Node, keys: u64) -> bool {
    let Ok(info) = replica.query::<String>(&["INFO", "replication"]) else {
        return false;
    };
    info_field(&info, "master_link_status") == Some("up")
        && info_field(&info, "master_sync_in_progress") == Some("0")
        // Still loading, Redis answers -LOADING.
        && replica.query::<u64>(&["DBSIZE"]).ok() == Some(keys)
}

/// Polls `done` every [`POLL`] until it holds; the seconds it took from `since`.
fn wait(
    what: &str,
    since: Instant,
    mut done: impl FnMut() -> bool,
    mut each: impl FnMut(),
) -> std::io::Result<f64> {
    loop {
        each();
        if done() {
            return Ok(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > GIVE_UP {
            return Err(other(format!("gave up waiting for {what}")));
        }
        std::thread::sleep(POLL);
    }
}

/// One full sync.
#[derive(Debug, Clone)]
struct SyncRun {
    seconds: f64,
    /// Until the replica also applied what the master wrote until `seconds`.
    caught_up: f64,
    master_cpu: f64,
    replica_cpu: f64,
    /// The master's RSS before the sync and its peak during it, in bytes.
    rss_before: u64,
    rss_peak: u64,
    /// Redis's fork: bytes its RDB child copied on write (`rdb_last_cow_size`).
    cow: Option<u64>,
    /// Commands the master ran until the replica caught up (the load's, with
    /// `--sync-under-load`), over `commands_seconds`.
    commands: u64,
    commands_seconds: f64,
    /// Round trips of a `PING` loop on the master during the sync.
    pings: Vec<Duration>,
}

impl SyncRun {
    /// Commands per second the master ran for clients other than the `PING`
    /// loop during the sync.
    fn served_per_second(&self) -> f64 {
        self.commands.saturating_sub(self.pings.len() as u64) as f64 / self.commands_seconds
    }

    /// The `q` quantile of the `PING` round trips, in ms.
    fn ping_ms(&self, q: f64) -> f64 {
        let micros: Vec<u64> = self.pings.iter().map(|d| d.as_micros() as u64).collect();
        quantile(&micros, q) as f64 / 1000.0
    }
}

/// Sends a `PING` to `port` every millisecond or so (one at a time: a
/// stalled server delays the next) until `stop`; their round trips.
fn ping_loop(
    port: u16,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<std::io::Result<Vec<Duration>>> {
    std::thread::spawn(move || {
        let mut con = connect(port)?;
        let mut pings = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let _: String = redis::cmd("PING").query(&mut con).map_err(other)?;
            pings.push(sent.elapsed());
            // A busy loop would take a core from the servers being timed.
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(pings)
    })
}

fn sync_run(kind: Kind, o: &Options, bin: &Path, base: &Path) -> std::io::Result<SyncRun> {
    let mut master = kind.start(bin, base)?;
    let mut replica = kind.start(bin, base)?;
    fill(&mut master, o.keys, o.value_size)?;
    let load = match o.sync_under_load {
        true => Some(Load::start(master.port(), o)?),
        false => None,
    };
    // Lets the fill's buffers and allocator settle (and the load start) before
    // RSS is read.
    std::thread::sleep(Duration::from_secs(1));
    let pid = master.pid();
    let rss_before = rss_of(pid);
    reset_peak_rss(pid)?;
    let (master_cpu, replica_cpu) = (master.cpu(), replica.cpu());
    let commands = commands_processed(&mut master)?;
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = ping_loop(master.port(), stop.clone());
    let started = Instant::now();
    replicaof(&mut replica, &master)?;
    let mut sampled_peak = rss_before;
    let seconds = wait(
        "the full sync",
        started,
        || synced(&mut replica, o.keys),
        || sampled_peak = sampled_peak.max(rss_of(pid)),
    )?;
    // Redis ends its sync once the RDB is loaded and applies the writes made
    // meanwhile after it; ringkv applies them during its sync. Both are timed
    // to the master's offset at the sync's end too.
    let target = repl_offset(&mut master)?;
    let caught_up = wait(
        "the replica to reach the sync's end",
        started,
        || offset(&mut replica.con, "slave_repl_offset").is_some_and(|at| at >= target),
        || sampled_peak = sampled_peak.max(rss_of(pid)),
    )?;
    let (master_cpu, replica_cpu) = (master.cpu() - master_cpu, replica.cpu() - replica_cpu);
    let rss_peak = peak_rss_of(pid).max(sampled_peak);
    let commands = commands_processed(&mut master)? - commands;
    let commands_seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let pings = pinger
        .join()
        .map_err(|_| other("the PING loop panicked"))??;
    drop(load);
    // Redis reaps its RDB child in its cron; its CPU counts once reaped.
    let cpu_before_reap = master.cpu();
    wait(
        "the RDB child's end",
        Instant::now(),
        || {
            master
                .field("persistence", "rdb_bgsave_in_progress")
                .as_deref()
                != Some("1")
        },
        || {},
    )?;
    let master_cpu = master_cpu + (master.cpu() - cpu_before_reap);
    same_data(&mut master, &mut replica, o.keys)?;
    Ok(SyncRun {
        seconds,
        master_cpu,
        replica_cpu,
        rss_before,
        rss_peak,
        cow: master
            .field("persistence", "rdb_last_cow_size")
            .and_then(|v| v.parse().ok()),
        commands,
        commands_seconds,
        pings,
        caught_up,
    })
}

/// The server's `total_commands_processed`.
fn commands_processed(node: &mut Node) -> std::io::Result<u64> {
    node.field("stats", "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| other("no total_commands_processed"))
}

/// The master's `master_repl_offset`.
fn repl_offset(master: &mut Node) -> std::io::Result<u64> {
    master
        .field("replication", "master_repl_offset")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| other("no master_repl_offset"))
}

/// Waits until `replica` applied all `master` wrote, then compares the values
/// of 1000 random keys of the `keys` filled.
fn same_data(master: &mut Node, replica: &mut Node, keys: u64) -> std::io::Result<()> {
    let last = repl_offset(master)?;
    wait(
        "the replica to catch up",
        Instant::now(),
        || offset(&mut replica.con, "slave_repl_offset").is_some_and(|at| at >= last),
        || {},
    )?;
    let names: Vec<String> = (0..1000)
        .map(|_| format!("key:{:012}", rand::random_range(0..keys.max(1))))
        .collect();
    let mut mget: Vec<&str> = vec!["MGET"];
    mget.extend(names.iter().map(String::as_str));
    let on_master: Vec<Option<Vec<u8>>> = master.query(&mget).map_err(other)?;
    let on_replica: Vec<Option<Vec<u8>>> = replica.query(&mget).map_err(other)?;
    match names
        .iter()
        .zip(on_master.iter().zip(&on_replica))
        .find(|(_, (m, r))| m != r)
    {
        Some((key, (m, r))) => Err(other(format!(
            "the replica differs on {key}: {r:?} where the master has {m:?}"
        ))),
        None => Ok(()),
    }
}

/// A redis-benchmark writing to a master until dropped.
struct Load(std::process::Child);

impl Load {
    fn start(port: u16, o: &Options) -> std::io::Result<Load> {
        let child = std::process::Command::new("redis-benchmark")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "-t",
                "set",
            ])
            .args(["-P", &o.pipeline.to_string(), "-c", &o.clients.to_string()])
            .args(["-n", "2000000000", "-r", &o.keys.to_string()])
            .args(["-d", &o.value_size.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        Ok(Load(child))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One keep-up run: the master alone, then with a replica.
#[derive(Debug, Clone)]
struct KeepUpRun {
    rps_alone: f64,
    rps_with: f64,
    /// Master CPU µs per request, alone and with the replica.
    cpu_alone: f64,
    cpu_with: f64,
    /// Replica CPU seconds from the load's start until it caught up.
    replica_cpu: f64,
    load_seconds: f64,
    /// Samples taken every [`SAMPLE`] during the load.
    samples: Vec<Sample>,
    catch_up: f64,
    /// Full syncs beyond the first (a replica dropped and resynced).
    resyncs: u64,
}

impl KeepUpRun {
    /// The `q` quantile of the lag samples, in bytes.
    fn lag(&self, q: f64) -> u64 {
        let lags: Vec<u64> = self.samples.iter().map(Sample::lag).collect();
        quantile(&lags, q)
    }
}

fn benchmark(port: u16, o: &Options) -> std::io::Result<f64> {
    let args: Vec<String> = [
        "-t",
        "set",
        "-P",
        &o.pipeline.to_string(),
        "-n",
        &o.requests.to_string(),
        "-r",
        &o.keyspace.to_string(),
        "-d",
        &o.value_size.to_string(),
        "-c",
        &o.clients.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let results = redis_benchmark(port, &args)?;
    results
        .last()
        .map(|r| r.rps)
        .ok_or_else(|| other("redis-benchmark printed no result"))
}

/// One lag sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Since the sampling started.
    at: Duration,
    master: u64,
    replica: u64,
}

impl Sample {
    fn lag(&self) -> u64 {
        self.master.saturating_sub(self.replica)
    }
}

/// Samples the master's and the replica's offsets every [`SAMPLE`] until `stop`.
fn sample_lag(
    master: u16,
    replica: u16,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<std::io::Result<Vec<Sample>>> {
    std::thread::spawn(move || {
        let (mut m, mut r) = (connect(master)?, connect(replica)?);
        let mut samples = Vec::new();
        let started = Instant::now();
        let mut next = started;
        while !stop.load(Ordering::Relaxed) {
            let at = started.elapsed();
            // The master first: a write landing between the two reads then
            // shortens the lag rather than lengthening it.
            let ahead = offset(&mut m, "master_repl_offset");
            let applied = offset(&mut r, "slave_repl_offset");
            if let (Some(master), Some(replica)) = (ahead, applied) {
                samples.push(Sample {
                    at,
                    master,
                    replica,
                });
            }
            next += SAMPLE;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(samples)
    })
}

fn keepup_run(kind: Kind, o: &Options, bin: &Path, base: &Path) -> std::io::Result<KeepUpRun> {
    let alone = kind.start(bin, base)?;
    let before = alone.cpu();
    let rps_alone = benchmark(alone.port(), o)?;
    let cpu_alone = (alone.cpu() - before) * 1e6 / o.requests as f64;
    drop(alone);

    let mut master = kind.start(bin, base)?;
    let mut replica = kind.start(bin, base)?;
    replicaof(&mut replica, &master)?;
    wait(
        "the first sync",
        Instant::now(),
        || synced(&mut replica, 0),
        || {},
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_lag(master.port(), replica.port(), stop.clone());
    let (master_cpu, replica_cpu) = (master.cpu(), replica.cpu());
    let started = Instant::now();
    let rps_with = benchmark(master.port(), o)?;
    let ended = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let cpu_with = (master.cpu() - master_cpu) * 1e6 / o.requests as f64;
    let last: u64 = master
        .field("replication", "master_repl_offset")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| other("no master_repl_offset"))?;
    let catch_up = wait(
        "the replica to catch up",
        ended,
        || offset(&mut replica.con, "slave_repl_offset").is_some_and(|at| at >= last),
        || {},
    )?;
    let replica_cpu = replica.cpu() - replica_cpu;
    same_data(&mut master, &mut replica, o.keyspace)?;
    let samples = sampler
        .join()
        .map_err(|_| other("the lag sampler panicked"))??;
    let full: u64 = master
        .field("stats", "sync_full")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(KeepUpRun {
        rps_alone,
        rps_with,
        cpu_alone,
        cpu_with,
        replica_cpu,
        load_seconds: (ended - started).as_secs_f64(),
        samples,
        catch_up,
        resyncs: full.saturating_sub(1),
    })
}

/// Appends `samples` to the CSV file at `path`.
fn log_samples(path: &Path, kind: Kind, run: usize, samples: &[Sample]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for s in samples {
        writeln!(
            file,
            "{},{run},{},{},{}",
            kind.name(),
            s.at.as_millis(),
            s.master,
            s.replica
        )?;
    }
    Ok(())
}

/// The `q` quantile of `values` (nearest rank; 0 for none).
fn quantile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(0)
}

/// `median (min–max)` of `values`, with `digits` decimals.
fn summary(values: &[f64], digits: usize) -> String {
    let mut v = values.to_vec();
    let m = median(&mut v);
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) if v.len() > 1 => {
            format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})")
        }
        _ => format!("{m:.digits$}"),
    }
}

const MB: f64 = 1024.0 * 1024.0;

fn print_sync(results: &[(Kind, Vec<SyncRun>)], o: &Options) {
    println!();
    println!(
        "### Full sync of {} keys, {}-byte values{} (median (min–max) of {} runs)",
        o.keys,
        o.value_size,
        match o.sync_under_load {
            true => format!(
                ", under redis-benchmark -t set -P {} -c {} -r {}",
                o.pipeline, o.clients, o.keys
            ),
            false => String::new(),
        },
        o.runs
    );
    println!();
    println!("| server | sync s | caught up s | master CPU s | replica CPU s | master RSS before MB | master peak RSS MB | peak / before | fork CoW MB | other commands/s on the master | PING p99 / max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, runs) in results {
        let col = |f: &dyn Fn(&SyncRun) -> f64, digits| {
            summary(&runs.iter().map(f).collect::<Vec<_>>(), digits)
        };
        let cow = match runs.iter().map(|r| r.cow).collect::<Option<Vec<_>>>() {
            Some(c) => summary(&c.iter().map(|&b| b as f64 / MB).collect::<Vec<_>>(), 1),
            None => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {cow} | {} | {} / {} |",
            kind.name(),
            col(&|r| r.seconds, 2),
            col(&|r| r.caught_up, 2),
            col(&|r| r.master_cpu, 2),
            col(&|r| r.replica_cpu, 2),
            col(&|r| r.rss_before as f64 / MB, 0),
            col(&|r| r.rss_peak as f64 / MB, 0),
            col(&|r| r.rss_peak as f64 / r.rss_before as f64, 2),
            col(&|r| r.served_per_second(), 0),
            col(&|r| r.ping_ms(0.99), 1),
            col(&|r| r.ping_ms(1.0), 1),
        );
    }
}

fn print_keepup(results: &[(Kind, Vec<KeepUpRun>)], o: &Options) {
    println!();
    println!(
        "### Keep-up: redis-benchmark -t set -P {} -n {} -r {} -d {} -c {} (median (min–max) of {} runs)",
        o.pipeline, o.requests, o.keyspace, o.value_size, o.clients, o.runs
    );
    println!();
    println!("| server | SET/s alone | SET/s with replica | change | master CPU µs/SET alone / with | replica CPU s | load s | median lag KB | p99 lag KB | max lag KB | catch-up ms | resyncs |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, runs) in results {
        let col = |f: &dyn Fn(&KeepUpRun) -> f64, digits| {
            summary(&runs.iter().map(f).collect::<Vec<_>>(), digits)
        };
        println!(
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.name(),
            col(&|r| r.rps_alone, 0),
            col(&|r| r.rps_with, 0),
            col(&|r| 100.0 * (r.rps_with / r.rps_alone - 1.0), 0) + "%",
            col(&|r| r.cpu_alone, 3),
            col(&|r| r.cpu_with, 3),
            col(&|r| r.replica_cpu, 1),
            col(&|r| r.load_seconds, 1),
            col(&|r| r.lag(0.5) as f64 / 1024.0, 0),
            col(&|r| r.lag(0.99) as f64 / 1024.0, 0),
            col(&|r| r.lag(1.0) as f64 / 1024.0, 0),
            col(&|r| r.catch_up * 1000.0, 0),
            runs.iter().map(|r| r.resyncs).sum::<u64>(),
        );
    }
}

fn main() {
    let o = Options::parse();
    let kinds: Vec<Kind> = o
        .servers
        .iter()
        .map(|s| {
            Kind::parse(s).unwrap_or_else(|| {
                eprintln!("unknown server {s}: ringkv, redis, redis-disk or redis-mem");
                std::process::exit(2);
            })
        })
        .collect();
    for program in ["redis-cli", "redis-benchmark"] {
        if !have_program(program) {
            eprintln!("{program} is not installed (apt-get install redis-tools)");
            std::process::exit(2);
        }
    }
    let bin = o.server_bin.clone().unwrap_or_else(ringkv_release_binary);
    if kinds.contains(&Kind::Ringkv) && !bin.exists() {
        eprintln!(
            "{} not found: run `cargo build --release -p ringkv-server` first",
            bin.display()
        );
        std::process::exit(2);
    }
    let base = o.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "replication speed, {} CPUs, {} runs, servers {}",
        cpus,
        o.runs,
        o.servers.join(",")
    );
    let ordered = |run: usize, kinds: &[Kind]| {
        let mut order = kinds.to_vec();
        if run % 2 == 1 {
            order.reverse();
        }
        order
    };
    if o.phases.iter().any(|p| p == "sync") {
        let mut results: Vec<(Kind, Vec<SyncRun>)> =
            kinds.iter().map(|&k| (k, Vec::new())).collect();
        for run in 0..o.runs {
            for kind in ordered(run, &kinds) {
                match sync_run(kind, &o, &bin, &base) {
                    Ok(r) => {
                        eprintln!(
                            "sync {} run {run}: {:.2} s, caught up {:.2} s, CPU {:.2} / {:.2} s, RSS {} -> {} MB, CoW {:?} B, {:.0} other commands/s, {} PINGs p99 {:.1} ms max {:.1} ms",
                            kind.name(),
                            r.seconds,
                            r.caught_up,
                            r.master_cpu,
                            r.replica_cpu,
                            r.rss_before >> 20,
                            r.rss_peak >> 20,
                            r.cow,
                            r.served_per_second(),
                            r.pings.len(),
                            r.ping_ms(0.99),
                            r.ping_ms(1.0)
                        );
                        if let Some((_, runs)) = results.iter_mut().find(|(k, _)| *k == kind) {
                            runs.push(r);
                        }
                    }
                    Err(e) => eprintln!("sync {} run {run} failed: {e}", kind.name()),
                }
            }
        }
        print_sync(&results, &o);
    }
    if o.phases.iter().any(|p| p == "keepup") {
        let keepup: Vec<Kind> = kinds
            .iter()
            .copied()
            .filter(|k| matches!(k, Kind::Ringkv | Kind::Redis))
            .collect();
        let mut results: Vec<(Kind, Vec<KeepUpRun>)> =
            keepup.iter().map(|&k| (k, Vec::new())).collect();
        for run in 0..o.runs {
            for kind in ordered(run, &keepup) {
                match keepup_run(kind, &o, &bin, &base) {
                    Ok(r) => {
                        eprintln!(
                            "keepup {} run {run}: {:.0} SET/s alone, {:.0} with replica, lag median {} B, p99 {} B, max {} B, {} samples, catch-up {:.3} s, resyncs {}",
                            kind.name(),
                            r.rps_alone,
                            r.rps_with,
                            r.lag(0.5),
                            r.lag(0.99),
                            r.lag(1.0),
                            r.samples.len(),
                            r.catch_up,
                            r.resyncs
                        );
                        if let Some(path) = &o.lag_log {
                            if let Err(e) = log_samples(path, kind, run, &r.samples) {
                                eprintln!("{}: {e}", path.display());
                            }
                        }
                        if let Some((_, runs)) = results.iter_mut().find(|(k, _)| *k == kind) {
                            runs.push(r);
                        }
                    }
                    Err(e) => eprintln!("keepup {} run {run} failed: {e}", kind.name()),
                }
            }
        }
        print_keepup(&results, &o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[7], 0.99), 7);
        assert_eq!(quantile(&[], 0.99), 0);
    }

    #[test]
    fn info_fields_match_whole_names() {
        let info = "# Replication\r\nmaster_repl_offset:120\r\nmaster_repl_offset_x:1\r\n";
        assert_eq!(info_field(info, "master_repl_offset"), Some("120"));
        assert_eq!(info_field(info, "slave_repl_offset"), None);
    }

    #[test]
    fn summaries_show_median_and_range() {
        assert_eq!(summary(&[3.0, 1.0, 2.0], 1), "2.0 (1.0–3.0)");
        assert_eq!(summary(&[2.5], 2), "2.50");
    }
}
