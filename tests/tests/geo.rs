//! Geospatial commands against the real server: every command, option and
//! error text with the replies redis-server 7.0.15 gives (captured side by
//! side, rendered by `RawConnection::reply_text`), keyspace events,
//! replication as `ZADD`, and a side-by-side run of random positions and
//! searches against redis-server itself when it is installed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ringkv_tests::cluster::TestCluster;
use ringkv_tests::reference::RedisServer;
use ringkv_tests::replication::{caught_up, follow, info};
use ringkv_tests::{request, RawConnection, TestServer};

/// Sends each request (words split on spaces) and checks its rendered reply.
fn check(con: &mut RawConnection, cases: &[(&str, &str)]) {
    for (request, expected) in cases {
        let words: Vec<&str> = request.split(' ').collect();
        assert_eq!(con.call(&words), *expected, "{request}");
    }
}

/// Palermo and Catania (Redis's documentation examples), and two points
/// about 200 km from (15, 37).
const SICILY: &str = "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania 12.758489 38.788135 edge1 17.241510 38.788135 edge2";

/// The four corners of the positions' limits.
const LIMITS: &str =
    "GEOADD limits 180 85.05112878 ne -180 -85.05112878 sw 180 -85.05112878 se -180 85.05112878 nw";

/// A server with [`SICILY`] and [`LIMITS`] stored, and a connection to it.
fn sicily() -> (TestServer, RawConnection) {
    let server = TestServer::start();
    let mut con = server.raw();
    check(&mut con, &[(SICILY, ":4"), (LIMITS, ":4")]);
    (server, con)
}

#[test]
fn geoadd_stores_the_scores_redis_stores_and_answers_as_zadd() {
    let server = TestServer::start();
    let mut con = server.raw();
    check(
        &mut con,
        &[
            ("GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania", ":2"),
            ("ZRANGE Sicily 0 -1 WITHSCORES", "[$Palermo, $3479099956230698, $Catania, $3479447370796909]"),
            ("GEOADD Sicily 13.361389 38.115556 Palermo 12.758489 38.788135 edge1 17.241510 38.788135 edge2", ":2"),
            ("GEOADD Sicily XX 13 38 Palermo 1 1 nowhere", ":0"),
            ("GEOADD Sicily XX CH 13.361389 38.115556 Palermo 1 1 nowhere", ":1"),
            ("GEOADD Sicily NX CH 13 38 Palermo 2 2 new", ":1"),
            // A member twice: added, then moved (counted with CH).
            ("GEOADD Sicily ch 1 1 twice 2 2 twice", ":2"),
            ("ZSCORE Sicily twice", "$3378191666521995"),
            ("ZCARD Sicily", ":6"),
            ("GEOADD absent XX 1 1 m", ":0"),
            ("EXISTS absent", ":0"),
            // A coordinate at its upper limit carries past its 26 bits.
            (LIMITS, ":4"),
            ("ZRANGE limits 0 -1 WITHSCORES", "[$sw, $0, $nw, $4503599627370496, $se, $9007199254740992, $ne, $13510798882111488]"),
            ("TYPE limits", "+zset"),
            ("ZREM limits ne", ":1"),
        ],
    );
}

#[test]
fn geopos_geohash_and_geodist_print_redis_digits() {
    let (_server, mut con) = sicily();
    check(
        &mut con,
        &[
            ("GEOPOS Sicily Palermo Catania missing", "[[$13.36138933897018433, $38.11555639549629859], [$15.08726745843887329, $37.50266842333162032], (nil)]"),
            ("GEOPOS limits ne sw se nw", "[[$180, $85.0511287799999991], [$-179.99999731779098511, $-85.05112751263942528], [$180, $-85.05112751263942528], [$-179.99999731779098511, $85.0511287799999991]]"),
            ("GEOPOS absent a b", "[(nil), (nil)]"),
            ("GEOPOS Sicily", "[]"),
            ("GEOHASH Sicily Palermo Catania missing", "[$sqc8b49rny0, $sqdtr74hyu0, (nil)]"),
            ("GEOHASH limits ne sw", "[$bp05b5048p0, $00bh0hbj200]"),
            ("GEOHASH absent a", "[(nil)]"),
            ("GEODIST Sicily Palermo Catania", "$166274.1516"),
            ("GEODIST Sicily Palermo Catania km", "$166.2742"),
            ("GEODIST Sicily Palermo Catania MI", "$103.3182"),
            ("GEODIST Sicily Palermo Catania ft", "$545518.8700"),
            ("GEODIST Sicily Palermo missing", "(nil)"),
            ("GEODIST absent a b", "(nil)"),
            ("GEODIST Sicily Palermo Palermo", "$0.0000"),
            ("GEODIST limits ne sw km", "$18919.8446"),
        ],
    );
    // Scores ZADD stored that no GEOADD makes still decode as in Redis.
    check(
        &mut con,
        &[
            ("ZADD odd -1 neg 12345.75 frac 1e300 huge", ":3"),
            ("GEOPOS odd neg frac huge", "[[$180, $85.0511287799999991], [$-179.99962180852890015, $-85.05095261687941388], [$-179.99999731779098511, $-85.05112751263942528]]"),
            ("GEOHASH odd neg frac", "[$bp05b5048p0, $00bh0hbq2c0]"),
        ],
    );
}

