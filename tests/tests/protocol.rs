//! The wire protocol with raw bytes: inline commands, pipelining, protocol errors and
//! the limits that keep bad input from hurting the server.

use std::time::Duration;

use ringkv_tests::{request, TestServer};

#[test]
fn inline_commands_work_like_telnet() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send(b"PING\r\n");
    assert_eq!(raw.reply_text(), "+PONG");
    raw.send(b"SET greeting \"hello world\"\r\nGET greeting\n");
    assert_eq!(raw.reply_text(), "+OK");
    assert_eq!(raw.reply_text(), "$hello world");
    raw.send(b"set 'it''s' x\r\n");
    assert_eq!(
        raw.reply_text(),
        "-ERR Protocol error: unbalanced quotes in request"
    );
    assert!(raw.is_closed());
}

#[test]
fn empty_lines_and_empty_multibulk_are_ignored() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send(b"\r\n\r\n*0\r\n   \r\nPING\r\n");
    assert_eq!(raw.reply_text(), "+PONG");
}

#[test]
fn ten_thousand_pipelined_commands_all_answer_in_order() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend(request(&[
            b"SET",
            format!("k{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
        batch.extend(request(&[b"GET", format!("k{i}").as_bytes()]));
    }
    raw.send(&batch);
    for i in 0..10_000 {
        assert_eq!(raw.reply_text(), "+OK");
        assert_eq!(raw.reply_text(), format!("${i}"));
    }
    assert_eq!(raw.call(&["DBSIZE"]), ":10000");
}

#[test]
fn requests_split_across_many_writes_are_reassembled() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let req = request(&[b"SET", b"key", b"a value split byte by byte"]);
    for byte in req {
        raw.send(&[byte]);
    }
    assert_eq!(raw.reply_text(), "+OK");
    assert_eq!(raw.call(&["GET", "key"]), "$a value split byte by byte");
}

#[test]
fn large_values_round_trip() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let value = vec![b'v'; 20 * 1024 * 1024];
    raw.send(&request(&[b"SET", b"big", &value]));
    assert_eq!(raw.reply_text(), "+OK");
    assert_eq!(raw.call(&["STRLEN", "big"]), format!(":{}", value.len()));
}

/// Each malformed request gets Redis's error text, then the connection closes;
/// requests before it in the same packet still run.
#[test]
fn protocol_errors_reply_then_close() {
    let server = TestServer::start();
    let cases: &[(&[u8], &str)] = &[
        (b"*x\r\n", "-ERR Protocol error: invalid multibulk length"),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'",
        ),
        (b"*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length"),
        (
            b"*1\r\n$4\r\nPINGxx",
            "-ERR Protocol error: expected CRLF after bulk string",
        ),
        (
            b"*3000000000\r\n",
            "-ERR Protocol error: invalid multibulk length",
        ),
        (
            b"SET a \"unterminated\r\n",
            "-ERR Protocol error: unbalanced quotes in request",
        ),
    ];
    for (input, expected) in cases {
        let mut raw = server.raw();
        let mut bytes = b"PING\r\n".to_vec();
        bytes.extend_from_slice(input);
        raw.send(&bytes);
        assert_eq!(raw.reply_text(), "+PONG");
        assert_eq!(
            raw.reply_text(),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert!(
            raw.is_closed(),
            "{:?} left the connection open",
            String::from_utf8_lossy(input)
        );
    }
    // The server is unharmed.
    assert_eq!(server.raw().call(&["PING"]), "+PONG");
}

#[test]
fn headers_without_line_end_are_refused_at_64k() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let mut junk = b"*".to_vec();
    junk.extend(std::iter::repeat_n(b'1', 70_000));
    raw.send(&junk);
    assert_eq!(
        raw.reply_text(),
        "-ERR Protocol error: too big mbulk count string"
    );
    assert!(raw.is_closed());
    let mut raw = server.raw();
    raw.send(&vec![b'a'; 70_000]);
    assert_eq!(
        raw.reply_text(),
        "-ERR Protocol error: too big inline request"
    );
    assert!(raw.is_closed());
}

