//! The configuration while the server runs: what `CONFIG GET` shows and `CONFIG SET`
//! changes, as the settings table declares it. Values read on hot paths are
//! atomics, so reading them costs one relaxed load and never contends.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::cells::Stored;
use super::settings::{check_together, Cells, Config, SETTINGS};
use super::table::Setting;
use super::{ClientClass, DebugAccess, LogLevel, Policy};
use crate::eviction::Settings;
use crate::keyspace::access::Tracking;
use crate::keyspace::types::EncodingLimits;
use crate::protocol::OutputLimit;
use crate::util::glob::glob_match;

/// Called when `loglevel` changes, to reconfigure logging.
pub type LogLevelHook = Box<dyn Fn(LogLevel) + Send + Sync>;

/// Live configuration.
pub struct LiveConfig {
    cells: Cells,
    /// Whether `requirepass` is set, read per command (kept by
    /// [`LiveConfig::password_changed`]).
    has_password: AtomicBool,
    on_loglevel: Option<LogLevelHook>,
    /// One `CONFIG SET` at a time, so the rules between settings hold on what
    /// each one sees and leaves.
    setting: Mutex<()>,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("port", &self.cells.port)
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

/// What a `CONFIG SET` changed that the rest of the server must act on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// A memory setting changed: the server must put the memory settings in
    /// force again (tracking, eviction pool) and evict down to `maxmemory`.
    pub memory: bool,
    /// A replication setting changed: the backlog's size or how a replica
    /// treats expired keys (see `Replication::settings_changed`).
    pub replication: bool,
}

/// The lock settings in force (docs/CLUSTER.md, L1 and L5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockSettings {
    /// `lock-replicas-to-ack` (-1: automatic).
    pub replicas_to_ack: i64,
    /// `lock-ack-timeout` in milliseconds.
    pub ack_timeout_ms: u64,
    /// `lock-max-ttl` in milliseconds.
    pub max_ttl_ms: u64,
    /// `lock-delay` in milliseconds, -1 resolved to `lock-max-ttl`.
    pub delay_ms: u64,
}

/// The atomic slot migration settings in force (docs/CLUSTER.md, M7-M10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMigrationSettings {
    /// `cluster-slot-migration-handoff-max-lag-bytes`.
    pub max_lag: u64,
    /// `cluster-slot-migration-pause-timeout`.
    pub pause_timeout_ms: u64,
    /// `cluster-slot-migration-log-max-len`.
    pub log_max_len: usize,
    /// `cluster-auto-rebalance`.
    pub auto_rebalance: bool,
    /// `cluster-rebalance-max-slots`.
    pub rebalance_max_slots: usize,
}

/// The replication settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplSettings {
    /// `repl-backlog-size`.
    pub backlog_size: usize,
    /// `repl-timeout` in milliseconds.
    pub timeout_ms: u64,
    /// `repl-ping-replica-period` in milliseconds.
    pub ping_period_ms: u64,
    /// `replica-read-only`.
    pub read_only: bool,
    /// `replica-serve-stale-data`.
    pub serve_stale_data: bool,
    /// `replica-priority`.
    pub priority: u64,
    /// `masteruser` and `masterauth`.
    pub auth: Option<(Option<String>, String)>,
    /// `min-replicas-to-write`.
    pub min_replicas: u64,
    /// `min-replicas-max-lag` in seconds.
    pub min_replicas_max_lag: u64,
}

impl LiveConfig {
    /// The runtime view of a validated start-up configuration.
    pub fn new(config: &Config, on_loglevel: Option<LogLevelHook>) -> Self {
        // `CONFIG GET threads` shows how many run.
        let resolved = Config {
            threads: config.worker_threads(),
            ..config.clone()
        };
        LiveConfig {
            cells: Cells::new(&resolved),
            has_password: AtomicBool::new(config.requirepass.is_some()),
            on_loglevel,
            setting: Mutex::new(()),
        }
    }

