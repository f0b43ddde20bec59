//! Lua scripting against the real server: `EVAL` and friends, Redis's
//! conversion rules, the sandbox, `SCRIPT` management, scripts inside
//! transactions, and what a script's writes do to watchers, blocked
//! clients, replicas and cluster routing.

use std::time::Duration;

use ringkv_tests::cluster::TestCluster;
use ringkv_tests::replication::{caught_up, follow, info};
use ringkv_tests::{expect_err, query as q, RawConnection, TestServer};

fn eval(raw: &mut RawConnection, script: &str, keys: &[&str], args: &[&str]) -> String {
    let numkeys = keys.len().to_string();
    let mut request = vec!["EVAL", script, &numkeys];
    request.extend(keys);
    request.extend(args);
    raw.call(&request)
}

#[test]
fn results_become_replies_by_redis_rules() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let cases: &[(&str, &str)] = &[
        ("return 1", ":1"),
        ("return 3.99", ":3"),
        ("return -2.5", ":-2"),
        ("return 'text'", "$text"),
        ("return true", ":1"),
        ("return false", "(nil)"),
        ("return nil", "(nil)"),
        ("return {1, 'two', {3, 'four'}}", "[:1, $two, [:3, $four]]"),
        ("return {1, 2, nil, 4}", "[:1, :2]"),
        ("return {ok = 'FINE'}", "+FINE"),
        ("return {err = 'MYCODE my message'}", "-MYCODE my message"),
        ("return redis.status_reply('PONG')", "+PONG"),
        ("return redis.error_reply('BAD thing')", "-BAD thing"),
        ("return redis.error_reply('nocode')", "-ERR nocode"),
        ("return {double = 3.5}", "$3.5"),
        ("return {map = {a = 1}}", "[$a, :1]"),
        ("return {set = {x = true}}", "[$x]"),
    ];
    for (script, reply) in cases {
        assert_eq!(eval(&mut raw, script, &[], &[]), *reply, "{script}");
    }
    // A RESP3 client gets RESP3 types where the script says so.
    let mut three = server.raw();
    three.send_command(&["HELLO", "3"]);
    three.set_resp3(true);
    three.reply_text();
    let cases: &[(&str, &str)] = &[
        ("return nil", "(nil)"),
        ("return {double = 3.5}", ",3.5"),
        ("return {map = {a = 1}}", "{$a: :1}"),
        ("redis.setresp(3) return true", "#true"),
        ("redis.setresp(3) return false", "#false"),
        // Without setresp(3), booleans keep RESP2's rules.
        ("return false", "(nil)"),
    ];
    for (script, reply) in cases {
        assert_eq!(eval(&mut three, script, &[], &[]), *reply, "{script}");
    }
}

#[test]
fn command_replies_become_lua_values_by_redis_rules() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.call(&["SET", "s", "v"]);
    raw.call(&["HSET", "h", "f", "1"]);
    let type_of = |raw: &mut RawConnection, call: &str| {
        let script = format!("local r = {call} if type(r) == 'table' then local k = next(r) return 'table:' .. tostring(k) end return type(r) .. ':' .. tostring(r)");
        eval(raw, &script, &[], &[])
    };
    assert_eq!(type_of(&mut raw, "redis.call('incr', 'n')"), "$number:1");
    assert_eq!(type_of(&mut raw, "redis.call('get', 's')"), "$string:v");
    assert_eq!(
        type_of(&mut raw, "redis.call('get', 'missing')"),
        "$boolean:false"
    );
    assert_eq!(
        type_of(&mut raw, "redis.call('set', 'x', 'y')"),
        "$table:ok"
    );
    assert_eq!(type_of(&mut raw, "redis.pcall('incr', 's')"), "$table:err");
    assert_eq!(type_of(&mut raw, "redis.call('hgetall', 'h')"), "$table:1");
    // RESP3 replies under setresp(3): maps, nulls and booleans.
    assert_eq!(
        type_of(
            &mut raw,
            "(function() redis.setresp(3) return redis.call('hgetall', 'h') end)()"
        ),
        "$table:map"
    );
    assert_eq!(
        type_of(
            &mut raw,
            "(function() redis.setresp(3) return redis.call('get', 'missing') end)()"
        ),
        "$nil:nil"
    );
    // Numbers go out as integers when they are ones.
    assert_eq!(eval(&mut raw, "redis.call('set', 'f', 2.5) redis.call('set', 'i', 7.0) return {redis.call('get', 'f'), redis.call('get', 'i')}", &[], &[]), "[$2.5, $7]");
    assert_eq!(
        eval(&mut raw, "return redis.pcall('get', {})", &[], &[]),
        "-ERR Lua redis lib command arguments must be strings or integers"
    );
    // Other numbers as Redis's Lua writes them (`%.17g`).
    assert_eq!(
        eval(
            &mut raw,
            "redis.call('set', 'd', 0.1) return redis.call('get', 'd')",
            &[],
            &[]
        ),
        "$0.10000000000000001"
    );
    // A reply larger than one output buffer (16 KiB) and many elements.
    let big = "x".repeat(300_000);
    raw.call(&["SET", "big", &big]);
    raw.call(&["DEL", "l"]);
    for chunk in 0..10 {
        let mut push = vec!["RPUSH".to_owned(), "l".to_owned()];
        push.extend((0..1000).map(|i| format!("item{}", chunk * 1000 + i)));
        let push: Vec<&str> = push.iter().map(String::as_str).collect();
        raw.call(&push);
    }
    assert_eq!(
        eval(
            &mut raw,
            "return #redis.call('get', 'big') .. ' ' .. #redis.call('lrange', 'l', 0, -1)",
            &[],
            &[]
        ),
        "$300000 10000"
    );
}

