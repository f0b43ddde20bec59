//! Generic key commands against the real server.

use std::collections::HashSet;

use redis::{cmd, Connection};
use ringkv_tests::{expect_err, query as q, TestServer};

#[test]
fn del_unlink_exists_touch_type() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["MSET", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "a", "a", "missing"]), 2);
    assert_eq!(q::<i64>(&mut con, &["TOUCH", "a", "b", "missing"]), 2);
    assert_eq!(q::<String>(&mut con, &["TYPE", "a"]), "string");
    assert_eq!(q::<String>(&mut con, &["TYPE", "missing"]), "none");
    assert_eq!(q::<i64>(&mut con, &["DEL", "a", "b", "missing"]), 2);
    assert_eq!(q::<i64>(&mut con, &["UNLINK", "c"]), 1);
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), 0);
}

#[test]
fn rename_renamenx_keep_value_and_ttl() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "src", "v", "EX", "100"]);
    let _: () = q(&mut con, &["RENAME", "src", "dst"]);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "src"]), 0);
    assert_eq!(q::<String>(&mut con, &["GET", "dst"]), "v");
    assert!(q::<i64>(&mut con, &["TTL", "dst"]) > 98);
    assert_eq!(
        expect_err(&mut con, &["RENAME", "nothing", "x"]),
        "ERR no such key"
    );
    let _: () = q(&mut con, &["SET", "other", "o"]);
    assert_eq!(q::<i64>(&mut con, &["RENAMENX", "dst", "other"]), 0);
    assert_eq!(q::<i64>(&mut con, &["RENAMENX", "dst", "third"]), 1);
    assert_eq!(q::<String>(&mut con, &["RENAME", "third", "third"]), "OK");
    assert_eq!(q::<i64>(&mut con, &["RENAMENX", "third", "third"]), 0);
}

#[test]
fn copy_respects_replace_and_db() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "a", "1", "EX", "100"]);
    let _: () = q(&mut con, &["SET", "b", "2"]);
    assert_eq!(q::<i64>(&mut con, &["COPY", "a", "b"]), 0);
    assert_eq!(q::<i64>(&mut con, &["COPY", "a", "b", "REPLACE"]), 1);
    assert_eq!(q::<String>(&mut con, &["GET", "b"]), "1");
    assert!(q::<i64>(&mut con, &["TTL", "b"]) > 98);
    assert_eq!(q::<i64>(&mut con, &["COPY", "missing", "x"]), 0);
    assert_eq!(q::<i64>(&mut con, &["COPY", "a", "c", "DB", "0"]), 1);
    assert_eq!(
        expect_err(&mut con, &["COPY", "a", "d", "DB", "1"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["COPY", "a", "a"]),
        "ERR source and destination objects are the same"
    );
}

#[test]
fn keys_matches_globs() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(
        &mut con,
        &[
            "MSET", "hello", "1", "hallo", "1", "hxllo", "1", "{tag}:1", "1", "{tag}:2", "1",
            "other", "1",
        ],
    );
    let mut found: Vec<String> = q(&mut con, &["KEYS", "h[ae]llo"]);
    found.sort();
    assert_eq!(found, ["hallo", "hello"]);
    let mut tagged: Vec<String> = q(&mut con, &["KEYS", "{tag}:*"]);
    tagged.sort();
    assert_eq!(tagged, ["{tag}:1", "{tag}:2"]);
    assert_eq!(q::<Vec<String>>(&mut con, &["KEYS", "*"]).len(), 6);
    assert!(q::<Vec<String>>(&mut con, &["KEYS", "nomatch*"]).is_empty());
}

fn scan_all(con: &mut Connection, extra: &[&str]) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    loop {
        let mut c = cmd("SCAN");
        c.arg(&cursor);
        for a in extra {
            c.arg(*a);
        }
        let (next, batch): (String, Vec<String>) = c.query(con).unwrap();
        keys.extend(batch);
        if next == "0" {
            return keys;
        }
        cursor = next;
    }
}

