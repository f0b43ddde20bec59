//! Lists, hashes, sets and sorted sets against the real server.

use std::collections::HashSet;

use redis::Value;
use ringkv_tests::{expect_err, query as q, TestServer};

#[test]
fn lists_push_pop_range_and_edit() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["RPUSH", "l", "a", "b", "c"]), 3);
    assert_eq!(q::<i64>(&mut con, &["LPUSH", "l", "z"]), 4);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "l", "0", "-1"]),
        ["z", "a", "b", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "l", "-2", "100"]),
        ["b", "c"]
    );
    assert_eq!(q::<String>(&mut con, &["LINDEX", "l", "-1"]), "c");
    assert_eq!(q::<Option<String>>(&mut con, &["LINDEX", "l", "9"]), None);
    assert_eq!(q::<i64>(&mut con, &["LLEN", "l"]), 4);
    assert_eq!(q::<String>(&mut con, &["LSET", "l", "0", "y"]), "OK");
    assert_eq!(
        expect_err(&mut con, &["LSET", "l", "10", "x"]),
        "ERR index out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["LSET", "nolist", "0", "x"]),
        "ERR no such key"
    );
    assert_eq!(
        q::<i64>(&mut con, &["LINSERT", "l", "BEFORE", "b", "ab"]),
        5
    );
    assert_eq!(
        q::<i64>(&mut con, &["LINSERT", "l", "AFTER", "nope", "x"]),
        -1
    );
    assert_eq!(
        q::<i64>(&mut con, &["LINSERT", "missing", "AFTER", "a", "x"]),
        0
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "l", "0", "-1"]),
        ["y", "a", "ab", "b", "c"]
    );
    assert_eq!(q::<String>(&mut con, &["LPOP", "l"]), "y");
    assert_eq!(q::<Vec<String>>(&mut con, &["RPOP", "l", "2"]), ["c", "b"]);
    assert_eq!(
        q::<i64>(&mut con, &["RPUSH", "r", "x", "a", "x", "b", "x"]),
        5
    );
    assert_eq!(q::<i64>(&mut con, &["LREM", "r", "-2", "x"]), 2);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "r", "0", "-1"]),
        ["x", "a", "b"]
    );
    assert_eq!(q::<String>(&mut con, &["LTRIM", "r", "1", "-1"]), "OK");
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "r", "0", "-1"]),
        ["a", "b"]
    );
    assert_eq!(q::<i64>(&mut con, &["LPUSHX", "missing", "a"]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "missing"]), 0);
    // Popping the last element deletes the key.
    assert_eq!(q::<Vec<String>>(&mut con, &["LPOP", "r", "10"]), ["a", "b"]);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "r"]), 0);
    assert_eq!(
        q::<Option<Vec<String>>>(&mut con, &["LPOP", "r", "2"]),
        None
    );
    assert_eq!(
        expect_err(&mut con, &["LPOP", "l", "-1"]),
        "ERR value is out of range, must be positive"
    );
}