#[test]
fn errors_name_the_script_and_line_as_redis_does() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.call(&["SET", "s", "v"]);
    let sha = |script: &str| sha_of(script);
    let script = "return redis.call('incr', KEYS[1])";
    assert_eq!(
        eval(&mut raw, script, &["s"], &[]),
        format!(
            "-ERR value is not an integer or out of range script: {}, on @user_script:1.",
            sha(script)
        )
    );
    let script = "local x = 1\nreturn redis.call('nosuch')";
    assert_eq!(
        eval(&mut raw, script, &[], &[]),
        format!(
            "-ERR Unknown Redis command called from script script: {}, on @user_script:2.",
            sha(script)
        )
    );
    assert!(eval(&mut raw, "return redis.call('get')", &[], &[])
        .starts_with("-ERR Wrong number of args calling Redis command from script"));
    assert!(eval(
        &mut raw,
        "return redis.call('eval', 'return 1', 0)",
        &[],
        &[]
    )
    .starts_with("-ERR This Redis command is not allowed from script"));
    assert!(
        eval(&mut raw, "error('boom')", &[], &[]).starts_with("-ERR user_script:1: boom script: ")
    );
    assert!(eval(&mut raw, "return redis.call()", &[], &[])
        .starts_with("-ERR Please specify at least one argument for this redis lib call"));
    // pcall catches a command's error as its message; redis.pcall as a table.
    assert_eq!(
        eval(
            &mut raw,
            "local ok, e = pcall(redis.call, 'incr', 's') return {tostring(ok), e}",
            &[],
            &[]
        ),
        "[$false, $ERR value is not an integer or out of range]"
    );
    assert_eq!(
        eval(&mut raw, "return redis.pcall('incr', 's')['err']", &[], &[]),
        "$ERR value is not an integer or out of range"
    );
    assert!(eval(&mut raw, "return 'unfinished", &[], &[]).starts_with(
        "-ERR Error compiling script (new function): user_script:1: unfinished string"
    ));
    assert_eq!(
        raw.call(&["EVAL", "return 1", "2", "a"]),
        "-ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        raw.call(&["EVAL", "return 1", "-1"]),
        "-ERR Number of keys can't be negative"
    );
    assert_eq!(
        raw.call(&["EVAL", "return 1", "x"]),
        "-ERR value is not an integer or out of range"
    );
}

/// The SHA1 a script is known by.
fn sha_of(script: &str) -> String {
    String::from_utf8(ringkv_server::scripting::sha1_hex(script.as_bytes()).to_vec()).unwrap()
}

