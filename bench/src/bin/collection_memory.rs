//! Memory per element of small collections: fills ringkv and (when installed)
//! Redis with many 10-member hashes and sets through `redis-cli --pipe`, and
//! reports each server's RSS growth per element.
//!
//! ```text
//! cargo build --release -p ringkv-server
//! cargo run --release -p ringkv-bench --bin collection_memory -- --count 200000
//! ```

use clap::Parser;
use ringkv_bench::{
    encode_command, have_program, redis_cli_pipe, ringkv_release_binary, ServerProcess,
};
use ringkv_server::memory;

/// Measure bytes per element of 10-member hashes and sets.
#[derive(Debug, Parser)]
struct Options {
    /// Collections of each kind to create.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Members per collection.
    #[arg(long, default_value_t = 10)]
    members: usize,
}

/// The commands creating `count` collections of `kind` ("hash" or "set").
fn fill_commands(kind: &str, count: usize, members: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let key = format!("{kind}:{i:08}");
        let mut args: Vec<Vec<u8>> = vec![
            if kind == "hash" {
                b"HSET".to_vec()
            } else {
                b"SADD".to_vec()
            },
            key.into_bytes(),
        ];
        for m in 0..members {
            args.push(format!("member:{m:02}").into_bytes());
            if kind == "hash" {
                args.push(format!("value:{i:08}").into_bytes());
            }
        }
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        encode_command(&refs, &mut out);
    }
    out
}

fn measure(server: &ServerProcess, kind: &str, o: &Options) -> f64 {
    let commands = fill_commands(kind, o.count, o.members);
    let before = memory::rss_of(Some(server.pid()));
    redis_cli_pipe(server.port, &commands).expect("load");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let after = memory::rss_of(Some(server.pid()));
    after.saturating_sub(before) as f64 / (o.count * o.members) as f64
}

fn main() {
    let o = Options::parse();
    if !have_program("redis-cli") {
        eprintln!("redis-cli is needed (apt-get install redis-tools)");
        std::process::exit(2);
    }
    let mut servers =
        vec![ServerProcess::ringkv(&ringkv_release_binary(), &[]).expect("start ringkv")];
    if have_program("redis-server") {
        servers.push(ServerProcess::redis(&[]).expect("start redis"));
    }
    println!(
        "{} collections of {} members each, RSS growth per element",
        o.count, o.members
    );
    println!();
    println!("| server | hash (field 9 B + value 14 B) | set (member 9 B) |");
    println!("|---|---:|---:|");
    for server in &servers {
        let hash = measure(server, "hash", &o);
        let set = measure(server, "set", &o);
        println!("| {} | {hash:.1} B | {set:.1} B |", server.name);
    }
}
