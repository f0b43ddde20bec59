//! Server commands: INFO, CONFIG, COMMAND, DBSIZE, FLUSHALL, TIME, and stopping the
//! server with SHUTDOWN or a signal.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use ringkv_tests::{error_text, expect_err, query as q, TestServer};

fn info_field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} missing from INFO"))
        .trim()
        .to_string()
}

#[test]
fn info_has_the_sections_and_fields_tools_read() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "a", "1", "EX", "100"]);
    let _: () = q(&mut con, &["SET", "b", "1"]);
    let _: Option<String> = q(&mut con, &["GET", "a"]);
    let _: Option<String> = q(&mut con, &["GET", "missing"]);
    let info: String = q(&mut con, &["INFO"]);
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Keyspace",
    ] {
        assert!(info.contains(section), "{section} missing");
    }
    assert!(
        !info.contains("# Commandstats"),
        "commandstats is not a default section"
    );
    assert_eq!(info_field(&info, "redis_version"), "7.2.4");
    assert_eq!(info_field(&info, "tcp_port"), server.port.to_string());
    assert_eq!(info_field(&info, "connected_clients"), "1");
    assert_eq!(info_field(&info, "maxclients"), "10000");
    assert_eq!(info_field(&info, "keyspace_hits"), "1");
    assert_eq!(info_field(&info, "keyspace_misses"), "1");
    assert!(
        info_field(&info, "total_commands_processed")
            .parse::<u64>()
            .unwrap()
            >= 4
    );
    assert!(info_field(&info, "used_memory").parse::<u64>().unwrap() > 0);
    assert!(info.contains("instantaneous_ops_per_sec:"));
    assert!(info.contains("evicted_keys:0"));
    assert!(info.contains("expired_keys:0"));
    assert!(info.contains("db0:keys=2,expires=1,avg_ttl=0"), "{info}");
    assert!(info
        .lines()
        .all(|l| l.is_empty() || l.starts_with('#') || l.contains(':')));
}

#[test]
fn info_sections_can_be_selected() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "a", "1"]);
    let _ = expect_err(&mut con, &["INCR", "nope", "x"]);
    let memory: String = q(&mut con, &["INFO", "memory"]);
    assert!(memory.starts_with("# Memory") && !memory.contains("# Server"));
    let two: String = q(&mut con, &["INFO", "server", "clients"]);
    assert!(two.contains("# Server") && two.contains("# Clients") && !two.contains("# Memory"));
    let all: String = q(&mut con, &["INFO", "all"]);
    assert!(all.contains("cmdstat_set:calls=1,usec="), "{all}");
    assert!(
        all.contains("rejected_calls=1,failed_calls=0"),
        "arity errors count as rejected"
    );
    let errors: String = q(&mut con, &["INFO", "errorstats"]);
    assert!(errors.contains("errorstat_ERR:count=1"), "{errors}");
    let none: String = q(&mut con, &["INFO", "nosuchsection"]);
    assert!(none.is_empty());
}

#[test]
fn error_stats_count_each_error_by_its_code() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "s", "v"]);
    assert!(expect_err(&mut con, &["LPUSH", "s", "x"]).starts_with("WRONGTYPE"));
    assert!(expect_err(&mut con, &["HELLO", "4"]).starts_with("NOPROTO"));
    assert!(expect_err(&mut con, &["AUTH", "nobody", "pw"]).starts_with("WRONGPASS"));
    let dump: Vec<u8> = q(&mut con, &["DUMP", "s"]);
    let err = redis::cmd("RESTORE")
        .arg("s")
        .arg(0)
        .arg(dump)
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(error_text(&err).starts_with("BUSYKEY"), "{err}");
    let _: () = q(&mut con, &["MULTI"]);
    let _ = expect_err(&mut con, &["GET"]);
    assert!(expect_err(&mut con, &["EXEC"]).starts_with("EXECABORT"));
    let errors: String = q(&mut con, &["INFO", "errorstats"]);
    for line in [
        "errorstat_WRONGTYPE:count=1",
        "errorstat_NOPROTO:count=1",
        "errorstat_WRONGPASS:count=1",
        "errorstat_BUSYKEY:count=1",
        "errorstat_EXECABORT:count=1",
        "errorstat_ERR:count=1",
    ] {
        assert!(errors.contains(line), "{line} missing from {errors}");
    }
}

