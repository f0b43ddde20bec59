//! Stream consumer groups end to end: XGROUP, XACK, XPENDING, XCLAIM,
//! XAUTOCLAIM and XINFO beside a real Redis, their keyspace events, and
//! replicas reaching the same groups.

use redis::Value;
use ringkv_tests::reference::RedisServer;
use ringkv_tests::replication::{caught_up, follow};
use ringkv_tests::{query as q, RawConnection, TestServer};

/// Requests whose replies hold no time: both servers answer them alike.
const SCRIPT: &[&str] = &[
    "XGROUP CREATE s g $",
    "XGROUP CREATE s g $ MKSTREAM",
    "XGROUP CREATE s g $ MKSTREAM",
    "XGROUP CREATE s g2 - MKSTREAM",
    "XGROUP CREATE s g2 0 ENTRIESREAD -2",
    "XGROUP CREATE s g2 0 ENTRIESREAD x",
    "XGROUP CREATE s g2 0 BOGUS",
    "XGROUP CREATE s g2 0 MKSTREAM MKSTREAM MKSTREAM MKSTREAM",
    "XGROUP SETID s nog 0",
    "XGROUP SETID s g 0 MKSTREAM",
    "XGROUP SETID nokey g 0",
    "XGROUP DESTROY s nog",
    "XGROUP CREATECONSUMER s nog c",
    "XGROUP HELP",
    "XADD s 1-1 a 1",
    "XADD s 1-2 a 2 b 3",
    "XADD s 2-0 a 3",
    "XADD s 3-0 c 4",
    "XADD s 4-0 a 5",
    "XGROUP CREATE s g2 0",
    "XGROUP CREATE s g3 1-2 ENTRIESREAD 2",
    "XGROUP CREATECONSUMER s g alice",
    "XGROUP CREATECONSUMER s g alice",
    "XREADGROUP GROUP g bob COUNT 2 STREAMS s >",
    "XCLAIM s g bob 0 2-0 FORCE JUSTID RETRYCOUNT 5",
    "XCLAIM s g bob 0 9-9 FORCE",
    "XCLAIM s g2 carol 0 1-1 3-0 FORCE JUSTID",
    "XPENDING s g",
    "XPENDING s g2",
    "XPENDING s g - + 10 nobody",
    "XPENDING s g IDLE 99999999 - + 10",
    "XPENDING s g - + -5",
    "XPENDING s g - +",
    "XPENDING s g IDLE 5 - +",
    "XPENDING s g IDLE x - + 10",
    "XPENDING s g - + x",
    "XPENDING s g x + 10",
    "XPENDING s g (18446744073709551615-18446744073709551615 + 10",
    "XPENDING s g - (0-0 10",
    "XPENDING s nog",
    "XPENDING nokey g",
    "XCLAIM s nog c 0 1-1",
    "XCLAIM s g c x 1-1",
    "XCLAIM s g c 0 1-1 IDLE x",
    "XCLAIM s g c 0 1-1 BOGUS",
    "XCLAIM s g c 0 1-1 IDLE",
    "XCLAIM s g c 0 1-1 LASTID +",
    "XCLAIM s g bob 99999999 1-1",
    "XCLAIM s g alice 0 1-1 JUSTID",
    "XCLAIM s g alice 0 1-2 RETRYCOUNT 7 IDLE 1000",
    "XDEL s 1-1",
    "XCLAIM s g alice 0 1-1 1-2 JUSTID",
    "XPENDING s g",
    "XCLAIM s g alice 0 1-2 LASTID 3-0 JUSTID",
    "XINFO GROUPS s",
    "XAUTOCLAIM s g dave 0 0 COUNT 1",
    "XAUTOCLAIM s g dave 0 0 COUNT 1 JUSTID",
    "XAUTOCLAIM s g2 dave 0 - JUSTID",
    "XAUTOCLAIM s g dave 0 0 COUNT 0",
    "XAUTOCLAIM s g dave x 0",
    "XAUTOCLAIM s g dave 0 x",
    "XAUTOCLAIM s g dave 0 0 BOGUS",
    "XAUTOCLAIM s nog dave 0 0",
    "XAUTOCLAIM s g dave 99999999 0",
    "XDEL s 2-0",
    "XAUTOCLAIM s g dave 0 0-0",
    "XINFO GROUPS s",
    "XINFO CONSUMERS s nog",
    "XINFO CONSUMERS nokey g",
    "XINFO STREAM nokey",
    "XINFO STREAM s FOO",
    "XINFO STREAM s FULL COUNT x",
    "XINFO STREAM s",
    "XINFO HELP",
    "XACK s g 1-2 3-0 9-9",
    "XACK s g 1-2",
    "XACK s g x",
    "XACK s nog 1-1",
    "XACK s g +",
    "XGROUP DELCONSUMER s g erin",
    "XGROUP DELCONSUMER s g nobody",
    "XGROUP SETID s g $",
    "XGROUP SETID s g + ENTRIESREAD 3",
    "XGROUP DESTROY s g2",
    "XINFO GROUPS s",
    "SET str x",
    "XGROUP CREATE str g $",
    "XPENDING str g",
    "XACK str g 1-1",
    "XCLAIM str g c 0 1-1",
    "XAUTOCLAIM str g c 0 0",
    "XINFO STREAM str",
    "XGROUP CREATE e g $ MKSTREAM",
    "XINFO STREAM e",
    "XINFO GROUPS e",
];