#[test]
fn lpos_lmove_and_lmpop() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: i64 = q(
        &mut con,
        &["RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c"],
    );
    assert_eq!(q::<i64>(&mut con, &["LPOS", "l", "c"]), 2);
    assert_eq!(q::<i64>(&mut con, &["LPOS", "l", "c", "RANK", "-1"]), 7);
    assert_eq!(
        q::<Vec<i64>>(&mut con, &["LPOS", "l", "c", "COUNT", "0"]),
        [2, 6, 7]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut con, &["LPOS", "l", "c", "RANK", "2", "COUNT", "1"]),
        [6]
    );
    assert_eq!(
        q::<Option<i64>>(&mut con, &["LPOS", "l", "c", "MAXLEN", "2"]),
        None
    );
    assert!(expect_err(&mut con, &["LPOS", "l", "c", "RANK", "0"])
        .starts_with("ERR RANK can't be zero"));
    assert_eq!(
        expect_err(&mut con, &["LPOS", "l", "c", "RANK", "-9223372036854775808"]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(
        q::<String>(&mut con, &["LMOVE", "l", "dst", "RIGHT", "LEFT"]),
        "c"
    );
    assert_eq!(q::<String>(&mut con, &["RPOPLPUSH", "l", "dst"]), "c");
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "dst", "0", "-1"]),
        ["c", "c"]
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["LMOVE", "missing", "dst", "LEFT", "LEFT"]),
        None
    );
    let popped: Value = q(
        &mut con,
        &["LMPOP", "2", "missing", "l", "LEFT", "COUNT", "2"],
    );
    assert_eq!(
        popped,
        Value::Array(vec![
            Value::BulkString(b"l".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"a".to_vec()),
                Value::BulkString(b"b".to_vec())
            ]),
        ])
    );
    assert_eq!(
        q::<Option<Vec<String>>>(&mut con, &["LMPOP", "1", "missing", "LEFT"]),
        None
    );
    assert_eq!(
        expect_err(&mut con, &["LMPOP", "0", "l", "LEFT"]),
        "ERR numkeys should be greater than 0"
    );
    let _: () = q(&mut con, &["SET", "s", "x"]);
    assert_eq!(
        expect_err(&mut con, &["LMOVE", "dst", "s", "LEFT", "LEFT"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

/// Pushes `count` copies of `value` onto `key`, a thousand per command.
fn push_many(con: &mut redis::Connection, key: &str, value: &str, count: usize) {
    let mut pipe = redis::pipe();
    for _ in 0..count / 1000 {
        pipe.cmd("RPUSH").arg(key).arg(vec![value; 1000]).ignore();
    }
    pipe.query::<()>(con).expect("push");
}

/// The issue-10 stall: LREM removed one element at a time, each moving the rest
/// of the list (14.8 s for 200k + 200k; this size would take minutes). Linear
/// now, each of these answers in well under a second, so the generous read
/// timeout only catches a return to quadratic work.
#[test]
fn editing_a_million_element_list_answers_without_stalling() {
    let server = TestServer::start();
    let mut con = server.connect();
    con.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    push_many(&mut con, "l", "x", 500_000);
    push_many(&mut con, "l", "a", 500_000);
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "l"]),
        "quicklist"
    );
    assert_eq!(q::<i64>(&mut con, &["LREM", "l", "0", "a"]), 500_000);
    assert_eq!(q::<i64>(&mut con, &["LLEN", "l"]), 500_000);
    assert_eq!(q::<String>(&mut con, &["LINDEX", "l", "-1"]), "x");
    assert_eq!(q::<Option<i64>>(&mut con, &["LPOS", "l", "missing"]), None);
    assert_eq!(
        q::<i64>(&mut con, &["LINSERT", "l", "BEFORE", "x", "first"]),
        500_001
    );
    assert_eq!(q::<String>(&mut con, &["LSET", "l", "250000", "mid"]), "OK");
    assert_eq!(
        q::<i64>(&mut con, &["LPOS", "l", "mid", "RANK", "-1"]),
        250_000
    );
    assert_eq!(q::<String>(&mut con, &["LTRIM", "l", "1", "-2"]), "OK");
    assert_eq!(q::<i64>(&mut con, &["LLEN", "l"]), 499_999);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "l", "249998", "250000"]),
        ["x", "mid", "x"]
    );
    // The packed list is what MEMORY USAGE counts: a few bytes an element.
    let usage: i64 = q(&mut con, &["MEMORY", "USAGE", "l"]);
    assert!(usage < 499_999 * 4, "MEMORY USAGE {usage}");
    let dump: Vec<u8> = redis::cmd("DUMP").arg("l").query(&mut con).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("copy")
        .arg(0)
        .arg(dump)
        .query(&mut con)
        .unwrap();
    assert_eq!(q::<i64>(&mut con, &["LLEN", "copy"]), 499_999);
    assert_eq!(q::<String>(&mut con, &["LINDEX", "copy", "249999"]), "mid");
}

