//! Runaway scripts: past `busy-reply-threshold` other clients get `-BUSY`,
//! `SCRIPT KILL` / `FUNCTION KILL` stop a script that has not written,
//! `SHUTDOWN NOSAVE` still stops the server, and no other client hangs.

use std::time::{Duration, Instant};

use ringkv_tests::{RawConnection, TestServer};

const BUSY_EVAL: &str =
    "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str =
    "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
const UNKILLABLE: &str = "-UNKILLABLE Sorry the script already executed write commands against \
the dataset. You can either wait the script termination or kill the server in a hard way using \
the SHUTDOWN NOSAVE command.";

/// Pings until the server answers `-BUSY`, and returns that answer.
fn wait_busy(raw: &mut RawConnection) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = raw.call(&["PING"]);
        if reply.starts_with("-BUSY") {
            return reply;
        }
        assert_eq!(reply, "+PONG");
        assert!(Instant::now() < deadline, "no script got busy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sha1(text: &str) -> String {
    String::from_utf8(ringkv_server::scripting::sha1_hex(text.as_bytes()).to_vec()).unwrap()
}

#[test]
fn a_runaway_script_answers_busy_until_script_kill_stops_it() {
    let server = TestServer::start_with(&["--busy-reply-threshold", "100"]);
    let mut runner = server.raw();
    let mut other = server.raw();
    assert_eq!(
        other.call(&["SCRIPT", "KILL"]),
        "-NOTBUSY No scripts in execution right now."
    );

    let spin = "while true do end";
    runner.send_command(&["EVAL", spin, "0"]);
    assert_eq!(wait_busy(&mut other), BUSY_EVAL);
    // Every command but the few Redis allows while busy.
    assert_eq!(other.call(&["GET", "k"]), BUSY_EVAL);
    assert_eq!(other.call(&["EVAL", "return 1", "0"]), BUSY_EVAL);
    assert_eq!(other.call(&["FUNCTION", "STATS"]), BUSY_EVAL);
    assert_eq!(other.call(&["SHUTDOWN"]), BUSY_EVAL);
    assert_eq!(other.call(&["MULTI"]), "+OK");
    assert_eq!(other.call(&["SET", "k", "v"]), BUSY_EVAL);
    assert_eq!(other.call(&["DISCARD"]), "+OK");
    // A new client is served too.
    assert_eq!(server.raw().call(&["PING"]), BUSY_EVAL);
    // FUNCTION KILL does not stop an EVAL script.
    assert_eq!(other.call(&["FUNCTION", "KILL"]), BUSY_EVAL);

    assert_eq!(other.call(&["SCRIPT", "KILL"]), "+OK");
    assert_eq!(
        runner.reply_text(),
        format!(
            "-ERR Script killed by user with SCRIPT KILL... script: {}, on @user_script:1.",
            sha1(spin)
        )
    );
    assert_eq!(other.call(&["PING"]), "+PONG");
    assert_eq!(runner.call(&["PING"]), "+PONG");

    // pcall cannot catch the kill to keep going.
    let stubborn = "while true do pcall(function() while true do end end) end";
    runner.send_command(&["EVAL", stubborn, "0"]);
    wait_busy(&mut other);
    assert_eq!(other.call(&["SCRIPT", "KILL"]), "+OK");
    assert!(runner
        .reply_text()
        .starts_with("-ERR Script killed by user with SCRIPT KILL..."));
    assert_eq!(runner.call(&["EVAL", "return 'after'", "0"]), "$after");
    assert_eq!(
        other.call(&["SCRIPT", "KILL"]),
        "-NOTBUSY No scripts in execution right now."
    );
}

#[test]
fn a_runaway_script_inside_a_transaction_is_killed_the_same_way() {
    let server = TestServer::start_with(&["--busy-reply-threshold", "100"]);
    let mut runner = server.raw();
    let mut other = server.raw();
    assert_eq!(runner.call(&["MULTI"]), "+OK");
    assert_eq!(runner.call(&["SET", "k", "before"]), "+QUEUED");
    assert_eq!(runner.call(&["EVAL", "while true do end", "0"]), "+QUEUED");
    assert_eq!(runner.call(&["GET", "k"]), "+QUEUED");
    runner.send_command(&["EXEC"]);
    assert_eq!(wait_busy(&mut other), BUSY_EVAL);
    // Only the script's own writes make it unkillable (as in Redis), not
    // the transaction's before it.
    assert_eq!(other.call(&["SCRIPT", "KILL"]), "+OK");
    let reply = runner.reply_text();
    assert!(
        reply.starts_with("[+OK, -ERR Script killed by user with SCRIPT KILL..."),
        "{reply}"
    );
    assert!(reply.ends_with(", $before]"), "{reply}");
}

