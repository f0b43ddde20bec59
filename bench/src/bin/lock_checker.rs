//! A Jepsen-style checker for one lock across failovers: many clients take the
//! same lock through the Rust client (ringkv: native locks with fencing
//! tokens; Redis: `SET NX PX`), each holding it for a short random time while
//! writing to a simulated resource, while a fault driver kills (`kill -9`, then
//! a restart), pauses (SIGSTOP longer than the node timeout, then SIGCONT) and,
//! on ringkv, cuts off (`DEBUG CLUSTER-BUS-DROP * both`, then `none`) masters
//! of a 3-master + 3-replica cluster on loopback.
//!
//! The resource remembers the highest fencing token it accepted and refuses
//! lower ones; it logs every grant's accepted writes as an interval (first and
//! last accepted write, on this process's one monotonic clock). At the end:
//! **overlaps** (two grants' accepted intervals overlap: two owners acted at
//! once), **token regressions** (grants that presented a token below one
//! already accepted), duplicate tokens (grants that presented another grant's
//! token), refused writes, and what the clients saw (grants, maybe-lost and
//! lost reports, errors). The last line is a machine-readable summary.
//!
//! ```text
//! bench/lock-checker.sh --servers redis --faults 200
//! target/release/lock_checker --servers ringkv --faults 200 --kinds kill,pause,cut
//! ```

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::RngExt;
use ringkv_bench::cluster::{Cluster, Server, Settings};
use ringkv_client::{Client, Error, Lock, LockMode, LockState};

/// Check one lock across master failures.
#[derive(Debug, Clone, Parser)]
struct Options {
    /// Servers to check, in order (`ringkv`, `redis`).
    #[arg(long, value_delimiter = ',', default_value = "ringkv,redis")]
    servers: Vec<String>,
    /// Lock commands: `auto` (native on ringkv, set-nx on Redis), `native`, `set-nx`.
    #[arg(long, default_value = "auto")]
    mode: String,
    /// Fencing token in set-nx mode: `none` (the resource cannot fence) or
    /// `incr` (INCR of a counter in the lock's slot after each grant, the usual
    /// Redis recipe).
    #[arg(long, default_value = "none")]
    set_nx_token: String,
    /// Clients taking the lock, each with its own connections.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Faults to inject.
    #[arg(long, default_value_t = 200)]
    faults: usize,
    /// Fault kinds, chosen at random: `kill`, `pause`, `cut` (ringkv only).
    #[arg(long, value_delimiter = ',', default_value = "kill,pause,cut")]
    kinds: Vec<String>,
    /// Share of faults aimed at the lock's own master (the rest at another).
    #[arg(long, default_value_t = 0.75)]
    lock_shard_share: f64,
    /// How long a killed master stays down before its restart, ms (`min-max`).
    #[arg(long, default_value = "500-5000")]
    kill_down_ms: Range,
    /// How long a master stays stopped, ms (`min-max`).
    #[arg(long, default_value = "2500-4500")]
    pause_ms: Range,
    /// How long a master stays cut off, ms (`min-max`).
    #[arg(long, default_value = "2500-4500")]
    cut_ms: Range,
    /// Pause between a healed fault (cluster healthy again) and the next, ms.
    #[arg(long, default_value = "0-500")]
    gap_ms: Range,
    /// The lock's lease, ms.
    #[arg(long, default_value_t = 2000)]
    ttl_ms: u64,
    /// How long a client waits for the lock, ms.
    #[arg(long, default_value_t = 10_000)]
    wait_ms: u64,
    /// How long a client holds the lock, ms (`min-max`).
    #[arg(long, default_value = "5-500")]
    hold_ms: Range,
    /// Time between a holder's writes to the resource, ms.
    #[arg(long, default_value_t = 5)]
    write_every_ms: u64,
    /// `cluster-node-timeout`, ms.
    #[arg(long, default_value_t = 2000)]
    node_timeout: u64,
    /// Longest wait for the cluster to be healthy again after a fault, s.
    #[arg(long, default_value_t = 60)]
    heal_secs: u64,
    /// Where each cluster's files go (a fresh subdirectory, removed after).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Write every accepted interval here (CSV), one file per server
    /// (`<path>.<server>.csv`).
    #[arg(long)]
    intervals: Option<PathBuf>,
}

/// `min-max` milliseconds.
#[derive(Debug, Clone, Copy)]
struct Range(u64, u64);

