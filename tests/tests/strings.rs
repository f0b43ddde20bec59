//! String commands against the real server, through the `redis` crate.

use redis::{cmd, Value};
use ringkv_tests::{expect_err, query as q, TestServer};

#[test]
fn set_and_get_round_trip_binary_values() {
    let server = TestServer::start();
    let mut con = server.connect();
    let value: Vec<u8> = (0..=255).collect();
    let _: () = cmd("SET")
        .arg(b"bin\x00key")
        .arg(&value)
        .query(&mut con)
        .unwrap();
    let got: Vec<u8> = cmd("GET").arg(b"bin\x00key").query(&mut con).unwrap();
    assert_eq!(got, value);
    assert_eq!(q::<Option<String>>(&mut con, &["GET", "missing"]), None);
}

#[test]
fn set_conditions_nx_xx_ifeq_ifne_and_get() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "1", "XX"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "1", "NX"]).as_deref(),
        Some("OK")
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "2", "NX"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "2", "XX", "GET"]).as_deref(),
        Some("1")
    );
    // IFEQ sets only over an equal value and never creates the key.
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "3", "IFEQ", "nope"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "3", "IFEQ", "2"]).as_deref(),
        Some("OK")
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "absent", "x", "IFEQ", "x"]),
        None
    );
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "absent"]), 0);
    // IFNE sets unless equal, and creates a missing key.
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "4", "IFNE", "3"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "4", "IFNE", "9"]).as_deref(),
        Some("OK")
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "new", "v", "IFNE", "x"]).as_deref(),
        Some("OK")
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "k", "5", "IFEQ", "4", "GET"]).as_deref(),
        Some("4")
    );
    assert_eq!(q::<String>(&mut con, &["GET", "k"]), "5");
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "fresh", "1", "GET"]),
        None
    );
}

#[test]
fn set_option_errors_use_redis_texts() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "NX", "XX"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "EX", "1", "PX", "1"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "IFEQ", "a", "NX"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "BOGUS"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "EX"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "EX", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "EX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "PX", "-5"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k", "v", "EX", "9223372036854775807"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        expect_err(&mut con, &["SETEX", "k", "0", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        expect_err(&mut con, &["SET", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
    assert_eq!(
        expect_err(&mut con, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
}

#[test]
fn set_expiry_options_and_keepttl() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "v", "EX", "100"]);
    let ttl: i64 = q(&mut con, &["TTL", "k"]);
    assert!((99..=100).contains(&ttl), "{ttl}");
    let _: () = q(&mut con, &["SET", "k", "v2", "KEEPTTL"]);
    assert!(q::<i64>(&mut con, &["PTTL", "k"]) > 98_000);
    let _: () = q(&mut con, &["SET", "k", "v3"]);
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]), -1);
    let _: () = q(&mut con, &["SET", "k", "v", "PX", "5000"]);
    assert!(q::<i64>(&mut con, &["PTTL", "k"]) > 4_000);
    let far = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1000)
        .to_string();
    let _: () = q(&mut con, &["SET", "k", "v", "EXAT", &far]);
    assert_eq!(q::<String>(&mut con, &["EXPIRETIME", "k"]), far);
    // An absolute time in the past leaves no key.
    let _: () = q(&mut con, &["SET", "k", "v", "PXAT", "1"]);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "k"]), 0);
}

#[test]
fn legacy_set_forms() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["SETNX", "a", "1"]), 1);
    assert_eq!(q::<i64>(&mut con, &["SETNX", "a", "2"]), 0);
    let _: () = q(&mut con, &["SETEX", "b", "100", "x"]);
    assert!(q::<i64>(&mut con, &["TTL", "b"]) > 98);
    let _: () = q(&mut con, &["PSETEX", "c", "100000", "x"]);
    assert!(q::<i64>(&mut con, &["PTTL", "c"]) > 98_000);
    assert_eq!(q::<String>(&mut con, &["GETSET", "a", "9"]), "1");
    assert_eq!(
        q::<Option<String>>(&mut con, &["GETSET", "nothing", "9"]),
        None
    );
    // GETSET clears the TTL.
    assert_eq!(q::<String>(&mut con, &["GETSET", "b", "y"]), "x");
    assert_eq!(q::<i64>(&mut con, &["TTL", "b"]), -1);
}

