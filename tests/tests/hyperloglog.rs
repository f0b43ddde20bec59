//! HyperLogLog commands against the real server: replies, error texts, the
//! values' bytes, keyspace events, WATCH, replication, and (when
//! `redis-server` is installed) the same random commands on Redis 7 giving
//! the same bytes and counts.

use redis::{cmd, Value};
use ringkv_tests::reference::RedisServer;
use ringkv_tests::replication::{caught_up, follow};
use ringkv_tests::{error_text, expect_err, query as q, TestServer};

/// A new HyperLogLog as Redis writes it: sparse, one XZERO opcode for all
/// 16384 registers, its cached count marked stale by the PFADD that made it.
const EMPTY: &[u8] = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff";

fn get(con: &mut redis::Connection, key: &str) -> Vec<u8> {
    cmd("GET").arg(key).query(con).unwrap()
}

fn set(con: &mut redis::Connection, key: &str, value: &[u8]) {
    let _: () = cmd("SET").arg(key).arg(value).query(con).unwrap();
}

#[test]
fn pfadd_and_pfcount_build_and_cache_what_redis_does() {
    let server = TestServer::start();
    let mut con = server.connect();
    // Creating counts as a change, even with nothing to add.
    assert_eq!(q::<i64>(&mut con, &["PFADD", "h"]), 1);
    assert_eq!(get(&mut con, "h"), EMPTY);
    assert_eq!(q::<i64>(&mut con, &["PFADD", "h"]), 0);
    assert_eq!(q::<i64>(&mut con, &["PFADD", "h", "a", "b", "c"]), 1);
    assert_eq!(q::<i64>(&mut con, &["PFADD", "h", "a", "c"]), 0);
    let stale = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80`\xf3\x80P\xb1\x84K\xfb\x80BZ";
    assert_eq!(get(&mut con, "h"), stale);
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "h"]), 3);
    // The count is cached in the header, marked valid.
    let cached = b"HYLL\x01\0\0\0\x03\0\0\0\0\0\0\0`\xf3\x80P\xb1\x84K\xfb\x80BZ";
    assert_eq!(get(&mut con, "h"), cached);
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "h"]), 3);
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "missing"]), 0);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "missing"]), 0);
    let elements: Vec<String> = (0..10_000).map(|i| format!("e{i}")).collect();
    let mut add = vec!["PFADD", "big"];
    add.extend(elements.iter().map(String::as_str));
    assert_eq!(q::<i64>(&mut con, &add), 1);
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "big"]), 9_973);
    assert_eq!(get(&mut con, "big").len(), 12_304);
}

#[test]
fn pfcount_of_several_keys_counts_their_union_and_caches_nothing() {
    let server = TestServer::start();
    let mut con = server.connect();
    let letters: Vec<String> = ('a'..='o').map(String::from).collect();
    let words: Vec<&str> = letters.iter().map(String::as_str).collect();
    q::<i64>(&mut con, &[&["PFADD", "h1"], &words[..10]].concat());
    q::<i64>(&mut con, &[&["PFADD", "h2"], &words[5..]].concat());
    let before = get(&mut con, "h1");
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "h1", "h2"]), 15);
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "h1", "h1", "missing"]), 10);
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "missing", "also"]), 0);
    assert_eq!(get(&mut con, "h1"), before, "the union caches nothing");
}

#[test]
fn pfmerge_stores_the_union_in_the_target_which_it_counts_too() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<i64>(&mut con, &["PFADD", "h1", "a", "b", "c"]);
    q::<i64>(&mut con, &["PFADD", "h2", "c", "d"]);
    assert_eq!(q::<String>(&mut con, &["PFMERGE", "d", "h1", "h2"]), "OK");
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "d"]), 4);
    q::<i64>(&mut con, &["PFADD", "h3", "e"]);
    q::<String>(&mut con, &["PFMERGE", "d", "h3", "missing"]);
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "d"]), 5);
    // Nothing to merge: an empty HyperLogLog, count marked stale.
    q::<String>(&mut con, &["PFMERGE", "new"]);
    assert_eq!(get(&mut con, "new"), EMPTY);
    // A dense source makes the target dense.
    let many: Vec<String> = (0..3000).map(|i| format!("m{i}")).collect();
    let mut add = vec!["PFADD", "dense"];
    add.extend(many.iter().map(String::as_str));
    q::<i64>(&mut con, &add);
    q::<String>(&mut con, &["PFMERGE", "d", "dense"]);
    assert_eq!(
        q::<String>(&mut con, &["PFDEBUG", "ENCODING", "d"]),
        "dense"
    );
    assert_eq!(
        q::<i64>(&mut con, &["PFCOUNT", "d"]),
        q::<i64>(&mut con, &["PFCOUNT", "dense", "h1", "h2", "h3"])
    );
}

