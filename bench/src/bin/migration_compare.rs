//! Moving slots between two masters under load, three ways side by side:
//!
//! * `atomic`: ringkv's `CLUSTER MIGRATESLOTS SLOTSRANGE ... NODE <target>`
//!   on the source, polled with `CLUSTER GETSLOTMIGRATIONS` every 5 ms;
//! * `reshard-ringkv`: `redis-cli --cluster reshard` against ringkv (Redis's
//!   key-by-key `MIGRATE` path, `--cluster-pipeline` keys per `MIGRATE`);
//! * `reshard-redis`: the same `redis-cli` command against `redis-server`.
//!
//! Each run gets a fresh cluster of three masters made by `redis-cli --cluster
//! create` (which refuses fewer than three; the third master only watches),
//! ringkv's with `--lock-delay 0`. `--keys` keys of `--value-size` bytes are
//! loaded (pipelined `SET`s straight to the source) into exactly the first
//! `--slots` slots the source owns, spread evenly (plain `key:<n>` names, no
//! hash tags, picked by their CRC16 slot). While those slots move to the
//! second master, `--load-threads` clients run a paced 50/50 mix of `SET` and
//! `GET` on the moving keys, following `-MOVED`/`-ASK` like a cluster client,
//! and check every `GET` against what they last wrote. The move's time runs
//! from the command (or `redis-cli` start) until the job says `success` (or
//! `redis-cli` exits) and the source's `CLUSTER NODES` shows the target owning
//! every slot. Afterwards the target must hold exactly the keys, each with its
//! last acknowledged value, and the source none.
//!
//! The results (median of `--runs` per mode) are printed as a Markdown table.
//!
//! ```text
//! bench/cluster-harness.sh migration_compare                      # 1M keys, 1000 slots
//! bench/cluster-harness.sh migration_compare --keys 100000 --slots 100 --modes atomic
//! bench/cluster-harness.sh migration_compare --modes reshard-ringkv,reshard-redis --pipeline 10,1000
//! ```
//!
//! `--ringkv-binary` runs another `ringkv-server` build (one made at a given
//! commit, say) instead of the workspace's.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{RngExt, SeedableRng};
use ringkv_bench::cluster::{poll, Cluster, NodeLine, Server, Settings, Spawned};
use ringkv_bench::median;
use ringkv_bench::resp::{ClusterClient, Reply, Resp};
use ringkv_server::keyspace::key_slot;

/// Slot migration under load: ringkv's atomic path and `redis-cli --cluster
/// reshard` against ringkv and Redis.
#[derive(Debug, Parser)]
struct Options {
    /// Keys loaded into the moving slots.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Bytes per value (at least 24).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Slots moved (the source's first ones), holding every key.
    #[arg(long, default_value_t = 1000)]
    slots: usize,
    /// Modes, in order: `atomic`, `reshard-ringkv`, `reshard-redis`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "atomic,reshard-ringkv,reshard-redis"
    )]
    modes: Vec<String>,
    /// Fresh clusters per mode (the median of each figure is reported).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// `redis-cli --cluster-pipeline` values (keys per `MIGRATE`); each
    /// reshard mode runs once per value.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pipeline: Vec<usize>,
    /// Client threads of the load during the move.
    #[arg(long, default_value_t = 2)]
    load_threads: usize,
    /// Operations per second of the whole load (paced; 0: as fast as it goes).
    #[arg(long, default_value_t = 5000)]
    load_rate: u64,
    /// Connections loading the keys before the move.
    #[arg(long, default_value_t = 2)]
    fill_connections: usize,
    /// Longest a move may take before the run fails, in seconds.
    #[arg(long, default_value_t = 1200)]
    timeout_secs: u64,
    /// `cluster-node-timeout` in milliseconds, for both servers.
    #[arg(long, default_value_t = 5000)]
    node_timeout: u64,
    /// The `ringkv-server` to run (the workspace's release build if unset),
    /// e.g. one built at a given commit.
    #[arg(long)]
    ringkv_binary: Option<PathBuf>,
    /// Where each cluster's files go (a fresh subdirectory, removed after).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