    /// `maxmemory` in bytes (0: no limit).
    pub fn maxmemory(&self) -> u64 {
        self.cells.maxmemory.load(Relaxed)
    }

    /// `maxmemory-policy`.
    pub fn policy(&self) -> Policy {
        Stored::load(&self.cells.maxmemory_policy)
    }

    /// The eviction policy and sample size in force.
    pub fn eviction(&self) -> Settings {
        Settings {
            policy: self.policy(),
            samples: self.cells.maxmemory_samples.load(Relaxed) as usize,
        }
    }

    /// How key accesses must be recorded for the policy in force.
    pub fn tracking(&self) -> Tracking {
        let policy = self.policy();
        Tracking {
            lfu: policy.counts_frequency(),
            sketch: policy == Policy::AllkeysTinylfu,
            log_factor: self.cells.lfu_log_factor.load(Relaxed),
            decay_minutes: self.cells.lfu_decay_time.load(Relaxed),
        }
    }

    /// Who may run `DEBUG`.
    pub fn debug_access(&self) -> DebugAccess {
        Stored::load(&self.cells.enable_debug_command)
    }

    /// True when the default user has a password.
    pub fn has_password(&self) -> bool {
        self.has_password.load(Relaxed)
    }

    /// True if `password` is the default user's password. Like Redis 7, compares
    /// SHA-256 digests in constant time, so the time taken reveals neither how
    /// much of a guess matched nor the password's length.
    pub fn check_password(&self, password: &[u8]) -> bool {
        match &*self.cells.requirepass.read() {
            Some(p) => Sha256::digest(p.as_bytes())
                .ct_eq(&Sha256::digest(password))
                .into(),
            None => false,
        }
    }

    /// `maxclients`.
    pub fn maxclients(&self) -> u64 {
        self.cells.maxclients.load(Relaxed)
    }

