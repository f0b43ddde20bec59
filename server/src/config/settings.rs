//! The settings table: each setting declared once, with its Redis name, type,
//! default, syntax (its parser and validator), whether `CONFIG SET` may change
//! it and what changing it does, and its doc text. The file, the flags,
//! `CONFIG GET/SET`, the example file and `--help` are all derived from it
//! (see [`settings!`](super::table::settings)). Rules between settings are at
//! the end.

use super::cells::Stored;
use super::live::LiveConfig;
use super::output_limits::{BufferLimits, REDIS_DEFAULT};
use super::syntax::{
    int, only, size, Choice, Events, HostPort, Ips, Password, Syntax, Text, YesNo,
};
use super::table::{settings, Setting};
use super::{DebugAccess, LogLevel, MemSize, Policy, Refusal};
use crate::protocol::OutputLimit;

/// Redis's largest value for most integer settings (`INT_MAX`).
const INT_MAX: i64 = i32::MAX as i64;
/// Redis's largest value for most counts and sizes (`LLONG_MAX`).
const LONG_MAX: i64 = i64::MAX;
const SIZE_MAX: u64 = LONG_MAX as u64;
const MB: u64 = 1 << 20;

settings! {
    /// Addresses to listen on.
    bind "bind": Vec<String> = vec!["127.0.0.1".to_string()];
        Ips, fixed;
    /// TCP port for clients (0 picks a free one and logs it).
    port "port": u16 = 6379;
        int(0, 65535), fixed;
    /// Connections the kernel queues for accept on each listener, as Redis's
    /// tcp-backlog: enough for a burst of connects. The kernel caps it at
    /// /proc/sys/net/core/somaxconn (a warning is logged when that is lower).
    tcp_backlog "tcp-backlog": u32 = 511;
        int(0, INT_MAX), fixed;
    /// Password of the default user; clients must AUTH when it is set.
    /// Empty: none.
    requirepass "requirepass": Option<String> = None;
        Password, runtime, then LiveConfig::password_changed;
    /// Most clients connected at once; further ones are refused.
    maxclients "maxclients": u64 = 10_000;
        int(1, u32::MAX.into()), runtime;
    /// Close clients idle for this many seconds (0: never), including one that
    /// stopped reading its replies.
    timeout "timeout": u64 = 0;
        int(0, INT_MAX), runtime;
    /// Longest single argument (bulk string) a client may send.
    proto_max_bulk_len "proto-max-bulk-len": MemSize = MemSize(512 * MB);
        size(MB, SIZE_MAX), runtime;
    /// Most bytes buffered for one client's incomplete request.
    client_query_buffer_limit "client-query-buffer-limit": MemSize = MemSize(1024 * MB);
        size(MB, SIZE_MAX), runtime;
    /// Log verbosity: debug, verbose, notice, warning or nothing.
    loglevel "loglevel": LogLevel = LogLevel::Notice;
        Choice, runtime, then LiveConfig::loglevel_changed;
    /// Without a password, accept only loopback clients.
    protected_mode "protected-mode": bool = true;
        YesNo, runtime;
    /// Worker threads (0: one per CPU but one, at least one).
    threads "threads": usize = 0;
        int(0, 1024), fixed;
    /// Keyspace events to publish on __keyspace@0__ / __keyevent@0__ channels, in
    /// Redis's letters (e.g. "Ex" for expired keys, "KEA" for everything).
    /// Empty: none.
    notify_keyspace_events "notify-keyspace-events": u32 = 0;
        Events, runtime;
    /// Output-buffer limits per client class (normal, replica, pubsub): hard
    /// limit, soft limit, seconds over the soft one (0: no limit). Clients whose
    /// pending output breaks them are disconnected; one reply may not pass the
    /// hard limit (or, where it is 0, client-query-buffer-limit). A value
    /// changes only the classes it names.
    client_output_buffer_limit "client-output-buffer-limit": [OutputLimit; 3] = REDIS_DEFAULT;
        BufferLimits, runtime;
    /// Memory limit (0: none). Over it, writes evict keys by maxmemory-policy, or
    /// fail with -OOM under noeviction. Counts everything the server allocates;
    /// lowering it evicts at once.
    maxmemory "maxmemory": MemSize = MemSize(0);
        size(0, u64::MAX), runtime, then LiveConfig::memory_changed;
    /// Which keys go when maxmemory is reached: noeviction, allkeys-lru,
    /// allkeys-lfu, allkeys-random, allkeys-tinylfu, volatile-lru, volatile-lfu,
    /// volatile-random or volatile-ttl.
    maxmemory_policy "maxmemory-policy": Policy = Policy::NoEviction;
        Choice, runtime, then LiveConfig::memory_changed;
    /// Keys sampled per eviction round (1 to 64): more is closer to exact, and
    /// slower.
    maxmemory_samples "maxmemory-samples": u32 = 5;
        int(1, 64), runtime, then LiveConfig::memory_changed;
    /// How slowly LFU counters grow.
    lfu_log_factor "lfu-log-factor": u32 = 10;
        int(0, INT_MAX), runtime, then LiveConfig::memory_changed;
    /// Minutes for an LFU counter to lose one point (0: never).
    lfu_decay_time "lfu-decay-time": u32 = 1;
        int(0, INT_MAX), runtime, then LiveConfig::memory_changed;
    /// Start as a replica of this master ("host port"; REPLICAOF changes it
    /// at runtime). Standalone mode only. Empty: start as a master.
    replicaof "replicaof" | "slaveof": Option<String> = None;
        HostPort, fixed;
    /// Bytes of the replication stream a master keeps (once a replica has
    /// connected) so a replica that reconnects continues where it stopped
    /// instead of syncing everything again.
    repl_backlog_size "repl-backlog-size": MemSize = MemSize(MB);
        size(16 * 1024, LONG_MAX as u64), runtime, then LiveConfig::replication_changed;
    /// Seconds without a byte from the other side after which a replica drops
    /// its link to the master (and the master the replica).
    repl_timeout "repl-timeout": u64 = 60;
        int(1, INT_MAX), runtime;
    /// Seconds between the pings a master sends its replicas through the
    /// stream, so they can tell a quiet master from a dead link.
    repl_ping_replica_period "repl-ping-replica-period" | "repl-ping-slave-period": u64 = 10;
        int(1, INT_MAX), runtime;
    /// A replica refuses writes from clients (-READONLY); its master's stream
    /// is its only writer.
    replica_read_only "replica-read-only" | "slave-read-only": bool = true;
        YesNo, runtime, then LiveConfig::replication_changed;
    /// A replica whose link to the master is down still answers from the
    /// data it has; "no": -MASTERDOWN instead.
    replica_serve_stale_data "replica-serve-stale-data" | "slave-serve-stale-data": bool = true;
        YesNo, runtime;
    /// Reported in INFO (replica_priority); a replica with 0 is never
    /// promoted by Sentinel-like tools.
    replica_priority "replica-priority" | "slave-priority": u64 = 100;
        int(0, INT_MAX), runtime;
    /// Password a replica gives its master (the master's requirepass).
    /// Empty: none.
    masterauth "masterauth": Option<String> = None;
        Password, runtime;
    /// User a replica authenticates as with masterauth. Empty: the default
    /// user.
    masteruser "masteruser": Option<String> = None;
        Password, runtime;
    /// A master refuses writes (-NOREPLICAS) while fewer replicas than this
    /// acknowledged within min-replicas-max-lag seconds (0: never refuses).
    min_replicas_to_write "min-replicas-to-write" | "min-slaves-to-write": u64 = 0;
        int(0, INT_MAX), runtime;
    /// See min-replicas-to-write.
    min_replicas_max_lag "min-replicas-max-lag" | "min-slaves-max-lag": u64 = 10;
        int(0, INT_MAX), runtime;
    /// A lock change (LOCK.ACQUIRE, LOCK.EXTEND, LOCK.RELEASE, a fill lease
    /// granted) is answered only once every in-sync replica acknowledged it,
    /// and refused (-NOREPLICAS) while fewer replicas than this are in sync.
    /// -1: 1 while the master has an online replica, else 0 (answered at once).
    lock_replicas_to_ack "lock-replicas-to-ack": i64 = -1;
        int(-1, INT_MAX), runtime;
    /// Milliseconds a lock change waits for its acknowledgements; after it the
    /// change is undone and the client gets an error. A replica that has not
    /// acknowledged for this long plus a second leaves the in-sync set.
    lock_ack_timeout "lock-ack-timeout": u64 = 1000;
        int(1, INT_MAX), runtime;
    /// Longest lease in milliseconds LOCK.ACQUIRE and LOCK.EXTEND accept.
    lock_max_ttl "lock-max-ttl": u64 = 60_000;
        int(1, LONG_MAX), runtime;
    /// Milliseconds a node that may have lost lock grants (it just started, or
    /// was promoted without an acknowledged stream) refuses new lock grants
    /// (-LOCKDELAY). -1: lock-max-ttl, so no lock granted before is still
    /// held. 0: never, and a lock granted before a crash may have two owners
    /// (fencing tokens still only grow).
    lock_delay "lock-delay": i64 = -1;
        int(-1, LONG_MAX), runtime;
    /// Milliseconds a script (or function) runs before other clients get
    /// -BUSY and SCRIPT KILL / FUNCTION KILL may stop it (0: at its first
    /// check, after ~100,000 Lua instructions).
    busy_reply_threshold "busy-reply-threshold" | "lua-time-limit": u64 = 5000;
        int(0, LONG_MAX), runtime;
    /// Who may run DEBUG, whose subcommands exist for tests: no, yes or local
    /// (loopback clients only).
    enable_debug_command "enable-debug-command": DebugAccess = DebugAccess::No;
        Choice, fixed;
    /// Cluster mode: serve a share of the 16384 slots as a node of a Redis
    /// Cluster-compatible cluster (see docs/CLUSTER.md). A node starts alone;
    /// CLUSTER MEET joins clusters.
    cluster_enabled "cluster-enabled": bool = false;
        YesNo, fixed;
    /// Where the node keeps its cluster state (id, epochs, peers, slots), in
    /// Redis's nodes.conf format; written by the node, read at start.
    cluster_config_file "cluster-config-file": String = "nodes.conf".to_string();
        Text, fixed;
    /// Cluster bus port (0: the client port + 10000).
    cluster_port "cluster-port": u16 = 0;
        int(0, 65535), fixed;
    /// Milliseconds a node may not answer before it is suspected (`fail?`).
    cluster_node_timeout "cluster-node-timeout": u64 = 15_000;
        int(1, LONG_MAX), runtime;
    /// Stop serving when any slot is unserved (unassigned or its master failed).
    cluster_require_full_coverage "cluster-require-full-coverage": bool = true;
        YesNo, runtime;
    /// Serve reads while the cluster is down (writes still refused).
    cluster_allow_reads_when_down "cluster-allow-reads-when-down": bool = false;
        YesNo, runtime;
    /// Serve sharded pub/sub while the cluster is down.
    cluster_allow_pubsubshard_when_down "cluster-allow-pubsubshard-when-down": bool = true;
        YesNo, runtime;
    /// A replica that never starts an automatic failover of its master (a
    /// manual CLUSTER FAILOVER still works).
    cluster_replica_no_failover "cluster-replica-no-failover" | "cluster-slave-no-failover": bool = false;
        YesNo, runtime;
    /// A replica cut off from its master for longer than node-timeout times
    /// this (plus 10 s) does not fail over: its data may be too old (0: any age).
    cluster_replica_validity_factor "cluster-replica-validity-factor" | "cluster-slave-validity-factor": u64 = 10;
        int(0, INT_MAX), runtime;
    /// Replicas move to masters left without any, and a replica whose master
    /// lost every slot to another master follows that master.
    cluster_allow_replica_migration "cluster-allow-replica-migration": bool = true;
        YesNo, runtime;
    /// Replicas a master keeps before one of them may migrate to an orphaned
    /// master.
    cluster_migration_barrier "cluster-migration-barrier": u64 = 1;
        int(0, INT_MAX), runtime;
    /// Atomic slot migration: writes to the moving slots pause once the
    /// target is this close behind the source's stream (docs/CLUSTER.md, M10).
    cluster_slot_migration_handoff_max_lag_bytes "cluster-slot-migration-handoff-max-lag-bytes": MemSize = MemSize(1 << 20);
        size(0, SIZE_MAX), runtime;
    /// Atomic slot migration: longest pause of writes to the moving slots
    /// before the handoff is sent; past it the migration fails and the
    /// source keeps the slots (milliseconds).
    cluster_slot_migration_pause_timeout "cluster-slot-migration-pause-timeout": u64 = 2_000;
        int(1, LONG_MAX), runtime;
    /// Atomic slot migration: finished migrations `CLUSTER GETSLOTMIGRATIONS`
    /// keeps showing.
    cluster_slot_migration_log_max_len "cluster-slot-migration-log-max-len": u64 = 1_000;
        int(0, LONG_MAX), runtime;
    /// The ring rebalances itself: every 10 s the planner (the serving master
    /// with the smallest id) moves the slots whose ring owner is another
    /// master, joining or leaving (docs/CLUSTER.md, M13).
    cluster_auto_rebalance "cluster-auto-rebalance": bool = false;
        YesNo, runtime;
    /// Most slots a rebalance moves at once.
    cluster_rebalance_max_slots "cluster-rebalance-max-slots": u64 = 256;
        int(1, 16384), runtime;
    /// Secret every bus peer must prove it knows (HMAC-SHA256 challenge) before
    /// anything it says is believed; every node of a cluster needs the same.
    /// Empty: requirepass as it was at start, or with no password none (as
    /// Redis, whose bus trusts the network).
    cluster_bus_secret "cluster-bus-secret": Option<String> = None;
        Password, fixed;
    /// Encoding threshold: most fields in a compact hash.
    hash_max_listpack_entries "hash-max-listpack-entries" | "hash-max-ziplist-entries": u64 = 128;
        int(0, LONG_MAX), runtime;
    /// Encoding threshold: longest field or value in a compact hash.
    hash_max_listpack_value "hash-max-listpack-value" | "hash-max-ziplist-value": MemSize = MemSize(64);
        size(0, SIZE_MAX), runtime;
    /// Encoding threshold: most members in an integer set.
    set_max_intset_entries "set-max-intset-entries": u64 = 512;
        int(0, LONG_MAX), runtime;
    /// Encoding threshold: most members in a compact set.
    set_max_listpack_entries "set-max-listpack-entries": u64 = 128;
        int(0, LONG_MAX), runtime;
    /// Encoding threshold: longest member in a compact set.
    set_max_listpack_value "set-max-listpack-value": MemSize = MemSize(64);
        size(0, SIZE_MAX), runtime;
    /// Encoding threshold: most members in a compact sorted set.
    zset_max_listpack_entries "zset-max-listpack-entries" | "zset-max-ziplist-entries": u64 = 128;
        int(0, LONG_MAX), runtime;
    /// Encoding threshold: longest member in a compact sorted set.
    zset_max_listpack_value "zset-max-listpack-value" | "zset-max-ziplist-value": MemSize = MemSize(64);
        size(0, SIZE_MAX), runtime;
    /// Encoding threshold of a list node: negative for a byte limit (-1 = 4 KiB
    /// ... -5 = 64 KiB), positive for an element count.
    list_max_listpack_size "list-max-listpack-size" | "list-max-ziplist-size": i64 = -2;
        int(i32::MIN.into(), INT_MAX), runtime;
    /// Accepted for Redis tools; ringkv does not compress lists.
    list_compress_depth "list-compress-depth": i64 = 0;
        int(0, INT_MAX), runtime;
    /// Most bytes of entries in one stream node; 0: no limit.
    stream_node_max_bytes "stream-node-max-bytes": MemSize = MemSize(4096);
        size(0, SIZE_MAX), runtime;
    /// Most entries in one stream node, deleted ones included; 0: no limit.
    stream_node_max_entries "stream-node-max-entries": u64 = 100;
        int(0, LONG_MAX), runtime;
    /// Largest sparse HyperLogLog in bytes, its 16-byte header included: a
    /// PFADD or PFMERGE that would grow one past it makes it dense (12304
    /// bytes), as Redis does.
    hll_sparse_max_bytes "hll-sparse-max-bytes": MemSize = MemSize(3000);
        size(0, SIZE_MAX), runtime;
    /// ringkv keeps no data on disk: only "" (no snapshots) is accepted; tools
    /// such as redis-benchmark ask for it.
    save "save": () = ();
        only("", "ringkv has no persistence; only \"\" is accepted"), runtime;
    /// ringkv keeps no data on disk: only "no" is accepted.
    appendonly "appendonly": () = ();
        only("no", "ringkv has no persistence; only 'no' is accepted"), runtime;
    /// ringkv has one database: only 1 is accepted.
    databases "databases": () = ();
        only("1", "ringkv has one database; only 1 is accepted"), fixed;
}

