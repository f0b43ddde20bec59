//! Blocking pops: FIFO wake order, timeouts, disconnects while blocked.

use std::time::{Duration, Instant};

use ringkv_tests::{query as q, TestServer};

/// Waits until the server reports `n` blocked clients.
fn wait_blocked(server: &TestServer, n: usize) {
    let mut con = server.connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = q(&mut con, &["INFO", "clients"]);
        if info.contains(&format!("blocked_clients:{n}\r")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never reached {n} blocked clients: {info}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn blocked_clients_are_woken_in_arrival_order() {
    let server = TestServer::start();
    let mut waiters = Vec::new();
    for i in 0..3 {
        let mut raw = server.raw();
        raw.send_command(&["BLPOP", "queue", "0"]);
        wait_blocked(&server, i + 1);
        waiters.push(raw);
    }
    let mut con = server.connect();
    // One push wakes exactly one waiter: the first.
    assert_eq!(q::<i64>(&mut con, &["RPUSH", "queue", "one"]), 1);
    assert_eq!(waiters[0].reply_text(), "[$queue, $one]");
    wait_blocked(&server, 2);
    // The element went to the waiter, not into the list.
    assert_eq!(q::<i64>(&mut con, &["LLEN", "queue"]), 0);
    assert_eq!(q::<i64>(&mut con, &["RPUSH", "queue", "two", "three"]), 2);
    assert_eq!(waiters[1].reply_text(), "[$queue, $two]");
    assert_eq!(waiters[2].reply_text(), "[$queue, $three]");
    wait_blocked(&server, 0);
}

#[test]
fn a_timeout_replies_nil_and_the_client_goes_on() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let started = Instant::now();
    raw.send(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$3\r\n0.2\r\nPING\r\n");
    assert_eq!(raw.reply_text(), "(nil)");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // The pipelined command after the blocked one runs once it finished.
    assert_eq!(raw.reply_text(), "+PONG");
    assert_eq!(raw.call(&["BRPOPLPUSH", "q", "d", "0.05"]), "(nil)");
    assert_eq!(raw.call(&["BZPOPMIN", "zq", "0.05"]), "(nil)");
}

#[test]
fn a_disconnected_waiter_leaves_the_queue() {
    let server = TestServer::start();
    {
        let mut gone = server.raw();
        gone.send_command(&["BLPOP", "q", "0"]);
        wait_blocked(&server, 1);
    }
    wait_blocked(&server, 0);
    let mut con = server.connect();
    let _: i64 = q(&mut con, &["RPUSH", "q", "kept"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "q", "0", "-1"]),
        ["kept"]
    );
}

#[test]
fn blocking_pops_return_at_once_when_data_is_there() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: i64 = q(&mut con, &["RPUSH", "b", "x", "y"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["BRPOP", "a", "b", "1"]),
        ["b", "y"]
    );
    assert_eq!(
        q::<String>(&mut con, &["BLMOVE", "b", "c", "LEFT", "RIGHT", "1"]),
        "x"
    );
    let _: i64 = q(&mut con, &["ZADD", "z", "1", "m", "2", "n"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["BZPOPMAX", "z", "1"]),
        ["z", "n", "2"]
    );
    let _: i64 = q(&mut con, &["RPUSH", "l", "1", "2", "3"]);
    let (key, items): (String, Vec<String>) =
        q(&mut con, &["BLMPOP", "1", "1", "l", "RIGHT", "COUNT", "2"]);
    assert_eq!(
        (key.as_str(), items),
        ("l", vec!["3".to_string(), "2".to_string()])
    );
    assert_eq!(
        ringkv_tests::expect_err(&mut con, &["BLPOP", "q", "-1"]),
        "ERR timeout is negative"
    );
    assert_eq!(
        ringkv_tests::expect_err(&mut con, &["BLPOP", "q", "x"]),
        "ERR timeout is not a float or out of range"
    );
}

#[test]
fn waiters_on_several_keys_and_moves_and_sorted_sets() {
    let server = TestServer::start();
    let mut mover = server.raw();
    mover.send_command(&["BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"]);
    let mut zwaiter = server.raw();
    zwaiter.send_command(&["BZPOPMIN", "z1", "z2", "0"]);
    let mut multi = server.raw();
    multi.send_command(&["BLPOP", "k1", "k2", "0"]);
    wait_blocked(&server, 3);
    let mut con = server.connect();
    let _: i64 = q(&mut con, &["RPUSH", "src", "a"]);
    assert_eq!(mover.reply_text(), "$a");
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "dst", "0", "-1"]),
        ["a"]
    );
    let _: i64 = q(&mut con, &["ZADD", "z2", "7", "m"]);
    assert_eq!(zwaiter.reply_text(), "[$z2, $m, $7]");
    let _: i64 = q(&mut con, &["LPUSH", "k2", "v"]);
    assert_eq!(multi.reply_text(), "[$k2, $v]");
    wait_blocked(&server, 0);
}

#[test]
fn client_kill_unblocks_and_disconnects() {
    let server = TestServer::start();
    let mut victim = server.raw();
    let id = victim
        .call(&["CLIENT", "ID"])
        .trim_start_matches(':')
        .to_string();
    victim.send_command(&["BLPOP", "q", "0"]);
    wait_blocked(&server, 1);
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["CLIENT", "KILL", "ID", &id]), 1);
    assert!(victim.is_closed());
    wait_blocked(&server, 0);
}