    /// `busy-reply-threshold`: how long a script runs before it is busy.
    pub fn busy_reply_threshold(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.cells.busy_reply_threshold.load(Relaxed))
    }

    /// `timeout` in seconds (0: none).
    pub fn timeout_secs(&self) -> u64 {
        self.cells.timeout.load(Relaxed)
    }

    /// `proto-max-bulk-len`.
    pub fn proto_max_bulk_len(&self) -> u64 {
        self.cells.proto_max_bulk_len.load(Relaxed)
    }

    /// `hll-sparse-max-bytes`: the largest sparse HyperLogLog, header
    /// included (a size beyond memory is no limit).
    pub fn hll_sparse_max_bytes(&self) -> usize {
        usize::try_from(self.cells.hll_sparse_max_bytes.load(Relaxed)).unwrap_or(usize::MAX)
    }

    /// `client-query-buffer-limit`.
    pub fn query_buffer_limit(&self) -> u64 {
        self.cells.client_query_buffer_limit.load(Relaxed)
    }

    /// The cluster rules' settings in force.
    pub fn cluster_rules(&self) -> crate::cluster::machine::Settings {
        crate::cluster::machine::Settings {
            node_timeout: self.cells.cluster_node_timeout.load(Relaxed),
            require_full_coverage: self.cells.cluster_require_full_coverage.load(Relaxed),
            replica_no_failover: self.cells.cluster_replica_no_failover.load(Relaxed),
            replica_validity_factor: self.cells.cluster_replica_validity_factor.load(Relaxed),
            allow_replica_migration: self.cells.cluster_allow_replica_migration.load(Relaxed),
            migration_barrier: self.cells.cluster_migration_barrier.load(Relaxed),
        }
    }

    /// `cluster-allow-reads-when-down`.
    pub fn cluster_allow_reads_when_down(&self) -> bool {
        self.cells.cluster_allow_reads_when_down.load(Relaxed)
    }

    /// `cluster-allow-pubsubshard-when-down`.
    pub fn cluster_allow_pubsubshard_when_down(&self) -> bool {
        self.cells.cluster_allow_pubsubshard_when_down.load(Relaxed)
    }

    /// `protected-mode`.
    pub fn protected_mode(&self) -> bool {
        self.cells.protected_mode.load(Relaxed)
    }

    /// The output buffer limits of a client class.
    pub fn output_limit(&self, class: ClientClass) -> OutputLimit {
        let [hard, soft, soft_seconds] = &self.cells.client_output_buffer_limit[class as usize];
        OutputLimit {
            hard: hard.load(Relaxed),
            soft: soft.load(Relaxed),
            soft_seconds: soft_seconds.load(Relaxed),
        }
    }

    /// The enabled keyspace notification classes (see `crate::notify`).
    pub fn notify_flags(&self) -> u32 {
        self.cells.notify_keyspace_events.load(Relaxed)
    }

    /// The encoding thresholds of the collection types, as configured now.
    pub fn encoding_limits(&self) -> EncodingLimits {
        let c = &self.cells;
        // A threshold beyond memory is no threshold.
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        EncodingLimits {
            hash_entries: size(c.hash_max_listpack_entries.load(Relaxed)),
            hash_value: size(c.hash_max_listpack_value.load(Relaxed)),
            set_intset: size(c.set_max_intset_entries.load(Relaxed)),
            set_entries: size(c.set_max_listpack_entries.load(Relaxed)),
            set_value: size(c.set_max_listpack_value.load(Relaxed)),
            zset_entries: size(c.zset_max_listpack_entries.load(Relaxed)),
            zset_value: size(c.zset_max_listpack_value.load(Relaxed)),
            list_size: c.list_max_listpack_size.load(Relaxed),
            stream_node_bytes: size(c.stream_node_max_bytes.load(Relaxed)),
            stream_node_entries: c.stream_node_max_entries.load(Relaxed),
        }
    }

    /// Every parameter matching any of `patterns` (globs, case-insensitive), once
    /// each: names and aliases, in the table's order.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        for setting in SETTINGS {
            for name in setting.names() {
                if patterns
                    .iter()
                    .any(|p| glob_match(p, name.as_bytes(), true))
                {
                    found.push((name, (setting.get)(&self.cells)));
                }
            }
        }
        found
    }

    /// Sets all `pairs` or none of them. Each value is read by its setting's
    /// syntax, as the file and the flags read it, then the rules between
    /// settings are checked on the result.
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<Changed, ConfigSetError> {
        let _one_at_a_time = self.setting.lock();
        let mut next = self.cells.snapshot();
        let mut given: Vec<&'static Setting> = Vec::with_capacity(pairs.len());
        for &(name, value) in pairs {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let invalid = |reason: &str| ConfigSetError::Invalid {
                name: name.clone(),
                reason: reason.to_string(),
            };
            let setting =
                Setting::find(&name).ok_or_else(|| ConfigSetError::Unknown(name.clone()))?;
            if !setting.mutable {
                return Err(invalid("can't set immutable config"));
            }
            if given.iter().any(|s| std::ptr::eq(*s, setting)) {
                return Err(invalid("duplicate parameter"));
            }
            (setting.parse)(&mut next, &String::from_utf8_lossy(value))
                .map_err(|reason| invalid(&reason))?;
            given.push(setting);
        }
        let names: Vec<&str> = given.iter().map(|s| s.name).collect();
        check_together(&next, &names).map_err(|r| ConfigSetError::Invalid {
            name: r.name,
            reason: r.reason,
        })?;
        let mut changed = Changed::default();
        for setting in given {
            (setting.store)(&self.cells, &next);
            if let Some(then) = setting.then {
                then(self, &mut changed);
            }
        }
        Ok(changed)
    }

    /// After `requirepass` changed: keep [`LiveConfig::has_password`] in step.
    pub(super) fn password_changed(&self, _: &mut Changed) {
        let set = self.cells.requirepass.read().is_some();
        self.has_password.store(set, Relaxed);
    }

    /// After `loglevel` changed: reconfigure logging.
    pub(super) fn loglevel_changed(&self, _: &mut Changed) {
        if let Some(hook) = &self.on_loglevel {
            hook(Stored::load(&self.cells.loglevel));
        }
    }

    /// After a memory setting changed: the caller must put them in force.
    pub(super) fn memory_changed(&self, changed: &mut Changed) {
        changed.memory = true;
    }

    /// After a replication setting changed: the server puts it in force.
    pub(super) fn replication_changed(&self, changed: &mut Changed) {
        changed.replication = true;
    }

    /// The replication settings in force.
    pub fn replication(&self) -> ReplSettings {
        let c = &self.cells;
        let masterauth = c.masterauth.read().clone();
        ReplSettings {
            backlog_size: usize::try_from(c.repl_backlog_size.load(Relaxed)).unwrap_or(usize::MAX),
            timeout_ms: c.repl_timeout.load(Relaxed).saturating_mul(1000),
            ping_period_ms: c
                .repl_ping_replica_period
                .load(Relaxed)
                .saturating_mul(1000),
            read_only: c.replica_read_only.load(Relaxed),
            serve_stale_data: c.replica_serve_stale_data.load(Relaxed),
            priority: c.replica_priority.load(Relaxed),
            auth: masterauth.map(|pass| (c.masteruser.read().clone(), pass)),
            min_replicas: c.min_replicas_to_write.load(Relaxed),
            min_replicas_max_lag: c.min_replicas_max_lag.load(Relaxed),
        }
    }

    /// The atomic slot migration settings, read when a migration starts.
    pub fn slot_migration(&self) -> SlotMigrationSettings {
        let c = &self.cells;
        SlotMigrationSettings {
            max_lag: c.cluster_slot_migration_handoff_max_lag_bytes.load(Relaxed),
            pause_timeout_ms: c.cluster_slot_migration_pause_timeout.load(Relaxed),
            log_max_len: usize::try_from(c.cluster_slot_migration_log_max_len.load(Relaxed))
                .unwrap_or(usize::MAX),
            auto_rebalance: c.cluster_auto_rebalance.load(Relaxed),
            rebalance_max_slots: usize::try_from(c.cluster_rebalance_max_slots.load(Relaxed))
                .unwrap_or(usize::MAX),
        }
    }

    /// The lock settings, read per lock change.
    pub fn locks(&self) -> LockSettings {
        let c = &self.cells;
        let max_ttl_ms = c.lock_max_ttl.load(Relaxed);
        LockSettings {
            replicas_to_ack: c.lock_replicas_to_ack.load(Relaxed),
            ack_timeout_ms: c.lock_ack_timeout.load(Relaxed),
            max_ttl_ms,
            delay_ms: u64::try_from(c.lock_delay.load(Relaxed)).unwrap_or(max_ttl_ms),
        }
    }

    /// `min-replicas-to-write` and `min-replicas-max-lag` (seconds), read per
    /// write.
    pub fn min_replicas(&self) -> (u64, u64) {
        let c = &self.cells;
        (
            c.min_replicas_to_write.load(Relaxed),
            c.min_replicas_max_lag.load(Relaxed),
        )
    }

    /// The first address the server listens on (a replica's link to its
    /// master leaves from it, as Redis's does), unless it is a wildcard.
    pub fn first_bind(&self) -> Option<std::net::IpAddr> {
        let bind: Vec<String> = Stored::load(&self.cells.bind);
        let ip: std::net::IpAddr = bind.first()?.parse().ok()?;
        (!ip.is_unspecified()).then_some(ip)
    }

    /// `replica-serve-stale-data`.
    pub fn replica_serve_stale_data(&self) -> bool {
        self.cells.replica_serve_stale_data.load(Relaxed)
    }

    /// `replica-read-only`, read per command on a replica.
    pub fn replica_read_only(&self) -> bool {
        self.cells.replica_read_only.load(Relaxed)
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