#[test]
fn the_sandbox_keeps_scripts_from_the_system_and_from_each_other() {
    let server = TestServer::start();
    let mut raw = server.raw();
    for missing in [
        "loadfile", "dofile", "print", "io", "os", "require", "package", "debug", "module",
        "getfenv", "setfenv", "newproxy",
    ] {
        let answer = eval(&mut raw, &format!("return {missing}"), &[], &[]);
        assert!(
            answer.contains(&format!(
                "Script attempted to access nonexistent global variable '{missing}'"
            )),
            "{missing}: {answer}"
        );
    }
    let tricks = [
        "a = 10",
        "_G = {}",
        "redis = function() return 1 end",
        "redis.call = function() return 1 end",
        "string.upper = nil",
        "bit.band = nil",
        "cjson.encode = nil",
        "cmsgpack.pack = nil",
        "setmetatable(_G, {})",
        "local g = getmetatable(_G) g.__index = {}",
        "rawset(_G, 'x', 1)",
        "getmetatable('').__index = {}",
    ];
    for trick in tricks {
        let answer = eval(&mut raw, trick, &[], &[]);
        assert!(
            answer.contains("Attempt to modify a readonly table"),
            "{trick}: {answer}"
        );
    }
    // Read-only tables can still be walked and read raw, as Redis 7's.
    assert_eq!(
        eval(
            &mut raw,
            "local n = 0 for k, v in pairs(string) do if k == 'upper' or k == 'format' then n = n + 1 end end \
             return {n, type(rawget(string, 'upper')), type(next(redis)), type(rawget(_G, 'cjson'))}",
            &[],
            &[]
        ),
        "[:2, $function, $string, $table]"
    );
    let mut globals = Vec::new();
    for name in ["redis", "string", "KEYS", "pcall"] {
        globals.push(eval(
            &mut raw,
            &format!("for k in pairs(_G) do if k == '{name}' then return 1 end end return 0"),
            &[],
            &[],
        ));
    }
    assert_eq!(globals, [":1", ":1", ":1", ":1"]);
    assert!(eval(&mut raw, "return pairs(nil)", &[], &[])
        .contains("bad argument #1 to 'pairs' (table expected, got nil)"));
    assert!(eval(&mut raw, "return next(nil)", &[], &[])
        .contains("bad argument #1 to 'next' (table expected, got nil)"));
    // Nothing a script tried changed what the next one sees.
    assert_eq!(
        eval(
            &mut raw,
            "return {string.upper('a'), bit.band(6, 3), type(redis.call)}",
            &[],
            &[]
        ),
        "[$A, :2, $function]"
    );
    assert!(eval(
        &mut raw,
        "return loadstring(string.dump(function() return 1 end))()",
        &[],
        &[]
    )
    .contains("attempt to call a nil value"));
    assert_eq!(
        eval(&mut raw, "return loadstring('return 1 + 1')()", &[], &[]),
        ":2"
    );
    assert!(eval(&mut raw, "return loadstring('x = 1')()", &[], &[])
        .contains("Attempt to modify a readonly table"));
    // The libraries Redis loads.
    assert_eq!(
        eval(
            &mut raw,
            "return cjson.encode(cjson.decode(ARGV[1]))",
            &[],
            &[r#"{"a":[1,2.5,"x",null]}"#]
        ),
        r#"${"a":[1,2.5,"x",null]}"#
    );
    assert_eq!(
        eval(
            &mut raw,
            "return cmsgpack.unpack(cmsgpack.pack({1, 'two', {3}}))[2]",
            &[],
            &[]
        ),
        "$two"
    );
    assert_eq!(
        eval(
            &mut raw,
            "return {struct.unpack('>I2', struct.pack('>I2', 258))}",
            &[],
            &[]
        ),
        "[:258, :3]"
    );
    assert_eq!(
        eval(&mut raw, "return bit.tohex(65535, -2147483648)", &[], &[]),
        "$0000FFFF"
    );
    assert_eq!(
        eval(
            &mut raw,
            "return {math.floor(2.5), table.concat({'a', 'b'}, '-'), string.rep('x', 3)}",
            &[],
            &[]
        ),
        "[:2, $a-b, $xxx]"
    );
    assert_eq!(
        eval(&mut raw, "return redis.sha1hex('')", &[], &[]),
        "$da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
    assert_eq!(
        eval(&mut raw, "return redis.REDIS_VERSION ~= nil", &[], &[]),
        ":1"
    );
    // math.random is lrand48 from Redis's seed: the same numbers every time.
    let first = eval(
        &mut raw,
        "math.randomseed(42) return {math.random(1000), math.random(1000)}",
        &[],
        &[],
    );
    let again = eval(
        &mut raw,
        "math.randomseed(42) return {math.random(1000), math.random(1000)}",
        &[],
        &[],
    );
    assert_eq!(first, again);
    assert_eq!(
        eval(&mut raw, "return redis.setresp(4)", &[], &[])
            .split(" script:")
            .next()
            .unwrap(),
        "-ERR RESP version must be 2 or 3."
    );
    assert_eq!(
        eval(
            &mut raw,
            "redis.set_repl(redis.REPL_ALL) return redis.replicate_commands()",
            &[],
            &[]
        ),
        ":1"
    );
    assert_eq!(
        eval(
            &mut raw,
            "redis.log(redis.LOG_WARNING, 'from a script') return 1",
            &[],
            &[]
        ),
        ":1"
    );
}

#[test]
fn each_run_sees_only_its_own_keys_and_args_whatever_the_last_did_to_them() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let show = "return {#KEYS, #ARGV, table.concat(KEYS, ','), table.concat(ARGV, ',')}";
    assert_eq!(
        eval(&mut raw, show, &["a", "b", "c"], &["x", "y"]),
        "[:3, :2, $a,b,c, $x,y]"
    );
    // Fewer entries than the run before: none of its entries are left.
    assert_eq!(eval(&mut raw, show, &["d"], &[]), "[:1, :0, $d, $]");
    // Whatever a script does to KEYS and ARGV, the next run gets plain
    // arrays of its own.
    let changes = [
        "table.remove(KEYS, 1)",
        "KEYS[1] = nil",
        "KEYS[9] = 'far'",
        "KEYS.name = 'field'",
        "ARGV[0] = 'zero'",
        "ARGV[1.5] = 'half'",
        "setmetatable(KEYS, {__index = function() return 'meta' end})",
        "setmetatable(ARGV, {__len = function() return 99 end})",
        "table.insert(ARGV, 'more')",
    ];
    for change in changes {
        let script = format!("{change} return 1");
        assert_eq!(
            eval(&mut raw, &script, &["k1", "k2"], &["v1"]),
            ":1",
            "{change}"
        );
        let next = "return {#KEYS, #ARGV, KEYS[1], ARGV[1], KEYS.name or 'none', \
                    ARGV[0] or 'none', KEYS[9] or 'none', KEYS[3] or 'none', \
                    getmetatable(KEYS) == nil and 'plain' or 'meta', rawget(ARGV, 1.5) or 'none'}";
        assert_eq!(
            eval(&mut raw, next, &["n1"], &["w1"]),
            "[:1, :1, $n1, $w1, $none, $none, $none, $none, $plain, $none]",
            "after {change}"
        );
    }
}

#[test]
fn scripts_are_loaded_listed_flushed_and_bounded() {
    let server = TestServer::start();
    let mut con = server.connect();
    let sha: String = q(&mut con, &["SCRIPT", "LOAD", "return ARGV[1] .. KEYS[1]"]);
    assert_eq!(sha.len(), 40);
    assert_eq!(
        q::<String>(&mut con, &["EVALSHA", &sha, "1", "k", "a"]),
        "ak"
    );
    assert_eq!(
        q::<String>(&mut con, &["EVALSHA", &sha.to_uppercase(), "1", "k", "b"]),
        "bk"
    );
    assert_eq!(
        q::<Vec<i64>>(
            &mut con,
            &[
                "SCRIPT",
                "EXISTS",
                &sha,
                "0000000000000000000000000000000000000000"
            ]
        ),
        [1, 0]
    );
    assert_eq!(
        expect_err(
            &mut con,
            &["EVALSHA", "0000000000000000000000000000000000000000", "0"]
        ),
        "NOSCRIPT No matching script. Please use EVAL."
    );
    assert!(expect_err(&mut con, &["SCRIPT", "LOAD", "return +"])
        .starts_with("ERR Error compiling script"));
    // EVAL's scripts are kept, least recently used evicted beyond 500;
    // loaded ones never are.
    let first: String = q(&mut con, &["SCRIPT", "LOAD", "return 'kept'"]);
    let _: i64 = q(&mut con, &["EVAL", "return 0", "0"]);
    let zero = sha_of("return 0");
    for i in 1..=500 {
        let _: i64 = q(&mut con, &["EVAL", &format!("return {i}"), "0"]);
    }
    assert_eq!(
        q::<Vec<i64>>(&mut con, &["SCRIPT", "EXISTS", &first, &zero]),
        [1, 0]
    );
    let info: String = q(&mut con, &["INFO", "all"]);
    assert!(info.contains("evicted_scripts:1\r\n"), "{info}");
    assert!(info.contains("number_of_cached_scripts:502\r\n"), "{info}");
    assert_eq!(
        q::<String>(&mut con, &["EVALSHA", &sha, "1", "k", "c"]),
        "ck"
    );
    let _: () = q(&mut con, &["SCRIPT", "FLUSH"]);
    assert_eq!(
        q::<Vec<i64>>(&mut con, &["SCRIPT", "EXISTS", &sha, &first]),
        [0, 0]
    );
    assert!(expect_err(&mut con, &["EVALSHA", &sha, "0"]).starts_with("NOSCRIPT"));
    let _: () = q(&mut con, &["SCRIPT", "FLUSH", "ASYNC"]);
    assert_eq!(
        expect_err(&mut con, &["SCRIPT", "FLUSH", "NOW"]),
        "ERR SCRIPT FLUSH only support SYNC|ASYNC option"
    );
    assert_eq!(
        expect_err(&mut con, &["SCRIPT", "KILL"]),
        "NOTBUSY No scripts in execution right now."
    );
}

#[test]
fn read_only_scripts_refuse_writes() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "k", "v"]);
    assert_eq!(
        q::<String>(
            &mut con,
            &["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"]
        ),
        "v"
    );
    assert!(expect_err(
        &mut con,
        &[
            "EVAL_RO",
            "return redis.call('set', KEYS[1], 'x')",
            "1",
            "k"
        ]
    )
    .starts_with("ERR Write commands are not allowed from read-only scripts."));
    let no_writes = "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 'x')";
    assert!(expect_err(&mut con, &["EVAL", no_writes, "1", "k"])
        .starts_with("ERR Write commands are not allowed from read-only scripts."));
    let writes = "#!lua\nreturn redis.call('set', KEYS[1], 'x')";
    assert_eq!(
        expect_err(&mut con, &["EVAL_RO", writes, "1", "k"]),
        "ERR Can not execute a script with write flag using *_ro command."
    );
    assert_eq!(q::<String>(&mut con, &["EVAL", writes, "1", "k"]), "OK");
    assert_eq!(
        expect_err(&mut con, &["EVAL", "#!lua flags=bogus\nreturn 1", "0"]),
        "ERR Unexpected flag in script shebang: bogus"
    );
    assert_eq!(
        expect_err(&mut con, &["EVAL", "#!python\nreturn 1", "0"]),
        "ERR Unexpected engine in script shebang: #!python"
    );
    assert_eq!(q::<i64>(&mut con, &["EVAL", "#!lua\nreturn 2", "0"]), 2);
}

