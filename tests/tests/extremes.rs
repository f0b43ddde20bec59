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