impl std::str::FromStr for Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Range, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let parse = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{s}: {e}"));
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("{s}: min above max"));
        }
        Ok(Range(a, b))
    }
}

impl Range {
    fn pick(self) -> Duration {
        Duration::from_millis(rand::rng().random_range(self.0..=self.1))
    }
}

/// The lock every client takes, and the counter `incr` tokens come from (same slot).
const LOCK: &str = "lockcheck";
const FENCE: &str = "{lockcheck}:fence";
/// Masters (each with one replica).
const MASTERS: usize = 3;

/// A grant's accepted writes.
#[derive(Debug, Clone, Copy)]
struct Interval {
    client: usize,
    token: Option<u64>,
    first: Duration,
    last: Duration,
}

/// The simulated resource: fences by token, logs accepted intervals.
#[derive(Debug, Default)]
struct Resource {
    /// Highest token accepted, and the grant that presented it.
    highest: Option<(u64, u64)>,
    intervals: HashMap<u64, Interval>,
    writes: u64,
    /// Writes refused (token below the highest, or the highest of another grant).
    refused: u64,
    /// Grants that presented a token below one already accepted.
    regressed: HashSet<u64>,
    /// Grants that presented the token another grant had presented.
    duplicated: HashSet<u64>,
}

impl Resource {
    /// A write by grant `grant` of `client` with `token` at `at`; true if accepted.
    fn write(&mut self, grant: u64, client: usize, token: Option<u64>, at: Duration) -> bool {
        if let Some(token) = token {
            match self.highest {
                Some((highest, _)) if token < highest => {
                    self.refused += 1;
                    self.regressed.insert(grant);
                    return false;
                }
                Some((highest, by)) if token == highest && by != grant => {
                    self.refused += 1;
                    self.duplicated.insert(grant);
                    return false;
                }
                _ => self.highest = Some((token, grant)),
            }
        }
        self.writes += 1;
        self.intervals
            .entry(grant)
            .and_modify(|i| i.last = at)
            .or_insert(Interval {
                client,
                token,
                first: at,
                last: at,
            });
        true
    }
}