#[test]
fn scripts_run_in_transactions_break_watches_and_serve_blocked_clients_after() {
    let server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(raw.call(&["MULTI"]), "+OK");
    assert_eq!(
        raw.call(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "n"]),
        "+QUEUED"
    );
    assert_eq!(
        raw.call(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "n"]),
        "+QUEUED"
    );
    assert_eq!(raw.call(&["EXEC"]), "[:1, :2]");
    // A script's write breaks another client's WATCH.
    let mut watcher = server.raw();
    watcher.call(&["WATCH", "n"]);
    eval(&mut raw, "return redis.call('incr', KEYS[1])", &["n"], &[]);
    watcher.call(&["MULTI"]);
    watcher.call(&["GET", "n"]);
    assert_eq!(watcher.call(&["EXEC"]), "(nil)");
    // A client blocked on a list gets what a script pushed, once it ended.
    let mut blocked = server.raw();
    blocked.send_command(&["BLPOP", "queue", "5"]);
    std::thread::sleep(Duration::from_millis(100));
    eval(
        &mut raw,
        "redis.call('rpush', KEYS[1], 'a') redis.call('rpush', KEYS[1], 'b') return 1",
        &["queue"],
        &[],
    );
    assert_eq!(blocked.reply_text(), "[$queue, $a]");
    assert_eq!(raw.call(&["LRANGE", "queue", "0", "-1"]), "[$b]");
    // Blocking commands inside a script answer at once.
    assert_eq!(
        eval(
            &mut raw,
            "return redis.call('blpop', KEYS[1], 0)",
            &["empty"],
            &[]
        ),
        "(nil)"
    );
    // Scripts take and release locks.
    let acquire = "return redis.call('lock.acquire', KEYS[1], ARGV[1], 10000)";
    let token = eval(&mut raw, acquire, &["lk"], &["me"]);
    assert!(token.starts_with(':'), "{token}");
    assert_eq!(eval(&mut raw, acquire, &["lk"], &["other"]), "(nil)");
    assert_eq!(
        eval(
            &mut raw,
            "return redis.call('lock.release', KEYS[1], ARGV[1])",
            &["lk"],
            &["me"]
        ),
        ":0"
    );
}