#[test]
fn searches_find_order_and_print_as_redis_does() {
    let (_server, mut con) = sicily();
    check(
        &mut con,
        &[
            ("GEORADIUS Sicily 15 37 200 km", "[$Palermo, $Catania]"),
            ("GEORADIUS Sicily 15 37 200 km WITHDIST", "[[$Palermo, $190.4424], [$Catania, $56.4413]]"),
            ("GEORADIUS Sicily 15 37 200 km WITHCOORD WITHDIST WITHHASH ASC", "[[$Catania, $56.4413, :3479447370796909, [$15.08726745843887329, $37.50266842333162032]], [$Palermo, $190.4424, :3479099956230698, [$13.36138933897018433, $38.11555639549629859]]]"),
            ("GEORADIUS Sicily 15 37 200 km DESC WITHDIST", "[[$Palermo, $190.4424], [$Catania, $56.4413]]"),
            // COUNT keeps the nearest, or with ANY the first found.
            ("GEORADIUS Sicily 15 37 200 km COUNT 1", "[$Catania]"),
            ("GEORADIUS Sicily 15 37 200 km COUNT 1 DESC", "[$Palermo]"),
            ("GEORADIUS Sicily 15 37 200 km COUNT 1 ANY", "[$Palermo]"),
            ("GEORADIUS Sicily 15 37 200 km COUNT 2 ANY", "[$Palermo, $Catania]"),
            // Unsorted results come cell by cell, in score order within each.
            ("GEORADIUS Sicily 15 37 200 mi WITHDIST", "[[$Palermo, $118.3357], [$edge1, $173.8231], [$Catania, $35.0711], [$edge2, $173.8230]]"),
            ("GEORADIUS Sicily 15 37 200000 ft WITHDIST", "[[$Catania, $185174.7305]]"),
            ("GEORADIUS_RO Sicily 15 37 200 km WITHDIST ASC", "[[$Catania, $56.4413], [$Palermo, $190.4424]]"),
            ("GEORADIUSBYMEMBER Sicily Palermo 100 km WITHDIST", "[[$Palermo, $0.0000], [$edge1, $91.4007]]"),
            ("GEORADIUSBYMEMBER_RO Sicily Palermo 200 km WITHCOORD", "[[$Palermo, [$13.36138933897018433, $38.11555639549629859]], [$edge1, [$12.7584877610206604, $38.78813451624225195]], [$Catania, [$15.08726745843887329, $37.50266842333162032]]]"),
            ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC WITHDIST", "[[$Catania, $56.4413], [$Palermo, $190.4424]]"),
            ("GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHCOORD WITHDIST", "[[$Catania, $56.4413, [$15.08726745843887329, $37.50266842333162032]], [$Palermo, $190.4424, [$13.36138933897018433, $38.11555639549629859]], [$edge2, $279.7403, [$17.24151045083999634, $38.78813451624225195]], [$edge1, $279.7405, [$12.7584877610206604, $38.78813451624225195]]]"),
            ("GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 200 200 km DESC WITHHASH", "[[$edge1, :3479273021651468], [$Palermo, :3479099956230698]]"),
            ("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 0 m WITHDIST", "[[$Palermo, $0.0000]]"),
            ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 m", "[]"),
            ("GEOSEARCH absent FROMMEMBER Palermo BYRADIUS 1 km", "[]"),
            ("geosearch limits fromlonlat 180 85.05112878 byradius 1000 km withcoord withdist", "[[$ne, $0.0000, [$180, $85.0511287799999991]]]"),
            ("GEOSEARCH limits FROMLONLAT 0 0 BYRADIUS 30000 km WITHDIST ASC", "[[$sw, $10560.8118]]"),
        ],
    );
}

