//! The data every command starts from, the keys arguments draw from, and the
//! configuration the fuzzer may and may not change.

use super::wire::words;

/// The fixture data every command starts from: one key of every type and
/// encoding.
pub const FIXTURES: &[&[&str]] = &[
    &["SET", "fz:str", "hello world"],
    &["SET", "fz:int", "12345"],
    &["SET", "fz:ttl", "v", "PX", "600000"],
    &["RPUSH", "fz:list", "a", "b", "c", "1", "2", "3", "a"],
    &["HSET", "fz:hash", "f1", "v1", "f2", "2", "f3", "3.5"],
    &["SADD", "fz:set", "a", "b", "c"],
    &["SADD", "fz:intset", "1", "2", "3", "-5"],
    &[
        "ZADD", "fz:zset", "1", "a", "2", "b", "3", "c", "-inf", "d", "+inf", "e",
    ],
    &["LOCK.ACQUIRE", "fz:lock", "owner", "60000"],
    &["CACHE.GET", "fz:lease", "LEASE", "600000"],
    &["PFADD", "fz:hll", "a", "b", "c"],
    // A HyperLogLog header over opcodes covering 3 registers, not 16384:
    // corrupted, its cached count (0) still valid.
    &["SET", "fz:badhll", "HYLL\u{1}\0\0\0\0\0\0\0\0\0\0\0abc"],
];

/// Keys the arguments draw from: the fixtures, larger collections (built in
/// `reset`) in their non-compact encodings, and keys that do not exist.
pub const KEYS: &[&str] = &[
    "fz:str",
    "fz:int",
    "fz:ttl",
    "fz:list",
    "fz:hash",
    "fz:set",
    "fz:intset",
    "fz:zset",
    "fz:lock",
    "fz:lease",
    "fz:hll",
    "fz:badhll",
    "fz:biglist",
    "fz:bighash",
    "fz:bigset",
    "fz:bigzset",
    "fz:densehll",
    "fz:missing",
    "fz:other",
];

/// The keys each command group works on (by `COMMAND DOCS` group), so most
/// requests reach past the type check.
pub const KEYS_BY_GROUP: &[(&str, &[&str])] = &[
    ("string", &["fz:str", "fz:int", "fz:ttl"]),
    ("list", &["fz:list", "fz:biglist"]),
    ("hash", &["fz:hash", "fz:bighash"]),
    ("set", &["fz:set", "fz:intset", "fz:bigset"]),
    (
        "sorted-set",
        &["fz:zset", "fz:bigzset", "fz:set", "fz:intset"],
    ),
    // Geospatial indexes are sorted sets; any score decodes to a position.
    ("geo", &["fz:zset", "fz:bigzset"]),
    ("lock", &["fz:lock"]),
    ("cache", &["fz:lease", "fz:str"]),
    ("hyperloglog", &["fz:hll", "fz:densehll", "fz:badhll"]),
];

/// CONFIG SET parameters the fuzzer never sets, because a random value would
/// break the test rather than the server: `requirepass` locks every connection
/// out, a small `maxclients` refuses the throw-away connections, `timeout`
/// closes connections that wait on a blocked one, a small normal
/// `client-output-buffer-limit` or `client-query-buffer-limit` legitimately
/// closes a connection with a large reply or request (which would read as a
/// drop), and `bind`/`port` would move the server away. Every other settable
/// parameter gets random values and is restored right after.
pub const DENIED_CONFIG: &[&str] = &[
    "requirepass",
    "maxclients",
    "timeout",
    "client-output-buffer-limit",
    "client-query-buffer-limit",
    "bind",
    "port",
];

/// Collection encoding thresholds a command runs under (one per command, by the
/// seed): the defaults; zero, so every collection takes its large encoding from
/// the first element; and the most, so compact encodings hold everything,
/// 64 KB members included.
pub const ENCODING_PROFILES: &[&[(&str, &str)]] = &[
    &[],
    &[
        ("hash-max-listpack-entries", "0"),
        ("hash-max-listpack-value", "0"),
        ("set-max-intset-entries", "0"),
        ("set-max-listpack-entries", "0"),
        ("set-max-listpack-value", "0"),
        ("zset-max-listpack-entries", "0"),
        ("zset-max-listpack-value", "0"),
        ("list-max-listpack-size", "1"),
        ("list-compress-depth", "1"),
    ],
    &[
        ("hash-max-listpack-entries", "2147483647"),
        ("hash-max-listpack-value", "2147483647"),
        ("set-max-intset-entries", "2147483647"),
        ("set-max-listpack-entries", "2147483647"),
        ("set-max-listpack-value", "2147483647"),
        ("zset-max-listpack-entries", "2147483647"),
        ("zset-max-listpack-value", "2147483647"),
        ("list-max-listpack-size", "2147483647"),
    ],
];

/// Requests that rebuild the fixtures from nothing: back to a master,
/// FLUSHALL, [`FIXTURES`], collections just past the compact encodings'
/// default limits (128 entries, 8 KB list nodes), and a dense HyperLogLog.
pub fn rebuild() -> Vec<Vec<Vec<u8>>> {
    // A fuzzed REPLICAOF with a valid port ("-" 0) makes the server a replica.
    let mut requests = vec![words(&["REPLICAOF", "NO", "ONE"]), words(&["FLUSHALL"])];
    requests.extend(FIXTURES.iter().map(|f| words(f)));
    let mut list = words(&["RPUSH", "fz:biglist"]);
    let mut set = words(&["SADD", "fz:bigset"]);
    let (mut hash, mut zset) = (
        words(&["HSET", "fz:bighash"]),
        words(&["ZADD", "fz:bigzset"]),
    );
    for i in 0..130 {
        list.push(format!("{i:0>100}").into_bytes());
        set.push(format!("m{i}").into_bytes());
        hash.extend([format!("f{i}").into_bytes(), vec![b'v'; i]]);
        zset.extend([i.to_string().into_bytes(), format!("m{i}").into_bytes()]);
    }
    let mut hll = words(&["PFADD", "fz:densehll"]);
    hll.extend((0..3000).map(|i| format!("e{i}").into_bytes()));
    requests.extend([list, set, hash, zset, hll]);
    requests
}
