//! End to end under load: a cluster of three ringkv masters grows to four and
//! shrinks back to three while a checker writes unique keys, reads them back
//! and holds locks; nothing acknowledged may be lost or read wrong, no lock
//! may be lost or held twice, and only the slots that had to move may move.
//!
//! Two ways of growing and shrinking, each on a fresh cluster:
//!
//! * `redis-cli`: the cluster is made by `redis-cli --cluster create`; the
//!   fourth master joins with `--cluster add-node` and gets its share with
//!   `--cluster rebalance --cluster-use-empty-masters` (key-by-key `MIGRATE`);
//!   it leaves with `--cluster rebalance --cluster-weight <id>=0` and
//!   `--cluster del-node`. Before each rebalance, `redis-cli --cluster check`
//!   must print that all nodes agree.
//! * `auto`: the cluster is made by `CLUSTER MEET` and `CLUSTER RING ASSIGN`;
//!   every master has `cluster-auto-rebalance yes`; the fourth master is
//!   `CLUSTER MEET`-ed and the ring moves its share to it by atomic slot
//!   migration; it leaves with `CLUSTER RING DRAIN`, then `CLUSTER FORGET` on
//!   every other node, then it is stopped.
//!
//! The checker, all through (paced, `--ops-per-sec` in all):
//!
//! * key threads `SET` unique keys `chk:<thread>:<n>` to a value derived from
//!   the key and record each acknowledged write; they `GET` random
//!   acknowledged keys and count a **wrong read** when the value differs or is
//!   missing. Redirects are followed; other errors are counted and shown.
//! * `--locks` locks (names spread evenly over the slots), each wanted by two
//!   clients: `LOCK.ACQUIRE name owner ttl WAIT ms`, `LOCK.EXTEND` every
//!   `--extend-every-ms` while holding, `LOCK.RELEASE` after a random hold. A
//!   client's lease runs, by its own clock, until the send time of its last
//!   successful acquire or extend plus the TTL (less a 10 ms slack); a **lost
//!   lock** is an extend answered 0 (or a release answered -1) received
//!   before that; an **overlap** is a grant received while the other
//!   client's lease runs and it has not sent its release; a **token
//!   regression** is a grant whose fencing token is not above every token
//!   granted before for that name.
//!
//! Afterwards every acknowledged key is read back (exact value), every node
//! is scanned for keys in slots it does not own, and the masters' `DBSIZE`s
//! must add up to the acknowledged keys plus the lock keys that still exist
//! (plus the unacknowledged writes found present). Slot moves are the
//! difference of the slot tables before and after each step; on the ring
//! (`auto`) they are also compared with the rings computed over the masters'
//! shard ids. The node logs and `redis-cli` outputs are copied to `--logs`.
//!
//! ```text
//! bench/cluster-harness.sh grow_checker
//! bench/cluster-harness.sh grow_checker --modes auto --ops-per-sec 5000 --locks 32
//! ```
//!
//! Exits 1 if any mode had a wrong read, a lost key, a lost lock, an
//! overlap, a token regression, a stray key, a `DBSIZE` mismatch, a bus
//! frame refused for its flag bits, a slot moved against the ring (`auto`)
//! or more than 1.1x the fair share moved on the grow (or did not finish).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use rand::{RngExt, SeedableRng};
use ringkv_bench::cluster::{info_field, poll, Cluster, Server, Settings, Spawned};
use ringkv_bench::resp::{slot_table, ClusterClient, Redirects, Reply, Resp, RunError, SLOTS};
use ringkv_server::cluster::{Ring, RingConfig};
use ringkv_server::keyspace::key_slot;

/// A cluster grows from three masters to four and back under a checking load.
#[derive(Debug, Clone, Parser)]
struct Options {
    /// Modes, in order: `redis-cli`, `auto`.
    #[arg(long, value_delimiter = ',', default_value = "redis-cli,auto")]
    modes: Vec<String>,
    /// Key operations per second, all key threads together (paced).
    #[arg(long, default_value_t = 3000)]
    ops_per_sec: u64,
    /// Key threads (each writes its own keys and reads everyone's).
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Share of key operations that write a new key (the rest read).
    #[arg(long, default_value_t = 0.5)]
    write_share: f64,
    /// Locks, each wanted by two clients.
    #[arg(long, default_value_t = 16)]
    locks: usize,
    /// Lease of a lock grant or extension, ms.
    #[arg(long, default_value_t = 3000)]
    lock_ttl_ms: u64,
    /// Time between a holder's extensions, ms.
    #[arg(long, default_value_t = 500)]
    extend_every_ms: u64,
    /// Shortest hold of a lock, ms.
    #[arg(long, default_value_t = 100)]
    hold_min_ms: u64,
    /// Longest hold of a lock, ms.
    #[arg(long, default_value_t = 2500)]
    hold_max_ms: u64,
    /// `WAIT` of a `LOCK.ACQUIRE`, ms.
    #[arg(long, default_value_t = 1000)]
    lock_wait_ms: u64,
    /// Seconds of load on three masters before the cluster grows.
    #[arg(long, default_value_t = 3)]
    seconds_before: u64,
    /// Seconds of load on four masters, between the grow and the shrink.
    #[arg(long, default_value_t = 5)]
    seconds_between: u64,
    /// Seconds of load on three masters again after the shrink.
    #[arg(long, default_value_t = 3)]
    seconds_after: u64,
    /// `cluster-node-timeout`, ms.
    #[arg(long, default_value_t = 2000)]
    node_timeout: u64,
    /// `auto`: `cluster-rebalance-max-slots` (slots per rebalancing round)
    /// set on every master; the server's default if unset.
    #[arg(long)]
    rebalance_max_slots: Option<u64>,
    /// Longest a grow or a shrink (and the cluster's creation) may take, s.
    #[arg(long, default_value_t = 300)]
    phase_timeout_secs: u64,
    /// The `ringkv-server` to run (the workspace's release build if unset).
    #[arg(long)]
    ringkv_binary: Option<PathBuf>,
    /// Where each cluster's files go (a fresh subdirectory, removed after).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Where the node logs and redis-cli outputs of each mode are copied
    /// (`<logs>/<mode>-<unix time>/`), kept after the run.
    #[arg(long, default_value = "target/grow_checker-logs")]
    logs: PathBuf,
}

/// Masters before and after.
const MASTERS: usize = 3;
/// The fair share of a fourth master.
const FAIR: f64 = SLOTS as f64 / 4.0;
/// Read timeout of the checker's connections (a blocked `LOCK.ACQUIRE`
/// included).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Taken off a lease as the client reckons it (the server's clock may round
/// its lease down a little).
const LEASE_SLACK: Duration = Duration::from_millis(10);
/// Commands per pipelined batch when verifying.
const BATCH: usize = 1000;

/// The steps of a run, in order; the checker tags what it sees with the step.
const PHASES: [&str; 7] = [
    "3 masters",
    "grow",
    "4 masters",
    "shrink",
    "3 masters again",
    "stopping",
    "verify",
];
const GROW: usize = 1;
const SHRINK: usize = 3;

/// How the cluster grows and shrinks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    RedisCli,
    Auto,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::RedisCli => "redis-cli",
            Mode::Auto => "auto",
        }
    }
}

// ---------------------------------------------------------------------------
// What the checker shares and records.

/// Something the checker saw worth showing.
#[derive(Debug, Clone)]
struct Event {
    /// Seconds since the checker started.
    at: f64,
    /// `at` as UTC wall-clock time, to find it in the node logs.
    wall: String,
    phase: &'static str,
    kind: &'static str,
    text: String,
}

/// An acknowledged key.
#[derive(Debug, Clone, Copy)]
struct Acked {
    thread: u16,
    n: u32,
    /// When it was acknowledged: ms since the checker started, and the phase.
    at_ms: u32,
    phase: u8,
}

/// State shared by the checker's threads and the driver.
struct Shared {
    clock: Instant,
    wall: SystemTime,
    phase: AtomicUsize,
    /// When each phase started (seconds since the start; infinite: not yet).
    starts: Mutex<[f64; PHASES.len()]>,
    stop_keys: AtomicBool,
    stop_locks: AtomicBool,
    /// Every acknowledged key, for the reads.
    acked: Mutex<Vec<Acked>>,
    events: Mutex<Vec<Event>>,
    seeds: Vec<u16>,
}

impl Shared {
    fn phase(&self) -> usize {
        self.phase.load(Ordering::Relaxed)
    }

    fn set_phase(&self, phase: usize) {
        self.starts.lock().expect("starts")[phase] = self.now();
        self.phase.store(phase, Ordering::Relaxed);
        eprintln!("  {:>7.2} s  {}", self.now(), PHASES[phase]);
    }

    /// The phase that ran at `at` (seconds since the start).
    fn phase_at(&self, at: f64) -> usize {
        let starts = self.starts.lock().expect("starts");
        (0..PHASES.len())
            .rev()
            .find(|&p| starts[p] <= at)
            .unwrap_or(0)
    }

