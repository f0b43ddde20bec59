//! The write feed reproduces the dataset: random sequences of commands (every
//! family, relative TTLs, blocking pops served later, transactions, locks, cache
//! leases, random pops, expiry by an advancing clock, eviction) run on server A;
//! A's feed applied to an empty server B leaves B equal to A, key by key: type,
//! value (DUMP payload) and expiry.
//!
//! Seeded (2000 cases, spread over the cores): `RINGKV_FEED_SEED` replays one
//! case, `RINGKV_FEED_CASES` runs more, `RINGKV_FEED_STEPS` makes each longer.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use ringkv_server::apply::Applier;
use ringkv_server::apply::ApplyError;
use ringkv_server::blocking::Waiter;
use ringkv_server::clock::{Clock, ManualClock, Millis};
use ringkv_server::cluster::ClusterHandle;
use ringkv_server::config::{Config, LiveConfig};
use ringkv_server::keyspace::{dump_value, ActiveExpire, Locked};
use ringkv_server::protocol::{Args, Decoded, Protocol, Reply, RequestDecoder, RequestLimits};
use ringkv_server::session::{ClientHandle, Session};
use ringkv_server::{commands, Shared};

const START: Millis = 1_700_000_000_000;

/// One server in-process, with a client session to run commands through.
struct Node {
    shared: Shared,
    session: Session,
    out: Reply,
    /// Clients left blocked (served by later writes, or never).
    waiters: Vec<Arc<Waiter>>,
}

impl Node {
    fn new(clock: Arc<ManualClock>) -> Node {
        let config = Config {
            maxmemory_policy: ringkv_server::config::Policy::AllkeysRandom,
            ..Config::default()
        };
        Node {
            shared: Shared::new(
                LiveConfig::new(&config, None),
                clock,
                0,
                commands::table::registry().len(),
                ClusterHandle::standalone(),
            ),
            session: Session::new(ClientHandle::detached(), true),
            out: Reply::new(Protocol::Resp2),
            waiters: Vec::new(),
        }
    }

    /// Runs one command; its reply, decoded.
    fn run(&mut self, args: &[Vec<u8>]) -> BytesFrame {
        let mut src = Vec::new();
        let mut spans = Vec::new();
        for a in args {
            spans.push((src.len(), src.len() + a.len()));
            src.extend_from_slice(a);
        }
        self.session.begin_batch(&*self.shared.clock);
        self.out.clear();
        let args = Args::new(&src, &spans);
        if let commands::Executed::Blocked(waiter) =
            commands::execute(&self.shared, &mut self.session, &mut self.out, args)
        {
            self.waiters.push(waiter);
            return BytesFrame::Null;
        }
        let bytes = std::mem::take(&mut self.out).into_vec();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut last = BytesFrame::Null;
        while let Ok(Some((frame, _, _))) = decode_bytes_mut(&mut buf) {
            last = frame;
        }
        last
    }

    /// Every live key: its DUMP payload and expiry.
    fn snapshot(&self) -> BTreeMap<Vec<u8>, (Vec<u8>, Option<Millis>)> {
        let now = self.shared.clock.now_ms();
        let mut keys = BTreeMap::new();
        let mut cursor = 0;
        loop {
            cursor =
                Locked::new(&self.shared.data.keyspace).scan(cursor, 1000, now, |key, entry| {
                    keys.insert(
                        key.as_bytes().to_vec(),
                        (dump_value(entry.value), entry.expire_at()),
                    );
                });
            if cursor == 0 {
                return keys;
            }
        }
    }
}

/// Random commands over a small set of keys of every type.
struct Gen {
    rng: StdRng,
    now: Millis,
}

