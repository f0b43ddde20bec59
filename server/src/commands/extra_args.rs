//! Every registered command, called with one argument too many, answers as
//! Redis 7.2 does: mostly `ERR syntax error` (the handler refuses what a parse
//! left over) or the arity error, and a few commands their own text.

use std::sync::Arc;

use super::table::registry;
use crate::clock::ManualClock;
use crate::cluster::ClusterHandle;
use crate::config::{Config, LiveConfig};
use crate::protocol::{Args, Protocol, Reply};
use crate::session::Session;
use crate::shared::Shared;

/// What a command answers to one more argument, `garbage`.
#[derive(Debug, Clone, Copy)]
enum Extra {
    /// `ERR syntax error`.
    Syntax,
    /// `ERR wrong number of arguments for '<command>' command`.
    Arity,
    /// This error text (without `-` and CRLF).
    Error(&'static str),
    /// One more key, member, field, channel or section: the command succeeds.
    Accepted,
}

use Extra::*;

/// A valid request for each command of variable arity (`$DUMP` is the `DUMP`
/// of the string `s`, `$FDUMP` the `FUNCTION DUMP` of the library `l`), and
/// its answer with `garbage` appended. Checked against
/// redis-server side by side, except for ringkv's own commands; `CONFIG SET`
/// and the `ZRANK` options follow Redis 7.2.
const VARIABLE: &[(&str, Extra)] = &[
    ("CLIENT KILL ID 999999", Syntax),
    (
        "CLUSTER MEET 127.0.0.1 7000 17000",
        Error("ERR unknown subcommand or wrong number of arguments for 'MEET'. Try CLUSTER HELP."),
    ),
    (
        "CLUSTER ADDSLOTS 1",
        Error("ERR Invalid or out of range slot"),
    ),
    ("CLUSTER ADDSLOTSRANGE 1 2", Arity),
    (
        "CLUSTER FAILOVER FORCE",
        Error("ERR unknown subcommand or wrong number of arguments for 'FAILOVER'. Try CLUSTER HELP."),
    ),
    (
        "CLUSTER DELSLOTS 1",
        Error("ERR Invalid or out of range slot"),
    ),
    ("CLUSTER DELSLOTSRANGE 1 2", Arity),
    (
        "CLUSTER MIGRATESLOTS SLOTSRANGE 1 2 NODE 0000000000000000000000000000000000000000",
        Syntax,
    ),
    ("CLUSTER SYNCSLOTS FINISH 1 1-2", Error("ERR Invalid or out of range slot")),
    (
        "CLUSTER RING STATUS",
        Error("ERR unknown subcommand or wrong number of arguments for 'RING'. Try CLUSTER HELP."),
    ),
    (
        "CLUSTER SETSLOT 1 STABLE",
        Error("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"),
    ),
    (
        "CLUSTER RESET HARD",
        Error("ERR unknown subcommand or wrong number of arguments for 'RESET'. Try CLUSTER HELP."),
    ),
    ("CLIENT LIST", Syntax),
    ("REPLCONF listening-port 6380", Syntax),
    ("PSYNC ? -1", Syntax),
    ("BITCOUNT s", Syntax),
    ("BITPOS s 1", Error("ERR value is not an integer or out of range")),
    ("BITOP AND d s", Accepted),
    ("BITFIELD s GET u8 0", Syntax),
    ("BITFIELD_RO s GET u8 0", Syntax),
    ("ZMPOP 1 z MIN", Syntax),
    ("BZMPOP 1 1 z MIN", Syntax),
    ("SORT l ALPHA", Syntax),
    ("SORT_RO l ALPHA", Syntax),
    ("COMMAND DOCS get", Accepted),
    (
        "COMMAND GETKEYS get k",
        Error("ERR Invalid number of arguments specified for command"),
    ),
    ("COMMAND INFO get", Accepted),
    ("COMMAND LIST", Syntax),
    ("CONFIG GET maxmemory", Accepted),
    ("CONFIG SET maxmemory 0", Syntax),
    ("MEMORY USAGE s", Syntax),
    (
        "PUBSUB CHANNELS x",
        Error(
            "ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.",
        ),
    ),
    ("PUBSUB NUMSUB x", Accepted),
    (
        "PUBSUB SHARDCHANNELS x",
        Error(
            "ERR unknown subcommand or wrong number of arguments for 'SHARDCHANNELS'. Try PUBSUB HELP.",
        ),
    ),
    ("PUBSUB SHARDNUMSUB x", Accepted),
    ("AUTH default pw", Syntax),
    ("BLMPOP 0.01 1 l LEFT", Syntax),
    (
        "BLPOP l 0.01",
        Error("ERR timeout is not a float or out of range"),
    ),
    (
        "BRPOP l 0.01",
        Error("ERR timeout is not a float or out of range"),
    ),
    (
        "BZPOPMAX z 0.01",
        Error("ERR timeout is not a float or out of range"),
    ),
    (
        "BZPOPMIN z 0.01",
        Error("ERR timeout is not a float or out of range"),
    ),
    ("CACHE.FILL c 1 VALUE v", Syntax),
    ("CACHE.GET c", Syntax),
    ("COPY s s2", Syntax),
    ("DEBUG HELP", Syntax),
    ("DEL s", Accepted),
    ("DELEX s", Syntax),
    ("EVAL return 0", Accepted),
    ("EVAL_RO return 0", Accepted),
    ("EVALSHA 63143b6f8007b98c53ca2149822777b3566f9241 0", Accepted),
    ("EVALSHA_RO 63143b6f8007b98c53ca2149822777b3566f9241 0", Accepted),
    ("EXISTS s", Accepted),
    ("FCALL f 0", Accepted),
    ("FCALL_RO g 0", Accepted),
    (
        "FUNCTION FLUSH",
        Error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
    ),
    ("FUNCTION LIST", Error("ERR Unknown argument garbage")),
    (
        "FUNCTION LOAD #!lua\tname=m\nredis.register_function('h',function()return(1)end)",
        Error("ERR Unknown option given: #!lua\tname=m redis.register_function('h',function()return(1)end)"),
    ),
    (
        "FUNCTION RESTORE $FDUMP REPLACE",
        Error("ERR unknown subcommand or wrong number of arguments for 'RESTORE'. Try FUNCTION HELP."),
    ),
    ("EXPIRE s 100", Error("ERR Unsupported option garbage")),
    (
        "EXPIREAT s 100000000000",
        Error("ERR Unsupported option garbage"),
    ),
    ("FLUSHALL", Syntax),
    ("FLUSHDB", Syntax),
    ("GEOADD geo 1 1 m", Syntax),
    (
        "GEODIST geo m m",
        Error("ERR unsupported unit provided. please use M, KM, FT, MI"),
    ),
    ("GEOHASH geo m", Accepted),
    ("GEOPOS geo m", Accepted),
    ("GEORADIUS geo 1 1 1 m", Syntax),
    ("GEORADIUS_RO geo 1 1 1 m", Syntax),
    ("GEORADIUSBYMEMBER geo m 1 m", Syntax),
    ("GEORADIUSBYMEMBER_RO geo m 1 m", Syntax),
    ("GEOSEARCH geo FROMLONLAT 1 1 BYRADIUS 1 m", Syntax),
    ("GEOSEARCHSTORE d geo FROMMEMBER m BYBOX 1 1 m", Syntax),
    ("GETEX s", Syntax),
    ("HDEL h f", Accepted),
    (
        "HELLO 3",
        Error("ERR Syntax error in HELLO option 'garbage'"),
    ),
    ("HMGET h f", Accepted),
    ("HMSET h f v", Arity),
    (
        "HRANDFIELD h",
        Error("ERR value is not an integer or out of range"),
    ),
    ("HSCAN h 0", Syntax),
    ("HSET h f v", Arity),
    ("INFO server", Accepted),
    ("LCS s s", Syntax),
    ("LMPOP 1 l LEFT", Syntax),
    ("LOCK.ACQUIRE lk me 1000", Syntax),
    ("LPOP l 1", Arity),
    ("LPOS l a", Syntax),
    ("LPUSH l a", Accepted),
    ("LPUSHX l a", Accepted),
    ("MGET s", Accepted),
    ("MIGRATE 127.0.0.1 1 k 0 10 COPY", Syntax),
    ("MSET a b", Arity),
    ("MSETNX a b", Arity),
    ("PEXPIRE s 100", Error("ERR Unsupported option garbage")),
    ("PFADD hl a", Accepted),
    ("PFCOUNT hl", Accepted),
    ("PFMERGE hl", Accepted),
    (
        "PEXPIREAT s 100000000000",
        Error("ERR Unsupported option garbage"),
    ),
    ("PING a", Arity),
    ("PSUBSCRIBE p", Accepted),
    ("PUNSUBSCRIBE p", Accepted),
    ("QUIT", Accepted),
    ("RESTORE s2 0 $DUMP", Syntax),
    ("RESTORE-ASKING s3 0 $DUMP", Syntax),
    ("RPOP l 1", Arity),
    ("RPUSH l a", Accepted),
    ("RPUSHX l a", Accepted),
    ("SADD st a", Accepted),
    ("SCAN 0", Syntax),
    ("SDIFF st", Accepted),
    ("SDIFFSTORE d st", Accepted),
    ("SET s v", Syntax),
    ("SHUTDOWN NOSAVE", Syntax),
    ("SINTER st", Accepted),
    ("SINTERCARD 1 st", Syntax),
    ("SINTERSTORE d st", Accepted),
    ("SMISMEMBER st a", Accepted),
    ("SPOP st 1", Syntax),
    ("SRANDMEMBER st 1", Syntax),
    ("SREM st a", Accepted),
    ("SSCAN st 0", Syntax),
    ("SSUBSCRIBE c", Accepted),
    ("SUBSCRIBE c", Accepted),
    ("SUNION st", Accepted),
    ("SUNIONSTORE d st", Accepted),
    ("SCRIPT EXISTS a", Accepted),
    (
        "SCRIPT FLUSH",
        Error("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
    ),
    ("SUNSUBSCRIBE c", Accepted),
    ("TOUCH s", Accepted),
    ("UNLINK s", Accepted),
    ("UNSUBSCRIBE c", Accepted),
    ("WATCH s", Accepted),
    ("XACK xs g 1-1", Error("ERR Invalid stream ID specified as stream command argument")),
    ("XADD xs * f v", Arity),
    ("XAUTOCLAIM xs g c 0 0", Syntax),
    ("XCLAIM xs g c 0 1-1", Error("ERR Unrecognized XCLAIM option 'garbage'")),
    (
        "XGROUP CREATE xs g2 $",
        Error("ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP."),
    ),
    (
        "XGROUP SETID xs g $",
        Error("ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP."),
    ),
    (
        "XINFO STREAM xs",
        Error("ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP."),
    ),
    ("XDEL xs 1-1", Error("ERR Invalid stream ID specified as stream command argument")),
    ("XPENDING xs g", Syntax),
    ("XRANGE xs - +", Syntax),
    (
        "XREAD STREAMS xs 0",
        Error("ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified."),
    ),
    (
        "XREADGROUP GROUP g c STREAMS xs >",
        Error("ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified."),
    ),
    ("XREVRANGE xs + -", Syntax),
    ("XSETID xs 5-5", Syntax),
    ("XTRIM xs MAXLEN 0", Syntax),
    ("ZADD z 1 a", Syntax),
    ("ZDIFF 1 z", Syntax),
    ("ZDIFFSTORE d 1 z", Syntax),
    ("ZINTER 1 z", Syntax),
    ("ZINTERCARD 1 z", Syntax),
    ("ZINTERSTORE d 1 z", Syntax),
    ("ZMSCORE z a", Accepted),
    ("ZPOPMAX z 1", Syntax),
    ("ZPOPMIN z 1", Syntax),
    ("ZRANDMEMBER z 1", Syntax),
    ("ZRANGE z 0 -1", Syntax),
    ("ZRANGEBYLEX z - +", Syntax),
    ("ZRANGEBYSCORE z 0 1", Syntax),
    ("ZRANGESTORE d z 0 -1", Syntax),
    ("ZRANK z a WITHSCORE", Arity),
    ("ZREM z a", Accepted),
    ("ZREVRANGE z 0 -1", Syntax),
    ("ZREVRANGEBYLEX z + -", Syntax),
    ("ZREVRANGEBYSCORE z 1 0", Syntax),
    ("ZREVRANK z a WITHSCORE", Arity),
    ("ZSCAN z 0", Syntax),
    ("ZUNION 1 z", Syntax),
    ("ZUNIONSTORE d 1 z", Syntax),
];

/// Keys of every type for the requests above.
const SETUP: &[&str] = &[
    "SET s v",
    "RPUSH l a b c",
    "HSET h f v",
    "SADD st a b",
    "ZADD z 1 a 2 b",
    "GEOADD geo 1 1 m",
    "PFADD hl a",
    "XGROUP CREATE xs g $ MKSTREAM",
    "SCRIPT LOAD return",
    "FUNCTION LOAD #!lua\tname=l\nredis.register_function('f',function()return(1)end)redis.register_function{function_name='g',callback=function()return(1)end,flags={'no-writes'}}",
];

/// A fresh server and connection, with the [`SETUP`] keys.
fn connect() -> (Shared, Session) {
    let shared = Shared::new(
        LiveConfig::new(&Config::default(), None),
        Arc::new(ManualClock::new(1_000_000)),
        0,
        registry().len(),
        ClusterHandle::standalone(),
    );
    let addr = "127.0.0.1:1".parse().unwrap();
    let handle = shared.clients.register(addr, addr, -1, &shared.shutdown, 0);
    let mut session = Session::new(handle, true);
    for request in SETUP {
        let words: Vec<&[u8]> = request.split(' ').map(str::as_bytes).collect();
        assert!(!run(&shared, &mut session, &words).starts_with(b"-"));
    }
    (shared, session)
}

/// Runs one request and returns its reply.
fn run(shared: &Shared, session: &mut Session, words: &[&[u8]]) -> Vec<u8> {
    let mut src = Vec::new();
    let mut spans = Vec::new();
    for word in words {
        spans.push((src.len(), src.len() + word.len()));
        src.extend_from_slice(word);
    }
    let mut out = Reply::new(Protocol::Resp2);
    super::execute(shared, session, &mut out, Args::new(&src, &spans));
    out.into_vec()
}

/// Runs `request` (with `$DUMP` filled in) plus `extra` on a fresh server.
fn reply(request: &str, extra: &[&str]) -> String {
    let (shared, mut session) = connect();
    // A bulk reply, `$<len>\r\n<payload>\r\n`: the payload is what RESTORE takes.
    let dump = run(&shared, &mut session, &[b"DUMP", b"s"]);
    let start = dump.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let payload = &dump[start..dump.len().saturating_sub(2).max(start)];
    let functions = run(&shared, &mut session, &[b"FUNCTION", b"DUMP"]);
    let start = functions
        .iter()
        .position(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let functions = &functions[start..functions.len().saturating_sub(2).max(start)];
    let words: Vec<&[u8]> = request
        .split(' ')
        .chain(extra.iter().copied())
        .map(|word| match word {
            "$DUMP" => payload,
            "$FDUMP" => functions,
            word => word.as_bytes(),
        })
        .collect();
    String::from_utf8_lossy(&run(&shared, &mut session, &words)).into_owned()
}

/// The registry's name for a request: `get`, `client|list`.
fn full_name(request: &str) -> String {
    let mut words = request.split(' ');
    let name = words.next().unwrap_or_default();
    let cmd = registry()
        .lookup(name.as_bytes())
        .unwrap_or_else(|| panic!("{request}: no such command"));
    match words
        .next()
        .and_then(|sub| registry().lookup_sub(cmd, sub.as_bytes()))
    {
        Some(sub) => sub.full_name.clone(),
        None => cmd.full_name.clone(),
    }
}

#[test]
fn every_command_of_variable_arity_has_a_valid_request_here() {
    let listed: Vec<String> = VARIABLE.iter().map(|(r, _)| full_name(r)).collect();
    let registry = registry();
    for id in 0..registry.len() {
        let cmd = registry.get(id);
        if cmd.spec.arity < 0 && !cmd.is_container() {
            assert!(
                listed.contains(&cmd.full_name),
                "{} is missing",
                cmd.full_name
            );
        }
    }
}

#[test]
fn the_valid_requests_succeed() {
    for (request, _) in VARIABLE {
        let answer = reply(request, &[]);
        // DEBUG runs only where enable-debug-command allows it, CLUSTER only in
        // cluster mode, PSYNC only from a replica; the parse comes first.
        let elsewhere = ["DEBUG", "CLUSTER", "PSYNC"];
        if !elsewhere.iter().any(|c| request.starts_with(c)) {
            assert!(!answer.starts_with('-'), "{request}: {answer}");
        }
    }
}

#[test]
fn one_argument_too_many_answers_as_redis_does() {
    for &(request, extra) in VARIABLE {
        let answer = reply(request, &["garbage"]);
        let arity = format!(
            "-ERR wrong number of arguments for '{}' command\r\n",
            full_name(request)
        );
        match extra {
            Syntax => assert_eq!(answer, "-ERR syntax error\r\n", "{request}"),
            Arity => assert_eq!(answer, arity, "{request}"),
            Error(text) => assert_eq!(answer, format!("-{text}\r\n"), "{request}"),
            Accepted => assert!(!answer.starts_with('-'), "{request}: {answer}"),
        }
    }
}

#[test]
fn commands_of_fixed_arity_refuse_one_more_argument() {
    let registry = registry();
    for id in 0..registry.len() {
        let cmd = registry.get(id);
        let mut words: Vec<&str> = cmd.full_name.split('|').collect();
        let answer = if cmd.is_container() {
            words.push("garbage");
            let text = format!(
                "-ERR unknown subcommand 'garbage'. Try {} HELP.\r\n",
                cmd.spec.name.to_ascii_uppercase()
            );
            (reply(&words.join(" "), &[]), text)
        } else if cmd.spec.arity >= 0 {
            words.resize(cmd.spec.arity as usize, "x");
            let text = format!(
                "-ERR wrong number of arguments for '{}' command\r\n",
                cmd.full_name
            );
            (reply(&words.join(" "), &["garbage"]), text)
        } else {
            continue;
        };
        assert_eq!(answer.0, answer.1, "{}", cmd.full_name);
    }
}
