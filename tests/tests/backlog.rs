//! The listen backlog against the real server: listeners queue Redis's
//! `tcp-backlog` (511) connections, so a burst of connects waits in the accept
//! queue instead of being dropped into SYN retries (1 s, 3 s, 7 s...), as with
//! the 128 that `TcpListener::bind` asks for.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use ringkv_tests::{have_program, query as q, request, TestServer};

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
    if !have_program("ss") {
        eprintln!("skipping: `ss` (iproute2) is not installed");
        return;
    }
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

/// Opens `count` connections back to back, each sending `send` and expecting
/// `expect`, with at most [`AHEAD`] of them waiting for their reply. Returns
/// the connections (still open) and the connects that waited for a SYN retry.
fn storm(
    port: u16,
    count: usize,
    send: &[u8],
    expect: &[u8],
) -> (Vec<TcpStream>, Vec<(usize, Duration)>) {
    let mut open = Vec::with_capacity(count);
    let mut retried = Vec::new();
    let mut waiting = std::collections::VecDeque::new();
    let reply = |stream: &mut TcpStream, index: usize| {
        let mut got = vec![0u8; expect.len()];
        stream
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("connection {index}: no reply: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expect),
            "connection {index}"
        );
    };
    for index in 0..count {
        let before = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connection {index}: {e}"));
        let took = before.elapsed();
        if took >= SYN_RETRY {
            retried.push((index, took));
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(send).unwrap();
        waiting.push_back(index);
        open.push(stream);
        if waiting.len() == AHEAD {
            let oldest = waiting.pop_front().unwrap();
            reply(&mut open[oldest], oldest);
        }
    }
    for index in waiting {
        reply(&mut open[index], index);
    }
    (open, retried)
}

/// Raises this process's open-file limit (inherited by the servers it starts)
/// so `connections` sockets fit on both sides.
fn allow_files(connections: usize) {
    let fds = rlimit::increase_nofile_limit(4 * connections as u64).expect("raise RLIMIT_NOFILE");
    assert!(
        fds > 2 * connections as u64,
        "RLIMIT_NOFILE is {fds}: this test needs {} file descriptors",
        2 * connections
    );
}

#[test]
fn a_storm_of_3000_connects_is_queued_without_syn_retries_and_every_client_is_served() {
    allow_files(CONNECTIONS);
    let server = TestServer::start_with(&["--maxclients", "10000"]);
    let started = Instant::now();
    let (open, retried) = storm(server.port, CONNECTIONS, &request(&[b"PING"]), b"+PONG\r\n");
    let elapsed = started.elapsed();
    assert!(
        retried.is_empty(),
        "{} of {CONNECTIONS} connects waited for a SYN retry (first: {:?}); storm took {elapsed:?}",
        retried.len(),
        retried.first()
    );
    let mut con = server.connect();
    let info: String = q(&mut con, &["INFO", "clients"]);
    assert!(
        info.contains(&format!("connected_clients:{}\r\n", open.len() + 1)),
        "{info}"
    );
    eprintln!("{CONNECTIONS} connections served in {elapsed:?}");
}

#[test]
fn a_storm_of_refused_connects_is_answered_without_stalling_the_accept_loop() {
    allow_files(CONNECTIONS);
    let server = TestServer::start_with(&["--maxclients", "1"]);
    let mut holder = server.connect();
    let (_, retried) = storm(
        server.port,
        CONNECTIONS,
        b"",
        b"-ERR max number of clients reached\r\n",
    );
    assert!(
        retried.is_empty(),
        "{} of {CONNECTIONS} refused connects waited for a SYN retry (first: {:?})",
        retried.len(),
        retried.first()
    );
    let stats: String = q(&mut holder, &["INFO", "stats"]);
    assert!(
        stats.contains(&format!("rejected_connections:{CONNECTIONS}\r\n")),
        "{stats}"
    );
}
