//! Clusters of real server processes on loopback for the side-by-side
//! harnesses: ringkv or `redis-server` nodes on free 127.0.0.1 ports, created
//! with `redis-cli --cluster create` (with or without replicas), faulted
//! (`kill -9` and restart, SIGSTOP/SIGCONT) and watched over plain
//! connections.
//!
//! Every process started here is stopped: on drop, on panic (drop runs while
//! unwinding), and on SIGINT/SIGTERM once [`stop_on_interrupt`] is installed,
//! which kills every registered process before the harness exits. Each running
//! node also has a pid file in its cluster's directory, so a wrapper script can
//! kill what is left if the harness itself is killed with SIGKILL.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Poll period of the waits.
pub const POLL: Duration = Duration::from_millis(20);

/// Which server a cluster runs.
#[derive(Debug, Clone)]
pub enum Server {
    /// `ringkv-server` at this path.
    Ringkv(PathBuf),
    /// `redis-server` from `PATH`.
    Redis,
}

impl Server {
    /// `ringkv` (the workspace's release build) or `redis`.
    pub fn named(name: &str) -> Option<Server> {
        match name {
            "ringkv" => Some(Server::Ringkv(crate::ringkv_release_binary())),
            "redis" => Some(Server::Redis),
            _ => None,
        }
    }

    /// `ringkv` or `redis`.
    pub fn name(&self) -> &'static str {
        match self {
            Server::Ringkv(_) => "ringkv",
            Server::Redis => "redis",
        }
    }
}

/// Pids of every process the harness started and has not reaped yet.
static LIVE: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

fn register(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.get_or_insert_with(HashSet::new).insert(pid);
    }
}

fn unregister(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        if let Some(live) = live.as_mut() {
            live.remove(&pid);
        }
    }
}

/// `kill -9` of every process still registered.
pub fn kill_all_started() {
    let pids: Vec<u32> = LIVE
        .lock()
        .map(|live| live.iter().flatten().copied().collect())
        .unwrap_or_default();
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// What every cluster harness does first: stops its processes on an
/// interrupt ([`stop_on_interrupt`]) and exits unless each of `programs`
/// (`redis-cli`, ...) is installed.
pub fn harness_start(programs: &[&str]) {
    stop_on_interrupt();
    for program in programs {
        if !crate::have_program(program) {
            eprintln!("{program} is needed");
            std::process::exit(1);
        }
    }
}

/// On SIGINT or SIGTERM, kills every process the harness started and exits
/// with 130 (the directories are left for the wrapper script to remove).
pub fn stop_on_interrupt() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("interrupted: stopping every server started");
            kill_all_started();
            std::process::exit(130);
        });
    });
}

/// A child process killed (and reaped) when dropped.
pub struct Spawned(Option<Child>);

