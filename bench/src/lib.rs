//! Load-harness helpers: start ringkv or Redis on a free loopback port, measure the
//! CPU time a server process spends, and run `redis-benchmark` against it.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringkv_server::memory;

pub mod cluster;
pub mod resp;
pub mod trace;

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// True if `program` runs.
pub fn have_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The workspace's release build of `ringkv-server`.
pub fn ringkv_release_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/release/ringkv-server")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("target/release/ringkv-server"))
}

/// A server process under load, killed when dropped.
pub struct ServerProcess {
    /// Display name ("ringkv", "redis").
    pub name: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

/// Binds every thread of process `pid` to the CPUs in `cpus` (a `taskset`
/// list such as "0" or "1-3").
pub fn pin(pid: u32, cpus: &str) -> std::io::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()?;
    match status.success() {
        true => Ok(()),
        false => Err(std::io::Error::other(format!(
            "taskset -c {cpus} {pid} failed"
        ))),
    }
}

impl ServerProcess {
    /// Starts `program args... ` (which must listen on `port`) and waits until it
    /// accepts connections.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[String],
        port: u16,
    ) -> std::io::Result<ServerProcess> {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut server = ServerProcess {
            name: name.to_string(),
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || server.child.try_wait()?.is_some() {
                return Err(std::io::Error::other(format!(
                    "{name} did not start on port {port}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Starts ringkv from `binary` on a free port.
    pub fn ringkv(binary: &Path, extra: &[&str]) -> std::io::Result<ServerProcess> {
        let port = free_port();
        let mut args = vec![
            "--port".to_string(),
            port.to_string(),
            "--loglevel".into(),
            "warning".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        ServerProcess::start("ringkv", binary, &args, port)
    }

    /// Starts `redis-server` on a free port without persistence.
    pub fn redis(extra: &[&str]) -> std::io::Result<ServerProcess> {
        let port = free_port();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        ServerProcess::start("redis", Path::new("redis-server"), &args, port)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) the process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let cpu = memory::cpu_of(Some(self.pid()));
        cpu.user + cpu.system
    }

    /// CPU seconds the process and its reaped children (Redis's forked RDB
    /// writers) have used so far.
    pub fn cpu_seconds_with_children(&self) -> f64 {
        let cpu = memory::cpu_of(Some(self.pid()));
        cpu.user + cpu.system + cpu.children
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident set size in bytes of process `pid` so far (`VmHWM` in
/// `/proc/<pid>/status`); 0 where unavailable.
pub fn peak_rss_of(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:") * 1024
}

/// Resident set size in bytes of process `pid` now (`VmRSS`); 0 where unavailable.
pub fn rss_of(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:") * 1024
}

/// Resets process `pid`'s peak resident set size (`VmHWM`) to its current
/// size, so that [`peak_rss_of`] then reports the peak since this call.
pub fn reset_peak_rss(pid: u32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// A `kB` field of `/proc/<pid>/status`; 0 where unavailable.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
}

/// CPU seconds used by this process's finished (waited-for) children, such as the
/// `redis-benchmark` runs.
pub fn children_cpu_seconds() -> f64 {
    memory::cpu_of(None).children
}

/// One `redis-benchmark` result line.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// Test name as redis-benchmark prints it (`SET`, `MSET (10 keys)`).
    pub test: String,
    /// Requests per second.
    pub rps: f64,
}

/// Runs `redis-benchmark --csv` with `args` against `port` and parses its results.
pub fn redis_benchmark(port: u16, args: &[String]) -> std::io::Result<Vec<BenchResult>> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--csv"])
        .args(args)
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other("redis-benchmark failed"));
    }
    Ok(parse_csv(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses redis-benchmark's CSV (`"test","rps",...`), skipping the header.
pub fn parse_csv(text: &str) -> Vec<BenchResult> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split("\",\"").map(|f| f.trim_matches('"'));
            let test = fields.next()?.to_string();
            let rps = fields.next()?.parse().ok()?;
            Some(BenchResult { test, rps })
        })
        .collect()
}

/// The median of `values` (0 for none).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// `median (max)` of `values` in seconds, with the runs that timed out
/// (`None`) counted.
pub fn median_max(values: &[Option<f64>]) -> String {
    let mut done: Vec<f64> = values.iter().flatten().copied().collect();
    let missed = values.len() - done.len();
    if done.is_empty() {
        return format!("timed out ({missed}/{})", values.len());
    }
    let max = done.iter().copied().fold(0.0, f64::max);
    let mut text = format!("{:.2} ({:.2})", median(&mut done), max);
    if missed > 0 {
        text.push_str(&format!(", {missed} timed out"));
    }
    text
}

/// Appends `args` as one RESP command.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Sends RESP `commands` to the server on `port` with `redis-cli --pipe`, which
/// streams them and waits for every reply.
pub fn redis_cli_pipe(port: u16, commands: &[u8]) -> std::io::Result<()> {
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?
        .write_all(commands)?;
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("redis-cli --pipe failed"))
    }
}

/// A field of `INFO` (e.g. `used_memory`) from the server on `port`, via redis-cli.
pub fn info_field(port: u16, field: &str) -> Option<u64> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "all"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\"\n\"SET\",\"123456.79\",\"0.2\"\n\"MSET (10 keys)\",\"1000.00\",\"1\"\n";
        assert_eq!(
            parse_csv(csv),
            [
                BenchResult {
                    test: "SET".into(),
                    rps: 123456.79
                },
                BenchResult {
                    test: "MSET (10 keys)".into(),
                    rps: 1000.0
                }
            ]
        );
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
