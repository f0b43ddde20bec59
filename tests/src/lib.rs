//! Helpers for end-to-end tests: start the real `ringkv-server` binary on a free
//! loopback port, talk to it with the `redis` crate or raw bytes, and always stop it.
//!
//! The binary is the one `cargo test --workspace` builds (the server package has
//! integration tests, so Cargo builds its binary before any test runs). Set
//! `RINGKV_SERVER_BIN` to test another build.

pub mod cluster;
pub mod reference;
pub mod replication;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::{BytesFrame as Frame3, Resp3Frame};

/// The server binary under test.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGKV_SERVER_BIN") {
        return path.into();
    }
    // Test executables live in target/<profile>/deps; the binary in target/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps layout");
    let bin = profile_dir.join("ringkv-server");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` or `cargo build -p ringkv-server` first",
        bin.display()
    );
    bin
}

/// A running `ringkv-server` process, stopped when dropped.
pub struct TestServer {
    child: Option<Child>,
    /// Its client port on 127.0.0.1.
    pub port: u16,
}

impl TestServer {
    /// Starts a server with default settings.
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Starts a server with extra command-line flags. The server picks a free port
    /// itself (`--port 0`) and announces it in its log, so parallel tests never race
    /// for ports.
    pub fn start_with(args: &[&str]) -> TestServer {
        TestServer::start_on(0, args)
    }

    /// Starts a server on `port` (0: any free one) with extra flags; cluster
    /// tests need to know every node's port before starting any.
    ///
    /// Unless the flags set it, `lock-delay` is 0: a fresh server grants locks
    /// at once (by default it refuses new grants for a minute after it
    /// starts, having forgotten the grants of its previous life).
    pub fn start_on(port: u16, args: &[&str]) -> TestServer {
        let port = port.to_string();
        // RINGKV_TEST_LOG=<level> echoes the server's log at that level.
        let log = std::env::var("RINGKV_TEST_LOG").ok();
        let lock_delay: &[&str] = match args.contains(&"--lock-delay") {
            true => &[],
            false => &["--lock-delay", "0"],
        };
        let mut child = Command::new(server_binary())
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port,
                "--loglevel",
                log.as_deref().unwrap_or("notice"),
            ])
            .args(lock_delay)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ringkv-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Find the port, then keep draining so the server never blocks on logging.
            let echo = log.is_some();
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("[{pid}] {line}");
                }
                if let Some(port) = line
                    .split("ready to accept connections on ")
                    .nth(1)
                    .and_then(|addr| addr.trim().rsplit(':').next()?.parse::<u16>().ok())
                {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => TestServer {
                child: Some(child),
                port,
            },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("ringkv-server did not start: {status:?}");
            }
        }
    }

    /// `redis://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A new RESP2 connection through the `redis` crate.
    pub fn connect(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect")
    }

    /// A new RESP3 connection through the `redis` crate.
    pub fn connect_resp3(&self) -> redis::Connection {
        redis::Client::open(format!("{}?protocol=resp3", self.url()))
            .and_then(|c| c.get_connection())
            .expect("connect")
    }

    /// A raw TCP connection.
    pub fn raw(&self) -> RawConnection {
        RawConnection::connect(self.port)
    }

    /// The process, while it runs.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("server running")
    }

    /// Waits up to `timeout` for the process to exit; its exit status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child().try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The text of an error reply, as the server sent it (`ERR ...`, `WRONGTYPE ...`).
pub fn error_text(err: &redis::RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => err.to_string(),
    }
}

fn command(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd
}

/// Runs a command through the `redis` crate, panicking (naming the command) if it
/// fails.
pub fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    command(args)
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs a command expected to fail and returns the error text.
pub fn expect_err(con: &mut redis::Connection, args: &[&str]) -> String {
    match command(args).query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?} succeeded with {v:?}"),
        Err(e) => error_text(&e),
    }
}

/// A raw connection for byte-level tests; replies are parsed with `redis-protocol`.
pub struct RawConnection {
    stream: TcpStream,
    buf: BytesMut,
    resp3: bool,
}

impl RawConnection {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> RawConnection {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        RawConnection {
            stream,
            buf: BytesMut::new(),
            resp3: false,
        }
    }

