//! What the server holds is what it counts: big arguments received into their
//! own buffer and stored without a copy, strings that grow with room to spare,
//! `SETRANGE` allocating once, and client buffers inside `used_memory`.

use std::time::{Duration, Instant};

use redis::cmd;
use ringkv_tests::{expect_err, query as q, request, TestServer};

/// `len` bytes of a repeating, position-dependent ASCII pattern, so a byte moved,
/// lost or duplicated anywhere shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i / 7 + i * 13 + usize::from(seed)) % 26) as u8)
        .collect()
}

fn get(con: &mut redis::Connection, key: &str) -> Vec<u8> {
    cmd("GET").arg(key).query(con).unwrap()
}

/// A field of `INFO memory`.
fn info_memory(con: &mut redis::Connection, field: &str) -> u64 {
    let text: String = cmd("INFO").arg("memory").query(con).unwrap();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO memory"))
}

/// Peak resident memory of the server process (`VmHWM`), in bytes.
fn peak_rss(server: &mut TestServer) -> u64 {
    let pid = server.child().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn big_values_are_stored_intact_by_every_command_that_stores_one() {
    let server = TestServer::start();
    let mut con = server.connect();
    // Around the 32 KiB threshold for receiving an argument apart, and far above.
    let sizes = [32 * 1024 - 1, 32 * 1024, 100_000, 3 << 20];
    for (i, &len) in sizes.iter().enumerate() {
        let value = pattern(len, i as u8);
        let _: () = cmd("SET").arg("set").arg(&value).query(&mut con).unwrap();
        assert_eq!(get(&mut con, "set"), value, "SET {len}");
        let _: () = cmd("SETEX")
            .arg("setex")
            .arg(100)
            .arg(&value)
            .query(&mut con)
            .unwrap();
        let _: () = cmd("PSETEX")
            .arg("psetex")
            .arg(100_000)
            .arg(&value)
            .query(&mut con)
            .unwrap();
        let _: i64 = cmd("SETNX")
            .arg(format!("setnx{i}"))
            .arg(&value)
            .query(&mut con)
            .unwrap();
        let _: Option<Vec<u8>> = cmd("GETSET")
            .arg("getset")
            .arg(&value)
            .query(&mut con)
            .unwrap();
        let _: i64 = cmd("APPEND")
            .arg(format!("append{i}"))
            .arg(&value)
            .query(&mut con)
            .unwrap();
        let other = pattern(len, 100 + i as u8);
        let _: () = cmd("MSET")
            .arg("m1")
            .arg(&value)
            .arg("small")
            .arg("x")
            .arg("m2")
            .arg(&other)
            .query(&mut con)
            .unwrap();
        for key in [
            "setex",
            "psetex",
            &format!("setnx{i}"),
            "getset",
            &format!("append{i}"),
            "m1",
        ] {
            assert_eq!(get(&mut con, key), value, "{key} {len}");
        }
        assert_eq!(get(&mut con, "m2"), other, "m2 {len}");
        assert_eq!(get(&mut con, "small"), b"x");
    }
    // A big value with options after it: the arguments behind it are read too.
    let value = pattern(1 << 20, 7);
    let old: Option<Vec<u8>> = cmd("SET")
        .arg("opt")
        .arg(&value)
        .arg("EX")
        .arg(1000)
        .arg("GET")
        .query(&mut con)
        .unwrap();
    assert_eq!(old, None);
    assert!((990..=1000).contains(&q::<i64>(&mut con, &["TTL", "opt"])));
    // A value stored in its receive buffer can then be changed and grown.
    assert_eq!(q::<i64>(&mut con, &["APPEND", "opt", "!"]), (1 << 20) + 1);
    assert_eq!(
        q::<i64>(&mut con, &["SETRANGE", "opt", "0", "XY"]),
        (1 << 20) + 1
    );
    let mut expected = value.clone();
    expected.push(b'!');
    expected[..2].copy_from_slice(b"XY");
    assert_eq!(get(&mut con, "opt"), expected);
    // COPY shares nothing visible: changing the copy leaves the original.
    let _: () = cmd("SET").arg("orig").arg(&value).query(&mut con).unwrap();
    assert_eq!(q::<i64>(&mut con, &["COPY", "orig", "dup"]), 1);
    assert_eq!(q::<i64>(&mut con, &["APPEND", "dup", "?"]), (1 << 20) + 1);
    assert_eq!(get(&mut con, "orig"), value);
    // A big key works as any key.
    let key = pattern(40_000, 3);
    let _: () = cmd("SET").arg(&key).arg("v").query(&mut con).unwrap();
    let got: Vec<u8> = cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(got, b"v");
}

#[test]
fn big_arguments_arriving_slowly_between_pipelined_requests_decode_intact() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let a = pattern(2 << 20, 1);
    let (c, d) = (pattern(100_000, 2), pattern(50_000, 3));
    let mut stream = request(&[b"SET", b"a", &a, b"EX", b"1000"]);
    stream.extend_from_slice(b"PING\r\n");
    stream.extend(request(&[b"SET", b"b", b"small"]));
    stream.extend(request(&[b"MSET", b"c", &c, b"d", &d]));
    stream.extend(request(&[b"ECHO", &d]));
    stream.extend(request(&[b"GET", b"a"]));
    stream.extend(request(&[b"GET", b"b"]));
    // Uneven pieces with pauses, so the server sees every argument partly.
    let mut sent = 0;
    for (i, piece) in [10_000, 1, 70_000, 3, 500_000].iter().cycle().enumerate() {
        let end = (sent + piece).min(stream.len());
        raw.send(&stream[sent..end]);
        sent = end;
        if sent == stream.len() {
            break;
        }
        if i % 3 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let text = |bytes: &[u8]| format!("${}", String::from_utf8_lossy(bytes));
    raw.set_timeout(Duration::from_secs(30));
    assert_eq!(raw.reply_text(), "+OK");
    assert_eq!(raw.reply_text(), "+PONG");
    assert_eq!(raw.reply_text(), "+OK");
    assert_eq!(raw.reply_text(), "+OK");
    assert_eq!(raw.reply_text(), text(&d));
    assert_eq!(raw.reply_text(), text(&a));
    assert_eq!(raw.reply_text(), "$small");
    assert_eq!(raw.call(&["STRLEN", "c"]), ":100000");
    let mut con = server.connect();
    assert_eq!(get(&mut con, "c"), c);
    assert_eq!(get(&mut con, "d"), d);
}

#[test]
fn a_blocked_command_with_a_big_argument_runs_again_with_it() {
    let server = TestServer::start();
    let mut blocked = server.raw();
    // BLMOVE with a 40 KB destination name, arriving in two parts.
    let destination = pattern(40_000, 9);
    let stream = request(&[b"BLMOVE", b"src", &destination, b"LEFT", b"RIGHT", b"0"]);
    blocked.send(&stream[..1000]);
    std::thread::sleep(Duration::from_millis(50));
    blocked.send(&stream[1000..]);
    std::thread::sleep(Duration::from_millis(100));
    let mut con = server.connect();
    // A string at the destination: the move cannot be served in place, so the
    // blocked command runs again, and must find its destination's name again.
    let _: () = cmd("SET")
        .arg(&destination)
        .arg("x")
        .query(&mut con)
        .unwrap();
    assert_eq!(q::<i64>(&mut con, &["LPUSH", "src", "item"]), 1);
    blocked.set_timeout(Duration::from_secs(10));
    assert!(blocked.reply_text().starts_with("-WRONGTYPE"));
    assert_eq!(blocked.call(&["PING"]), "+PONG");
    assert_eq!(q::<i64>(&mut con, &["LLEN", "src"]), 1);
}

#[test]
fn setrange_reaches_512_mb_in_one_allocation_and_refuses_beyond() {
    let mut server = TestServer::start();
    let mut con = server.connect();
    let before = peak_rss(&mut server);
    assert_eq!(
        q::<i64>(&mut con, &["SETRANGE", "k", "536870911", "x"]),
        536_870_912
    );
    assert_eq!(q::<i64>(&mut con, &["STRLEN", "k"]), 536_870_912);
    let tail: Vec<u8> = cmd("GETRANGE")
        .arg("k")
        .arg(536_870_910)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(tail, b"\0x");
    // One zeroed allocation, touched only where written: not the 1 GB that
    // building the string and then copying it touched.
    let grown = peak_rss(&mut server) - before;
    assert!(grown < 128 << 20, "peak RSS grew by {grown} bytes");
    assert!(q::<i64>(&mut con, &["MEMORY", "USAGE", "k"]) >= 536_870_912);
    for args in [
        &["SETRANGE", "k2", "536870912", "x"][..],
        &["SETRANGE", "k", "536870911", "xy"],
        &["APPEND", "k", "y"],
    ] {
        assert_eq!(
            expect_err(&mut con, args),
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
            "{args:?}"
        );
    }
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "k2"]), 0);
}

