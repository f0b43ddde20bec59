//! ringkv's cluster bus side by side with Redis 7's, on loopback: six fresh
//! masters built by `redis-cli --cluster create`, then half a quiet minute's bus
//! traffic, `kill -9` of a master and its restart, a lost majority (three of
//! six masters stopped with SIGSTOP) and its return, and a seventh node joined
//! with `CLUSTER MEET`. Each timing is taken by polling every node every 20 ms
//! over open connections, on a fresh cluster per run; the median and maximum
//! of the runs are printed as a Markdown table.
//!
//! `--scenario failover`: three masters with a replica each (`--cluster-replicas
//! 1`), `kill -9` of a master until its replica serves writes for the shard, the
//! old master restarted until it is its successor's replica, and `CLUSTER
//! FAILOVER` on it until the roles are switched back.
//!
//! ```text
//! bench/cluster-bus-compare.sh            # builds, runs, cleans up on any exit
//! target/release/cluster_bus_compare --runs 3 --idle-secs 30
//! bench/cluster-bus-compare.sh --scenario failover --runs 10
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use ringkv_bench::{have_program, median, ringkv_release_binary};

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
    /// `bus` (six masters) or `failover` (three masters, a replica each).
    #[arg(long, default_value = "bus")]
    scenario: String,
}

/// Masters the cluster is created with.
const MASTERS: usize = 6;
/// Poll period of every wait.
const POLL: Duration = Duration::from_millis(20);
/// Node that is killed and restarted (never the one the join goes through).
const VICTIM: usize = 5;
/// Node the seventh is met through ("node 4").
const MEET_THROUGH: usize = 3;
/// Masters stopped to take the majority away.
const STOPPED: [usize; 3] = [3, 4, 5];

/// Which server a cluster runs.
#[derive(Debug, Clone)]
enum Server {
    /// `ringkv-server` at this path.
    Ringkv(PathBuf),
    /// `redis-server` from `PATH`.
    Redis,
}

impl Server {
    fn name(&self) -> &'static str {
        match self {
            Server::Ringkv(_) => "ringkv",
            Server::Redis => "redis",
        }
    }
}

/// `n` client ports whose bus ports (port + 10000) are free too.
fn cluster_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let client = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = client.local_addr().expect("bound").port();
        if port > 55_000 {
            continue;
        }
        if let Ok(bus) = TcpListener::bind(("127.0.0.1", port + 10_000)) {
            ports.push(port);
            held.push((client, bus));
        }
    }
    ports
}

/// A cluster's processes, each killed (and the directory removed) on drop.
/// Every running node has a pid file in the directory, so a wrapper script can
/// kill what is left if this process itself is killed.
struct Cluster {
    server: Server,
    dir: PathBuf,
    ports: Vec<u16>,
    node_timeout: u64,
    children: Vec<Option<Child>>,
    /// One connection per node, reopened after an error.
    connections: Vec<Option<redis::Connection>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// `n` fresh cluster nodes, each alone, accepting connections.
    fn fresh(server: &Server, n: usize, options: &Options) -> std::io::Result<Cluster> {
        let base = options.workdir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "busc-{}-{}-{}",
            server.name(),
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = Cluster {
            server: server.clone(),
            dir,
            ports: cluster_ports(n),
            node_timeout: options.node_timeout,
            children: (0..n).map(|_| None).collect(),
            connections: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            cluster.launch(i)?;
        }
        Ok(cluster)
    }