    /// Parses the following replies as RESP3 (after `HELLO 3`) or RESP2.
    pub fn set_resp3(&mut self, resp3: bool) {
        self.resp3 = resp3;
    }

    /// The next keyspace event this subscriber to `__keyevent@0__:*`
    /// receives, as `event key`.
    pub fn next_keyevent(&mut self) -> String {
        let text = self.reply_text();
        let parts: Vec<&str> = text.trim_matches(['[', ']']).split(", ").collect();
        format!(
            "{} {}",
            parts[2].trim_start_matches("$__keyevent@0__:"),
            &parts[3][1..]
        )
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends a command as a multibulk request.
    pub fn send_command(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&request(&args));
    }

    /// Reads the next reply and renders it as text: `+OK`, `-ERR ...`, `:1`,
    /// `$value`, `(nil)`, `[a, b]` for arrays and `{k: v}` for maps (sorted by key).
    pub fn reply_text(&mut self) -> String {
        loop {
            let rendered = if self.resp3 {
                redis_protocol::resp3::decode::complete::decode_bytes_mut(&mut self.buf)
                    .expect("valid RESP3 reply")
                    .map(|(frame, _, _)| render3(&frame))
            } else {
                redis_protocol::resp2::decode::decode_bytes_mut(&mut self.buf)
                    .expect("valid RESP2 reply")
                    .map(|(frame, _, _)| render2(&frame))
            };
            if let Some(text) = rendered {
                return text;
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed while waiting for a reply");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and returns its rendered reply.
    pub fn call(&mut self, args: &[&str]) -> String {
        self.send_command(args);
        self.reply_text()
    }

    /// True if the server closes the connection (EOF or reset) within the read
    /// timeout; bytes that arrive meanwhile are kept for `reply_text`.
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// True if bytes arrived that no reply was read from yet.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Sets how long reads wait.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("timeout");
    }
}

fn render2(frame: &Frame2) -> String {
    match frame {
        Frame2::SimpleString(s) => format!("+{}", String::from_utf8_lossy(s)),
        Frame2::Error(e) => format!("-{e}"),
        Frame2::Integer(n) => format!(":{n}"),
        Frame2::BulkString(b) => format!("${}", String::from_utf8_lossy(b)),
        Frame2::Array(items) => format!(
            "[{}]",
            items.iter().map(render2).collect::<Vec<_>>().join(", ")
        ),
        Frame2::Null => "(nil)".to_string(),
    }
}

fn render3(frame: &Frame3) -> String {
    match frame {
        Frame3::SimpleString { data, .. } => format!("+{}", String::from_utf8_lossy(data)),
        Frame3::SimpleError { data, .. } => format!("-{data}"),
        Frame3::BlobError { data, .. } => format!("-{}", String::from_utf8_lossy(data)),
        Frame3::Number { data, .. } => format!(":{data}"),
        Frame3::Double { data, .. } => format!(",{data}"),
        Frame3::Boolean { data, .. } => format!("#{data}"),
        Frame3::BlobString { data, .. } => format!("${}", String::from_utf8_lossy(data)),
        Frame3::VerbatimString { data, .. } => format!("={}", String::from_utf8_lossy(data)),
        Frame3::Null => "(nil)".to_string(),
        Frame3::Array { data, .. } | Frame3::Push { data, .. } => {
            format!(
                "[{}]",
                data.iter().map(render3).collect::<Vec<_>>().join(", ")
            )
        }
        Frame3::Set { data, .. } => {
            // Sets are unordered: render sorted so assertions are stable.
            let mut items: Vec<String> = data.iter().map(render3).collect();
            items.sort();
            format!("~[{}]", items.join(", "))
        }
        Frame3::Map { data, .. } => {
            // Maps arrive as a hash map: render sorted by key so assertions are stable.
            let mut pairs: Vec<String> = data
                .iter()
                .map(|(k, v)| format!("{}: {}", render3(k), render3(v)))
                .collect();
            pairs.sort();
            format!("{{{}}}", pairs.join(", "))
        }
        other => format!("{:?}", other.kind()),
    }
}

/// Encodes a command as a RESP multibulk request.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// True if a program is on the PATH (tests that drive redis-cli skip without it).
pub fn have_program(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
