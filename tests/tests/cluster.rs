//! Cluster mode: three masters on loopback (met and given slots by the ring),
//! redirects, the CLUSTER commands, and the clients that follow them.

use std::net::TcpListener;
use std::process::Command;

use ringkv_tests::cluster::TestCluster;
use ringkv_tests::{expect_err, have_program, query as q, TestServer};

/// One range of `CLUSTER SLOTS`: first, last, and its master's ip, port, id
/// and (empty) metadata.
type SlotRange = (i64, i64, (String, i64, String, Vec<String>));

fn start_cluster(name: &str, masters: usize) -> TestCluster {
    TestCluster::start(name, masters, &[])
}

#[test]
fn keys_redirect_to_their_master_and_cluster_commands_answer_as_redis() {
    let cluster = start_cluster("replies", 3);
    let mut con = cluster.connect(0);
    assert_eq!(q::<i64>(&mut con, &["CLUSTER", "KEYSLOT", "foo"]), 12182);
    assert_eq!(
        q::<i64>(&mut con, &["CLUSTER", "KEYSLOT", "{user1000}.following"]),
        q::<i64>(&mut con, &["CLUSTER", "KEYSLOT", "{user1000}.followers"])
    );
    assert_eq!(q::<String>(&mut con, &["CLUSTER", "MYID"]), cluster.id(0));
    let info: String = q(&mut con, &["CLUSTER", "INFO"]);
    assert!(info.contains("cluster_state:ok\r\n") && info.contains("cluster_known_nodes:3\r\n"));
    let nodes: String = q(&mut con, &["CLUSTER", "NODES"]);
    assert_eq!(nodes.lines().count(), 3);
    assert!(nodes.ends_with('\n'));
    assert_eq!(nodes.matches("myself,master").count(), 1);
    let shards: Vec<redis::Value> = q(&mut con, &["CLUSTER", "SHARDS"]);
    assert_eq!(shards.len(), 3);

    // Find one key this node serves and one it does not.
    let slots: Vec<SlotRange> = q(&mut con, &["CLUSTER", "SLOTS"]);
    let owner_port = |key: &str| -> i64 {
        let slot = ringkv_server::keyspace::key_slot(key.as_bytes()) as i64;
        slots
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, node)| node.1)
            .unwrap()
    };
    let mine = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| owner_port(k) == i64::from(cluster.ports[0]))
        .unwrap();
    let other = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| owner_port(k) != i64::from(cluster.ports[0]))
        .unwrap();
    let _: () = q(&mut con, &["SET", &mine, "v"]);
    let slot = ringkv_server::keyspace::key_slot(mine.as_bytes()).to_string();
    assert_eq!(
        q::<i64>(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", &slot]),
        1
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["CLUSTER", "GETKEYSINSLOT", &slot, "10"]),
        std::slice::from_ref(&mine)
    );
    let other_slot = ringkv_server::keyspace::key_slot(other.as_bytes());
    assert_eq!(
        expect_err(&mut con, &["GET", &other]),
        format!("MOVED {other_slot} 127.0.0.1:{}", owner_port(&other))
    );
    assert_eq!(
        expect_err(&mut con, &["MSET", &mine, "1", &other, "2"]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    let errors: String = q(&mut con, &["INFO", "errorstats"]);
    assert!(
        errors.contains("errorstat_MOVED:count=1")
            && errors.contains("errorstat_CROSSSLOT:count=1"),
        "redirects count by their own codes: {errors}"
    );
    assert_eq!(
        expect_err(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", "16384"]),
        "ERR Invalid slot"
    );
    let _: () = q(&mut con, &["READONLY"]);
    let _: () = q(&mut con, &["READWRITE"]);
    // The node's state was written to its config file.
    let file =
        std::fs::read_to_string(cluster.dir.join(format!("nodes-{}.conf", cluster.ports[0])))
            .unwrap();
    assert!(file.contains(&cluster.id(0)));
}

#[test]
fn a_standalone_server_says_cluster_support_is_disabled() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(
        expect_err(&mut con, &["CLUSTER", "INFO"]),
        "ERR This instance has cluster support disabled"
    );
    let info: String = q(&mut con, &["INFO", "cluster"]);
    assert!(info.contains("cluster_enabled:0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_crate_cluster_client_reads_and_writes_through_the_cluster() {
    let cluster = start_cluster("client", 3);
    let client = redis::cluster::ClusterClient::new(vec![cluster.server(0).url()]).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    for i in 0..300 {
        let value: i64 = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(value, i);
    }
    // Every master holds a share.
    let mut total = 0;
    for i in 0..3 {
        let keys: u64 = q(&mut cluster.connect(i), &["DBSIZE"]);
        assert!(keys > 50, "{keys}");
        total += keys;
    }
    assert_eq!(total, 300);
}

#[test]
fn redis_cli_follows_redirects() {
    if !have_program("redis-cli") {
        eprintln!("redis-cli not installed; skipped");
        return;
    }
    let cluster = start_cluster("cli", 3);
    let port = cluster.ports[1].to_string();
    for i in 0..20 {
        let key = format!("cli:{i}");
        let set = Command::new("redis-cli")
            .args(["-c", "-p", &port, "SET", &key, &format!("v{i}")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&set.stdout).trim(), "OK");
        let get = Command::new("redis-cli")
            .args(["-c", "-p", &port, "GET", &key])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), format!("v{i}"));
    }
}

#[test]
fn redis_benchmark_runs_in_cluster_mode_without_errors() {
    if !have_program("redis-benchmark") {
        eprintln!("redis-benchmark not installed; skipped");
        return;
    }
    let cluster = start_cluster("benchmark", 3);
    let port = cluster.ports[0].to_string();
    let run = Command::new("redis-benchmark")
        .args([
            "--cluster",
            "-p",
            &port,
            "-t",
            "set,get,incr",
            "-n",
            "20000",
            "--csv",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{out}{err}");
    assert!(
        !format!("{out}{err}").to_lowercase().contains("error"),
        "{out}{err}"
    );
    for test in ["SET", "GET", "INCR"] {
        assert!(out.contains(&format!("\"{test}\"")), "{out}");
    }
}

/// A base port whose next two ports are free too, and their bus ports (+10000).
fn three_free_ports() -> u16 {
    for _ in 0..200 {
        let base = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > 55_000 {
            continue;
        }
        let free = (0..3).all(|i| {
            TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", base + i + 10_000)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

#[test]
fn the_local_cluster_script_starts_three_masters_and_stops_them() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let base = three_free_ports();
    let dir = std::env::temp_dir().join(format!("ringkv-script-{}", std::process::id()));
    let script = |name: &str| {
        Command::new(root.join("cluster-config").join(name))
            .env("RINGKV_CLUSTER_BASE_PORT", base.to_string())
            .env("RINGKV_CLUSTER_DIR", &dir)
            .env("RINGKV_SERVER", ringkv_tests::server_binary())
            .output()
            .unwrap()
    };
    let started = script("start.sh");
    let out = String::from_utf8_lossy(&started.stdout).to_string();
    let stop = || script("stop.sh");
    if !started.status.success() {
        stop();
        panic!("{out}{}", String::from_utf8_lossy(&started.stderr));
    }
    assert!(out.contains("cluster_state:ok") && out.contains(&format!("redis-cli -c -p {base}")));
    // The committed configs are what the script writes (for ports 7000-7002).
    let committed = std::fs::read_to_string(root.join("cluster-config/node-7001.toml")).unwrap();
    let written = std::fs::read_to_string(dir.join(format!("node-{}.toml", base + 1))).unwrap();
    let shifted = committed
        .replace("7000", &base.to_string())
        .replace("7001", &(base + 1).to_string())
        .replace("7002", &(base + 2).to_string());
    assert_eq!(written, shifted);
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{}/", base + 2))
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = q(&mut con, &["CLUSTER", "INFO"]);
    assert!(info.contains("cluster_known_nodes:3"));
    drop(con);
    let stopped = stop();
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("stopped 3"));
    assert!(
        TcpListener::bind(("127.0.0.1", base)).is_ok(),
        "node still listening"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rust_client_locks_and_loads_through_a_cluster() {
    use ringkv_client::{Cache, Client, Lock, Redlock};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    let mut cluster = start_cluster("rust-client", 3);
    let client = Client::connect_cluster(&[&cluster.server(1).url()])
        .await
        .unwrap();
    // Locks on names spread over every master.
    for i in 0..12 {
        let name = format!("lock:{i}");
        let guard = Lock::new(&client, &name).acquire().await.unwrap();
        assert!(guard.fencing_token().is_some());
        let info: std::collections::HashMap<String, redis::Value> = client
            .query(redis::cmd("LOCK.INFO").arg(&name))
            .await
            .unwrap();
        assert_eq!(info.len(), 5);
        assert!(info.contains_key("owner"));
        guard.release().await.unwrap();
    }
    // Cache-aside through the cluster: each key loads once.
    let cache = Cache::new(&client);
    let loads = AtomicUsize::new(0);
    for round in 0..3 {
        for i in 0..20 {
            let value = cache
                .get_or_load(
                    &format!("item:{i}"),
                    Duration::from_secs(60),
                    Duration::from_secs(5),
                    || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(Some(format!("value {i}").into_bytes()))
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                value,
                Some(format!("value {i}").into_bytes()),
                "round {round}"
            );
        }
    }
    assert_eq!(loads.load(Ordering::SeqCst), 20);

    // Redlock across the three masters of the cluster.
    let redlock = Redlock::over_cluster(&cluster.server(0).url())
        .await
        .unwrap()
        .retries(0);
    assert_eq!(redlock.quorum(), 2);
    let ttl = Duration::from_secs(10);
    let guard = redlock.lock("report", ttl).await.unwrap();
    assert!(guard.validity() < ttl);
    assert!(redlock.lock("report", ttl).await.is_err());
    guard.release().await.unwrap();
    // One master down: two of three still hold a majority; two down: none.
    cluster.kill(2);
    let guard = redlock.lock("report", ttl).await.expect("two of three");
    guard.release().await.unwrap();
    cluster.kill(1);
    assert!(redlock.lock("report", ttl).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_guard_whose_slot_moves_to_another_master_reports_the_lock_lost() {
    use ringkv_client::{Client, Error, Lock, LockState};
    use std::time::Duration;

    let cluster = start_cluster("lock-moved", 3);
    let client = Client::connect(&cluster.server(0).url()).await.unwrap();
    let name = "lock:moving";
    let guard = Lock::new(&client, name)
        .ttl(Duration::from_millis(1_500))
        .acquire()
        .await
        .unwrap();
    let slot = ringkv_server::keyspace::key_slot(name.as_bytes()).to_string();
    let slots: Vec<SlotRange> = q(&mut cluster.connect(0), &["CLUSTER", "SLOTS"]);
    let owner_port = slots
        .iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot.parse().unwrap()))
        .map(|(_, _, node)| node.1)
        .unwrap();
    let owner = (0..3)
        .find(|&i| i64::from(cluster.ports[i]) == owner_port)
        .unwrap();
    let taker = (owner + 1) % 3;
    // The slot moves without its keys: the owner lets it go, another master
    // claims it under a newer epoch.
    let _: () = q(&mut cluster.connect(owner), &["CLUSTER", "DELSLOTS", &slot]);
    let mut con = cluster.connect(taker);
    let _: () = q(&mut con, &["CLUSTER", "DELSLOTS", &slot]);
    let _: String = q(&mut con, &["CLUSTER", "BUMPEPOCH"]);
    let _: () = q(&mut con, &["CLUSTER", "ADDSLOTS", &slot]);

    // The next renewal meets CLUSTERDOWN or MOVED; the re-check on the new
    // master finds no such lock.
    let reported = tokio::time::timeout(Duration::from_secs(10), guard.lost())
        .await
        .expect("the moved slot is noticed");
    assert_ne!(reported, LockState::Held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while guard.state() != LockState::Lost && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(guard.state(), LockState::Lost);
    // Released where the slot now lives (not ours: LockLost), or refused while
    // the slot is still settling: never a success.
    let released = guard.release().await;
    assert!(
        matches!(
            released,
            Err(Error::LockLost(_) | Error::Redis(_) | Error::Timeout(_))
        ),
        "{released:?}"
    );
    // Acquiring follows the redirect to the new master.
    let again = Lock::new(&client, name)
        .wait(Duration::from_secs(10))
        .acquire()
        .await
        .unwrap();
    let mut con = cluster.connect(taker);
    let info: Option<Vec<redis::Value>> = q(&mut con, &["LOCK.INFO", name]);
    assert!(info.is_some(), "the new grant is on the new master");
    again.release().await.unwrap();
}