#[test]
fn list_encoding_follows_list_max_listpack_size() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["CONFIG", "SET", "list-max-listpack-size", "4"]);
    let _: i64 = q(&mut con, &["RPUSH", "l", "a", "b", "c", "d"]);
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "l"]),
        "listpack"
    );
    let _: i64 = q(&mut con, &["RPUSH", "l", "e"]);
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "l"]),
        "quicklist"
    );
    // Inserting into full nodes splits them; the order stays.
    for (i, pivot) in ["b", "d", "a"].iter().enumerate() {
        let _: i64 = q(&mut con, &["LINSERT", "l", "AFTER", pivot, &i.to_string()]);
    }
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "l", "0", "-1"]),
        ["a", "2", "b", "0", "c", "d", "1", "e"]
    );
    let _: () = q(&mut con, &["CONFIG", "SET", "list-max-listpack-size", "-2"]);
    let _: i64 = q(&mut con, &["RPUSH", "small", "a", "b"]);
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "small"]),
        "listpack"
    );
    let big = "x".repeat(9000);
    let _: i64 = q(&mut con, &["RPUSH", "small", &big]);
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "small"]),
        "quicklist"
    );
    assert_eq!(q::<String>(&mut con, &["LINDEX", "small", "2"]), big);
}

#[test]
fn hashes() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["HSET", "h", "a", "1", "b", "2"]), 2);
    assert_eq!(q::<i64>(&mut con, &["HSET", "h", "a", "10", "c", "3"]), 1);
    assert_eq!(q::<String>(&mut con, &["HMSET", "h", "d", "4"]), "OK");
    assert_eq!(q::<String>(&mut con, &["HGET", "h", "a"]), "10");
    assert_eq!(q::<Option<String>>(&mut con, &["HGET", "h", "zz"]), None);
    assert_eq!(
        q::<Vec<Option<String>>>(&mut con, &["HMGET", "h", "a", "zz"]),
        [Some("10".into()), None]
    );
    assert_eq!(q::<i64>(&mut con, &["HLEN", "h"]), 4);
    assert_eq!(q::<i64>(&mut con, &["HSTRLEN", "h", "a"]), 2);
    assert_eq!(q::<i64>(&mut con, &["HEXISTS", "h", "b"]), 1);
    assert_eq!(q::<i64>(&mut con, &["HSETNX", "h", "b", "x"]), 0);
    assert_eq!(q::<i64>(&mut con, &["HSETNX", "h", "e", "5"]), 1);
    let mut keys: Vec<String> = q(&mut con, &["HKEYS", "h"]);
    keys.sort();
    assert_eq!(keys, ["a", "b", "c", "d", "e"]);
    assert_eq!(q::<Vec<String>>(&mut con, &["HVALS", "h"]).len(), 5);
    let all: std::collections::HashMap<String, String> = q(&mut con, &["HGETALL", "h"]);
    assert_eq!(all.get("c").map(String::as_str), Some("3"));
    assert_eq!(q::<i64>(&mut con, &["HINCRBY", "h", "a", "5"]), 15);
    assert_eq!(
        q::<String>(&mut con, &["HINCRBYFLOAT", "h", "f", "1.5"]),
        "1.5"
    );
    let _: i64 = q(&mut con, &["HSET", "h", "s", "str"]);
    assert_eq!(
        expect_err(&mut con, &["HINCRBY", "h", "s", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        expect_err(&mut con, &["HINCRBYFLOAT", "h", "s", "1"]),
        "ERR hash value is not a float"
    );
    assert_eq!(q::<i64>(&mut con, &["HDEL", "h", "a", "b", "nope"]), 2);
    let field: String = q(&mut con, &["HRANDFIELD", "h"]);
    assert!(!field.is_empty());
    assert_eq!(
        q::<Vec<String>>(&mut con, &["HRANDFIELD", "h", "3", "WITHVALUES"]).len(),
        6
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["HRANDFIELD", "h", "-7"]).len(),
        7
    );
    assert_eq!(
        expect_err(&mut con, &["HSET", "h", "a"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(
        q::<i64>(&mut con, &["HDEL", "h", "c", "d", "e", "f", "s"]),
        5
    );
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "h"]), 0);
}