impl Gen {
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.rng.random_range(0..options.len())]
    }

    fn key(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.rng.random_range(0..3))
    }

    fn value(&mut self) -> String {
        match self.rng.random_range(0..4) {
            0 => self.rng.random_range(-5..100).to_string(),
            1 => "x".repeat(self.rng.random_range(0..40)),
            _ => self.pick(&["a", "b", "c", "d", "e"]).to_string(),
        }
    }

    fn ms(&mut self) -> String {
        self.rng.random_range(1..400).to_string()
    }

    /// A TTL option of `SET` (relative or absolute) or none.
    fn set_ttl(&mut self) -> Vec<String> {
        let rel = self.ms();
        match self.rng.random_range(0..6) {
            0 => vec!["PX".into(), rel],
            1 => vec!["EX".into(), "1".into()],
            2 => vec!["PXAT".into(), (self.now + 150).to_string()],
            3 => vec!["KEEPTTL".into()],
            _ => Vec::new(),
        }
    }

    fn command(&mut self) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (k, l, h, st, z) = (
            self.key("k"),
            self.key("l"),
            self.key("h"),
            self.key("s"),
            self.key("z"),
        );
        let v = self.value();
        match self.rng.random_range(0..44) {
            0 | 1 => {
                let mut c = s(&["SET", &k, &v]);
                c.extend(self.set_ttl());
                if self.rng.random_bool(0.3) {
                    c.push(self.pick(&["NX", "XX", "GET"]).into());
                }
                c
            }
            2 => s(&["SETEX", &k, "1", &v]),
            3 => s(&["PSETEX", &k, &self.ms(), &v]),
            4 => s(&["GETEX", &k, self.pick(&["PX", "EX", "PERSIST"]), "1"])
                .into_iter()
                .take(if self.rng.random_bool(0.5) { 4 } else { 3 })
                .collect(),
            5 => s(&["GETDEL", &k]),
            6 => s(&["INCRBYFLOAT", &k, "1.5"]),
            7 => s(&["INCRBY", &k, "3"]),
            8 => s(&["APPEND", &k, &v]),
            9 => s(&["SETRANGE", &k, "2", &v]),
            10 => s(&[self.pick(&["EXPIRE", "PEXPIRE"]), &k, &self.ms()]),
            11 => s(&["PEXPIREAT", &k, &(self.now + 100).to_string()]),
            12 => s(&["PERSIST", &k]),
            13 => s(&["DEL", &k, &l]),
            14 => s(&["RENAME", &k, &self.key("k")]),
            15 => s(&["COPY", &l, &self.key("l"), "REPLACE"]),
            16 => s(&["MSET", &k, &v, &self.key("k"), "m"]),
            17 | 18 => s(&[self.pick(&["LPUSH", "RPUSH"]), &l, &v, &self.value()]),
            19 => s(&[self.pick(&["LPOP", "RPOP"]), &l, "2"]),
            20 => s(&["LMOVE", &l, &self.key("l"), "LEFT", "RIGHT"]),
            21 => s(&["LREM", &l, "0", &v]),
            22 => s(&["LTRIM", &l, "1", "-1"]),
            23 => s(&["BLPOP", &l, "0.01"]),
            24 => s(&["BLMOVE", &l, &self.key("l"), "RIGHT", "LEFT", "0.01"]),
            25 => s(&["HSET", &h, &v, &self.value()]),
            26 => s(&["HDEL", &h, &v]),
            27 => s(&["HINCRBYFLOAT", &h, "f", "0.25"]),
            28 => s(&["SADD", &st, &v, &self.value()]),
            29 => s(&["SPOP", &st, "2"]),
            30 => s(&["SMOVE", &st, &self.key("s"), &v]),
            31 => s(&["SINTERSTORE", &self.key("s"), &st, &self.key("s")]),
            32 => s(&["ZADD", &z, &self.rng.random_range(0..9).to_string(), &v]),
            33 => s(&["ZINCRBY", &z, "1.5", &v]),
            34 => s(&["BZPOPMIN", &z, "0.01"]),
            35 => s(&["ZUNIONSTORE", &self.key("z"), "2", &z, &self.key("z")]),
            36 => s(&[
                "LOCK.ACQUIRE",
                &self.key("lock"),
                self.pick(&["o1", "o2"]),
                &self.ms(),
            ]),
            37 => s(&["LOCK.ACQUIRE", &self.key("lock"), "o3", "200", "WAIT", "0"]),
            38 => s(&[
                "LOCK.RELEASE",
                &self.key("lock"),
                self.pick(&["o1", "o2", "o3"]),
            ]),
            39 => s(&[
                "LOCK.EXTEND",
                &self.key("lock"),
                self.pick(&["o1", "o2"]),
                "300",
            ]),
            40 => s(&["CACHE.GET", &self.key("c"), "LEASE", &self.ms()]),
            41 => s(&["GET", &k]),
            42 => s(&["EXISTS", &l, &h, &st, &z]),
            _ => s(&["SRANDMEMBER", &st, "-3"]),
        }
    }
}

/// Feeds the applier whole records from pieces cut anywhere, as a replica's
/// link does.
#[derive(Default)]
struct Records {
    pending: Vec<u8>,
    decoder: RequestDecoder,
    applier: Applier,
}

impl Records {
    fn apply(&mut self, shared: &Shared, piece: &[u8]) -> Result<(), ApplyError> {
        self.pending.extend_from_slice(piece);
        let limits = RequestLimits {
            max_bulk_len: u64::MAX,
            authenticated: true,
        };
        let mut consumed = 0;
        let mut result = Ok(());
        while let Ok(Decoded::Request { consumed: used }) =
            self.decoder.decode(&self.pending[consumed..], limits)
        {
            let args = self.decoder.args(&self.pending[consumed..]);
            result = result.and(self.applier.run(shared, args));
            self.decoder.release();
            consumed += used;
        }
        self.pending.drain(..consumed);
        result
    }
}

fn bytes(args: Vec<String>) -> Vec<Vec<u8>> {
    args.into_iter().map(String::into_bytes).collect()
}

