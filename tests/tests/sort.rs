//! SORT and SORT_RO against the real server: numbers and strings, BY and GET
//! patterns, LIMIT, STORE, the errors, cluster mode's refusals, and random
//! sorts side by side with Redis.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redis::Value;
use ringkv_tests::cluster::TestCluster;
use ringkv_tests::reference::RedisServer;
use ringkv_tests::{expect_err, query as q, TestServer};

fn strings(con: &mut redis::Connection, args: &[&str]) -> Vec<Option<String>> {
    q(con, args)
}

#[test]
fn sorts_numbers_and_strings_with_limit_and_order() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<i64>(&mut con, &["RPUSH", "l", "3", "10", "1", "2.5", "-4"]);
    let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(
        strings(&mut con, &["SORT", "l"]),
        some(&["-4", "1", "2.5", "3", "10"])
    );
    assert_eq!(
        strings(&mut con, &["SORT", "l", "DESC"]),
        some(&["10", "3", "2.5", "1", "-4"])
    );
    assert_eq!(
        strings(&mut con, &["SORT", "l", "ALPHA"]),
        some(&["-4", "1", "10", "2.5", "3"])
    );
    assert_eq!(
        strings(&mut con, &["SORT", "l", "LIMIT", "1", "2"]),
        some(&["1", "2.5"])
    );
    assert_eq!(
        strings(&mut con, &["SORT", "l", "LIMIT", "-5", "2", "DESC"]),
        some(&["10", "3"])
    );
    assert_eq!(
        strings(&mut con, &["SORT", "l", "LIMIT", "9", "2"]),
        some(&[])
    );
    // BY a constant: the stored order, reversed by DESC, limited.
    assert_eq!(
        strings(
            &mut con,
            &["SORT", "l", "BY", "nosort", "DESC", "LIMIT", "0", "2"]
        ),
        some(&["-4", "2.5"])
    );
    q::<i64>(&mut con, &["ZADD", "z", "1", "c", "2", "a", "3", "b"]);
    assert_eq!(
        strings(&mut con, &["SORT", "z", "ALPHA"]),
        some(&["a", "b", "c"])
    );
    assert_eq!(
        strings(&mut con, &["SORT", "z", "BY", "nosort"]),
        some(&["c", "a", "b"])
    );
    assert_eq!(
        strings(&mut con, &["SORT_RO", "z", "BY", "nosort", "DESC"]),
        some(&["b", "a", "c"])
    );
    q::<i64>(&mut con, &["SADD", "s", "5", "2", "9"]);
    assert_eq!(strings(&mut con, &["SORT", "s"]), some(&["2", "5", "9"]));
    assert_eq!(strings(&mut con, &["SORT", "missing"]), some(&[]));
    q::<i64>(&mut con, &["RPUSH", "words", "b", "a"]);
    assert_eq!(
        expect_err(&mut con, &["SORT", "words"]),
        "ERR One or more scores can't be converted into double"
    );
    q::<()>(&mut con, &["SET", "str", "x"]);
    assert!(expect_err(&mut con, &["SORT", "str"]).starts_with("WRONGTYPE"));
    for (args, error) in [
        (
            &["SORT", "l", "LIMIT", "x", "1"][..],
            "ERR value is not an integer or out of range",
        ),
        (&["SORT", "l", "LIMIT", "1"], "ERR syntax error"),
        (&["SORT", "l", "SIDEWAYS"], "ERR syntax error"),
        (&["SORT", "l", "BY"], "ERR syntax error"),
        (&["SORT_RO", "l", "STORE", "d"], "ERR syntax error"),
    ] {
        assert_eq!(expect_err(&mut con, args), error, "{args:?}");
    }
}