#[test]
fn a_served_blocked_move_notifies_and_touches_watches_like_the_command() {
    // Set at start-up, as a redis.conf user would.
    let server = TestServer::start_with(&["--notify-keyspace-events", "El"]);
    let mut sub = server.raw();
    sub.send_command(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    sub.reply_text();
    let mut mover = server.raw();
    mover.send_command(&["BLMOVE", "jobs", "working", "LEFT", "RIGHT", "0"]);
    wait_blocked(&server, 1);
    let mut watcher = server.raw();
    watcher.call(&["WATCH", "working"]);
    watcher.call(&["MULTI"]);
    watcher.call(&["SET", "claimed", "1"]);
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["RPUSH", "jobs", "job-1"]), 1);
    assert_eq!(mover.reply_text(), "$job-1");
    let events: Vec<String> = (0..3).map(|_| sub.reply_text()).collect();
    assert_eq!(
        events,
        [
            "[$pmessage, $__keyevent@0__:*, $__keyevent@0__:rpush, $jobs]",
            "[$pmessage, $__keyevent@0__:*, $__keyevent@0__:lpop, $jobs]",
            "[$pmessage, $__keyevent@0__:*, $__keyevent@0__:rpush, $working]",
        ]
    );
    // The destination changed under the watcher: its transaction must not run.
    assert_eq!(watcher.call(&["EXEC"]), "(nil)");
    assert_eq!(
        q::<Vec<String>>(&mut con, &["LRANGE", "working", "0", "-1"]),
        ["job-1"]
    );
}

#[test]
fn zmpop_and_bzmpop_pop_from_the_first_sorted_set_that_exists() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<i64>(&mut con, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    let mut raw = server.raw();
    assert_eq!(
        raw.call(&["ZMPOP", "2", "none", "z", "MIN"]),
        "[$z, [[$a, $1]]]"
    );
    assert_eq!(
        raw.call(&["ZMPOP", "1", "z", "max", "COUNT", "5"]),
        "[$z, [[$c, $3], [$b, $2]]]"
    );
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "z"]), 0);
    assert_eq!(raw.call(&["ZMPOP", "1", "z", "MIN"]), "(nil)");
    for (args, error) in [
        (
            &["ZMPOP", "0", "z", "MIN"][..],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["ZMPOP", "x", "z", "MIN"],
            "ERR numkeys should be greater than 0",
        ),
        (&["ZMPOP", "3", "z", "MIN"], "ERR syntax error"),
        (&["ZMPOP", "1", "z", "MID"], "ERR syntax error"),
        (
            &["ZMPOP", "1", "z", "MIN", "COUNT", "0"],
            "ERR count should be greater than 0",
        ),
        (
            &["ZMPOP", "1", "z", "MIN", "COUNT", "1", "COUNT", "2"],
            "ERR syntax error",
        ),
        (
            &["BZMPOP", "-1", "1", "z", "MIN"],
            "ERR timeout is negative",
        ),
        (
            &["BZMPOP", "x", "1", "z", "MIN"],
            "ERR timeout is not a float or out of range",
        ),
    ] {
        assert_eq!(ringkv_tests::expect_err(&mut con, args), error, "{args:?}");
    }
    q::<()>(&mut con, &["SET", "s", "x"]);
    assert!(
        ringkv_tests::expect_err(&mut con, &["ZMPOP", "2", "s", "z", "MIN"])
            .starts_with("WRONGTYPE")
    );
    // Blocked, then served with up to COUNT members, in the BZMPOP shape.
    let mut waiter = server.raw();
    waiter.send_command(&["BZMPOP", "0", "2", "z1", "z2", "MAX", "COUNT", "2"]);
    let mut single = server.raw();
    single.send_command(&["BZPOPMAX", "z2", "0"]);
    wait_blocked(&server, 2);
    q::<i64>(&mut con, &["ZADD", "z2", "1", "x", "2", "y", "3", "z"]);
    assert_eq!(waiter.reply_text(), "[$z2, [[$z, $3], [$y, $2]]]");
    assert_eq!(single.reply_text(), "[$z2, $x, $1]");
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "z2"]), 0);
    // A timeout answers a null array; RESP3 scores are doubles.
    assert_eq!(raw.call(&["BZMPOP", "0.01", "1", "z2", "MIN"]), "(nil)");
    let mut resp3 = server.raw();
    resp3.send_command(&["HELLO", "3"]);
    resp3.set_resp3(true);
    resp3.reply_text();
    q::<i64>(&mut con, &["ZADD", "z3", "1.5", "a"]);
    assert_eq!(
        resp3.call(&["ZMPOP", "1", "z3", "MIN"]),
        "[$z3, [[$a, ,1.5]]]"
    );
}

#[test]
fn sorted_set_pops_announce_the_pop_then_the_deletion() {
    let server = TestServer::start_with(&["--notify-keyspace-events", "KEA"]);
    let mut con = server.connect();
    let mut sub = server.raw();
    sub.call(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    q::<i64>(&mut con, &["ZADD", "z", "1", "a", "2", "b"]);
    assert_eq!(sub.next_keyevent(), "zadd z");
    q::<redis::Value>(&mut con, &["ZPOPMIN", "z"]);
    assert_eq!(sub.next_keyevent(), "zpopmin z");
    q::<redis::Value>(&mut con, &["ZPOPMAX", "z"]);
    assert_eq!(sub.next_keyevent(), "zpopmax z");
    assert_eq!(sub.next_keyevent(), "del z");
    q::<i64>(&mut con, &["ZADD", "y", "1", "a"]);
    assert_eq!(sub.next_keyevent(), "zadd y");
    q::<redis::Value>(&mut con, &["ZMPOP", "1", "y", "MAX", "COUNT", "3"]);
    assert_eq!(sub.next_keyevent(), "zpopmax y");
    assert_eq!(sub.next_keyevent(), "del y");
}
