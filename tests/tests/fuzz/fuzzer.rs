//! The fuzzer's side of the server: its connections, where each request runs
//! ([`Route`]), the checks after every reply, and resets to the fixtures.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringkv_tests::TestServer;

use super::fixtures::{self, DENIED_CONFIG, ENCODING_PROFILES, KEYS};
use super::spec::Spec;
use super::wire::{render, words, Conn, ReadError, Value};

/// Longest wait for a reply to a command that does not block: generous, for a
/// debug build on a shared machine.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a command that may block gets before the server is asked whether
/// it is blocked.
const BLOCK_PROBE: Duration = Duration::from_millis(5);

/// Where and how a command's requests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On a fuzzing connection: exactly one reply, and the connection stays open.
    Main,
    /// A command that may block: on a throw-away connection, where waiting is
    /// fine once the server lists the client as blocked (`flags=b`); a fifth
    /// run inside MULTI, where they must answer at once.
    Blocking,
    /// (P)SUBSCRIBE and (P)UNSUBSCRIBE: one or more replies, then subscriber
    /// mode: on a throw-away connection.
    PubSub,
    /// QUIT, RESET, HELLO and CLIENT KILL change or end their own connection
    /// (CLIENT KILL maybe others too): on a throw-away connection, which may
    /// close after QUIT and CLIENT KILL; after CLIENT KILL the fuzzer's own
    /// connections are checked and replaced if killed.
    Aside,
    /// SRANDMEMBER, HRANDFIELD and ZRANDMEMBER: a negative count asks for that
    /// many picks, a reply that may legitimately outgrow the output-buffer limit
    /// (64 MB in this test), so the server may close the connection instead
    /// of answering: on a throw-away connection, where a close is fine if the
    /// process lives on and the client's slot is freed.
    Unbounded,
    /// SHUTDOWN stops the server: `shutdown_with_random_arguments_replies_or_exits`.
    Skip,
}

pub fn route(spec: &Spec) -> Route {
    match spec.name.as_str() {
        "shutdown" => Route::Skip,
        "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe"
        | "sunsubscribe" => Route::PubSub,
        "quit" | "reset" | "hello" | "client|kill" => Route::Aside,
        "srandmember" | "hrandfield" | "zrandmember" => Route::Unbounded,
        // WAIT blocks until replicas acknowledge, without Redis's `blocking`
        // flag.
        "wait" => Route::Blocking,
        _ if spec.has_flag("blocking") => Route::Blocking,
        _ => Route::Main,
    }
}

/// A running server and the fuzzer's connections to it.
pub struct Fuzzer {
    pub server: TestServer,
    seed: u64,
    /// Resets, checks and config restores; never sent fuzzed requests.
    pub ctl: Conn,
    /// The fuzzing connections: RESP2 and RESP3.
    pub mains: [Conn; 2],
    /// Settable config parameters and their values at the start.
    pub config: Vec<(Vec<u8>, Vec<u8>)>,
    /// A CONFIG SET was sent since the last restore.
    pub config_touched: bool,
    /// The encoding thresholds of the command being fuzzed.
    pub profile: &'static [(&'static str, &'static str)],
    /// The command being fuzzed, and the last requests sent, for failure reports.
    pub command: String,
    history: VecDeque<String>,
    /// Requests sent in total.
    pub sent: usize,
    /// Print every request (`RINGKV_FUZZ_TRACE=1`).
    trace: bool,
}

impl Fuzzer {
    pub fn start(seed: u64) -> Fuzzer {
        // A normal output-buffer limit bounds what a huge random-pick count may
        // make the server produce (see `Route::Unbounded`); a small one keeps
        // those requests quick in a debug build.
        // Every keyspace notification on, for `watch_notifications`.
        let server = TestServer::start_with(&[
            "--client-output-buffer-limit",
            "normal 8mb 4mb 10",
            "--notify-keyspace-events",
            "KEA",
        ]);
        let port = server.port;
        let open = |resp3| Conn::open(port, resp3, REPLY_TIMEOUT).expect("connect");
        Fuzzer {
            ctl: open(false),
            mains: [open(false), open(true)],
            server,
            seed,
            config: Vec::new(),
            config_touched: false,
            profile: ENCODING_PROFILES[0],
            command: String::new(),
            history: VecDeque::new(),
            sent: 0,
            trace: std::env::var_os("RINGKV_FUZZ_TRACE").is_some(),
        }
    }

