//! Helpers for replication tests between plain nodes (`REPLICAOF`).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{query as q, TestServer};

/// Waits until `done` holds, failing with `what` after 20 s.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `INFO` field.
pub fn info(con: &mut redis::Connection, section: &str, name: &str) -> String {
    let text: String = q(con, &["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .to_string()
}

/// Makes `replica` follow `master` and waits until its sync is done and the
/// master counts it online.
pub fn follow(replica: &TestServer, master: &TestServer) {
    let (mut r, mut m) = (replica.connect(), master.connect());
    let port = master.port.to_string();
    let _: String = q(&mut r, &["REPLICAOF", "127.0.0.1", &port]);
    wait_for("the replica's sync", || {
        info(&mut r, "replication", "master_link_status") == "up"
            && info(&mut r, "replication", "master_sync_in_progress") == "0"
            && info(&mut m, "replication", "slave0").contains("state=online")
    });
}

/// Waits until `replica` applied everything `master` wrote so far.
pub fn caught_up(master: &TestServer, replica: &TestServer) {
    let (mut m, mut r) = (master.connect(), replica.connect());
    let target = info(&mut m, "replication", "master_repl_offset");
    wait_for("the replica to catch up", || {
        info(&mut r, "replication", "master_repl_offset") == target
    });
}

/// Sends signal `name` (`STOP`, `CONT`, `KILL`) to process `pid`.
pub fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