#[test]
fn pfdebug_reads_and_converts_as_redis_does() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<i64>(&mut con, &["PFADD", "h", "a", "b", "c"]);
    assert_eq!(
        q::<String>(&mut con, &["PFDEBUG", "ENCODING", "h"]),
        "sparse"
    );
    assert_eq!(
        q::<String>(&mut con, &["PFDEBUG", "DECODE", "h"]),
        "Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603"
    );
    assert_eq!(q::<i64>(&mut con, &["pfdebug", "todense", "h"]), 1);
    assert_eq!(q::<i64>(&mut con, &["PFDEBUG", "TODENSE", "h"]), 0);
    assert_eq!(
        q::<String>(&mut con, &["PFDEBUG", "ENCODING", "h"]),
        "dense"
    );
    assert_eq!(
        expect_err(&mut con, &["PFDEBUG", "DECODE", "h"]),
        "ERR HLL encoding is not sparse"
    );
    let registers: Vec<i64> = q(&mut con, &["PFDEBUG", "GETREG", "h"]);
    assert_eq!(registers.len(), 16_384);
    assert_eq!(
        (registers[8436], registers[12711], registers[15780]),
        (1, 2, 1)
    );
    assert_eq!(registers.iter().sum::<i64>(), 4);
    // GETREG converts a sparse one first.
    q::<i64>(&mut con, &["PFADD", "s", "x"]);
    q::<Vec<i64>>(&mut con, &["PFDEBUG", "GETREG", "s"]);
    assert_eq!(
        q::<String>(&mut con, &["PFDEBUG", "ENCODING", "s"]),
        "dense"
    );
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "s", "h"]), 4);
    // The key is looked up and checked before the subcommand.
    assert_eq!(
        expect_err(&mut con, &["PFDEBUG", "nope", "h"]),
        "ERR Unknown PFDEBUG subcommand 'nope'"
    );
    assert_eq!(
        expect_err(&mut con, &["PFDEBUG", "nope", "missing"]),
        "ERR The specified key does not exist"
    );
    assert_eq!(
        expect_err(&mut con, &["PFDEBUG", "GETREG"]),
        "ERR wrong number of arguments for 'pfdebug' command"
    );
}

#[test]
fn values_that_are_not_hyperloglogs_get_redis_errors() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<i64>(&mut con, &["RPUSH", "list", "x"]);
    q::<()>(&mut con, &["SET", "text", "abc"]);
    q::<()>(&mut con, &["SET", "number", "123"]);
    let mut dense = EMPTY.to_vec();
    dense[4] = 0;
    set(&mut con, "short-dense", &dense);
    let not_hll = "WRONGTYPE Key is not a valid HyperLogLog string value.";
    let wrong_type = "WRONGTYPE Operation against a key holding the wrong kind of value";
    for (key, error) in [
        ("list", wrong_type),
        ("text", not_hll),
        ("number", not_hll),
        ("short-dense", not_hll),
    ] {
        assert_eq!(expect_err(&mut con, &["PFADD", key, "a"]), error);
        assert_eq!(expect_err(&mut con, &["PFCOUNT", key]), error);
        assert_eq!(expect_err(&mut con, &["PFCOUNT", "missing", key]), error);
        assert_eq!(expect_err(&mut con, &["PFMERGE", "dest", key]), error);
        assert_eq!(expect_err(&mut con, &["PFMERGE", key]), error);
        assert_eq!(expect_err(&mut con, &["PFDEBUG", "ENCODING", key]), error);
    }
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "dest"]), 0);
    assert_eq!(
        expect_err(&mut con, &["PFADD"]),
        "ERR wrong number of arguments for 'pfadd' command"
    );
    assert_eq!(
        expect_err(&mut con, &["PFCOUNT"]),
        "ERR wrong number of arguments for 'pfcount' command"
    );
    assert_eq!(
        expect_err(&mut con, &["PFMERGE"]),
        "ERR wrong number of arguments for 'pfmerge' command"
    );
}