    /// Ends the test with what happened, the request, the server's state and how
    /// to replay it.
    pub fn fail(&mut self, what: &str, conn: &str, args: &[Vec<u8>]) -> ! {
        // A process that is aborting may take a moment to be gone.
        let process = match self.server.wait_exit(Duration::from_millis(500)) {
            Some(status) => format!("the server process EXITED: {status}"),
            None => "the server process is still running".to_string(),
        };
        let history: Vec<String> = self.history.iter().map(|h| format!("    {h}")).collect();
        panic!(
            "{what}\n  request on {conn}: {}\n  {process}\n  seed {seed}; replay: \
             RINGKV_FUZZ_SEED={seed} RINGKV_FUZZ_ONLY={cmd} cargo test -p ringkv-tests --test fuzz\n  \
             earlier requests, oldest first:\n{}",
            render(args),
            history.join("\n"),
            seed = self.seed,
            cmd = self.command,
        );
    }

    pub fn note(&mut self, conn: &str, args: &[Vec<u8>]) {
        self.sent += 1;
        if self.trace {
            eprintln!("{conn}: {}", render(args));
        }
        if self.history.len() == 8 {
            self.history.pop_front();
        }
        self.history.push_back(format!("{conn}: {}", render(args)));
    }

    /// Runs a request of the fuzzer's own on the control connection; it must
    /// answer, and not with an error.
    pub fn ctl(&mut self, args: &[&str]) -> Value {
        let args = words(args);
        self.ctl_bytes(&args)
    }

    fn ctl_bytes(&mut self, args: &[Vec<u8>]) -> Value {
        match self.ctl.call(args, REPLY_TIMEOUT) {
            Ok(Value::Error(e)) => {
                self.fail(&format!("setup request failed: {e}"), "control", args)
            }
            Ok(value) => value,
            Err(e) => self.fail(&format!("setup request: {e}"), "control", args),
        }
    }

    /// Sends several requests of the fuzzer's own at once, then checks every reply.
    fn ctl_pipeline(&mut self, requests: &[Vec<Vec<u8>>]) -> Vec<Value> {
        for args in requests {
            assert!(self.ctl.send(args), "control connection closed");
        }
        let mut replies = Vec::new();
        for args in requests {
            match self.ctl.read(REPLY_TIMEOUT) {
                Ok(Value::Error(e)) => {
                    self.fail(&format!("setup request failed: {e}"), "control", args)
                }
                Ok(value) => replies.push(value),
                Err(e) => self.fail(&format!("setup request: {e}"), "control", args),
            }
        }
        replies
    }

    /// Learns which config parameters CONFIG SET accepts (setting each to its own
    /// value), so they can be restored after the fuzzer changes them.
    pub fn learn_config(&mut self) {
        let all = self.ctl(&["CONFIG", "GET", "*"]);
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = match &all {
            Value::Array(items) => items
                .chunks(2)
                .map(|c| {
                    (
                        c[0].bytes().unwrap_or_default().to_vec(),
                        c[1].bytes().unwrap_or_default().to_vec(),
                    )
                })
                .collect(),
            other => panic!("CONFIG GET * replied {other}"),
        };
        for (name, value) in pairs {
            if DENIED_CONFIG.iter().any(|d| d.as_bytes() == name) {
                continue;
            }
            let set = vec![
                b"CONFIG".to_vec(),
                b"SET".to_vec(),
                name.clone(),
                value.clone(),
            ];
            if let Ok(Value::Status(_)) = self.ctl.call(&set, REPLY_TIMEOUT) {
                self.config.push((name, value));
            }
        }
        assert!(
            self.config.len() > 5,
            "few settable parameters: {:?}",
            self.config
        );
    }

