//! Extreme and non-integer arguments get Redis 7's exact error texts (found by
//! sending the fuzz test's extremes to ringkv and Redis side by side). Redis
//! gives a command's own range message to non-integers as well.

use ringkv_tests::{expect_err, query, TestServer};

#[test]
fn extreme_and_non_integer_arguments_get_redis_error_texts() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = query(&mut con, &["RPUSH", "l", "a", "b"]);
    let _: () = query(&mut con, &["SADD", "s", "a", "b"]);
    let _: () = query(&mut con, &["ZADD", "z", "1", "a", "2", "b"]);
    let _: () = query(&mut con, &["HSET", "h", "f", "1.5"]);
    let _: () = query(&mut con, &["SET", "str", "v"]);
    let range = "ERR value is out of range, value must between -2147483648 and 2147483647";
    let cases: &[(&[&str], &str)] = &[
        (
            &["LPOS", "l", "a", "COUNT", "nan"],
            "ERR COUNT can't be negative",
        ),
        (
            &["LPOS", "l", "a", "COUNT", "-1"],
            "ERR COUNT can't be negative",
        ),
        (
            &["LPOS", "l", "a", "MAXLEN", "9223372036854775808"],
            "ERR MAXLEN can't be negative",
        ),
        (
            &["LMPOP", "1", "l", "LEFT", "COUNT", "inf"],
            "ERR count should be greater than 0",
        ),
        (
            &["LMPOP", "nan", "l", "LEFT"],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["SPOP", "s", "1.5"],
            "ERR value is out of range, must be positive",
        ),
        (
            &["ZPOPMIN", "z", "-inf"],
            "ERR value is out of range, must be positive",
        ),
        (
            &["SINTERCARD", "", "s"],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["SINTERCARD", "1", "s", "LIMIT", "18446744073709551615"],
            "ERR LIMIT can't be negative",
        ),
        (
            &["ZINTERCARD", "1", "z", "LIMIT", "nan"],
            "ERR LIMIT can't be negative",
        ),
        (
            &["ZUNION", "0", "z"],
            "ERR at least 1 input key is needed for 'zunion' command",
        ),
        (
            &["ZINTERCARD", "-1", "z"],
            "ERR at least 1 input key is needed for 'zintercard' command",
        ),
        (
            &["ZDIFF", "-9223372036854775808", "z"],
            "ERR at least 1 input key is needed for 'zdiff' command",
        ),
        (
            &["HINCRBYFLOAT", "h", "f", "inf"],
            "ERR value is NaN or Infinity",
        ),
        (
            &["HINCRBYFLOAT", "nokey", "f", "-inf"],
            "ERR value is NaN or Infinity",
        ),
        (
            &["MEMORY", "USAGE", "str", "SAMPLES", "-1"],
            "ERR syntax error",
        ),
        (&["COPY", "str", "d", "DB", "2147483648"], range),
        (
            &["COPY", "str", "d", "DB", "5"],
            "ERR DB index is out of range",
        ),
        (&["SELECT", "-2147483649"], range),
        (&["SELECT", "1"], "ERR DB index is out of range"),
    ];
    for (args, want) in cases {
        assert_eq!(expect_err(&mut con, args), *want, "{args:?}");
    }
}

#[test]
fn too_many_arguments_and_out_of_range_numbers_get_redis_error_texts() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = query(&mut con, &["RPUSH", "l", "a", "b"]);
    let _: () = query(&mut con, &["SADD", "s", "a", "b"]);
    let _: () = query(&mut con, &["ZADD", "z", "1", "a", "2", "b"]);
    let _: () = query(&mut con, &["SET", "str", "v"]);
    let not_float = "ERR value is not a valid float";
    let cases: &[(&[&str], &str)] = &[
        (
            &["LPOP", "l", "1", "2"],
            "ERR wrong number of arguments for 'lpop' command",
        ),
        (
            &["RPOP", "l", "1", "x"],
            "ERR wrong number of arguments for 'rpop' command",
        ),
        (
            &["LPOP", "l", "x"],
            "ERR value is out of range, must be positive",
        ),
        (&["SPOP", "s", "1", "x"], "ERR syntax error"),
        (
            &["SINTERCARD", "1", "s", "LIMIT", "-1"],
            "ERR LIMIT can't be negative",
        ),
        (
            &["ZINTERCARD", "1", "z", "LIMIT", "-1"],
            "ERR LIMIT can't be negative",
        ),
        (
            &["SINTERCARD", "1", "s", "LIMIT", "1", "x"],
            "ERR syntax error",
        ),
        (&["HINCRBYFLOAT", "h", "f", "nan"], not_float),
        (
            &["HINCRBYFLOAT", "str", "f", "inf"],
            "ERR value is NaN or Infinity",
        ),
        (&["HINCRBYFLOAT", "h", "f", "1e5000"], not_float),
        (&["INCRBYFLOAT", "n", "1e5000"], not_float),
        (&["ZADD", "z", "1e400", "a"], not_float),
        (&["ZADD", "z", "1e-400", "a"], not_float),
        (&["ZINCRBY", "z", "-1e400", "a"], not_float),
        (
            &["ZUNIONSTORE", "d", "1", "z", "WEIGHTS", "1e400"],
            "ERR weight value is not a float",
        ),
        // Redis 7.2's ZRANK: one option at most, and only WITHSCORE.
        (
            &["ZRANK", "z", "a", "WITHSCORE", "x"],
            "ERR wrong number of arguments for 'zrank' command",
        ),
        (&["ZREVRANK", "z", "a", "x"], "ERR syntax error"),
        (
            &["PUBSUB", "channels", "a", "b"],
            "ERR unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP.",
        ),
        (
            &["CONFIG", "SET", "timeout", "1", "port"],
            "ERR syntax error",
        ),
        (&["FLUSHALL", "ASYNC", "x"], "ERR syntax error"),
    ];
    for (args, want) in cases {
        assert_eq!(expect_err(&mut con, args), *want, "{args:?}");
    }
    // Score range bounds beyond a double are infinities, as strtod reads them.
    let all: Vec<String> = query(&mut con, &["ZRANGEBYSCORE", "z", "-1e400", "1e400"]);
    assert_eq!(all, ["a", "b"]);
}
