//! Server configuration: a TOML file and command-line flags (flags win), merged once
//! at start, validated, then held in [`LiveConfig`] where `CONFIG SET` can change
//! what may change at runtime.
//!
//! Names follow Redis wherever Redis has the setting (`port`, `requirepass`,
//! `proto-max-bulk-len`, ...), in the file and as flags.

mod live;
mod units;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

pub use crate::eviction::Policy;
pub use live::{ClientClass, ConfigSetError, LiveConfig, LogLevelHook};
pub use units::MemSize;

/// Log verbosity, with Redis's level names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, for development.
    Debug,
    /// Many rarely useful details.
    Verbose,
    /// What a production log wants (the default).
    Notice,
    /// Only warnings and errors.
    Warning,
    /// Nothing.
    Nothing,
}

impl LogLevel {
    /// The name used in files, flags and `CONFIG GET`.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Verbose => "verbose",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Nothing => "nothing",
        }
    }

    /// Parses a level name.
    pub fn parse(name: &str) -> Option<Self> {
        <Self as clap::ValueEnum>::from_str(name, true).ok()
    }
}

/// Who may run `DEBUG` (Redis's `enable-debug-command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DebugAccess {
    /// Nobody (the default).
    No,
    /// Every client.
    Yes,
    /// Clients on loopback only.
    Local,
}

impl DebugAccess {
    /// The name used in files, flags and `CONFIG GET`.
    pub fn name(self) -> &'static str {
        match self {
            DebugAccess::No => "no",
            DebugAccess::Yes => "yes",
            DebugAccess::Local => "local",
        }
    }
}

/// The settings file, and the merged result of file and flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Addresses to listen on.
    pub bind: Vec<String>,
    /// TCP port for clients.
    pub port: u16,
    /// Connections the kernel queues for `accept` per listener (capped by
    /// `/proc/sys/net/core/somaxconn`).
    pub tcp_backlog: u32,
    /// Password of the default user; clients must `AUTH` when set.
    pub requirepass: Option<String>,
    /// Most clients connected at once; further ones are refused.
    pub maxclients: u64,
    /// Close a client idle for this many seconds (0: never).
    pub timeout: u64,
    /// Longest single argument (bulk string) a client may send.
    pub proto_max_bulk_len: MemSize,
    /// Most bytes buffered for one client's incomplete request.
    pub client_query_buffer_limit: MemSize,
    /// Log verbosity.
    pub loglevel: LogLevel,
    /// Without a password, refuse clients that are not on loopback.
    pub protected_mode: bool,
    /// Worker threads (0: one per CPU but one, at least one).
    pub threads: usize,
    /// Keyspace events to publish, in Redis's letters (`Ex`, `KEA`, ...).
    pub notify_keyspace_events: String,
    /// Output-buffer limits per client class, as in redis.conf
    /// (`pubsub 32mb 8mb 60`: hard limit, soft limit, seconds over the soft one).
    pub client_output_buffer_limit: String,
    /// Memory limit (0: none); over it, writes evict keys or fail.
    pub maxmemory: MemSize,
    /// Which keys go when `maxmemory` is reached.
    pub maxmemory_policy: Policy,
    /// Keys sampled per eviction round (1 to 64).
    pub maxmemory_samples: u32,
    /// How slowly LFU counters grow.
    pub lfu_log_factor: u32,
    /// Minutes for an LFU counter to lose one point (0: never).
    pub lfu_decay_time: u32,
    /// Who may run `DEBUG`, whose subcommands exist for tests (no, yes, local).
    pub enable_debug_command: DebugAccess,
    /// Serve a share of the 16384 slots as one master of a cluster.
    pub cluster_enabled: bool,
    /// Where this node keeps its node id.
    pub cluster_config_file: String,
    /// Cluster bus port (0: the client port + 10000).
    pub cluster_port: u16,
    /// The cluster's masters, each `<40-hex node id> <ip>:<port>`, this node
    /// included (static membership).
    pub cluster_nodes: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: vec!["127.0.0.1".to_string()],
            port: 6379,
            tcp_backlog: 511,
            requirepass: None,
            maxclients: 10_000,
            timeout: 0,
            proto_max_bulk_len: MemSize(512 << 20),
            client_query_buffer_limit: MemSize(1 << 30),
            loglevel: LogLevel::Notice,
            protected_mode: true,
            threads: 0,
            notify_keyspace_events: String::new(),
            client_output_buffer_limit: DEFAULT_OUTPUT_LIMIT.to_string(),
            maxmemory: MemSize(0),
            maxmemory_policy: Policy::NoEviction,
            maxmemory_samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            enable_debug_command: DebugAccess::No,
            cluster_enabled: false,
            cluster_config_file: "nodes.conf".to_string(),
            cluster_port: 0,
            cluster_nodes: Vec::new(),
        }
    }
}