#[test]
fn getdel_and_getex() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "v"]);
    assert_eq!(q::<String>(&mut con, &["GETDEL", "k"]), "v");
    assert_eq!(q::<Option<String>>(&mut con, &["GETDEL", "k"]), None);
    let _: () = q(&mut con, &["SET", "k", "v"]);
    assert_eq!(q::<String>(&mut con, &["GETEX", "k", "EX", "100"]), "v");
    assert!(q::<i64>(&mut con, &["TTL", "k"]) > 98);
    assert_eq!(q::<String>(&mut con, &["GETEX", "k", "PERSIST"]), "v");
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]), -1);
    assert_eq!(q::<String>(&mut con, &["GETEX", "k"]), "v");
    assert_eq!(
        expect_err(&mut con, &["GETEX", "k", "EX", "0"]),
        "ERR invalid expire time in 'getex' command"
    );
    assert_eq!(
        expect_err(&mut con, &["GETEX", "k", "EX", "1", "PERSIST"]),
        "ERR syntax error"
    );
    assert_eq!(q::<String>(&mut con, &["GETEX", "k", "PXAT", "1"]), "v");
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "k"]), 0);
}

#[test]
fn mget_mset_msetnx() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["MSET", "a", "1", "b", "2", "{t}c", "3"]);
    let got: Vec<Option<String>> = q(&mut con, &["MGET", "a", "b", "missing", "{t}c"]);
    assert_eq!(
        got,
        [Some("1".into()), Some("2".into()), None, Some("3".into())]
    );
    assert_eq!(q::<i64>(&mut con, &["MSETNX", "x", "1", "a", "2"]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "x"]), 0);
    assert_eq!(q::<i64>(&mut con, &["MSETNX", "x", "1", "y", "2"]), 1);
    assert_eq!(
        expect_err(&mut con, &["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
}

#[test]
fn append_strlen_and_ranges() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["APPEND", "s", "Hello"]), 5);
    assert_eq!(q::<i64>(&mut con, &["APPEND", "s", " World"]), 11);
    assert_eq!(q::<i64>(&mut con, &["STRLEN", "s"]), 11);
    assert_eq!(q::<i64>(&mut con, &["STRLEN", "missing"]), 0);
    assert_eq!(q::<String>(&mut con, &["GETRANGE", "s", "0", "4"]), "Hello");
    assert_eq!(
        q::<String>(&mut con, &["GETRANGE", "s", "-5", "-1"]),
        "World"
    );
    assert_eq!(q::<String>(&mut con, &["GETRANGE", "s", "5", "2"]), "");
    assert_eq!(
        q::<String>(&mut con, &["SUBSTR", "s", "0", "-1"]),
        "Hello World"
    );
    assert_eq!(q::<i64>(&mut con, &["SETRANGE", "s", "6", "Redis"]), 11);
    assert_eq!(q::<String>(&mut con, &["GET", "s"]), "Hello Redis");
    assert_eq!(q::<i64>(&mut con, &["SETRANGE", "pad", "3", "x"]), 4);
    let padded: Vec<u8> = cmd("GET").arg("pad").query(&mut con).unwrap();
    assert_eq!(padded, b"\0\0\0x");
    assert_eq!(q::<i64>(&mut con, &["SETRANGE", "none", "5", ""]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "none"]), 0);
    assert_eq!(
        expect_err(&mut con, &["SETRANGE", "s", "-1", "x"]),
        "ERR offset is out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["SETRANGE", "s", "536870912", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    // Appending to an integer works on its text.
    let _: () = q(&mut con, &["SET", "n", "12"]);
    assert_eq!(q::<i64>(&mut con, &["APPEND", "n", "3"]), 3);
    assert_eq!(q::<i64>(&mut con, &["INCR", "n"]), 124);
}

