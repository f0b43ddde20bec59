//! Complexity benchmark: builds collections of `--size` elements (1M by default)
//! on ringkv and (when installed) Redis, then times one call of each collection
//! command whose cost Redis documents as linear or logarithmic, and prints ringkv's
//! and Redis's milliseconds side by side. A command that is quadratic, or linear
//! where Redis is logarithmic, shows as a ratio far above 1.
//!
//! Each case runs `--rounds` times and reports the median. Cases that change
//! their key run on a fresh `COPY` of the prepared one each round (the copy is not
//! timed). The time includes the round trip and the reply transfer, which both
//! servers pay alike.
//!
//! ```text
//! cargo build --release -p ringkv-server -p ringkv-bench
//! target/release/complexity --size 1000000
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use ringkv_bench::{have_program, median, ringkv_release_binary, ServerProcess};

/// Time collection commands on large collections, ringkv against Redis.
#[derive(Debug, Parser)]
struct Options {
    /// Elements per prepared collection.
    #[arg(long, default_value_t = 1_000_000)]
    size: usize,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Run only the cases whose name contains one of these.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Skip the cases whose name contains one of these.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Give up on a command after this many seconds (the server may stay busy).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The ringkv-server binary (default: target/release/ringkv-server).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
}

/// One timed command.
struct Case {
    /// Short name for the table and filters.
    name: &'static str,
    /// The prepared key the command changes: copied to `work` before each round.
    copies: Option<&'static str>,
    /// The command; `work` names the copy.
    command: Vec<String>,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The command `head` followed by `items`.
fn with_items(head: &str, items: impl Iterator<Item = String>) -> Vec<String> {
    words(head).into_iter().chain(items).collect()
}

fn cases(n: usize) -> Vec<Case> {
    let half = n / 2;
    let tenth = (n / 10).max(1);
    let case = |name, copies, command| Case {
        name,
        copies,
        command,
    };
    vec![
        // Lists. `l:x` holds v0..v{n-1}; `l:rem` n/2 x then n/2 a.
        case("LREM all", Some("l:rem"), words("LREM work 0 a")),
        case(
            "LINSERT near tail",
            Some("l:x"),
            words(&format!("LINSERT work BEFORE v{} new", n - 10)),
        ),
        case("LPOS missing", None, words("LPOS l:x missing")),
        case(
            "LPOS RANK -1 COUNT 1000 MAXLEN",
            None,
            words(&format!(
                "LPOS l:rem a RANK -1 COUNT 1000 MAXLEN {}",
                n * 3 / 4
            )),
        ),
        case("LPOS COUNT 0 (all)", None, words("LPOS l:rem a COUNT 0")),
        case(
            "LTRIM keep middle",
            Some("l:x"),
            words(&format!("LTRIM work {} {}", n / 4, n * 3 / 4 - 1)),
        ),
        case(
            "LSET middle",
            Some("l:x"),
            words(&format!("LSET work {half} new")),
        ),
        case("LINDEX middle", None, words(&format!("LINDEX l:x {half}"))),
        case(
            "LRANGE 100 from middle",
            None,
            words(&format!("LRANGE l:x {half} {}", half + 99)),
        ),
        case(
            "LMPOP COUNT n/10",
            Some("l:x"),
            words(&format!("LMPOP 1 work LEFT COUNT {tenth}")),
        ),
        case("LMOVE", Some("l:x"), words("LMOVE work work RIGHT LEFT")),
        // Sets. `s:a` holds m0..m{n-1}, `s:b` m{n/2}..m{3n/2-1}, `s:one` one member.
        case(
            "SREM n/10 members",
            Some("s:a"),
            with_items("SREM work", (0..tenth).map(|i| format!("m{i}"))),
        ),
        case("SMOVE", Some("s:a"), words("SMOVE work s:dst m7")),
        case("SINTER big big", None, words("SINTER s:a s:b")),
        case("SINTER big one", None, words("SINTER s:a s:one")),
        case("SINTERSTORE", None, words("SINTERSTORE s:dst s:a s:b")),
        case("SINTERCARD", None, words("SINTERCARD 2 s:a s:b")),
        case(
            "SINTERCARD LIMIT 10",
            None,
            words("SINTERCARD 2 s:a s:b LIMIT 10"),
        ),
        case("SUNION", None, words("SUNION s:a s:b")),
        case("SUNIONSTORE", None, words("SUNIONSTORE s:dst s:a s:b")),
        case("SDIFF", None, words("SDIFF s:a s:b")),
        case("SDIFF one big", None, words("SDIFF s:one s:a")),
        case("SDIFFSTORE", None, words("SDIFFSTORE s:dst s:a s:b")),
        case(
            "SPOP n/10",
            Some("s:a"),
            words(&format!("SPOP work {tenth}")),
        ),
        case(
            "SRANDMEMBER n/10",
            None,
            words(&format!("SRANDMEMBER s:a {tenth}")),
        ),
        // Hashes. `h` maps f0..f{n-1} to v0..v{n-1}.
        case(
            "HDEL n/10 fields",
            Some("h"),
            with_items("HDEL work", (0..tenth).map(|i| format!("f{i}"))),
        ),
        case(
            "HRANDFIELD n/10",
            None,
            words(&format!("HRANDFIELD h {tenth}")),
        ),
        // Sorted sets. `z:a` scores m{i} with i, `z:b` the same from n/2 on,
        // `z:lex` m{i:07} all with score 0, `z:one` one member.
        case(
            "ZREM n/10 members",
            Some("z:a"),
            with_items("ZREM work", (0..tenth).map(|i| format!("m{i}"))),
        ),
        case(
            "ZREMRANGEBYSCORE half",
            Some("z:a"),
            words(&format!("ZREMRANGEBYSCORE work 0 {}", half - 1)),
        ),
        case(
            "ZREMRANGEBYRANK half",
            Some("z:a"),
            words(&format!("ZREMRANGEBYRANK work 0 {}", half - 1)),
        ),
        case(
            "ZREMRANGEBYLEX half",
            Some("z:lex"),
            words(&format!("ZREMRANGEBYLEX work - (m{half:07}")),
        ),
        case(
            "ZRANGE 100 by rank",
            None,
            words(&format!("ZRANGE z:a {half} {}", half + 99)),
        ),
        case(
            "ZRANGE REV 100 by rank",
            None,
            words(&format!("ZRANGE z:a {half} {} REV", half + 99)),
        ),
        case(
            "ZRANGE BYSCORE LIMIT 100",
            None,
            words(&format!("ZRANGE z:a {half} +inf BYSCORE LIMIT 0 100")),
        ),
        case(
            "ZRANGE BYLEX LIMIT 100",
            None,
            words(&format!("ZRANGE z:lex [m{half:07} + BYLEX LIMIT 0 100")),
        ),
        case(
            "ZRANGEBYSCORE WITHSCORES",
            None,
            words(&format!(
                "ZRANGEBYSCORE z:a {half} {} WITHSCORES",
                half + 99
            )),
        ),
        case(
            "ZCOUNT half",
            None,
            words(&format!("ZCOUNT z:a {half} +inf")),
        ),
        case(
            "ZPOPMIN n/10",
            Some("z:a"),
            words(&format!("ZPOPMIN work {tenth}")),
        ),
        case(
            "ZRANDMEMBER n/10",
            None,
            words(&format!("ZRANDMEMBER z:a {tenth}")),
        ),
        case("ZUNIONSTORE", None, words("ZUNIONSTORE z:dst 2 z:a z:b")),
        case("ZINTERSTORE", None, words("ZINTERSTORE z:dst 2 z:a z:b")),
        case("ZINTER big one", None, words("ZINTER 2 z:a z:one")),
        case("ZINTERCARD", None, words("ZINTERCARD 2 z:a z:b")),
        case("ZDIFFSTORE", None, words("ZDIFFSTORE z:dst 2 z:a z:b")),
        case("ZDIFF one big", None, words("ZDIFF 2 z:one z:a")),
    ]
}

/// Sends `commands` in one pipeline.
fn pipeline(con: &mut redis::Connection, commands: Vec<redis::Cmd>) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for c in commands {
        pipe.add_command(c).ignore();
    }
    pipe.query::<()>(con)
}

