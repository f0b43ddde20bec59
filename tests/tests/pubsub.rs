//! Pub/sub and keyspace notifications, in RESP2 and RESP3.

use std::time::{Duration, Instant};

use ringkv_tests::{query as q, RawConnection, TestServer};

/// Publishes from another connection and checks how many subscriptions it reached
/// (the subscriber has read its confirmation, so it is registered).
fn publish_reaching(server: &TestServer, channel: &str, message: &str, receivers: i64) {
    let mut con = server.connect();
    let (name, subscribers): (String, i64) = q(&mut con, &["PUBSUB", "NUMSUB", channel]);
    assert_eq!((name.as_str(), subscribers > 0), (channel, true));
    assert_eq!(
        q::<i64>(&mut con, &["PUBLISH", channel, message]),
        receivers
    );
}

#[test]
fn resp2_subscribers_receive_messages_and_patterns() {
    let server = TestServer::start();
    let mut sub = server.raw();
    sub.send_command(&["SUBSCRIBE", "news", "sport"]);
    assert_eq!(sub.reply_text(), "[$subscribe, $news, :1]");
    assert_eq!(sub.reply_text(), "[$subscribe, $sport, :2]");
    sub.send_command(&["PSUBSCRIBE", "n*"]);
    assert_eq!(sub.reply_text(), "[$psubscribe, $n*, :3]");
    publish_reaching(&server, "news", "hello", 2);
    assert_eq!(sub.reply_text(), "[$message, $news, $hello]");
    assert_eq!(sub.reply_text(), "[$pmessage, $n*, $news, $hello]");
    // Only the pub/sub commands and PING work while subscribed in RESP2.
    assert_eq!(
        sub.call(&["GET", "k"]),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    );
    assert_eq!(sub.call(&["PING"]), "[$pong, $]");
    sub.send_command(&["UNSUBSCRIBE"]);
    let mut replies = vec![sub.reply_text(), sub.reply_text()];
    replies.sort();
    assert_eq!(
        replies,
        ["[$unsubscribe, $news, :2]", "[$unsubscribe, $sport, :1]"]
    );
    assert_eq!(sub.call(&["PUNSUBSCRIBE"]), "[$punsubscribe, $n*, :0]");
    assert_eq!(sub.call(&["GET", "k"]), "(nil)");
    assert_eq!(sub.call(&["UNSUBSCRIBE"]), "[$unsubscribe, (nil), :0]");
}

#[test]
fn resp3_subscribers_get_push_frames_and_may_run_commands() {
    let server = TestServer::start();
    let mut sub = server.raw();
    sub.send_command(&["HELLO", "3"]);
    sub.set_resp3(true);
    sub.reply_text();
    sub.send_command(&["SUBSCRIBE", "c"]);
    assert_eq!(sub.reply_text(), "[$subscribe, $c, :1]");
    assert_eq!(sub.call(&["SET", "k", "v"]), "+OK");
    publish_reaching(&server, "c", "m", 1);
    assert_eq!(sub.reply_text(), "[$message, $c, $m]");
}

#[test]
fn pubsub_introspection() {
    let server = TestServer::start();
    let mut a = server.raw();
    a.send_command(&["SUBSCRIBE", "x", "y"]);
    a.reply_text();
    a.reply_text();
    let mut b = server.raw();
    b.send_command(&["PSUBSCRIBE", "p*"]);
    b.reply_text();
    let mut con = server.connect();
    let mut channels: Vec<String> = q(&mut con, &["PUBSUB", "CHANNELS"]);
    channels.sort();
    assert_eq!(channels, ["x", "y"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["PUBSUB", "CHANNELS", "x*"]),
        ["x"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["PUBSUB", "NUMSUB", "x", "z"]),
        ["x", "1", "z", "0"]
    );
    assert_eq!(q::<i64>(&mut con, &["PUBSUB", "NUMPAT"]), 1);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !q::<Vec<String>>(&mut con, &["PUBSUB", "CHANNELS"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "a disconnected subscriber must leave its channels"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_slow_subscriber_is_disconnected_at_the_output_limit() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 512kb 60",
        ],
    );
    let mut sub = server.raw();
    sub.send_command(&["SUBSCRIBE", "firehose"]);
    sub.reply_text();
    // The subscriber never reads; the server must not buffer more than the limit.
    let payload = "x".repeat(64 * 1024);
    let mut published = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let receivers: i64 = q(&mut con, &["PUBLISH", "firehose", &payload]);
        if receivers == 0 {
            break;
        }
        published += 1;
        assert!(
            Instant::now() < deadline,
            "subscriber still connected after {published} messages"
        );
    }
    assert!(published >= 8, "{published}");
    let info: String = q(&mut con, &["INFO", "stats"]);
    assert!(info.contains("pubsub_channels:0"), "{info}");
}

fn keyspace_subscriber(server: &TestServer, flags: &str, pattern: &str) -> RawConnection {
    let mut con = server.connect();
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", flags],
    );
    let mut sub = server.raw();
    sub.send_command(&["PSUBSCRIBE", pattern]);
    sub.reply_text();
    sub
}

#[test]
fn keyspace_notifications_report_writes() {
    let server = TestServer::start();
    let mut sub = keyspace_subscriber(&server, "KEg$l", "__key*@0__:*");
    let mut con = server.connect();
    assert_eq!(
        q::<Vec<String>>(&mut con, &["CONFIG", "GET", "notify-keyspace-events"])[1],
        "g$lKE"
    );
    let _: () = q(&mut con, &["SET", "user:1", "v"]);
    assert_eq!(
        sub.reply_text(),
        "[$pmessage, $__key*@0__:*, $__keyspace@0__:user:1, $set]"
    );
    assert_eq!(
        sub.reply_text(),
        "[$pmessage, $__key*@0__:*, $__keyevent@0__:set, $user:1]"
    );
    let _: i64 = q(&mut con, &["DEL", "user:1"]);
    assert_eq!(
        sub.reply_text(),
        "[$pmessage, $__key*@0__:*, $__keyspace@0__:user:1, $del]"
    );
    sub.reply_text();
    let _: i64 = q(&mut con, &["RPUSH", "l", "x"]);
    assert_eq!(
        sub.reply_text(),
        "[$pmessage, $__key*@0__:*, $__keyspace@0__:l, $rpush]"
    );
    sub.reply_text();
    // Hash events were not asked for.
    let _: i64 = q(&mut con, &["HSET", "h", "f", "v"]);
    let _: i64 = q(&mut con, &["INCR", "n"]);
    assert_eq!(
        sub.reply_text(),
        "[$pmessage, $__key*@0__:*, $__keyspace@0__:n, $incrby]"
    );
    assert_eq!(
        ringkv_tests::expect_err(&mut con, &["CONFIG", "SET", "notify-keyspace-events", "Q"]),
        "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
    );
}

#[test]
fn expired_keys_are_announced() {
    let server = TestServer::start();
    let mut sub = keyspace_subscriber(&server, "Ex", "__keyevent@0__:expired");
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "session:42", "v", "PX", "50"]);
    // Nobody reads the key: active expiry finds it and announces it.
    sub.set_timeout(Duration::from_secs(10));
    assert_eq!(
        sub.reply_text(),
        "[$pmessage, $__keyevent@0__:expired, $__keyevent@0__:expired, $session:42]"
    );
}
