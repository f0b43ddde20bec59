//! The Rust client against real servers: locks, Redlock and cache-aside loading.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringkv_client::{Cache, Client, Error, Lock, LockMode, LockState, Redlock};
use ringkv_tests::reference::RedisServer;
use ringkv_tests::TestServer;

async fn client(server: &TestServer) -> Client {
    Client::connect(&server.url()).await.expect("connect")
}

async fn get_counter(client: &Client) -> i64 {
    client
        .query::<Option<i64>>(redis::cmd("GET").arg("counter"))
        .await
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_tasks_increment_a_plain_counter_under_the_lock() {
    let server = TestServer::start();
    let client = client(&server).await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                let guard = Lock::new(&client, "counter-lock")
                    .ttl(Duration::from_secs(5))
                    .wait(Duration::from_secs(30))
                    .acquire()
                    .await
                    .expect("acquire");
                // Read, then write: only the lock keeps this from losing updates.
                let value = get_counter(&client).await;
                let _: () = client
                    .query(redis::cmd("SET").arg("counter").arg(value + 1))
                    .await
                    .unwrap();
                guard.release().await.expect("release");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(get_counter(&client).await, 6_400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_keeps_a_live_guard_past_several_leases() {
    let server = TestServer::start();
    let client = client(&server).await;
    let guard = Lock::new(&client, "long")
        .ttl(Duration::from_millis(300))
        .acquire()
        .await
        .unwrap();
    let first = guard.fencing_token().expect("native locks have tokens");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(guard.is_held());
    let other = Lock::new(&client, "long").acquire().await;
    assert!(matches!(other, Err(Error::NotAcquired(_))), "{other:?}");
    guard.release().await.unwrap();
    let next = Lock::new(&client, "long").acquire().await.unwrap();
    assert!(next.fencing_token().unwrap() > first);
    // Dropping a guard releases it.
    drop(next);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let info: Option<Vec<redis::Value>> = client
        .query(redis::cmd("LOCK.INFO").arg("long"))
        .await
        .unwrap();
    assert!(info.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_granted_after_a_wait_longer_than_its_lease_starts_held() {
    let server = TestServer::start();
    let client = client(&server).await;
    let first = Lock::new(&client, "queued").acquire().await.unwrap();
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move {
            Lock::new(&client, "queued")
                .ttl(Duration::from_millis(600))
                .wait(Duration::from_secs(10))
                .acquire()
                .await
        })
    };
    // Granted 1.5 s after it asked: more than its whole lease, counted from
    // when it asked.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    first.release().await.unwrap();
    let second = waiting.await.unwrap().unwrap();
    assert!(second.is_held(), "{:?}", second.state());
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(second.is_held(), "renewed by its watchdog");
    second.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_compatible_mode_uses_set_nx_and_compare_and_delete() {
    let server = TestServer::start();
    let client = client(&server).await;
    let guard = Lock::new(&client, "compat")
        .mode(LockMode::RedisCompatible)
        .ttl(Duration::from_millis(300))
        .acquire()
        .await
        .unwrap();
    assert_eq!(guard.fencing_token(), None);
    let busy = Lock::new(&client, "compat")
        .mode(LockMode::RedisCompatible)
        .wait(Duration::from_millis(100))
        .acquire()
        .await;
    assert!(matches!(busy, Err(Error::NotAcquired(_))));
    // Renewed past its lease by the watchdog (SET ... IFEQ ... PX).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let kind: String = client
        .query(redis::cmd("TYPE").arg("compat"))
        .await
        .unwrap();
    assert_eq!(kind, "string");
    guard.release().await.unwrap();
    let exists: i64 = client
        .query(redis::cmd("EXISTS").arg("compat"))
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

/// Polls `done` every 20 ms for up to `limit`; true once it holds.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Sends `signal` (`STOP`, `CONT`) to the server process.
fn signal(server: &mut TestServer, signal: &str) {
    let pid = server.child().id().to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_whose_renewal_times_out_is_maybe_lost_until_the_server_confirms_it() {
    let mut server = TestServer::start();
    let client = client(&server).await;
    // Renewals every 3 s, each allowed 3 s.
    let guard = Lock::new(&client, "paused")
        .ttl(Duration::from_secs(9))
        .acquire()
        .await
        .unwrap();
    let token = guard.fencing_token();
    // Stopped across the first renewal and its timeout, resumed well within
    // the lease.
    signal(&mut server, "STOP");
    let reported = tokio::time::timeout(Duration::from_millis(7_500), guard.lost()).await;
    // The renewal that got no reply made the guard stop vouching for the lock...
    let held_while_stopped = guard.is_held();
    signal(&mut server, "CONT");
    assert_eq!(reported, Ok(LockState::MaybeLost));
    assert!(!held_while_stopped);
    // ...until the server, answering again, showed the same grant.
    assert!(eventually(Duration::from_secs(5), || guard.is_held()).await);
    assert_eq!(guard.fencing_token(), token);
    guard.renew().await.unwrap();
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_whose_server_restarts_without_its_lock_reports_it_lost() {
    let port = ringkv_tests::cluster::cluster_ports(1)[0];
    let mut server = TestServer::start_on(port, &[]);
    let client = client(&server).await;
    for mode in [LockMode::Native, LockMode::RedisCompatible] {
        let guard = Lock::new(&client, "restarted")
            .mode(mode)
            .ttl(Duration::from_millis(900))
            .acquire()
            .await
            .unwrap();
        // kill -9, and a fresh process on the same port: the lock is gone.
        drop(server);
        server = TestServer::start_on(port, &[]);
        assert!(
            eventually(Duration::from_secs(10), || guard.state() == LockState::Lost).await,
            "{mode:?}: {:?}",
            guard.state()
        );
        assert!(!guard.is_held());
        assert!(matches!(guard.renew().await, Err(Error::LockLost(_))));
        assert!(matches!(guard.release().await, Err(Error::LockLost(_))));
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_compatible_mode_renews_and_releases_by_script_on_redis_7() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let client = Client::connect(&redis.url()).await.unwrap();
    let guard = Lock::new(&client, "compat")
        .mode(LockMode::RedisCompatible)
        .ttl(Duration::from_millis(300))
        .acquire()
        .await
        .unwrap();
    // Redis 7 has no SET ... IFEQ: the watchdog renews by script, past
    // several leases.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(guard.is_held());
    let busy = Lock::new(&client, "compat")
        .mode(LockMode::RedisCompatible)
        .acquire()
        .await;
    assert!(matches!(busy, Err(Error::NotAcquired(_))), "{busy:?}");
    guard.release().await.unwrap();
    let exists: i64 = client
        .query(redis::cmd("EXISTS").arg("compat"))
        .await
        .unwrap();
    assert_eq!(exists, 0);
    // Redlock's extension takes the same way.
    let redlock = Redlock::new(vec![client.clone()]).retries(0);
    let mut guard = redlock.lock("R", Duration::from_secs(5)).await.unwrap();
    guard.extend(Duration::from_secs(5)).await.unwrap();
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redlock_needs_a_majority_of_five() {
    let mut servers: Vec<TestServer> = (0..5).map(|_| TestServer::start()).collect();
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(client(server).await);
    }
    let redlock = Redlock::new(clients)
        .retries(1)
        .retry_delay(Duration::from_millis(20));
    assert_eq!(redlock.quorum(), 3);
    let ttl = Duration::from_secs(10);
    let guard = redlock.lock("R", ttl).await.expect("all five up");
    assert!(guard.validity() < ttl && guard.validity() > ttl - Duration::from_secs(1));
    // Held: a second Redlock on the same servers cannot take it.
    assert!(matches!(
        redlock.lock("R", ttl).await,
        Err(Error::NotAcquired(_))
    ));
    guard.release().await.unwrap();

    // Two servers down: three still make a majority.
    servers.truncate(3);
    let mut guard = redlock.lock("R", ttl).await.expect("three of five");
    guard.extend(ttl).await.expect("extend on three");
    assert!(guard.remaining() > Duration::ZERO);
    guard.release().await.unwrap();
    // Three down: no majority.
    servers.truncate(2);
    assert!(matches!(
        redlock.lock("R", ttl).await,
        Err(Error::NotAcquired(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_loads_of_one_missing_key_call_the_loader_once() {
    let server = TestServer::start();
    // Two "processes": single-flight within each, leases between them.
    let caches = [
        Arc::new(Cache::new(&client(&server).await)),
        Arc::new(Cache::new(&client(&server).await)),
    ];
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..1_000 {
        let (cache, calls) = (caches[i % 2].clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load(
                    "item:1",
                    Duration::from_secs(60),
                    Duration::from_secs(5),
                    || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, String>(Some(b"from the database".to_vec()))
                    },
                )
                .await
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.unwrap().unwrap().as_deref(),
            Some(&b"from the database"[..])
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_a_missing_id_within_the_null_ttl_call_the_loader_once() {
    let server = TestServer::start();
    let cache = Cache::new(&client(&server).await);
    let calls = AtomicUsize::new(0);
    for _ in 0..10_000 {
        let found = cache
            .get_or_load(
                "user:missing",
                Duration::from_secs(60),
                Duration::from_secs(30),
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(None)
                },
            )
            .await
            .unwrap();
        assert_eq!(found, None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_after_an_invalidating_write_is_rejected() {
    let server = TestServer::start();
    let client = client(&server).await;
    let cache = Cache::new(&client);
    let writer = client.clone();
    let loaded = cache
        .get_or_load(
            "price",
            Duration::from_secs(60),
            Duration::from_secs(5),
            || async move {
                // While the slow load runs, the source changes and the writer
                // updates the cache directly.
                let _: () = writer
                    .query(redis::cmd("SET").arg("price").arg("new"))
                    .await
                    .unwrap();
                Ok::<_, String>(Some(b"old".to_vec()))
            },
        )
        .await
        .unwrap();
    assert_eq!(loaded.as_deref(), Some(&b"old"[..]));
    let cached: String = client.query(redis::cmd("GET").arg("price")).await.unwrap();
    assert_eq!(cached, "new");
    // Loader errors reach the caller, typed.
    let failed = cache
        .get_or_load(
            "broken",
            Duration::from_secs(1),
            Duration::from_secs(1),
            || async { Err::<Option<Vec<u8>>, _>("database down") },
        )
        .await;
    assert!(matches!(failed, Err(Error::Load(m)) if m == "database down"));
    // The failed load handed its lease back: the next caller loads at once.
    let retried = tokio::time::timeout(
        Duration::from_secs(2),
        cache.get_or_load(
            "broken",
            Duration::from_secs(1),
            Duration::from_secs(1),
            || async { Ok::<_, String>(Some(b"recovered".to_vec())) },
        ),
    )
    .await
    .expect("not kept waiting for the failed lease")
    .unwrap();
    assert_eq!(retried.as_deref(), Some(&b"recovered"[..]));
}
