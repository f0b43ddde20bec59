//! The one write path (issue 11): what a unit of work changed is committed once,
//! after the whole unit. Each test is a Redis 7 behaviour ringkv used to miss.

use std::time::{Duration, Instant};

use ringkv_tests::{query as q, RawConnection, TestServer};

/// A client that sent `args` and is now blocked on them (as `CLIENT LIST` shows).
fn blocked(server: &TestServer, admin: &mut redis::Connection, args: &[&str]) -> RawConnection {
    let mut raw = server.raw();
    let id = raw
        .call(&["CLIENT", "ID"])
        .trim_start_matches(':')
        .to_string();
    raw.send_command(args);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line: String = q(admin, &["CLIENT", "LIST", "ID", &id]);
        if line.contains(" flags=b ") {
            return raw;
        }
        assert!(Instant::now() < deadline, "{args:?} never blocked: {line}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True if `raw` got no reply within a short while (it is still blocked).
fn still_blocked(raw: &mut RawConnection) -> bool {
    raw.set_timeout(Duration::from_millis(300));
    let closed_or_answered = raw.is_closed();
    raw.set_timeout(Duration::from_secs(10));
    !closed_or_answered && !raw.has_buffered()
}

/// Runs a transaction of `commands` on a fresh connection.
fn transaction(server: &TestServer, commands: &[&[&str]]) {
    let mut raw = server.raw();
    assert_eq!(raw.call(&["MULTI"]), "+OK");
    for c in commands {
        assert_eq!(raw.call(c), "+QUEUED");
    }
    let reply = raw.call(&["EXEC"]);
    assert!(reply.starts_with('['), "{reply}");
}

#[test]
fn a_transaction_that_pushes_then_deletes_wakes_nobody() {
    let server = TestServer::start();
    let mut admin = server.connect();
    let mut blpop = blocked(&server, &mut admin, &["BLPOP", "l", "0"]);
    let mut blmpop = blocked(&server, &mut admin, &["BLMPOP", "0", "1", "l", "LEFT"]);
    transaction(&server, &[&["LPUSH", "l", "a"], &["DEL", "l"]]);
    transaction(
        &server,
        &[&["LPUSH", "l", "a"], &["DEL", "l"], &["SET", "l", "x"]],
    );
    assert!(still_blocked(&mut blpop));
    assert!(still_blocked(&mut blmpop));
    assert_eq!(q::<String>(&mut admin, &["GET", "l"]), "x");
}

#[test]
fn a_client_woken_by_a_transaction_sees_the_state_after_it() {
    let server = TestServer::start();
    let mut admin = server.connect();
    let mut blpop = blocked(&server, &mut admin, &["BLPOP", "l", "0"]);
    transaction(
        &server,
        &[
            &["LPUSH", "l", "a"],
            &["LPUSH", "l", "b"],
            &["LPUSH", "l", "c"],
        ],
    );
    assert_eq!(blpop.reply_text(), "[$l, $c]");
    assert_eq!(
        q::<Vec<String>>(&mut admin, &["LRANGE", "l", "0", "-1"]),
        ["b", "a"]
    );
}

#[test]
fn a_move_into_the_wrong_type_fails_its_client_and_serves_the_next() {
    let server = TestServer::start();
    let mut admin = server.connect();
    q::<()>(&mut admin, &["SET", "dst", "str"]);
    let mut first = blocked(&server, &mut admin, &["BRPOPLPUSH", "src", "dst", "0"]);
    let mut second = blocked(&server, &mut admin, &["BRPOPLPUSH", "src", "dst2", "0"]);
    q::<()>(&mut admin, &["RPUSH", "src", "x"]);
    assert_eq!(
        first.reply_text(),
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(second.reply_text(), "$x");
    assert_eq!(
        q::<Vec<String>>(&mut admin, &["LRANGE", "dst2", "0", "-1"]),
        ["x"]
    );
    assert_eq!(q::<i64>(&mut admin, &["EXISTS", "src"]), 0);
    // As Redis, the served error counts as an error reply.
    let info: String = q(&mut admin, &["INFO", "errorstats"]);
    assert!(info.contains("errorstat_WRONGTYPE:count=1"), "{info}");
}

#[test]
fn every_write_that_fills_a_key_wakes_its_waiters() {
    let server = TestServer::start();
    let mut admin = server.connect();
    let list_writes: &[(&[&[&str]], &[&str])] = &[
        (&[&["RPUSH", "from", "r"]], &["RENAME", "from", "w"]),
        (&[&["RPUSH", "from", "c"]], &["COPY", "from", "w"]),
        (
            &[&["RPUSH", "from", "m"]],
            &["LMOVE", "from", "w", "LEFT", "LEFT"],
        ),
    ];
    for (setup, write) in list_writes {
        for s in *setup {
            q::<()>(&mut admin, s);
        }
        let mut waiter = blocked(&server, &mut admin, &["BLPOP", "w", "0"]);
        q::<redis::Value>(&mut admin, write);
        assert!(
            waiter.reply_text().starts_with("[$w, $"),
            "{write:?} woke nobody"
        );
        q::<()>(&mut admin, &["DEL", "from", "w"]);
    }
    // RESTORE of a dumped list.
    q::<()>(&mut admin, &["RPUSH", "src", "d"]);
    let dump: Vec<u8> = q(&mut admin, &["DUMP", "src"]);
    let mut waiter = blocked(&server, &mut admin, &["BLPOP", "restored", "0"]);
    let mut restore = redis::cmd("RESTORE");
    restore.arg("restored").arg(0).arg(dump);
    restore.query::<()>(&mut admin).unwrap();
    assert_eq!(waiter.reply_text(), "[$restored, $d]");
    // Sorted-set destinations of the STORE family.
    q::<()>(&mut admin, &["ZADD", "z1", "1", "a"]);
    for store in [
        &["ZUNIONSTORE", "zdst", "1", "z1"][..],
        &["ZINTERSTORE", "zdst", "1", "z1"],
        &["ZDIFFSTORE", "zdst", "1", "z1"],
        &["ZRANGESTORE", "zdst", "z1", "0", "-1"],
    ] {
        let mut waiter = blocked(&server, &mut admin, &["BZPOPMIN", "zdst", "0"]);
        q::<i64>(&mut admin, store);
        assert_eq!(waiter.reply_text(), "[$zdst, $a, $1]", "{store:?}");
    }
}

#[test]
fn blocking_pops_that_find_data_publish_the_pops_events() {
    let server = TestServer::start();
    let mut admin = server.connect();
    q::<()>(
        &mut admin,
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    );
    let mut sub = server.raw();
    sub.call(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    q::<()>(&mut admin, &["RPUSH", "l", "x", "y"]);
    q::<()>(&mut admin, &["ZADD", "z", "1", "a"]);
    assert_eq!(sub.next_keyevent(), "rpush l");
    assert_eq!(sub.next_keyevent(), "zadd z");
    q::<redis::Value>(&mut admin, &["BLPOP", "l", "0"]);
    assert_eq!(sub.next_keyevent(), "lpop l");
    q::<redis::Value>(&mut admin, &["BRPOP", "l", "0"]);
    assert_eq!(sub.next_keyevent(), "rpop l");
    assert_eq!(sub.next_keyevent(), "del l");
    q::<redis::Value>(&mut admin, &["BZPOPMIN", "z", "0"]);
    assert_eq!(sub.next_keyevent(), "zpopmin z");
    assert_eq!(sub.next_keyevent(), "del z");
    // SMOVE announces the destination only when the member was added there.
    q::<()>(&mut admin, &["SADD", "src", "m", "n"]);
    q::<()>(&mut admin, &["SADD", "dst", "m"]);
    assert_eq!(sub.next_keyevent(), "sadd src");
    assert_eq!(sub.next_keyevent(), "sadd dst");
    q::<i64>(&mut admin, &["SMOVE", "src", "dst", "m"]);
    q::<i64>(&mut admin, &["SMOVE", "src", "dst", "n"]);
    assert_eq!(sub.next_keyevent(), "srem src");
    assert_eq!(sub.next_keyevent(), "srem src");
    assert_eq!(sub.next_keyevent(), "del src");
    assert_eq!(sub.next_keyevent(), "sadd dst");
}

#[test]
fn flushall_touches_only_the_watched_keys_that_existed() {
    let server = TestServer::start();
    let mut admin = server.connect();
    let mut absent = server.raw();
    absent.call(&["WATCH", "nokey"]);
    let mut present = server.raw();
    q::<()>(&mut admin, &["SET", "k", "v"]);
    present.call(&["WATCH", "k"]);
    q::<()>(&mut admin, &["FLUSHALL"]);
    for (client, key, expected) in [
        (&mut absent, "nokey", "[+OK]"),
        (&mut present, "k", "(nil)"),
    ] {
        client.call(&["MULTI"]);
        client.call(&["SET", key, "1"]);
        assert_eq!(client.call(&["EXEC"]), expected, "watching {key}");
    }
}

#[test]
fn smove_touches_the_destination_only_when_it_changed() {
    let server = TestServer::start();
    let mut admin = server.connect();
    q::<()>(&mut admin, &["SADD", "src", "m", "n"]);
    q::<()>(&mut admin, &["SADD", "dst", "m"]);
    let mut watcher = server.raw();
    watcher.call(&["WATCH", "dst"]);
    q::<i64>(&mut admin, &["SMOVE", "src", "dst", "m"]);
    watcher.call(&["MULTI"]);
    watcher.call(&["SCARD", "dst"]);
    assert_eq!(watcher.call(&["EXEC"]), "[:1]");
    watcher.call(&["WATCH", "dst"]);
    q::<i64>(&mut admin, &["SMOVE", "src", "dst", "n"]);
    watcher.call(&["MULTI"]);
    watcher.call(&["SCARD", "dst"]);
    assert_eq!(watcher.call(&["EXEC"]), "(nil)");
}
