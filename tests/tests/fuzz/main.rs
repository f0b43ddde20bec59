//! Command-level fuzzing of the real server: every command `COMMAND LIST` names
//! (subcommands included) gets requests whose arguments mix keys of every type,
//! missing keys, numeric and textual extremes, binary and 64 KB values and the
//! command's option keywords, at argument counts around its arity. Every reply
//! must be valid RESP of the connection's protocol (RESP2, and RESP3 for a third
//! of the requests), no connection may drop and no request may go unanswered;
//! afterwards the data the fuzzing wrote must read back, and at the end the
//! process must be alive, answer PING and hold its data. Every keyspace
//! notification is on, and a subscriber checks each one it receives.
//!
//! Each command first gets every extreme at each of its non-key arguments and
//! after one of its options, then `RINGKV_FUZZ_ROUNDS` (default 12) fully random
//! requests. Commands that block, change or close their connection run on
//! throw-away connections (see [`Route`]). The seed is random unless
//! `RINGKV_FUZZ_SEED` is set; it is printed at the start and on failure.
//! A command's requests depend only on the seed and its name, and every command
//! starts from the same data, so `RINGKV_FUZZ_ONLY=name,...` (or `RINGKV_FUZZ_SKIP`)
//! replays exactly the failing command's requests:
//!
//! ```text
//! RINGKV_FUZZ_SEED=123 RINGKV_FUZZ_ONLY=srandmember cargo test -p ringkv-tests --test fuzz
//! ```
//!
//! `RINGKV_FUZZ_TRACE=1` prints every request as it is sent.

mod fixtures;
mod fuzzer;
mod gen;
mod spec;
mod storm;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngExt;

use fixtures::{DENIED_CONFIG, ENCODING_PROFILES, KEYS, KEYS_BY_GROUP};
use fuzzer::{route, watch_notifications, Fuzzer, Route, REPLY_TIMEOUT};
use gen::{Gen, Pools};
use wire::{render, words, Conn, ReadError, Value};

/// Requests between two resets of the data to the fixtures.
const RESET_EVERY: usize = 24;