#[test]
fn sets_and_set_algebra() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["SADD", "a", "1", "2", "3", "2"]), 3);
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "a"]),
        "intset"
    );
    assert_eq!(q::<i64>(&mut con, &["SADD", "a", "x"]), 1);
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "a"]),
        "listpack"
    );
    assert_eq!(q::<i64>(&mut con, &["SADD", "b", "2", "3", "4"]), 3);
    assert_eq!(q::<i64>(&mut con, &["SCARD", "a"]), 4);
    assert_eq!(q::<i64>(&mut con, &["SISMEMBER", "a", "x"]), 1);
    assert_eq!(
        q::<Vec<i64>>(&mut con, &["SMISMEMBER", "a", "x", "nope"]),
        [1, 0]
    );
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(q(&mut con, &["SINTER", "a", "b"])), ["2", "3"]);
    assert_eq!(
        sorted(q(&mut con, &["SUNION", "a", "b"])),
        ["1", "2", "3", "4", "x"]
    );
    assert_eq!(sorted(q(&mut con, &["SDIFF", "a", "b"])), ["1", "x"]);
    assert_eq!(q::<i64>(&mut con, &["SINTERSTORE", "c", "a", "b"]), 2);
    assert_eq!(sorted(q(&mut con, &["SMEMBERS", "c"])), ["2", "3"]);
    assert_eq!(
        q::<i64>(&mut con, &["SINTERCARD", "2", "a", "b", "LIMIT", "1"]),
        1
    );
    assert_eq!(q::<i64>(&mut con, &["SMOVE", "a", "b", "x"]), 1);
    assert_eq!(q::<i64>(&mut con, &["SMOVE", "a", "b", "x"]), 0);
    assert_eq!(q::<i64>(&mut con, &["SREM", "b", "x", "nope"]), 1);
    let popped: Vec<String> = q(&mut con, &["SPOP", "c", "5"]);
    assert_eq!(sorted(popped), ["2", "3"]);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "c"]), 0);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["SRANDMEMBER", "b", "-5"]).len(),
        5
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["SRANDMEMBER", "b", "10"]).len(),
        3
    );
    assert_eq!(
        q::<i64>(&mut con, &["SUNIONSTORE", "empty", "none1", "none2"]),
        0
    );
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "empty"]), 0);
    let _: () = q(&mut con, &["SET", "str", "x"]);
    assert_eq!(
        expect_err(&mut con, &["SADD", "str", "a"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        expect_err(&mut con, &["SINTER", "a", "str"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[test]
fn large_sets_and_hashes_convert_and_scan_completely() {
    let server = TestServer::start();
    let mut con = server.connect();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SADD").arg("s").arg(format!("m{i}")).ignore();
        pipe.cmd("HSET")
            .arg("h")
            .arg(format!("f{i}"))
            .arg(i)
            .ignore();
        pipe.cmd("ZADD")
            .arg("z")
            .arg(i)
            .arg(format!("m{i}"))
            .ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "s"]),
        "hashtable"
    );
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "h"]),
        "hashtable"
    );
    assert_eq!(
        q::<String>(&mut con, &["OBJECT", "ENCODING", "z"]),
        "skiplist"
    );
    for (cmd, key, per_item) in [("SSCAN", "s", 1), ("HSCAN", "h", 2), ("ZSCAN", "z", 2)] {
        let mut cursor = "0".to_string();
        let mut seen = HashSet::new();
        loop {
            let (next, items): (String, Vec<String>) = redis::cmd(cmd)
                .arg(key)
                .arg(&cursor)
                .arg("COUNT")
                .arg(50)
                .query(&mut con)
                .unwrap();
            seen.extend(items.into_iter().step_by(per_item));
            if next == "0" {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 1000, "{cmd}");
    }
    let (_, small): (String, Vec<String>) = redis::cmd("HSCAN")
        .arg("h")
        .arg(0)
        .arg("MATCH")
        .arg("f99?")
        .query(&mut con)
        .unwrap();
    assert!(small.len() <= 20);
    assert!(q::<i64>(&mut con, &["MEMORY", "USAGE", "z"]) > 1000 * 16);
}