    /// Sets every settable parameter back: to its value at the start, or the
    /// current encoding profile's.
    /// One parameter per `CONFIG SET`: a setting and its alias (both listed by
    /// `CONFIG GET *`) may not be named in the same call.
    fn restore_config(&mut self) {
        for (name, value) in self.config.clone() {
            let profiled = self.profile.iter().find(|(p, _)| p.as_bytes() == name);
            let mut args = words(&["CONFIG", "SET"]);
            args.push(name);
            args.push(profiled.map_or(value, |(_, v)| v.as_bytes().to_vec()));
            self.ctl_bytes(&args);
        }
    }

    /// Back to the fixture data, with no transaction open and the config as the
    /// command started with it.
    pub fn reset(&mut self) {
        for i in 0..2 {
            let discard = words(&["DISCARD"]);
            self.main_call(i, &discard);
        }
        if self.config_touched {
            self.restore_config();
            self.config_touched = false;
        }
        self.ctl_pipeline(&fixtures::rebuild());
    }

    /// A new connection, or the end of the test if the server takes none.
    fn open(&mut self, resp3: bool, args: &[Vec<u8>]) -> Conn {
        match Conn::open(self.server.port, resp3, REPLY_TIMEOUT) {
            Ok(conn) => conn,
            Err(e) => self.fail(
                &format!("a new connection failed: {e}"),
                "a new connection",
                args,
            ),
        }
    }

    /// Sends a fuzzed request on fuzzing connection `i` and checks its one reply.
    fn main_call(&mut self, i: usize, args: &[Vec<u8>]) -> Value {
        let name = if i == 0 {
            "RESP2 connection"
        } else {
            "RESP3 connection"
        };
        self.note(name, args);
        match self.mains[i].call(args, REPLY_TIMEOUT) {
            Ok(Value::Push(_)) => self.fail(
                "a push message on a connection that subscribed to nothing",
                name,
                args,
            ),
            Ok(value) => value,
            Err(e) => self.fail(&e.to_string(), name, args),
        }
    }

    /// Runs one fuzzed request as `route` says, over RESP3 or RESP2, and inside
    /// MULTI if `transaction` (for the routes that can).
    pub fn run(&mut self, route: Route, args: &[Vec<u8>], resp3: bool, transaction: bool) {
        match route {
            Route::Main => {
                let is_config_set = args.len() >= 2
                    && args[0].eq_ignore_ascii_case(b"config")
                    && args[1].eq_ignore_ascii_case(b"set");
                self.config_touched |= is_config_set;
                let conn = usize::from(resp3);
                if transaction {
                    // Queued, then run by EXEC: the same command through the
                    // transaction path.
                    self.main_call(conn, &words(&["MULTI"]));
                    self.main_call(conn, args);
                    self.main_call(conn, &words(&["EXEC"]));
                } else {
                    self.main_call(conn, args);
                }
                // A CONFIG SET runs now, or when EXEC runs it: restore either way.
                if self.config_touched && (is_config_set || args[0].eq_ignore_ascii_case(b"exec")) {
                    self.restore_config();
                }
            }
            Route::Blocking | Route::PubSub | Route::Aside | Route::Unbounded => {
                self.run_aside(route, args, resp3, transaction)
            }
            Route::Skip => {}
        }
    }

