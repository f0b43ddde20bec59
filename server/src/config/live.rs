//! The configuration while the server runs: what `CONFIG GET` shows and `CONFIG SET`
//! changes. Values read on hot paths are atomics, so reading them costs nothing and
//! never contends.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Config, DebugAccess, LogLevel, MemSize, Policy};
use crate::clients::OutputLimit;
use crate::eviction::Settings;
use crate::keyspace::access::Tracking;
use crate::keyspace::types::EncodingLimits;
use crate::util::glob::glob_match;

/// Called when `loglevel` changes, to reconfigure logging.
pub type LogLevelHook = Box<dyn Fn(LogLevel) + Send + Sync>;

/// How a threshold is written and bounded: Redis's checks and messages.
#[derive(Debug, Clone, Copy)]
enum Range {
    /// An integer from 0 up.
    Count,
    /// A size, optionally with a unit (`4kb`).
    Memory,
    /// An integer within these bounds.
    Int(i64, i64),
}

/// Redis's encoding thresholds: accepted, shown and changeable, so tools that tune
/// them work unchanged.
const TUNABLES: &[(&str, &[&str], i64, Range)] = &[
    (
        "hash-max-listpack-entries",
        &["hash-max-ziplist-entries"],
        128,
        Range::Count,
    ),
    (
        "hash-max-listpack-value",
        &["hash-max-ziplist-value"],
        64,
        Range::Memory,
    ),
    ("set-max-intset-entries", &[], 512, Range::Count),
    ("set-max-listpack-entries", &[], 128, Range::Count),
    ("set-max-listpack-value", &[], 64, Range::Memory),
    (
        "zset-max-listpack-entries",
        &["zset-max-ziplist-entries"],
        128,
        Range::Count,
    ),
    (
        "zset-max-listpack-value",
        &["zset-max-ziplist-value"],
        64,
        Range::Memory,
    ),
    (
        "list-max-listpack-size",
        &["list-max-ziplist-size"],
        -2,
        Range::Int(i32::MIN as i64, i32::MAX as i64),
    ),
    (
        "list-compress-depth",
        &[],
        0,
        Range::Int(0, i32::MAX as i64),
    ),
    ("stream-node-max-bytes", &[], 4096, Range::Memory),
    ("stream-node-max-entries", &[], 100, Range::Count),
    ("hll-sparse-max-bytes", &[], 3000, Range::Memory),
];

/// A threshold's new value, checked as Redis checks it.
fn parse_tunable(value: &str, range: Range) -> Result<i64, String> {
    let (min, max) = match range {
        Range::Count => (0, i64::MAX),
        Range::Int(min, max) => (min, max),
        Range::Memory => {
            return parse_size(value, 0, SIZE_MAX).map(|size| size as i64);
        }
    };
    let n = crate::protocol::number::parse_i64(value.as_bytes())
        .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
    if n < min || n > max {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(n)
}

/// Live configuration.
pub struct LiveConfig {
    bind: Vec<String>,
    port: u16,
    tcp_backlog: u32,
    threads: usize,
    requirepass: RwLock<Option<String>>,
    has_password: AtomicBool,
    maxclients: AtomicU64,
    timeout: AtomicU64,
    proto_max_bulk_len: AtomicU64,
    query_buffer_limit: AtomicU64,
    protected_mode: AtomicBool,
    loglevel: Mutex<LogLevel>,
    on_loglevel: Option<LogLevelHook>,
    tunables: Vec<AtomicI64>,
    notify_flags: AtomicU32,
    /// Hard bytes, soft bytes and soft seconds per [`ClientClass`].
    output_limits: [[AtomicU64; 3]; 3],
    maxmemory: AtomicU64,
    /// Index of the policy in [`Policy::all`].
    policy: AtomicU8,
    samples: AtomicU64,
    lfu_log_factor: AtomicU64,
    lfu_decay_time: AtomicU64,
    debug_access: DebugAccess,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Why `CONFIG SET` refused a parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigSetError {
    /// No such parameter.
    #[error("Unknown option or number of arguments for CONFIG SET - '{0}'")]
    Unknown(String),
    /// The parameter exists but the value is refused.
    #[error("CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    Invalid {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
}

/// A parsed value, applied only after every parameter of a `CONFIG SET` parsed.
enum Setting {
    Number(u64),
    Flag(bool),
    Text(Option<String>),
    Level(LogLevel),
    Tunable(usize, i64),
    Limits(ClassLimits),
    Policy(Policy),
}

type Getter = fn(&LiveConfig) -> String;
type Parse = fn(&LiveConfig, &str) -> Result<Setting, String>;
type Apply = fn(&LiveConfig, Setting);

struct Param {
    name: &'static str,
    get: Getter,
    /// `None` for parameters fixed at start.
    set: Option<(Parse, Apply)>,
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// An integer as Redis reads one: no sign but minus, no spaces, no leading zero.
fn parse_number(s: &str) -> Result<i64, String> {
    crate::protocol::number::parse_i64(s.as_bytes())
        .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())
}

fn parse_flag(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".to_string()),
    }
}

/// The client classes of `client-output-buffer-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientClass {
    /// Ordinary clients.
    Normal,
    /// Replicas (kept for the replication work; shown and settable).
    Replica,
    /// Clients subscribed to pub/sub channels or patterns.
    Pubsub,
}