#[test]
fn counters_and_their_errors() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["INCR", "c"]), 1);
    assert_eq!(q::<i64>(&mut con, &["INCRBY", "c", "10"]), 11);
    assert_eq!(q::<i64>(&mut con, &["DECR", "c"]), 10);
    assert_eq!(q::<i64>(&mut con, &["DECRBY", "c", "20"]), -10);
    let _: () = q(&mut con, &["SET", "c", "5", "EX", "100"]);
    assert_eq!(q::<i64>(&mut con, &["INCR", "c"]), 6);
    assert!(q::<i64>(&mut con, &["TTL", "c"]) > 0, "INCR keeps the TTL");
    let _: () = q(&mut con, &["SET", "s", "abc"]);
    assert_eq!(
        expect_err(&mut con, &["INCR", "s"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["INCRBY", "c", "x"]),
        "ERR value is not an integer or out of range"
    );
    let _: () = q(&mut con, &["SET", "big", "9223372036854775807"]);
    assert_eq!(
        expect_err(&mut con, &["INCR", "big"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        expect_err(&mut con, &["DECRBY", "c", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    let _: () = q(&mut con, &["SET", "spaced", " 1"]);
    assert_eq!(
        expect_err(&mut con, &["INCR", "spaced"]),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn incrbyfloat_formats_like_redis() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "f", "10.50"]);
    assert_eq!(q::<String>(&mut con, &["INCRBYFLOAT", "f", "0.1"]), "10.6");
    assert_eq!(q::<String>(&mut con, &["INCRBYFLOAT", "f", "-5"]), "5.6");
    let _: () = q(&mut con, &["SET", "g", "5.0e3"]);
    assert_eq!(
        q::<String>(&mut con, &["INCRBYFLOAT", "g", "2.0e2"]),
        "5200"
    );
    assert_eq!(q::<String>(&mut con, &["INCRBYFLOAT", "new", "3"]), "3");
    assert_eq!(
        expect_err(&mut con, &["INCRBYFLOAT", "g", "abc"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        expect_err(&mut con, &["INCRBYFLOAT", "g", "inf"]),
        "ERR increment would produce NaN or Infinity"
    );
    let _: () = q(&mut con, &["SET", "s", "text"]);
    assert_eq!(
        expect_err(&mut con, &["INCRBYFLOAT", "s", "1"]),
        "ERR value is not a valid float"
    );
}

#[test]
fn lcs_answers_like_the_redis_docs() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["MSET", "key1", "ohmytext", "key2", "mynewtext"]);
    assert_eq!(q::<String>(&mut con, &["LCS", "key1", "key2"]), "mytext");
    assert_eq!(q::<i64>(&mut con, &["LCS", "key1", "key2", "LEN"]), 6);
    let idx: Value = q(
        &mut con,
        &[
            "LCS",
            "key1",
            "key2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN",
        ],
    );
    let expected = Value::Array(vec![
        Value::BulkString(b"matches".to_vec()),
        Value::Array(vec![Value::Array(vec![
            Value::Array(vec![Value::Int(4), Value::Int(7)]),
            Value::Array(vec![Value::Int(5), Value::Int(8)]),
            Value::Int(4),
        ])]),
        Value::BulkString(b"len".to_vec()),
        Value::Int(6),
    ]);
    assert_eq!(idx, expected);
    assert_eq!(
        expect_err(&mut con, &["LCS", "key1", "key2", "LEN", "IDX"]),
        "ERR If you want both the length and indexes, please just use IDX."
    );
    assert_eq!(q::<String>(&mut con, &["LCS", "key1", "nothing"]), "");
}

#[test]
fn integers_are_stored_as_integers_and_read_back_exactly() {
    let server = TestServer::start();
    let mut con = server.connect();
    for (value, encoding) in [
        ("123", "int"),
        ("-7", "int"),
        ("0123", "embstr"),
        ("1.5", "embstr"),
    ] {
        let _: () = q(&mut con, &["SET", "k", value]);
        assert_eq!(q::<String>(&mut con, &["GET", "k"]), value);
        assert_eq!(
            q::<String>(&mut con, &["OBJECT", "ENCODING", "k"]),
            encoding,
            "{value}"
        );
    }
    let long = "x".repeat(100);
    let _: () = q(&mut con, &["SET", "k", &long]);
    assert_eq!(q::<String>(&mut con, &["OBJECT", "ENCODING", "k"]), "raw");
}

#[test]
fn compare_and_delete_releases_only_the_owners_lock() {
    let server = TestServer::start();
    let mut con = server.connect();
    // The lock pattern: SET NX PX with a unique token, released by comparing it.
    let _: () = q(&mut con, &["SET", "lock", "token-a", "NX", "PX", "30000"]);
    assert_eq!(
        q::<Option<String>>(&mut con, &["SET", "lock", "token-b", "NX", "PX", "30000"]),
        None
    );
    assert_eq!(q::<i64>(&mut con, &["DELIFEQ", "lock", "token-b"]), 0);
    assert_eq!(q::<i64>(&mut con, &["DELIFEQ", "lock", "token-a"]), 1);
    assert_eq!(q::<i64>(&mut con, &["DELIFEQ", "lock", "token-a"]), 0);

    let _: () = q(&mut con, &["SET", "k", "v1"]);
    assert_eq!(q::<i64>(&mut con, &["DELEX", "k", "IFEQ", "v2"]), 0);
    assert_eq!(q::<i64>(&mut con, &["DELEX", "k", "IFNE", "v1"]), 0);
    assert_eq!(q::<i64>(&mut con, &["DELEX", "k", "ifne", "v2"]), 1);
    let _: () = q(&mut con, &["SET", "k", "v1"]);
    assert_eq!(q::<i64>(&mut con, &["DELEX", "k", "IFEQ", "v1"]), 1);
    assert_eq!(q::<i64>(&mut con, &["DELEX", "k", "IFEQ", "v1"]), 0);
    // Integers compare by their digits.
    let _: () = q(&mut con, &["SET", "n", "42"]);
    assert_eq!(q::<i64>(&mut con, &["DELIFEQ", "n", "42"]), 1);
    // Without a condition DELEX deletes any type; with one, only strings compare.
    let _: () = q(&mut con, &["RPUSH", "list", "a"]);
    assert_eq!(
        expect_err(&mut con, &["DELEX", "list", "IFEQ", "a"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        expect_err(&mut con, &["DELIFEQ", "list", "a"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(q::<i64>(&mut con, &["DELEX", "list"]), 1);
    assert_eq!(q::<i64>(&mut con, &["DELEX", "list"]), 0);
    assert_eq!(
        expect_err(&mut con, &["DELEX", "k", "IFEQ"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["DELEX", "k", "NOPE", "x"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["DELEX", "k", "IFEQ", "a", "b"]),
        "ERR syntax error"
    );
    assert_eq!(
        expect_err(&mut con, &["DELIFEQ", "k"]),
        "ERR wrong number of arguments for 'delifeq' command"
    );
}

#[test]
fn strings_edited_in_place_report_the_raw_encoding_as_in_redis() {
    let server = TestServer::start();
    let mut con = server.connect();
    let encoding =
        |con: &mut redis::Connection, key: &str| -> String { q(con, &["OBJECT", "ENCODING", key]) };
    q::<()>(&mut con, &["SET", "a", "abc"]);
    assert_eq!(encoding(&mut con, "a"), "embstr");
    q::<i64>(&mut con, &["APPEND", "a", "d"]);
    assert_eq!(encoding(&mut con, "a"), "raw");
    q::<()>(&mut con, &["SET", "n", "123"]);
    q::<i64>(&mut con, &["APPEND", "n", "4"]);
    assert_eq!(encoding(&mut con, "n"), "raw");
    q::<i64>(&mut con, &["SETRANGE", "m", "2", "x"]);
    assert_eq!(encoding(&mut con, "m"), "raw");
    q::<i64>(&mut con, &["SETBIT", "b", "3", "1"]);
    assert_eq!(encoding(&mut con, "b"), "raw");
    // Even a bit write that changes nothing, as in Redis.
    q::<()>(&mut con, &["SET", "s", "hello"]);
    q::<i64>(&mut con, &["SETBIT", "s", "0", "0"]);
    assert_eq!(encoding(&mut con, "s"), "raw");
    // New values are not edits.
    q::<i64>(&mut con, &["APPEND", "new", "val"]);
    assert_eq!(encoding(&mut con, "new"), "embstr");
    q::<()>(&mut con, &["SET", "f", "1.5"]);
    q::<String>(&mut con, &["INCRBYFLOAT", "f", "1"]);
    assert_eq!(encoding(&mut con, "f"), "embstr");
    q::<()>(&mut con, &["SET", "a", "abc"]);
    assert_eq!(encoding(&mut con, "a"), "embstr");
}