#[test]
fn errors_come_in_redis_order_with_redis_texts() {
    let (_server, mut con) = sicily();
    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";
    check(
        &mut con,
        &[
            ("GEOADD Sicily 181 10 x", "-ERR invalid longitude,latitude pair 181.000000,10.000000"),
            ("GEOADD Sicily 10 85.06 x", "-ERR invalid longitude,latitude pair 10.000000,85.060000"),
            ("GEOADD Sicily abc 10 x", "-ERR value is not a valid float"),
            ("GEOADD Sicily 10 nan x", "-ERR value is not a valid float"),
            ("GEOADD Sicily 10 10", "-ERR wrong number of arguments for 'geoadd' command"),
            ("GEOADD Sicily 10 10 x 11", "-ERR syntax error"),
            ("GEOADD Sicily NX XX 10 10 x", "-ERR syntax error"),
            ("GEOADD Sicily GT 10 10 x", "-ERR syntax error"),
            ("GEOADD Sicily NX CH CH", "-ERR syntax error"),
            ("GEODIST Sicily a b km extra", "-ERR syntax error"),
            ("GEODIST Sicily a b parsec", "-ERR unsupported unit provided. please use M, KM, FT, MI"),
            ("GEORADIUS Sicily 200 10 1 km", "-ERR invalid longitude,latitude pair 200.000000,10.000000"),
            ("GEORADIUS Sicily 10 10 abc km", "-ERR need numeric radius"),
            ("GEORADIUS Sicily 10 10 -1 km", "-ERR radius cannot be negative"),
            ("GEORADIUS Sicily 10 10 1 parsec", "-ERR unsupported unit provided. please use M, KM, FT, MI"),
            ("GEORADIUS Sicily 10 10 1 km BADOPT", "-ERR syntax error"),
            ("GEORADIUS Sicily 10 10 1 km COUNT", "-ERR syntax error"),
            ("GEORADIUS Sicily 10 10 1 km COUNT 0", "-ERR COUNT must be > 0"),
            ("GEORADIUS Sicily 10 10 1 km COUNT abc", "-ERR value is not an integer or out of range"),
            ("GEORADIUS Sicily 10 10 1 km ANY", "-ERR the ANY argument requires COUNT argument"),
            ("GEORADIUS Sicily 10 10 1 km STORE dst WITHDIST", "-ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"),
            ("GEORADIUSBYMEMBER Sicily Palermo 1 km STOREDIST dst WITHHASH", "-ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"),
            ("GEORADIUS_RO Sicily 10 10 1 km STORE dst", "-ERR syntax error"),
            // The member is looked up before the radius is read, and only
            // if the key exists.
            ("GEORADIUSBYMEMBER Sicily missing 1 km", "-ERR could not decode requested zset member"),
            ("GEORADIUSBYMEMBER Sicily missing abc km", "-ERR could not decode requested zset member"),
            ("GEORADIUSBYMEMBER Sicily Palermo abc km", "-ERR need numeric radius"),
            ("GEORADIUSBYMEMBER absent missing abc km", "[]"),
            ("GEORADIUSBYMEMBER absent missing abc km BADOPT", "-ERR syntax error"),
            // FROMMEMBER is looked up where it comes among the options.
            ("GEOSEARCH Sicily FROMMEMBER missing BYRADIUS 1 km", "-ERR could not decode requested zset member"),
            ("GEOSEARCH Sicily BYRADIUS abc km FROMMEMBER missing", "-ERR need numeric radius"),
            ("GEOSEARCH Sicily FROMMEMBER missing BYRADIUS abc km", "-ERR could not decode requested zset member"),
            ("GEOSEARCH absent FROMMEMBER missing BYRADIUS 1 km", "[]"),
            ("GEOSEARCH Sicily BYRADIUS 1 km", "-ERR wrong number of arguments for 'geosearch' command"),
            ("GEOSEARCH Sicily BYRADIUS 1 km ASC WITHDIST", "-ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH"),
            ("geoSearch Sicily FROMLONLAT 1 1 ASC WITHDIST", "-ERR exactly one of BYRADIUS and BYBOX can be specified for geoSearch"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 FROMMEMBER Palermo BYRADIUS 1 km", "-ERR syntax error"),
            ("GEOSEARCH Sicily FROMMEMBER Palermo FROMLONLAT 1 1 BYRADIUS 1 km", "-ERR syntax error"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 1 km BYBOX 1 1 km", "-ERR syntax error"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX -1 1 km", "-ERR height or width cannot be negative"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX abc 1 km", "-ERR need numeric width"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX 1 abc km", "-ERR need numeric height"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX 1 1", "-ERR syntax error"),
            ("GEOSEARCH Sicily FROMLONLAT 200 1 BYBOX 1 1 km", "-ERR invalid longitude,latitude pair 200.000000,1.000000"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 1 km STORE dst", "-ERR syntax error"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 1 km STOREDIST", "-ERR syntax error"),
            ("GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 1 km ANY", "-ERR the ANY argument requires COUNT argument"),
            ("GEOSEARCHSTORE dst Sicily FROMLONLAT 1 1 BYRADIUS 1 km WITHCOORD", "-ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"),
            ("GEOSEARCHSTORE dst Sicily FROMLONLAT 1 1 BYRADIUS 1 km STORE x", "-ERR syntax error"),
            ("GEOSEARCHSTORE dst Sicily FROMLONLAT 1 1 BYRADIUS", "-ERR wrong number of arguments for 'geosearchstore' command"),
            ("SET str x", "+OK"),
            // WRONGTYPE comes before anything is read.
            ("GEOADD str 1 1 m", WRONGTYPE),
            ("GEOPOS str m", WRONGTYPE),
            ("GEOHASH str m", WRONGTYPE),
            ("GEODIST str a b", WRONGTYPE),
            ("GEORADIUS str abc 1 1 km", WRONGTYPE),
            ("GEORADIUSBYMEMBER str m 1 km", WRONGTYPE),
            ("GEOSEARCH str FROMMEMBER m BYRADIUS 1 km", WRONGTYPE),
            ("GEOSEARCHSTORE dst str FROMLONLAT 1 1 BYRADIUS 1 km", WRONGTYPE),
        ],
    );
}

#[test]
fn stores_write_sorted_sets_of_positions_or_distances() {
    let server = TestServer::start();
    let mut con = server.raw();
    check(
        &mut con,
        &[
            (SICILY, ":4"),
            // The destination is replaced whatever it held, TTL included.
            ("SET dst old EX 100", "+OK"),
            ("GEORADIUS Sicily 15 37 200 km STORE dst", ":2"),
            ("TTL dst", ":-1"),
            ("ZRANGE dst 0 -1 WITHSCORES", "[$Palermo, $3479099956230698, $Catania, $3479447370796909]"),
            ("OBJECT ENCODING dst", "$listpack"),
            // The distances in the unit asked (Redis 7.0 prints the same
            // doubles with 17 digits: 56.441257870158204).
            ("GEORADIUS Sicily 15 37 200 km STOREDIST dst", ":2"),
            ("ZRANGE dst 0 -1 WITHSCORES", "[$Catania, $56.4412578701582, $Palermo, $190.44242984775784]"),
            // The last STORE or STOREDIST option counts.
            ("GEORADIUS Sicily 15 37 200 km STOREDIST dst STORE dst2 COUNT 1", ":1"),
            ("ZRANGE dst2 0 -1 WITHSCORES", "[$Catania, $3479447370796909]"),
            ("GEORADIUSBYMEMBER Sicily Palermo 100 km STORE dst3 DESC", ":2"),
            ("ZRANGE dst3 0 -1 WITHSCORES", "[$Palermo, $3479099956230698, $edge1, $3479273021651468]"),
            ("GEOSEARCHSTORE dst4 Sicily FROMLONLAT 15 37 BYBOX 400 400 km COUNT 3 DESC", ":3"),
            ("ZRANGE dst4 0 -1 WITHSCORES", "[$Palermo, $3479099956230698, $edge1, $3479273021651468, $edge2, $3481342659049484]"),
            ("GEOSEARCHSTORE dst5 Sicily FROMMEMBER Catania BYRADIUS 100 km STOREDIST", ":1"),
            ("ZRANGE dst5 0 -1 WITHSCORES", "[$Catania, $0]"),
            // Nothing found deletes the destination.
            ("GEOSEARCHSTORE dst5 Sicily FROMLONLAT 15 37 BYRADIUS 1 m", ":0"),
            ("EXISTS dst5", ":0"),
            ("GEOSEARCHSTORE dst5 Sicily FROMLONLAT 15 37 BYRADIUS 1 m", ":0"),
            ("GEORADIUS absent 15 37 200 km STORE dst3", ":0"),
            ("EXISTS dst3", ":0"),
            ("GEOSEARCHSTORE dst4 absent FROMMEMBER nobody BYRADIUS 1 km", ":0"),
            ("EXISTS dst4", ":0"),
            // Into the source itself.
            ("GEOSEARCHSTORE Sicily Sicily FROMLONLAT 15 37 BYRADIUS 100 km", ":1"),
            ("ZRANGE Sicily 0 -1 WITHSCORES", "[$Catania, $3479447370796909]"),
        ],
    );
}

/// Sends `args` on a RESP3 connection and reads exactly `expected.len()`
/// bytes back.
fn resp3_bytes(server: &TestServer, requests: &[&[&str]], expected: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let hello = request(&[b"HELLO", b"3"]);
    stream.write_all(&hello).expect("send");
    let mut reply = Vec::new();
    // The HELLO map ends with its empty `modules` array.
    while !reply.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).expect("HELLO reply");
        reply.push(byte[0]);
    }
    for args in requests {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        stream.write_all(&request(&args)).expect("send");
    }
    let mut got = vec![0u8; expected.len()];
    stream.read_exact(&mut got).expect("replies");
    got
}