#[test]
fn a_replica_gets_a_scripts_effects_not_its_text() {
    let master = TestServer::start();
    let replica = TestServer::start();
    follow(&replica, &master);
    let mut m = master.connect();
    // Random numbers and the time differ at each run: only the effects can
    // give the replica the master's data.
    let script = "local t = redis.call('time') redis.call('set', KEYS[1], math.random() .. ':' .. t[1] .. '.' .. t[2]) redis.call('sadd', KEYS[2], math.random(1000000)) return 1";
    for _ in 0..5 {
        let _: i64 = q(&mut m, &["EVAL", script, "2", "{s}value", "{s}set"]);
    }
    let sha: String = q(&mut m, &["SCRIPT", "LOAD", script]);
    let _: i64 = q(&mut m, &["EVALSHA", &sha, "2", "{s}value", "{s}set"]);
    caught_up(&master, &replica);
    let mut r = replica.connect();
    assert_eq!(
        q::<String>(&mut r, &["GET", "{s}value"]),
        q::<String>(&mut m, &["GET", "{s}value"])
    );
    let mut mine: Vec<String> = q(&mut m, &["SMEMBERS", "{s}set"]);
    let mut theirs: Vec<String> = q(&mut r, &["SMEMBERS", "{s}set"]);
    mine.sort();
    theirs.sort();
    assert_eq!(mine, theirs);
    assert_eq!(mine.len(), 6);
    // A replica refuses a script's writes, not its reads.
    assert!(
        expect_err(&mut r, &["EVAL", "return redis.call('set', 'x', 1)", "0"])
            .starts_with("READONLY You can't write against a read only replica.")
    );
    assert_eq!(
        q::<i64>(
            &mut r,
            &["EVAL", "return redis.call('scard', KEYS[1])", "1", "{s}set"]
        ),
        6
    );
    assert_eq!(
        expect_err(&mut r, &["EVAL", "#!lua\nreturn 1", "0"]),
        "READONLY Can not run script with write flag on readonly replica"
    );
}