/// Checks the rules between settings on `config`, the result of a whole file
/// with its flags, or of a whole `CONFIG SET`. `given` names the settings that
/// were just given, so the refusal names the one to blame.
pub(super) fn check_together(config: &Config, given: &[&str]) -> Result<(), Refusal> {
    if config.cluster_enabled && config.replicaof.is_some() {
        return Err(Refusal::new(
            "replicaof",
            "not allowed in cluster mode (use CLUSTER REPLICATE)",
        ));
    }
    if config.proto_max_bulk_len > config.client_query_buffer_limit {
        let limit_given = given.contains(&"client-query-buffer-limit");
        return Err(if limit_given && !given.contains(&"proto-max-bulk-len") {
            Refusal::new(
                "client-query-buffer-limit",
                "can't be smaller than proto-max-bulk-len",
            )
        } else {
            Refusal::new(
                "proto-max-bulk-len",
                "can't be larger than client-query-buffer-limit",
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The table's promise: the file, the flags and `CONFIG SET` accept the same
    //! values, show them the same way, and refuse the same ones for the same
    //! reasons; the example file and README follow the table.

    use std::path::Path;

    use super::*;
    use crate::config::{Cli, ConfigError, ConfigSetError, FileError};

    /// Values every way must accept, per setting.
    const VALID: &[(&str, &[&str])] = &[
        ("bind", &["127.0.0.1", "127.0.0.1 ::1", "0.0.0.0"]),
        ("port", &["0", "7000", "65535"]),
        ("tcp-backlog", &["0", "1024", "2147483647"]),
        ("requirepass", &["secret", "", "pässwörd ✓", "-dash"]),
        ("maxclients", &["1", "4294967295"]),
        ("timeout", &["0", "30", "2147483647"]),
        ("proto-max-bulk-len", &["1mb", "1048576", "100MB", "1gb"]),
        ("client-query-buffer-limit", &["512mb", "1gb", "4GB"]),
        ("loglevel", &["debug", "WARNING", "nothing", "notice"]),
        ("protected-mode", &["yes", "no", "YES"]),
        ("threads", &["0", "1", "4"]),
        (
            "notify-keyspace-events",
            &["", "Ex", "KEA", "xE", "g$lshzxeKEtmdn"],
        ),
        (
            "client-output-buffer-limit",
            &[
                "pubsub 2mb 1mb 5",
                "normal 1mb 512kb 3 replica 0 0 0",
                "NORMAL 0 0 0 slave 1 2 3 pubsub 4 5 6",
            ],
        ),
        ("maxmemory", &["0", "100mb", "1gb", "18446744073709551615"]),
        (
            "maxmemory-policy",
            &[
                "noeviction",
                "allkeys-lru",
                "allkeys-lfu",
                "allkeys-random",
                "ALLKEYS-TINYLFU",
                "volatile-lru",
                "volatile-lfu",
                "volatile-random",
                "volatile-ttl",
            ],
        ),
        ("maxmemory-samples", &["1", "64"]),
        ("lfu-log-factor", &["0", "10", "2147483647"]),
        ("lfu-decay-time", &["0", "2147483647"]),
        ("replicaof", &["", "127.0.0.1 6379", "master.example 7000"]),
        ("repl-backlog-size", &["1mb", "16kb", "100mb"]),
        ("repl-timeout", &["1", "60"]),
        ("repl-ping-replica-period", &["1", "10"]),
        ("replica-read-only", &["yes", "no"]),
        ("replica-serve-stale-data", &["yes", "no"]),
        ("replica-priority", &["0", "100"]),
        ("masterauth", &["", "secret"]),
        ("masteruser", &["", "repl"]),
        ("min-replicas-to-write", &["0", "3"]),
        ("min-replicas-max-lag", &["0", "10"]),
        ("lock-replicas-to-ack", &["-1", "0", "2"]),
        ("lock-ack-timeout", &["1", "1000"]),
        ("lock-max-ttl", &["1", "60000", "86400000"]),
        ("lock-delay", &["-1", "0", "30000"]),
        ("busy-reply-threshold", &["0", "100", "5000"]),
        ("enable-debug-command", &["no", "yes", "local", "LOCAL"]),
        ("cluster-enabled", &["no", "NO"]),
        ("cluster-config-file", &["nodes.conf", "dir/n.conf"]),
        ("cluster-port", &["0", "17000", "65535"]),
        ("cluster-node-timeout", &["1", "2000", "15000"]),
        ("cluster-require-full-coverage", &["yes", "no"]),
        ("cluster-allow-reads-when-down", &["yes", "no"]),
        ("cluster-allow-pubsubshard-when-down", &["yes", "no"]),
        ("cluster-replica-no-failover", &["yes", "no"]),
        (
            "cluster-replica-validity-factor",
            &["0", "10", "2147483647"],
        ),
        ("cluster-allow-replica-migration", &["yes", "no"]),
        ("cluster-migration-barrier", &["0", "1", "2147483647"]),
        (
            "cluster-slot-migration-handoff-max-lag-bytes",
            &["0", "1mb", "64kb"],
        ),
        ("cluster-slot-migration-pause-timeout", &["1", "2000"]),
        ("cluster-slot-migration-log-max-len", &["0", "1000"]),
        ("cluster-auto-rebalance", &["yes", "no"]),
        ("cluster-rebalance-max-slots", &["1", "256", "16384"]),
        ("cluster-bus-secret", &["", "s3cret"]),
        (
            "hash-max-listpack-entries",
            &["0", "128", "9223372036854775807"],
        ),
        ("hash-max-listpack-value", &["0", "64", "4kb"]),
        ("set-max-intset-entries", &["0", "512"]),
        ("set-max-listpack-entries", &["16", "128"]),
        ("set-max-listpack-value", &["64", "1k"]),
        ("zset-max-listpack-entries", &["7", "128"]),
        ("zset-max-listpack-value", &["64", "9223372036854775807"]),
        (
            "list-max-listpack-size",
            &["-2", "-2147483648", "2147483647", "5"],
        ),
        ("list-compress-depth", &["0", "3"]),
        ("stream-node-max-bytes", &["4096", "4kb"]),
        ("stream-node-max-entries", &["100", "0"]),
        ("hll-sparse-max-bytes", &["3000", "1kb"]),
        ("save", &[""]),
        ("appendonly", &["no", "NO"]),
        ("databases", &["1"]),
    ];

    /// Values every way must refuse, per setting (empty where any text goes).
    const INVALID: &[(&str, &[&str])] = &[
        ("bind", &["", "localhost", "127.0.0.1 x"]),
        ("port", &["65536", "-1", "x", "+1", "07"]),
        ("tcp-backlog", &["2147483648", "-1"]),
        ("requirepass", &[]),
        ("maxclients", &["0", "4294967296", "lots", " 1"]),
        ("timeout", &["-1", "2147483648", "+1", "1.5"]),
        (
            "proto-max-bulk-len",
            &["0", "1048575", "10", "lots", "-1", "2gb"],
        ),
        ("client-query-buffer-limit", &["1kb", "x", "1mb"]),
        ("loglevel", &["lots", "", "info"]),
        ("protected-mode", &["true", "1", ""]),
        ("threads", &["-1", "1025", "x"]),
        ("notify-keyspace-events", &["q", "Eq", " "]),
        (
            "client-output-buffer-limit",
            &[
                "pubsub 1mb",
                "bogus 1 1 1",
                "pubsub x 1 1",
                "pubsub 1 1 -1",
                "",
            ],
        ),
        (
            "maxmemory",
            &["-1", "lots", "1.5gb", "18446744073709551616"],
        ),
        ("maxmemory-policy", &["lru", ""]),
        ("maxmemory-samples", &["0", "65"]),
        ("lfu-log-factor", &["-1", "2147483648"]),
        ("lfu-decay-time", &["-1", "2147483648"]),
        ("replicaof", &["host", "host port", "host 70000", "a b c"]),
        ("repl-backlog-size", &["1kb", "-1", "x"]),
        ("repl-timeout", &["0", "-1"]),
        ("repl-ping-replica-period", &["0"]),
        ("replica-read-only", &["maybe"]),
        ("replica-serve-stale-data", &["1"]),
        ("replica-priority", &["-1", "x"]),
        ("masterauth", &[]),
        ("masteruser", &[]),
        ("min-replicas-to-write", &["-1"]),
        ("min-replicas-max-lag", &["x"]),
        ("lock-replicas-to-ack", &["-2", "x"]),
        ("lock-ack-timeout", &["0", "-1"]),
        ("lock-max-ttl", &["0", "1s"]),
        ("lock-delay", &["-2", "x"]),
        ("busy-reply-threshold", &["-1", "x"]),
        ("enable-debug-command", &["maybe", ""]),
        ("cluster-enabled", &["maybe", "true"]),
        ("cluster-config-file", &[]),
        ("cluster-port", &["65536", "x"]),
        ("cluster-node-timeout", &["0", "-1", "x"]),
        ("cluster-require-full-coverage", &["maybe"]),
        ("cluster-allow-reads-when-down", &["1"]),
        ("cluster-allow-pubsubshard-when-down", &["on"]),
        ("cluster-replica-no-failover", &["1"]),
        (
            "cluster-replica-validity-factor",
            &["-1", "2147483648", "x"],
        ),
        ("cluster-allow-replica-migration", &["maybe"]),
        ("cluster-migration-barrier", &["-1", "x"]),
        ("cluster-slot-migration-handoff-max-lag-bytes", &["-1", "x"]),
        ("cluster-slot-migration-pause-timeout", &["0", "-1"]),
        ("cluster-slot-migration-log-max-len", &["-1", "x"]),
        ("cluster-auto-rebalance", &["maybe"]),
        ("cluster-rebalance-max-slots", &["0", "16385"]),
        ("cluster-bus-secret", &[]),
        ("hash-max-listpack-entries", &["-1", "x"]),
        ("hash-max-listpack-value", &["-1", "1x"]),
        ("set-max-intset-entries", &["-1"]),
        ("set-max-listpack-entries", &["x"]),
        ("set-max-listpack-value", &["1x"]),
        ("zset-max-listpack-entries", &["-1"]),
        ("zset-max-listpack-value", &["-1", "9223372036854775808"]),
        (
            "list-max-listpack-size",
            &["2147483648", "-2147483649", "x"],
        ),
        ("list-compress-depth", &["-1"]),
        ("stream-node-max-bytes", &["1x"]),
        ("stream-node-max-entries", &["-1"]),
        ("hll-sparse-max-bytes", &["x"]),
        ("save", &["900 1"]),
        ("appendonly", &["yes"]),
        ("databases", &["2", "16"]),
    ];

    fn samples(
        table: &'static [(&'static str, &'static [&'static str])],
    ) -> impl Iterator<Item = (&'static Setting, String)> {
        table.iter().flat_map(|(name, values)| {
            let setting = Setting::find(name).unwrap();
            values.iter().map(move |v| (setting, v.to_string()))
        })
    }

    fn file_line(setting: &Setting, value: &str) -> String {
        format!("{} = {}", setting.name, toml::Value::String(value.into()))
    }

    fn flags(setting: &Setting, value: &str) -> Cli {
        let flag = format!("--{}", setting.name);
        Cli::try_parse_from(["ringkv-server", &flag, value]).unwrap()
    }

    /// What `CONFIG GET` shows for `setting` when the server starts with `config`.
    fn shown(config: &Config, setting: &Setting) -> String {
        let live = LiveConfig::new(config, None);
        let found = live.get(&[setting.name.as_bytes()]);
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].1.clone()
    }

    #[test]
    fn every_setting_has_samples() {
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        let valid: Vec<&str> = VALID.iter().map(|(n, _)| *n).collect();
        let invalid: Vec<&str> = INVALID.iter().map(|(n, _)| *n).collect();
        assert_eq!(valid, names);
        assert_eq!(invalid, names);
    }

    #[test]
    fn file_flag_and_config_set_show_the_same_value() {
        for (setting, value) in samples(VALID) {
            let context = format!("{} {value:?}", setting.name);
            let from_file = Config::from_toml(&file_line(setting, &value))
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            let from_flag =
                Config::load(&flags(setting, &value)).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert_eq!(from_file, from_flag, "{context}");
            let text = shown(&from_file, setting);
            assert_eq!(shown(&from_flag, setting), text, "{context}");
            // What CONFIG GET shows reads back as the same value.
            let again = Config::from_toml(&file_line(setting, &text)).unwrap();
            assert_eq!(shown(&again, setting), text, "{context}");
            let live = LiveConfig::new(&Config::default(), None);
            let set = live.set(&[(setting.name.as_bytes(), value.as_bytes())]);
            if setting.mutable {
                set.unwrap_or_else(|e| panic!("{context}: {e}"));
                let found = live.get(&[setting.name.as_bytes()]);
                assert_eq!(found[0].1, text, "{context}");
            } else {
                assert_eq!(
                    set.unwrap_err(),
                    ConfigSetError::Invalid {
                        name: setting.name.to_string(),
                        reason: "can't set immutable config".to_string()
                    },
                    "{context}"
                );
            }
        }
    }

    #[test]
    fn file_flag_and_config_set_refuse_the_same_values_for_the_same_reasons() {
        for (setting, value) in samples(INVALID) {
            let context = format!("{} {value:?}", setting.name);
            let from_file = match Config::from_toml(&file_line(setting, &value)) {
                Err(FileError::Refused(refusal)) => refusal,
                other => panic!("{context}: {other:?}"),
            };
            let from_flag = match Config::load(&flags(setting, &value)) {
                Err(ConfigError::Flag(refusal) | ConfigError::Invalid(refusal)) => refusal,
                other => panic!("{context}: {other:?}"),
            };
            assert_eq!(from_file, from_flag, "{context}");
            assert!(!from_file.reason.is_empty(), "{context}");
            let live = LiveConfig::new(&Config::default(), None);
            let before = live.get(&[b"*"]);
            let refused = live
                .set(&[(setting.name.as_bytes(), value.as_bytes())])
                .unwrap_err();
            let reason = if setting.mutable {
                from_file.reason.as_str()
            } else {
                "can't set immutable config"
            };
            assert_eq!(
                refused,
                ConfigSetError::Invalid {
                    name: from_file.name.clone(),
                    reason: reason.to_string()
                },
                "{context}"
            );
            assert_eq!(live.get(&[b"*"]), before, "{context}: nothing changed");
        }
    }

    #[test]
    fn the_file_reads_native_toml_values_as_their_text() {
        let read = |line: &str, name: &str| {
            let config = Config::from_toml(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            shown(&config, Setting::find(name).unwrap())
        };
        assert_eq!(read("protected-mode = false", "protected-mode"), "no");
        assert_eq!(read("maxclients = 5", "maxclients"), "5");
        assert_eq!(
            read("proto-max-bulk-len = 2097152", "proto-max-bulk-len"),
            "2097152"
        );
        assert_eq!(
            read("list-max-listpack-size = -3", "list-max-listpack-size"),
            "-3"
        );
        assert_eq!(
            read("bind = [\"127.0.0.1\", \"::1\"]", "bind"),
            "127.0.0.1 ::1"
        );
        assert_eq!(
            read("hash-max-ziplist-entries = 5", "hash-max-listpack-entries"),
            "5"
        );
        assert_eq!(read("appendonly = false", "appendonly"), "no");
        let refusal = |line: &str| match Config::from_toml(line) {
            Err(FileError::Refused(r)) => r.reason,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(
            refusal("maxclients = 1.5"),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            refusal("maxclients = true"),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            refusal("port = [1]"),
            "argument must be one value, not a list"
        );
        assert_eq!(refusal("bind = [1]"), "argument must be a list of strings");
        assert_eq!(
            refusal("hash-max-ziplist-entries = 1\nhash-max-listpack-entries = 2"),
            "duplicate parameter"
        );
        assert!(matches!(
            Config::from_toml("port = "),
            Err(FileError::Syntax(_))
        ));
    }

    #[test]
    fn proto_max_bulk_len_never_exceeds_client_query_buffer_limit() {
        let live = LiveConfig::new(&Config::default(), None);
        let refusal = |pairs: &[(&[u8], &[u8])]| live.set(pairs).unwrap_err().to_string();
        assert_eq!(
            refusal(&[(b"proto-max-bulk-len", b"2gb")]),
            "CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - \
             can't be larger than client-query-buffer-limit"
        );
        assert_eq!(
            refusal(&[(b"client-query-buffer-limit", b"100mb")]),
            "CONFIG SET failed (possibly related to argument 'client-query-buffer-limit') - \
             can't be smaller than proto-max-bulk-len"
        );
        // Both in one CONFIG SET: checked on the result, in either order.
        live.set(&[
            (b"proto-max-bulk-len", b"2gb"),
            (b"client-query-buffer-limit", b"4gb"),
        ])
        .unwrap();
        live.set(&[
            (b"proto-max-bulk-len", b"1mb"),
            (b"client-query-buffer-limit", b"1mb"),
        ])
        .unwrap();
        live.set(&[
            (b"client-query-buffer-limit", b"4gb"),
            (b"proto-max-bulk-len", b"3gb"),
        ])
        .unwrap();
        assert_eq!(live.proto_max_bulk_len(), 3 << 30);
        // The file and its flags are checked together.
        let dir = std::env::temp_dir().join(format!("ringkv-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "proto-max-bulk-len = \"2gb\"\n").unwrap();
        let path = path.to_str().unwrap();
        let load = |args: &[&str]| {
            let cli = Cli::try_parse_from(["ringkv-server", "--config", path].iter().chain(args));
            Config::load(&cli.unwrap())
        };
        let merged = load(&["--client-query-buffer-limit", "4gb"]).unwrap();
        assert_eq!(merged.proto_max_bulk_len, MemSize(2 << 30));
        let err = load(&[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid configuration: 'proto-max-bulk-len' - can't be larger than client-query-buffer-limit"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn config_set_refuses_a_setting_named_twice() {
        let live = LiveConfig::new(&Config::default(), None);
        let refusal = |pairs: &[(&[u8], &[u8])]| live.set(pairs).unwrap_err().to_string();
        assert_eq!(
            refusal(&[(b"timeout", b"1"), (b"TIMEOUT", b"2")]),
            "CONFIG SET failed (possibly related to argument 'timeout') - duplicate parameter"
        );
        assert_eq!(
            refusal(&[(b"zset-max-ziplist-value", b"1"), (b"zset-max-listpack-value", b"2")]),
            "CONFIG SET failed (possibly related to argument 'zset-max-listpack-value') - duplicate parameter"
        );
        assert_eq!(live.timeout_secs(), 0);
    }

    #[test]
    fn only_memory_settings_ask_for_the_memory_settings_to_be_applied() {
        let live = LiveConfig::new(&Config::default(), None);
        for (name, value) in [
            ("maxmemory", "1gb"),
            ("maxmemory-policy", "allkeys-lru"),
            ("maxmemory-samples", "10"),
            ("lfu-log-factor", "3"),
            ("lfu-decay-time", "2"),
        ] {
            let changed = live.set(&[(b"timeout", b"1"), (name.as_bytes(), value.as_bytes())]);
            assert!(changed.unwrap().memory, "{name}");
        }
        let changed = live.set(&[(b"timeout", b"2"), (b"hash-max-listpack-entries", b"3")]);
        assert!(!changed.unwrap().memory);
    }

    #[test]
    fn changing_loglevel_reconfigures_logging() {
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let hook_seen = seen.clone();
        let hook: crate::config::LogLevelHook = Box::new(move |l| hook_seen.lock().push(l));
        let live = LiveConfig::new(&Config::default(), Some(hook));
        live.set(&[(b"loglevel", b"WARNING")]).unwrap();
        live.set(&[(b"timeout", b"1")]).unwrap();
        assert_eq!(*seen.lock(), [LogLevel::Warning]);
    }

    #[test]
    fn the_example_file_is_the_table_with_its_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ringkv.example.toml");
        let expected = super::super::file::render(&Config::default(), true);
        if std::env::var_os("RINGKV_WRITE_EXAMPLE").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap();
        assert!(
            committed == expected,
            "server/ringkv.example.toml differs from the settings table; \
             regenerate it with RINGKV_WRITE_EXAMPLE=1 cargo test -p ringkv-server --lib \
             the_example_file"
        );
        assert_eq!(Config::from_toml(&committed).unwrap(), Config::default());
    }

    #[test]
    fn readme_lists_every_setting_and_whether_config_set_may_change_it() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let rows: Vec<Vec<&str>> = readme
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| line.split('|').map(str::trim).collect())
            .collect();
        for setting in SETTINGS {
            let name = format!("`{}`", setting.name);
            let row = rows
                .iter()
                .find(|cells| cells[1] == name)
                .unwrap_or_else(|| panic!("README's settings table lacks {name}"));
            let runtime = if setting.mutable { "yes" } else { "no" };
            assert_eq!(row[3], runtime, "README's runtime column for {name}");
        }
    }
}
