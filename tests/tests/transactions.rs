//! MULTI/EXEC/DISCARD/WATCH against the real server.

use std::time::Duration;

use ringkv_tests::{expect_err, query as q, TestServer};

#[test]
fn queued_commands_run_together_at_exec() {
    let server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(raw.call(&["MULTI"]), "+OK");
    assert_eq!(raw.call(&["SET", "a", "1"]), "+QUEUED");
    assert_eq!(raw.call(&["INCR", "a"]), "+QUEUED");
    assert_eq!(raw.call(&["LPUSH", "a", "x"]), "+QUEUED");
    assert_eq!(raw.call(&["GET", "a"]), "+QUEUED");
    // Other clients see nothing before EXEC.
    let mut other = server.connect();
    assert_eq!(q::<Option<String>>(&mut other, &["GET", "a"]), None);
    // A runtime error fails only its own command.
    assert_eq!(
        raw.call(&["EXEC"]),
        "[+OK, :2, -WRONGTYPE Operation against a key holding the wrong kind of value, $2]"
    );
    assert_eq!(q::<String>(&mut other, &["GET", "a"]), "2");
}

#[test]
fn a_queueing_error_aborts_the_whole_transaction() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.call(&["MULTI"]);
    raw.call(&["SET", "a", "1"]);
    assert_eq!(
        raw.call(&["SET", "b"]),
        "-ERR wrong number of arguments for 'set' command"
    );
    assert!(raw
        .call(&["NOSUCHCMD"])
        .starts_with("-ERR unknown command 'NOSUCHCMD'"));
    assert_eq!(
        raw.call(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors."
    );
    assert_eq!(raw.call(&["EXISTS", "a"]), ":0");
}

#[test]
fn a_refused_exec_discards_the_transaction() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.call(&["SET", "w", "0"]);
    raw.call(&["WATCH", "w"]);
    raw.call(&["MULTI"]);
    raw.call(&["SET", "a", "1"]);
    // As Redis 7: EXEC with arguments aborts the transaction, saying why.
    assert_eq!(
        raw.call(&["EXEC", "garbage"]),
        "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command"
    );
    assert_eq!(raw.call(&["EXEC"]), "-ERR EXEC without MULTI");
    assert_eq!(raw.call(&["EXISTS", "a"]), ":0");
    // The watches went with it: a new transaction runs whatever `w` saw.
    let mut other = server.connect();
    q::<()>(&mut other, &["SET", "w", "1"]);
    raw.call(&["MULTI"]);
    raw.call(&["SET", "a", "2"]);
    assert_eq!(raw.call(&["EXEC"]), "[+OK]");
    let info: String = q(&mut other, &["INFO", "errorstats"]);
    assert!(info.contains("errorstat_EXECABORT:count=1"), "{info}");
}

#[test]
fn transaction_control_errors() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(expect_err(&mut con, &["EXEC"]), "ERR EXEC without MULTI");
    assert_eq!(
        expect_err(&mut con, &["DISCARD"]),
        "ERR DISCARD without MULTI"
    );
    let mut raw = server.raw();
    raw.call(&["MULTI"]);
    assert_eq!(raw.call(&["MULTI"]), "-ERR MULTI calls can not be nested");
    assert_eq!(
        raw.call(&["WATCH", "k"]),
        "-ERR WATCH inside MULTI is not allowed"
    );
    raw.call(&["SET", "k", "v"]);
    assert_eq!(raw.call(&["DISCARD"]), "+OK");
    assert_eq!(raw.call(&["EXISTS", "k"]), ":0");
}

#[test]
fn watch_detects_a_write_by_another_client() {
    let server = TestServer::start();
    let mut a = server.raw();
    let mut b = server.connect();
    let _: () = q(&mut b, &["SET", "balance", "100"]);
    assert_eq!(a.call(&["WATCH", "balance"]), "+OK");
    assert_eq!(a.call(&["GET", "balance"]), "$100");
    a.call(&["MULTI"]);
    a.call(&["SET", "balance", "90"]);
    // B changes the key between WATCH and EXEC.
    let _: () = q(&mut b, &["SET", "balance", "50"]);
    assert_eq!(a.call(&["EXEC"]), "(nil)");
    assert_eq!(q::<String>(&mut b, &["GET", "balance"]), "50");
    // The watch is gone after EXEC: a retry succeeds.
    a.call(&["WATCH", "balance"]);
    a.call(&["MULTI"]);
    a.call(&["SET", "balance", "40"]);
    assert_eq!(a.call(&["EXEC"]), "[+OK]");
}

#[test]
fn concurrent_optimistic_increments_never_lose_an_update() {
    let server = TestServer::start();
    let port = server.port;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut raw = ringkv_tests::RawConnection::connect(port);
                let mut done = 0;
                while done < 50 {
                    raw.call(&["WATCH", "counter"]);
                    let current = match raw.call(&["GET", "counter"]).as_str() {
                        "(nil)" => 0,
                        text => text.trim_start_matches('$').parse::<i64>().unwrap(),
                    };
                    raw.call(&["MULTI"]);
                    raw.call(&["SET", "counter", &(current + 1).to_string()]);
                    if raw.call(&["EXEC"]) != "(nil)" {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["GET", "counter"]), 200);
}

#[test]
fn a_watched_key_that_expires_aborts_exec() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.call(&["SET", "k", "v", "PX", "50"]);
    raw.call(&["WATCH", "k"]);
    std::thread::sleep(Duration::from_millis(120));
    raw.call(&["MULTI"]);
    raw.call(&["PING"]);
    assert_eq!(raw.call(&["EXEC"]), "(nil)");
}

#[test]
fn untouched_watches_and_unwatch_let_exec_run() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.call(&["WATCH", "x", "y"]);
    raw.call(&["MULTI"]);
    raw.call(&["SET", "x", "1"]);
    assert_eq!(raw.call(&["EXEC"]), "[+OK]");
    let mut other = server.connect();
    raw.call(&["WATCH", "x"]);
    let _: () = q(&mut other, &["SET", "x", "2"]);
    assert_eq!(raw.call(&["UNWATCH"]), "+OK");
    raw.call(&["MULTI"]);
    raw.call(&["GET", "x"]);
    assert_eq!(raw.call(&["EXEC"]), "[$2]");
}

#[test]
fn flushall_and_keyspace_walks_inside_transactions() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let mut other = server.connect();
    let _: () = q(&mut other, &["MSET", "a", "1", "b", "2"]);
    raw.call(&["WATCH", "a"]);
    let _: () = q(&mut other, &["FLUSHALL"]);
    raw.call(&["MULTI"]);
    raw.call(&["PING"]);
    assert_eq!(raw.call(&["EXEC"]), "(nil)");
    raw.call(&["MULTI"]);
    raw.call(&["MSET", "x", "1", "y", "2"]);
    raw.call(&["KEYS", "*"]);
    raw.call(&["DBSIZE"]);
    raw.call(&["BLPOP", "nolist", "0"]);
    let reply = raw.call(&["EXEC"]);
    assert!(reply.starts_with("[+OK, [$"), "{reply}");
    assert!(reply.ends_with(":2, (nil)]"), "{reply}");
}

#[test]
fn aborted_exec_is_a_resp3_null() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send_command(&["HELLO", "3"]);
    raw.set_resp3(true);
    raw.reply_text();
    let mut other = server.connect();
    raw.call(&["WATCH", "k"]);
    let _: () = q(&mut other, &["SET", "k", "1"]);
    raw.call(&["MULTI"]);
    raw.call(&["PING"]);
    assert_eq!(raw.call(&["EXEC"]), "(nil)");
}