#[test]
fn sorted_sets_add_with_options_and_query_ranges() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(
        q::<i64>(&mut con, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]),
        3
    );
    assert_eq!(
        q::<i64>(&mut con, &["ZADD", "z", "NX", "10", "a", "4", "d"]),
        1
    );
    assert_eq!(
        q::<i64>(&mut con, &["ZADD", "z", "XX", "CH", "5", "a", "9", "nope"]),
        1
    );
    assert_eq!(q::<i64>(&mut con, &["ZADD", "z", "GT", "CH", "1", "a"]), 0);
    assert_eq!(q::<i64>(&mut con, &["ZADD", "z", "LT", "CH", "0", "a"]), 1);
    assert_eq!(
        q::<String>(&mut con, &["ZADD", "z", "INCR", "2.5", "a"]),
        "2.5"
    );
    assert_eq!(
        q::<Option<String>>(&mut con, &["ZADD", "z", "NX", "INCR", "1", "a"]),
        None
    );
    assert_eq!(
        expect_err(&mut con, &["ZADD", "z", "NX", "XX", "1", "a"]),
        "ERR XX and NX options at the same time are not compatible"
    );
    assert_eq!(
        expect_err(&mut con, &["ZADD", "z", "GT", "LT", "1", "a"]),
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    );
    assert_eq!(
        expect_err(&mut con, &["ZADD", "z", "x", "a"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        expect_err(&mut con, &["ZADD", "z", "NX", "1"]),
        "ERR syntax error"
    );
    // z: b=2, a=2.5, c=3, d=4
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANGE", "z", "0", "-1"]),
        ["b", "a", "c", "d"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANGE", "z", "0", "1", "WITHSCORES"]),
        ["b", "2", "a", "2.5"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZREVRANGE", "z", "0", "1"]),
        ["d", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut con,
            &["ZRANGE", "z", "(2", "+inf", "BYSCORE", "LIMIT", "1", "5"]
        ),
        ["c", "d"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANGE", "z", "3", "-inf", "BYSCORE", "REV"]),
        ["c", "a", "b"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANGEBYSCORE", "z", "2", "3"]),
        ["b", "a", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut con,
            &["ZREVRANGEBYSCORE", "z", "+inf", "(3", "WITHSCORES"]
        ),
        ["d", "4"]
    );
    assert_eq!(q::<i64>(&mut con, &["ZCOUNT", "z", "(2", "3"]), 2);
    assert_eq!(q::<i64>(&mut con, &["ZRANK", "z", "c"]), 2);
    assert_eq!(q::<i64>(&mut con, &["ZREVRANK", "z", "c"]), 1);
    assert_eq!(q::<Option<i64>>(&mut con, &["ZRANK", "z", "nope"]), None);
    assert_eq!(q::<String>(&mut con, &["ZSCORE", "z", "a"]), "2.5");
    assert_eq!(
        q::<Vec<Option<String>>>(&mut con, &["ZMSCORE", "z", "a", "nope"]),
        [Some("2.5".into()), None]
    );
    assert_eq!(q::<String>(&mut con, &["ZINCRBY", "z", "-0.5", "a"]), "2");
    assert_eq!(q::<i64>(&mut con, &["ZCARD", "z"]), 4);
    assert_eq!(
        expect_err(&mut con, &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    );
    assert_eq!(
        expect_err(&mut con, &["ZRANGEBYSCORE", "z", "a", "b"]),
        "ERR min or max is not a float"
    );
    let _: i64 = q(
        &mut con,
        &["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"],
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANGEBYLEX", "lex", "[b", "(d"]),
        ["b", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZREVRANGEBYLEX", "lex", "+", "[c"]),
        ["d", "c"]
    );
    assert_eq!(q::<i64>(&mut con, &["ZLEXCOUNT", "lex", "-", "+"]), 4);
    assert_eq!(
        expect_err(&mut con, &["ZRANGEBYLEX", "lex", "b", "d"]),
        "ERR min or max not valid string range item"
    );
    assert_eq!(
        q::<i64>(&mut con, &["ZRANGESTORE", "dst", "z", "0", "1"]),
        2
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANGE", "dst", "0", "-1"]),
        ["a", "b"]
    );
}

#[test]
fn sorted_set_pops_removals_and_combinations() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: i64 = q(
        &mut con,
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
    );
    assert_eq!(q::<Vec<String>>(&mut con, &["ZPOPMIN", "z"]), ["a", "1"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZPOPMAX", "z", "2"]),
        ["e", "5", "d", "4"]
    );
    assert_eq!(
        q::<i64>(&mut con, &["ZREMRANGEBYSCORE", "z", "-inf", "(3"]),
        1
    );
    assert_eq!(q::<i64>(&mut con, &["ZREMRANGEBYRANK", "z", "0", "-1"]), 1);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "z"]), 0);
    let _: i64 = q(&mut con, &["ZADD", "z1", "1", "a", "2", "b"]);
    let _: i64 = q(&mut con, &["ZADD", "z2", "10", "b", "20", "c"]);
    let _: i64 = q(&mut con, &["SADD", "plain", "a"]);
    assert_eq!(
        q::<i64>(
            &mut con,
            &["ZUNIONSTORE", "u", "2", "z1", "z2", "WEIGHTS", "1", "2"]
        ),
        3
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANGE", "u", "0", "-1", "WITHSCORES"]),
        ["a", "1", "b", "22", "c", "40"]
    );
    assert_eq!(
        q::<i64>(
            &mut con,
            &["ZINTERSTORE", "i", "2", "z1", "z2", "AGGREGATE", "MIN"]
        ),
        1
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANGE", "i", "0", "-1", "WITHSCORES"]),
        ["b", "2"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZDIFF", "2", "z1", "z2"]),
        ["a"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZUNION", "2", "z1", "plain", "WITHSCORES"]),
        ["a", "2", "b", "2"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZINTER", "2", "z1", "z2"]),
        ["b"]
    );
    assert_eq!(q::<i64>(&mut con, &["ZINTERCARD", "2", "z1", "z2"]), 1);
    assert_eq!(q::<i64>(&mut con, &["ZDIFFSTORE", "d", "2", "z1", "z2"]), 1);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["ZRANDMEMBER", "z1", "5", "WITHSCORES"]).len(),
        4
    );
    assert_eq!(
        expect_err(&mut con, &["ZUNIONSTORE", "u", "0", "z1"]),
        "ERR at least 1 input key is needed for 'zunionstore' command"
    );
    assert_eq!(
        expect_err(
            &mut con,
            &["ZUNIONSTORE", "u", "2", "z1", "z2", "WEIGHTS", "1", "x"]
        ),
        "ERR weight value is not a float"
    );
}

#[test]
fn resp3_shapes_for_collections() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send_command(&["HELLO", "3"]);
    raw.set_resp3(true);
    raw.reply_text();
    raw.call(&["ZADD", "z", "1.5", "a", "2", "b"]);
    assert_eq!(raw.call(&["ZSCORE", "z", "a"]), ",1.5");
    assert_eq!(
        raw.call(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        "[[$a, ,1.5], [$b, ,2]]"
    );
    assert_eq!(raw.call(&["ZPOPMIN", "z"]), "[$a, ,1.5]");
    raw.call(&["SADD", "s", "x", "y"]);
    assert_eq!(raw.call(&["SMEMBERS", "s"]), "~[$x, $y]");
    raw.call(&["HSET", "h", "f", "v"]);
    assert_eq!(raw.call(&["HGETALL", "h"]), "{$f: $v}");
}

#[test]
fn every_type_round_trips_through_dump_restore_and_copy() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: i64 = q(&mut con, &["RPUSH", "l", "a", "b"]);
    let _: i64 = q(&mut con, &["HSET", "h", "f", "v"]);
    let _: i64 = q(&mut con, &["SADD", "s", "1", "x"]);
    let _: i64 = q(&mut con, &["ZADD", "z", "1.5", "m"]);
    for (key, kind) in [("l", "list"), ("h", "hash"), ("s", "set"), ("z", "zset")] {
        assert_eq!(q::<String>(&mut con, &["TYPE", key]), kind);
        let payload: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut con).unwrap();
        let copy = format!("{key}-restored");
        let _: () = redis::cmd("RESTORE")
            .arg(&copy)
            .arg(0)
            .arg(&payload)
            .query(&mut con)
            .unwrap();
        let dumped_again: Vec<u8> = redis::cmd("DUMP").arg(&copy).query(&mut con).unwrap();
        assert_eq!(payload, dumped_again, "{key}");
        assert_eq!(
            q::<i64>(&mut con, &["COPY", key, &format!("{key}-copy")]),
            1
        );
        assert_eq!(
            q::<String>(&mut con, &["TYPE", &format!("{key}-copy")]),
            kind
        );
        let (_, found): (String, Vec<String>) = redis::cmd("SCAN")
            .arg(0)
            .arg("TYPE")
            .arg(kind)
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
            .unwrap();
        assert_eq!(found.len(), 3, "{kind}: {found:?}");
    }
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "l-copy", "0", "-1"]),
        ["a", "b"]
    );
    assert_eq!(
        expect_err(&mut con, &["GET", "l"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut con, &["MGET", "l", "missing"]),
        [None, None]
    );
}