/// Masters created (`redis-cli --cluster create` needs three).
const MASTERS: usize = 3;
/// How long setup steps (create, fill, checks) may take.
const SETUP_LIMIT: Duration = Duration::from_secs(120);
/// Commands per pipelined batch when filling and checking.
const BATCH: usize = 1000;
/// A load client's read timeout (ringkv's pause times out after 2 s).
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The keys.

/// The loaded keys: `key:<n>` for the `n` kept, `keys / slots` (+1) per slot.
struct Keys {
    /// Each key's `n`.
    names: Vec<u32>,
    /// Each key's slot.
    slots: Vec<u16>,
    /// Bytes per value.
    value_size: usize,
}

impl Keys {
    /// `count` keys spread evenly over `slots`.
    fn pick(count: usize, slots: &[u16], value_size: usize) -> Keys {
        let mut quota = vec![0usize; 16384];
        for (i, &slot) in slots.iter().enumerate() {
            quota[slot as usize] = count / slots.len() + usize::from(i < count % slots.len());
        }
        let mut keys = Keys {
            names: Vec::with_capacity(count),
            slots: Vec::with_capacity(count),
            value_size,
        };
        let mut n: u32 = 0;
        while keys.names.len() < count {
            let slot = key_slot(format!("key:{n}").as_bytes());
            if quota[slot as usize] > 0 {
                quota[slot as usize] -= 1;
                keys.names.push(n);
                keys.slots.push(slot);
            }
            n += 1;
        }
        keys
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    fn key(&self, i: usize) -> String {
        format!("key:{}", self.names[i])
    }

    /// `prefix` padded with `x` to the value size.
    fn pad(&self, mut text: String) -> Vec<u8> {
        text.truncate(self.value_size);
        let mut value = text.into_bytes();
        value.resize(self.value_size, b'x');
        value
    }

    /// What key `i` is loaded with.
    fn initial(&self, i: usize) -> Vec<u8> {
        self.pad(format!("v{i}:"))
    }

    /// What load thread `thread` writes with its write number `seq`.
    fn written(&self, thread: usize, seq: u64) -> Vec<u8> {
        self.pad(format!("w{thread}:{seq}:"))
    }
}

/// Loads every key into the node on `port` over `connections` connections,
/// `BATCH` pipelined `SET`s at a time.
fn fill(port: u16, keys: &Arc<Keys>, connections: usize) -> Result<(), String> {
    let handles: Vec<JoinHandle<Result<(), String>>> = (0..connections)
        .map(|c| {
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut con = Resp::connect(port, Duration::from_secs(30))
                    .map_err(|e| format!("fill: connect: {e}"))?;
                let mine: Vec<usize> = (c..keys.len()).step_by(connections).collect();
                for batch in mine.chunks(BATCH) {
                    for &i in batch {
                        con.queue(&[b"SET".to_vec(), keys.key(i).into_bytes(), keys.initial(i)]);
                    }
                    con.flush().map_err(|e| format!("fill: {e}"))?;
                    for _ in batch {
                        match con.read().map_err(|e| format!("fill: {e}"))? {
                            Reply::Status(s) if s == "OK" => {}
                            other => return Err(format!("fill: SET answered {other:?}")),
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| "fill thread panicked".to_string())??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The load during the move.

/// Flags shared with the load threads.
#[derive(Default)]
struct LoadFlags {
    /// Operations that start while this is set are counted.
    moving: AtomicBool,
    stop: AtomicBool,
}

/// One load thread's results.
#[derive(Debug, Default)]
struct LoadStats {
    /// Latency (µs) of each operation started during the move, redirects
    /// included.
    latencies: Vec<u32>,
    /// Longest time between two successful operations, the later one started
    /// during the move.
    max_gap: Duration,
    /// The slowest operation during the move: latency, when it started
    /// (seconds after this thread first saw the move), and which.
    worst: Option<(Duration, f64, &'static str)>,
    /// Redirects followed (whole run).
    moved: u64,
    asked: u64,
    /// `-TRYAGAIN` / `-CLUSTERDOWN` answers retried (whole run).
    retried: u64,
    /// Operations that failed (error reply, lost connection, too many
    /// redirects), whole run.
    errors: u64,
    /// `GET`s that returned something other than the last acknowledged write.
    wrong_reads: u64,
    /// The first few error texts.
    samples: Vec<String>,
    /// Each key this thread wrote: its last acknowledged write number.
    written: HashMap<usize, u64>,
    /// Keys whose last write has an unknown outcome (not checked after).
    uncertain: HashSet<usize>,
}

impl LoadStats {
    fn error(&mut self, text: String) {
        self.errors += 1;
        if self.samples.len() < 5 {
            self.samples.push(text);
        }
    }
}

/// Starts load thread `thread` of `threads`: it works on the keys `i` with
/// `i % threads == thread`, at `rate` operations per second (0: unpaced).
fn start_load(
    thread: usize,
    threads: usize,
    rate: f64,
    keys: Arc<Keys>,
    owner: Vec<u16>,
    flags: Arc<LoadFlags>,
) -> JoinHandle<LoadStats> {
    std::thread::spawn(move || {
        let mut stats = LoadStats::default();
        let mut client = ClusterClient::new(owner, LOAD_TIMEOUT);
        let mut rng = rand::rngs::StdRng::seed_from_u64(thread as u64 + 1);
        let mine = (keys.len() - thread).div_ceil(threads);
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        let mut next = Instant::now();
        let mut last_ok: Option<Instant> = None;
        let mut seq = 0u64;
        let mut move_seen: Option<Instant> = None;
        while !flags.stop.load(Ordering::Relaxed) {
            if let Some(interval) = interval {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > Duration::from_millis(100) {
                    // Far behind (a stall): start the schedule again.
                    next = now;
                }
                next += interval;
            }
            let i = thread + threads * rng.random_range(0..mine);
            let key = keys.key(i);
            let write = rng.random_bool(0.5);
            let recording = flags.moving.load(Ordering::Relaxed);
            let start = Instant::now();
            let ok = if write {
                seq += 1;
                let value = keys.written(thread, seq);
                match client.run(keys.slots[i], &[b"SET", key.as_bytes(), &value]) {
                    Ok(Reply::Status(s)) if s == "OK" => {
                        stats.written.insert(i, seq);
                        stats.uncertain.remove(&i);
                        true
                    }
                    other => {
                        stats.uncertain.insert(i);
                        stats.error(format!("SET {key}: {other:?}"));
                        false
                    }
                }
            } else {
                match client.run(keys.slots[i], &[b"GET", key.as_bytes()]) {
                    Ok(Reply::Bulk(value)) => {
                        let expected = match stats.written.get(&i) {
                            Some(&s) => keys.written(thread, s),
                            None => keys.initial(i),
                        };
                        if !stats.uncertain.contains(&i) && value.as_ref() != Some(&expected) {
                            stats.wrong_reads += 1;
                            if stats.samples.len() < 5 {
                                stats.samples.push(format!(
                                    "GET {key}: {:?}, expected {:?}",
                                    value.map(|v| String::from_utf8_lossy(&v[..v.len().min(20)])
                                        .into_owned()),
                                    String::from_utf8_lossy(&expected[..20.min(expected.len())])
                                ));
                            }
                        }
                        true
                    }
                    other => {
                        stats.error(format!("GET {key}: {other:?}"));
                        false
                    }
                }
            };
            let end = Instant::now();
            if recording {
                let latency = end - start;
                stats
                    .latencies
                    .push(latency.as_micros().min(u32::MAX as u128) as u32);
                let since = *move_seen.get_or_insert(start);
                if stats.worst.is_none_or(|(w, _, _)| latency > w) {
                    let at = (start - since).as_secs_f64();
                    stats.worst = Some((latency, at, if write { "SET" } else { "GET" }));
                }
            }
            if ok {
                if let (true, Some(last)) = (recording, last_ok) {
                    stats.max_gap = stats.max_gap.max(end - last);
                }
                last_ok = Some(end);
            }
        }
        stats.moved = client.redirects.moved;
        stats.asked = client.redirects.asked;
        stats.retried = client.redirects.retried;
        stats
    })
}

// ---------------------------------------------------------------------------
// Clusters.

/// A fresh cluster of three masters, each seeing all three serve slots and
/// saying `cluster_state:ok`.
fn cluster(server: &Server, options: &Options) -> Result<Cluster, String> {
    let extra = match server {
        Server::Ringkv(_) => vec!["--lock-delay".into(), "0".into()],
        Server::Redis => Vec::new(),
    };
    let settings = Settings {
        node_timeout: options.node_timeout,
        workdir: options.workdir.clone(),
        extra,
    };
    let mut last = String::new();
    for attempt in 1..=3 {
        let mut cluster = Cluster::fresh(server, MASTERS, &settings).map_err(|e| e.to_string())?;
        let made = cluster.create(0, SETUP_LIMIT).map_err(|e| e.to_string());
        let agreed = made.and_then(|_| {
            let all: Vec<usize> = (0..MASTERS).collect();
            poll(Instant::now(), SETUP_LIMIT, || {
                cluster.all_state(&all, "ok")
                    && all.iter().all(|&i| {
                        cluster.nodes(i).is_some_and(|nodes| {
                            nodes.iter().filter(|n| n.serves()).count() == MASTERS
                                && nodes.iter().map(|n| n.slots.len()).sum::<usize>() == MASTERS
                        })
                    })
            })
            .map(|_| ())
            .ok_or_else(|| format!("the new cluster did not settle:\n{}", cluster.describe()))
        });
        match agreed {
            Ok(()) => return Ok(cluster),
            Err(e) => {
                eprintln!("{}: cluster attempt {attempt}: {e}", server.name());
                last = e;
            }
        }
    }
    Err(last)
}

/// Source and target: the masters serving slot 0 and the next range, as node
/// 0 sees them.
fn source_and_target(cluster: &mut Cluster) -> Result<(NodeLine, NodeLine), String> {
    let mut masters: Vec<NodeLine> = cluster
        .nodes(0)
        .ok_or("no CLUSTER NODES")?
        .into_iter()
        .filter(NodeLine::serves)
        .collect();
    masters.sort_by_key(|n| n.slots[0].0);
    let mut masters = masters.into_iter();
    match (masters.next(), masters.next()) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err("fewer than two masters serve slots".into()),
    }
}

/// `[(start, end), ...]` of sorted `slots`.
fn ranges(slots: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Node `i`'s `DBSIZE`.
fn dbsize(cluster: &mut Cluster, i: usize) -> Option<i64> {
    match cluster.call(i, &["DBSIZE"])? {
        Ok(redis::Value::Int(n)) => Some(n),
        _ => None,
    }
}

/// Node `from`'s `CLUSTER NODES` shows `target` owning every slot of `slots`.
fn owns_all(cluster: &mut Cluster, from: usize, target: &str, slots: &[u16]) -> bool {
    cluster.nodes(from).is_some_and(|nodes| {
        nodes
            .iter()
            .find(|n| n.id == target)
            .is_some_and(|t| slots.iter().all(|&s| t.owns(s)))
    })
}

/// A `CLUSTER GETSLOTMIGRATIONS` row as field -> text.
fn migration_row(value: &redis::Value) -> HashMap<String, String> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    match value {
        redis::Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
        redis::Value::Array(flat) => flat
            .chunks(2)
            .filter(|p| p.len() == 2)
            .map(|p| (text(&p[0]), text(&p[1])))
            .collect(),
        _ => HashMap::new(),
    }
}

// ---------------------------------------------------------------------------
// The moves.

/// How to move the slots.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Atomic,
    Reshard { pipeline: usize },
}

/// `CLUSTER MIGRATESLOTS` on the source; returns once the job says
/// `success` and the source's table shows the target owning every slot.
fn move_atomic(
    cluster: &mut Cluster,
    source: usize,
    target_id: &str,
    slots: &[u16],
    limit: Duration,
) -> Result<(), String> {
    let mut args: Vec<String> = vec!["CLUSTER".into(), "MIGRATESLOTS".into(), "SLOTSRANGE".into()];
    for (a, b) in ranges(slots) {
        args.push(a.to_string());
        args.push(b.to_string());
    }
    args.push("NODE".into());
    args.push(target_id.into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    match cluster.call(source, &args) {
        Some(Ok(_)) => {}
        other => return Err(format!("CLUSTER MIGRATESLOTS: {other:?}")),
    }
    let mut succeeded: Option<Duration> = None;
    let mut last_row = HashMap::new();
    let mut last_state = String::new();
    loop {
        if succeeded.is_none() {
            if let Some(Ok(redis::Value::Array(rows))) =
                cluster.call(source, &["CLUSTER", "GETSLOTMIGRATIONS"])
            {
                if let Some(row) = rows
                    .iter()
                    .rev()
                    .map(migration_row)
                    .find(|r| r.get("operation").map(String::as_str) == Some("EXPORT"))
                {
                    let state = row.get("state").cloned().unwrap_or_default();
                    if state != last_state {
                        eprintln!(
                            "  {:>7.3} s: {state} (bytes {})",
                            started.elapsed().as_secs_f64(),
                            row.get("bytes").map_or("?", String::as_str)
                        );
                        last_state = state.clone();
                    }
                    match state.as_str() {
                        "success" => succeeded = Some(started.elapsed()),
                        "failed" | "cancelled" => {
                            return Err(format!(
                                "the migration ended {state}: {row:?}\nsource log:\n{}",
                                cluster.log_tail(source, 20)
                            ))
                        }
                        _ => {}
                    }
                    last_row = row;
                }
            }
        }
        if succeeded.is_some() && owns_all(cluster, source, target_id, slots) {
            eprintln!(
                "  job: {:?}; target owns the slots in the source's table at {:.3} s",
                last_row,
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "no success within {limit:?}: last row {last_row:?}\nsource log:\n{}",
                cluster.log_tail(source, 20)
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `redis-cli --cluster reshard` of `slots.len()` slots from `source` to
/// `target`; returns once it exited successfully and the source's table
/// shows the target owning every slot.
#[allow(clippy::too_many_arguments)]
fn move_reshard(
    cluster: &mut Cluster,
    source: usize,
    source_id: &str,
    target_id: &str,
    slots: &[u16],
    pipeline: usize,
    limit: Duration,
) -> Result<(), String> {
    let log_path = cluster.dir.join("reshard.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut cli = Spawned::start(
        Command::new("redis-cli")
            .args(["--cluster", "reshard"])
            .arg(format!("127.0.0.1:{}", cluster.ports[source]))
            .args(["--cluster-from", source_id, "--cluster-to", target_id])
            .args(["--cluster-slots", &slots.len().to_string()])
            .args(["--cluster-pipeline", &pipeline.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log),
    )
    .map_err(|e| format!("redis-cli: {e}"))?;
    let tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    let mut reported = Instant::now();
    let exited = poll(started, limit, || {
        if reported.elapsed() > Duration::from_secs(30) {
            reported = Instant::now();
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            eprintln!(
                "  {:>5.0} s: {} slots started",
                started.elapsed().as_secs_f64(),
                text.lines()
                    .filter(|l| l.starts_with("Moving slot"))
                    .count()
            );
        }
        cli.child()
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    });
    if exited.is_none() {
        cli.kill();
        return Err(format!(
            "redis-cli --cluster reshard did not finish within {limit:?}:\n{}",
            tail()
        ));
    }
    let status = cli.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("redis-cli --cluster reshard failed:\n{}", tail()));
    }
    let owned = poll(started, limit, || {
        owns_all(cluster, source, target_id, slots)
    });
    match owned {
        Some(_) => Ok(()),
        None => Err(format!(
            "redis-cli exited but the source does not show the target owning every slot:\n{}",
            tail()
        )),
    }
}

// ---------------------------------------------------------------------------
// One run.

/// One run's measurements.
#[derive(Debug, Default)]
struct Run {
    /// Seconds of the move.
    seconds: f64,
    /// Load operations started during the move.
    ops: usize,
    /// Their latency percentiles and maximum, ms.
    p50: f64,
    p99: f64,
    max: f64,
    /// Longest time between successful load operations, ms.
    gap: f64,
    moved: u64,
    asked: u64,
    retried: u64,
    /// Load operations that failed, `GET`s that returned a wrong value, and
    /// keys missing or wrong on the target afterwards.
    errors: u64,
    wrong_reads: u64,
    wrong_after: u64,
    /// Seconds after the move until the source held no key.
    source_empty: Option<f64>,
}

/// The `q` quantile of sorted `values` (µs) in ms.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// Checks every key on node `port` with pipelined `GET`s: the last
/// acknowledged write of a load thread, or the loaded value. Returns the keys
/// missing or wrong (keys whose last write's outcome is unknown are skipped).
fn check_values(port: u16, keys: &Keys, loads: &[LoadStats]) -> Result<u64, String> {
    let mut con = Resp::connect(port, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let threads = loads.len();
    let mut wrong = 0;
    let mut shown = 0;
    let all: Vec<usize> = (0..keys.len()).collect();
    for batch in all.chunks(BATCH) {
        for &i in batch {
            con.queue(&[b"GET".to_vec(), keys.key(i).into_bytes()]);
        }
        con.flush().map_err(|e| e.to_string())?;
        for &i in batch {
            let reply = con.read().map_err(|e| e.to_string())?;
            let load = &loads[i % threads];
            if load.uncertain.contains(&i) {
                continue;
            }
            let expected = match load.written.get(&i) {
                Some(&seq) => keys.written(i % threads, seq),
                None => keys.initial(i),
            };
            if reply != Reply::Bulk(Some(expected)) {
                wrong += 1;
                if shown < 5 {
                    shown += 1;
                    eprintln!("  after the move, {}: {reply:?}", keys.key(i));
                }
            }
        }
    }
    Ok(wrong)
}

fn run_once(
    server: &Server,
    mode: Mode,
    options: &Options,
    keys: &mut Option<(Vec<u16>, Arc<Keys>)>,
) -> Result<Run, String> {
    let limit = Duration::from_secs(options.timeout_secs);
    let mut cluster = cluster(server, options)?;
    let (a, b) = source_and_target(&mut cluster)?;
    let source = cluster.node_on(a.port).ok_or("source not found")?;
    let target = cluster.node_on(b.port).ok_or("target not found")?;
    let slots: Vec<u16> = a
        .slots
        .iter()
        .flat_map(|&(s, e)| s..=e)
        .take(options.slots)
        .collect();
    if slots.len() < options.slots {
        return Err(format!("the source owns only {} slots", slots.len()));
    }
    let keys = match keys {
        Some((picked_for, k)) if *picked_for == slots => k.clone(),
        _ => {
            let picked = Instant::now();
            let k = Arc::new(Keys::pick(options.keys, &slots, options.value_size));
            eprintln!(
                "  picked {} keys over {} slots in {:.1} s",
                k.len(),
                slots.len(),
                picked.elapsed().as_secs_f64()
            );
            *keys = Some((slots.clone(), k.clone()));
            k
        }
    };
    let filled = Instant::now();
    fill(cluster.ports[source], &keys, options.fill_connections)?;
    let size = dbsize(&mut cluster, source);
    eprintln!(
        "  loaded {} keys in {:.1} s; source DBSIZE {size:?}",
        keys.len(),
        filled.elapsed().as_secs_f64()
    );
    if size != Some(keys.len() as i64) {
        return Err(format!(
            "source DBSIZE {size:?} after loading {} keys",
            keys.len()
        ));
    }

    // The load: every slot's owner as the source sees it.
    let mut owner = vec![0u16; 16384];
    for node in cluster.nodes(source).ok_or("no CLUSTER NODES")? {
        for &(s, e) in &node.slots {
            (s..=e).for_each(|slot| owner[slot as usize] = node.port);
        }
    }
    let flags = Arc::new(LoadFlags::default());
    let threads = options.load_threads.max(1);
    let rate = options.load_rate as f64 / threads as f64;
    let loads: Vec<JoinHandle<LoadStats>> = (0..threads)
        .map(|t| start_load(t, threads, rate, keys.clone(), owner.clone(), flags.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    flags.moving.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let moved = match mode {
        Mode::Atomic => move_atomic(&mut cluster, source, &b.id, &slots, limit),
        Mode::Reshard { pipeline } => {
            move_reshard(&mut cluster, source, &a.id, &b.id, &slots, pipeline, limit)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    flags.moving.store(false, Ordering::Relaxed);
    // The load goes on (on the new owner) while the source drops its copy.
    let ended = Instant::now();
    let source_empty = moved
        .is_ok()
        .then(|| poll(ended, limit, || dbsize(&mut cluster, source) == Some(0)))
        .flatten();
    std::thread::sleep(Duration::from_millis(300));
    flags.stop.store(true, Ordering::Relaxed);
    let loads: Vec<LoadStats> = loads
        .into_iter()
        .map(|h| h.join().map_err(|_| "load thread panicked".to_string()))
        .collect::<Result<_, _>>()?;
    moved?;
    eprintln!("  moved in {seconds:.2} s");

    if source_empty.is_none() {
        let left = dbsize(&mut cluster, source);
        return Err(format!("the source still holds {left:?} keys"));
    }
    let mut run = Run {
        seconds,
        source_empty,
        ..Run::default()
    };
    let mut latencies: Vec<u32> = Vec::new();
    for load in &loads {
        latencies.extend(&load.latencies);
        run.gap = run.gap.max(load.max_gap.as_secs_f64() * 1000.0);
        run.moved += load.moved;
        run.asked += load.asked;
        run.retried += load.retried;
        run.errors += load.errors;
        run.wrong_reads += load.wrong_reads;
        for sample in &load.samples {
            eprintln!("  load: {sample}");
        }
        if let Some((latency, at, op)) = load.worst {
            eprintln!(
                "  load: slowest op {op} {:.1} ms, started {at:.3} s into the move (of {seconds:.3} s)",
                latency.as_secs_f64() * 1000.0
            );
        }
    }
    latencies.sort_unstable();
    run.ops = latencies.len();
    run.p50 = quantile(&latencies, 0.50);
    run.p99 = quantile(&latencies, 0.99);
    run.max = quantile(&latencies, 1.0);

    // Afterwards: the target holds every key with its last value, the source none.
    let checked = Instant::now();
    let n = keys.len() as i64;
    let mut target_size = None;
    poll(checked, Duration::from_secs(60), || {
        target_size = dbsize(&mut cluster, target);
        target_size == Some(n)
    });
    if target_size != Some(n) {
        return Err(format!("target DBSIZE {target_size:?}, expected {n}"));
    }
    if !owns_all(&mut cluster, target, &b.id, &slots) {
        return Err("the target does not show itself owning every slot".into());
    }
    run.wrong_after = check_values(cluster.ports[target], &keys, &loads)?;
    Ok(run)
}

// ---------------------------------------------------------------------------
// The table.

/// The median over runs of `f`.
fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(&mut runs.iter().map(f).collect::<Vec<_>>())
}

/// Thousands separators.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    let options = Options::parse();
    ringkv_bench::cluster::harness_start(&["redis-cli", "redis-server"]);
    if options.value_size < 24 || options.slots == 0 || options.keys < options.slots {
        eprintln!("need --value-size >= 24 and --keys >= --slots > 0");
        std::process::exit(2);
    }
    let ringkv = match &options.ringkv_binary {
        Some(path) => Server::Ringkv(path.clone()),
        None => Server::named("ringkv").expect("known"),
    };
    let mut plan: Vec<(String, Server, Mode)> = Vec::new();
    for mode in &options.modes {
        match mode.as_str() {
            "atomic" => plan.push((mode.clone(), ringkv.clone(), Mode::Atomic)),
            "reshard-ringkv" | "reshard-redis" => {
                let server = match mode.as_str() {
                    "reshard-ringkv" => ringkv.clone(),
                    _ => Server::Redis,
                };
                for &pipeline in &options.pipeline {
                    plan.push((
                        format!("{mode} (pipeline {pipeline})"),
                        server.clone(),
                        Mode::Reshard { pipeline },
                    ));
                }
            }
            other => {
                eprintln!("unknown mode {other} (atomic, reshard-ringkv, reshard-redis)");
                std::process::exit(2);
            }
        }
    }
    let mut keys = None;
    let mut rows: Vec<String> = Vec::new();
    let mut seconds_of: Vec<(String, f64)> = Vec::new();
    for (name, server, mode) in &plan {
        let mut runs = Vec::new();
        let mut failures = Vec::new();
        for r in 0..options.runs {
            eprintln!("{name} run {}:", r + 1);
            match run_once(server, *mode, &options, &mut keys) {
                Ok(run) => {
                    eprintln!("{name} run {}: {run:?}", r + 1);
                    runs.push(run);
                }
                Err(e) => {
                    eprintln!("{name} run {}: FAILED: {e}", r + 1);
                    failures.push(e.lines().next().unwrap_or_default().to_string());
                }
            }
        }
        if runs.is_empty() {
            rows.push(format!(
                "| {name} | failed: {} | | | | | | | |",
                failures.join("; ").replace('|', "/")
            ));
            continue;
        }
        let seconds = med(&runs, |r| r.seconds);
        seconds_of.push((name.clone(), seconds));
        let errors: u64 = runs.iter().map(|r| r.errors).sum();
        let wrong: u64 = runs.iter().map(|r| r.wrong_reads + r.wrong_after).sum();
        let source_empty: Vec<f64> = runs.iter().filter_map(|r| r.source_empty).collect();
        let mut failed = String::new();
        if !failures.is_empty() {
            failed = format!(" ({} of {} runs failed)", failures.len(), options.runs);
        }
        rows.push(format!(
            "| {name}{failed} | {seconds:.2} | {} | {} | {:.2} / {:.2} / {:.1} | {:.1} | {} / {} / {} | {errors} | {wrong} | {:.2} |",
            thousands(options.keys as f64 / seconds),
            thousands(med(&runs, |r| r.ops as f64)),
            med(&runs, |r| r.p50),
            med(&runs, |r| r.p99),
            med(&runs, |r| r.max),
            med(&runs, |r| r.gap),
            thousands(med(&runs, |r| r.moved as f64)),
            thousands(med(&runs, |r| r.asked as f64)),
            thousands(med(&runs, |r| r.retried as f64)),
            median(&mut source_empty.clone()),
        ));
    }
    println!(
        "\n{} keys of {} B in {} slots, moved between two of three masters; load {} ops/s \
         ({} threads, 50% SET / 50% GET on the moving keys); {} run(s) per mode, median\n",
        thousands(options.keys as f64),
        options.value_size,
        options.slots,
        thousands(options.load_rate as f64),
        options.load_threads,
        options.runs
    );
    println!(
        "| mode | move s | keys/s | load ops during the move | load latency p50 / p99 / max ms | \
         longest gap between successful ops ms | redirects MOVED / ASK / TRYAGAIN | load errors | \
         wrong reads + wrong keys after | source empty after the move, s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    if let Some(&(_, atomic)) = seconds_of.iter().find(|(name, _)| name == "atomic") {
        println!();
        for (name, seconds) in &seconds_of {
            if name != "atomic" {
                println!("atomic is {:.1}x as fast as {name}", seconds / atomic);
            }
        }
    }
}