#[test]
fn in_a_cluster_a_script_keeps_to_its_slot() {
    let cluster = TestCluster::start("scripting", 3, &["--cluster-node-timeout", "2000"]);
    let client = redis::cluster::ClusterClient::new(vec![cluster.server(0).url()]).unwrap();
    let mut con = client.get_connection().unwrap();
    let script = "return redis.call('incr', KEYS[1]) + redis.call('incr', KEYS[2])";
    let n: i64 = redis::cmd("EVAL")
        .arg(script)
        .arg(2)
        .arg("{a}1")
        .arg("{a}2")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let mut raw = cluster.server(0).raw();
    let answer = raw.call(&["EVAL", script, "2", "{a}1", "{b}2"]);
    assert!(answer.starts_with("-CROSSSLOT"), "{answer}");
    // An undeclared key of the same slot is fine; of another slot, refused.
    let same = "return redis.call('incr', KEYS[1] .. 'more')";
    let n: i64 = redis::cmd("EVAL")
        .arg(same)
        .arg(1)
        .arg("{a}")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    let other = "redis.call('incr', KEYS[1]) return redis.call('incr', '{zz}other')";
    let err = redis::cmd("EVAL")
        .arg(other)
        .arg(1)
        .arg("{a}")
        .query::<i64>(&mut con)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Script attempted to access keys that do not hash to the same slot")
            || text.contains("Script attempted to access a non local key in a cluster node"),
        "{text}"
    );
    let no_cluster = "#!lua flags=no-cluster\nreturn 1";
    let err = redis::cmd("EVAL")
        .arg(no_cluster)
        .arg(0)
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Can not run script on cluster, 'no-cluster' flag is set."),
        "{err}"
    );
}

const LIBRARY: &str = "#!lua name=mylib
redis.register_function('knock', function() return 'who?' end)
redis.register_function{
    function_name = 'setter',
    callback = function(keys, args) return redis.call('set', keys[1], args[1]) end,
    description = 'sets a key',
}
redis.register_function{
    function_name = 'getter',
    callback = function(keys) return redis.call('get', keys[1]) end,
    flags = {'no-writes'},
}";