impl ClientClass {
    const ALL: [ClientClass; 3] = [
        ClientClass::Normal,
        ClientClass::Replica,
        ClientClass::Pubsub,
    ];

    /// The name `CONFIG GET` prints (Redis still prints `slave`).
    fn name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "slave",
            ClientClass::Pubsub => "pubsub",
        }
    }

    /// Redis's defaults: normal clients unlimited, replicas 256mb 64mb 60,
    /// subscribers 32mb 8mb 60.
    fn default_limit(self) -> OutputLimit {
        let (hard, soft, soft_seconds) = match self {
            ClientClass::Normal => (0, 0, 0),
            ClientClass::Replica => (256 << 20, 64 << 20, 60),
            ClientClass::Pubsub => (32 << 20, 8 << 20, 60),
        };
        OutputLimit {
            hard,
            soft,
            soft_seconds,
        }
    }
}

/// Limits per class as a `client-output-buffer-limit` value names them; classes
/// it does not name are `None` (left as they are).
pub(super) type ClassLimits = [Option<OutputLimit>; 3];

/// Parses Redis's `client-output-buffer-limit` value: `<class> <hard> <soft>
/// <seconds>`, repeated.
pub(super) fn parse_output_limit(s: &str) -> Result<ClassLimits, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".to_string());
    }
    let mut limits = [None; 3];
    for class in words.chunks(4) {
        let size = |w: &str| w.parse::<MemSize>().map(|m| m.0).map_err(|e| e.to_string());
        let limit = OutputLimit {
            hard: size(class[1])?,
            soft: size(class[2])?,
            soft_seconds: class[3].parse::<u64>().map_err(|e| e.to_string())?,
        };
        let index = match class[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            other => {
                return Err(format!(
                    "Invalid client class specified in buffer limit configuration: {other}"
                ))
            }
        };
        limits[index] = Some(limit);
    }
    Ok(limits)
}

/// Every class's limits: those `s` names, Redis's defaults for the others.
pub(super) fn output_limits_or_default(s: &str) -> [OutputLimit; 3] {
    let named = parse_output_limit(s).unwrap_or_default();
    ClientClass::ALL.map(|class| named[class as usize].unwrap_or(class.default_limit()))
}

fn parse_range(s: &str, low: u64, high: u64) -> Result<Setting, String> {
    match u64::try_from(parse_number(s)?) {
        Ok(n) if (low..=high).contains(&n) => Ok(Setting::Number(n)),
        _ => Err(format!(
            "argument must be between {low} and {high} inclusive"
        )),
    }
}

/// A size with an optional unit (`4kb`), within `low..=high`.
fn parse_size(s: &str, low: u64, high: u64) -> Result<u64, String> {
    let size: MemSize = s
        .parse()
        .map_err(|_| "argument must be a memory value".to_string())?;
    if !(low..=high).contains(&size.0) {
        return Err(format!(
            "argument must be between {low} and {high} inclusive"
        ));
    }
    Ok(size.0)
}

/// Largest size Redis takes for most memory settings (`LLONG_MAX`).
const SIZE_MAX: u64 = i64::MAX as u64;