/// Runs one seeded case; panics with the seed on a difference.
fn run_case(seed: u64, steps: usize) {
    let clock = Arc::new(ManualClock::new(START));
    let mut a = Node::new(clock.clone());
    let feed = Arc::new(Mutex::new(Vec::new()));
    let log = feed.clone();
    a.shared.data.feed.follow(Box::new(move |offset, piece, _| {
        let mut log = log.lock();
        assert_eq!(offset, log.len() as u64, "offsets follow each other");
        log.extend_from_slice(piece);
    }));
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        now: START,
    };
    let mut expire = ActiveExpire::default();
    let mut history = Vec::new();
    // B follows as a replica does, applying what arrived after each step (at
    // the same time, as the feed flows while A runs), in pieces cut anywhere.
    let mut b = Node::new(clock.clone());
    let mut applier = Records::default();
    let mut applied = 0;
    for _ in 0..steps {
        gen.now = clock.now_ms();
        match gen.rng.random_range(0..20) {
            0 => clock.advance(gen.rng.random_range(1..300)),
            1 => {
                // The cron's active expiry walk.
                let now = clock.now_ms();
                let shared = &a.shared;
                expire.run_cycle(
                    &shared.data.keyspace,
                    now,
                    || true,
                    |key| ringkv_server::write::expired(&shared.data, key),
                );
            }
            2 => {
                // Eviction of one or two keys.
                let target = a
                    .shared
                    .data
                    .keyspace
                    .len()
                    .saturating_sub(gen.rng.random_range(1..3));
                let ks = &a.shared.data.keyspace;
                let _ = ringkv_server::write::evict_while(&a.shared.data, clock.now_ms(), || {
                    ks.len() > target
                });
            }
            3 => {
                // A transaction of a few commands.
                let mut commands = vec![bytes(vec!["MULTI".into()])];
                for _ in 0..gen.rng.random_range(1..4) {
                    commands.push(bytes(gen.command()));
                }
                commands.push(bytes(vec!["EXEC".into()]));
                for c in commands {
                    history.push(c.clone());
                    a.run(&c);
                }
            }
            4 => {
                // A cache fill with the lease a miss got.
                let key = gen.key("c");
                let lease = a.run(&bytes(vec!["CACHE.GET".into(), key.clone()]));
                if let BytesFrame::Array(items) = lease {
                    if let (Some(BytesFrame::BulkString(kind)), Some(token)) =
                        (items.first(), items.get(1))
                    {
                        if &kind[..] == b"lease" {
                            let token = match token {
                                BytesFrame::Integer(n) => n.to_string(),
                                BytesFrame::BulkString(b) => String::from_utf8_lossy(b).into(),
                                _ => "0".into(),
                            };
                            let fill = vec![
                                "CACHE.FILL".into(),
                                key,
                                token,
                                "VALUE".into(),
                                gen.value(),
                                "PX".into(),
                                "500".into(),
                                "JITTER".into(),
                                "30".into(),
                            ];
                            history.push(bytes(fill.clone()));
                            a.run(&bytes(fill));
                        }
                    }
                }
            }
            _ => {
                let c = bytes(gen.command());
                history.push(c.clone());
                a.run(&c);
            }
        }
        let new = feed.lock()[applied..].to_vec();
        let cut = gen.rng.random_range(0..=new.len());
        for piece in [&new[..cut], &new[cut..]] {
            if let Err(err) = applier.apply(&b.shared, piece) {
                panic!("seed {seed}: {err}\nhistory: {}", show(&history));
            }
        }
        applied += new.len();
    }
    let fed = feed.lock().clone();
    assert_eq!(a.shared.data.feed.offset(), fed.len() as u64);
    let (want, got) = (a.snapshot(), b.snapshot());
    if want != got {
        let keys: std::collections::BTreeSet<_> = want.keys().chain(got.keys()).collect();
        let diff: Vec<String> = keys
            .into_iter()
            .filter(|k| want.get(*k) != got.get(*k))
            .map(|k| {
                format!(
                    "{}: A {:?} B {:?}",
                    String::from_utf8_lossy(k),
                    want.get(k).map(|v| v.1),
                    got.get(k).map(|v| v.1)
                )
            })
            .collect();
        panic!(
            "seed {seed}: B differs from A on {diff:?}\nhistory: {}\nfeed: {}",
            show(&history),
            fed.escape_ascii().to_string().replace("\\r\\n", " ")
        );
    }
    drop(b.run(&bytes(vec!["PING".into()])));
}

fn show(history: &[Vec<Vec<u8>>]) -> String {
    history
        .iter()
        .map(|c| {
            c.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

#[test]
fn the_write_feed_applied_to_an_empty_server_reproduces_the_dataset() {
    let steps = std::env::var("RINGKV_FEED_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    if let Some(seed) = std::env::var("RINGKV_FEED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return run_case(seed, steps);
    }
    let cases: u64 = std::env::var("RINGKV_FEED_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    // Cases are independent: spread them over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for first in 0..threads as u64 {
            scope.spawn(move || {
                for seed in (first..cases).step_by(threads) {
                    run_case(seed, steps);
                }
            });
        }
    });
}