#[test]
fn by_and_get_patterns_read_other_keys_and_hash_fields() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<i64>(&mut con, &["RPUSH", "ids", "1", "2", "3"]);
    q::<()>(
        &mut con,
        &[
            "MSET", "w_1", "30", "w_2", "10", "name_1", "one", "name_3", "three",
        ],
    );
    q::<i64>(&mut con, &["HSET", "h_1", "age", "7"]);
    q::<i64>(&mut con, &["HSET", "h_2", "age", "5"]);
    let got = strings(
        &mut con,
        &[
            "SORT", "ids", "BY", "w_*", "GET", "#", "GET", "name_*", "GET", "h_*->age",
        ],
    );
    // w_3 is missing: it sorts as 0, first.
    let want: Vec<Option<String>> = [
        Some("3"),
        Some("three"),
        None,
        Some("2"),
        None,
        Some("5"),
        Some("1"),
        Some("one"),
        Some("7"),
    ]
    .iter()
    .map(|s| s.map(str::to_owned))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        strings(
            &mut con,
            &["SORT", "ids", "BY", "h_*->age", "DESC", "GET", "#"]
        ),
        [Some("1".into()), Some("2".into()), Some("3".into())]
    );
    assert_eq!(
        strings(
            &mut con,
            &["SORT", "ids", "BY", "name_*", "ALPHA", "GET", "#"]
        ),
        [Some("2".into()), Some("1".into()), Some("3".into())]
    );
    // A pattern's key of another type reads as missing.
    q::<i64>(&mut con, &["RPUSH", "name_2", "x"]);
    assert_eq!(
        strings(&mut con, &["SORT", "ids", "GET", "name_*"])[1],
        None
    );
}

#[test]
fn store_writes_a_list_and_an_empty_result_deletes_it() {
    let server = TestServer::start_with(&["--notify-keyspace-events", "KEA"]);
    let mut con = server.connect();
    let mut sub = server.raw();
    sub.call(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    q::<i64>(&mut con, &["SADD", "s", "3", "1", "2"]);
    assert_eq!(sub.next_keyevent(), "sadd s");
    q::<()>(&mut con, &["SET", "dst", "old", "EX", "100"]);
    sub.next_keyevent();
    sub.next_keyevent();
    // BY a constant on a set, stored: sorted as strings, so the result does
    // not depend on the set's order.
    assert_eq!(
        q::<i64>(&mut con, &["SORT", "s", "BY", "nosort", "STORE", "dst"]),
        3
    );
    assert_eq!(sub.next_keyevent(), "sortstore dst");
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "dst", "0", "-1"]),
        ["1", "2", "3"]
    );
    assert_eq!(q::<i64>(&mut con, &["TTL", "dst"]), -1);
    assert_eq!(
        q::<i64>(&mut con, &["SORT", "s", "GET", "nokey_*", "STORE", "dst"]),
        3
    );
    sub.next_keyevent();
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "dst", "0", "-1"]),
        ["", "", ""]
    );
    assert_eq!(q::<i64>(&mut con, &["SORT", "missing", "STORE", "dst"]), 0);
    assert_eq!(sub.next_keyevent(), "del dst");
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "dst"]), 0);
    // The destination is a key: COMMAND GETKEYS finds it after the options.
    assert_eq!(
        q::<Vec<String>>(
            &mut con,
            &["COMMAND", "GETKEYS", "SORT", "s", "LIMIT", "0", "1", "GET", "store", "STORE", "d"]
        ),
        ["s", "d"]
    );
}

#[test]
fn cluster_mode_refuses_by_and_get_patterns() {
    let cluster = TestCluster::start("sort", 1, &[]);
    let mut con = cluster.connect(0);
    let key = cluster.key_of(0);
    q::<i64>(&mut con, &["RPUSH", &key, "2", "1"]);
    assert_eq!(q::<Vec<String>>(&mut con, &["SORT", &key]), ["1", "2"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["SORT", &key, "BY", "nosort"]),
        ["2", "1"]
    );
    assert_eq!(
        expect_err(&mut con, &["SORT", &key, "BY", "w_*"]),
        "ERR BY option of SORT denied in Cluster mode."
    );
    assert_eq!(
        expect_err(&mut con, &["SORT", &key, "GET", "#"]),
        "ERR GET option of SORT denied in Cluster mode."
    );
}