/// Builds `key` with `head key items...` commands of 1000 items each.
fn fill(
    con: &mut redis::Connection,
    head: &str,
    key: &str,
    items: impl Iterator<Item = Vec<String>>,
) -> redis::RedisResult<()> {
    let mut commands = Vec::new();
    let mut cmd = redis::cmd(head);
    cmd.arg(key);
    let mut in_cmd = 0;
    for item in items {
        cmd.arg(item);
        in_cmd += 1;
        if in_cmd == 1000 {
            commands.push(std::mem::replace(&mut cmd, redis::cmd(head)));
            cmd.arg(key);
            in_cmd = 0;
        }
    }
    if in_cmd > 0 {
        commands.push(cmd);
    }
    for chunk in commands.chunks(100) {
        pipeline(con, chunk.to_vec())?;
    }
    Ok(())
}

/// Prepares every collection the cases use.
fn prepare(con: &mut redis::Connection, n: usize) -> redis::RedisResult<()> {
    let half = n / 2;
    let one = |s: String| vec![s];
    fill(con, "RPUSH", "l:x", (0..n).map(|i| one(format!("v{i}"))))?;
    fill(
        con,
        "RPUSH",
        "l:rem",
        (0..n).map(|i| one(if i < half { "x" } else { "a" }.to_string())),
    )?;
    fill(con, "SADD", "s:a", (0..n).map(|i| one(format!("m{i}"))))?;
    fill(
        con,
        "SADD",
        "s:b",
        (half..n + half).map(|i| one(format!("m{i}"))),
    )?;
    fill(con, "SADD", "s:one", std::iter::once(one("m5".into())))?;
    fill(
        con,
        "HSET",
        "h",
        (0..n).map(|i| vec![format!("f{i}"), format!("v{i}")]),
    )?;
    fill(
        con,
        "ZADD",
        "z:a",
        (0..n).map(|i| vec![i.to_string(), format!("m{i}")]),
    )?;
    fill(
        con,
        "ZADD",
        "z:b",
        (half..n + half).map(|i| vec![i.to_string(), format!("m{i}")]),
    )?;
    fill(
        con,
        "ZADD",
        "z:lex",
        (0..n).map(|i| vec!["0".into(), format!("m{i:07}")]),
    )?;
    fill(
        con,
        "ZADD",
        "z:one",
        std::iter::once(vec!["5".into(), "m5".into()]),
    )
}

