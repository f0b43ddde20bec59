//! A real `redis-server` beside ringkv, for tests that compare the two
//! reply for reply.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::have_program;

/// A `redis-server` on a free loopback port, without persistence, killed when
/// dropped.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisServer {
    /// Starts one; `None`, with the reason printed, where `redis-server` is not
    /// installed, so the calling test can skip.
    pub fn start() -> Option<RedisServer> {
        if !have_program("redis-server") {
            eprintln!("redis-server is not installed: the comparison with Redis is skipped");
            return None;
        }
        let port = crate::cluster::cluster_ports(1)[0];
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// `redis://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A connection through the `redis` crate.
    pub fn connect(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("client")
            .get_connection()
            .expect("connect to redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