#[test]
fn proto_max_bulk_len_is_enforced_and_configurable() {
    let server = TestServer::start_with(&["--proto-max-bulk-len", "1mb"]);
    let mut raw = server.raw();
    raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n");
    assert_eq!(raw.reply_text(), "-ERR Protocol error: invalid bulk length");
    assert!(raw.is_closed());
    let mut raw = server.raw();
    assert_eq!(raw.call(&["SET", "k", &"x".repeat(1 << 20)]), "+OK");
    assert_eq!(
        raw.call(&["APPEND", "k", "y"]),
        "-ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    assert_eq!(
        raw.call(&["CONFIG", "SET", "proto-max-bulk-len", "2mb"]),
        "+OK"
    );
    assert_eq!(
        raw.call(&["APPEND", "k", "y"]),
        format!(":{}", (1 << 20) + 1)
    );
}

#[test]
fn query_buffer_limit_closes_the_client() {
    let server = TestServer::start_with(&[
        "--client-query-buffer-limit",
        "1mb",
        "--proto-max-bulk-len",
        "1mb",
    ]);
    let mut raw = server.raw();
    // A pipeline of many incomplete... one request whose arguments total over 1 MB.
    let mut req = b"*3\r\n$3\r\nSET\r\n$1000000\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'k', 1_000_000));
    req.extend_from_slice(b"\r\n$1000000\r\n");
    req.extend(std::iter::repeat_n(b'v', 500_000));
    raw.send(&req);
    raw.set_timeout(Duration::from_secs(5));
    assert_eq!(
        raw.reply_text(),
        "-ERR query buffer limit exceeded (client-query-buffer-limit)"
    );
    assert!(raw.is_closed());
    assert_eq!(server.raw().call(&["PING"]), "+PONG");
}

#[test]
fn unauthenticated_clients_cannot_send_large_requests() {
    let server = TestServer::start_with(&["--requirepass", "pw"]);
    let mut raw = server.raw();
    raw.send(b"*11\r\n");
    assert_eq!(
        raw.reply_text(),
        "-ERR Protocol error: unauthenticated multibulk length"
    );
    assert!(raw.is_closed());
    let mut raw = server.raw();
    raw.send(b"*2\r\n$4\r\nAUTH\r\n$20000\r\n");
    assert_eq!(
        raw.reply_text(),
        "-ERR Protocol error: unauthenticated bulk length"
    );
    assert!(raw.is_closed());
    let mut raw = server.raw();
    assert_eq!(raw.call(&["AUTH", "pw"]), "+OK");
    assert_eq!(raw.call(&["SET", "k", &"x".repeat(20_000)]), "+OK");
}

#[test]
fn maxclients_refuses_extra_connections() {
    let server = TestServer::start_with(&["--maxclients", "2"]);
    let mut first = server.raw();
    let mut second = server.raw();
    assert_eq!(first.call(&["PING"]), "+PONG");
    assert_eq!(second.call(&["PING"]), "+PONG");
    let mut third = server.raw();
    assert_eq!(third.reply_text(), "-ERR max number of clients reached");
    assert!(third.is_closed());
    drop(second);
    // The slot frees once the server notices the disconnect.
    let mut retry = None;
    for _ in 0..100 {
        let mut c = server.raw();
        c.send_command(&["PING"]);
        let reply = c.reply_text();
        if reply == "+PONG" {
            retry = Some(reply);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(retry.as_deref(), Some("+PONG"));
    let stats = first.call(&["INFO", "stats"]);
    assert!(!stats.contains("rejected_connections:0"), "{stats}");
}

#[test]
fn unknown_commands_and_wrong_arity_keep_the_connection() {
    let server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(
        raw.call(&["FOO", "a", "b"]),
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        raw.call(&["FOO"]),
        "-ERR unknown command 'FOO', with args beginning with: "
    );
    assert_eq!(
        raw.call(&["GET", "a", "b"]),
        "-ERR wrong number of arguments for 'get' command"
    );
    // Line breaks in arguments never break the reply onto two lines.
    assert_eq!(
        raw.call(&["BAD\r\nCMD"]),
        "-ERR unknown command 'BAD  CMD', with args beginning with: "
    );
    assert_eq!(raw.call(&["PING"]), "+PONG");
}

#[test]
fn binary_garbage_never_crashes_the_server() {
    let server = TestServer::start();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..50 {
        let mut raw = server.raw();
        raw.set_timeout(Duration::from_millis(200));
        let mut junk = vec![b'*'; 1];
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push((seed & 0xff) as u8);
        }
        raw.send(&junk);
        let _ = raw.is_closed();
    }
    assert_eq!(server.raw().call(&["PING"]), "+PONG");
}