#[test]
fn functions_load_list_call_dump_and_restore() {
    let server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(raw.call(&["FUNCTION", "LOAD", LIBRARY]), "$mylib");
    assert_eq!(raw.call(&["FCALL", "knock", "0"]), "$who?");
    assert_eq!(raw.call(&["FCALL", "setter", "1", "k", "v"]), "+OK");
    assert_eq!(raw.call(&["FCALL_RO", "getter", "1", "k"]), "$v");
    assert_eq!(
        raw.call(&["FCALL_RO", "setter", "1", "k", "v"]),
        "-ERR Can not execute a script with write flag using *_ro command."
    );
    assert_eq!(
        raw.call(&["FCALL", "nosuch", "0"]),
        "-ERR Function not found"
    );
    assert_eq!(
        raw.call(&["FUNCTION", "LOAD", LIBRARY]),
        "-ERR Library 'mylib' already exists"
    );
    assert_eq!(
        raw.call(&["FUNCTION", "LOAD", "REPLACE", LIBRARY]),
        "$mylib"
    );
    let clash = "#!lua name=other\nredis.register_function('knock', function() return 1 end)";
    assert_eq!(
        raw.call(&["FUNCTION", "LOAD", clash]),
        "-ERR Function knock already exists"
    );
    let errors: &[(&str, &str)] = &[
        ("return 1", "-ERR Missing library metadata"),
        ("#!lua name=x\nreturn 1", "-ERR No functions registered"),
        ("#!lua\nreturn 1", "-ERR Library name was not given"),
        ("#!lua name=x\nredis.register_function('a-b', function() end)", "-ERR Error registering functions: ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"),
        ("#!lua name=x\nredis.register_function{function_name='f', callback=function() end, flags={'bogus'}}", "-ERR Error registering functions: ERR unknown flag given"),
        ("#!lua name=x\nredis.call('ping')", "-ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"),
    ];
    for (code, answer) in errors {
        assert_eq!(raw.call(&["FUNCTION", "LOAD", code]), *answer, "{code}");
    }
    let list = raw.call(&["FUNCTION", "LIST", "WITHCODE"]);
    assert!(
        list.contains("$library_name, $mylib")
            && list.contains("$setter")
            && list.contains("$sets a key")
            && list.contains("+no-writes")
            && list.contains("library_code"),
        "{list}"
    );
    assert_eq!(
        raw.call(&["FUNCTION", "LIST", "LIBRARYNAME", "nomatch*"]),
        "[]"
    );
    assert_eq!(
        raw.call(&["FUNCTION", "STATS"]),
        "[$running_script, (nil), $engines, [$LUA, [$libraries_count, :1, $functions_count, :3]]]"
    );
    // DUMP and RESTORE, with each policy.
    let mut con = server.connect();
    let dump: Vec<u8> = q(&mut con, &["FUNCTION", "DUMP"]);
    assert_eq!(raw.call(&["FUNCTION", "DELETE", "mylib"]), "+OK");
    assert_eq!(
        raw.call(&["FUNCTION", "DELETE", "mylib"]),
        "-ERR Library not found"
    );
    let restore = |con: &mut redis::Connection, policy: &[&str]| -> redis::RedisResult<String> {
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("RESTORE").arg(&dump);
        for word in policy {
            cmd.arg(*word);
        }
        cmd.query(con)
    };
    assert_eq!(restore(&mut con, &[]).unwrap(), "OK");
    assert!(restore(&mut con, &[])
        .unwrap_err()
        .to_string()
        .contains("Library 'mylib' already exists"));
    assert_eq!(restore(&mut con, &["REPLACE"]).unwrap(), "OK");
    assert_eq!(restore(&mut con, &["FLUSH"]).unwrap(), "OK");
    assert!(restore(&mut con, &["SOMETIMES"])
        .unwrap_err()
        .to_string()
        .contains("Wrong restore policy"));
    assert_eq!(raw.call(&["FCALL", "knock", "0"]), "$who?");
    let broken: redis::RedisResult<String> = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&dump[1..])
        .query(&mut con);
    assert!(broken
        .unwrap_err()
        .to_string()
        .contains("DUMP payload version or checksum are wrong"));
    assert_eq!(
        raw.call(&["FUNCTION", "FLUSH", "NOW"]),
        "-ERR FUNCTION FLUSH only supports SYNC|ASYNC option"
    );
    assert_eq!(raw.call(&["FUNCTION", "FLUSH"]), "+OK");
    assert_eq!(
        raw.call(&["FCALL", "knock", "0"]),
        "-ERR Function not found"
    );
    assert_eq!(
        raw.call(&["FUNCTION", "KILL"]),
        "-NOTBUSY No scripts in execution right now."
    );
    // A function's errors name it.
    let failing = "#!lua name=f\nredis.register_function('fails', function() return redis.call('nosuch') end)";
    raw.call(&["FUNCTION", "LOAD", failing]);
    assert_eq!(
        raw.call(&["FCALL", "fails", "0"]),
        "-ERR Unknown Redis command called from script script: fails, on @user_function:2."
    );
}