const DEFAULT_OUTPUT_LIMIT: &str = "normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60";

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("expected yes or no, got '{s}'")),
    }
}

/// Command-line flags. Every setting of [`Config`] has a flag that overrides the file.
#[derive(Debug, Parser)]
#[command(
    name = "ringkv-server",
    version,
    about = "A Redis-protocol cache and lock server"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Addresses to listen on.
    #[arg(long, num_args = 1.., value_name = "ADDR")]
    pub bind: Option<Vec<String>>,
    /// TCP port for clients.
    #[arg(long)]
    pub port: Option<u16>,
    /// Connections queued for accept per listener (capped by somaxconn).
    #[arg(long)]
    pub tcp_backlog: Option<u32>,
    /// Password of the default user.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// Most clients connected at once.
    #[arg(long)]
    pub maxclients: Option<u64>,
    /// Idle client timeout in seconds (0: never).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Longest single argument, e.g. 512mb.
    #[arg(long)]
    pub proto_max_bulk_len: Option<MemSize>,
    /// Most bytes buffered for one incomplete request, e.g. 1gb.
    #[arg(long)]
    pub client_query_buffer_limit: Option<MemSize>,
    /// Log verbosity.
    #[arg(long, value_enum, ignore_case = true)]
    pub loglevel: Option<LogLevel>,
    /// yes or no: refuse non-loopback clients when no password is set.
    #[arg(long, value_parser = parse_yes_no, value_name = "yes|no")]
    pub protected_mode: Option<bool>,
    /// Worker threads (0: one per CPU but one, at least one).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Keyspace events to publish, e.g. Ex or KEA.
    #[arg(long, value_name = "CLASSES", allow_hyphen_values = true)]
    pub notify_keyspace_events: Option<String>,
    /// Output-buffer limits, e.g. "pubsub 32mb 8mb 60".
    #[arg(long, value_name = "LIMITS")]
    pub client_output_buffer_limit: Option<String>,
    /// Memory limit, e.g. 100mb (0: none).
    #[arg(long)]
    pub maxmemory: Option<MemSize>,
    /// Eviction policy when maxmemory is reached.
    #[arg(long, value_enum, ignore_case = true)]
    pub maxmemory_policy: Option<Policy>,
    /// Keys sampled per eviction round (1 to 64).
    #[arg(long)]
    pub maxmemory_samples: Option<u32>,
    /// How slowly LFU counters grow.
    #[arg(long)]
    pub lfu_log_factor: Option<u32>,
    /// Minutes for an LFU counter to lose one point (0: never).
    #[arg(long)]
    pub lfu_decay_time: Option<u32>,
    /// Who may run DEBUG: no, yes or local (loopback clients).
    #[arg(long, value_enum, ignore_case = true)]
    pub enable_debug_command: Option<DebugAccess>,
    /// yes or no: run as a master of a cluster.
    #[arg(long, value_parser = parse_yes_no, value_name = "yes|no")]
    pub cluster_enabled: Option<bool>,
    /// File holding this node's id.
    #[arg(long, value_name = "FILE")]
    pub cluster_config_file: Option<String>,
    /// Cluster bus port (0: port + 10000).
    #[arg(long)]
    pub cluster_port: Option<u16>,
    /// The cluster's masters, each "<node id> <ip>:<port>".
    #[arg(long, num_args = 1.., value_name = "NODE")]
    pub cluster_nodes: Option<Vec<String>>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`] (unknown keys included).
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The file named by `--config` (or defaults), overridden by the other flags,
    /// then validated.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_flags(cli);
        config.validate()?;
        Ok(config)
    }

    fn apply_flags(&mut self, cli: &Cli) {
        let c = cli;
        if let Some(v) = &c.bind {
            self.bind = v
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(String::from)
                .collect();
        }
        if let Some(v) = c.port {
            self.port = v;
        }
        if let Some(v) = c.tcp_backlog {
            self.tcp_backlog = v;
        }
        if let Some(v) = &c.requirepass {
            self.requirepass = Some(v.clone());
        }
        if let Some(v) = c.maxclients {
            self.maxclients = v;
        }
        if let Some(v) = c.timeout {
            self.timeout = v;
        }
        if let Some(v) = c.proto_max_bulk_len {
            self.proto_max_bulk_len = v;
        }
        if let Some(v) = c.client_query_buffer_limit {
            self.client_query_buffer_limit = v;
        }
        if let Some(v) = c.loglevel {
            self.loglevel = v;
        }
        if let Some(v) = c.protected_mode {
            self.protected_mode = v;
        }
        if let Some(v) = c.threads {
            self.threads = v;
        }
        if let Some(v) = &c.notify_keyspace_events {
            self.notify_keyspace_events = v.clone();
        }
        if let Some(v) = &c.client_output_buffer_limit {
            self.client_output_buffer_limit = v.clone();
        }
        if let Some(v) = c.maxmemory {
            self.maxmemory = v;
        }
        if let Some(v) = c.maxmemory_policy {
            self.maxmemory_policy = v;
        }
        if let Some(v) = c.maxmemory_samples {
            self.maxmemory_samples = v;
        }
        if let Some(v) = c.lfu_log_factor {
            self.lfu_log_factor = v;
        }
        if let Some(v) = c.lfu_decay_time {
            self.lfu_decay_time = v;
        }
        if let Some(v) = c.enable_debug_command {
            self.enable_debug_command = v;
        }
        if let Some(v) = c.cluster_enabled {
            self.cluster_enabled = v;
        }
        if let Some(v) = &c.cluster_config_file {
            self.cluster_config_file = v.clone();
        }
        if let Some(v) = c.cluster_port {
            self.cluster_port = v;
        }
        if let Some(v) = &c.cluster_nodes {
            self.cluster_nodes = v.clone();
        }
    }

    /// Checks ranges and consistency.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.bind.is_empty() {
            return invalid("bind needs at least one address");
        }
        for addr in &self.bind {
            if addr.parse::<IpAddr>().is_err() {
                return Err(ConfigError::Invalid(format!(
                    "bind address '{addr}' is not an IP address"
                )));
            }
        }
        if self.tcp_backlog > i32::MAX as u32 {
            return invalid("tcp-backlog must be at most 2147483647");
        }
        if self.maxclients == 0 {
            return invalid("maxclients must be at least 1");
        }
        if self.proto_max_bulk_len.0 < 1 << 20 {
            return invalid("proto-max-bulk-len must be 1mb or greater");
        }
        if self.client_query_buffer_limit.0 < 1 << 20 {
            return invalid("client-query-buffer-limit must be 1mb or greater");
        }
        if self.proto_max_bulk_len > self.client_query_buffer_limit {
            return invalid("proto-max-bulk-len can't be larger than client-query-buffer-limit");
        }
        if crate::notify::parse_flags(&self.notify_keyspace_events).is_none() {
            return invalid(
                "notify-keyspace-events: invalid event class character; use 'Ag$lshzxeKEtmdn'",
            );
        }
        if let Err(e) = live::parse_output_limit(&self.client_output_buffer_limit) {
            return Err(ConfigError::Invalid(format!(
                "client-output-buffer-limit: {e}"
            )));
        }
        if !(1..=64).contains(&self.maxmemory_samples) {
            return invalid("maxmemory-samples must be between 1 and 64");
        }
        if self.lfu_log_factor > i32::MAX as u32 || self.lfu_decay_time > i32::MAX as u32 {
            return invalid("lfu-log-factor and lfu-decay-time must be at most 2147483647");
        }
        if self.cluster_enabled {
            if let Err(e) = crate::cluster::parse_members(&self.cluster_nodes) {
                return Err(ConfigError::Invalid(format!("cluster-nodes: {e}")));
            }
        }
        if self.requirepass.as_deref() == Some("") {
            // An empty password means none, as in Redis.
            self.requirepass = None;
        }
        Ok(())
    }

    /// The keyspace event classes, as [`crate::notify`] flags (validated).
    fn notify_flags(&self) -> u32 {
        crate::notify::parse_flags(&self.notify_keyspace_events).unwrap_or(0)
    }

    /// Worker threads to start. By default one per CPU but one, at least one: the
    /// spare core runs the kernel's network processing and whatever shares the
    /// machine (Redis gives the same advice for its I/O threads).
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
            }
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("ringkv-server").chain(args.iter().copied()))
    }

    #[test]
    fn the_example_config_holds_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ringkv.example.toml");
        assert_eq!(Config::from_file(&path).unwrap(), Config::default());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("ringkv-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "port = 7000\ntimeout = 5\nproto-max-bulk-len = \"2mb\"\n",
        )
        .unwrap();
        let config = Config::load(&cli(&[
            "--config",
            path.to_str().unwrap(),
            "--port",
            "7001",
            "--tcp-backlog",
            "1024",
        ]))
        .unwrap();
        assert_eq!(config.port, 7001);
        assert_eq!(config.tcp_backlog, 1024);
        assert_eq!(config.timeout, 5);
        assert_eq!(config.proto_max_bulk_len, MemSize(2 << 20));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<Config>("prot = 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn inconsistent_limits_are_refused() {
        assert!(Config::load(&cli(&["--proto-max-bulk-len", "100"])).is_err());
        assert!(Config::load(&cli(&["--proto-max-bulk-len", "2gb"])).is_err());
        assert!(Config::load(&cli(&["--maxclients", "0"])).is_err());
        assert!(Config::load(&cli(&["--tcp-backlog", "2147483648"])).is_err());
        assert!(Config::load(&cli(&["--bind", "localhost"])).is_err());
        assert!(Config::load(&cli(&["--notify-keyspace-events", "Eq"])).is_err());
        assert!(Config::load(&cli(&["--client-output-buffer-limit", "pubsub 1mb"])).is_err());
        assert!(Config::load(&cli(&["--maxmemory-samples", "0"])).is_err());
        assert!(Cli::try_parse_from(["ringkv-server", "--maxmemory-policy", "lru"]).is_err());
        let policy = Config::load(&cli(&["--maxmemory-policy", "ALLKEYS-TINYLFU"])).unwrap();
        assert_eq!(policy.maxmemory_policy, Policy::AllkeysTinylfu);
    }

    #[test]
    fn events_and_output_limits_reach_the_live_config() {
        let config = Config::load(&cli(&[
            "--notify-keyspace-events",
            "Ex",
            "--client-output-buffer-limit",
            "pubsub 2mb 1mb 5",
        ]))
        .unwrap();
        let live = LiveConfig::new(&config, None);
        let get = |name: &[u8]| live.get(&[name])[0].1.clone();
        assert_eq!(get(b"notify-keyspace-events"), "xE");
        assert!(get(b"client-output-buffer-limit").ends_with("pubsub 2097152 1048576 5"));
        // Naming only another class leaves the pub/sub limits alone.
        live.set(&[(b"client-output-buffer-limit", b"normal 1mb 512kb 3")])
            .unwrap();
        let pubsub = live.output_limit(ClientClass::Pubsub);
        assert_eq!(
            (pubsub.hard, pubsub.soft, pubsub.soft_seconds),
            (2 << 20, 1 << 20, 5)
        );
        let normal = live.output_limit(ClientClass::Normal);
        assert_eq!(
            (normal.hard, normal.soft, normal.soft_seconds),
            (1 << 20, 512 << 10, 3)
        );
        assert_eq!(
            get(b"client-output-buffer-limit"),
            "normal 1048576 524288 3 slave 268435456 67108864 60 pubsub 2097152 1048576 5"
        );
    }

    #[test]
    fn redis_style_flags_parse() {
        let config = Config::load(&cli(&[
            "--protected-mode",
            "no",
            "--loglevel",
            "WARNING",
            "--bind",
            "127.0.0.1 ::1",
        ]))
        .unwrap();
        assert!(!config.protected_mode);
        assert_eq!(config.loglevel, LogLevel::Warning);
        assert_eq!(config.bind, ["127.0.0.1", "::1"]);
    }
}