    /// Runs a request on a throw-away connection.
    fn run_aside(&mut self, route: Route, args: &[Vec<u8>], resp3: bool, transaction: bool) {
        let name = "throw-away connection";
        let mut conn = self.open(resp3, args);
        self.note(name, args);
        let first = args[0].to_ascii_lowercase();
        let kill = first == b"client";
        let may_close = first == b"quit" || kill || route == Route::Unbounded;
        // HELLO 3 answers in RESP3 (an error would read the same in both).
        if first == b"hello" && args.get(1).is_some_and(|v| v == b"3") {
            conn.resp3 = true;
        }
        if route == Route::Blocking && transaction {
            self.run_in_transaction(&mut conn, args);
            return;
        }
        if !conn.send(args) {
            self.fail("the server closed the connection", name, args);
        }
        let wait = if route == Route::Blocking {
            BLOCK_PROBE
        } else {
            REPLY_TIMEOUT
        };
        match conn.read(wait) {
            Ok(Value::Push(_)) if route != Route::PubSub => self.fail(
                "a push message on a connection that subscribed to nothing",
                name,
                args,
            ),
            Ok(_) if route == Route::PubSub => loop {
                // One reply per channel, and maybe messages: all valid, none a drop.
                match conn.read(BLOCK_PROBE) {
                    Ok(_) => {}
                    Err(ReadError::Timeout) => break,
                    Err(e) => self.fail(&e.to_string(), name, args),
                }
            },
            Ok(_) => {}
            Err(ReadError::Timeout) if route == Route::Blocking => {
                self.confirm_blocked(&mut conn, args)
            }
            Err(ReadError::Closed) if may_close => self.confirm_closed(conn.id, args),
            Err(e) => self.fail(&e.to_string(), name, args),
        }
        if kill {
            self.replace_killed();
        }
    }

    /// Inside MULTI a blocking command must answer at once: MULTI, the command
    /// and EXEC each get their reply without waiting.
    fn run_in_transaction(&mut self, conn: &mut Conn, args: &[Vec<u8>]) {
        let name = "throw-away connection in MULTI";
        for request in [words(&["MULTI"]), args.to_vec(), words(&["EXEC"])] {
            if !conn.send(&request) {
                self.fail("the server closed the connection", name, &request);
            }
            if let Err(e) = conn.read(REPLY_TIMEOUT) {
                self.fail(&e.to_string(), name, &request);
            }
        }
    }

