//! Sharded pub/sub in cluster mode: shard channels route like keys (one slot per
//! command, served by the node asked), and Redis's cluster clients, which route
//! pub/sub by what `COMMAND` says, publish through ringkv.

use std::process::Command;

use ringkv_server::keyspace::key_slot;
use ringkv_tests::cluster::TestCluster;
use ringkv_tests::{expect_err, query as q};

/// One range of `CLUSTER SLOTS`: first, last, and its master's ip, port, id
/// and (empty) metadata.
type SlotRange = (i64, i64, (String, u16, String, Vec<String>));

/// The client port of the node serving `channel`'s slot.
fn owner_port(con: &mut redis::Connection, channel: &str) -> u16 {
    let slots: Vec<SlotRange> = q(con, &["CLUSTER", "SLOTS"]);
    let slot = i64::from(key_slot(channel.as_bytes()));
    slots
        .iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot))
        .map(|(_, _, node)| node.1)
        .expect("every slot is served")
}

#[test]
fn shard_channels_route_like_keys_and_publish_runs_anywhere() {
    let cluster = TestCluster::start("shard-routing", 3, &[]);
    let me = cluster.ports[0];
    let mut con = cluster.connect(0);
    let channels = (0..).map(|i| format!("ch{i}"));
    let mine = channels
        .clone()
        .find(|c| owner_port(&mut con, c) == me)
        .unwrap();
    let other = channels
        .clone()
        .find(|c| owner_port(&mut con, c) != me)
        .unwrap();
    let other_slot = key_slot(other.as_bytes());
    let moved = format!(
        "MOVED {other_slot} 127.0.0.1:{}",
        owner_port(&mut con, &other)
    );
    assert_eq!(expect_err(&mut con, &["SSUBSCRIBE", &other]), moved);
    assert_eq!(expect_err(&mut con, &["SPUBLISH", &other, "m"]), moved);
    assert_eq!(expect_err(&mut con, &["SUNSUBSCRIBE", &other]), moved);
    assert_eq!(
        expect_err(&mut con, &["SSUBSCRIBE", &mine, &other]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    // Ordinary channels are no keys: PUBLISH and SUBSCRIBE run on any node.
    assert_eq!(q::<i64>(&mut con, &["PUBLISH", &other, "m"]), 0);

    let mut sub = cluster.server(0).raw();
    let tagged = format!("{{{mine}}}.two");
    sub.send_command(&["SSUBSCRIBE", &mine, &tagged]);
    assert_eq!(sub.reply_text(), format!("[$ssubscribe, ${mine}, :1]"));
    assert_eq!(sub.reply_text(), format!("[$ssubscribe, ${tagged}, :2]"));
    assert_eq!(q::<i64>(&mut con, &["SPUBLISH", &mine, "hello"]), 1);
    assert_eq!(sub.reply_text(), format!("[$smessage, ${mine}, $hello]"));
    // Unsubscribing from everything names no channel, so it runs anywhere.
    sub.send_command(&["SUNSUBSCRIBE"]);
    sub.reply_text();
    assert!(sub.reply_text().ends_with(":0]"));
    assert_eq!(sub.call(&["GET", &mine]), "(nil)");
}

/// redis-py's RedisCluster finds the node for PUBLISH and SPUBLISH from the
/// `pubsub` flag in `COMMAND`, and the sharded pub/sub client subscribes on
/// the channel's node.
const REDIS_PY_CLUSTER: &str = r#"
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
assert rc.publish("news", "hi") == 0
assert rc.spublish("news", "hi") == 0
p = rc.pubsub()
p.ssubscribe("news")
confirm = p.get_sharded_message(timeout=5.0)
assert confirm["type"] == "ssubscribe" and confirm["channel"] == b"news", confirm
assert rc.spublish("news", "hello") == 1
message = p.get_sharded_message(timeout=5.0)
assert message["type"] == "smessage" and message["data"] == b"hello", message
p.close()
print("redis-py cluster pub/sub ok")
"#;

#[test]
fn redis_py_cluster_client_publishes_and_spublishes() {
    match Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .output()
    {
        Err(_) => {
            eprintln!("skipped: python3 is not installed");
            return;
        }
        Ok(out) if !out.status.success() => {
            eprintln!("skipped: the redis module (redis-py) is not installed for python3");
            return;
        }
        Ok(_) => {}
    }
    let cluster = TestCluster::start("shard-redis-py", 3, &[]);
    let out = Command::new("python3")
        .args(["-c", REDIS_PY_CLUSTER, &cluster.ports[1].to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "redis-py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