/// One reply, or its error's text.
fn reply(con: &mut redis::Connection, args: &[String]) -> Result<Value, String> {
    let mut command = redis::cmd(&args[0]);
    for arg in &args[1..] {
        command.arg(arg);
    }
    command
        .query::<Value>(con)
        .map_err(|e| ringkv_tests::error_text(&e))
}

#[test]
fn random_sorts_answer_as_redis_does() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let server = TestServer::start();
    let (mut ours, mut theirs) = (server.connect(), redis.connect());
    let mut rng = StdRng::seed_from_u64(0x50e7);
    for round in 0..30 {
        let mut setup: Vec<Vec<String>> = vec![vec!["FLUSHALL".into()]];
        // Elements 0..n, unique, as numbers or words; every one has a unique
        // weight in w_<e> and a hash h_<e>, but some (a third) miss them.
        let n = rng.random_range(0..12);
        let words = rng.random_bool(0.3);
        let elements: Vec<String> = (0..n)
            .map(|i| {
                if words {
                    format!("e{}", i * 7 % 13)
                } else {
                    format!("{}", i as f64 * 1.5 - 4.0)
                }
            })
            .collect();
        let kind = rng.random_range(0..3);
        let mut fill = vec![
            ["RPUSH", "SADD", "ZADD"][kind].to_string(),
            "src".to_string(),
        ];
        for (i, e) in elements.iter().enumerate() {
            if kind == 2 {
                fill.push((n - i).to_string());
            }
            fill.push(e.clone());
        }
        if n > 0 {
            setup.push(fill);
        }
        let all_weighted = rng.random_bool(0.5);
        for (i, e) in elements.iter().enumerate() {
            if all_weighted || rng.random_range(0..3) > 0 {
                setup.push(vec![
                    "SET".into(),
                    format!("w_{e}"),
                    format!("{}", (i * 37) % 101),
                ]);
                setup.push(vec![
                    "HSET".into(),
                    format!("h_{e}"),
                    "f".into(),
                    format!("v{}", (i * 11) % 17),
                ]);
            }
        }
        for command in &setup {
            assert_eq!(reply(&mut ours, command), reply(&mut theirs, command));
        }
        for _ in 0..40 {
            let mut sort: Vec<String> = vec!["SORT".into(), "src".into()];
            // A set's stored order is arbitrary: sort it by something.
            let by = match rng.random_range(0..4) {
                0 if kind != 1 => Some("nosort"),
                1 => Some("w_*"),
                2 if all_weighted => Some("h_*->f"),
                _ => None,
            };
            let alpha = words || by == Some("h_*->f") || rng.random_bool(0.2);
            // Strings with ties (missing BY values) sort in no defined order.
            let by = by.filter(|b| !(alpha && *b == "w_*" && !all_weighted));
            if let Some(by) = by {
                sort.extend(["BY".into(), by.into()]);
            }
            if alpha {
                sort.push("ALPHA".into());
            }
            if rng.random_bool(0.5) {
                sort.push(if rng.random_bool(0.5) { "DESC" } else { "ASC" }.into());
            }
            if rng.random_bool(0.4) {
                sort.extend([
                    "LIMIT".into(),
                    rng.random_range(-2..8).to_string(),
                    rng.random_range(-2..8).to_string(),
                ]);
            }
            for _ in 0..rng.random_range(0..3) {
                let pattern =
                    ["#", "w_*", "h_*->f", "h_*->nofield", "nokey"][rng.random_range(0..5)];
                sort.extend(["GET".into(), pattern.into()]);
            }
            let store = rng.random_bool(0.3);
            if store {
                sort.extend(["STORE".into(), "dst".into()]);
            }
            let shown = sort.join(" ");
            assert_eq!(
                reply(&mut ours, &sort),
                reply(&mut theirs, &sort),
                "round {round}: {shown}"
            );
            if store {
                let range: Vec<String> = ["LRANGE", "dst", "0", "-1"].map(String::from).to_vec();
                assert_eq!(
                    reply(&mut ours, &range),
                    reply(&mut theirs, &range),
                    "round {round}: {shown}"
                );
            }
        }
    }
}
