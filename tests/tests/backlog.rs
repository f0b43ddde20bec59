//! The listen backlog against the real server: listeners queue Redis's
//! `tcp-backlog` (511) connections, so a burst of connects waits in the accept
//! queue instead of being dropped into SYN retries (1 s, 3 s, 7 s...), as with
//! the 128 that `TcpListener::bind` asks for.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use ringkv_tests::{query as q, request, TestServer};

/// The backlog the kernel grants for `requested`: it caps every backlog at
/// `somaxconn`.
fn granted_backlog(requested: u32) -> u32 {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("read somaxconn")
        .trim()
        .parse::<u32>()
        .expect("somaxconn is a number");
    requested.min(somaxconn)
}

/// The backlog of each socket listening on `port` (the Send-Q column `ss`
/// shows for a listening socket), by local address.
fn listen_backlogs(port: u16) -> Vec<(String, u32)> {
    let out = Command::new("ss")
        .args(["-Hlnt", "sport", "=", &format!(":{port}")])
        .output()
        .expect("run ss (iproute2)");
    assert!(out.status.success(), "ss failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let backlog = cols[2].parse().unwrap_or_else(|_| panic!("{line}"));
            (cols[3].to_string(), backlog)
        })
        .collect()
}

#[test]
fn listeners_get_the_tcp_backlog_on_ipv4_and_ipv6() {
    let server = TestServer::start_with(&["--bind", "::1"]);
    let mut con = server.connect();
    let config: Vec<String> = q(&mut con, &["CONFIG", "GET", "tcp-backlog"]);
    assert_eq!(config, ["tcp-backlog", "511"]);
    let mut backlogs = listen_backlogs(server.port);
    backlogs.sort();
    let expected = granted_backlog(511);
    assert_eq!(
        backlogs,
        [
            (format!("127.0.0.1:{}", server.port), expected),
            (format!("[::1]:{}", server.port), expected),
        ]
    );

    let server = TestServer::start_with(&["--tcp-backlog", "300"]);
    assert_eq!(
        listen_backlogs(server.port),
        [(format!("127.0.0.1:{}", server.port), granted_backlog(300))]
    );
}

/// Connections opened back to back.
const CONNECTIONS: usize = 3_000;
/// At most this many connections are opened ahead of their PONG, so at most
/// this many wait in the accept queue: more than a backlog of 128 holds (a
/// client faster than the server overflows it, and every dropped connect waits
/// a second for its SYN retry) and fewer than 511, so with the right backlog
/// no connect can be dropped however slowly the server runs. The test checks
/// the backlog, not the machine's speed.
const AHEAD: usize = 400;
/// No connect on loopback takes this long unless its SYN was dropped and
/// retried (the first retry comes after one second).
const SYN_RETRY: Duration = Duration::from_secs(1);

#[test]
fn a_storm_of_3000_connects_is_queued_without_syn_retries_and_every_client_is_served() {
    let fds = rlimit::increase_nofile_limit(4 * CONNECTIONS as u64).expect("raise RLIMIT_NOFILE");
    assert!(
        fds > 2 * CONNECTIONS as u64,
        "RLIMIT_NOFILE is {fds}: this test needs {} file descriptors",
        2 * CONNECTIONS
    );
    let server = TestServer::start_with(&["--maxclients", "10000"]);
    let ping = request(&[b"PING"]);
    let mut open = Vec::with_capacity(CONNECTIONS);
    let mut slow = Vec::new();
    let mut pending = std::collections::VecDeque::new();
    let pong = |stream: &mut TcpStream, index: usize| {
        let mut reply = [0u8; 7];
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("connection {index}: no PONG: {e}"));
        assert_eq!(&reply, b"+PONG\r\n", "connection {index}");
    };
    let started = Instant::now();
    for index in 0..CONNECTIONS {
        let before = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .unwrap_or_else(|e| panic!("connection {index}: {e}"));
        let took = before.elapsed();
        if took >= SYN_RETRY {
            slow.push((index, took));
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(&ping).unwrap();
        pending.push_back(index);
        open.push(stream);
        if pending.len() == AHEAD {
            let oldest = pending.pop_front().unwrap();
            pong(&mut open[oldest], oldest);
        }
    }
    for index in pending {
        pong(&mut open[index], index);
    }
    let elapsed = started.elapsed();
    assert!(
        slow.is_empty(),
        "{} of {CONNECTIONS} connects waited for a SYN retry (first: {:?}); storm took {elapsed:?}",
        slow.len(),
        slow.first()
    );
    let mut con = server.connect();
    let info: String = q(&mut con, &["INFO", "clients"]);
    assert!(
        info.contains(&format!("connected_clients:{}\r\n", CONNECTIONS + 1)),
        "{info}"
    );
    eprintln!("{CONNECTIONS} connections served in {elapsed:?}");
}
