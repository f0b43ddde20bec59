//! Requests that tried to crash, stall or bloat the server (issue 10): each is a
//! regression test for one finding.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ringkv_tests::{query as q, request, TestServer};

/// The `CLIENT LIST` fields of client `id`; `None` once it is gone.
fn client_fields(admin: &mut redis::Connection, id: &str) -> Option<HashMap<String, String>> {
    let line: String = q(admin, &["CLIENT", "LIST", "ID", id]);
    (!line.trim().is_empty()).then(|| {
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

/// Polls until `done` holds, failing after `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn info_field(con: &mut redis::Connection, field: &str) -> String {
    let info: String = q(con, &["INFO", "everything"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .trim()
        .to_string()
}

/// A raw client that sends requests and never reads a reply.
fn non_reader(server: &TestServer, admin: &mut redis::Connection) -> (TcpStream, String) {
    let before: String = q(admin, &["CLIENT", "LIST"]);
    let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let known: Vec<String> = before
        .lines()
        .filter_map(|l| Some(l.split_whitespace().next()?.to_string()))
        .collect();
    let mut id = None;
    wait_for(Duration::from_secs(5), "the new client to register", || {
        let now: String = q(admin, &["CLIENT", "LIST"]);
        id = now
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .find(|f| !known.iter().any(|k| k == f))
            .map(|f| f.trim_start_matches("id=").to_string());
        id.is_some()
    });
    (stream, id.expect("found"))
}

#[test]
fn random_picks_with_huge_negative_counts_answer_an_error_and_leak_nothing() {
    // A small ceiling keeps the debug-build test quick; the default is the same
    // rule with client-query-buffer-limit (1gb).
    let server = TestServer::start_with(&[
        "--maxclients",
        "4",
        "--proto-max-bulk-len",
        "1mb",
        "--client-query-buffer-limit",
        "2mb",
    ]);
    let mut admin = server.connect();
    q::<()>(&mut admin, &["SADD", "s", "a", "b"]);
    q::<()>(&mut admin, &["HSET", "h", "f", "v"]);
    q::<()>(&mut admin, &["ZADD", "z", "1", "m"]);
    let attacks: &[&[&str]] = &[
        &["SRANDMEMBER", "s", "-1000000000000000"],
        &["SRANDMEMBER", "s", "-4611686018427387903"],
        &["SRANDMEMBER", "s", "-9223372036854775807"],
        &["HRANDFIELD", "h", "-1000000000000000"],
        &["HRANDFIELD", "h", "-4611686018427387903", "WITHVALUES"],
        &["ZRANDMEMBER", "z", "-1000000000000000"],
        &["ZRANDMEMBER", "z", "-4611686018427387903", "WITHSCORES"],
    ];
    // More attacks than maxclients: a leaked client slot would refuse the rest.
    for round in 0..3 {
        for args in attacks {
            let mut raw = server.raw();
            let reply = raw.call(args);
            assert!(
                reply.starts_with("-ERR reply exceeds the client output buffer limit"),
                "round {round} {args:?}: {reply}"
            );
            assert!(raw.is_closed(), "{args:?} left the connection open");
        }
    }
    assert_eq!(q::<String>(&mut admin, &["PING"]), "PONG");
    assert_eq!(q::<i64>(&mut admin, &["SCARD", "s"]), 2);
    let disconnections = info_field(&mut admin, "client_output_buffer_limit_disconnections");
    assert_eq!(disconnections, (3 * attacks.len()).to_string());
    // Counts Redis refuses are refused with its texts; small ones still work.
    let mut raw = server.raw();
    assert_eq!(
        raw.call(&["SRANDMEMBER", "s", "-9223372036854775808"]),
        "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(
        raw.call(&["HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES"]),
        "-ERR value is out of range"
    );
    assert_eq!(
        raw.call(&["HRANDFIELD", "h", "-2", "WITHVALUES"]),
        "[$f, $v, $f, $v]"
    );
    assert_eq!(raw.call(&["ZRANDMEMBER", "z", "-2"]), "[$m, $m]");
}

#[test]
fn a_panicking_command_ends_only_its_own_connection() {
    let server = TestServer::start_with(&["--enable-debug-command", "yes", "--maxclients", "3"]);
    let mut admin = server.connect();
    q::<()>(&mut admin, &["SET", "k", "v"]);
    q::<()>(&mut admin, &["WATCH", "k"]);
    for _ in 0..10 {
        let mut raw = server.raw();
        raw.call(&["WATCH", "k"]);
        // RESP3 lets a subscriber run any command.
        raw.send_command(&["HELLO", "3"]);
        raw.set_resp3(true);
        raw.reply_text();
        raw.call(&["SUBSCRIBE", "news"]);
        let reply = raw.call(&["DEBUG", "PANIC"]);
        assert_eq!(
            reply,
            "-ERR internal error while running the command; closing the connection"
        );
        assert!(raw.is_closed());
    }
    // The server, the other client and its state are untouched, and no client
    // slot leaked (maxclients is 3).
    assert_eq!(q::<String>(&mut admin, &["GET", "k"]), "v");
    let mut a = server.raw();
    let mut b = server.raw();
    assert_eq!(a.call(&["PING"]), "+PONG");
    assert_eq!(b.call(&["PING"]), "+PONG");
    let list: String = q(&mut admin, &["CLIENT", "LIST"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    let numsub: redis::Value = q(&mut admin, &["PUBSUB", "NUMSUB", "news"]);
    assert_eq!(
        numsub,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"news".to_vec()),
            redis::Value::Int(0)
        ])
    );
}

#[test]
fn debug_is_refused_unless_enabled() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let reply = raw.call(&["DEBUG", "PANIC"]);
    assert!(
        reply.starts_with("-ERR DEBUG command not allowed."),
        "{reply}"
    );
    assert_eq!(raw.call(&["PING"]), "+PONG");
    let local = TestServer::start_with(&["--enable-debug-command", "local"]);
    let mut raw = local.raw();
    assert!(raw.call(&["DEBUG", "HELP"]).contains("PANIC"));
}

#[test]
fn http_requests_are_dropped_unanswered() {
    let server = TestServer::start();
    let mut admin = server.connect();
    q::<()>(&mut admin, &["SET", "precious", "1"]);
    let attacks: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:6379\r\nContent-Type: text/plain\r\n\r\nFLUSHALL\r\n",
        b"post /x HTTP/1.0\r\n\r\nSHUTDOWN\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nFLUSHALL\r\n",
    ];
    for attack in attacks {
        let mut raw = server.raw();
        raw.send(attack);
        assert!(raw.is_closed(), "{}", String::from_utf8_lossy(attack));
    }
    // The same words as commands of the RESP protocol are refused too.
    let mut raw = server.raw();
    raw.send(&request(&[b"HOST:", b"x"]));
    assert!(raw.is_closed());
    assert_eq!(q::<String>(&mut admin, &["GET", "precious"]), "1");
}

#[test]
fn a_client_that_stops_reading_is_closed_after_timeout_and_shows_its_pending_output() {
    let server = TestServer::start_with(&["--timeout", "1"]);
    let mut admin = server.connect();
    // Larger than what the kernel's socket buffers absorb, so output stays pending.
    let big = "x".repeat(16 << 20);
    q::<()>(&mut admin, &["SET", "big", &big]);
    let (mut stream, id) = non_reader(&server, &mut admin);
    stream.write_all(&request(&[b"GET", b"big"])).unwrap();
    let mut pending = 0;
    wait_for(
        Duration::from_secs(10),
        "pending output in CLIENT LIST",
        || {
            let fields = client_fields(&mut admin, &id);
            if let Some(f) = fields {
                pending = f["omem"].parse::<u64>().unwrap();
                let total: u64 = f["tot-mem"].parse().unwrap();
                assert!(total >= pending, "tot-mem {total} < omem {pending}");
            }
            pending > 0
        },
    );
    // Idle for `timeout` while the output waits: closed, as Redis closes it.
    wait_for(
        Duration::from_secs(10),
        "the non-reader to be closed",
        || client_fields(&mut admin, &id).is_none(),
    );
    assert_eq!(q::<String>(&mut admin, &["PING"]), "PONG");
}

#[test]
fn normal_clients_are_held_to_their_output_buffer_limits() {
    let server = TestServer::start();
    let mut admin = server.connect();
    q::<()>(&mut admin, &["SET", "small", &"s".repeat(512 << 10)]);
    q::<()>(&mut admin, &["SET", "big", &"b".repeat(2 << 20)]);
    q::<()>(
        &mut admin,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 1mb 0 0",
        ],
    );
    // Hard limit: a reply over it is refused and the client closed.
    let mut raw = server.raw();
    assert_eq!(raw.call(&["STRLEN", "small"]), ":524288");
    assert!(raw.call(&["GET", "small"]).len() > 512 << 10);
    let reply = raw.call(&["GET", "big"]);
    assert!(reply.starts_with("-ERR reply exceeds"), "{}", &reply[..40]);
    assert!(raw.is_closed());
    assert_eq!(
        info_field(&mut admin, "client_output_buffer_limit_disconnections"),
        "1"
    );

    // Soft limit: pending output over it for its seconds closes a slow reader.
    q::<()>(&mut admin, &["SET", "huge", &"h".repeat(16 << 20)]);
    q::<()>(
        &mut admin,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 0 1mb 1",
        ],
    );
    let (mut stream, id) = non_reader(&server, &mut admin);
    stream.write_all(&request(&[b"GET", b"huge"])).unwrap();
    wait_for(
        Duration::from_secs(15),
        "the slow reader to be closed",
        || client_fields(&mut admin, &id).is_none(),
    );
    assert_eq!(
        info_field(&mut admin, "client_output_buffer_limit_disconnections"),
        "2"
    );
    // A client that reads is not affected by the soft limit.
    let mut reader = server.raw();
    assert!(reader.call(&["GET", "huge"]).len() > 16 << 20);
    assert_eq!(reader.call(&["PING"]), "+PONG");
}