    fn now(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    /// Records an event; `keep` caps how many of this kind are kept (all
    /// are counted by the caller).
    fn event(&self, kind: &'static str, keep: usize, text: String) {
        self.event_at(kind, keep, self.now(), text);
    }

    /// Records an event that happened at `at` (seconds since the start).
    fn event_at(&self, kind: &'static str, keep: usize, at: f64, text: String) {
        let mut events = self.events.lock().expect("events");
        if events.iter().filter(|e| e.kind == kind).count() < keep {
            events.push(Event {
                at,
                wall: self.wall_clock(at),
                phase: PHASES[self.phase_at(at)],
                kind,
                text,
            });
        }
    }

    /// `hh:mm:ss.mmm` UTC of `at` seconds after the start (to find the
    /// moment in the node logs).
    fn wall_clock(&self, at: f64) -> String {
        let t = self.wall + Duration::from_secs_f64(at);
        let ms = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let day_ms = ms % 86_400_000;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            day_ms / 3_600_000,
            day_ms / 60_000 % 60,
            day_ms / 1000 % 60,
            day_ms % 1000
        )
    }
}

/// The key of thread `thread`'s write number `n`.
fn key_name(thread: u16, n: u32) -> String {
    format!("chk:{thread}:{n}")
}

/// The value a key is written with: derived from the key alone.
fn value_of(key: &str) -> Vec<u8> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{key}={hash:016x}").into_bytes()
}

