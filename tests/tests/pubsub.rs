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

/// Like [`publish_reaching`], for a shard channel.
fn spublish_reaching(server: &TestServer, channel: &str, message: &str, receivers: i64) {
    let mut con = server.connect();
    let (name, subscribers): (String, i64) = q(&mut con, &["PUBSUB", "SHARDNUMSUB", channel]);
    assert_eq!((name.as_str(), subscribers > 0), (channel, true));
    assert_eq!(
        q::<i64>(&mut con, &["SPUBLISH", channel, message]),
        receivers
    );
}

/// The replies to `count` commands sent at once, sorted (unsubscribing from
/// everything goes in the server's own order).
fn sorted_replies(con: &mut RawConnection, count: usize) -> Vec<String> {
    let mut replies: Vec<String> = (0..count).map(|_| con.reply_text()).collect();
    replies.sort();
    replies
}

#[test]
fn resp2_shard_subscribers_receive_smessages_counted_apart_from_channels() {
    let server = TestServer::start();
    let mut sub = server.raw();
    sub.send_command(&["SSUBSCRIBE", "s1", "s2"]);
    assert_eq!(sub.reply_text(), "[$ssubscribe, $s1, :1]");
    assert_eq!(sub.reply_text(), "[$ssubscribe, $s2, :2]");
    assert_eq!(sub.call(&["SSUBSCRIBE", "s1"]), "[$ssubscribe, $s1, :2]");
    // Ordinary confirmations count channels and patterns only, as Redis 7.
    assert_eq!(sub.call(&["SUBSCRIBE", "c1"]), "[$subscribe, $c1, :1]");
    assert_eq!(sub.call(&["PSUBSCRIBE", "*"]), "[$psubscribe, $*, :2]");
    spublish_reaching(&server, "s1", "hello", 1);
    assert_eq!(sub.reply_text(), "[$smessage, $s1, $hello]");
    // PUBLISH and patterns never reach shard channels, nor SPUBLISH channels.
    let mut con = server.connect();
    assert_eq!(q::<i64>(&mut con, &["PUBLISH", "s2", "x"]), 1);
    assert_eq!(sub.reply_text(), "[$pmessage, $*, $s2, $x]");
    assert_eq!(q::<i64>(&mut con, &["SPUBLISH", "c1", "x"]), 0);
    assert_eq!(
        sub.call(&["GET", "k"]),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    );
    assert_eq!(
        sub.call(&["SPUBLISH", "s1", "m"]),
        "-ERR Can't execute 'spublish': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    );
    assert_eq!(sub.call(&["PING"]), "[$pong, $]");
    sub.send_command(&["SUNSUBSCRIBE", "s1", "nope"]);
    assert_eq!(sub.reply_text(), "[$sunsubscribe, $s1, :1]");
    assert_eq!(sub.reply_text(), "[$sunsubscribe, $nope, :1]");
    assert_eq!(sub.call(&["UNSUBSCRIBE"]), "[$unsubscribe, $c1, :1]");
    assert_eq!(sub.call(&["PUNSUBSCRIBE"]), "[$punsubscribe, $*, :0]");
    // A shard channel alone keeps the client in the subscribed context.
    assert!(sub
        .call(&["GET", "k"])
        .starts_with("-ERR Can't execute 'get'"));
    assert_eq!(sub.call(&["SUNSUBSCRIBE"]), "[$sunsubscribe, $s2, :0]");
    assert_eq!(sub.call(&["SUNSUBSCRIBE"]), "[$sunsubscribe, (nil), :0]");
    assert_eq!(sub.call(&["GET", "k"]), "(nil)");
    assert_eq!(
        sub.call(&["SSUBSCRIBE"]),
        "-ERR wrong number of arguments for 'ssubscribe' command"
    );
    assert_eq!(
        sub.call(&["SPUBLISH", "s1"]),
        "-ERR wrong number of arguments for 'spublish' command"
    );
}

#[test]
fn sunsubscribe_without_arguments_leaves_every_shard_channel() {
    let server = TestServer::start();
    let mut sub = server.raw();
    sub.send_command(&["SSUBSCRIBE", "a", "b", "c"]);
    sorted_replies(&mut sub, 3);
    sub.send_command(&["SUNSUBSCRIBE"]);
    let replies = sorted_replies(&mut sub, 3);
    let fields: Vec<Vec<&str>> = replies.iter().map(|r| r.split(", ").collect()).collect();
    let names: Vec<&str> = fields.iter().map(|f| f[1]).collect();
    assert_eq!(names, ["$a", "$b", "$c"], "{replies:?}");
    // Each confirmation counts what is left: 2, then 1, then 0.
    let mut counts: Vec<&str> = fields.iter().map(|f| f[2]).collect();
    counts.sort();
    assert_eq!(counts, [":0]", ":1]", ":2]"], "{replies:?}");
    let mut con = server.connect();
    assert!(q::<Vec<String>>(&mut con, &["PUBSUB", "SHARDCHANNELS"]).is_empty());
}

#[test]
fn resp3_shard_subscribers_get_push_frames_and_may_run_commands() {
    let server = TestServer::start();
    let mut sub = server.raw();
    sub.send_command(&["HELLO", "3"]);
    sub.set_resp3(true);
    sub.reply_text();
    assert_eq!(sub.call(&["SSUBSCRIBE", "r1"]), "[$ssubscribe, $r1, :1]");
    assert_eq!(sub.call(&["SET", "k", "v"]), "+OK");
    spublish_reaching(&server, "r1", "m", 1);
    assert_eq!(sub.reply_text(), "[$smessage, $r1, $m]");
    assert_eq!(sub.call(&["SUNSUBSCRIBE"]), "[$sunsubscribe, $r1, :0]");
    assert_eq!(sub.call(&["SUNSUBSCRIBE"]), "[$sunsubscribe, (nil), :0]");
}

#[test]
fn ssubscribe_inside_exec_is_refused_as_redis_refuses_it() {
    let server = TestServer::start();
    let mut con = server.raw();
    assert_eq!(con.call(&["MULTI"]), "+OK");
    assert_eq!(con.call(&["SSUBSCRIBE", "q"]), "+QUEUED");
    assert_eq!(
        con.call(&["EXEC"]),
        "[-ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client]"
    );
    assert_eq!(con.call(&["MULTI"]), "+OK");
    assert_eq!(con.call(&["SPUBLISH", "q", "m"]), "+QUEUED");
    assert_eq!(con.call(&["SUNSUBSCRIBE", "q"]), "+QUEUED");
    assert_eq!(con.call(&["EXEC"]), "[:0, [$sunsubscribe, $q, :0]]");
}

#[test]
fn shard_channel_introspection_sees_only_shard_channels() {
    let server = TestServer::start();
    let mut a = server.raw();
    a.send_command(&["SSUBSCRIBE", "s1", "s2"]);
    sorted_replies(&mut a, 2);
    assert_eq!(a.call(&["SUBSCRIBE", "c1"]), "[$subscribe, $c1, :1]");
    let mut b = server.raw();
    assert_eq!(b.call(&["SSUBSCRIBE", "s1"]), "[$ssubscribe, $s1, :1]");
    let mut con = server.connect();
    let mut shard: Vec<String> = q(&mut con, &["PUBSUB", "SHARDCHANNELS"]);
    shard.sort();
    assert_eq!(shard, ["s1", "s2"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["PUBSUB", "SHARDCHANNELS", "*2"]),
        ["s2"]
    );
    assert_eq!(q::<Vec<String>>(&mut con, &["PUBSUB", "CHANNELS"]), ["c1"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["PUBSUB", "SHARDNUMSUB", "s1", "c1", "zz"]),
        ["s1", "2", "c1", "0", "zz", "0"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["PUBSUB", "NUMSUB", "s1", "c1"]),
        ["s1", "0", "c1", "1"]
    );
    assert!(q::<Vec<String>>(&mut con, &["PUBSUB", "SHARDNUMSUB"]).is_empty());
    assert_eq!(
        ringkv_tests::expect_err(&mut con, &["PUBSUB", "SHARDCHANNELS", "a", "b"]),
        "ERR unknown subcommand or wrong number of arguments for 'SHARDCHANNELS'. Try PUBSUB HELP."
    );
    let info: String = q(&mut con, &["INFO", "stats"]);
    assert!(
        info.contains("pubsub_channels:1\r\npubsub_patterns:0\r\npubsubshard_channels:2\r\n"),
        "{info}"
    );
    let clients: String = q(&mut con, &["CLIENT", "LIST", "TYPE", "pubsub"]);
    assert_eq!(clients.lines().count(), 2, "{clients}");
    assert!(
        clients.contains("flags=P db=0 sub=1 psub=0 ssub=2 ")
            && clients.contains("flags=P db=0 sub=0 psub=0 ssub=1 "),
        "{clients}"
    );
    // RESET and closing the connection both drop shard subscriptions.
    assert_eq!(a.call(&["RESET"]), "+RESET");
    assert_eq!(
        q::<Vec<String>>(&mut con, &["PUBSUB", "SHARDNUMSUB", "s1", "s2"]),
        ["s1", "1", "s2", "0"]
    );
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !q::<Vec<String>>(&mut con, &["PUBSUB", "SHARDCHANNELS"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "a disconnected subscriber must leave its shard channels"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let info: String = q(&mut con, &["INFO", "stats"]);
    assert!(info.contains("pubsubshard_channels:0\r\n"), "{info}");
}

/// `COMMAND INFO name` on redis-server 7.0.15 (7.2 answers the same), rendered
/// by `RawConnection::reply_text`.
const REDIS_COMMAND_INFO: &[(&str, &str)] = &[
    ("publish", "[[$publish, :3, [+pubsub, +loading, +stale, +fast], :0, :0, :0, [+@pubsub, +@fast], [], [], []]]"),
    ("spublish", "[[$spublish, :3, [+pubsub, +loading, +stale, +fast], :1, :1, :1, [+@pubsub, +@fast], [], [[$flags, [+not_key], $begin_search, [$type, $index, $spec, [$index, :1]], $find_keys, [$type, $range, $spec, [$lastkey, :0, $keystep, :1, $limit, :0]]]], []]]"),
    ("ssubscribe", "[[$ssubscribe, :-2, [+pubsub, +noscript, +loading, +stale], :1, :-1, :1, [+@pubsub, +@slow], [], [[$flags, [+not_key], $begin_search, [$type, $index, $spec, [$index, :1]], $find_keys, [$type, $range, $spec, [$lastkey, :-1, $keystep, :1, $limit, :0]]]], []]]"),
    ("sunsubscribe", "[[$sunsubscribe, :-1, [+pubsub, +noscript, +loading, +stale], :1, :-1, :1, [+@pubsub, +@slow], [], [[$flags, [+not_key], $begin_search, [$type, $index, $spec, [$index, :1]], $find_keys, [$type, $range, $spec, [$lastkey, :-1, $keystep, :1, $limit, :0]]]], []]]"),
    ("subscribe", "[[$subscribe, :-2, [+pubsub, +noscript, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("unsubscribe", "[[$unsubscribe, :-1, [+pubsub, +noscript, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("psubscribe", "[[$psubscribe, :-2, [+pubsub, +noscript, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("punsubscribe", "[[$punsubscribe, :-1, [+pubsub, +noscript, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("pubsub|channels", "[[$pubsub|channels, :-2, [+pubsub, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("pubsub|numsub", "[[$pubsub|numsub, :-2, [+pubsub, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("pubsub|numpat", "[[$pubsub|numpat, :2, [+pubsub, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("pubsub|shardchannels", "[[$pubsub|shardchannels, :-2, [+pubsub, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("pubsub|shardnumsub", "[[$pubsub|shardnumsub, :-2, [+pubsub, +loading, +stale], :0, :0, :0, [+@pubsub, +@slow], [], [], []]]"),
    ("pubsub|help", "[[$pubsub|help, :2, [+loading, +stale], :0, :0, :0, [+@slow], [], [], []]]"),
];

#[test]
fn command_info_of_pubsub_commands_matches_redis_word_for_word() {
    let server = TestServer::start();
    let mut con = server.raw();
    for (name, redis) in REDIS_COMMAND_INFO {
        assert_eq!(con.call(&["COMMAND", "INFO", name]), *redis, "{name}");
    }
    // Shard channels route like keys but are not keys.
    for request in [
        &["COMMAND", "GETKEYS", "SPUBLISH", "ch", "m"][..],
        &["COMMAND", "GETKEYS", "SSUBSCRIBE", "a", "b"],
        &["COMMAND", "GETKEYS", "PUBLISH", "ch", "m"],
    ] {
        assert_eq!(con.call(request), "-ERR The command has no key arguments");
    }
    let docs = con.call(&["COMMAND", "DOCS", "spublish"]);
    assert_eq!(
        docs,
        "[$spublish, [$summary, $Post a message to a shard channel, $since, $7.0.0, $group, $pubsub]]"
    );
    assert_eq!(
        con.call(&["PUBSUB", "HELP"]),
        "[+PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:, \
         +CHANNELS [<pattern>], \
         +    Return the currently active channels matching a <pattern> (default: '*')., \
         +NUMPAT, +    Return number of subscriptions to patterns., \
         +NUMSUB [<channel> ...], \
         +    Return the number of subscribers for the specified channels, excluding, \
         +    pattern subscriptions(default: no channels)., \
         +SHARDCHANNELS [<pattern>], \
         +    Return the currently active shard level channels matching a <pattern> (default: '*')., \
         +SHARDNUMSUB [<shardchannel> ...], \
         +    Return the number of subscribers for the specified shard level channel(s), \
         +HELP, +    Prints this help.]"
    );
}