#[test]
fn corrupted_hyperloglogs_answer_invalidobj_and_stay_as_they_were() {
    let server = TestServer::start();
    let mut con = server.connect();
    // Opcodes covering 8000 registers, not 16384.
    let mut short = EMPTY[..16].to_vec();
    short.extend_from_slice(&[0x5f, 0x3f]);
    set(&mut con, "bad", &short);
    let corrupted = "INVALIDOBJ Corrupted HLL object detected";
    assert_eq!(expect_err(&mut con, &["PFCOUNT", "bad"]), corrupted);
    assert_eq!(
        expect_err(&mut con, &["PFCOUNT", "bad", "other"]),
        corrupted
    );
    assert_eq!(expect_err(&mut con, &["PFMERGE", "dest", "bad"]), corrupted);
    assert_eq!(
        expect_err(&mut con, &["PFDEBUG", "TODENSE", "bad"]),
        corrupted
    );
    assert_eq!(
        expect_err(&mut con, &["PFDEBUG", "GETREG", "bad"]),
        corrupted
    );
    let elements: Vec<String> = (0..50).map(|i| format!("x{i}")).collect();
    let mut add = vec!["PFADD", "bad"];
    add.extend(elements.iter().map(String::as_str));
    assert_eq!(expect_err(&mut con, &add), corrupted);
    assert_eq!(get(&mut con, "bad"), short);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "dest"]), 0);
    // A count cached before the damage is answered as it is, as by Redis.
    short[8] = 7;
    short[15] = 0;
    set(&mut con, "bad", &short);
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "bad"]), 7);
    // Runs past the last register, and random bytes after a valid header.
    let mut long = EMPTY.to_vec();
    long.extend_from_slice(&[0x00, 0x80, 0xff, 0x40]);
    set(&mut con, "long", &long);
    assert_eq!(expect_err(&mut con, &["PFCOUNT", "long"]), corrupted);
    let mut noise = EMPTY[..16].to_vec();
    noise.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    set(&mut con, "noise", &noise);
    let counted = cmd("PFCOUNT").arg("noise").query::<i64>(&mut con);
    assert!(counted.is_ok() || error_text(&counted.unwrap_err()) == corrupted);
    assert_eq!(q::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn pfadd_and_pfmerge_announce_pfadd_and_nothing_else_announces() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<()>(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    );
    let mut sub = server.raw();
    sub.call(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    q::<i64>(&mut con, &["PFADD", "h", "a"]);
    // Changing no register, caching a count, converting: no event.
    q::<i64>(&mut con, &["PFADD", "h", "a"]);
    q::<i64>(&mut con, &["PFCOUNT", "h"]);
    q::<i64>(&mut con, &["PFDEBUG", "TODENSE", "h"]);
    q::<Vec<i64>>(&mut con, &["PFDEBUG", "GETREG", "h"]);
    q::<String>(&mut con, &["PFMERGE", "d", "h"]);
    q::<i64>(&mut con, &["PFADD", "e"]);
    q::<()>(&mut con, &["SET", "end", "1"]);
    assert_eq!(sub.next_keyevent(), "pfadd h");
    assert_eq!(sub.next_keyevent(), "pfadd d");
    assert_eq!(sub.next_keyevent(), "pfadd e");
    assert_eq!(sub.next_keyevent(), "set end");
}

/// Whether a transaction watching `h` still runs after `meanwhile` ran on
/// another connection.
fn survives(server: &TestServer, meanwhile: &[&str]) -> bool {
    let mut watcher = server.raw();
    let mut other = server.connect();
    assert_eq!(watcher.call(&["WATCH", "h"]), "+OK");
    q::<Value>(&mut other, meanwhile);
    watcher.call(&["MULTI"]);
    watcher.call(&["PING"]);
    watcher.call(&["EXEC"]) != "(nil)"
}

#[test]
fn watch_sees_the_changes_redis_signals() {
    let server = TestServer::start();
    let mut con = server.connect();
    q::<i64>(&mut con, &["PFADD", "h", "a"]);
    assert!(!survives(&server, &["PFADD", "h", "b"]));
    assert!(survives(&server, &["PFADD", "h", "b"]), "no register grew");
    // Caching the count is a change; reading the cache is not.
    assert!(!survives(&server, &["PFCOUNT", "h"]));
    assert!(survives(&server, &["PFCOUNT", "h"]));
    assert!(survives(&server, &["PFCOUNT", "h", "other"]));
    // Redis replicates a conversion without signalling it.
    assert!(survives(&server, &["PFDEBUG", "TODENSE", "h"]));
    assert!(!survives(&server, &["PFMERGE", "h"]));
}

#[test]
fn hll_sparse_max_bytes_decides_when_a_hyperloglog_turns_dense() {
    let server = TestServer::start();
    let mut con = server.connect();
    let shown: Vec<String> = q(&mut con, &["CONFIG", "GET", "hll-sparse-max-bytes"]);
    assert_eq!(shown, ["hll-sparse-max-bytes", "3000"]);
    let elements: Vec<String> = (0..20).map(|i| format!("q{i}")).collect();
    let mut add = vec!["PFADD", "roomy"];
    add.extend(elements.iter().map(String::as_str));
    q::<i64>(&mut con, &add);
    assert_eq!(
        q::<String>(&mut con, &["PFDEBUG", "ENCODING", "roomy"]),
        "sparse"
    );
    q::<()>(&mut con, &["CONFIG", "SET", "hll-sparse-max-bytes", "60"]);
    add[1] = "tight";
    q::<i64>(&mut con, &add);
    assert_eq!(
        q::<String>(&mut con, &["PFDEBUG", "ENCODING", "tight"]),
        "dense"
    );
    assert_eq!(
        q::<i64>(&mut con, &["PFCOUNT", "tight"]),
        q::<i64>(&mut con, &["PFCOUNT", "roomy"])
    );
}

#[test]
fn hyperloglogs_are_plain_strings_to_every_other_command() {
    let server = TestServer::start();
    let mut con = server.connect();
    let elements: Vec<String> = (0..2000).map(|i| format!("v{i}")).collect();
    let mut add = vec!["PFADD", "h"];
    add.extend(elements.iter().map(String::as_str));
    q::<i64>(&mut con, &add);
    let count: i64 = q(&mut con, &["PFCOUNT", "h"]);
    assert_eq!(q::<String>(&mut con, &["TYPE", "h"]), "string");
    assert_eq!(q::<String>(&mut con, &["OBJECT", "ENCODING", "h"]), "raw");
    assert_eq!(q::<i64>(&mut con, &["STRLEN", "h"]), 12_304);
    assert!(q::<i64>(&mut con, &["MEMORY", "USAGE", "h"]) >= 12_304);
    let dump: Vec<u8> = cmd("DUMP").arg("h").query(&mut con).unwrap();
    let _: () = cmd("RESTORE")
        .arg("copy")
        .arg(0)
        .arg(dump)
        .query(&mut con)
        .unwrap();
    assert_eq!(get(&mut con, "copy"), get(&mut con, "h"));
    assert_eq!(q::<i64>(&mut con, &["PFCOUNT", "copy"]), count);
    q::<i64>(&mut con, &["APPEND", "copy", "x"]);
    assert_eq!(
        expect_err(&mut con, &["PFCOUNT", "copy"]),
        "WRONGTYPE Key is not a valid HyperLogLog string value."
    );
}

#[test]
fn replicas_end_with_the_same_bytes_cached_count_included() {
    let master = TestServer::start();
    let replica = TestServer::start();
    follow(&replica, &master);
    let mut m = master.connect();
    let many: Vec<String> = (0..5000).map(|i| format!("r{i}")).collect();
    let mut add = vec!["PFADD", "dense"];
    add.extend(many.iter().map(String::as_str));
    q::<i64>(&mut m, &add);
    q::<i64>(&mut m, &["PFADD", "sparse", "a", "b"]);
    q::<i64>(&mut m, &["PFADD", "converted", "c"]);
    q::<i64>(&mut m, &["PFDEBUG", "TODENSE", "converted"]);
    q::<String>(&mut m, &["PFMERGE", "merged", "sparse", "dense"]);
    for key in ["dense", "sparse", "merged"] {
        q::<i64>(&mut m, &["PFCOUNT", key]);
    }
    caught_up(&master, &replica);
    let mut r = replica.connect();
    for key in ["dense", "sparse", "converted", "merged"] {
        assert_eq!(get(&mut r, key), get(&mut m, key), "{key}");
    }
}

#[test]
fn command_info_has_redis_arity_flags_keys_and_categories() {
    let server = TestServer::start();
    let mut con = server.raw();
    // PFCOUNT's may_replicate is hidden by Redis 7.0 and shown by 7.2.
    for (name, redis) in [
        ("pfadd", "[[$pfadd, :-2, [+write, +denyoom, +fast], :1, :1, :1, [+@write, +@hyperloglog, +@fast], "),
        ("pfcount", "[[$pfcount, :-2, [+readonly, +may_replicate], :1, :-1, :1, [+@read, +@hyperloglog, +@slow], "),
        ("pfmerge", "[[$pfmerge, :-2, [+write, +denyoom], :1, :-1, :1, [+@write, +@hyperloglog, +@slow], "),
        ("pfdebug", "[[$pfdebug, :3, [+write, +denyoom, +admin], :2, :2, :1, [+@write, +@hyperloglog, +@admin, +@dangerous, +@slow], "),
    ] {
        let info = con.call(&["COMMAND", "INFO", name]);
        assert!(info.starts_with(redis), "{info}");
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// A reply, or the text of an error reply.
fn call(con: &mut redis::Connection, args: &[String]) -> Result<Value, String> {
    let mut command = cmd(&args[0]);
    for arg in &args[1..] {
        command.arg(arg);
    }
    command.query(con).map_err(|e| error_text(&e))
}

#[test]
fn random_commands_give_redis_bytes_and_counts() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let server = TestServer::start();
    let (mut theirs, mut ours) = (redis.connect(), server.connect());
    let keys = ["h0", "h1", "h2", "h3"];
    let mut rng = Rng(0x5eed);
    let mut dense = 0;
    for step in 0..1500 {
        let key = keys[rng.below(keys.len())].to_string();
        let mut args: Vec<String> = match rng.below(20) {
            0..=9 => {
                // Mostly a few elements, now and then enough to turn dense.
                let n = [0, 1, 1, 2, 3, 8, 30, 400][rng.below(8)];
                let mut args = vec!["PFADD".to_string(), key.clone()];
                args.extend((0..n).map(|_| format!("el:{}", rng.below(50_000))));
                args
            }
            10..=13 => vec!["PFCOUNT".to_string(), key.clone()],
            14 => vec![
                "PFCOUNT".to_string(),
                key.clone(),
                keys[rng.below(4)].into(),
            ],
            15..=17 => vec![
                "PFMERGE".to_string(),
                key.clone(),
                keys[rng.below(4)].into(),
            ],
            18 => {
                let max = [20, 100, 300, 3000][rng.below(4)];
                ["CONFIG", "SET", "hll-sparse-max-bytes", &max.to_string()]
                    .map(String::from)
                    .to_vec()
            }
            _ => vec!["DEL".to_string(), key.clone()],
        };
        if args[0] == "PFMERGE" && rng.below(2) == 0 {
            args.push(keys[rng.below(4)].to_string());
        }
        let (expected, got) = (call(&mut theirs, &args), call(&mut ours, &args));
        assert_eq!(
            got,
            expected,
            "step {step}: {:?}",
            &args[..args.len().min(4)]
        );
        for key in keys {
            let (expected, got) = (
                call(&mut theirs, &["GET".into(), key.into()]),
                call(&mut ours, &["GET".into(), key.into()]),
            );
            assert_eq!(
                got,
                expected,
                "step {step}: {key} after {:?}",
                &args[..args.len().min(4)]
            );
            dense += usize::from(matches!(got, Ok(Value::BulkString(b)) if b.len() == 12_304));
        }
    }
    assert!(dense > 100, "dense values were compared too");
}
