//! Connection handling: PING/ECHO, HELLO and RESP3, AUTH and requirepass, SELECT,
//! QUIT, RESET and the CLIENT subcommands.

use std::time::{Duration, Instant};

use redis::Value;
use ringkv_tests::{expect_err, query as q, TestServer};

#[test]
fn ping_and_echo() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<String>(&mut con, &["PING"]), "PONG");
    assert_eq!(q::<String>(&mut con, &["PING", "hi"]), "hi");
    assert_eq!(q::<String>(&mut con, &["ECHO", "hello"]), "hello");
    assert_eq!(
        expect_err(&mut con, &["PING", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
    assert_eq!(
        expect_err(&mut con, &["ECHO"]),
        "ERR wrong number of arguments for 'echo' command"
    );
}

#[test]
fn hello_3_switches_to_resp3_replies() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send_command(&["HELLO", "3"]);
    raw.set_resp3(true);
    let hello = raw.reply_text();
    assert!(hello.starts_with("{$id: :"), "{hello}");
    assert!(
        hello.ends_with("$mode: $standalone, $modules: [], $proto: :3, $role: $master, $server: $ringkv, $version: $7.2.4}"),
        "{hello}"
    );
    assert_eq!(raw.call(&["GET", "missing"]), "(nil)");
    assert_eq!(
        raw.call(&["CONFIG", "GET", "maxclients"]),
        "{$maxclients: $10000}"
    );
    assert!(raw.call(&["INFO", "server"]).starts_with("=# Server"));
    raw.send_command(&["HELLO", "2"]);
    raw.set_resp3(false);
    assert!(raw.reply_text().starts_with("[$server, $ringkv"));
    assert_eq!(raw.call(&["GET", "missing"]), "(nil)");
    assert_eq!(
        raw.call(&["CONFIG", "GET", "maxclients"]),
        "[$maxclients, $10000]"
    );
}

#[test]
fn the_redis_crate_works_over_resp3() {
    let server = TestServer::start();
    let mut con = server.connect_resp3();
    let _: () = q(&mut con, &["SET", "k", "v"]);
    assert_eq!(q::<String>(&mut con, &["GET", "k"]), "v");
    let config: Value = q(&mut con, &["CONFIG", "GET", "timeout"]);
    assert!(matches!(config, Value::Map(_)), "{config:?}");
    let missing: Value = q(&mut con, &["GET", "nope"]);
    assert_eq!(missing, Value::Nil);
}

#[test]
fn hello_errors() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(
        expect_err(&mut con, &["HELLO", "4"]),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        expect_err(&mut con, &["HELLO", "x"]),
        "ERR Protocol version is not an integer or out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["HELLO", "3", "FOO"]),
        "ERR Syntax error in HELLO option 'foo'"
    );
    let reply: Value = q(&mut con, &["HELLO", "2", "SETNAME", "myname"]);
    assert!(matches!(reply, Value::Array(_)));
    assert_eq!(q::<String>(&mut con, &["CLIENT", "GETNAME"]), "myname");
}