#[test]
fn replicas_get_the_libraries_by_stream_and_by_full_sync() {
    let master = TestServer::start();
    let mut m = master.connect();
    let _: String = q(&mut m, &["FUNCTION", "LOAD", LIBRARY]);
    // A replica that syncs after the load gets the library with its data.
    let replica = TestServer::start();
    let mut r = replica.connect();
    let stale = "#!lua name=stale\nredis.register_function('old', function() return 1 end)";
    let _: String = q(&mut r, &["FUNCTION", "LOAD", stale]);
    follow(&replica, &master);
    let _: String = q(&mut m, &["FCALL", "setter", "1", "k", "v"]);
    caught_up(&master, &replica);
    assert_eq!(q::<String>(&mut r, &["FCALL_RO", "getter", "1", "k"]), "v");
    assert!(expect_err(&mut r, &["FCALL", "old", "0"]).contains("Function not found"));
    // Later changes follow the stream.
    let more = "#!lua name=more\nredis.register_function{function_name='two', callback=function() return 2 end, flags={'no-writes'}}";
    let _: String = q(&mut m, &["FUNCTION", "LOAD", more]);
    let _: () = q(&mut m, &["FUNCTION", "DELETE", "mylib"]);
    caught_up(&master, &replica);
    assert_eq!(q::<i64>(&mut r, &["FCALL_RO", "two", "0"]), 2);
    assert!(expect_err(&mut r, &["FCALL_RO", "getter", "1", "k"]).contains("Function not found"));
    assert!(expect_err(&mut r, &["FUNCTION", "FLUSH"]).starts_with("READONLY"));
}

#[test]
fn scripts_evict_first_and_refuse_to_grow_memory_past_maxmemory() {
    let server = TestServer::start();
    let mut con = server.connect();
    let _: () = q(&mut con, &["SET", "big", &"a".repeat(100_000)]);
    let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", "1"]);
    let set = "return redis.call('set', 'x', 'y')";
    assert_eq!(
        expect_err(&mut con, &["EVAL", set, "0"]),
        format!(
            "OOM command not allowed when used memory > 'maxmemory'. script: {}, on @user_script:1.",
            sha_of(set)
        )
    );
    assert_eq!(
        expect_err(
            &mut con,
            &["EVAL", "return redis.pcall('set', 'x', 'y')", "0"]
        ),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    // Reads run; a script that declares it may write is refused at once,
    // unless it allows running out of memory.
    assert_eq!(
        q::<Option<String>>(&mut con, &["EVAL", "return redis.call('get', 'x')", "0"]),
        None
    );
    assert_eq!(
        expect_err(&mut con, &["EVAL", &format!("#!lua\n{set}"), "0"]),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    let allowed = format!("#!lua flags=allow-oom\n{set}");
    assert_eq!(q::<String>(&mut con, &["EVAL", &allowed, "0"]), "OK");
    // Once a script wrote, it stays whole.
    let after_write = "redis.call('del', 'nothing') return redis.call('set', 'x', 'z')";
    assert_eq!(q::<String>(&mut con, &["EVAL", after_write, "0"]), "OK");

    // With an eviction policy, scripts make room like any write.
    let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
    let used: u64 = info(&mut con, "memory", "used_memory").parse().unwrap();
    let limit = (used + 2_000_000).to_string();
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    );
    let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", &limit]);
    let value = "v".repeat(10_000);
    for i in 0..1000 {
        let _: String = q(
            &mut con,
            &[
                "EVAL",
                "return redis.call('set', KEYS[1], ARGV[1])",
                "1",
                &format!("k{i}"),
                &value,
            ],
        );
    }
    let evicted: u64 = info(&mut con, "stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 0);
}

#[test]
fn on_a_stale_replica_scripts_run_only_stale_commands() {
    let server = TestServer::start();
    let mut con = server.connect();
    // A master that is never there (nothing listens on loopback port 1).
    let _: String = q(&mut con, &["REPLICAOF", "127.0.0.1", "1"]);
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "replica-serve-stale-data", "no"],
    );
    let masterdown =
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";
    assert_eq!(expect_err(&mut con, &["GET", "k"]), masterdown);
    let get = "return redis.call('get', 'k')";
    assert_eq!(
        expect_err(&mut con, &["EVAL", get, "0"]),
        format!(
            "ERR Can not execute the command on a stale replica script: {}, on @user_script:1.",
            sha_of(get)
        )
    );
    // A script with a shebang needs `allow-stale`.
    assert_eq!(
        expect_err(&mut con, &["EVAL", "#!lua flags=no-writes\nreturn 1", "0"]),
        masterdown
    );
    let info = "#!lua flags=no-writes,allow-stale\nreturn redis.call('info', 'server') ~= nil";
    assert_eq!(q::<i64>(&mut con, &["EVAL", info, "0"]), 1);
    let stale_get = format!("#!lua flags=no-writes,allow-stale\n{get}");
    assert!(expect_err(&mut con, &["EVAL", &stale_get, "0"])
        .starts_with("ERR Can not execute the command on a stale replica script:"));
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
    );
    assert_eq!(q::<Option<String>>(&mut con, &["EVAL", get, "0"]), None);
}
