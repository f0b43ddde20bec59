//! Protected mode against the real server, with a real non-loopback peer: a
//! network namespace joined to this one by a veth pair. The server listens on
//! loopback and on the host end of the pair; a client inside the namespace
//! connects from the other end. Needs root (to create the namespace): without
//! it the tests say why and skip. Traffic stays on loopback and the pair.

use std::process::{Command, Output};

use ringkv_tests::{query as q, request, TestServer};

/// A namespace and veth pair made for one test run, removed when dropped.
struct Netns {
    name: String,
    host_if: String,
    /// The host end's address, where the server listens.
    host_ip: String,
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("run ip")
}

fn must(args: &[&str]) {
    let out = ip(args);
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

impl Netns {
    /// Creates the namespace and pair, or says why it cannot.
    fn create(tag: &str) -> Result<Netns, String> {
        if !is_root() {
            return Err("not running as root".to_string());
        }
        // Unique per test and run, so parallel runs never share names or subnets;
        // the /30 inside 10.201.0.0/16 comes from the pid.
        let pid = std::process::id();
        let index = (pid as usize * 2 + usize::from(tag == "b")) % 16_384;
        let (third, fourth) = (index / 64, index % 64 * 4);
        let name = format!("ringkv-{tag}{pid}");
        let out = ip(&["netns", "add", &name]);
        if !out.status.success() {
            return Err(format!(
                "`ip netns add` is not permitted here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // From here on, dropping the guard removes whatever was made.
        let netns = Netns {
            name,
            host_if: format!("rkv{tag}h{pid}"),
            host_ip: format!("10.201.{third}.{}", fourth + 1),
        };
        let peer_if = format!("rkv{tag}n{pid}");
        let peer_ip = format!("10.201.{third}.{}", fourth + 2);
        let (host_if, ns) = (netns.host_if.as_str(), netns.name.as_str());
        must(&[
            "link", "add", host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        must(&["link", "set", &peer_if, "netns", ns]);
        must(&[
            "addr",
            "add",
            &format!("{}/30", netns.host_ip),
            "dev",
            host_if,
        ]);
        must(&["link", "set", host_if, "up"]);
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns, "ip"];
            all.extend_from_slice(args);
            must(&all);
        };
        in_ns(&["addr", "add", &format!("{peer_ip}/30"), "dev", &peer_if]);
        in_ns(&["link", "set", &peer_if, "up"]);
        Ok(netns)
    }

    /// Sends `commands` from inside the namespace to the server on `port` and
    /// returns the first `replies` reply lines (fewer if the server closed).
    fn call(&self, port: u16, commands: &[&[&str]], replies: usize) -> Vec<String> {
        let requests: Vec<u8> = commands
            .iter()
            .flat_map(|args| {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                request(&args)
            })
            .collect();
        // bash's /dev/tcp is the client: nothing to install in the namespace.
        // A refused client may find the connection closed before it writes.
        let script = r#"trap '' PIPE
exec 3<>"/dev/tcp/$HOST/$PORT" || exit 3
printf '%s' "$REQUESTS" >&3
for _ in $(seq "$REPLIES"); do
    IFS= read -r -t 10 line <&3 || break
    printf '%s\n' "${line%$'\r'}"
done"#;
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "timeout", "20", "bash", "-c"])
            .arg(script)
            .env("HOST", &self.host_ip)
            .env("PORT", port.to_string())
            .env(
                "REQUESTS",
                String::from_utf8(requests).expect("text commands"),
            )
            .env("REPLIES", replies.to_string())
            .output()
            .expect("run the client in the namespace");
        assert!(out.status.success(), "client in namespace failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the peer end, and with it the pair;
        // the host end is deleted too in case the move into the namespace failed.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// The namespace for a test, or `None` after printing why the test skips.
fn namespace(test: &str, tag: &str) -> Option<Netns> {
    match Netns::create(tag) {
        Ok(netns) => Some(netns),
        Err(why) => {
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

const DENIED: &str =
    "-DENIED Redis is running in protected mode because protected mode is enabled \
and no password is set for the default user.";

#[test]
fn a_remote_client_is_denied_in_protected_mode_and_served_once_it_is_off() {
    let Some(netns) = namespace("protected mode", "a") else {
        return;
    };
    let server = TestServer::start_with(&["--bind", &netns.host_ip]);
    // The refusal comes unasked, at connection; asking nothing avoids racing it
    // with a reset.
    let reply = netns.call(server.port, &[], 2);
    assert_eq!(reply.len(), 1, "one error line, then closed: {reply:?}");
    assert!(reply[0].starts_with(DENIED), "{reply:?}");

    // Loopback clients are served all along.
    let mut local = server.connect();
    assert_eq!(q::<String>(&mut local, &["PING"]), "PONG");
    let stats: String = q(&mut local, &["INFO", "stats"]);
    assert!(stats.contains("rejected_connections:1\r\n"), "{stats}");

    // Turning it off, as the error suggests, lets the remote client in.
    let _: () = q(&mut local, &["CONFIG", "SET", "protected-mode", "no"]);
    assert_eq!(netns.call(server.port, &[&["PING"]], 1), ["+PONG"]);
}

#[test]
fn a_remote_client_is_served_when_protected_mode_is_off_or_a_password_is_set() {
    let Some(netns) = namespace("protected mode", "b") else {
        return;
    };
    let off = TestServer::start_with(&["--bind", &netns.host_ip, "--protected-mode", "no"]);
    assert_eq!(netns.call(off.port, &[&["PING"]], 1), ["+PONG"]);

    let password = TestServer::start_with(&["--bind", &netns.host_ip, "--requirepass", "secret"]);
    assert_eq!(
        netns.call(
            password.port,
            &[&["PING"], &["AUTH", "secret"], &["PING"]],
            3
        ),
        ["-NOAUTH Authentication required.", "+OK", "+PONG"]
    );
}
