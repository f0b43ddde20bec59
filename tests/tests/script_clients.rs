//! Lock and script libraries that use Lua, run unchanged against ringkv:
//! redis-py's `Lock` and `register_script`, node's `redlock` over three
//! servers and ioredis's `defineCommand`. Each skips, saying why, where its
//! runtime or package is missing (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use ringkv_tests::TestServer;

/// `tests/clients`, where the client programs are.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Runs `program args...`, failing the test with its output if it fails.
fn run(program: &str, args: &[&str], node_path: Option<&Path>) {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(path) = node_path {
        command.env("NODE_PATH", path);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True if `python3 -c check` succeeds; says why not otherwise.
fn python_has(check: &str, what: &str) -> bool {
    match Command::new("python3").args(["-c", check]).output() {
        Err(_) => {
            eprintln!("skipped: python3 is not installed");
            false
        }
        Ok(out) if !out.status.success() => {
            eprintln!("skipped: {what} is not installed for python3");
            false
        }
        Ok(_) => true,
    }
}

/// Where the npm packages are, if node and every one of `packages` are
/// installed there (`.ci/run` installs them in `tests/clients`).
fn node_modules(packages: &[&str]) -> Option<PathBuf> {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("skipped: node is not installed");
        return None;
    }
    let modules = clients_dir().join("node_modules");
    for package in packages {
        if !modules.join(package).exists() {
            eprintln!(
                "skipped: the npm package {package} is not installed in {}",
                modules.display()
            );
            return None;
        }
    }
    Some(modules)
}

#[test]
fn redis_py_locks_and_registered_scripts_work() {
    if !python_has("import redis.lock", "redis-py") {
        return;
    }
    let server = TestServer::start();
    let script = clients_dir().join("redis_py_locks.py");
    run(
        "python3",
        &[script.to_str().unwrap(), &server.port.to_string()],
        None,
    );
}

#[test]
fn node_redlock_locks_over_three_servers() {
    let Some(modules) = node_modules(&["redlock", "ioredis"]) else {
        return;
    };
    let servers = [
        TestServer::start(),
        TestServer::start(),
        TestServer::start(),
    ];
    let ports: Vec<String> = servers.iter().map(|s| s.port.to_string()).collect();
    let script = clients_dir().join("redlock.js");
    let mut args = vec![script.to_str().unwrap()];
    args.extend(ports.iter().map(String::as_str));
    run("node", &args, Some(&modules));
}

#[test]
fn ioredis_define_command_runs_scripts() {
    let Some(modules) = node_modules(&["ioredis"]) else {
        return;
    };
    let server = TestServer::start();
    let script = clients_dir().join("ioredis_define.js");
    run(
        "node",
        &[script.to_str().unwrap(), &server.port.to_string()],
        Some(&modules),
    );
}