#[test]
fn group_commands_answer_as_redis_does() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let server = TestServer::start();
    for resp3 in [false, true] {
        let mut theirs = RawConnection::connect(redis.port);
        let mut ours = server.raw();
        if resp3 {
            theirs.set_resp3(true);
            ours.set_resp3(true);
            theirs.call(&["HELLO", "3"]);
            ours.call(&["HELLO", "3"]);
        }
        theirs.call(&["FLUSHALL"]);
        ours.call(&["FLUSHALL"]);
        for request in SCRIPT {
            let args: Vec<&str> = request.split(' ').collect();
            assert_eq!(ours.call(&args), theirs.call(&args), "{request}");
        }
    }
}

#[test]
fn group_changes_announce_redis_events() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<()>(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    );
    let mut sub = server.raw();
    sub.call(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    q::<()>(&mut con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    q::<String>(&mut con, &["XADD", "s", "1-1", "f", "v"]);
    q::<i64>(&mut con, &["XGROUP", "CREATECONSUMER", "s", "g", "a"]);
    q::<Value>(&mut con, &["XCLAIM", "s", "g", "b", "0", "1-1", "FORCE"]);
    // Acknowledging and claiming announce nothing.
    q::<i64>(&mut con, &["XACK", "s", "g", "1-1"]);
    q::<Value>(&mut con, &["XCLAIM", "s", "g", "b", "0", "1-1", "FORCE"]);
    q::<Value>(&mut con, &["XAUTOCLAIM", "s", "g", "c", "0", "0"]);
    q::<()>(&mut con, &["XGROUP", "SETID", "s", "g", "0"]);
    q::<i64>(&mut con, &["XGROUP", "DELCONSUMER", "s", "g", "a"]);
    q::<i64>(&mut con, &["XGROUP", "DESTROY", "s", "g"]);
    q::<()>(&mut con, &["SET", "end", "1"]);
    for event in [
        "xgroup-create s",
        "xadd s",
        "xgroup-createconsumer s",
        "xgroup-createconsumer s",
        "xgroup-createconsumer s",
        "xgroup-setid s",
        "xgroup-delconsumer s",
        "xgroup-destroy s",
        "set end",
    ] {
        assert_eq!(sub.next_keyevent(), event);
    }
}

/// The groups of `key` as nothing time-dependent but delivery times shows
/// them: XINFO GROUPS, and each PEL with its delivery times and counts.
fn groups(con: &mut redis::Connection, key: &str) -> (Value, Vec<Value>) {
    let info: Value = q(con, &["XINFO", "GROUPS", key]);
    let names: Vec<String> = match &info {
        Value::Array(groups) => groups
            .iter()
            .filter_map(|g| match g {
                Value::Array(fields) => fields.get(1).and_then(|v| match v {
                    Value::BulkString(name) => Some(String::from_utf8_lossy(name).into_owned()),
                    _ => None,
                }),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let full: Value = q(con, &["XINFO", "STREAM", key, "FULL", "COUNT", "0"]);
    let mut pels = vec![full_pending(&full)];
    for name in names {
        pels.push(q(con, &["XPENDING", key, &name]));
    }
    (info, pels)
}

/// The groups' PELs from XINFO STREAM FULL (ids, owners, delivery times
/// and counts), leaving out the consumers' seen and active times.
fn full_pending(full: &Value) -> Value {
    let Value::Array(fields) = full else {
        return Value::Nil;
    };
    let groups = fields
        .chunks(2)
        .find(|kv| kv[0] == Value::BulkString(b"groups".to_vec()))
        .map(|kv| kv[1].clone());
    let Some(Value::Array(groups)) = groups else {
        return Value::Nil;
    };
    let pels = groups
        .iter()
        .filter_map(|g| match g {
            Value::Array(kv) => kv
                .chunks(2)
                .find(|kv| kv[0] == Value::BulkString(b"pending".to_vec()))
                .map(|kv| kv[1].clone()),
            _ => None,
        })
        .collect();
    Value::Array(pels)
}

#[test]
fn replicas_end_with_the_same_groups() {
    let master = TestServer::start();
    let replica = TestServer::start();
    follow(&replica, &master);
    let mut m = master.connect();
    for i in 1..=20 {
        q::<String>(&mut m, &["XADD", "s", &format!("{i}-0"), "f", "v"]);
    }
    q::<()>(&mut m, &["XGROUP", "CREATE", "s", "g", "0"]);
    q::<()>(&mut m, &["XGROUP", "CREATE", "s", "late", "$"]);
    q::<Value>(
        &mut m,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "a",
            "COUNT",
            "8",
            "STREAMS",
            "s",
            ">",
        ],
    );
    q::<Value>(
        &mut m,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "b",
            "COUNT",
            "4",
            "STREAMS",
            "s",
            ">",
        ],
    );
    q::<i64>(&mut m, &["XACK", "s", "g", "2-0", "3-0"]);
    q::<i64>(&mut m, &["XDEL", "s", "4-0", "10-0"]);
    // Claimed with a time worked out from the master's clock.
    q::<Value>(
        &mut m,
        &["XCLAIM", "s", "g", "c", "0", "5-0", "6-0", "IDLE", "5000"],
    );
    q::<Value>(
        &mut m,
        &[
            "XCLAIM", "s", "g", "c", "0", "15-0", "FORCE", "LASTID", "16-0",
        ],
    );
    q::<Value>(
        &mut m,
        &["XCLAIM", "s", "g", "d", "0", "1-0", "LASTID", "17-0"],
    );
    q::<Value>(
        &mut m,
        &["XAUTOCLAIM", "s", "g", "e", "0", "0", "COUNT", "6"],
    );
    q::<i64>(&mut m, &["XGROUP", "CREATECONSUMER", "s", "g", "idle"]);
    q::<i64>(&mut m, &["XGROUP", "DELCONSUMER", "s", "g", "b"]);
    q::<()>(
        &mut m,
        &["XGROUP", "SETID", "s", "late", "$", "ENTRIESREAD", "20"],
    );
    caught_up(&master, &replica);
    let mut r = replica.connect();
    assert_eq!(groups(&mut r, "s"), groups(&mut m, "s"));
    let consumers = |con: &mut redis::Connection| -> Vec<i64> {
        let info: Vec<Vec<Value>> = q(con, &["XINFO", "CONSUMERS", "s", "g"]);
        info.iter()
            .map(|c| match &c[3] {
                Value::Int(n) => *n,
                _ => -1,
            })
            .collect()
    };
    assert_eq!(consumers(&mut r), consumers(&mut m), "pending per consumer");
}