#[test]
fn instantaneous_ops_reflect_the_load() {
    let server = TestServer::start();
    let mut con = server.connect();
    for _ in 0..20 {
        let mut pipe = redis::pipe();
        for _ in 0..500 {
            pipe.cmd("PING").ignore();
        }
        let _: () = pipe.query(&mut con).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let info: String = q(&mut con, &["INFO", "stats"]);
    let ops: u64 = info_field(&info, "instantaneous_ops_per_sec")
        .parse()
        .unwrap();
    assert!(ops > 1000, "{ops}");
}

#[test]
fn config_get_set_and_resetstat() {
    let server = TestServer::start();
    let mut con = server.connect();
    let save: Vec<String> = q(&mut con, &["CONFIG", "GET", "save"]);
    assert_eq!(save, ["save", ""]);
    let appendonly: Vec<String> = q(&mut con, &["CONFIG", "GET", "appendonly"]);
    assert_eq!(appendonly, ["appendonly", "no"]);
    let many: Vec<String> = q(
        &mut con,
        &[
            "CONFIG",
            "GET",
            "port",
            "bind",
            "proto-max-bulk-len",
            "client-query-buffer-limit",
        ],
    );
    assert_eq!(
        many,
        [
            "bind",
            "127.0.0.1",
            "port",
            &server.port.to_string(),
            "proto-max-bulk-len",
            "536870912",
            "client-query-buffer-limit",
            "1073741824"
        ]
    );
    let _: () = q(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "set-max-listpack-entries",
            "64",
            "timeout",
            "30",
        ],
    );
    let got: Vec<String> = q(&mut con, &["CONFIG", "GET", "set-max-*"]);
    assert!(
        got.windows(2)
            .any(|w| w == ["set-max-listpack-entries", "64"]),
        "{got:?}"
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["CONFIG", "GET", "timeout"]),
        ["timeout", "30"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut con, &["CONFIG", "GET", "nosuch"]).len(),
        0
    );
    assert_eq!(
        expect_err(&mut con, &["CONFIG", "SET", "maxclients", "lots"]),
        "ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer"
    );
    assert_eq!(
        expect_err(&mut con, &["CONFIG", "SET", "port", "1"]),
        "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
    );
    assert_eq!(
        expect_err(&mut con, &["CONFIG", "SET", "bogus", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'bogus'"
    );
    assert_eq!(
        expect_err(&mut con, &["CONFIG", "SET", "timeout"]),
        "ERR wrong number of arguments for 'config|set' command"
    );
    assert_eq!(
        expect_err(&mut con, &["CONFIG", "SET", "timeout", "1", "port"]),
        "ERR syntax error",
        "a name without a value, as Redis answers"
    );
    let _: () = q(&mut con, &["CONFIG", "SET", "loglevel", "warning"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["CONFIG", "GET", "loglevel"]),
        ["loglevel", "warning"]
    );
    let _: () = q(&mut con, &["CONFIG", "RESETSTAT"]);
    let info: String = q(&mut con, &["INFO", "stats"]);
    assert!(
        info_field(&info, "total_commands_processed")
            .parse::<u64>()
            .unwrap()
            <= 2
    );
}

#[test]
fn dbsize_flushdb_flushall_and_time() {
    let server = TestServer::start();
    let mut con = server.connect();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(i).arg(i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), 1000);
    let _: () = q(&mut con, &["FLUSHDB"]);
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), 0);
    let _: () = q(&mut con, &["SET", "a", "1"]);
    let _: () = q(&mut con, &["FLUSHALL", "ASYNC"]);
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(
        expect_err(&mut con, &["FLUSHALL", "LATER"]),
        "ERR syntax error"
    );
    let (secs, micros): (u64, u64) = q(&mut con, &["TIME"]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) <= 2 && micros < 1_000_000);
}

