//! The compare harness: runs `redis-benchmark` against ringkv and (when
//! `redis-server` is installed) Redis on this machine with the same flags,
//! alternating which server goes first each round, and prints for every test the
//! throughput of both, their ratio, and each server's CPU time per operation.
//!
//! ```text
//! ./bench/compare.sh --pipelines 1,16,64
//! ./bench/compare.sh --tests evalsha_release,evalsha_two_keys --pipelines 1,16 --keyspace 100000
//! ```
//!
//! Besides redis-benchmark's own tests, `evalsha_release` runs `EVALSHA` of
//! the compare-and-delete lock release and `evalsha_two_keys` a script that
//! increments two keys of one slot (loaded with `SCRIPT LOAD` first), and the
//! command tests of [`COMMAND_TESTS`] (`setbit`, `bitcount`, `pfadd`, `geoadd`,
//! `geosearch`, `xadd`) run one command line each, with their own `-r` and,
//! where they read data, the same seed loaded into both servers first.
//!
//! A server's error reply stops redis-benchmark (7.0 exits on the first
//! one, printing it), so a run of a command a server refuses is reported as
//! failed, never timed.

use std::path::PathBuf;

use clap::Parser;
use ringkv_bench::{
    children_cpu_seconds, have_program, median, pin, redis_benchmark, ringkv_release_binary,
    ServerProcess,
};

/// Compare ringkv and Redis under redis-benchmark.
#[derive(Debug, Parser)]
struct Options {
    /// redis-benchmark tests (its -t names; `ping` runs both PING tests, `lrange`
    /// all four LRANGE tests, `default` the whole default suite).
    #[arg(long, default_value = "ping,set,get,incr,mset", value_delimiter = ',')]
    tests: Vec<String>,
    /// Pipeline depths (-P) to run.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    pipelines: Vec<u32>,
    /// Parallel connections (-c).
    #[arg(long, default_value_t = 50)]
    clients: u32,
    /// Rounds per test; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests per run (-n); by default 200000 at -P 1 and 100000 x P (at most 2M) above.
    #[arg(long)]
    requests: Option<u64>,
    /// Random keyspace size (-r); without it redis-benchmark uses a single key.
    /// The command tests keep their own.
    #[arg(long)]
    keyspace: Option<u64>,
    /// The ringkv-server binary (default: target/release/ringkv-server).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Extra flags for ringkv-server, e.g. "--threads 1".
    #[arg(long, allow_hyphen_values = true)]
    ringkv_args: Option<String>,
    /// Run each server on CPU 0 and redis-benchmark on CPU 1, so neither
    /// takes the other's core: steadier figures when the client needs a
    /// whole core (-P 1).
    #[arg(long)]
    pin: bool,
}

/// Script tests: name, script, and the arguments after the SHA
/// (`__rand_int__` is redis-benchmark's random number).
const SCRIPTS: &[(&str, &str, &[&str])] = &[
    (
        "evalsha_release",
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
        &["1", "lock:__rand_int__", "token"],
    ),
    (
        "evalsha_two_keys",
        "redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[2])",
        &["2", "{k:__rand_int__}a", "{k:__rand_int__}b"],
    ),
];

/// Loads every script of [`SCRIPTS`] into the server on `port`.
fn load_scripts(port: u16) {
    for (_, body, _) in SCRIPTS {
        let status = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "SCRIPT", "LOAD", body])
            .stdout(std::process::Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "SCRIPT LOAD failed on port {port}"
        );
    }
}

/// A test of one command line.
///
/// redis-benchmark writes each `__rand_int__` as its own random number below
/// `-r`, in 12 zero-padded digits: fine in a key, a member or a double
/// (`__rand_int__e-5` is a coordinate from 0 to 0.99999 with `-r 100000`), but
/// not in an integer argument such as a bit offset, which Redis refuses with
/// leading zeros ("bit offset is not an integer or out of range").
struct CommandTest {
    /// The `--tests` name.
    name: &'static str,
    /// The command and its arguments.
    command: &'static [&'static str],
    /// Its `-r`, whatever `--keyspace` says.
    keyspace: u64,
    /// Requests per run (-n) unless `--requests` is given; None for the
    /// harness's default.
    requests: Option<u64>,
    /// Commands that load the data the test reads (RESP), sent to both
    /// servers before the test's rounds at each pipeline depth.
    seed: Option<fn() -> Vec<u8>>,
}