#[test]
fn appends_grow_strings_with_room_that_memory_usage_counts() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = cmd("SET")
        .arg("s")
        .arg(pattern(1000, 0))
        .query(&mut con)
        .unwrap();
    let exact = q::<i64>(&mut con, &["MEMORY", "USAGE", "s"]);
    assert_eq!(q::<i64>(&mut con, &["APPEND", "s", "x"]), 1001);
    // Redis's rule: a string below 1 MiB that grows gets twice its new length.
    let grown = q::<i64>(&mut con, &["MEMORY", "USAGE", "s"]);
    assert!(grown >= exact + 1000, "{exact} -> {grown}");
    // Appends within the room change nothing.
    assert_eq!(q::<i64>(&mut con, &["APPEND", "s", "yy"]), 1003);
    assert_eq!(q::<i64>(&mut con, &["MEMORY", "USAGE", "s"]), grown);
    let mut expected = pattern(1000, 0);
    expected.extend_from_slice(b"xyy");
    assert_eq!(get(&mut con, "s"), expected);
}

#[test]
fn a_pending_big_request_counts_in_used_memory_and_maxmemory() {
    let server = TestServer::start_with(&["--maxmemory", "64mb"]);
    let mut con = server.connect();
    let idle = info_memory(&mut con, "used_memory");
    assert_eq!(q::<String>(&mut con, &["SET", "x", "1"]), "OK");
    // Another client starts a 100 MB SET and sends only part of it.
    let mut uploader = server.raw();
    uploader.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$104857600\r\n");
    uploader.send(&vec![b'v'; 1 << 20]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_memory(&mut con, "mem_clients_normal") < 100 << 20 {
        assert!(Instant::now() < deadline, "client buffers never reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(info_memory(&mut con, "used_memory") >= idle + (100 << 20));
    assert!(expect_err(&mut con, &["SET", "x", "2"]).starts_with("OOM "));
    // Once that client is gone, its buffer is too.
    drop(uploader);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cmd("SET").arg("x").arg("3").query::<String>(&mut con) {
            Ok(reply) => break assert_eq!(reply, "OK"),
            Err(err) => assert!(Instant::now() < deadline, "still refused: {err}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(info_memory(&mut con, "mem_clients_normal") < 1 << 20);
}