/// A comma-separated list of command names from the environment.
fn env_list(name: &str) -> Vec<String> {
    std::env::var(name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The seed: `RINGKV_FUZZ_SEED`, or a fresh one.
fn seed() -> u64 {
    match std::env::var("RINGKV_FUZZ_SEED") {
        Ok(s) => s.parse().expect("RINGKV_FUZZ_SEED is a u64"),
        Err(_) => rand::random(),
    }
}

/// Values some commands take, by command name.
fn context(fuzzer: &Fuzzer) -> HashMap<String, Vec<Vec<u8>>> {
    let mut ids: Vec<String> = [&fuzzer.ctl, &fuzzer.mains[0], &fuzzer.mains[1]]
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    ids.extend([
        "127.0.0.1:1".into(),
        format!("127.0.0.1:{}", fuzzer.server.port),
    ]);
    ids.extend(
        [
            "normal", "pubsub", "master", "replica", "yes", "no", "default",
        ]
        .map(String::from),
    );
    let mut context = HashMap::new();
    for client in [
        "client|kill",
        "client|list",
        "client|setinfo",
        "client|setname",
    ] {
        context.insert(
            client.to_string(),
            ids.iter().map(|s| s.as_bytes().to_vec()).collect(),
        );
    }
    let sections = [
        "server",
        "clients",
        "memory",
        "stats",
        "keyspace",
        "all",
        "everything",
        "default",
        "cpu",
    ];
    context.insert("info".into(), words(&sections));
    context.insert(
        "hello".into(),
        words(&["2", "3", "AUTH", "default", "SETNAME"]),
    );
    context.insert(
        "scan".into(),
        words(&[
            "string",
            "list",
            "hash",
            "set",
            "zset",
            "lock",
            "cache-lease",
            "none",
        ]),
    );
    let channels = words(&["ch", "fz:*", "__keyspace@0__:*", "__keyevent@0__:set"]);
    for name in [
        "publish",
        "subscribe",
        "psubscribe",
        "unsubscribe",
        "punsubscribe",
        "pubsub|numsub",
        "pubsub|channels",
    ] {
        context.insert(name.to_string(), channels.clone());
    }
    context
}

#[test]
fn every_command_survives_random_and_extreme_arguments() {
    let seed = seed();
    let rounds: usize =
        std::env::var("RINGKV_FUZZ_ROUNDS").map_or(12, |r| r.parse().expect("RINGKV_FUZZ_ROUNDS"));
    let (only, skip) = (env_list("RINGKV_FUZZ_ONLY"), env_list("RINGKV_FUZZ_SKIP"));
    eprintln!(
        "fuzz seed {seed} (set RINGKV_FUZZ_SEED to replay), {rounds} random requests per command"
    );
    let started = Instant::now();

    let mut fuzzer = Fuzzer::start(seed);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_notifications(fuzzer.server.port, stop.clone());
    let specs = spec::discover(&mut fuzzer.ctl, REPLY_TIMEOUT);
    fuzzer.learn_config();
    fuzzer.reset();
    let mut context = context(&fuzzer);
    context.insert("restore".into(), fuzzer.dumps());
    let settable = fuzzer.config.iter().map(|(name, _)| name.clone()).collect();
    let pools = Pools::new(
        KEYS,
        KEYS_BY_GROUP,
        &specs,
        context,
        DENIED_CONFIG,
        settable,
    );

    let mut fuzzed = 0;
    for spec in &specs {
        let route = route(spec);
        let chosen = only.is_empty() || only.contains(&spec.name);
        if route == Route::Skip || !chosen || skip.contains(&spec.name) {
            continue;
        }
        fuzzed += 1;
        fuzzer.command = spec.name.clone();
        let mut gen = Gen::new(seed, spec, &pools);
        let mut requests = Vec::new();
        for extreme in gen::extremes() {
            requests.extend(gen.with_extreme(&extreme));
            requests.extend(gen.with_option(&extreme));
        }
        requests.extend((0..rounds).map(|_| gen.random()));
        fuzzer.profile = ENCODING_PROFILES[gen.rng.random_range(0..ENCODING_PROFILES.len())];
        fuzzer.config_touched = true;
        fuzzer.reset();
        // A read-only command leaves the data as it found it: no resets needed.
        let writes = !spec.has_flag("readonly");
        for (i, args) in requests.iter().enumerate() {
            if writes && i > 0 && i % RESET_EVERY == 0 {
                fuzzer.read_back();
                fuzzer.reset();
            }
            let resp3 = gen.rng.random_bool(1.0 / 3.0);
            let transaction = gen
                .rng
                .random_bool(if route == Route::Main { 0.1 } else { 0.2 });
            fuzzer.run(route, args, resp3, transaction);
        }
        fuzzer.read_back();
    }
    assert!(fuzzed > 0, "no command matched RINGKV_FUZZ_ONLY={only:?}");

    // The process survived, answers a new connection, and its data still reads.
    assert!(
        fuzzer.server.child().try_wait().unwrap().is_none(),
        "the server exited"
    );
    let mut fresh = Conn::open(fuzzer.server.port, false, REPLY_TIMEOUT).expect("a new connection");
    assert_eq!(
        fresh.call(&words(&["PING"]), REPLY_TIMEOUT).unwrap(),
        Value::Status("PONG".into())
    );
    fuzzer.profile = ENCODING_PROFILES[0];
    fuzzer.config_touched = true;
    fuzzer.reset();
    let checks: &[(&[&str], Value)] = &[
        (&["GET", "fz:str"], Value::Bulk(b"hello world".to_vec())),
        (&["LINDEX", "fz:list", "-1"], Value::Bulk(b"a".to_vec())),
        (&["HGET", "fz:hash", "f1"], Value::Bulk(b"v1".to_vec())),
        (&["SCARD", "fz:intset"], Value::Int(4)),
        (&["ZSCORE", "fz:zset", "b"], Value::Bulk(b"2".to_vec())),
        (&["LOCK.RELEASE", "fz:lock", "owner"], Value::Int(0)),
        (&["PFCOUNT", "fz:hll"], Value::Int(3)),
        (&["DBSIZE"], Value::Int(16)),
    ];
    for (args, want) in checks {
        assert_eq!(&fuzzer.ctl(args), want, "{args:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let notified = watcher.join().expect("watcher thread");
    let notified = notified.unwrap_or_else(|e| panic!("notification stream (seed {seed}): {e}"));
    assert!(notified > 0, "no keyspace notification arrived");
    eprintln!(
        "fuzzed {fuzzed} commands with {} requests ({notified} notifications) in {:.1?}",
        fuzzer.sent,
        started.elapsed()
    );
}

/// SHUTDOWN with random arguments either refuses with an error, the connection
/// staying open, or stops the process cleanly.
#[test]
fn shutdown_with_random_arguments_replies_or_exits() {
    let seed = seed();
    let mut fuzzer = Fuzzer::start(seed);
    let specs = spec::discover(&mut fuzzer.ctl, REPLY_TIMEOUT);
    let shutdown = specs
        .iter()
        .find(|s| s.name == "shutdown")
        .expect("SHUTDOWN is listed");
    let pools = Pools::new(
        KEYS,
        KEYS_BY_GROUP,
        &specs,
        HashMap::new(),
        DENIED_CONFIG,
        Vec::new(),
    );
    let mut gen = Gen::new(seed, shutdown, &pools);
    fuzzer.command = "shutdown".into();
    for _ in 0..50 {
        let args = gen.random();
        fuzzer.note("RESP2 connection", &args);
        match fuzzer.mains[0].call(&args, REPLY_TIMEOUT) {
            Ok(Value::Error(_)) => {}
            Ok(other) => fuzzer.fail(
                &format!("SHUTDOWN replied {other}"),
                "RESP2 connection",
                &args,
            ),
            Err(ReadError::Closed) => {
                let status = fuzzer
                    .server
                    .wait_exit(REPLY_TIMEOUT)
                    .expect("the process exits after SHUTDOWN");
                assert!(
                    status.success(),
                    "SHUTDOWN {} (seed {seed}): {status:?}",
                    render(&args)
                );
                return;
            }
            Err(e) => fuzzer.fail(&e.to_string(), "RESP2 connection", &args),
        }
    }
    panic!("no random SHUTDOWN stopped the server (seed {seed})");
}

/// Four connections fuzz at once against four worker threads while the data is
/// flushed and rebuilt under them: no request hangs, drops its connection or
/// gets an invalid reply, and the server lives on. `RINGKV_FUZZ_STORM` sets the
/// requests per connection (default 1500).
#[test]
fn concurrent_fuzzing_never_hangs_or_drops() {
    let seed = seed();
    let per_lane: u64 =
        std::env::var("RINGKV_FUZZ_STORM").map_or(1500, |r| r.parse().expect("RINGKV_FUZZ_STORM"));
    let server = ringkv_tests::TestServer::start_with(&[
        "--threads",
        "4",
        "--client-output-buffer-limit",
        "normal 8mb 4mb 10",
    ]);
    let mut ctl = Conn::open(server.port, false, REPLY_TIMEOUT).expect("connect");
    let specs = spec::discover(&mut ctl, REPLY_TIMEOUT);
    let pools = Pools::new(
        KEYS,
        KEYS_BY_GROUP,
        &specs,
        HashMap::new(),
        DENIED_CONFIG,
        Vec::new(),
    );
    // Commands that change the server for everyone (CONFIG SET, whose restore
    // would race), may end their connection (QUIT, CLIENT KILL, random picks
    // past the output limit) or subscribe run in the single-connection test only.
    let storm = storm::Storm {
        specs: specs
            .iter()
            .filter(|s| s.name != "config|set")
            .filter_map(|s| match route(s) {
                Route::Main => Some((s, false)),
                Route::Blocking => Some((s, true)),
                _ => None,
            })
            .collect(),
        pools: &pools,
        port: server.port,
    };
    let (storm, done) = (&storm, AtomicBool::new(false));
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..4)
            .map(|lane| scope.spawn(move || storm.run(seed, lane, per_lane)))
            .collect();
        // Meanwhile: flush and rebuild the data under them (replies must be
        // valid; errors are fine, the lanes change the keys concurrently).
        let rebuild = fixtures::rebuild();
        while !lanes.iter().all(|l| l.is_finished()) && !done.load(Ordering::Relaxed) {
            for args in &rebuild {
                if let Err(e) = ctl.call(args, REPLY_TIMEOUT) {
                    done.store(true, Ordering::Relaxed);
                    return vec![Err(format!(
                        "rebuilding the data: {e}\n  request: {}",
                        render(args)
                    ))];
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        lanes
            .into_iter()
            .map(|l| l.join().expect("lane thread"))
            .collect()
    });
    for result in results {
        if let Err(e) = result {
            panic!("{e}\n  seed {seed} (RINGKV_FUZZ_SEED; the interleaving differs on replay)");
        }
    }
    let mut fresh = Conn::open(server.port, false, REPLY_TIMEOUT).expect("a new connection");
    assert_eq!(
        fresh.call(&words(&["PING"]), REPLY_TIMEOUT).unwrap(),
        Value::Status("PONG".into())
    );
}