/// The command tests.
const COMMAND_TESTS: &[CommandTest] = &[
    // A flag in one of 100,000 per-user bitmaps of 16 bytes.
    CommandTest {
        name: "setbit",
        command: &["SETBIT", "bits:__rand_int__", "123", "1"],
        keyspace: 100_000,
        requests: None,
        seed: None,
    },
    // A daily-active-users bitmap of 1M bits (125,000 bytes), a third set.
    CommandTest {
        name: "bitcount",
        command: &["BITCOUNT", "dau"],
        keyspace: 100_000,
        requests: Some(50_000),
        seed: Some(seed_bitmap),
    },
    // Distinct visitors in one (dense) HyperLogLog.
    CommandTest {
        name: "pfadd",
        command: &["PFADD", "visitors", "user:__rand_int__"],
        keyspace: 100_000_000,
        requests: None,
        seed: None,
    },
    // 100,000 members moving about a 1-degree square (111 km a side).
    CommandTest {
        name: "geoadd",
        command: &[
            "GEOADD",
            "fleet",
            "__rand_int__e-5",
            "__rand_int__e-5",
            "car:__rand_int__",
        ],
        keyspace: 100_000,
        requests: None,
        seed: None,
    },
    // The 10 nearest within 10 km of a random point of the square its
    // 10,000 members cover (about 250 members within 10 km on average).
    CommandTest {
        name: "geosearch",
        command: &[
            "GEOSEARCH",
            "places",
            "FROMLONLAT",
            "__rand_int__e-5",
            "__rand_int__e-5",
            "BYRADIUS",
            "10",
            "km",
            "ASC",
            "COUNT",
            "10",
        ],
        keyspace: 100_000,
        requests: Some(50_000),
        seed: Some(seed_places),
    },
    // An event log capped near 1M entries.
    CommandTest {
        name: "xadd",
        command: &[
            "XADD",
            "events",
            "MAXLEN",
            "~",
            "1000000",
            "*",
            "user",
            "__rand_int__",
        ],
        keyspace: 100_000,
        requests: None,
        seed: None,
    },
];

/// The next number of a SplitMix64 sequence: the seeds' data is the same in
/// every run.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `dau`: 1,000,000 bits, each set with probability 1/3.
fn seed_bitmap() -> Vec<u8> {
    let mut state = 1;
    let mut bits = vec![0u8; 125_000];
    for byte in &mut bits {
        for bit in 0..8 {
            if splitmix(&mut state).is_multiple_of(3) {
                *byte |= 0x80 >> bit;
            }
        }
    }
    let mut out = Vec::new();
    ringkv_bench::encode_command(&[&b"DEL"[..], b"dau"], &mut out);
    ringkv_bench::encode_command(&[&b"SET"[..], b"dau", &bits], &mut out);
    out
}

/// `places`: 10,000 members spread evenly over longitude and latitude 0 to 1,
/// added 100 at a time.
fn seed_places() -> Vec<u8> {
    let mut state = 2;
    let mut out = Vec::new();
    ringkv_bench::encode_command(&[&b"DEL"[..], b"places"], &mut out);
    let mut unit = || (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
    for batch in 0..100 {
        let mut args = vec!["GEOADD".to_string(), "places".to_string()];
        for i in 0..100 {
            args.push(format!("{:.6}", unit()));
            args.push(format!("{:.6}", unit()));
            args.push(format!("place:{}", batch * 100 + i));
        }
        ringkv_bench::encode_command(&args, &mut out);
    }
    out
}

/// The command test named `run`, if it is one.
fn command_test(run: &str) -> Option<&'static CommandTest> {
    COMMAND_TESTS.iter().find(|t| t.name == run)
}

/// Loads the seed of command test `run`, if it has one, into the server on `port`.
fn seed(run: &str, port: u16) {
    if let Some(seed) = command_test(run).and_then(|t| t.seed) {
        ringkv_bench::redis_cli_pipe(port, &seed())
            .unwrap_or_else(|e| panic!("seeding {run} on port {port}: {e}"));
    }
}

/// redis-benchmark's arguments for `run`: `-t run`, a script's `EVALSHA`, or
/// a command test's command line.
fn test_args(run: &str) -> Vec<String> {
    if let Some(test) = command_test(run) {
        return test.command.iter().map(|a| a.to_string()).collect();
    }
    match SCRIPTS.iter().find(|(name, _, _)| *name == run) {
        Some((_, body, rest)) => {
            let sha = ringkv_server::scripting::sha1_hex(body.as_bytes());
            let mut args = vec![
                "EVALSHA".to_string(),
                String::from_utf8_lossy(&sha).into_owned(),
            ];
            args.extend(rest.iter().map(|a| a.to_string()));
            args
        }
        None => vec!["-t".to_string(), run.to_string()],
    }
}