/// Grants whose accepted interval overlaps an earlier-starting grant's.
fn overlaps(intervals: &[Interval]) -> Vec<(Interval, Interval)> {
    let mut sorted = intervals.to_vec();
    sorted.sort_by_key(|i| i.first);
    let mut found = Vec::new();
    let mut latest: Option<Interval> = None;
    for interval in sorted {
        if let Some(before) = latest {
            if interval.first <= before.last {
                found.push((before, interval));
            }
        }
        if latest.is_none_or(|l| interval.last > l.last) {
            latest = Some(interval);
        }
    }
    found
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Counts {
    grants: AtomicU64,
    not_acquired: AtomicU64,
    acquire_errors: AtomicU64,
    token_errors: AtomicU64,
    /// Holds cut short because the guard stopped vouching for the lock.
    maybe_lost: AtomicU64,
    /// Of those, the ones that ended lost (rather than confirmed again).
    lost: AtomicU64,
    release_lost: AtomicU64,
    release_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the fault driver did.
#[derive(Debug, Default)]
struct Faults {
    kill: u64,
    pause: u64,
    cut: u64,
    /// The lock's shard changed master across a fault.
    failovers: u64,
    /// Faults after which the cluster was not healthy within the limit.
    unhealed: u64,
}

/// One client: take the lock, write while holding it, release; until `stop`.
#[allow(clippy::too_many_arguments)]
async fn client_loop(
    index: usize,
    client: Client,
    mode: LockMode,
    incr_token: bool,
    options: Options,
    clock: Instant,
    resource: Arc<Mutex<Resource>>,
    counts: Arc<Counts>,
    grants: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let acquired = Lock::new(&client, LOCK)
            .mode(mode)
            .ttl(Duration::from_millis(options.ttl_ms))
            .wait(Duration::from_millis(options.wait_ms))
            .acquire()
            .await;
        let guard = match acquired {
            Ok(guard) => guard,
            Err(Error::NotAcquired(_)) => {
                bump(&counts.not_acquired);
                continue;
            }
            Err(err) => {
                tracing_lite(index, &format!("acquire: {err}"));
                bump(&counts.acquire_errors);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        bump(&counts.grants);
        let grant = grants.fetch_add(1, Ordering::Relaxed);
        let token = match (guard.fencing_token(), incr_token) {
            (Some(token), _) => Some(token),
            (None, false) => None,
            (None, true) => match client.query::<u64>(redis::cmd("INCR").arg(FENCE)).await {
                Ok(token) => Some(token),
                Err(err) => {
                    tracing_lite(index, &format!("INCR: {err}"));
                    bump(&counts.token_errors);
                    let _ = guard.release().await;
                    continue;
                }
            },
        };
        let end = Instant::now() + options.hold_ms.pick();
        let step = Duration::from_millis(options.write_every_ms.max(1));
        let mut cut_short = false;
        loop {
            if !guard.is_held() {
                cut_short = true;
                break;
            }
            let at = clock.elapsed();
            resource
                .lock()
                .expect("resource")
                .write(grant, index, token, at);
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(step)).await;
        }
        if cut_short {
            bump(&counts.maybe_lost);
            if guard.state() == LockState::Lost {
                bump(&counts.lost);
            }
        }
        match guard.release().await {
            Ok(()) => {}
            Err(Error::LockLost(_)) => bump(&counts.release_lost),
            Err(err) => {
                tracing_lite(index, &format!("release: {err}"));
                bump(&counts.release_errors);
            }
        }
    }
}

/// Client errors go to stderr only with `LOCK_CHECKER_VERBOSE` set.
fn tracing_lite(client: usize, what: &str) {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *VERBOSE.get_or_init(|| std::env::var_os("LOCK_CHECKER_VERBOSE").is_some()) {
        eprintln!("client {client}: {what}");
    }
}

/// The master serving the lock's slot, as the first answering node sees it.
fn lock_master(cluster: &mut Cluster) -> Option<usize> {
    let slot = ringkv_server::keyspace::key_slot(LOCK.as_bytes());
    let running: Vec<usize> = (0..cluster.len())
        .filter(|&i| cluster.is_running(i))
        .collect();
    running
        .into_iter()
        .find_map(|i| cluster.shard_of(i, slot).map(|(master, _)| master))
}

/// Waits until the cluster is healthy; false after the limit.
fn heal(cluster: &mut Cluster, limit: Duration) -> bool {
    ringkv_bench::cluster::poll(Instant::now(), limit, || cluster.healthy(MASTERS)).is_some()
}

/// Injects `options.faults` faults one after another, each once the cluster
/// is healthy again, logging each at its time on `clock`; stops early if
/// `stop` is set.
fn drive_faults(
    cluster: &mut Cluster,
    options: &Options,
    kinds: &[String],
    clock: Instant,
    stop: &AtomicBool,
) -> Faults {
    let mut faults = Faults::default();
    let limit = Duration::from_secs(options.heal_secs);
    let mut rng = rand::rng();
    for n in 0..options.faults {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if !heal(cluster, limit) {
            faults.unhealed += 1;
            eprintln!(
                "fault {n}: the cluster did not heal within {limit:?}; restarting what is down:\n{}",
                cluster.describe()
            );
            for i in 0..cluster.len() {
                if cluster.is_running(i) {
                    let _ = cluster.signal(i, "CONT");
                    if matches!(cluster.server, Server::Ringkv(_)) {
                        let _ = cluster.call(i, &["DEBUG", "CLUSTER-BUS-DROP", "*", "none"]);
                    }
                } else if let Err(e) = cluster.launch(i) {
                    eprintln!("restart of node {i}: {e}");
                }
            }
            if !heal(cluster, limit) {
                eprintln!(
                    "the cluster stays unhealthy: stopping the faults\n{}",
                    cluster.describe()
                );
                break;
            }
        }
        std::thread::sleep(options.gap_ms.pick());
        let lock_shard = lock_master(cluster);
        let masters = cluster.masters();
        let others: Vec<usize> = masters
            .iter()
            .copied()
            .filter(|&m| Some(m) != lock_shard)
            .collect();
        let victim = match lock_shard {
            Some(m) if rng.random_bool(options.lock_shard_share) || others.is_empty() => m,
            _ => others[rng.random_range(0..others.len())],
        };
        let kind = kinds[rng.random_range(0..kinds.len())].as_str();
        let started = Instant::now();
        match kind {
            "kill" => {
                cluster.kill(victim);
                std::thread::sleep(options.kill_down_ms.pick());
                if let Err(e) = cluster.launch(victim) {
                    eprintln!("fault {n}: restart of node {victim}: {e}");
                }
                faults.kill += 1;
            }
            "pause" => {
                cluster.forget_connection(victim);
                let _ = cluster.signal(victim, "STOP");
                std::thread::sleep(options.pause_ms.pick());
                let _ = cluster.signal(victim, "CONT");
                faults.pause += 1;
            }
            "cut" => {
                let _ = cluster.call(victim, &["DEBUG", "CLUSTER-BUS-DROP", "*", "both"]);
                std::thread::sleep(options.cut_ms.pick());
                let _ = cluster.call(victim, &["DEBUG", "CLUSTER-BUS-DROP", "*", "none"]);
                faults.cut += 1;
            }
            other => unreachable!("fault kind {other} was checked"),
        }
        let lasted = started.elapsed();
        let healed = heal(cluster, limit);
        let now_master = lock_master(cluster);
        if healed && lock_shard.is_some() && now_master != lock_shard {
            faults.failovers += 1;
        }
        eprintln!(
            "fault {:>3} at {:.3} s: {kind:<5} node {victim}{} for {:.1} s, healthy {:.1} s \
             later; lock's master node {} -> {}",
            n + 1,
            (started - clock).as_secs_f64(),
            if Some(victim) == lock_shard {
                " (the lock's master)"
            } else {
                ""
            },
            lasted.as_secs_f64(),
            (started.elapsed() - lasted).as_secs_f64(),
            lock_shard.map_or("?".into(), |m| m.to_string()),
            now_master.map_or("?".into(), |m| m.to_string()),
        );
    }
    faults
}

/// One server's run; the summary line it printed.
fn run(server: &Server, options: &Options) -> std::io::Result<String> {
    let ringkv = matches!(server, Server::Ringkv(_));
    let mode = match (options.mode.as_str(), ringkv) {
        ("auto", true) | ("native", _) => LockMode::Native,
        ("auto", false) | ("set-nx", _) => LockMode::RedisCompatible,
        (other, _) => return Err(std::io::Error::other(format!("unknown mode {other}"))),
    };
    let incr_token = mode == LockMode::RedisCompatible && options.set_nx_token == "incr";
    let kinds: Vec<String> = options
        .kinds
        .iter()
        .filter(|k| ringkv || k.as_str() != "cut")
        .cloned()
        .collect();
    if let Some(bad) = kinds
        .iter()
        .find(|k| !["kill", "pause", "cut"].contains(&k.as_str()))
    {
        return Err(std::io::Error::other(format!("unknown fault kind {bad}")));
    }
    if kinds.is_empty() {
        return Err(std::io::Error::other("no fault kind applies"));
    }
    let mut extra: Vec<String> = Vec::new();
    match server {
        // The cut-off fault's command.
        Server::Ringkv(_) => extra.extend(["--enable-debug-command", "yes"].map(String::from)),
        // A restarted master rejoins as a replica and resyncs at once rather
        // than after the default 5 s wait for more replicas.
        Server::Redis => extra.extend(["--repl-diskless-sync-delay", "0"].map(String::from)),
    }
    let settings = Settings {
        node_timeout: options.node_timeout,
        workdir: options.workdir.clone(),
        extra,
    };
    let mut cluster = Cluster::with_replicas(server, MASTERS, &settings)?;
    let urls: Vec<String> = (0..cluster.len()).map(|i| cluster.url(i)).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let clock = Instant::now();
    let resource = Arc::new(Mutex::new(Resource::default()));
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let grant_ids = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for index in 0..options.clients {
        let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
        let client = runtime
            .block_on(Client::connect_cluster(&seeds))
            .map_err(|e| std::io::Error::other(format!("client {index}: {e}")))?;
        tasks.push(runtime.spawn(client_loop(
            index,
            client,
            mode,
            incr_token,
            options.clone(),
            clock,
            resource.clone(),
            counts.clone(),
            grant_ids.clone(),
            stop.clone(),
        )));
    }

    let faults = drive_faults(&mut cluster, options, &kinds, clock, &stop);
    stop.store(true, Ordering::Relaxed);
    let wait_end = Duration::from_millis(options.wait_ms) + Duration::from_secs(15);
    runtime.block_on(async {
        for task in tasks {
            if tokio::time::timeout(wait_end, task).await.is_err() {
                eprintln!("a client did not stop in time");
            }
        }
    });
    let secs = clock.elapsed().as_secs_f64();
    runtime.shutdown_background();
    drop(cluster);

    let resource = resource.lock().expect("resource");
    let intervals: Vec<Interval> = resource.intervals.values().copied().collect();
    let overlapping = overlaps(&intervals);
    for (a, b) in overlapping.iter().take(10) {
        eprintln!(
            "overlap: client {} token {:?} [{:.3}, {:.3}] and client {} token {:?} [{:.3}, {:.3}]",
            a.client,
            a.token,
            a.first.as_secs_f64(),
            a.last.as_secs_f64(),
            b.client,
            b.token,
            b.first.as_secs_f64(),
            b.last.as_secs_f64()
        );
    }
    if let Some(path) = &options.intervals {
        let mut csv = String::from("client,token,first_s,last_s\n");
        let mut sorted = intervals.clone();
        sorted.sort_by_key(|i| i.first);
        for i in sorted {
            csv.push_str(&format!(
                "{},{},{:.6},{:.6}\n",
                i.client,
                i.token.map_or(String::new(), |t| t.to_string()),
                i.first.as_secs_f64(),
                i.last.as_secs_f64()
            ));
        }
        std::fs::write(path.with_extension(format!("{}.csv", server.name())), csv)?;
    }
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mode_name = match (mode, incr_token) {
        (LockMode::Native, _) => "native",
        (LockMode::RedisCompatible, true) => "set-nx+incr",
        (LockMode::RedisCompatible, false) => "set-nx",
    };
    Ok(format!(
        "LOCK_CHECKER server={} mode={mode_name} clients={} faults={} kill={} pause={} cut={} \
         failovers={} unhealed={} grants={} writes={} overlaps={} regressions={} \
         duplicate_tokens={} refused_writes={} maybe_lost={} lost={} not_acquired={} acquire_errors={} \
         token_errors={} release_lost={} release_errors={} secs={secs:.0}",
        server.name(),
        options.clients,
        faults.kill + faults.pause + faults.cut,
        faults.kill,
        faults.pause,
        faults.cut,
        faults.failovers,
        faults.unhealed,
        n(&counts.grants),
        resource.writes,
        overlapping.len(),
        resource.regressed.len(),
        resource.duplicated.len(),
        resource.refused,
        n(&counts.maybe_lost),
        n(&counts.lost),
        n(&counts.not_acquired),
        n(&counts.acquire_errors),
        n(&counts.token_errors),
        n(&counts.release_lost),
        n(&counts.release_errors),
    ))
}

fn main() {
    let options = Options::parse();
    ringkv_bench::cluster::harness_start(&["redis-cli"]);
    let mut lines = Vec::new();
    for name in &options.servers {
        let Some(server) = Server::named(name) else {
            eprintln!("unknown server {name} (ringkv, redis)");
            std::process::exit(2);
        };
        match run(&server, &options) {
            Ok(line) => {
                println!("{line}");
                lines.push(line);
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_resource_refuses_older_and_reused_tokens() {
        let mut resource = Resource::default();
        assert!(resource.write(1, 0, Some(5), at(0)));
        assert!(resource.write(1, 0, Some(5), at(10)));
        assert!(resource.write(2, 1, Some(7), at(20)));
        assert!(!resource.write(1, 0, Some(5), at(30)), "older token");
        assert!(
            !resource.write(3, 2, Some(7), at(40)),
            "same token, other grant"
        );
        assert!(resource.write(4, 3, None, at(50)), "no token: no fencing");
        assert!(!resource.write(1, 0, Some(5), at(35)), "again");
        assert_eq!(
            (resource.regressed.len(), resource.duplicated.len()),
            (1, 1)
        );
        assert_eq!(resource.refused, 3);
        assert_eq!(resource.intervals[&1].last, at(10));
        assert_eq!(resource.writes, 4);
    }

    #[test]
    fn overlapping_intervals_are_found_also_behind_a_long_one() {
        let interval = |client, first, last| Interval {
            client,
            token: None,
            first: at(first),
            last: at(last),
        };
        let apart = [interval(0, 0, 10), interval(1, 11, 20), interval(2, 21, 21)];
        assert!(overlaps(&apart).is_empty());
        // The third starts after the second ended but inside the first.
        let nested = [
            interval(0, 0, 100),
            interval(1, 10, 20),
            interval(2, 30, 40),
        ];
        assert_eq!(overlaps(&nested).len(), 2);
    }

    #[test]
    fn ranges_parse_as_min_dash_max() {
        let range: Range = "5-500".parse().unwrap();
        assert_eq!((range.0, range.1), (5, 500));
        let single: Range = "7".parse().unwrap();
        assert_eq!(single.pick(), Duration::from_millis(7));
        assert!("9-3".parse::<Range>().is_err());
    }
}