    /// Starts node `i` on its port with its config file (kept across restarts).
    fn launch(&mut self, i: usize) -> std::io::Result<()> {
        let port = self.ports[i].to_string();
        let conf = self.dir.join(format!("nodes-{port}.conf"));
        let conf = conf.to_str().expect("utf-8 temp path").to_string();
        let timeout = self.node_timeout.to_string();
        let mut args: Vec<String> = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &conf,
            "--cluster-node-timeout",
            &timeout,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let program: &Path = match &self.server {
            Server::Ringkv(path) => path,
            Server::Redis => {
                let dir = self.dir.to_str().expect("utf-8 temp path");
                args.extend(
                    ["--save", "", "--appendonly", "no", "--dir", dir]
                        .iter()
                        .map(|s| s.to_string()),
                );
                Path::new("redis-server")
            }
        };
        let log = std::fs::File::create(self.dir.join(format!("node-{port}.log")))?;
        let child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        std::fs::write(self.pid_file(i), child.id().to_string())?;
        self.children[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.connection(i).is_none() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "{} did not start on port {port}",
                    self.server.name()
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    fn pid_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{}.pid", self.ports[i]))
    }

    /// `kill -9` of node `i` (also a stopped one); waits for it to be gone.
    fn kill(&mut self, i: usize) {
        self.connections[i] = None;
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(self.pid_file(i));
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to node `i`.
    fn signal(&self, i: usize, signal: &str) -> std::io::Result<()> {
        let pid = self
            .pid(i)
            .ok_or_else(|| std::io::Error::other("not running"))?;
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -{signal} {pid} failed"
            )))
        }
    }

    fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    /// The open connection to node `i`, opened if needed; `None` if it does not answer.
    fn connection(&mut self, i: usize) -> Option<&mut redis::Connection> {
        // A node that is not running has no connection to open.
        self.children[i].as_ref()?;
        if self.connections[i].is_none() {
            let client =
                redis::Client::open(format!("redis://127.0.0.1:{}/", self.ports[i])).ok()?;
            let con = client
                .get_connection_with_timeout(Duration::from_millis(500))
                .ok()?;
            con.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
            con.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
            self.connections[i] = Some(con);
        }
        self.connections[i].as_mut()
    }

    /// Runs `args` on node `i`. A reply error is returned as `Ok(Err(code))`; a
    /// lost connection as `None` (and the connection is reopened next time).
    fn call(&mut self, i: usize, args: &[&str]) -> Option<Result<redis::Value, String>> {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let con = self.connection(i)?;
        match cmd.query::<redis::Value>(con) {
            Ok(v) => Some(Ok(v)),
            Err(e) => match e.code() {
                Some(code) => Some(Err(code.to_string())),
                None => {
                    self.connections[i] = None;
                    None
                }
            },
        }
    }

    /// A text reply (`CLUSTER INFO`, `CLUSTER NODES`, `CLUSTER MYID`) of node `i`.
    fn text(&mut self, i: usize, args: &[&str]) -> Option<String> {
        match self.call(i, args)? {
            Ok(v) => redis::from_redis_value::<String>(v).ok(),
            Err(_) => None,
        }
    }

    fn info_field(&mut self, i: usize, field: &str) -> Option<String> {
        let info = self.text(i, &["CLUSTER", "INFO"])?;
        info_field(&info, field).map(str::to_string)
    }

    /// Every node of `nodes` says `cluster_state:<state>`.
    fn all_state(&mut self, nodes: &[usize], state: &str) -> bool {
        nodes
            .iter()
            .all(|&i| self.info_field(i, "cluster_state").as_deref() == Some(state))
    }

    /// A key in a slot node `i` serves.
    fn key_served_by(&mut self, i: usize) -> Option<String> {
        (0..100_000)
            .map(|n| format!("k{n}"))
            .find(|key| matches!(self.call(i, &["GET", key.as_str()]), Some(Ok(_))))
    }

    /// Bus bytes (sent, received) of each node, from `ss`, per socket.
    fn bus_sockets(&self) -> std::io::Result<HashMap<SocketKey, (u64, u64)>> {
        let out = Command::new("ss")
            .args(["-tinpH", "state", "established"])
            .output()?;
        let pids: HashMap<u32, usize> = (0..self.ports.len())
            .filter_map(|i| Some((self.pid(i)?, i)))
            .collect();
        let bus: Vec<u16> = self.ports.iter().map(|p| p + 10_000).collect();
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

/// `field:value` of a `CLUSTER INFO` text.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// The flags `CLUSTER NODES` shows for node `id` (`None`: not listed).
fn flags_of<'a>(nodes: &'a str, id: &str) -> Option<Vec<&'a str>> {
    nodes.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == id).then(|| {
            fields
                .nth(1)
                .map(|f| f.split(',').collect())
                .unwrap_or_default()
        })
    })
}