/// redis-benchmark's LRANGE tests.
const LRANGE: [&str; 4] = ["lrange_100", "lrange_300", "lrange_500", "lrange_600"];

/// The tests plain `redis-benchmark` runs before its LRANGE ones, in its order.
const DEFAULT_SUITE: [&str; 14] = [
    "ping_inline",
    "ping_mbulk",
    "set",
    "get",
    "incr",
    "lpush",
    "rpush",
    "lpop",
    "rpop",
    "sadd",
    "hset",
    "spop",
    "zadd",
    "zpopmin",
];

/// The redis-benchmark `-t` names a requested test expands to (one result line each).
fn runs_for(test: &str) -> Vec<String> {
    match test {
        "ping" => vec!["ping_inline".into(), "ping_mbulk".into()],
        "lrange" => LRANGE.map(String::from).to_vec(),
        "default" => DEFAULT_SUITE
            .iter()
            .chain(&LRANGE)
            .chain(&["mset"])
            .map(|t| t.to_string())
            .collect(),
        other => vec![other.to_string()],
    }
}

#[derive(Default)]
struct Samples {
    rps: Vec<f64>,
    cpu_us: Vec<f64>,
    client_load: Vec<f64>,
}

/// One run's figures.
struct Measured {
    test: String,
    rps: f64,
    /// Server CPU µs per operation.
    cpu_us: f64,
    /// Share of one core redis-benchmark used: near 100% means the client, not the
    /// server, limited the throughput.
    client_load: f64,
}

/// One redis-benchmark run of a single test.
fn measure(
    server: &ServerProcess,
    run: &str,
    pipeline: u32,
    requests: u64,
    o: &Options,
) -> Option<Measured> {
    let mut args = vec![
        "-c".to_string(),
        o.clients.to_string(),
        "-n".into(),
        requests.to_string(),
        "-P".into(),
        pipeline.to_string(),
    ];
    if let Some(r) = command_test(run).map(|t| t.keyspace).or(o.keyspace) {
        args.extend(["-r".to_string(), r.to_string()]);
    }
    // A command goes after the options; `-t` anywhere.
    args.extend(test_args(run));
    let before = server.cpu_seconds();
    let client_before = children_cpu_seconds();
    let started = std::time::Instant::now();
    let results = match redis_benchmark(server.port, &args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{} {run} -P {pipeline}: {e}", server.name);
            return None;
        }
    };
    let cpu = server.cpu_seconds() - before;
    let client_load = (children_cpu_seconds() - client_before) / started.elapsed().as_secs_f64();
    // LRANGE runs are preceded by redis-benchmark's own "LPUSH (needed to
    // benchmark LRANGE)" fill; the test itself is the last line.
    let result = results.into_iter().last()?;
    Some(Measured {
        test: result.test,
        rps: result.rps,
        cpu_us: cpu * 1e6 / requests as f64,
        client_load,
    })
}