/// Median milliseconds of `case` on the server at `con`, or why it failed.
fn time_case(con: &mut redis::Connection, case: &Case, rounds: usize) -> Result<f64, String> {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        if let Some(source) = case.copies {
            redis::cmd("COPY")
                .arg(source)
                .arg("work")
                .arg("REPLACE")
                .query::<i64>(con)
                .map_err(|e| e.to_string())?;
        }
        let mut cmd = redis::cmd(&case.command[0]);
        for a in &case.command[1..] {
            cmd.arg(a);
        }
        let started = Instant::now();
        cmd.query::<redis::Value>(con).map_err(|e| {
            if e.is_timeout() {
                "timeout".to_string()
            } else {
                e.to_string()
            }
        })?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        redis::cmd("DEL")
            .arg("work")
            .arg("s:dst")
            .arg("z:dst")
            .query::<i64>(con)
            .map_err(|e| e.to_string())?;
    }
    Ok(median(&mut times))
}

fn connect(server: &ServerProcess, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port))?;
    let con = client.get_connection()?;
    con.set_read_timeout(Some(timeout))?;
    Ok(con)
}

fn shown(result: &Result<f64, String>) -> String {
    match result {
        Ok(ms) => format!("{ms:.1}"),
        Err(e) => e.clone(),
    }
}

fn main() {
    let o = Options::parse();
    let binary = o.server_bin.clone().unwrap_or_else(ringkv_release_binary);
    let mut servers = vec![ServerProcess::ringkv(&binary, &[]).expect("start ringkv")];
    if have_program("redis-server") {
        servers.push(ServerProcess::redis(&[]).expect("start redis"));
    }
    let timeout = Duration::from_secs(o.timeout);
    let mut cons: Vec<redis::Connection> = servers
        .iter()
        .map(|s| connect(s, timeout).expect("connect"))
        .collect();
    for (server, con) in servers.iter().zip(&mut cons) {
        let started = Instant::now();
        prepare(con, o.size).expect("prepare the collections");
        eprintln!(
            "{}: prepared in {:.1} s",
            server.name,
            started.elapsed().as_secs_f64()
        );
    }
    let wanted = |name: &str| {
        (o.only.is_empty() || o.only.iter().any(|w| name.contains(w.as_str())))
            && !o.skip.iter().any(|w| name.contains(w.as_str()))
    };
    println!(
        "{} elements per collection, median of {} runs, milliseconds per command",
        o.size, o.rounds
    );
    println!();
    println!("| case | command | ringkv ms | Redis ms | ratio |");
    println!("|---|---|---:|---:|---:|");
    for case in cases(o.size).into_iter().filter(|c| wanted(c.name)) {
        let results: Vec<Result<f64, String>> = cons
            .iter_mut()
            .map(|con| time_case(con, &case, o.rounds))
            .collect();
        let ratio = match (results.first(), results.get(1)) {
            (Some(Ok(ours)), Some(Ok(theirs))) if *theirs > 0.0 => format!("{:.2}", ours / theirs),
            _ => "-".to_string(),
        };
        let mut command = case.command.clone();
        // Long member lists (SREM/HDEL/ZREM) show their first few.
        if command.len() > 12 {
            let more = command.len() - 4;
            command.truncate(4);
            command.push(format!("... ({more} more)"));
        }
        println!(
            "| {} | `{}` | {} | {} | {} |",
            case.name,
            command.join(" "),
            shown(&results[0]),
            results.get(1).map_or("-".to_string(), shown),
            ratio
        );
    }
}