#[test]
fn command_introspection() {
    let server = TestServer::start();
    let mut con = server.connect();
    let count: i64 = q(&mut con, &["COMMAND", "COUNT"]);
    assert!(count >= 60, "{count}");
    let all: Vec<Value> = q(&mut con, &["COMMAND"]);
    assert_eq!(all.len() as i64, count);
    let info: Vec<Value> = q(
        &mut con,
        &["COMMAND", "INFO", "get", "nosuch", "client|list"],
    );
    assert_eq!(info.len(), 3);
    let Value::Array(get) = &info[0] else {
        panic!("{:?}", info[0])
    };
    assert_eq!(get[0], Value::BulkString(b"get".to_vec()));
    assert_eq!(get[1], Value::Int(2));
    assert_eq!(&get[3..6], &[Value::Int(1), Value::Int(1), Value::Int(1)]);
    assert_eq!(info[1], Value::Nil);
    let docs: Value = q(&mut con, &["COMMAND", "DOCS", "set"]);
    let text = format!("{docs:?}");
    assert!(
        text.contains("summary") && text.contains("string"),
        "{text}"
    );
    let names: Vec<String> = q(
        &mut con,
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "client*"],
    );
    assert!(names.contains(&"client".to_string()) && names.contains(&"client|kill".to_string()));
    let keys: Vec<String> = q(
        &mut con,
        &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
    );
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(
        expect_err(&mut con, &["COMMAND", "GETKEYS", "PING"]),
        "ERR The command has no key arguments"
    );
    assert_eq!(
        expect_err(&mut con, &["COMMAND", "GETKEYS", "nosuch"]),
        "ERR Invalid command specified"
    );
    assert_eq!(
        expect_err(&mut con, &["COMMAND", "GETKEYS", "GET"]),
        "ERR Invalid number of arguments specified for command"
    );
}

