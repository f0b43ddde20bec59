//! Clusters of real `ringkv-server` processes on loopback: fresh nodes, joined
//! with `CLUSTER MEET` and given slots with `CLUSTER RING ASSIGN` (or left for
//! a test to join its own way), with replicas (`CLUSTER REPLICATE`) or not,
//! each node restartable on its port with its config file.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{query, TestServer};

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

/// A cluster's nodes, stopped (and their files removed) when dropped.
pub struct TestCluster {
    /// The nodes; `None` while stopped.
    pub servers: Vec<Option<TestServer>>,
    /// Each node's client port.
    pub ports: Vec<u16>,
    /// Where the config files live.
    pub dir: PathBuf,
    args: Vec<String>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestCluster {
    /// `n` fresh cluster nodes (each alone) with extra flags `args`.
    pub fn fresh(name: &str, n: usize, args: &[&str]) -> TestCluster {
        let dir = std::env::temp_dir().join(format!(
            "ringkv-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let mut cluster = TestCluster {
            servers: Vec::new(),
            ports: cluster_ports(n),
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        for i in 0..n {
            let server = cluster.launch(i);
            cluster.servers.push(Some(server));
        }
        cluster
    }

    /// `n` nodes joined by `CLUSTER MEET` and given every slot by the ring,
    /// every node agreeing and `cluster_state:ok`.
    pub fn start(name: &str, n: usize, args: &[&str]) -> TestCluster {
        TestCluster::with_replicas(name, n, 0, args)
    }

    /// `masters` masters with every slot (by the ring) and `per` replicas
    /// each: node `masters + k` replicates master `k % masters`. Every node
    /// sees every replica as one and says `cluster_state:ok`.
    pub fn with_replicas(name: &str, masters: usize, per: usize, args: &[&str]) -> TestCluster {
        let n = masters * (1 + per);
        let cluster = TestCluster::fresh(name, n, args);
        cluster.meet_all();
        assert!(
            cluster.wait(Duration::from_secs(20), |c| c.all_know(n)),
            "the nodes did not all meet"
        );
        for r in masters..n {
            let master = cluster.id(r % masters);
            // Known by id once its handshake completed (the count above
            // includes nodes still in handshake).
            let replicated = cluster.wait(Duration::from_secs(10), |c| {
                redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&master)
                    .query::<()>(&mut c.connect(r))
                    .is_ok()
            });
            assert!(replicated, "node {r} could not replicate {master}");
        }
        let replicas = n - masters;
        assert!(
            cluster.wait(Duration::from_secs(20), |c| {
                c.running().into_iter().all(|i| {
                    c.nodes(i)
                        .is_some_and(|text| count_replicas(&text) == replicas)
                })
            }),
            "the replicas are not known everywhere"
        );
        let planned: i64 = query(&mut cluster.connect(0), &["CLUSTER", "RING", "ASSIGN"]);
        assert_eq!(planned, 16384);
        assert!(
            cluster.wait(Duration::from_secs(20), |c| c.all_ok()),
            "the cluster did not come up"
        );
        cluster
    }

    fn launch(&self, i: usize) -> TestServer {
        let file = self.dir.join(format!("nodes-{}.conf", self.ports[i]));
        let mut args: Vec<&str> = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            file.to_str().expect("utf-8 path"),
        ];
        args.extend(self.args.iter().map(String::as_str));
        TestServer::start_on(self.ports[i], &args)
    }

    /// Node `i`, running.
    pub fn server(&self, i: usize) -> &TestServer {
        self.servers[i].as_ref().expect("node running")
    }

    /// A connection to node `i`.
    pub fn connect(&self, i: usize) -> redis::Connection {
        self.server(i).connect()
    }

    /// Node 0 meets every other node (as `redis-cli --cluster create` does).
    pub fn meet_all(&self) {
        let mut con = self.connect(0);
        for port in &self.ports[1..] {
            let _: () = query(
                &mut con,
                &["CLUSTER", "MEET", "127.0.0.1", &port.to_string()],
            );
        }
    }

    /// Stops node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.servers[i] = None;
    }