    /// A command that may block has not answered: it must be because the server
    /// blocked it, not because it hangs.
    fn confirm_blocked(&mut self, conn: &mut Conn, args: &[Vec<u8>]) {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let id = conn.id.to_string();
            let list = self.ctl(&["CLIENT", "LIST", "ID", &id]);
            let text = String::from_utf8_lossy(list.bytes().unwrap_or_default()).into_owned();
            let flags = text
                .split_whitespace()
                .find_map(|f| f.strip_prefix("flags="));
            if flags.is_some_and(|f| f.contains('b')) {
                return;
            }
            match conn.read(BLOCK_PROBE) {
                Ok(_) => return,
                Err(ReadError::Timeout) if Instant::now() < deadline => {}
                Err(ReadError::Timeout) => self.fail(
                    &format!("no reply, and the client is not blocked: {text}"),
                    "throw-away connection",
                    args,
                ),
                Err(e) => self.fail(&e.to_string(), "throw-away connection", args),
            }
        }
    }

    /// A connection the server legitimately closed: the process must live on
    /// and the client must be gone from CLIENT LIST (its slot freed).
    fn confirm_closed(&mut self, id: i64, args: &[Vec<u8>]) {
        let name = "throw-away connection";
        if let Ok(Some(_)) = self.server.child().try_wait() {
            self.fail("the server closed the connection", name, args);
        }
        let id = id.to_string();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            // CLIENT KILL may have closed the control connection too.
            let list = match self
                .ctl
                .call(&words(&["CLIENT", "LIST", "ID", &id]), REPLY_TIMEOUT)
            {
                Ok(list) => list,
                Err(ReadError::Closed) => {
                    self.ctl = self.open(false, args);
                    continue;
                }
                Err(e) => self.fail(&format!("CLIENT LIST after a close: {e}"), "control", args),
            };
            if list.bytes().is_some_and(<[u8]>::is_empty) {
                return;
            }
            if Instant::now() > deadline {
                self.fail(
                    &format!("the connection closed but its client stays listed: {list}"),
                    name,
                    args,
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// CLIENT KILL may legitimately close the fuzzer's own connections: replace
    /// those it closed (any other failure still fails).
    fn replace_killed(&mut self) {
        let ping = words(&["PING"]);
        for i in 0..3 {
            let conn = if i == 0 {
                &mut self.ctl
            } else {
                &mut self.mains[i - 1]
            };
            match conn.call(&ping, REPLY_TIMEOUT) {
                Ok(_) => {}
                Err(ReadError::Closed) => {
                    let fresh = self.open(i == 2, &ping);
                    if i == 0 {
                        self.ctl = fresh;
                    } else {
                        self.mains[i - 1] = fresh;
                    }
                }
                Err(e) => self.fail(
                    &format!("after CLIENT KILL: {e}"),
                    "a fuzzing connection",
                    &ping,
                ),
            }
        }
    }

    /// Reads back every key the fuzzing left: its type, its contents and its DUMP.
    pub fn read_back(&mut self) {
        let mut cursor = b"0".to_vec();
        loop {
            let scan = self.ctl_bytes(&[
                b"SCAN".to_vec(),
                cursor,
                b"COUNT".to_vec(),
                b"1000".to_vec(),
            ]);
            let [next, keys] = scan.items() else {
                panic!("SCAN replied {scan}");
            };
            cursor = next.bytes().unwrap_or_default().to_vec();
            let keys: Vec<Vec<u8>> = keys
                .items()
                .iter()
                .map(|k| k.bytes().unwrap_or_default().to_vec())
                .collect();
            let types = self.ctl_pipeline(
                &keys
                    .iter()
                    .map(|k| vec![b"TYPE".to_vec(), k.clone()])
                    .collect::<Vec<_>>(),
            );
            let mut reads = Vec::new();
            for (key, kind) in keys.into_iter().zip(types) {
                let read: &[&str] = match kind.bytes().unwrap_or_default() {
                    b"string" => &["GET"],
                    b"list" => &["LRANGE", "0", "-1"],
                    b"hash" => &["HGETALL"],
                    b"set" => &["SMEMBERS"],
                    b"zset" => &["ZRANGE", "0", "-1", "WITHSCORES"],
                    b"lock" => &["LOCK.INFO"],
                    _ => &["EXISTS"],
                };
                let mut args = vec![read[0].as_bytes().to_vec(), key.clone()];
                args.extend(words(&read[1..]));
                reads.extend([args, vec![b"DUMP".to_vec(), key]]);
            }
            self.ctl_pipeline(&reads);
            if cursor == b"0" {
                return;
            }
        }
    }

    /// DUMP payloads of the fixtures, valid and corrupted, for RESTORE.
    pub fn dumps(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for key in KEYS {
            if let Value::Bulk(payload) = self.ctl(&["DUMP", key]) {
                let mut flipped = payload.clone();
                let at = payload.len() / 2;
                flipped[at] ^= 0x5a;
                out.extend([
                    payload.clone(),
                    flipped,
                    payload[..payload.len() - 1].to_vec(),
                ]);
            }
        }
        out
    }
}

/// Subscribes to every keyspace notification (the server runs with them all
/// on) over RESP3 until `stop`, checking each message is a valid push; a close
/// (CLIENT KILL may hit it) reconnects. Returns how many arrived.
pub fn watch_notifications(port: u16, stop: Arc<AtomicBool>) -> JoinHandle<Result<usize, String>> {
    std::thread::spawn(move || {
        let mut seen = 0;
        loop {
            let mut conn = Conn::open(port, true, REPLY_TIMEOUT)?;
            conn.send(&words(&["PSUBSCRIBE", "__key*__:*"]));
            loop {
                match conn.read(Duration::from_millis(100)) {
                    Ok(Value::Push(_)) => seen += 1,
                    Ok(other) => return Err(format!("a subscriber got {other}")),
                    Err(ReadError::Timeout) if stop.load(Ordering::Relaxed) => return Ok(seen),
                    Err(ReadError::Timeout) => {}
                    Err(ReadError::Closed) => break,
                    Err(ReadError::Invalid(why)) => return Err(why),
                }
            }
        }
    })
}