/// Polls `done` every 20 ms until it holds; the time since `since` when it was
/// first seen to hold, or `None` after `limit`.
fn poll(since: Instant, limit: Duration, mut done: impl FnMut() -> bool) -> Option<f64> {
    loop {
        let round = Instant::now();
        if done() {
            return Some(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > limit {
            return None;
        }
        std::thread::sleep(POLL.saturating_sub(round.elapsed()));
    }
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
    let mut cluster = Cluster::fresh(server, MASTERS + 1, options)?;
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
    let mut child = cli.spawn()?;
    let stdout = child.stdout.take().expect("piped");
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
    let status = child.wait()?;
    let output = reader.join().unwrap_or_default();
    if !status.success() || run.create_ok.is_none() {
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
    let before = cluster.bus_sockets()?;
    let idle_start = Instant::now();
    std::thread::sleep(Duration::from_secs(options.idle_secs));
    let after = cluster.bus_sockets()?;
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
            matches!(cluster.call(i, &["SET", key.as_str(), "v"]), Some(Err(code)) if code == "CLUSTERDOWN")
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

/// `median (max)` of `values` in seconds; timeouts counted.
fn summary(values: &[Option<f64>]) -> String {
    let mut done: Vec<f64> = values.iter().flatten().copied().collect();
    let missed = values.len() - done.len();
    if done.is_empty() {
        return format!("timed out ({missed}/{})", values.len());
    }
    let max = done.iter().copied().fold(0.0, f64::max);
    let mut text = format!("{:.2} ({:.2})", median(&mut done), max);
    if missed > 0 {
        text.push_str(&format!(", {missed} timed out"));
    }
    text
}

/// `median (max)` of plain values, with `digits` decimals.
fn summary_of(values: &[f64], digits: usize) -> String {
    let mut v = values.to_vec();
    let max = v.iter().copied().fold(0.0, f64::max);
    format!("{:.digits$} ({:.digits$})", median(&mut v), max)
}

/// A failover run's measurements, in seconds from each event.
#[derive(Debug, Default)]
struct FailoverRun {
    /// `kill -9`: every survivor flags the master `fail`.
    flagged: Option<f64>,
    /// Its replica says it is a master.
    elected: Option<f64>,
    /// Every survivor `ok` and the new master takes a write to the shard.
    serving: Option<f64>,
    /// Restarted: every node lists it as the new master's replica.
    follows: Option<f64>,
    /// `CLUSTER FAILOVER` on it: it takes writes again, every node `ok`.
    manual: Option<f64>,
}

/// The replica of master `id` in a `CLUSTER NODES` reply.
fn replica_of(nodes: &str, id: &str) -> Option<String> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let replica = fields.get(2)?.split(',').any(|f| f == "slave");
        (replica && fields.get(3) == Some(&id)).then(|| fields[0].to_string())
    })
}

fn failover_run(server: &Server, options: &Options) -> std::io::Result<FailoverRun> {
    const NODES: usize = 6;
    let mut run = FailoverRun::default();
    let mut cluster = Cluster::fresh(server, NODES, options)?;
    let all: Vec<usize> = (0..NODES).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()?;
    let limit = Duration::from_secs(30);
    let ok = poll(Instant::now(), limit, || cluster.all_state(&all, "ok"));
    if !created.status.success() || ok.is_none() {
        return Err(std::io::Error::other(format!(
            "{}: create failed",
            server.name()
        )));
    }
    let ids: Vec<String> = (0..NODES)
        .map(|i| cluster.text(i, &["CLUSTER", "MYID"]).unwrap_or_default())
        .collect();
    let index = |id: &str| ids.iter().position(|x| x == id);
    // A master whose replica every node lists.
    let nodes = cluster.text(0, &["CLUSTER", "NODES"]).unwrap_or_default();
    let (victim, replica) = (0..NODES)
        .find_map(|i| Some((i, index(&replica_of(&nodes, &ids[i])?)?)))
        .ok_or_else(|| std::io::Error::other("no replica"))?;
    let key = cluster
        .key_served_by(victim)
        .ok_or_else(|| std::io::Error::other("no key served"))?;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let is_master = |c: &mut Cluster, i: usize| {
        c.text(i, &["CLUSTER", "NODES"]).is_some_and(|n| {
            n.lines().any(|l| {
                l.contains("myself")
                    && l.split_whitespace()
                        .nth(2)
                        .is_some_and(|f| f.contains("master"))
            })
        })
    };
    let writes =
        |c: &mut Cluster, i: usize| matches!(c.call(i, &["SET", key.as_str(), "v"]), Some(Ok(_)));

    let killed = Instant::now();
    cluster.kill(victim);
    poll(killed, limit, || {
        if run.flagged.is_none()
            && survivors.iter().all(|&i| {
                cluster
                    .text(i, &["CLUSTER", "NODES"])
                    .and_then(|n| Some(flags_of(&n, &ids[victim])?.contains(&"fail")))
                    == Some(true)
            })
        {
            run.flagged = Some(killed.elapsed().as_secs_f64());
        }
        if run.elected.is_none() && is_master(&mut cluster, replica) {
            run.elected = Some(killed.elapsed().as_secs_f64());
        }
        if run.elected.is_some()
            && run.serving.is_none()
            && cluster.all_state(&survivors, "ok")
            && writes(&mut cluster, replica)
        {
            run.serving = Some(killed.elapsed().as_secs_f64());
        }
        run.flagged.is_some() && run.serving.is_some()
    });

    std::thread::sleep(Duration::from_secs(1));
    let restarted = Instant::now();
    cluster.launch(victim)?;
    run.follows = poll(restarted, limit, || {
        all.iter().all(|&i| {
            cluster
                .text(i, &["CLUSTER", "NODES"])
                .and_then(|n| replica_of(&n, &ids[replica]))
                .as_deref()
                == Some(ids[victim].as_str())
        })
    });

    // A master votes for one replica of a master per 2 x node-timeout.
    let election = killed + Duration::from_millis(2 * options.node_timeout + 500);
    std::thread::sleep(election.saturating_duration_since(Instant::now()));
    let asked = Instant::now();
    match cluster.call(victim, &["CLUSTER", "FAILOVER"]) {
        Some(Ok(_)) => {}
        other => {
            return Err(std::io::Error::other(format!(
                "CLUSTER FAILOVER: {other:?}"
            )))
        }
    }
    run.manual = poll(asked, limit, || {
        is_master(&mut cluster, victim)
            && writes(&mut cluster, victim)
            && cluster.all_state(&all, "ok")
    });
    Ok(run)
}

fn failover_main(options: &Options) {
    let mut results: Vec<(String, Vec<FailoverRun>)> = Vec::new();
    for name in &options.servers {
        let server = match name.as_str() {
            "ringkv" => Server::Ringkv(ringkv_release_binary()),
            _ => Server::Redis,
        };
        let mut runs = Vec::new();
        for r in 0..options.runs {
            match failover_run(&server, options) {
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
        "\n{} runs, 3 masters + 3 replicas, cluster-node-timeout {} ms; times in s: median (max)\n",
        options.runs, options.node_timeout
    );
    println!("| measurement | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    type Timing = fn(&FailoverRun) -> Option<f64>;
    let timings: [(&str, Timing); 5] = [
        ("kill -9 of a master: every survivor flags it `fail`", |r| {
            r.flagged
        }),
        ("kill -9: its replica is a master", |r| r.elected),
        (
            "kill -9: the replica takes writes, every survivor `cluster_state:ok`",
            |r| r.serving,
        ),
        (
            "restarted 1 s later: every node lists it as the new master's replica",
            |r| r.follows,
        ),
        (
            "`CLUSTER FAILOVER` on it: it takes writes, every node `ok`",
            |r| r.manual,
        ),
    ];
    for (label, get) in timings {
        let cells: Vec<String> = results
            .iter()
            .map(|(_, runs)| summary(&runs.iter().map(get).collect::<Vec<_>>()))
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
}

fn main() {
    let options = Options::parse();
    if !have_program("redis-cli") {
        eprintln!("redis-cli is needed");
        std::process::exit(1);
    }
    if options.scenario == "failover" {
        failover_main(&options);
        return;
    }
    let mut results: Vec<(String, Vec<Run>)> = Vec::new();
    for name in &options.servers {
        let server = match name.as_str() {
            "ringkv" => Server::Ringkv(ringkv_release_binary()),
            "redis" => Server::Redis,
            other => {
                eprintln!("unknown server {other} (ringkv, redis)");
                std::process::exit(2);
            }
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
            .map(|(_, runs)| summary(&runs.iter().map(get).collect::<Vec<_>>()))
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

    #[test]
    fn reads_flags_and_info_fields() {
        let nodes = "abc 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                     def 127.0.0.1:7001@17001 master,fail - 0 0 2 connected\n";
        assert_eq!(flags_of(nodes, "def"), Some(vec!["master", "fail"]));
        assert_eq!(flags_of(nodes, "xyz"), None);
        let info = "cluster_state:ok\r\ncluster_stats_messages_sent:12\r\n";
        assert_eq!(info_field(info, "cluster_state"), Some("ok"));
        assert_eq!(info_field(info, "cluster_stats_messages_sent"), Some("12"));
        assert_eq!(info_field(info, "cluster_stats"), None);
    }
}