#[test]
fn shutdown_command_stops_the_process_cleanly() {
    let mut server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(
        raw.call(&["SHUTDOWN", "ABORT"]),
        "-ERR No shutdown in progress."
    );
    assert_eq!(
        raw.call(&["SHUTDOWN", "SAVE", "NOSAVE"]),
        "-ERR syntax error"
    );
    let mut bystander = server.raw();
    assert_eq!(bystander.call(&["PING"]), "+PONG");
    raw.send_command(&["SHUTDOWN", "NOSAVE"]);
    assert!(raw.is_closed());
    assert!(bystander.is_closed(), "every connection closes on shutdown");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("process exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_and_sigint_stop_the_process_cleanly() {
    for signal in ["-TERM", "-INT"] {
        let mut server = TestServer::start();
        let mut raw = server.raw();
        assert_eq!(raw.call(&["PING"]), "+PONG");
        let pid = server.child().id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
        let status = server
            .wait_exit(Duration::from_secs(10))
            .expect("process exits");
        assert!(status.success(), "{signal}: {status:?}");
        assert!(raw.is_closed());
    }
}

/// Every command and subcommand of Redis 7.2's data-type groups (generic,
/// string, list, set, sorted set, hash, stream, bitmap, HyperLogLog, geo),
/// from its command table, but MOVE (needs several databases, which ringkv's
/// server surface does not have yet) and WAITAOF (needs an append-only file;
/// ringkv keeps no data on disk).
const DATA_TYPE_COMMANDS: &[&str] = &[
    "append",
    "bitcount",
    "bitfield",
    "bitfield_ro",
    "bitop",
    "bitpos",
    "blmove",
    "blmpop",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzmpop",
    "bzpopmax",
    "bzpopmin",
    "copy",
    "decr",
    "decrby",
    "del",
    "dump",
    "exists",
    "expire",
    "expireat",
    "expiretime",
    "geoadd",
    "geodist",
    "geohash",
    "geopos",
    "georadius",
    "georadius_ro",
    "georadiusbymember",
    "georadiusbymember_ro",
    "geosearch",
    "geosearchstore",
    "get",
    "getbit",
    "getdel",
    "getex",
    "getrange",
    "getset",
    "hdel",
    "hexists",
    "hget",
    "hgetall",
    "hincrby",
    "hincrbyfloat",
    "hkeys",
    "hlen",
    "hmget",
    "hmset",
    "hrandfield",
    "hscan",
    "hset",
    "hsetnx",
    "hstrlen",
    "hvals",
    "incr",
    "incrby",
    "incrbyfloat",
    "keys",
    "lcs",
    "lindex",
    "linsert",
    "llen",
    "lmove",
    "lmpop",
    "lpop",
    "lpos",
    "lpush",
    "lpushx",
    "lrange",
    "lrem",
    "lset",
    "ltrim",
    "mget",
    "migrate",
    "mset",
    "msetnx",
    "object",
    "object|encoding",
    "object|freq",
    "object|help",
    "object|idletime",
    "object|refcount",
    "persist",
    "pexpire",
    "pexpireat",
    "pexpiretime",
    "pfadd",
    "pfcount",
    "pfdebug",
    "pfmerge",
    "pfselftest",
    "psetex",
    "pttl",
    "randomkey",
    "rename",
    "renamenx",
    "restore",
    "rpop",
    "rpoplpush",
    "rpush",
    "rpushx",
    "sadd",
    "scan",
    "scard",
    "sdiff",
    "sdiffstore",
    "set",
    "setbit",
    "setex",
    "setnx",
    "setrange",
    "sinter",
    "sintercard",
    "sinterstore",
    "sismember",
    "smembers",
    "smismember",
    "smove",
    "sort",
    "sort_ro",
    "spop",
    "srandmember",
    "srem",
    "sscan",
    "strlen",
    "substr",
    "sunion",
    "sunionstore",
    "touch",
    "ttl",
    "type",
    "unlink",
    "wait",
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xgroup",
    "xgroup|create",
    "xgroup|createconsumer",
    "xgroup|delconsumer",
    "xgroup|destroy",
    "xgroup|help",
    "xgroup|setid",
    "xinfo",
    "xinfo|consumers",
    "xinfo|groups",
    "xinfo|help",
    "xinfo|stream",
    "xlen",
    "xpending",
    "xrange",
    "xread",
    "xreadgroup",
    "xrevrange",
    "xsetid",
    "xtrim",
    "zadd",
    "zcard",
    "zcount",
    "zdiff",
    "zdiffstore",
    "zincrby",
    "zinter",
    "zintercard",
    "zinterstore",
    "zlexcount",
    "zmpop",
    "zmscore",
    "zpopmax",
    "zpopmin",
    "zrandmember",
    "zrange",
    "zrangebylex",
    "zrangebyscore",
    "zrangestore",
    "zrank",
    "zrem",
    "zremrangebylex",
    "zremrangebyrank",
    "zremrangebyscore",
    "zrevrange",
    "zrevrangebylex",
    "zrevrangebyscore",
    "zrevrank",
    "zscan",
    "zscore",
    "zunion",
    "zunionstore",
];

#[test]
fn the_announced_versions_data_type_commands_are_all_here() {
    let server = TestServer::start();
    let mut con = server.connect();
    let info: String = q(&mut con, &["INFO", "server"]);
    assert_eq!(info_field(&info, "redis_version"), "7.2.4");
    let hello: std::collections::HashMap<String, Value> = q(&mut con, &["HELLO", "2"]);
    assert_eq!(hello["version"], Value::BulkString(b"7.2.4".to_vec()));
    let mut request = vec!["COMMAND", "INFO"];
    request.extend(DATA_TYPE_COMMANDS);
    let infos: Vec<Value> = q(&mut con, &request);
    let missing: Vec<&str> = DATA_TYPE_COMMANDS
        .iter()
        .zip(&infos)
        .filter(|(_, info)| **info == Value::Nil)
        .map(|(name, _)| *name)
        .collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
}