#[test]
fn resp3_gives_coordinates_as_doubles_and_distances_as_strings() {
    let (server, _con) = sicily();
    // Byte for byte what redis-server 7.0.15 sends.
    let expected = b"*2\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n_\r\n\
*2\r\n$11\r\nsqc8b49rny0\r\n_\r\n\
$11\r\n166274.1516\r\n\
_\r\n\
*1\r\n*4\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n*2\r\n,15.08726745843887329\r\n,37.50266842333162032\r\n";
    let got = resp3_bytes(
        &server,
        &[
            &["GEOPOS", "Sicily", "Palermo", "nope"],
            &["GEOHASH", "Sicily", "Palermo", "nope"],
            &["GEODIST", "Sicily", "Palermo", "Catania"],
            &["GEODIST", "Sicily", "Palermo", "nope"],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "WITHDIST",
                "WITHCOORD",
                "WITHHASH",
                "COUNT",
                "1",
            ],
        ],
        expected,
    );
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

#[test]
fn keyspace_events_are_those_redis_publishes() {
    let server = TestServer::start();
    let mut con = server.raw();
    con.call(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let mut sub = server.raw();
    sub.call(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    check(
        &mut con,
        &[
            (SICILY, ":4"),
            // Nothing changed: no event.
            ("GEOADD Sicily NX 1 1 Palermo", ":0"),
            // Changed but not added: an event all the same.
            ("GEOADD Sicily XX 1 1 Palermo", ":0"),
            ("GEORADIUS Sicily 15 37 200 km STORE dst", ":1"),
            ("GEORADIUS Sicily 15 37 1 m STORE dst", ":0"),
            (
                "GEOSEARCHSTORE dst2 Sicily FROMLONLAT 15 37 BYRADIUS 200 km",
                ":1",
            ),
            (
                "GEOSEARCHSTORE dst2 absent FROMLONLAT 15 37 BYRADIUS 200 km",
                ":0",
            ),
            (
                "GEOSEARCHSTORE dst2 absent FROMLONLAT 15 37 BYRADIUS 200 km",
                ":0",
            ),
        ],
    );
    for expected in [
        "zadd Sicily",
        "zadd Sicily",
        "georadiusstore dst",
        "del dst",
        "geosearchstore dst2",
        "del dst2",
    ] {
        assert_eq!(sub.next_keyevent(), expected);
    }
    sub.set_timeout(Duration::from_millis(200));
    assert!(!sub.is_closed() && !sub.has_buffered(), "no more events");
}

#[test]
fn a_replica_gets_the_same_sorted_sets_through_zadd() {
    let master = TestServer::start();
    let replica = TestServer::start();
    follow(&replica, &master);
    let mut con = master.raw();
    check(
        &mut con,
        &[
            (SICILY, ":4"),
            (LIMITS, ":4"),
            ("GEOADD Sicily XX CH 13 38 Palermo 1 1 nobody", ":1"),
            // Changes nothing: nothing to replicate.
            ("GEOADD Sicily NX 1 1 Palermo", ":0"),
            ("GEORADIUS Sicily 15 37 200 km STOREDIST far", ":1"),
            (
                "GEOSEARCHSTORE near Sicily FROMMEMBER Catania BYBOX 400 400 km",
                ":3",
            ),
            // From a script and from a transaction alike.
            ("EVAL return(redis.call('GEOADD',KEYS[1],1,2,'s')) 1 scripted", ":1"),
            ("EVAL return(redis.call('GEORADIUS',KEYS[1],1,2,1,'km','STORE',KEYS[2])) 2 scripted stored", ":1"),
            ("MULTI", "+OK"),
            ("GEOADD queued 3 4 q", "+QUEUED"),
            ("EXEC", "[:1]"),
        ],
    );
    caught_up(&master, &replica);
    let mut on_replica = replica.raw();
    for key in [
        "Sicily", "limits", "far", "near", "scripted", "stored", "queued",
    ] {
        let request = ["ZRANGE", key, "0", "-1", "WITHSCORES"];
        assert_eq!(on_replica.call(&request), con.call(&request), "{key}");
    }
    // The replica ran ZADDs, never a GEOADD.
    let mut r = replica.connect();
    assert_eq!(info(&mut r, "commandstats", "cmdstat_geoadd"), "");
    let zadds = info(&mut r, "commandstats", "cmdstat_zadd");
    assert!(zadds.starts_with("calls=5,"), "{zadds}");
}

#[test]
fn command_info_and_getkeys_describe_the_geo_commands_as_redis_does() {
    let server = TestServer::start();
    let mut con = server.raw();
    let flags_and_categories = |con: &mut RawConnection, name: &str| {
        let text = con.call(&["COMMAND", "INFO", name]);
        let parts: Vec<String> = text.split(", [").map(str::to_string).collect();
        (parts[1].clone(), parts[2].clone())
    };
    for (name, flags, categories) in [
        (
            "geoadd",
            "+write, +denyoom], :1, :1, :1",
            "+@write, +@geo, +@slow]",
        ),
        ("geopos", "+readonly], :1, :1, :1", "+@read, +@geo, +@slow]"),
        (
            "georadius",
            "+write, +denyoom, +movablekeys], :1, :1, :1",
            "+@write, +@geo, +@slow]",
        ),
        (
            "georadiusbymember_ro",
            "+readonly], :1, :1, :1",
            "+@read, +@geo, +@slow]",
        ),
        (
            "geosearchstore",
            "+write, +denyoom], :1, :2, :1",
            "+@write, +@geo, +@slow]",
        ),
    ] {
        let (got_flags, got_categories) = flags_and_categories(&mut con, name);
        assert_eq!(got_flags, flags, "{name}");
        assert_eq!(got_categories, categories, "{name}");
    }
    check(
        &mut con,
        &[
            (
                "COMMAND GETKEYS GEORADIUS k 0 0 1 m STORE a STOREDIST b",
                "[$k, $a, $b]",
            ),
            ("COMMAND GETKEYS GEORADIUS k 0 0 1 m COUNT 2 STORE", "[$k]"),
            (
                "COMMAND GETKEYS GEORADIUS k 0 0 1 m STORE store x",
                "[$k, $store]",
            ),
            (
                "COMMAND GETKEYS GEORADIUSBYMEMBER k m 1 m STOREDIST a",
                "[$k, $a]",
            ),
            ("COMMAND GETKEYS GEORADIUS_RO k 0 0 1 m STORE x", "[$k]"),
            (
                "COMMAND GETKEYS GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 m",
                "[$d, $s]",
            ),
            // Redis lists only a; the command stores into b, so b is a key here too.
            (
                "COMMAND GETKEYS GEORADIUS k 0 0 1 m STORE a STORE b",
                "[$k, $a, $b]",
            ),
        ],
    );
    let docs = con.call(&["COMMAND", "DOCS", "geosearch"]);
    assert!(docs.contains("$since, $6.2.0, $group, $geo"), "{docs}");
}

#[test]
fn a_cluster_routes_georadius_by_its_store_key_too() {
    let cluster = TestCluster::start("geo", 1, &[]);
    let mut con = cluster.server(0).raw();
    check(
        &mut con,
        &[
            ("GEOADD {s}geo 15 37 a", ":1"),
            ("GEORADIUS {s}geo 15 37 1 km STORE {s}dst", ":1"),
            (
                "GEORADIUS {s}geo 15 37 1 km STORE other",
                "-CROSSSLOT Keys in request don't hash to the same slot",
            ),
            (
                "GEOSEARCHSTORE other {s}geo FROMLONLAT 15 37 BYRADIUS 1 km",
                "-CROSSSLOT Keys in request don't hash to the same slot",
            ),
        ],
    );
}

/// A ringkv server and a redis-server, asked the same things.
struct SideBySide {
    redis: RawConnection,
    ringkv: RawConnection,
}

impl SideBySide {
    /// Both replies, checked equal.
    fn same(&mut self, args: &[String]) -> String {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let expected = self.redis.call(&words);
        assert_eq!(self.ringkv.call(&words), expected, "{}", words.join(" "));
        expected
    }

    /// `ZRANGE key 0 -1 WITHSCORES` on both: the same members with the same
    /// scores (Redis 7.0 prints doubles with 17 digits, ringkv with the
    /// fewest that read back the same).
    fn same_sorted_set(&mut self, key: &str) {
        let request = ["ZRANGE", key, "0", "-1", "WITHSCORES"];
        let parse = |text: String| -> Vec<(String, f64)> {
            let inner = text.trim_start_matches('[').trim_end_matches(']');
            let items: Vec<&str> = inner.split(", ").filter(|s| !s.is_empty()).collect();
            items
                .chunks(2)
                .map(|pair| (pair[0].to_string(), pair[1][1..].parse().expect("a score")))
                .collect()
        };
        let expected = parse(self.redis.call(&request));
        assert_eq!(parse(self.ringkv.call(&request)), expected, "{key}");
    }
}

/// A longitude and latitude, often near the poles, the antimeridian, the
/// origin or exactly at the limits.
fn coordinates(rng: &mut StdRng) -> (String, String) {
    const LAT: f64 = 85.05112878;
    let lon: f64 = match rng.random_range(0..10) {
        0 => 180.0 - rng.random_range(0.0..0.5),
        1 => -180.0 + rng.random_range(0.0..0.5),
        2 => [180.0, -180.0][rng.random_range(0..2)],
        3 => rng.random_range(-0.01..0.01),
        _ => rng.random_range(-180.0..=180.0),
    };
    let lat: f64 = match rng.random_range(0..10) {
        0 => LAT - rng.random_range(0.0..5.0),
        1 => -LAT + rng.random_range(0.0..5.0),
        2 => [LAT, -LAT][rng.random_range(0..2)],
        3 => rng.random_range(-0.01..0.01),
        _ => rng.random_range(-LAT..=LAT),
    };
    // Sometimes few digits (positions that coincide: equal distances),
    // cut towards zero to stay within the limits; else all of them.
    let short = |x: f64| format!("{:.1}", (x * 10.0).trunc() / 10.0);
    match rng.random_bool(0.2) {
        true => (short(lon), short(lat)),
        false => (lon.to_string(), lat.to_string()),
    }
}

/// A distance and its unit: from a meter to half the world.
fn reach(rng: &mut StdRng) -> (String, &'static str) {
    let unit = ["m", "km", "ft", "mi"][rng.random_range(0..4)];
    let meters = 10f64.powf(rng.random_range(0.0..7.3));
    let per_unit = match unit {
        "m" => 1.0,
        "km" => 1000.0,
        "ft" => 0.3048,
        _ => 1609.34,
    };
    let value = meters / per_unit;
    match rng.random_bool(0.3) {
        true => (format!("{value:.0}"), unit),
        false => (value.to_string(), unit),
    }
}

/// A random search: its command and arguments, with the `STORE` target if any.
fn random_search(rng: &mut StdRng, members: &[String], n: usize) -> (Vec<String>, Option<String>) {
    let member = || members[n % members.len()].clone();
    let mut args: Vec<String> = Vec::new();
    let form = rng.random_range(0..7);
    let (radius, unit) = reach(rng);
    let store = form == 6 || (form < 2 && rng.random_bool(0.2));
    let destination = format!("dst{n}");
    match form {
        0 | 1 => {
            let (lon, lat) = coordinates(rng);
            let name = if form == 0 {
                "GEORADIUS"
            } else {
                "GEORADIUS_RO"
            };
            args.extend([name.into(), "pts".into(), lon, lat, radius, unit.into()]);
        }
        2 | 3 => {
            let name = if form == 2 {
                "GEORADIUSBYMEMBER"
            } else {
                "GEORADIUSBYMEMBER_RO"
            };
            args.extend([name.into(), "pts".into(), member(), radius, unit.into()]);
        }
        _ => {
            if form == 6 {
                args.extend(["GEOSEARCHSTORE".into(), destination.clone()]);
            } else {
                args.push("GEOSEARCH".into());
            }
            args.push("pts".into());
            if rng.random_bool(0.5) {
                args.extend(["FROMMEMBER".into(), member()]);
            } else {
                let (lon, lat) = coordinates(rng);
                args.extend(["FROMLONLAT".into(), lon, lat]);
            }
            if rng.random_bool(0.5) {
                args.extend(["BYRADIUS".into(), radius, unit.into()]);
            } else {
                let (height, _) = reach(rng);
                args.extend(["BYBOX".into(), radius, height, unit.into()]);
            }
        }
    }
    let store = store && form != 1 && form != 3;
    if !store {
        for option in ["WITHCOORD", "WITHDIST", "WITHHASH"] {
            if rng.random_bool(0.5) {
                args.push(option.into());
            }
        }
    }
    match rng.random_range(0..3) {
        0 => args.push("ASC".into()),
        1 => args.push("DESC".into()),
        _ => {}
    }
    if rng.random_bool(0.5) {
        let count = [1, 2, 3, 5, 10, 50][rng.random_range(0..6)];
        args.extend(["COUNT".into(), count.to_string()]);
        if rng.random_bool(0.3) {
            args.push("ANY".into());
        }
    }
    let target = store.then_some(destination);
    if form < 4 {
        if let Some(key) = &target {
            let option = if rng.random_bool(0.5) {
                "STORE"
            } else {
                "STOREDIST"
            };
            args.extend([option.into(), key.clone()]);
        }
    } else if form == 6 && rng.random_bool(0.5) {
        args.push("STOREDIST".into());
    }
    (args, target)
}

#[test]
fn random_positions_and_searches_answer_exactly_as_redis_does() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let ringkv = TestServer::start();
    let mut both = SideBySide {
        redis: RawConnection::connect(redis.port),
        ringkv: ringkv.raw(),
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut members = Vec::new();
    for batch in 0..40 {
        let mut args: Vec<String> = vec!["GEOADD".into(), "pts".into()];
        for i in 0..20 {
            let (lon, lat) = coordinates(&mut rng);
            let member = format!("m{}", batch * 20 + i);
            args.extend([lon, lat, member.clone()]);
            members.push(member);
        }
        both.same(&args);
    }
    assert_eq!(both.same(&["ZCARD".into(), "pts".into()]), ":800");
    // Scores no GEOADD writes decode somewhere too.
    both.same(
        &[
            "ZADD", "pts", "-1", "neg", "12345.75", "frac", "1e300", "huge", "-0.5", "half",
        ]
        .map(String::from),
    );
    members.extend(["neg", "frac", "huge", "half"].map(String::from));
    for n in 0..60 {
        let mut args: Vec<String> = vec!["GEOPOS".into(), "pts".into()];
        let mut hashes: Vec<String> = vec!["GEOHASH".into(), "pts".into()];
        for _ in 0..10 {
            let member = members[rng.random_range(0..members.len())].clone();
            args.push(member.clone());
            hashes.push(member);
        }
        args.push("absent".into());
        both.same(&args);
        both.same(&hashes);
        let pick = |rng: &mut StdRng| members[rng.random_range(0..members.len())].clone();
        let unit = ["m", "km", "ft", "mi"][n % 4];
        both.same(&[
            "GEODIST".into(),
            "pts".into(),
            pick(&mut rng),
            pick(&mut rng),
            unit.into(),
        ]);
    }
    let mut found = 0;
    for n in 0..600 {
        let (args, target) = random_search(&mut rng, &members, n);
        let reply = both.same(&args);
        found += reply.matches("$m").count();
        if let Some(key) = target {
            both.same_sorted_set(&key);
        }
    }
    assert!(
        found > 1000,
        "the searches found too little to compare: {found}"
    );
}

#[test]
fn geo_writes_serve_blocked_pops_and_break_watches() {
    let server = TestServer::start();
    let mut admin = server.raw();
    check(&mut admin, &[(SICILY, ":4")]);
    // A pop blocked on a sorted set is served by GEOADD and by a store.
    for (write, expected) in [
        (
            "GEOADD waiting 15 37 here",
            "[$waiting, $here, $3476504601741708]",
        ),
        (
            "GEOSEARCHSTORE waiting Sicily FROMMEMBER Catania BYRADIUS 1 km STOREDIST",
            "[$waiting, $Catania, $0]",
        ),
    ] {
        let mut waiter = server.raw();
        let id = waiter.call(&["CLIENT", "ID"]);
        waiter.send_command(&["BZPOPMIN", "waiting", "0"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !admin
            .call(&["CLIENT", "LIST", "ID", id.trim_start_matches(':')])
            .contains(" flags=b ")
        {
            assert!(Instant::now() < deadline, "BZPOPMIN never blocked");
            std::thread::sleep(Duration::from_millis(10));
        }
        let words: Vec<&str> = write.split(' ').collect();
        admin.call(&words);
        assert_eq!(waiter.reply_text(), expected, "{write}");
    }
    // A transaction watching a store's destination is aborted by it.
    let mut watcher = server.raw();
    check(
        &mut watcher,
        &[("WATCH dst", "+OK"), ("MULTI", "+OK"), ("GET x", "+QUEUED")],
    );
    check(
        &mut admin,
        &[("GEORADIUS Sicily 15 37 200 km STORE dst", ":2")],
    );
    check(&mut watcher, &[("EXEC", "(nil)")]);
}