#[test]
fn requirepass_gives_noauth_and_wrongpass() {
    let server = TestServer::start_with(&["--requirepass", "s3cret"]);
    let mut raw = server.raw();
    assert_eq!(raw.call(&["GET", "k"]), "-NOAUTH Authentication required.");
    assert_eq!(raw.call(&["PING"]), "-NOAUTH Authentication required.");
    assert_eq!(
        raw.call(&["AUTH", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        raw.call(&["AUTH", "someone", "s3cret"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert!(raw
        .call(&["HELLO", "3"])
        .starts_with("-NOAUTH HELLO must be called with the client already authenticated"));
    assert_eq!(raw.call(&["AUTH", "s3cret"]), "+OK");
    assert_eq!(raw.call(&["PING"]), "+PONG");
    // AUTH inside HELLO, on a fresh connection.
    let mut other = server.raw();
    assert!(other
        .call(&["HELLO", "2", "AUTH", "default", "s3cret"])
        .starts_with("[$server"));
    assert_eq!(other.call(&["SET", "k", "v"]), "+OK");
    // RESET deauthenticates.
    assert_eq!(other.call(&["RESET"]), "+RESET");
    assert_eq!(
        other.call(&["GET", "k"]),
        "-NOAUTH Authentication required."
    );
    // The redis crate authenticates from the URL.
    let client =
        redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", server.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    assert_eq!(q::<String>(&mut con, &["GET", "k"]), "v");
}

#[test]
fn auth_without_a_password_configured() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(
        expect_err(&mut con, &["AUTH", "x"]),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your client is configured correctly?"
    );
    assert_eq!(
        q::<String>(&mut con, &["AUTH", "default", "anything"]),
        "OK"
    );
    assert_eq!(
        expect_err(&mut con, &["AUTH", "a", "b", "c"]),
        "ERR syntax error"
    );
}

#[test]
fn requirepass_set_at_runtime_applies_to_new_clients() {
    let server = TestServer::start();
    let mut admin = server.connect();
    let _: () = q(&mut admin, &["CONFIG", "SET", "requirepass", "pw"]);
    // The connection that set it stays authenticated, like Redis.
    assert_eq!(q::<String>(&mut admin, &["PING"]), "PONG");
    let mut raw = server.raw();
    assert_eq!(raw.call(&["PING"]), "-NOAUTH Authentication required.");
    assert_eq!(raw.call(&["AUTH", "pw"]), "+OK");
    assert_eq!(raw.call(&["CONFIG", "SET", "requirepass", ""]), "+OK");
    let mut fresh = server.raw();
    assert_eq!(fresh.call(&["PING"]), "+PONG");
}

#[test]
fn select_only_database_zero() {
    let server = TestServer::start();
    let mut con = server.connect();
    assert_eq!(q::<String>(&mut con, &["SELECT", "0"]), "OK");
    assert_eq!(
        expect_err(&mut con, &["SELECT", "1"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        expect_err(&mut con, &["SELECT", "x"]),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn quit_replies_then_closes() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send(b"PING\r\nQUIT\r\nPING\r\n");
    assert_eq!(raw.reply_text(), "+PONG");
    assert_eq!(raw.reply_text(), "+OK");
    assert!(raw.is_closed(), "the PING after QUIT must not be answered");
}

#[test]
fn reset_restores_a_fresh_connection() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send_command(&["HELLO", "3", "SETNAME", "n1"]);
    raw.set_resp3(true);
    raw.reply_text();
    assert_eq!(raw.call(&["RESET"]), "+RESET");
    raw.set_resp3(false);
    assert_eq!(raw.call(&["GET", "missing"]), "(nil)");
    assert_eq!(raw.call(&["CLIENT", "GETNAME"]), "(nil)");
}

#[test]
fn client_id_names_setinfo_list_and_info() {
    let server = TestServer::start();
    let mut con = server.connect();
    let id: i64 = q(&mut con, &["CLIENT", "ID"]);
    assert!(id > 0);
    assert_eq!(q::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]), None);
    let _: () = q(&mut con, &["CLIENT", "SETNAME", "worker-1"]);
    assert_eq!(q::<String>(&mut con, &["CLIENT", "GETNAME"]), "worker-1");
    assert_eq!(
        expect_err(&mut con, &["CLIENT", "SETNAME", "bad name"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    let _: () = q(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]);
    let _: () = q(&mut con, &["CLIENT", "SETINFO", "lib-ver", "1.2.3"]);
    assert_eq!(
        expect_err(&mut con, &["CLIENT", "SETINFO", "color", "red"]),
        "ERR Unrecognized option 'color'"
    );
    let info: String = q(&mut con, &["CLIENT", "INFO"]);
    assert!(
        info.starts_with(&format!("id={id} addr=127.0.0.1:")),
        "{info}"
    );
    for field in [
        "name=worker-1",
        "lib-name=mylib",
        "lib-ver=1.2.3",
        "cmd=client|info",
        "resp=2",
        "db=0",
    ] {
        assert!(info.contains(field), "{field} missing in {info}");
    }
    assert!(info.ends_with('\n'));
    let _other = server.connect();
    let list: String = q(&mut con, &["CLIENT", "LIST"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    let mine: String = q(&mut con, &["CLIENT", "LIST", "ID", &id.to_string()]);
    assert_eq!(mine.lines().count(), 1);
    let none: String = q(&mut con, &["CLIENT", "LIST", "TYPE", "pubsub"]);
    assert!(none.is_empty());
    assert_eq!(
        expect_err(&mut con, &["CLIENT", "LIST", "TYPE", "x"]),
        "ERR Unknown client type 'x'"
    );
    assert_eq!(
        expect_err(&mut con, &["CLIENT", "NOPE"]),
        "ERR unknown subcommand 'NOPE'. Try CLIENT HELP."
    );
    assert_eq!(
        expect_err(&mut con, &["CLIENT"]),
        "ERR wrong number of arguments for 'client' command"
    );
    assert_eq!(
        expect_err(&mut con, &["CLIENT", "SETNAME"]),
        "ERR wrong number of arguments for 'client|setname' command"
    );
    assert!(!q::<Vec<String>>(&mut con, &["CLIENT", "HELP"]).is_empty());
}

#[test]
fn client_kill_disconnects_the_target() {
    let server = TestServer::start();
    let mut admin = server.connect();
    let mut victim = server.raw();
    let victim_id = victim
        .call(&["CLIENT", "ID"])
        .trim_start_matches(':')
        .to_string();
    assert_eq!(
        q::<i64>(&mut admin, &["CLIENT", "KILL", "ID", &victim_id]),
        1
    );
    assert!(victim.is_closed());
    assert_eq!(q::<i64>(&mut admin, &["CLIENT", "KILL", "ID", "999999"]), 0);
    assert_eq!(
        expect_err(&mut admin, &["CLIENT", "KILL", "127.0.0.1:1"]),
        "ERR No such client"
    );
    // Old form by address.
    let mut second = server.raw();
    let info = second.call(&["CLIENT", "INFO"]);
    let addr = info
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .unwrap()
        .to_string();
    assert_eq!(q::<String>(&mut admin, &["CLIENT", "KILL", &addr]), "OK");
    assert!(second.is_closed());
    // SKIPME defaults to yes: killing by our own address spares us.
    let own = q::<String>(&mut admin, &["CLIENT", "INFO"]);
    let own_addr = own
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .unwrap()
        .to_string();
    assert_eq!(
        q::<i64>(&mut admin, &["CLIENT", "KILL", "ADDR", &own_addr]),
        0
    );
    assert_eq!(q::<String>(&mut admin, &["PING"]), "PONG");
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let server = TestServer::start_with(&["--timeout", "1"]);
    let mut raw = server.raw();
    assert_eq!(raw.call(&["PING"]), "+PONG");
    let started = Instant::now();
    raw.set_timeout(Duration::from_secs(5));
    assert!(raw.is_closed());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

/// The `CLIENT LIST` line of the client with `id`, as key=value pairs.
fn client_fields(
    admin: &mut redis::Connection,
    id: &str,
) -> std::collections::HashMap<String, String> {
    let line: String = q(admin, &["CLIENT", "LIST", "ID", id]);
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn client_list_shows_subscriptions_transactions_watches_and_blocking() {
    let server = TestServer::start();
    let mut admin = server.connect();
    let mut sub = server.raw();
    let sub_id = sub
        .call(&["CLIENT", "ID"])
        .trim_start_matches(':')
        .to_string();
    sub.send_command(&["SUBSCRIBE", "a", "b"]);
    sub.reply_text();
    sub.reply_text();
    sub.send_command(&["PSUBSCRIBE", "c*"]);
    sub.reply_text();
    let mut tx = server.raw();
    let tx_id = tx
        .call(&["CLIENT", "ID"])
        .trim_start_matches(':')
        .to_string();
    tx.call(&["WATCH", "k1", "k2"]);
    tx.call(&["MULTI"]);
    tx.call(&["SET", "k1", "v"]);
    let mut blocked = server.raw();
    let blocked_id = blocked
        .call(&["CLIENT", "ID"])
        .trim_start_matches(':')
        .to_string();
    blocked.send_command(&["BLPOP", "q", "0"]);

    let s = client_fields(&mut admin, &sub_id);
    assert_eq!(
        (&s["flags"][..], &s["sub"][..], &s["psub"][..]),
        ("P", "2", "1")
    );
    let t = client_fields(&mut admin, &tx_id);
    assert_eq!(
        (&t["flags"][..], &t["multi"][..], &t["watch"][..]),
        ("x", "1", "2")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_fields(&mut admin, &blocked_id)["flags"] != "b" {
        assert!(Instant::now() < deadline, "never shown blocked");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pubsub: String = q(&mut admin, &["CLIENT", "LIST", "TYPE", "pubsub"]);
    assert_eq!(pubsub.lines().count(), 1, "{pubsub}");
    assert!(pubsub.contains(&format!("id={sub_id} ")));
    let normal: String = q(&mut admin, &["CLIENT", "LIST", "TYPE", "normal"]);
    assert_eq!(normal.lines().count(), 3, "{normal}");
    let own: String = q(&mut admin, &["CLIENT", "INFO"]);
    assert!(
        own.contains(" flags=N ") && own.contains(" multi=-1 "),
        "{own}"
    );
}