/// Short text of a reply or a failure.
fn show(reply: &Result<Reply, RunError>) -> String {
    match reply {
        Ok(Reply::Bulk(Some(v))) => format!("{:?}", String::from_utf8_lossy(v)),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------------------
// Key threads.

/// One key thread's counts.
#[derive(Debug, Default, Clone)]
struct KeyStats {
    acked: u64,
    reads: u64,
    wrong_reads: u64,
    /// Failed attempts (each retried up to three times).
    errors: u64,
    /// Writes never acknowledged (their outcome unknown, or refused): they
    /// may exist.
    unknown: Vec<(u16, u32)>,
    /// Of those, the ones only refused (an error reply each time).
    refused: u64,
    ops: [u64; PHASES.len()],
    slowest: [Duration; PHASES.len()],
    redirects: Redirects,
}

impl KeyStats {
    fn add(&mut self, other: &KeyStats) {
        self.acked += other.acked;
        self.reads += other.reads;
        self.wrong_reads += other.wrong_reads;
        self.errors += other.errors;
        self.unknown.extend(&other.unknown);
        self.refused += other.refused;
        for p in 0..PHASES.len() {
            self.ops[p] += other.ops[p];
            self.slowest[p] = self.slowest[p].max(other.slowest[p]);
        }
        self.redirects.moved += other.redirects.moved;
        self.redirects.asked += other.redirects.asked;
        self.redirects.retried += other.redirects.retried;
        self.redirects.clusterdown += other.redirects.clusterdown;
        self.redirects.refreshed += other.redirects.refreshed;
    }
}

/// Key thread `thread`: paced at `rate` operations per second until told to
/// stop.
fn key_thread(
    thread: u16,
    rate: f64,
    write_share: f64,
    shared: Arc<Shared>,
) -> Result<KeyStats, String> {
    let mut client = ClusterClient::with_seeds(&shared.seeds, CLIENT_TIMEOUT)?;
    client.max_attempts = 1000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(thread) + 1);
    let mut stats = KeyStats::default();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut next = Instant::now();
    let mut n: u32 = 0;
    while !shared.stop_keys.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_millis(100) {
            next = now;
        }
        next += interval;
        let phase = shared.phase();
        let pick = {
            let acked = shared.acked.lock().expect("acked");
            (!acked.is_empty() && !rng.random_bool(write_share))
                .then(|| acked[rng.random_range(0..acked.len())])
        };
        let started = Instant::now();
        match pick {
            None => {
                let key = key_name(thread, n);
                let value = value_of(&key);
                let slot = key_slot(key.as_bytes());
                let mut unknown = false;
                let mut done = false;
                for attempt in 0..3 {
                    let reply = client.run(slot, &[b"SET", key.as_bytes(), &value]);
                    match &reply {
                        Ok(Reply::Status(s)) if s == "OK" => {
                            done = true;
                            break;
                        }
                        Err(RunError::Unknown(_)) => unknown = true,
                        _ => {}
                    }
                    stats.errors += 1;
                    shared.event(
                        "error",
                        50,
                        format!(
                            "SET {key} (slot {slot}, attempt {attempt}): {}",
                            show(&reply)
                        ),
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                if done {
                    stats.acked += 1;
                    let at_ms = shared.clock.elapsed().as_millis() as u32;
                    shared.acked.lock().expect("acked").push(Acked {
                        thread,
                        n,
                        at_ms,
                        phase: phase as u8,
                    });
                } else {
                    // Checked at the end: absent, or present with its value.
                    stats.refused += u64::from(!unknown);
                    stats.unknown.push((thread, n));
                }
                n += 1;
            }
            Some(acked) => {
                let key = key_name(acked.thread, acked.n);
                let slot = key_slot(key.as_bytes());
                let expected = value_of(&key);
                for attempt in 0..3 {
                    let sent = shared.now();
                    let reply = client.run(slot, &[b"GET", key.as_bytes()]);
                    match &reply {
                        Ok(Reply::Bulk(value)) => {
                            stats.reads += 1;
                            if value.as_deref() != Some(&expected[..]) {
                                stats.wrong_reads += 1;
                                let read = Read {
                                    key: &key,
                                    slot,
                                    acked,
                                    sent,
                                    received: shared.now(),
                                };
                                wrong_read(&shared, &mut client, read, &reply);
                            }
                            break;
                        }
                        _ => {
                            stats.errors += 1;
                            shared.event(
                                "error",
                                50,
                                format!(
                                    "GET {key} (slot {slot}, attempt {attempt}): {}",
                                    show(&reply)
                                ),
                            );
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            }
        }
        let took = started.elapsed();
        stats.ops[phase] += 1;
        stats.slowest[phase] = stats.slowest[phase].max(took);
    }
    stats.redirects = client.redirects;
    retried_events(&shared, &client);
    Ok(stats)
}

/// A read that came back wrong.
struct Read<'a> {
    key: &'a str,
    slot: u16,
    acked: Acked,
    /// When it was sent and answered (seconds since the start).
    sent: f64,
    received: f64,
}

/// Records the `-TRYAGAIN` / `-CLUSTERDOWN` answers `client` kept as
/// events (at most 20 of each kind in all).
fn retried_events(shared: &Shared, client: &ClusterClient) {
    for (at, port, text) in &client.retried_replies {
        let kind = match text.starts_with("CLUSTERDOWN") {
            true => "CLUSTERDOWN answer",
            false => "TRYAGAIN answer",
        };
        let at = at.saturating_duration_since(shared.clock).as_secs_f64();
        shared.event_at(kind, 20, at, format!("port {port}: -{text}"));
    }
}

/// Records a wrong read, with what the key's owner answers right after and
/// the atomic migration job of its slot on the node that answered.
fn wrong_read(
    shared: &Shared,
    client: &mut ClusterClient,
    read: Read<'_>,
    reply: &Result<Reply, RunError>,
) {
    let Read { key, slot, .. } = read;
    let port = client.owner(slot);
    let mut again = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(100));
        let reply = client.run(slot, &[b"GET", key.as_bytes()]);
        again.push(format!("{} from {}", show(&reply), client.owner(slot)));
    }
    shared.event_at(
        "wrong read",
        1000,
        read.received,
        format!(
            "GET {key} (slot {slot}, acknowledged at {:.3} s in '{}') sent at {:.4} s ({} UTC), \
             answered at {:.4} s ({} UTC) by port {port}: {}; read again every 100 ms: {}; \
             port {port}'s migration job of the slot: {}",
            f64::from(read.acked.at_ms) / 1000.0,
            PHASES[usize::from(read.acked.phase)],
            read.sent,
            shared.wall_clock(read.sent),
            read.received,
            shared.wall_clock(read.received),
            show(reply),
            again.join(", "),
            job_of(port, slot)
        ),
    );
}

/// The atomic migration job on `port` that moved `slot` (from `CLUSTER
/// GETSLOTMIGRATIONS`): its number among the node's jobs, in order, and its
/// fields.
fn job_of(port: u16, slot: u16) -> String {
    let Ok(Reply::Array(Some(jobs))) = Resp::connect(port, Duration::from_secs(5))
        .and_then(|mut c| c.call(&["CLUSTER", "GETSLOTMIGRATIONS"]))
    else {
        return "(no answer)".into();
    };
    let text = |r: &Reply| match r {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Reply::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    for (n, job) in jobs.iter().enumerate() {
        let Reply::Array(Some(fields)) = job else {
            continue;
        };
        let fields: Vec<(String, String)> = fields
            .chunks(2)
            .filter(|p| p.len() == 2)
            .map(|p| (text(&p[0]), text(&p[1])))
            .collect();
        let covers = fields.iter().any(|(k, v)| {
            k == "slot_ranges"
                && v.split_whitespace().any(|r| {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
                })
        });
        if covers {
            let shown: Vec<String> = fields
                .iter()
                .filter(|(k, _)| k != "slot_ranges")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            return format!("job {} of {}: {}", n + 1, jobs.len(), shown.join(" "));
        }
    }
    format!("none of its {} jobs", jobs.len())
}

// ---------------------------------------------------------------------------
// Lock clients.

/// What the checker knows of one client's hold of a lock.
#[derive(Debug, Clone, Copy)]
struct Hold {
    holding: bool,
    /// Until when its lease surely runs (send time of the last successful
    /// acquire or extend, plus the TTL, less the slack).
    lease: Instant,
    /// When it sent its release.
    release_sent: Option<Instant>,
}

/// One lock's record.
#[derive(Debug)]
struct LockRecord {
    holds: [Hold; 2],
    /// The highest fencing token granted so far.
    top_token: Option<i64>,
}

/// One lock client's counts.
#[derive(Debug, Default, Clone)]
struct LockStats {
    grants: u64,
    extends: u64,
    releases: u64,
    not_acquired: u64,
    lost: u64,
    overlaps: u64,
    regressions: u64,
    /// Leases that ran out (by the client's clock) before an extend got
    /// through: not a violation, a slow extend.
    ran_out: u64,
    errors: u64,
    /// Acquires of unknown outcome (cleaned up with a release).
    unknown: u64,
    redirects: Redirects,
}

impl LockStats {
    fn add(&mut self, o: &LockStats) {
        self.grants += o.grants;
        self.extends += o.extends;
        self.releases += o.releases;
        self.not_acquired += o.not_acquired;
        self.lost += o.lost;
        self.overlaps += o.overlaps;
        self.regressions += o.regressions;
        self.ran_out += o.ran_out;
        self.errors += o.errors;
        self.unknown += o.unknown;
        self.redirects.moved += o.redirects.moved;
        self.redirects.asked += o.redirects.asked;
        self.redirects.retried += o.redirects.retried;
        self.redirects.clusterdown += o.redirects.clusterdown;
        self.redirects.refreshed += o.redirects.refreshed;
    }
}

/// A lock client's settings.
#[derive(Debug, Clone)]
struct LockPlan {
    name: String,
    slot: u16,
    /// 0 or 1: which of the lock's two clients.
    client: usize,
    ttl: Duration,
    extend_every: Duration,
    hold: (u64, u64),
    wait_ms: u64,
}

/// What `LOCK.INFO` says now (for a report).
fn lock_info(client: &mut ClusterClient, plan: &LockPlan) -> String {
    let reply = client.run(plan.slot, &[b"LOCK.INFO", plan.name.as_bytes()]);
    let text = |r: &Reply| match r {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Reply::Status(s) => s.clone(),
        Reply::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    match reply {
        Ok(Reply::Array(Some(fields))) => fields
            .chunks(2)
            .map(|p| p.iter().map(text).collect::<Vec<_>>().join("="))
            .collect::<Vec<_>>()
            .join(" "),
        other => show(&other),
    }
}

/// One of a lock's two clients: acquire, hold (extending), release, again,
/// until told to stop.
fn lock_client(
    plan: LockPlan,
    record: Arc<Mutex<LockRecord>>,
    shared: Arc<Shared>,
) -> Result<LockStats, String> {
    let mut client = ClusterClient::with_seeds(&shared.seeds, CLIENT_TIMEOUT)?;
    client.max_attempts = 1000;
    let me = plan.client;
    let owner = format!("{}-client{me}", plan.name);
    let ttl_ms = plan.ttl.as_millis().to_string();
    let wait_ms = plan.wait_ms.to_string();
    let name = plan.name.as_bytes();
    let mut stats = LockStats::default();
    let mut rng = rand::rng();
    let set_hold = |hold: Hold| record.lock().expect("record").holds[me] = hold;
    let not_holding = Hold {
        holding: false,
        lease: Instant::now(),
        release_sent: None,
    };
    while !shared.stop_locks.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let reply = client.run(
            plan.slot,
            &[
                b"LOCK.ACQUIRE",
                name,
                owner.as_bytes(),
                ttl_ms.as_bytes(),
                b"WAIT",
                wait_ms.as_bytes(),
            ],
        );
        let received = Instant::now();
        let token = match reply {
            Ok(Reply::Int(token)) => token,
            Ok(Reply::Bulk(None)) | Ok(Reply::Array(None)) => {
                stats.not_acquired += 1;
                std::thread::sleep(Duration::from_millis(rng.random_range(0..50)));
                continue;
            }
            Err(RunError::Unknown(e)) => {
                // It may hold the lock now: give it back (not counted).
                stats.unknown += 1;
                stats.errors += 1;
                shared.event("error", 50, format!("LOCK.ACQUIRE {}: {e}", plan.name));
                let _ = client.run(plan.slot, &[b"LOCK.RELEASE", name, owner.as_bytes()]);
                continue;
            }
            other => {
                stats.errors += 1;
                shared.event(
                    "error",
                    50,
                    format!("LOCK.ACQUIRE {}: {}", plan.name, show(&other)),
                );
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        stats.grants += 1;
        let mut lease = sent + plan.ttl - LEASE_SLACK;
        {
            let mut rec = record.lock().expect("record");
            let other = rec.holds[1 - me];
            if other.holding && other.release_sent.is_none() && received < other.lease {
                stats.overlaps += 1;
                shared.event(
                    "overlap",
                    1000,
                    format!(
                        "{} granted to client {me} (token {token}, port {}) while client {} \
                         still held it for at least {:.0} ms more",
                        plan.name,
                        client.owner(plan.slot),
                        1 - me,
                        (other.lease - received).as_secs_f64() * 1000.0
                    ),
                );
            }
            if let Some(top) = rec.top_token.filter(|&top| token <= top) {
                stats.regressions += 1;
                shared.event(
                    "token regression",
                    1000,
                    format!(
                        "{} granted to client {me} with token {token} (port {}), not above \
                         {top} granted before",
                        plan.name,
                        client.owner(plan.slot)
                    ),
                );
            }
            rec.top_token = Some(rec.top_token.map_or(token, |t| t.max(token)));
            rec.holds[me] = Hold {
                holding: true,
                lease,
                release_sent: None,
            };
        }
        // Hold, extending, until the hold time is up.
        let until = received + Duration::from_millis(rng.random_range(plan.hold.0..=plan.hold.1));
        let mut next_extend = sent + plan.extend_every;
        let mut still_held = true;
        loop {
            let now = Instant::now();
            let wake = next_extend.min(until);
            if wake > now {
                std::thread::sleep(wake - now);
            }
            let now = Instant::now();
            if now >= until || shared.stop_locks.load(Ordering::Relaxed) {
                break;
            }
            if now < next_extend {
                continue;
            }
            let sent = Instant::now();
            let reply = client.run(
                plan.slot,
                &[b"LOCK.EXTEND", name, owner.as_bytes(), ttl_ms.as_bytes()],
            );
            let received = Instant::now();
            match reply {
                Ok(Reply::Int(1)) => {
                    stats.extends += 1;
                    lease = sent + plan.ttl - LEASE_SLACK;
                    record.lock().expect("record").holds[me].lease = lease;
                    next_extend = sent + plan.extend_every;
                }
                Ok(Reply::Int(0)) => {
                    if received < lease {
                        stats.lost += 1;
                        let info = lock_info(&mut client, &plan);
                        shared.event(
                            "lost lock",
                            1000,
                            format!(
                                "LOCK.EXTEND {} by client {me} answered 0 (port {}) with {:.0} \
                                 ms of its lease left; LOCK.INFO now: {info}",
                                plan.name,
                                client.owner(plan.slot),
                                (lease - received).as_secs_f64() * 1000.0
                            ),
                        );
                    } else {
                        stats.ran_out += 1;
                    }
                    set_hold(not_holding);
                    still_held = false;
                    break;
                }
                other => {
                    stats.errors += 1;
                    shared.event(
                        "error",
                        50,
                        format!("LOCK.EXTEND {}: {}", plan.name, show(&other)),
                    );
                    if Instant::now() >= lease {
                        // Never confirmed in time: the lease may have run out.
                        stats.ran_out += 1;
                        set_hold(not_holding);
                        let _ = client.run(plan.slot, &[b"LOCK.RELEASE", name, owner.as_bytes()]);
                        still_held = false;
                        break;
                    }
                    next_extend = Instant::now() + Duration::from_millis(50);
                }
            }
        }
        if still_held {
            let sent = Instant::now();
            record.lock().expect("record").holds[me].release_sent = Some(sent);
            let mut reply = client.run(plan.slot, &[b"LOCK.RELEASE", name, owner.as_bytes()]);
            let mut received = Instant::now();
            let mut retried = false;
            if let Err(RunError::Unknown(_)) = reply {
                // Perhaps released already: -1 is no loss then.
                retried = true;
                stats.errors += 1;
                reply = client.run(plan.slot, &[b"LOCK.RELEASE", name, owner.as_bytes()]);
                received = Instant::now();
            }
            match reply {
                Ok(Reply::Int(0)) => stats.releases += 1,
                Ok(Reply::Int(-1)) if !retried && received < lease => {
                    stats.lost += 1;
                    let info = lock_info(&mut client, &plan);
                    shared.event(
                        "lost lock",
                        1000,
                        format!(
                            "LOCK.RELEASE {} by client {me} answered -1 (port {}) with {:.0} ms \
                             of its lease left; LOCK.INFO now: {info}",
                            plan.name,
                            client.owner(plan.slot),
                            (lease - received).as_secs_f64() * 1000.0
                        ),
                    );
                }
                Ok(Reply::Int(-1)) => stats.ran_out += u64::from(!retried),
                other => {
                    stats.errors += 1;
                    shared.event(
                        "error",
                        50,
                        format!("LOCK.RELEASE {}: {}", plan.name, show(&other)),
                    );
                }
            }
            set_hold(not_holding);
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
    }
    stats.redirects = client.redirects;
    retried_events(&shared, &client);
    Ok(stats)
}

/// `count` lock names, one in each `1/count` of the slot space.
fn lock_names(count: usize) -> Vec<(String, u16)> {
    (0..count)
        .map(|i| {
            let (low, high) = (i * SLOTS / count, (i + 1) * SLOTS / count);
            (0u32..)
                .map(|n| format!("glock:{i}:{n}"))
                .map(|name| {
                    let slot = key_slot(name.as_bytes());
                    (name, slot)
                })
                .find(|(_, slot)| (low..high).contains(&usize::from(*slot)))
                .expect("some name lands in every range")
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The cluster.

/// Each slot's owner (node id), as one node sees it.
type Table = Vec<Option<String>>;

fn table_of(cluster: &mut Cluster, i: usize) -> Option<Table> {
    let nodes = cluster.nodes(i)?;
    let mut table = vec![None; SLOTS];
    for node in nodes.iter().filter(|n| n.has("master")) {
        for &(a, b) in &node.slots {
            for slot in a..=b {
                table[usize::from(slot)] = Some(node.id.clone());
            }
        }
    }
    Some(table)
}

/// The table every node of `nodes` has, if they all have the same.
fn agreed_table(cluster: &mut Cluster, nodes: &[usize]) -> Option<Table> {
    let first = table_of(cluster, nodes[0])?;
    for &i in &nodes[1..] {
        if table_of(cluster, i)? != first {
            return None;
        }
    }
    Some(first)
}

/// Slots of `table` owned by `id`.
fn owned(table: &Table, id: &str) -> usize {
    table.iter().filter(|o| o.as_deref() == Some(id)).count()
}

/// Writes `table` as `<id> <ranges>` lines to `<dir>/slots-<name>.log`
/// (copied out with the node logs).
fn save_table(dir: &Path, name: &str, table: &Table) {
    let mut ranges: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut start = 0;
    for slot in 1..=SLOTS {
        if slot == SLOTS || table[slot] != table[start] {
            let owner = table[start].as_deref().unwrap_or("-");
            ranges
                .entry(owner)
                .or_default()
                .push(match slot - 1 == start {
                    true => start.to_string(),
                    false => format!("{start}-{}", slot - 1),
                });
            start = slot;
        }
    }
    let text: String = ranges
        .iter()
        .map(|(owner, r)| format!("{owner} {}\n", r.join(" ")))
        .collect();
    let _ = std::fs::write(dir.join(format!("slots-{name}.log")), text);
}

/// The masters owning slots in `table`.
fn members(table: &Table) -> Vec<String> {
    let mut ids: Vec<String> = table.iter().flatten().cloned().collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Slots whose owner differs.
fn changed(a: &Table, b: &Table) -> Vec<u16> {
    (0..SLOTS)
        .filter(|&s| a[s] != b[s])
        .map(|s| s as u16)
        .collect()
}

/// Field `field` of node `i`'s `INFO cluster`.
fn info_cluster(cluster: &mut Cluster, i: usize, field: &str) -> Option<String> {
    let info = cluster.text(i, &["INFO", "cluster"])?;
    info_field(&info, field).map(str::to_string)
}

/// No node of `nodes` is rebalancing (`cluster_ring_rebalancing:0`).
fn none_rebalancing(cluster: &mut Cluster, nodes: &[usize]) -> bool {
    nodes
        .iter()
        .all(|&i| info_cluster(cluster, i, "cluster_ring_rebalancing").as_deref() == Some("0"))
}

/// The slot table the ring gives the masters `ids` (node ids): the ring
/// is over their shard ids.
fn ring_table(shards: &BTreeMap<String, String>, ids: &[String]) -> Table {
    let members: Vec<&String> = shards
        .iter()
        .filter(|(_, id)| ids.contains(id))
        .map(|(shard, _)| shard)
        .collect();
    let ring = Ring::build(&members, 0, &RingConfig::default());
    (0..SLOTS as u16)
        .map(|s| ring.owner(s).and_then(|shard| shards.get(shard)).cloned())
        .collect()
}

/// Runs `redis-cli args...`, its output going to `<dir>/redis-cli-<step>.log`;
/// killed after `limit`. Returns its output.
fn redis_cli(dir: &Path, step: &str, args: &[String], limit: Duration) -> Result<String, String> {
    let log_path = dir.join(format!("redis-cli-{step}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cli = Spawned::start(
        Command::new("redis-cli")
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log),
    )
    .map_err(|e| format!("redis-cli: {e}"))?;
    let exited = poll(Instant::now(), limit, || {
        cli.child()
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    });
    let text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail = || {
        let text = text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    if exited.is_none() {
        cli.kill();
        return Err(format!(
            "redis-cli {} did not finish within {limit:?}:\n{}",
            args.join(" "),
            tail()
        ));
    }
    let status = cli.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("redis-cli {} failed:\n{}", args.join(" "), tail()));
    }
    Ok(text())
}

/// Waits until `redis-cli --cluster check` on `port` says all nodes agree.
fn wait_check_agrees(port: u16, limit: Duration) -> Result<f64, String> {
    let mut last = String::new();
    poll(Instant::now(), limit, || {
        std::thread::sleep(Duration::from_millis(200));
        let out = Command::new("redis-cli")
            .args(["--cluster", "check", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .output();
        last = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        last.contains("[OK] All nodes agree about slots configuration.")
            && !last.contains("[WARNING]")
    })
    .ok_or_else(|| format!("redis-cli --cluster check never agreed:\n{last}"))
}

/// `CLUSTER MYID` of node `i`.
fn my_id(cluster: &mut Cluster, i: usize) -> Result<String, String> {
    cluster
        .text(i, &["CLUSTER", "MYID"])
        .ok_or_else(|| format!("node {i}: no CLUSTER MYID"))
}

/// `CLUSTER MYSHARDID` of node `i`.
fn my_shard(cluster: &mut Cluster, i: usize) -> Result<String, String> {
    cluster
        .text(i, &["CLUSTER", "MYSHARDID"])
        .ok_or_else(|| format!("node {i}: no CLUSTER MYSHARDID"))
}

/// Runs `args` on node `i`; an error unless it answered without an error.
fn admin(cluster: &mut Cluster, i: usize, args: &[&str]) -> Result<redis::Value, String> {
    match cluster.call(i, args) {
        Some(Ok(v)) => Ok(v),
        other => Err(format!("node {i}: {}: {other:?}", args.join(" "))),
    }
}

/// Polls `done` every 100 ms until it holds; the seconds it took, or an
/// error after `limit`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<f64, String> {
    poll(Instant::now(), limit, || {
        std::thread::sleep(Duration::from_millis(80));
        done()
    })
    .ok_or_else(|| format!("{what}: not within {limit:?}"))
}

/// A short state of every running node (for errors).
fn state_of(cluster: &mut Cluster) -> String {
    let mut text = String::new();
    for i in 0..cluster.len() {
        if !cluster.is_running(i) {
            continue;
        }
        let nodes = cluster.text(i, &["CLUSTER", "NODES"]).unwrap_or_default();
        let status = cluster
            .call(i, &["CLUSTER", "RING", "STATUS"])
            .map(|r| format!("{r:?}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "node {i} (port {}): ring status {status}\n{nodes}\n",
            cluster.ports[i]
        ));
    }
    text
}

// ---------------------------------------------------------------------------
// One mode.

/// What a mode measured.
#[derive(Debug, Default)]
struct Report {
    keys: KeyStats,
    locks: LockStats,
    lock_count: usize,
    /// Keys acknowledged but missing or wrong at the end.
    lost_keys: u64,
    /// Unacknowledged writes found present (value checked).
    unknown_present: u64,
    unknown_wrong: u64,
    /// Lock keys still there at the end.
    lock_keys: u64,
    dbsize: i64,
    expected_dbsize: i64,
    /// Keys held by a node in a slot it does not own.
    stray: u64,
    grow_to_new: usize,
    grow_changed: usize,
    shrink_changed: usize,
    /// Auto: table slots that changed owner although their ring owner did
    /// not, and ring owner changes the table did not follow.
    grow_not_ring: Option<(usize, usize)>,
    shrink_not_ring: Option<(usize, usize)>,
    /// The table is the ring's (auto), or back to how it was (both), after
    /// the shrink.
    back_to_start: bool,
    locks_moved_grow: usize,
    locks_moved_shrink: usize,
    seconds: [f64; PHASES.len()],
    create_secs: f64,
    grow_secs: f64,
    shrink_secs: f64,
    /// A step that did not complete.
    failure: Option<String>,
    /// What the monitor saw.
    watched: Watched,
    /// Node log lines of bus links closed over flag bits the reader did not
    /// know: a node refusing its peers' frames (a violation).
    bad_flag_closes: usize,
}

impl Report {
    fn violations(&self) -> u64 {
        self.keys.wrong_reads
            + self.lost_keys
            + self.unknown_wrong
            + self.locks.lost
            + self.locks.overlaps
            + self.locks.regressions
            + self.stray
            + u64::from(self.dbsize != self.expected_dbsize)
            + self.bad_flag_closes as u64
            + [self.grow_not_ring, self.shrink_not_ring]
                .iter()
                .flatten()
                .map(|(moved, missed)| (moved + missed) as u64)
                .sum::<u64>()
            + u64::from(self.grow_changed as f64 > 1.1 * FAIR)
    }
}

/// Makes the three-master cluster.
fn create(cluster: &mut Cluster, mode: Mode, limit: Duration) -> Result<(), String> {
    let three: Vec<usize> = (0..MASTERS).collect();
    match mode {
        Mode::RedisCli => {
            let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
            args.extend(
                three
                    .iter()
                    .map(|&i| format!("127.0.0.1:{}", cluster.ports[i])),
            );
            args.push("--cluster-yes".into());
            redis_cli(&cluster.dir.clone(), "create", &args, limit)?;
        }
        Mode::Auto => {
            for i in 1..MASTERS {
                let port = cluster.ports[i].to_string();
                admin(cluster, 0, &["CLUSTER", "MEET", "127.0.0.1", &port])?;
            }
            wait_for("every node knows three", limit, || {
                three
                    .iter()
                    .all(|&i| cluster.info_field(i, "cluster_known_nodes").as_deref() == Some("3"))
            })?;
            admin(cluster, 0, &["CLUSTER", "RING", "ASSIGN"])?;
        }
    }
    wait_for("the three masters agree and are ok", limit, || {
        cluster.all_state(&three, "ok")
            && agreed_table(cluster, &three).is_some_and(|t| {
                t.iter().all(Option::is_some) && {
                    let mut ids: Vec<&String> = t.iter().flatten().collect();
                    ids.sort();
                    ids.dedup();
                    ids.len() == MASTERS
                }
            })
    })
    .map_err(|e| format!("{e}\n{}", cluster.describe()))?;
    Ok(())
}

/// Adds node 3 and waits until it has its share; the table before and after.
fn grow(
    cluster: &mut Cluster,
    mode: Mode,
    limit: Duration,
    max_slots: Option<u64>,
) -> Result<(Table, Table), String> {
    let three: Vec<usize> = (0..MASTERS).collect();
    let four: Vec<usize> = (0..=MASTERS).collect();
    let before = agreed_table(cluster, &three).ok_or("the masters disagree before the grow")?;
    cluster.launch(MASTERS).map_err(|e| e.to_string())?;
    let new_id = my_id(cluster, MASTERS)?;
    let p0 = format!("127.0.0.1:{}", cluster.ports[0]);
    let p3 = format!("127.0.0.1:{}", cluster.ports[MASTERS]);
    let dir = cluster.dir.clone();
    match mode {
        Mode::RedisCli => {
            let args = ["--cluster", "add-node", &p3, &p0].map(String::from);
            redis_cli(&dir, "add-node", &args, limit)?;
            wait_check_agrees(cluster.ports[0], limit)?;
            let args =
                ["--cluster", "rebalance", &p0, "--cluster-use-empty-masters"].map(String::from);
            redis_cli(&dir, "rebalance-grow", &args, limit)?;
        }
        Mode::Auto => {
            for &i in &four {
                admin(
                    cluster,
                    i,
                    &["CONFIG", "SET", "cluster-auto-rebalance", "yes"],
                )?;
                if let Some(max) = max_slots {
                    let max = max.to_string();
                    admin(
                        cluster,
                        i,
                        &["CONFIG", "SET", "cluster-rebalance-max-slots", &max],
                    )?;
                }
            }
            let port = cluster.ports[MASTERS].to_string();
            admin(cluster, 0, &["CLUSTER", "MEET", "127.0.0.1", &port])?;
        }
    }
    let after = settled(
        cluster,
        mode,
        limit,
        "the new master has its share and every node agrees",
        &four,
        |table| owned(table, &new_id) > 0,
    )?;
    Ok((before, after))
}

/// Waits until the four nodes agree on a full table that passes `done`,
/// the nodes `serving` say `cluster_state:ok` and (on the ring) nothing is
/// rebalancing; that table.
fn settled(
    cluster: &mut Cluster,
    mode: Mode,
    limit: Duration,
    what: &str,
    serving: &[usize],
    done: impl Fn(&Table) -> bool,
) -> Result<Table, String> {
    let four: Vec<usize> = (0..=MASTERS).collect();
    let mut after = None;
    wait_for(what, limit, || {
        let Some(table) = agreed_table(cluster, &four) else {
            return false;
        };
        let settled = done(&table)
            && table.iter().all(Option::is_some)
            && cluster.all_state(serving, "ok")
            && (mode == Mode::RedisCli || none_rebalancing(cluster, &four));
        if settled {
            after = Some(table);
        }
        settled
    })
    .map_err(|e| format!("{e}\n{}", state_of(cluster)))?;
    Ok(after.expect("set when settled"))
}

/// Removes node 3 (its slots move to the others), then stops it; the table
/// before and after.
fn shrink(cluster: &mut Cluster, mode: Mode, limit: Duration) -> Result<(Table, Table), String> {
    let three: Vec<usize> = (0..MASTERS).collect();
    let four: Vec<usize> = (0..=MASTERS).collect();
    let before = agreed_table(cluster, &four).ok_or("the nodes disagree before the shrink")?;
    let id = my_id(cluster, MASTERS)?;
    let p0 = format!("127.0.0.1:{}", cluster.ports[0]);
    let dir = cluster.dir.clone();
    match mode {
        Mode::RedisCli => {
            wait_check_agrees(cluster.ports[0], limit)?;
            let args = [
                "--cluster",
                "rebalance",
                &p0,
                "--cluster-weight",
                &format!("{id}=0"),
            ]
            .map(String::from);
            redis_cli(&dir, "rebalance-shrink", &args, limit)?;
        }
        Mode::Auto => {
            admin(cluster, MASTERS, &["CLUSTER", "RING", "DRAIN"])?;
        }
    }
    let after = settled(
        cluster,
        mode,
        limit,
        "the leaving master owns no slot and every node agrees",
        &three,
        |table| owned(table, &id) == 0,
    )?;
    match mode {
        Mode::RedisCli => {
            let args = ["--cluster", "del-node", &p0, &id].map(String::from);
            redis_cli(&dir, "del-node", &args, limit)?;
        }
        Mode::Auto => {
            for &i in &three {
                admin(cluster, i, &["CLUSTER", "FORGET", &id])?;
            }
        }
    }
    cluster.kill(MASTERS);
    wait_for(
        "the three masters know only each other and are ok",
        limit,
        || {
            cluster.all_state(&three, "ok")
                && three
                    .iter()
                    .all(|&i| cluster.info_field(i, "cluster_known_nodes").as_deref() == Some("3"))
        },
    )
    .map_err(|e| format!("{e}\n{}", state_of(cluster)))?;
    Ok((before, after))
}

/// What [`read_back`] found: indexes of the keys missing and of those with
/// another value, and a few examples of the latter.
struct ReadBack {
    missing: Vec<usize>,
    wrong: Vec<usize>,
    examples: Vec<String>,
}

/// Reads every key of `keys` back (pipelined, from each slot's owner in
/// `table`, redirects followed one by one): the keys missing and the keys
/// with another value, with a few examples.
fn read_back(
    table: &[u16],
    keys: &[String],
    client: &mut ClusterClient,
) -> Result<ReadBack, String> {
    let mut by_port: HashMap<u16, Vec<usize>> = HashMap::new();
    for (k, key) in keys.iter().enumerate() {
        let slot = key_slot(key.as_bytes());
        by_port.entry(table[usize::from(slot)]).or_default().push(k);
    }
    let (mut missing, mut wrong, mut examples) = (Vec::new(), Vec::new(), Vec::new());
    for (port, ks) in by_port {
        let mut con = Resp::connect(port, Duration::from_secs(30)).map_err(|e| e.to_string())?;
        for batch in ks.chunks(BATCH) {
            for &k in batch {
                con.queue(&[b"GET", keys[k].as_bytes()]);
            }
            con.flush().map_err(|e| e.to_string())?;
            let replies: Vec<Reply> = batch
                .iter()
                .map(|_| con.read())
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            for (&k, reply) in batch.iter().zip(replies) {
                let key = &keys[k];
                let reply = match reply {
                    Reply::Error(_) => client
                        .run(key_slot(key.as_bytes()), &[b"GET", key.as_bytes()])
                        .map_err(|e| format!("GET {key}: {e}"))?,
                    other => other,
                };
                match reply {
                    Reply::Bulk(Some(v)) if v == value_of(key) => {}
                    Reply::Bulk(None) => missing.push(k),
                    other => {
                        if examples.len() < 10 {
                            examples.push(format!("{key}: {other:?}"));
                        }
                        wrong.push(k);
                    }
                }
            }
        }
    }
    Ok(ReadBack {
        missing,
        wrong,
        examples,
    })
}

/// Keys each of `ports` holds in slots it does not own in `table`.
fn stray_keys(table: &[u16], ports: &[u16]) -> Result<(u64, Vec<String>), String> {
    let (mut count, mut examples) = (0, Vec::new());
    for &port in ports {
        let mut con = Resp::connect(port, Duration::from_secs(30)).map_err(|e| e.to_string())?;
        let mut cursor = "0".to_string();
        loop {
            let reply = con
                .call(&["SCAN", &cursor, "COUNT", "1000"])
                .map_err(|e| e.to_string())?;
            let Reply::Array(Some(parts)) = reply else {
                return Err(format!("SCAN on {port}: {reply:?}"));
            };
            let (Some(Reply::Bulk(Some(next))), Some(Reply::Array(Some(keys)))) =
                (parts.first(), parts.get(1))
            else {
                return Err(format!("SCAN on {port}: {parts:?}"));
            };
            for key in keys {
                if let Reply::Bulk(Some(key)) = key {
                    let slot = key_slot(key);
                    if table[usize::from(slot)] != port {
                        count += 1;
                        if examples.len() < 10 {
                            examples.push(format!(
                                "{} (slot {slot}) on port {port}, owned by {}",
                                String::from_utf8_lossy(key),
                                table[usize::from(slot)]
                            ));
                        }
                    }
                }
            }
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                break;
            }
        }
    }
    Ok((count, examples))
}

/// The current slot table (slot -> port) from `CLUSTER SLOTS` of `port`.
fn port_table(port: u16) -> Result<Vec<u16>, String> {
    let mut con = Resp::connect(port, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let reply = con.call(&["CLUSTER", "SLOTS"]).map_err(|e| e.to_string())?;
    slot_table(&reply).ok_or_else(|| format!("CLUSTER SLOTS: {reply:?}"))
}

/// A mode's report and the events the checker recorded, or why it could not
/// run.
type ModeResult = Result<(Report, Vec<Event>), String>;

/// Runs one mode on a fresh cluster.
fn run_mode(mode: Mode, server: &Server, options: &Options) -> ModeResult {
    let settings = Settings {
        node_timeout: options.node_timeout,
        workdir: options.workdir.clone(),
        extra: vec!["--lock-delay".into(), "0".into()],
    };
    let mut cluster = Cluster::fresh(server, MASTERS + 1, &settings).map_err(|e| e.to_string())?;
    // The fourth node starts when the cluster grows.
    cluster.kill(MASTERS);
    let mut result = run_on(&mut cluster, mode, options);
    if let Ok((report, _)) = &mut result {
        report.bad_flag_closes = log_lines(&cluster.dir, "unknown node flag bits");
    }
    let kept = options.logs.join(format!(
        "{}-{}",
        mode.name(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    ));
    match copy_logs(&cluster.dir, &kept) {
        Ok(n) => eprintln!("  {n} log files copied to {}", kept.display()),
        Err(e) => eprintln!("  copying the logs to {}: {e}", kept.display()),
    }
    result
}

/// Lines of the node logs in `dir` that contain `text`.
fn log_lines(dir: &Path, text: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("node-"))
        })
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| t.lines().filter(|l| l.contains(text)).count())
        .sum()
}

/// What the monitor saw.
#[derive(Debug, Default, Clone)]
struct Watched {
    /// (observer, subject, flag): a node shown `fail?` or `fail` by another.
    flagged: Vec<(u16, u16, String)>,
    /// Seconds during which some node said `cluster_state:fail` (sampled
    /// every 200 ms), and the first and last moment (seconds since the
    /// start).
    down_secs: f64,
    down_span: Option<(f64, f64)>,
}

/// Until the key threads stop: every 200 ms, each node's `CLUSTER NODES`
/// and `CLUSTER INFO`: every (observer, subject, flag) where a node shows
/// another `fail?` or `fail`, and each change of a node's `cluster_state`,
/// recorded as events.
fn watch_flags(shared: &Shared, ports: &[u16]) -> Watched {
    let mut watched = Watched::default();
    let mut connections: HashMap<u16, Resp> = HashMap::new();
    let mut states: HashMap<u16, String> = HashMap::new();
    let mut was_ok: std::collections::HashSet<u16> = std::collections::HashSet::new();
    let mut last = shared.now();
    while !shared.stop_keys.load(Ordering::Relaxed) {
        let mut down = false;
        for &port in ports {
            let con = match connections.entry(port) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    match Resp::connect(port, Duration::from_secs(2)) {
                        Ok(con) => e.insert(con),
                        Err(_) => continue,
                    }
                }
            };
            let (nodes, info) = match (
                con.call(&["CLUSTER", "NODES"]),
                con.call(&["CLUSTER", "INFO"]),
            ) {
                (Ok(Reply::Bulk(Some(nodes))), Ok(Reply::Bulk(Some(info)))) => (
                    String::from_utf8_lossy(&nodes).into_owned(),
                    String::from_utf8_lossy(&info).into_owned(),
                ),
                _ => {
                    connections.remove(&port);
                    continue;
                }
            };
            for node in ringkv_bench::cluster::parse_nodes(&nodes) {
                for flag in ["fail?", "fail"] {
                    let found = (port, node.port, flag.to_string());
                    if node.has(flag) && !watched.flagged.contains(&found) {
                        shared.event(
                            "flagged failing",
                            100,
                            format!("node {port} shows node {} as {flag}", node.port),
                        );
                        watched.flagged.push(found);
                    }
                }
            }
            let state = info_field(&info, "cluster_state")
                .unwrap_or("?")
                .to_string();
            // A node counts once it was ok (a new node is not before it
            // joins) and while it has slots assigned (a node removed by
            // `del-node` is reset to none).
            if state == "ok" {
                was_ok.insert(port);
            }
            if info_field(&info, "cluster_slots_assigned") == Some("0") {
                was_ok.remove(&port);
                states.remove(&port);
                continue;
            }
            down |= state == "fail" && was_ok.contains(&port);
            let before = states.insert(port, state.clone());
            if before.is_some_and(|b| b != state) {
                let why = match state.as_str() {
                    "fail" => format!(": {}", why_down(&info, &nodes)),
                    _ => String::new(),
                };
                shared.event(
                    "cluster state",
                    100,
                    format!("node {port} says cluster_state:{state}{why}"),
                );
            }
        }
        let now = shared.now();
        if down {
            watched.down_secs += now - last;
            let first = watched.down_span.map_or(now, |(first, _)| first);
            watched.down_span = Some((first, now));
        }
        last = now;
        std::thread::sleep(Duration::from_millis(200));
    }
    watched
}

/// Why a node may say `cluster_state:fail`: its `CLUSTER INFO` slot
/// counts, the slots no master serves in its `CLUSTER NODES`, and the
/// nodes it flags failing.
fn why_down(info: &str, nodes: &str) -> String {
    let field = |f: &str| info_field(info, f).unwrap_or("?").to_string();
    let parsed = ringkv_bench::cluster::parse_nodes(nodes);
    let mut served = vec![false; SLOTS];
    for node in parsed.iter().filter(|n| n.has("master")) {
        for &(a, b) in &node.slots {
            for slot in a..=b {
                served[usize::from(slot)] = true;
            }
        }
    }
    let unserved: Vec<usize> = (0..SLOTS).filter(|&s| !served[s]).collect();
    let failing: Vec<String> = parsed
        .iter()
        .filter(|n| n.has("fail") || n.has("fail?"))
        .map(|n| format!("{} {}", n.port, n.flags.join(",")))
        .collect();
    format!(
        "slots assigned {}, pfail {}, fail {}; unserved in its CLUSTER NODES: {} {:?}; \
         failing: {:?}",
        field("cluster_slots_assigned"),
        field("cluster_slots_pfail"),
        field("cluster_slots_fail"),
        unserved.len(),
        &unserved[..unserved.len().min(10)],
        failing
    )
}

/// Copies every `*.log` and `*.conf` of `from` into `to`.
fn copy_logs(from: &Path, to: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(to)?;
    let mut n = 0;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log" || e == "conf") {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, to.join(name))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn run_on(cluster: &mut Cluster, mode: Mode, options: &Options) -> ModeResult {
    let limit = Duration::from_secs(options.phase_timeout_secs);
    let mut report = Report {
        lock_count: options.locks,
        ..Report::default()
    };
    let started = Instant::now();
    create(cluster, mode, limit)?;
    report.create_secs = started.elapsed().as_secs_f64();
    eprintln!("  3 masters ok in {:.1} s", report.create_secs);

    // The checker.
    let shared = Arc::new(Shared {
        clock: Instant::now(),
        wall: SystemTime::now(),
        phase: AtomicUsize::new(0),
        starts: Mutex::new([f64::INFINITY; PHASES.len()]),
        stop_keys: AtomicBool::new(false),
        stop_locks: AtomicBool::new(false),
        acked: Mutex::new(Vec::new()),
        events: Mutex::new(Vec::new()),
        seeds: cluster.ports[..MASTERS].to_vec(),
    });
    eprintln!("  checker clock 0 = {} UTC", shared.wall_clock(0.0));
    let threads = options.threads.max(1);
    let rate = options.ops_per_sec as f64 / threads as f64;
    let key_threads: Vec<JoinHandle<Result<KeyStats, String>>> = (0..threads)
        .map(|t| {
            let shared = shared.clone();
            let share = options.write_share;
            std::thread::spawn(move || key_thread(t as u16, rate, share, shared))
        })
        .collect();
    let names = lock_names(options.locks);
    let mut lock_threads: Vec<JoinHandle<Result<LockStats, String>>> = Vec::new();
    for (name, slot) in &names {
        let record = Arc::new(Mutex::new(LockRecord {
            holds: [Hold {
                holding: false,
                lease: Instant::now(),
                release_sent: None,
            }; 2],
            top_token: None,
        }));
        for client in 0..2 {
            let plan = LockPlan {
                name: name.clone(),
                slot: *slot,
                client,
                ttl: Duration::from_millis(options.lock_ttl_ms),
                extend_every: Duration::from_millis(options.extend_every_ms),
                hold: (
                    options.hold_min_ms,
                    options.hold_max_ms.max(options.hold_min_ms),
                ),
                wait_ms: options.lock_wait_ms,
            };
            let (record, shared) = (record.clone(), shared.clone());
            lock_threads.push(std::thread::spawn(move || {
                lock_client(plan, record, shared)
            }));
        }
    }
    let monitor = {
        let (shared, ports) = (shared.clone(), cluster.ports.clone());
        std::thread::spawn(move || watch_flags(&shared, &ports))
    };
    shared.set_phase(0);

    // The steps.
    let phase_start = |shared: &Shared, report: &mut Report, phase: usize, since: &mut f64| {
        let now = shared.now();
        report.seconds[shared.phase()] = now - *since;
        *since = now;
        shared.set_phase(phase);
    };
    let mut since = 0.0;
    let steps = (|| -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(options.seconds_before));
        phase_start(&shared, &mut report, GROW, &mut since);
        let t = Instant::now();
        let (before, after) = grow(cluster, mode, limit, options.rebalance_max_slots)?;
        save_table(&cluster.dir, "before-grow", &before);
        save_table(&cluster.dir, "after-grow", &after);
        report.grow_secs = t.elapsed().as_secs_f64();
        let new_id = my_id(cluster, MASTERS)?;
        let moved = changed(&before, &after);
        report.grow_to_new = owned(&after, &new_id);
        report.grow_changed = moved.len();
        report.locks_moved_grow = names.iter().filter(|(_, s)| moved.contains(s)).count();
        let mut shards = BTreeMap::new();
        if mode == Mode::Auto {
            for i in 0..=MASTERS {
                shards.insert(my_shard(cluster, i)?, my_id(cluster, i)?);
            }
            let text: String = shards
                .iter()
                .map(|(shard, id)| format!("{id} shard {shard}\n"))
                .collect();
            let _ = std::fs::write(cluster.dir.join("shards.log"), text);
            let ids3 = members(&before);
            let mut ids4 = ids3.clone();
            ids4.push(new_id.clone());
            let (ring3, ring4) = (ring_table(&shards, &ids3), ring_table(&shards, &ids4));
            let ring_moved = changed(&ring3, &ring4);
            report.grow_not_ring = Some((
                moved.iter().filter(|s| !ring_moved.contains(s)).count(),
                ring_moved.iter().filter(|s| !moved.contains(s)).count(),
            ));
            eprintln!(
                "  before the grow the table is the ring's: {}; after: {}; ring moves {} slots",
                before == ring3,
                after == ring4,
                ring_moved.len()
            );
        }
        eprintln!(
            "  grown in {:.1} s: {} slots to the new master, {} changed owner ({:.3}x of {FAIR})",
            report.grow_secs,
            report.grow_to_new,
            report.grow_changed,
            report.grow_changed as f64 / FAIR
        );
        phase_start(&shared, &mut report, GROW + 1, &mut since);
        std::thread::sleep(Duration::from_secs(options.seconds_between));
        phase_start(&shared, &mut report, SHRINK, &mut since);
        let t = Instant::now();
        let (four, three) = shrink(cluster, mode, limit)?;
        save_table(&cluster.dir, "after-shrink", &three);
        report.shrink_secs = t.elapsed().as_secs_f64();
        let moved = changed(&four, &three);
        report.shrink_changed = moved.len();
        report.locks_moved_shrink = names.iter().filter(|(_, s)| moved.contains(s)).count();
        report.back_to_start = three == before;
        if mode == Mode::Auto {
            let (ids3, ids4) = (members(&before), members(&four));
            let (ring4, ring3) = (ring_table(&shards, &ids4), ring_table(&shards, &ids3));
            let ring_moved = changed(&ring4, &ring3);
            report.shrink_not_ring = Some((
                moved.iter().filter(|s| !ring_moved.contains(s)).count(),
                ring_moved.iter().filter(|s| !moved.contains(s)).count(),
            ));
        }
        eprintln!(
            "  shrunk in {:.1} s: {} slots changed owner; table as before the grow: {}",
            report.shrink_secs, report.shrink_changed, report.back_to_start
        );
        phase_start(&shared, &mut report, SHRINK + 1, &mut since);
        std::thread::sleep(Duration::from_secs(options.seconds_after));
        Ok(())
    })();
    if let Err(e) = &steps {
        report.failure = Some(e.clone());
        eprintln!("  FAILED: {e}");
    }

    // Stop the checker.
    phase_start(&shared, &mut report, 5, &mut since);
    shared.stop_keys.store(true, Ordering::Relaxed);
    for handle in key_threads {
        match handle.join() {
            Ok(Ok(stats)) => report.keys.add(&stats),
            Ok(Err(e)) => report.failure = Some(format!("a key thread: {e}")),
            Err(_) => report.failure = Some("a key thread panicked".into()),
        }
    }
    shared.stop_locks.store(true, Ordering::Relaxed);
    report.watched = monitor.join().unwrap_or_default();
    for handle in lock_threads {
        match handle.join() {
            Ok(Ok(stats)) => report.locks.add(&stats),
            Ok(Err(e)) => report.failure = Some(format!("a lock client: {e}")),
            Err(_) => report.failure = Some("a lock client panicked".into()),
        }
    }
    phase_start(&shared, &mut report, 6, &mut since);
    if steps.is_ok() {
        if let Err(e) = verify(cluster, &shared, &names, &mut report) {
            report.failure = Some(format!("verify: {e}"));
        }
    }
    report.seconds[6] = shared.now() - since;
    let events = shared.events.lock().expect("events").clone();
    Ok((report, events))
}

/// Step 6: every acknowledged key read back, stray keys, `DBSIZE`s.
fn verify(
    cluster: &mut Cluster,
    shared: &Shared,
    names: &[(String, u16)],
    report: &mut Report,
) -> Result<(), String> {
    let ports: Vec<u16> = cluster.ports[..MASTERS].to_vec();
    let table = port_table(ports[0])?;
    let mut client = ClusterClient::with_seeds(&ports, Duration::from_secs(30))?;
    let acked: Vec<Acked> = shared.acked.lock().expect("acked").clone();
    let keys: Vec<String> = acked.iter().map(|a| key_name(a.thread, a.n)).collect();
    let ReadBack {
        missing,
        wrong,
        examples,
    } = read_back(&table, &keys, &mut client)?;
    report.lost_keys = (missing.len() + wrong.len()) as u64;
    for &k in missing.iter().take(20) {
        let a = acked[k];
        let slot = key_slot(keys[k].as_bytes());
        shared.event(
            "lost key",
            1000,
            format!(
                "{} (slot {slot}, now on port {}) acknowledged at {:.3} s in '{}': missing",
                keys[k],
                table[usize::from(slot)],
                f64::from(a.at_ms) / 1000.0,
                PHASES[usize::from(a.phase)]
            ),
        );
    }
    for text in examples {
        shared.event("lost key", 1000, format!("wrong value: {text}"));
    }
    // Unacknowledged writes: absent, or present with their value.
    let unknown: Vec<String> = report
        .keys
        .unknown
        .iter()
        .map(|&(t, n)| key_name(t, n))
        .collect();
    let ReadBack {
        missing: absent,
        wrong: unknown_wrong,
        examples,
    } = read_back(&table, &unknown, &mut client)?;
    report.unknown_present = (unknown.len() - absent.len()) as u64;
    report.unknown_wrong = unknown_wrong.len() as u64;
    for text in examples {
        shared.event(
            "lost key",
            1000,
            format!("unacknowledged write, wrong value: {text}"),
        );
    }
    let (stray, examples) = stray_keys(&table, &ports)?;
    report.stray = stray;
    for text in examples {
        shared.event("stray key", 1000, text);
    }
    // DBSIZE over the masters against what must be there; lock keys may
    // still expire, so both are read again until they match (10 s at most).
    let mut sizes = Vec::new();
    poll(Instant::now(), Duration::from_secs(10), || {
        let mut locks = 0;
        for (name, slot) in names {
            if let Ok(Reply::Int(1)) = client.run(*slot, &[b"EXISTS", name.as_bytes()]) {
                locks += 1;
            }
        }
        report.lock_keys = locks;
        sizes = ports
            .iter()
            .map(|&p| {
                Resp::connect(p, Duration::from_secs(10))
                    .and_then(|mut c| c.call(&["DBSIZE"]))
                    .ok()
                    .and_then(|r| match r {
                        Reply::Int(n) => Some(n),
                        _ => None,
                    })
                    .unwrap_or(-1)
            })
            .collect();
        report.dbsize = sizes.iter().sum();
        report.expected_dbsize =
            (acked.len() as u64 + report.unknown_present + report.lock_keys) as i64;
        std::thread::sleep(Duration::from_millis(200));
        report.dbsize == report.expected_dbsize
    });
    eprintln!(
        "  DBSIZE {sizes:?} = {}; expected {} acknowledged + {} unacknowledged present + {} \
         lock keys = {}",
        report.dbsize,
        acked.len(),
        report.unknown_present,
        report.lock_keys,
        report.expected_dbsize
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The report.

/// Thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(options: &Options, results: &[(Mode, ModeResult)]) {
    println!(
        "\ncluster of 3 ringkv masters -> 4 -> 3; checker {} key ops/s ({} threads, {:.0}% \
         writes of new keys, the rest reads of acknowledged keys), {} locks x 2 clients (ttl \
         {} ms, extend every {} ms, hold {}-{} ms); load {} s before the grow, {} s on 4 \
         masters, {} s after the shrink\n",
        thousands(options.ops_per_sec),
        options.threads,
        options.write_share * 100.0,
        options.locks,
        options.lock_ttl_ms,
        options.extend_every_ms,
        options.hold_min_ms,
        options.hold_max_ms,
        options.seconds_before,
        options.seconds_between,
        options.seconds_after
    );
    let reports: Vec<(Mode, Option<&Report>)> = results
        .iter()
        .map(|(m, r)| (*m, r.as_ref().ok().map(|(r, _)| r)))
        .collect();
    print!("| |");
    for (mode, _) in &reports {
        print!(" {} |", mode.name());
    }
    println!();
    print!("|---|");
    for _ in &reports {
        print!("---:|");
    }
    println!();
    let row = |label: &str, f: &dyn Fn(&Report) -> String| {
        print!("| {label} |");
        for (_, report) in &reports {
            match report {
                Some(r) => print!(" {} |", f(r)),
                None => print!(" failed |"),
            }
        }
        println!();
    };
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    row(
        "acknowledged writes (unacknowledged: present / all)",
        &|r| {
            format!(
                "{} ({} / {})",
                thousands(r.keys.acked),
                r.unknown_present,
                r.keys.unknown.len()
            )
        },
    );
    row("reads checked", &|r| thousands(r.keys.reads));
    row("key ops during the grow / during the shrink", &|r| {
        format!(
            "{} / {}",
            thousands(r.keys.ops[GROW]),
            thousands(r.keys.ops[SHRINK])
        )
    });
    row("slowest key op during the grow / shrink, ms", &|r| {
        format!(
            "{} / {}",
            ms(r.keys.slowest[GROW]),
            ms(r.keys.slowest[SHRINK])
        )
    });
    row("**wrong reads**", &|r| r.keys.wrong_reads.to_string());
    row(
        "**keys lost** (acknowledged, missing or wrong after)",
        &|r| (r.lost_keys + r.unknown_wrong).to_string(),
    );
    row("other errors (failed attempts, retried)", &|r| {
        (r.keys.errors + r.locks.errors).to_string()
    });
    row("redirects MOVED / ASK / TRYAGAIN / CLUSTERDOWN", &|r| {
        let m = r.keys.redirects.moved + r.locks.redirects.moved;
        let a = r.keys.redirects.asked + r.locks.redirects.asked;
        let d = r.keys.redirects.clusterdown + r.locks.redirects.clusterdown;
        let t = r.keys.redirects.retried + r.locks.redirects.retried - d;
        format!(
            "{} / {} / {} / {}",
            thousands(m),
            thousands(a),
            thousands(t),
            thousands(d)
        )
    });
    row("lock grants / extends / releases", &|r| {
        format!(
            "{} / {} / {}",
            thousands(r.locks.grants),
            thousands(r.locks.extends),
            thousands(r.locks.releases)
        )
    });
    row("**lost locks**", &|r| r.locks.lost.to_string());
    row("**overlaps**", &|r| r.locks.overlaps.to_string());
    row("**token regressions**", &|r| {
        r.locks.regressions.to_string()
    });
    row("leases run out before an extend got through", &|r| {
        r.locks.ran_out.to_string()
    });
    row("locks whose slot moved: grow / shrink", &|r| {
        format!(
            "{} / {} of {}",
            r.locks_moved_grow, r.locks_moved_shrink, r.lock_count
        )
    });
    row(
        "grow: slots to the new master / changed owner in all",
        &|r| {
            format!(
                "{} / {} ({:.3}x / {:.3}x of 4096)",
                r.grow_to_new,
                r.grow_changed,
                r.grow_to_new as f64 / FAIR,
                r.grow_changed as f64 / FAIR
            )
        },
    );
    row(
        "grow: moved though the ring owner stayed / ring owner changed, not moved",
        &|r| {
            r.grow_not_ring
                .map_or("n/a".into(), |(a, b)| format!("{a} / {b}"))
        },
    );
    row("shrink: slots that changed owner", &|r| {
        r.shrink_changed.to_string()
    });
    row(
        "shrink: moved though the ring owner stayed / ring owner changed, not moved",
        &|r| {
            r.shrink_not_ring
                .map_or("n/a".into(), |(a, b)| format!("{a} / {b}"))
        },
    );
    row("slot table after the shrink = before the grow", &|r| {
        if r.back_to_start { "yes" } else { "no" }.to_string()
    });
    row("DBSIZE of the 3 masters / expected", &|r| {
        format!(
            "{} / {}",
            thousands(r.dbsize as u64),
            thousands(r.expected_dbsize as u64)
        )
    });
    row("keys in slots their node does not own", &|r| {
        r.stray.to_string()
    });
    row(
        "nodes flagged fail? / fail by another (observer->subject)",
        &|r| {
            if r.watched.flagged.is_empty() {
                return "none".into();
            }
            r.watched
                .flagged
                .iter()
                .map(|(o, n, f)| format!("{o}->{n} {f}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    row(
        "some node said cluster_state:fail, s (sampled every 200 ms)",
        &|r| match r.watched.down_span {
            None => "0".into(),
            Some((a, b)) => format!("{:.1} (between {a:.1} and {b:.1} s)", r.watched.down_secs),
        },
    );
    row(
        "log lines: bus link closed for unknown node flag bits",
        &|r| r.bad_flag_closes.to_string(),
    );
    row("create / grow / shrink, s", &|r| {
        format!(
            "{:.1} / {:.1} / {:.1}",
            r.create_secs, r.grow_secs, r.shrink_secs
        )
    });
    row(
        "load s: 3 masters / grow / 4 / shrink / 3 again / stop / verify",
        &|r| {
            r.seconds
                .iter()
                .map(|s| format!("{s:.1}"))
                .collect::<Vec<_>>()
                .join(" / ")
        },
    );
    row("result", &|r| match (&r.failure, r.violations()) {
        (Some(_), _) => "**did not finish**".into(),
        (None, 0) => "pass".into(),
        (None, n) => format!("**FAIL ({n})**"),
    });
}

fn main() {
    let options = Options::parse();
    ringkv_bench::cluster::harness_start(&["redis-cli"]);
    let server = match &options.ringkv_binary {
        Some(path) => Server::Ringkv(path.clone()),
        None => Server::named("ringkv").expect("known"),
    };
    let mut modes = Vec::new();
    for name in &options.modes {
        match name.as_str() {
            "redis-cli" => modes.push(Mode::RedisCli),
            "auto" => modes.push(Mode::Auto),
            other => {
                eprintln!("unknown mode {other} (redis-cli, auto)");
                std::process::exit(2);
            }
        }
    }
    let mut results = Vec::new();
    for mode in modes {
        eprintln!("{}:", mode.name());
        let result = run_mode(mode, &server, &options);
        match &result {
            Ok((report, events)) => {
                for event in events {
                    eprintln!(
                        "  [{}] {:>8.3} s = {} UTC ({}): {}: {}",
                        mode.name(),
                        event.at,
                        event.wall,
                        event.phase,
                        event.kind,
                        event.text
                    );
                }
                if let Some(failure) = &report.failure {
                    eprintln!("  {} did not finish: {failure}", mode.name());
                }
            }
            Err(e) => eprintln!("  {} FAILED: {e}", mode.name()),
        }
        results.push((mode, result));
    }
    print_table(&options, &results);
    let bad = results.iter().any(|(_, r)| match r {
        Ok((report, _)) => report.failure.is_some() || report.violations() > 0,
        Err(_) => true,
    });
    if bad {
        std::process::exit(1);
    }
}