#[test]
fn a_slow_script_that_ends_answers_its_client_and_frees_the_others() {
    let server = TestServer::start();
    let mut runner = server.raw();
    let mut other = server.raw();
    // The alias Redis keeps for the setting.
    assert_eq!(
        other.call(&["CONFIG", "SET", "lua-time-limit", "100"]),
        "+OK"
    );
    assert_eq!(
        other.call(&["CONFIG", "GET", "busy-reply-threshold"]),
        "[$busy-reply-threshold, $100]"
    );
    let slow = "local s = redis.call('TIME') repeat local n = redis.call('TIME') \
                until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 600000 \
                return redis.call('SET', KEYS[1], 'done')";
    runner.send_command(&["EVAL", slow, "1", "k"]);
    wait_busy(&mut other);
    assert_eq!(runner.reply_text(), "+OK");
    assert_eq!(other.call(&["GET", "k"]), "$done");
}

#[test]
fn functions_are_stopped_by_function_kill_and_shown_by_function_stats() {
    let server = TestServer::start_with(&["--busy-reply-threshold", "100"]);
    let mut runner = server.raw();
    let mut other = server.raw();
    let library = "#!lua name=spinner\n\
                   redis.register_function('spin', function(keys, args) while true do end end)";
    assert_eq!(other.call(&["FUNCTION", "LOAD", library]), "$spinner");

    runner.send_command(&["FCALL", "spin", "1", "k", "arg"]);
    assert_eq!(wait_busy(&mut other), BUSY_FUNCTION);
    let stats = other.call(&["FUNCTION", "STATS"]);
    assert!(
        stats.starts_with("[$running_script, [$name, $spin, $command, [$fcall, $spin, $1, $k, $arg], $duration_ms, :"),
        "{stats}"
    );
    assert_eq!(other.call(&["SCRIPT", "KILL"]), BUSY_FUNCTION);
    assert_eq!(other.call(&["FUNCTION", "KILL"]), "+OK");
    assert!(runner
        .reply_text()
        .starts_with("-ERR Script killed by user with SCRIPT KILL..."));
    assert_eq!(
        other.call(&["FUNCTION", "KILL"]),
        "-NOTBUSY No scripts in execution right now."
    );
}

#[test]
fn function_load_stops_a_library_that_runs_too_long() {
    let server = TestServer::start();
    let mut con = server.raw();
    let started = Instant::now();
    assert_eq!(
        con.call(&["FUNCTION", "LOAD", "#!lua name=x\nwhile true do end"]),
        "-ERR Error registering functions: ERR FUNCTION LOAD timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(con.call(&["FUNCTION", "LIST"]), "[]");
    // The interpreter is whole again.
    let library = "#!lua name=ok\nredis.register_function('one', function() return 1 end)";
    assert_eq!(con.call(&["FUNCTION", "LOAD", library]), "$ok");
    assert_eq!(con.call(&["FCALL", "one", "0"]), ":1");
}

#[test]
fn a_script_that_wrote_is_unkillable_and_shutdown_nosave_still_stops_the_server() {
    let mut server = TestServer::start_with(&["--busy-reply-threshold", "100"]);
    let mut runner = server.raw();
    let mut other = server.raw();
    runner.send_command(&[
        "EVAL",
        "redis.call('SET', KEYS[1], 'v') while true do end",
        "1",
        "k",
    ]);
    wait_busy(&mut other);
    assert_eq!(other.call(&["SCRIPT", "KILL"]), UNKILLABLE);
    assert_eq!(other.call(&["FUNCTION", "KILL"]), UNKILLABLE);
    assert_eq!(other.call(&["SHUTDOWN"]), BUSY_EVAL);
    other.send_command(&["SHUTDOWN", "NOSAVE"]);
    assert!(other.is_closed());
    assert!(
        server.wait_exit(Duration::from_secs(10)).is_some(),
        "the server did not stop"
    );
}

#[test]
fn a_client_of_another_worker_waiting_for_the_scripts_slot_gets_busy_instead_of_hanging() {
    let server = TestServer::start_with(&["--threads", "2", "--busy-reply-threshold", "500"]);
    // Connections go to the workers in turn: these two are on different ones.
    let mut runner = server.raw();
    let mut other = server.raw();
    assert_eq!(other.call(&["SET", "k", "v"]), "+OK");
    runner.send_command(&["EVAL", "while true do end", "1", "k"]);
    std::thread::sleep(Duration::from_millis(100));
    // The script holds k's slot: this waits, then gives up once it is busy.
    let started = Instant::now();
    assert_eq!(other.call(&["GET", "k"]), BUSY_EVAL);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(other.call(&["SCRIPT", "KILL"]), "+OK");
    assert!(runner.reply_text().starts_with("-ERR Script killed"));
    assert_eq!(other.call(&["GET", "k"]), "$v");
}