impl Spawned {
    /// Starts `command`, registered so that an interrupt stops it too.
    pub fn start(command: &mut Command) -> std::io::Result<Spawned> {
        let child = command.spawn()?;
        register(child.id());
        Ok(Spawned(Some(child)))
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// The process, while it runs.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
            unregister(child.id());
        }
    }

    /// Waits for it to exit by itself.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self.0.take() {
            Some(mut child) => {
                let status = child.wait();
                unregister(child.id());
                status
            }
            None => Err(std::io::Error::other("not running")),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` client ports whose bus ports (port + 10000) are free too.
pub fn cluster_ports(n: usize) -> Vec<u16> {
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

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    /// Node id.
    pub id: String,
    /// Client port.
    pub port: u16,
    /// Flags (`myself`, `master`, `slave`, `fail?`, `fail`, ...).
    pub flags: Vec<String>,
    /// The master's id, for a replica.
    pub master: Option<String>,
    /// Whether the bus link is up.
    pub connected: bool,
    /// Slot ranges served (migrating/importing markers left out).
    pub slots: Vec<(u16, u16)>,
}

impl NodeLine {
    /// Has flag `flag`.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// A master with slots.
    pub fn serves(&self) -> bool {
        self.has("master") && !self.slots.is_empty()
    }

    /// Serves slot `slot`.
    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }
}

/// Parses `CLUSTER NODES`.
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect();
            Some(NodeLine {
                id: f[0].to_string(),
                port,
                flags: f[2].split(',').map(str::to_string).collect(),
                master: (f[3] != "-").then(|| f[3].to_string()),
                connected: f[7] == "connected",
                slots,
            })
        })
        .collect()
}

/// `field:value` of a `CLUSTER INFO` or `INFO` text.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// The flags `CLUSTER NODES` shows for node `id` (`None`: not listed).
pub fn flags_of<'a>(nodes: &'a str, id: &str) -> Option<Vec<&'a str>> {
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
pub fn poll(since: Instant, limit: Duration, mut done: impl FnMut() -> bool) -> Option<f64> {
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

/// How a cluster's nodes are started.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `cluster-node-timeout` in milliseconds.
    pub node_timeout: u64,
    /// Where each cluster's directory goes (the system temp dir if unset).
    pub workdir: Option<PathBuf>,
    /// Extra `--name value` flags for every node.
    pub extra: Vec<String>,
}

/// A cluster's processes, each killed (and the directory removed) on drop.
/// Every running node has a pid file in the directory.
pub struct Cluster {
    /// What the nodes run.
    pub server: Server,
    /// Config files, logs and pid files.
    pub dir: PathBuf,
    /// Each node's client port.
    pub ports: Vec<u16>,
    settings: Settings,
    children: Vec<Spawned>,
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
    pub fn fresh(server: &Server, n: usize, settings: &Settings) -> std::io::Result<Cluster> {
        let base = settings.workdir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "cluster-{}-{}-{}",
            server.name(),
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = Cluster {
            server: server.clone(),
            dir,
            ports: cluster_ports(n),
            settings: settings.clone(),
            children: (0..n).map(|_| Spawned(None)).collect(),
            connections: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            cluster.launch(i)?;
        }
        Ok(cluster)
    }

    /// Node count.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// True for a cluster of no nodes.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// `redis://127.0.0.1:port/` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}/", self.ports[i])
    }

    /// The node listening on `port`.
    pub fn node_on(&self, port: u16) -> Option<usize> {
        self.ports.iter().position(|&p| p == port)
    }

    /// Starts node `i` on its port with its config file (kept across restarts).
    pub fn launch(&mut self, i: usize) -> std::io::Result<()> {
        let port = self.ports[i].to_string();
        let conf = self.dir.join(format!("nodes-{port}.conf"));
        let conf = conf.to_str().expect("utf-8 temp path").to_string();
        let timeout = self.settings.node_timeout.to_string();
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
                // No persistence: a restarted node comes back empty. A
                // replica's full sync still writes an RDB file (diskless
                // loading is off by default) and a restart would load it,
                // so each node has its own file, removed before each start.
                let rdb = format!("dump-{port}.rdb");
                match std::fs::remove_file(self.dir.join(&rdb)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                let dir = self.dir.to_str().expect("utf-8 temp path");
                args.extend(
                    [
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        dir,
                        "--dbfilename",
                        &rdb,
                    ]
                    .iter()
                    .map(|s| s.to_string()),
                );
                Path::new("redis-server")
            }
        };
        args.extend(self.settings.extra.iter().cloned());
        let log = std::fs::File::create(self.dir.join(format!("node-{port}.log")))?;
        let child = Spawned::start(
            Command::new(program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        std::fs::write(self.pid_file(i), child.pid().unwrap_or(0).to_string())?;
        self.children[i] = child;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.connection(i).is_none() {
            let exited = self.children[i]
                .child()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if Instant::now() > deadline || exited {
                return Err(std::io::Error::other(format!(
                    "{} did not start on port {port} (see {})",
                    self.server.name(),
                    self.dir.join(format!("node-{port}.log")).display()
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
    pub fn kill(&mut self, i: usize) {
        self.connections[i] = None;
        if self.children[i].pid().is_some() {
            self.children[i].kill();
            let _ = std::fs::remove_file(self.pid_file(i));
        }
    }

    /// Whether node `i`'s process runs (it may be stopped).
    pub fn is_running(&self, i: usize) -> bool {
        self.children[i].pid().is_some()
    }

    /// Sends `signal` (`STOP`, `CONT`) to node `i`.
    pub fn signal(&self, i: usize, signal: &str) -> std::io::Result<()> {
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

    /// Node `i`'s pid while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].pid()
    }

    /// Drops the open connection to node `i` (a stopped node's would block).
    pub fn forget_connection(&mut self, i: usize) {
        self.connections[i] = None;
    }

    /// The open connection to node `i`, opened if needed; `None` if it does not answer.
    pub fn connection(&mut self, i: usize) -> Option<&mut redis::Connection> {
        // A node that is not running has no connection to open.
        self.children[i].pid()?;
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

    /// Runs `args` on node `i`. A reply error is returned as `Ok(Err(text))`
    /// (code and message); a lost connection as `None` (and the connection is
    /// reopened next time).
    pub fn call(&mut self, i: usize, args: &[&str]) -> Option<Result<redis::Value, String>> {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let con = self.connection(i)?;
        match cmd.query::<redis::Value>(con) {
            Ok(v) => Some(Ok(v)),
            Err(e) => match e.code() {
                Some(code) => Some(Err(match e.detail() {
                    Some(detail) => format!("{code} {detail}"),
                    None => code.to_string(),
                })),
                None => {
                    self.connections[i] = None;
                    None
                }
            },
        }
    }

    /// A text reply (`CLUSTER INFO`, `CLUSTER NODES`, `CLUSTER MYID`) of node `i`.
    pub fn text(&mut self, i: usize, args: &[&str]) -> Option<String> {
        match self.call(i, args)? {
            Ok(v) => redis::from_redis_value::<String>(v).ok(),
            Err(_) => None,
        }
    }

    /// Field `field` of node `i`'s `CLUSTER INFO`.
    pub fn info_field(&mut self, i: usize, field: &str) -> Option<String> {
        let info = self.text(i, &["CLUSTER", "INFO"])?;
        info_field(&info, field).map(str::to_string)
    }

    /// Field `field` of node `i`'s `INFO replication`.
    pub fn replication_field(&mut self, i: usize, field: &str) -> Option<String> {
        let info = self.text(i, &["INFO", "replication"])?;
        info_field(&info, field).map(str::to_string)
    }

    /// Every node of `nodes` says `cluster_state:<state>`.
    pub fn all_state(&mut self, nodes: &[usize], state: &str) -> bool {
        nodes
            .iter()
            .all(|&i| self.info_field(i, "cluster_state").as_deref() == Some(state))
    }

    /// Node `i`'s `CLUSTER NODES`, parsed.
    pub fn nodes(&mut self, i: usize) -> Option<Vec<NodeLine>> {
        Some(parse_nodes(&self.text(i, &["CLUSTER", "NODES"])?))
    }

    /// A key in a slot node `i` serves.
    pub fn key_served_by(&mut self, i: usize) -> Option<String> {
        (0..100_000)
            .map(|n| format!("k{n}"))
            .find(|key| matches!(self.call(i, &["GET", key.as_str()]), Some(Ok(_))))
    }

    /// `redis-cli --cluster create` over every node, `replicas` replicas per
    /// master; returns once it exited successfully, with its output. It waits
    /// for the nodes to agree with no end of its own, so it is killed after
    /// `limit` (an error).
    pub fn create(&mut self, replicas: usize, limit: Duration) -> std::io::Result<String> {
        let mut cli = Command::new("redis-cli");
        cli.args(["--cluster", "create"])
            .args(self.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = Spawned::start(&mut cli)?;
        let stdout = child
            .child()
            .and_then(|c| c.stdout.take())
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let exited = poll(Instant::now(), limit, || {
            child
                .child()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
        });
        if exited.is_none() {
            child.kill();
            let text = reader.join().unwrap_or_default();
            return Err(std::io::Error::other(format!(
                "{}: redis-cli --cluster create did not finish within {limit:?}:\n{text}",
                self.server.name()
            )));
        }
        let status = child.wait()?;
        let text = reader.join().unwrap_or_default();
        if status.success() {
            Ok(text)
        } else {
            Err(std::io::Error::other(format!(
                "{}: cluster create failed:\n{text}",
                self.server.name()
            )))
        }
    }

    /// A fresh cluster of `masters` masters with one replica each, created by
    /// `redis-cli --cluster create` and healthy ([`Cluster::healthy`]). A
    /// create that hangs or a cluster that does not become healthy within a
    /// minute is thrown away and made again, up to three times.
    pub fn with_replicas(
        server: &Server,
        masters: usize,
        settings: &Settings,
    ) -> std::io::Result<Cluster> {
        let limit = Duration::from_secs(60);
        let mut last = None;
        for attempt in 1..=3 {
            let mut cluster = Cluster::fresh(server, masters * 2, settings)?;
            let made = cluster.create(1, limit).and_then(|_| {
                match poll(Instant::now(), limit, || cluster.healthy(masters)) {
                    Some(_) => Ok(()),
                    None => Err(std::io::Error::other(format!(
                        "{}: the new cluster did not become healthy ({masters} masters, each \
                         with a synced replica):\n{}",
                        server.name(),
                        cluster.describe()
                    ))),
                }
            });
            match made {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    eprintln!("cluster attempt {attempt}: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no attempt")))
    }

    /// Every running node answers, says `cluster_state:ok`, sees `masters`
    /// masters serving slots and none flagged failing, and every master it
    /// sees has a replica whose link to it is up (`master_link_status:up`).
    pub fn healthy(&mut self, masters: usize) -> bool {
        let running: Vec<usize> = (0..self.len()).filter(|&i| self.is_running(i)).collect();
        if !self.all_state(&running, "ok") {
            return false;
        }
        for &i in &running {
            let Some(nodes) = self.nodes(i) else {
                return false;
            };
            let failing = nodes
                .iter()
                .any(|n| n.has("fail") || n.has("fail?") || !n.connected && !n.has("myself"));
            if failing || nodes.iter().filter(|n| n.serves()).count() != masters {
                return false;
            }
        }
        let Some(nodes) = running.first().and_then(|&i| self.nodes(i)) else {
            return false;
        };
        for master in nodes.iter().filter(|n| n.serves()) {
            let replicas: Vec<usize> = nodes
                .iter()
                .filter(|n| n.master.as_deref() == Some(master.id.as_str()))
                .filter_map(|n| self.node_on(n.port))
                .collect();
            let synced = replicas.iter().any(|&r| {
                self.is_running(r)
                    && self.replication_field(r, "master_link_status").as_deref() == Some("up")
            });
            if !synced {
                return false;
            }
        }
        true
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let log = self.dir.join(format!("node-{}.log", self.ports[i]));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// One line per node: its `cluster_state`, its flags as it sees itself and
    /// its `master_link_status`, and the whole `CLUSTER NODES` of a node whose
    /// state is not `ok`: a report of why the cluster is not healthy.
    pub fn describe(&mut self) -> String {
        let mut text = String::new();
        for i in 0..self.len() {
            if !self.is_running(i) {
                text.push_str(&format!("node {i} (port {}): not running\n", self.ports[i]));
                continue;
            }
            let state = self.info_field(i, "cluster_state");
            let nodes = self.text(i, &["CLUSTER", "NODES"]).unwrap_or_default();
            let me = parse_nodes(&nodes).into_iter().find(|n| n.has("myself"));
            let link = self.replication_field(i, "master_link_status");
            text.push_str(&format!(
                "node {i} (port {}): cluster_state {}, flags {}, master_link_status {}\n",
                self.ports[i],
                state.as_deref().unwrap_or("?"),
                me.map_or("?".into(), |m| m.flags.join(",")),
                link.as_deref().unwrap_or("-"),
            ));
            if state.as_deref() != Some("ok") {
                text.push_str(&nodes);
            }
        }
        text
    }

    /// The running nodes' view (from the first that answers): masters serving
    /// slots, by node index.
    pub fn masters(&mut self) -> Vec<usize> {
        for i in 0..self.len() {
            if !self.is_running(i) {
                continue;
            }
            if let Some(nodes) = self.nodes(i) {
                return nodes
                    .iter()
                    .filter(|n| n.serves())
                    .filter_map(|n| self.node_on(n.port))
                    .collect();
            }
        }
        Vec::new()
    }

    /// The node serving `slot` as node `from` sees it, and that node's
    /// replicas.
    pub fn shard_of(&mut self, from: usize, slot: u16) -> Option<(usize, Vec<usize>)> {
        let nodes = self.nodes(from)?;
        let master = nodes.iter().find(|n| n.serves() && n.owns(slot))?;
        let replicas = nodes
            .iter()
            .filter(|n| n.master.as_deref() == Some(master.id.as_str()))
            .filter_map(|n| self.node_on(n.port))
            .collect();
        Some((self.node_on(master.port)?, replicas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn parses_cluster_nodes_lines() {
        let text =
            "abc 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 5470 [5461->-def]\n\
                    def 127.0.0.1:7001@17001,host slave abc 0 1 1 disconnected\n";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].port, 7000);
        assert!(nodes[0].serves() && nodes[0].owns(5470) && !nodes[0].owns(5461));
        assert_eq!(nodes[0].slots, [(0, 5460), (5470, 5470)]);
        assert_eq!(nodes[1].master.as_deref(), Some("abc"));
        assert!(!nodes[1].connected && nodes[1].has("slave") && !nodes[1].serves());
    }
}