    /// Starts node `i` again on its port, with its config file.
    pub fn restart(&mut self, i: usize) {
        let server = self.launch(i);
        self.servers[i] = Some(server);
    }

    /// Node `i`'s `CLUSTER INFO`, or `None` if it does not answer.
    pub fn info(&self, i: usize) -> Option<String> {
        let server = self.servers[i].as_ref()?;
        let mut con = redis::Client::open(server.url())
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        redis::cmd("CLUSTER").arg("INFO").query(&mut con).ok()
    }

    /// Node `i`'s `CLUSTER NODES`, or `None` if it does not answer.
    pub fn nodes(&self, i: usize) -> Option<String> {
        let server = self.servers[i].as_ref()?;
        let mut con = redis::Client::open(server.url())
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        redis::cmd("CLUSTER").arg("NODES").query(&mut con).ok()
    }

    /// Node `i`'s `CLUSTER INFO` field `field`.
    pub fn info_field(&self, i: usize, field: &str) -> Option<String> {
        let info = self.info(i)?;
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(|v| v.trim().to_string())
    }

    /// Cuts node `i` off every other running node's bus (`mode` `both`),
    /// or heals it (`none`), with the test-only drop command on both sides
    /// (the nodes need `--enable-debug-command yes`).
    pub fn bus_drop(&self, i: usize, mode: &str) {
        let id = self.id(i);
        let _: () = query(
            &mut self.connect(i),
            &["DEBUG", "CLUSTER-BUS-DROP", "*", mode],
        );
        for other in self.running().into_iter().filter(|&o| o != i) {
            let _: () = query(
                &mut self.connect(other),
                &["DEBUG", "CLUSTER-BUS-DROP", &id, mode],
            );
        }
    }

    /// A key (`k0`, `k1`, ...) node `i` serves.
    pub fn key_of(&self, i: usize) -> String {
        let mut con = self.connect(i);
        (0..)
            .map(|n| format!("k{n}"))
            .find(|key| {
                redis::cmd("GET")
                    .arg(key)
                    .query::<Option<String>>(&mut con)
                    .is_ok()
            })
            .expect("the node serves some slot")
    }

    /// Indexes of the running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.servers.len())
            .filter(|&i| self.servers[i].is_some())
            .collect()
    }

    /// Every running node knows `n` nodes.
    pub fn all_know(&self, n: usize) -> bool {
        let n = n.to_string();
        self.running()
            .into_iter()
            .all(|i| self.info_field(i, "cluster_known_nodes").as_deref() == Some(n.as_str()))
    }

    /// Every running node says `cluster_state:ok`.
    pub fn all_ok(&self) -> bool {
        self.running()
            .into_iter()
            .all(|i| self.info_field(i, "cluster_state").as_deref() == Some("ok"))
    }

    /// Polls `done` every 50 ms until it holds (true) or `timeout` passes (false).
    pub fn wait(&self, timeout: Duration, done: impl Fn(&TestCluster) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> String {
        query(&mut self.connect(i), &["CLUSTER", "MYID"])
    }

    /// Node `i`'s master as node `observer` sees it (`None`: a master, or
    /// no answer).
    pub fn master_of(&self, observer: usize, i: &str) -> Option<String> {
        let nodes = self.nodes(observer)?;
        let line = nodes.lines().find(|l| l.starts_with(i))?;
        let fields: Vec<&str> = line.split(' ').collect();
        let replica = fields.get(2)?.split(',').any(|f| f == "slave");
        replica
            .then(|| fields.get(3).map(|m| m.to_string()))
            .flatten()
    }
}

/// The replica lines of a `CLUSTER NODES` reply.
pub fn count_replicas(nodes: &str) -> usize {
    nodes
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(2)
                .is_some_and(|flags| flags.split(',').any(|f| f == "slave"))
        })
        .count()
}

/// Runs `command`, killing it after `limit` (`redis-cli --cluster` waits for
/// a cluster join forever).
pub fn run_limited(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{command:?} did not finish in {limit:?}");
        }
    }
}

/// A command's stdout and stderr, as text.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