#[test]
fn scan_visits_every_key_with_match_count_and_type() {
    let server = TestServer::start();
    let mut con = server.connect();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
    }
    for i in 0..50 {
        pipe.cmd("SET").arg(format!("{{user}}:{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let all: HashSet<String> = scan_all(&mut con, &["COUNT", "37"]).into_iter().collect();
    assert_eq!(all.len(), 1050);
    let matched: HashSet<String> = scan_all(&mut con, &["MATCH", "key:1??"])
        .into_iter()
        .collect();
    assert_eq!(matched.len(), 100);
    let tagged: HashSet<String> = scan_all(&mut con, &["MATCH", "{user}:*", "COUNT", "7"])
        .into_iter()
        .collect();
    assert_eq!(tagged.len(), 50);
    assert_eq!(scan_all(&mut con, &["TYPE", "string"]).len(), 1050);
    assert!(scan_all(&mut con, &["TYPE", "list"]).is_empty());
    assert_eq!(expect_err(&mut con, &["SCAN", "abc"]), "ERR invalid cursor");
    assert_eq!(
        expect_err(&mut con, &["SCAN", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
}

#[test]
fn randomkey_returns_existing_keys() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<Option<String>>(&mut con, &["RANDOMKEY"]), None);
    let _: () = q(&mut con, &["MSET", "a", "1", "b", "2"]);
    for _ in 0..20 {
        let key: String = q(&mut con, &["RANDOMKEY"]);
        assert!(key == "a" || key == "b");
    }
}

#[test]
fn dump_and_restore_round_trip_and_refuse_bad_payloads() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "hello"]);
    let payload: Vec<u8> = cmd("DUMP").arg("k").query(&mut con).unwrap();
    let _: () = cmd("RESTORE")
        .arg("copy")
        .arg(0)
        .arg(&payload)
        .query(&mut con)
        .unwrap();
    assert_eq!(q::<String>(&mut con, &["GET", "copy"]), "hello");
    let err = cmd("RESTORE")
        .arg("copy")
        .arg(0)
        .arg(&payload)
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(
        ringkv_tests::error_text(&err),
        "BUSYKEY Target key name already exists."
    );
    let _: () = cmd("RESTORE")
        .arg("copy")
        .arg(100_000)
        .arg(&payload)
        .arg("REPLACE")
        .query(&mut con)
        .unwrap();
    assert!(q::<i64>(&mut con, &["PTTL", "copy"]) > 90_000);
    let _: () = cmd("RESTORE")
        .arg("idle")
        .arg(0)
        .arg(&payload)
        .arg("IDLETIME")
        .arg(500)
        .query(&mut con)
        .unwrap();
    assert!(q::<i64>(&mut con, &["OBJECT", "IDLETIME", "idle"]) >= 500);
    let mut broken = payload.clone();
    broken[1] ^= 0xff;
    let err = cmd("RESTORE")
        .arg("x")
        .arg(0)
        .arg(&broken)
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(
        ringkv_tests::error_text(&err),
        "ERR DUMP payload version or checksum are wrong"
    );
    let err = cmd("RESTORE")
        .arg("x")
        .arg(-1)
        .arg(&payload)
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(
        ringkv_tests::error_text(&err),
        "ERR Invalid TTL value, must be >= 0"
    );
    assert_eq!(q::<Option<Vec<u8>>>(&mut con, &["DUMP", "missing"]), None);
    // Integers survive the round trip as integers.
    let _: () = q(&mut con, &["SET", "n", "42"]);
    let payload: Vec<u8> = cmd("DUMP").arg("n").query(&mut con).unwrap();
    let _: () = cmd("RESTORE")
        .arg("n2")
        .arg(0)
        .arg(&payload)
        .query(&mut con)
        .unwrap();
    assert_eq!(q::<String>(&mut con, &["OBJECT", "ENCODING", "n2"]), "int");
    assert_eq!(q::<i64>(&mut con, &["INCR", "n2"]), 43);
}

#[test]
fn object_and_memory_usage() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "value"]);
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "k"]),
        "embstr"
    );
    assert_eq!(q::<i64>(&mut con, &["OBJECT", "IDLETIME", "k"]), 0);
    assert_eq!(q::<i64>(&mut con, &["OBJECT", "REFCOUNT", "k"]), 1);
    assert_eq!(
        q::<Option<String>>(&mut con, &["OBJECT", "ENCODING", "missing"]),
        None
    );
    assert!(expect_err(&mut con, &["OBJECT", "FREQ", "k"])
        .starts_with("ERR An LFU maxmemory policy is not selected"));
    assert_eq!(
        expect_err(&mut con, &["OBJECT", "NOPE", "k"]),
        "ERR unknown subcommand 'NOPE'. Try OBJECT HELP."
    );
    let small: i64 = q(&mut con, &["MEMORY", "USAGE", "k"]);
    let _: () = q(&mut con, &["SET", "big", &"x".repeat(10_000)]);
    let big: i64 = q(&mut con, &["MEMORY", "USAGE", "big", "SAMPLES", "5"]);
    assert!(small > 0 && big >= small + 10_000, "{small} {big}");
    assert_eq!(
        q::<Option<i64>>(&mut con, &["MEMORY", "USAGE", "missing"]),
        None
    );
    assert!(!q::<Vec<String>>(&mut con, &["OBJECT", "HELP"]).is_empty());
}