fn main() {
    let o = Options::parse();
    if !have_program("redis-benchmark") {
        eprintln!("redis-benchmark is not installed (apt-get install redis-tools)");
        std::process::exit(2);
    }
    let bin = o.server_bin.clone().unwrap_or_else(ringkv_release_binary);
    if !bin.exists() {
        eprintln!(
            "{} not found: run `cargo build --release -p ringkv-server` first",
            bin.display()
        );
        std::process::exit(2);
    }
    let extra: Vec<&str> = o
        .ringkv_args
        .as_deref()
        .map(|a| a.split_whitespace().collect())
        .unwrap_or_default();
    let ringkv = ServerProcess::ringkv(&bin, &extra).expect("start ringkv");
    let redis = if have_program("redis-server") {
        Some(ServerProcess::redis(&[]).expect("start redis"))
    } else {
        eprintln!("redis-server not installed: measuring ringkv only");
        None
    };
    load_scripts(ringkv.port);
    if let Some(r) = &redis {
        load_scripts(r.port);
    }
    // Counted before pinning, which leaves this process one CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if o.pin {
        for server in std::iter::once(&ringkv).chain(&redis) {
            pin(server.pid(), "0").expect("pin the server");
        }
        // redis-benchmark inherits this process's CPU.
        pin(std::process::id(), "1").expect("pin the client");
    }
    println!(
        "redis-benchmark -c {}{}, median of {} alternating rounds, {} CPUs{}, ringkv flags: {}",
        o.clients,
        o.keyspace.map(|r| format!(" -r {r}")).unwrap_or_default(),
        o.rounds,
        cpus,
        if o.pin {
            " (servers on CPU 0, client on CPU 1)"
        } else {
            ""
        },
        if extra.is_empty() {
            "(defaults)".to_string()
        } else {
            extra.join(" ")
        }
    );
    println!();
    println!("| test | -P | ringkv ops/s | Redis ops/s | ratio | ringkv CPU µs/op | Redis CPU µs/op | CPU ratio (median of rounds) | client CPU (ringkv / Redis) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &pipeline in &o.pipelines {
        let default_requests = if pipeline <= 1 {
            200_000
        } else {
            (100_000 * u64::from(pipeline)).min(2_000_000)
        };
        for run in o.tests.iter().flat_map(|t| runs_for(t)) {
            let requests = o
                .requests
                .or(command_test(&run).and_then(|t| t.requests))
                .unwrap_or(default_requests);
            for server in std::iter::once(&ringkv).chain(&redis) {
                seed(&run, server.port);
            }
            let (mut ours, mut theirs) = (Samples::default(), Samples::default());
            let mut name = run.to_uppercase();
            // redis-benchmark names a command line's run by the whole line.
            let script = SCRIPTS.iter().any(|(n, _, _)| *n == run) || command_test(&run).is_some();
            for round in 0..o.rounds {
                // Alternate which server goes first, so drift favours neither.
                let mut order: Vec<(&ServerProcess, &mut Samples)> = vec![(&ringkv, &mut ours)];
                if let Some(r) = &redis {
                    order.push((r, &mut theirs));
                }
                if round % 2 == 1 {
                    order.reverse();
                }
                for (server, samples) in order {
                    if let Some(m) = measure(server, &run, pipeline, requests, &o) {
                        if !script {
                            name = m.test;
                        }
                        samples.rps.push(m.rps);
                        samples.cpu_us.push(m.cpu_us);
                        samples.client_load.push(m.client_load);
                    }
                }
            }
            // Each round's CPU ratio, before the medians sort the samples: the
            // two servers of one round ran under the same conditions, so the
            // median ratio is steadier than the ratio of the medians.
            let mut paired: Vec<f64> = ours
                .cpu_us
                .iter()
                .zip(&theirs.cpu_us)
                .map(|(o, t)| o / t)
                .collect();
            let paired = match paired.is_empty() {
                true => "-".to_string(),
                false => format!("{:.3}", median(&mut paired)),
            };
            let (ours_rps, theirs_rps) = (median(&mut ours.rps), median(&mut theirs.rps));
            let ratio = if theirs_rps > 0.0 {
                format!("{:.2}x", ours_rps / theirs_rps)
            } else {
                "-".into()
            };
            println!(
                "| {name} | {pipeline} | {ours_rps:.0} | {theirs_rps:.0} | {ratio} | {:.3} | {:.3} | {paired} | {:.0}% / {:.0}% |",
                median(&mut ours.cpu_us),
                median(&mut theirs.cpu_us),
                100.0 * median(&mut ours.client_load),
                100.0 * median(&mut theirs.client_load)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tests_have_their_own_names() {
        for (i, test) in COMMAND_TESTS.iter().enumerate() {
            assert!(COMMAND_TESTS[..i].iter().all(|t| t.name != test.name));
            assert!(SCRIPTS.iter().all(|(name, _, _)| *name != test.name));
            assert_eq!(test_args(test.name), test.command);
        }
    }

    #[test]
    fn the_bitmap_seed_is_a_third_set_and_the_same_every_time() {
        let seed = seed_bitmap();
        assert_eq!(seed, seed_bitmap());
        // DEL, then SET with the 125,000 bytes last.
        let bits = &seed[seed.len() - 125_002..seed.len() - 2];
        let set: u32 = bits.iter().map(|b| b.count_ones()).sum();
        assert!((320_000..347_000).contains(&set), "{set} bits set");
    }

    #[test]
    fn the_places_seed_adds_ten_thousand_members_inside_the_unit_square() {
        let seed = String::from_utf8(seed_places()).unwrap();
        assert_eq!(seed.matches("GEOADD").count(), 100);
        assert_eq!(seed.matches("place:").count(), 10_000);
        let coordinates = seed
            .lines()
            .filter_map(|l| l.parse::<f64>().ok().filter(|_| l.contains('.')));
        assert_eq!(coordinates.clone().count(), 20_000);
        assert!(coordinates.into_iter().all(|c| (0.0..=1.0).contains(&c)));
    }
}