const PARAMS: &[Param] = &[
    Param {
        name: "bind",
        get: |c| c.bind.join(" "),
        set: None,
    },
    Param {
        name: "port",
        get: |c| c.port.to_string(),
        set: None,
    },
    Param {
        name: "tcp-backlog",
        get: |c| c.tcp_backlog.to_string(),
        set: None,
    },
    Param {
        name: "threads",
        get: |c| c.threads.to_string(),
        set: None,
    },
    Param {
        name: "requirepass",
        get: |c| c.requirepass.read().clone().unwrap_or_default(),
        set: Some((
            |_, s| Ok(Setting::Text((!s.is_empty()).then(|| s.to_string()))),
            |c, v| {
                if let Setting::Text(p) = v {
                    c.has_password.store(p.is_some(), Relaxed);
                    *c.requirepass.write() = p;
                }
            },
        )),
    },
    Param {
        name: "maxclients",
        get: |c| c.maxclients().to_string(),
        set: Some((
            |_, s| parse_range(s, 1, u64::from(u32::MAX)),
            |c, v| {
                if let Setting::Number(n) = v {
                    c.maxclients.store(n, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "timeout",
        get: |c| c.timeout_secs().to_string(),
        set: Some((
            |_, s| parse_range(s, 0, i32::MAX as u64),
            |c, v| {
                if let Setting::Number(n) = v {
                    c.timeout.store(n, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "proto-max-bulk-len",
        get: |c| c.proto_max_bulk_len().to_string(),
        set: Some((
            |c, s| {
                let n = parse_size(s, 1 << 20, SIZE_MAX)?;
                if n > c.query_buffer_limit() {
                    return Err("can't be larger than client-query-buffer-limit".to_string());
                }
                Ok(Setting::Number(n))
            },
            |c, v| {
                if let Setting::Number(n) = v {
                    c.proto_max_bulk_len.store(n, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "client-query-buffer-limit",
        get: |c| c.query_buffer_limit().to_string(),
        set: Some((
            |c, s| {
                let n = parse_size(s, 1 << 20, SIZE_MAX)?;
                if n < c.proto_max_bulk_len() {
                    return Err("can't be smaller than proto-max-bulk-len".to_string());
                }
                Ok(Setting::Number(n))
            },
            |c, v| {
                if let Setting::Number(n) = v {
                    c.query_buffer_limit.store(n, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "protected-mode",
        get: |c| yes_no(c.protected_mode()),
        set: Some((
            |_, s| parse_flag(s).map(Setting::Flag),
            |c, v| {
                if let Setting::Flag(b) = v {
                    c.protected_mode.store(b, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "loglevel",
        get: |c| c.loglevel.lock().name().to_string(),
        set: Some((
            |_, s| {
                LogLevel::parse(s)
                    .map(Setting::Level)
                    .ok_or_else(|| "argument(s) must be one of the following: debug, verbose, notice, warning, nothing".to_string())
            },
            |c, v| {
                if let Setting::Level(level) = v {
                    *c.loglevel.lock() = level;
                    if let Some(hook) = &c.on_loglevel {
                        hook(level);
                    }
                }
            },
        )),
    },
    // Persistence is not part of ringkv; these answer as a Redis without it would,
    // which is what redis-benchmark and other tools ask for.
    Param {
        name: "save",
        get: |_| String::new(),
        set: Some((
            |_, s| match s {
                "" => Ok(Setting::Flag(false)),
                _ => Err("ringkv has no persistence; only \"\" is accepted".to_string()),
            },
            |_, _| {},
        )),
    },
    Param {
        name: "appendonly",
        get: |_| "no".to_string(),
        set: Some((
            |_, s| match parse_flag(s)? {
                false => Ok(Setting::Flag(false)),
                true => Err("ringkv has no persistence; only 'no' is accepted".to_string()),
            },
            |_, _| {},
        )),
    },
    Param {
        name: "notify-keyspace-events",
        get: |c| crate::notify::format_flags(c.notify_flags()),
        set: Some((
            |_, s| {
                crate::notify::parse_flags(s)
                    .map(|f| Setting::Number(u64::from(f)))
                    .ok_or_else(|| {
                        "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string()
                    })
            },
            |c, v| {
                if let Setting::Number(n) = v {
                    c.notify_flags.store(n as u32, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "client-output-buffer-limit",
        get: |c| {
            let classes = ClientClass::ALL.map(|class| {
                let l = c.output_limit(class);
                format!("{} {} {} {}", class.name(), l.hard, l.soft, l.soft_seconds)
            });
            classes.join(" ")
        },
        set: Some((
            |_, s| parse_output_limit(s).map(Setting::Limits),
            |c, v| {
                if let Setting::Limits(limits) = v {
                    for (stored, limit) in c.output_limits.iter().zip(limits) {
                        if let Some(l) = limit {
                            stored[0].store(l.hard, Relaxed);
                            stored[1].store(l.soft, Relaxed);
                            stored[2].store(l.soft_seconds, Relaxed);
                        }
                    }
                }
            },
        )),
    },
    Param {
        name: "maxmemory",
        get: |c| c.maxmemory().to_string(),
        set: Some((
            |_, s| parse_size(s, 0, u64::MAX).map(Setting::Number),
            |c, v| {
                if let Setting::Number(n) = v {
                    c.maxmemory.store(n, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "maxmemory-policy",
        get: |c| c.policy().name().to_string(),
        set: Some((
            |_, s| {
                Policy::parse(s).map(Setting::Policy).ok_or_else(|| {
                    let names: Vec<&str> = Policy::all().iter().map(|p| p.name()).collect();
                    format!(
                        "argument(s) must be one of the following: {}",
                        names.join(", ")
                    )
                })
            },
            |c, v| {
                if let Setting::Policy(p) = v {
                    c.policy.store(policy_index(p), Relaxed);
                }
            },
        )),
    },
    Param {
        name: "maxmemory-samples",
        get: |c| c.samples.load(Relaxed).to_string(),
        set: Some((
            |_, s| parse_range(s, 1, 64),
            |c, v| {
                if let Setting::Number(n) = v {
                    c.samples.store(n, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "lfu-log-factor",
        get: |c| c.lfu_log_factor.load(Relaxed).to_string(),
        set: Some((
            |_, s| parse_range(s, 0, i32::MAX as u64),
            |c, v| {
                if let Setting::Number(n) = v {
                    c.lfu_log_factor.store(n, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "lfu-decay-time",
        get: |c| c.lfu_decay_time.load(Relaxed).to_string(),
        set: Some((
            |_, s| parse_range(s, 0, i32::MAX as u64),
            |c, v| {
                if let Setting::Number(n) = v {
                    c.lfu_decay_time.store(n, Relaxed);
                }
            },
        )),
    },
    Param {
        name: "enable-debug-command",
        get: |c| c.debug_access.name().to_string(),
        set: None,
    },
    Param {
        name: "databases",
        get: |_| "1".to_string(),
        set: None,
    },
];

impl LiveConfig {
    /// The runtime view of a validated start-up configuration.
    pub fn new(config: &Config, on_loglevel: Option<LogLevelHook>) -> Self {
        LiveConfig {
            bind: config.bind.clone(),
            port: config.port,
            tcp_backlog: config.tcp_backlog,
            threads: config.worker_threads(),
            has_password: AtomicBool::new(config.requirepass.is_some()),
            requirepass: RwLock::new(config.requirepass.clone()),
            maxclients: AtomicU64::new(config.maxclients),
            timeout: AtomicU64::new(config.timeout),
            proto_max_bulk_len: AtomicU64::new(config.proto_max_bulk_len.0),
            query_buffer_limit: AtomicU64::new(config.client_query_buffer_limit.0),
            protected_mode: AtomicBool::new(config.protected_mode),
            loglevel: Mutex::new(config.loglevel),
            on_loglevel,
            tunables: TUNABLES.iter().map(|t| AtomicI64::new(t.2)).collect(),
            notify_flags: AtomicU32::new(config.notify_flags()),
            output_limits: output_limits_or_default(&config.client_output_buffer_limit)
                .map(|l| [l.hard, l.soft, l.soft_seconds].map(AtomicU64::new)),
            maxmemory: AtomicU64::new(config.maxmemory.0),
            policy: AtomicU8::new(policy_index(config.maxmemory_policy)),
            samples: AtomicU64::new(u64::from(config.maxmemory_samples)),
            lfu_log_factor: AtomicU64::new(u64::from(config.lfu_log_factor)),
            lfu_decay_time: AtomicU64::new(u64::from(config.lfu_decay_time)),
            debug_access: config.enable_debug_command,
        }
    }

    /// `maxmemory` in bytes (0: no limit).
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Relaxed)
    }

    /// `maxmemory-policy`.
    pub fn policy(&self) -> Policy {
        Policy::all()[usize::from(self.policy.load(Relaxed))]
    }

    /// The eviction policy and sample size in force.
    pub fn eviction(&self) -> Settings {
        Settings {
            policy: self.policy(),
            samples: self.samples.load(Relaxed) as usize,
        }
    }

    /// How key accesses must be recorded for the policy in force.
    pub fn tracking(&self) -> Tracking {
        let policy = self.policy();
        Tracking {
            lfu: policy.counts_frequency(),
            sketch: policy == Policy::AllkeysTinylfu,
            log_factor: self.lfu_log_factor.load(Relaxed) as u32,
            decay_minutes: self.lfu_decay_time.load(Relaxed) as u32,
        }
    }

    /// Who may run `DEBUG`.
    pub fn debug_access(&self) -> DebugAccess {
        self.debug_access
    }

    /// True when the default user has a password.
    pub fn has_password(&self) -> bool {
        self.has_password.load(Relaxed)
    }

    /// True if `password` is the default user's password. Like Redis 7, compares
    /// SHA-256 digests in constant time, so the time taken reveals neither how
    /// much of a guess matched nor the password's length.
    pub fn check_password(&self, password: &[u8]) -> bool {
        match &*self.requirepass.read() {
            Some(p) => Sha256::digest(p.as_bytes())
                .ct_eq(&Sha256::digest(password))
                .into(),
            None => false,
        }
    }

    /// `maxclients`.
    pub fn maxclients(&self) -> u64 {
        self.maxclients.load(Relaxed)
    }

    /// `timeout` in seconds (0: none).
    pub fn timeout_secs(&self) -> u64 {
        self.timeout.load(Relaxed)
    }

    /// `proto-max-bulk-len`.
    pub fn proto_max_bulk_len(&self) -> u64 {
        self.proto_max_bulk_len.load(Relaxed)
    }

    /// `client-query-buffer-limit`.
    pub fn query_buffer_limit(&self) -> u64 {
        self.query_buffer_limit.load(Relaxed)
    }

    /// `protected-mode`.
    pub fn protected_mode(&self) -> bool {
        self.protected_mode.load(Relaxed)
    }

    /// The output buffer limits of a client class.
    pub fn output_limit(&self, class: ClientClass) -> OutputLimit {
        let [hard, soft, soft_seconds] = &self.output_limits[class as usize];
        OutputLimit {
            hard: hard.load(Relaxed),
            soft: soft.load(Relaxed),
            soft_seconds: soft_seconds.load(Relaxed),
        }
    }

    /// The enabled keyspace notification classes (see `crate::notify`).
    pub fn notify_flags(&self) -> u32 {
        self.notify_flags.load(Relaxed)
    }

    /// The encoding thresholds of the collection types, as configured now.
    pub fn encoding_limits(&self) -> EncodingLimits {
        let get = |name: &str| {
            TUNABLES
                .iter()
                .position(|t| t.0 == name)
                .map_or(0, |i| self.tunables[i].load(Relaxed))
        };
        let size = |name: &str| usize::try_from(get(name)).unwrap_or(0);
        EncodingLimits {
            hash_entries: size("hash-max-listpack-entries"),
            hash_value: size("hash-max-listpack-value"),
            set_intset: size("set-max-intset-entries"),
            set_entries: size("set-max-listpack-entries"),
            set_value: size("set-max-listpack-value"),
            zset_entries: size("zset-max-listpack-entries"),
            zset_value: size("zset-max-listpack-value"),
            list_size: get("list-max-listpack-size"),
        }
    }

    /// Every parameter matching any of `patterns` (globs, case-insensitive), once each.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        let names = PARAMS.iter().map(|p| (p.name, (p.get)(self))).chain(
            TUNABLES.iter().zip(&self.tunables).flat_map(|(t, v)| {
                let value = v.load(Relaxed).to_string();
                std::iter::once(t.0)
                    .chain(t.1.iter().copied())
                    .map(move |name| (name, value.clone()))
            }),
        );
        names
            .filter(|(name, _)| {
                patterns
                    .iter()
                    .any(|p| glob_match(p, name.as_bytes(), true))
            })
            .collect()
    }

    /// Sets all `pairs` or none of them.
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), ConfigSetError> {
        let mut parsed = Vec::with_capacity(pairs.len());
        for &(name, value) in pairs {
            let name_text = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = String::from_utf8_lossy(value);
            let invalid = |reason: String| ConfigSetError::Invalid {
                name: name_text.clone(),
                reason,
            };
            if let Some(index) = TUNABLES
                .iter()
                .position(|t| t.0 == name_text || t.1.contains(&name_text.as_str()))
            {
                let n = parse_tunable(&value, TUNABLES[index].3).map_err(invalid)?;
                parsed.push((apply_tunable as Apply, Setting::Tunable(index, n)));
                continue;
            }
            let param = PARAMS
                .iter()
                .find(|p| p.name == name_text)
                .ok_or_else(|| ConfigSetError::Unknown(name_text.clone()))?;
            let (parse, apply) = param
                .set
                .ok_or_else(|| invalid("can't set immutable config".into()))?;
            parsed.push((apply, parse(self, &value).map_err(invalid)?));
        }
        for (apply, setting) in parsed {
            apply(self, setting);
        }
        Ok(())
    }
}

fn policy_index(policy: Policy) -> u8 {
    Policy::all().iter().position(|&p| p == policy).unwrap_or(0) as u8
}

fn apply_tunable(c: &LiveConfig, v: Setting) {
    if let Setting::Tunable(index, n) = v {
        c.tunables[index].store(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> LiveConfig {
        LiveConfig::new(&Config::default(), None)
    }

    #[test]
    fn get_matches_globs_and_aliases() {
        let c = live();
        let got = c.get(&[b"save", b"appendonly"]);
        assert_eq!(
            got,
            [("save", String::new()), ("appendonly", "no".to_string())]
        );
        let max: Vec<&str> = c.get(&[b"max*"]).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            max,
            [
                "maxclients",
                "maxmemory",
                "maxmemory-policy",
                "maxmemory-samples"
            ]
        );
        assert_eq!(c.get(&[b"HASH-MAX-ZIPLIST-ENTRIES"])[0].1, "128");
    }

    #[test]
    fn memory_settings_are_checked_and_shape_tracking() {
        let c = live();
        assert_eq!(c.maxmemory(), 0);
        c.set(&[
            (b"maxmemory", b"100mb"),
            (b"maxmemory-policy", b"allkeys-lfu"),
        ])
        .unwrap();
        assert_eq!(c.maxmemory(), 100 << 20);
        assert!(c.tracking().lfu && !c.tracking().sketch);
        c.set(&[
            (b"maxmemory-policy", b"ALLKEYS-TINYLFU"),
            (b"lfu-log-factor", b"3"),
        ])
        .unwrap();
        assert_eq!(c.get(&[b"maxmemory-policy"])[0].1, "allkeys-tinylfu");
        assert!(!c.tracking().lfu && c.tracking().sketch);
        assert_eq!(c.tracking().log_factor, 3);
        assert!(c.set(&[(b"maxmemory-samples", b"0")]).is_err());
        assert!(c.set(&[(b"maxmemory-samples", b"65")]).is_err());
        assert!(c.set(&[(b"maxmemory", b"lots")]).is_err());
        let err = c.set(&[(b"maxmemory-policy", b"lru")]).unwrap_err();
        assert!(err.to_string().contains("noeviction, allkeys-lru"), "{err}");
    }

    #[test]
    fn set_is_all_or_nothing() {
        let c = live();
        let err = c
            .set(&[(b"timeout", b"5"), (b"maxclients", b"x")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer"
        );
        assert_eq!(c.timeout_secs(), 0);
        c.set(&[(b"timeout", b"5"), (b"set-max-listpack-entries", b"16")])
            .unwrap();
        assert_eq!(c.timeout_secs(), 5);
        assert_eq!(c.get(&[b"set-max-listpack-entries"])[0].1, "16");
    }

    #[test]
    fn immutable_and_unknown_parameters_are_refused() {
        let c = live();
        assert_eq!(
            c.set(&[(b"port", b"1")]).unwrap_err().to_string(),
            "CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
        );
        assert_eq!(
            c.set(&[(b"tcp-backlog", b"1024")]).unwrap_err().to_string(),
            "CONFIG SET failed (possibly related to argument 'tcp-backlog') - can't set immutable config"
        );
        assert_eq!(
            c.get(&[b"tcp-backlog"]),
            [("tcp-backlog", "511".to_string())]
        );
        assert_eq!(
            c.set(&[(b"nope", b"1")]).unwrap_err().to_string(),
            "Unknown option or number of arguments for CONFIG SET - 'nope'"
        );
    }

    #[test]
    fn encoding_limits_follow_the_tunables() {
        let c = live();
        assert_eq!(c.encoding_limits(), EncodingLimits::default());
        c.set(&[(b"zset-max-ziplist-entries", b"7")]).unwrap();
        assert_eq!(c.encoding_limits().zset_entries, 7);
    }

    #[test]
    fn numbers_take_redis_ranges_and_messages() {
        let c = live();
        let refusal = |name: &[u8], value: &[u8]| c.set(&[(name, value)]).unwrap_err().to_string();
        let reason = |text: String| text.split(" - ").nth(1).unwrap_or_default().to_string();
        let between =
            |min: i64, max: i64| format!("argument must be between {min} and {max} inclusive");
        assert_eq!(
            reason(refusal(b"hash-max-listpack-entries", b"-1")),
            between(0, i64::MAX)
        );
        assert_eq!(
            reason(refusal(b"set-max-intset-entries", b"+1")),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            reason(refusal(b"stream-node-max-entries", b"-0")),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            reason(refusal(b"list-max-listpack-size", b"2147483648")),
            between(-2147483648, 2147483647)
        );
        assert_eq!(
            reason(refusal(b"list-compress-depth", b"-1")),
            between(0, 2147483647)
        );
        assert_eq!(
            reason(refusal(b"zset-max-listpack-value", b"-1")),
            "argument must be a memory value"
        );
        assert_eq!(
            reason(refusal(b"timeout", b"2147483648")),
            between(0, 2147483647)
        );
        assert_eq!(
            reason(refusal(b"timeout", b"+1")),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(reason(refusal(b"maxclients", b"0")), between(1, 4294967295));
        assert_eq!(
            reason(refusal(b"proto-max-bulk-len", b"0")),
            between(1048576, i64::MAX)
        );
        c.set(&[
            (b"hash-max-ziplist-value", b"4kb"),
            (b"list-max-listpack-size", b"-2147483648"),
        ])
        .unwrap();
        assert_eq!(c.encoding_limits().hash_value, 4096);
        assert_eq!(c.encoding_limits().list_size, i64::from(i32::MIN));
    }

    #[test]
    fn requirepass_can_be_set_and_cleared() {
        let c = live();
        c.set(&[(b"requirepass", b"secret")]).unwrap();
        assert!(c.has_password() && c.check_password(b"secret") && !c.check_password(b"x"));
        c.set(&[(b"requirepass", b"")]).unwrap();
        assert!(!c.has_password());
    }

    #[test]
    fn passwords_match_only_exactly() {
        let c = live();
        assert!(!c.check_password(b""), "no password set: nothing matches");
        c.set(&[(b"requirepass", b"secret")]).unwrap();
        assert!(c.check_password(b"secret"));
        for wrong in [
            &b""[..],
            b"secre",
            b"secret\0",
            b"secretx",
            b"Secret",
            b"xecret",
            b"secret secret",
        ] {
            assert!(!c.check_password(wrong), "{wrong:?}");
        }
        c.set(&[(b"requirepass", "pässwörd ✓".as_bytes())]).unwrap();
        assert!(c.check_password("pässwörd ✓".as_bytes()));
        assert!(!c.check_password(b"p"));
    }
}
