//! The text of `INFO`, section by section, with Redis's field names.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::table::registry;
use crate::memory;
use crate::shared::Shared;

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Renders the requested sections (`default`, `all`, `everything` or names).
pub fn render(shared: &Shared, requested: &[&[u8]]) -> String {
    let mut wanted: Vec<String> = requested
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    if wanted.is_empty() {
        wanted.push("default".into());
    }
    let mut sections: Vec<&str> = Vec::new();
    for w in &wanted {
        match w.as_str() {
            "default" => sections.extend(DEFAULT),
            "all" | "everything" => sections.extend(DEFAULT.iter().chain(&["commandstats"])),
            other => sections.extend(
                DEFAULT
                    .iter()
                    .chain(&["commandstats"])
                    .copied()
                    .filter(|s| *s == other),
            ),
        }
    }
    let mut out = String::with_capacity(4096);
    for (i, section) in sections.iter().enumerate() {
        if sections[..i].contains(section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match *section {
            "server" => server(shared, &mut out),
            "clients" => clients(shared, &mut out),
            "memory" => memory_section(shared, &mut out),
            "persistence" => persistence(shared, &mut out),
            "stats" => stats(shared, &mut out),
            "replication" => replication(shared, &mut out),
            "cpu" => cpu(&mut out),
            "errorstats" => errorstats(shared, &mut out),
            "cluster" => cluster(shared, &mut out),
            "keyspace" => keyspace(shared, &mut out),
            "commandstats" => commandstats(shared, &mut out),
            _ => {}
        }
    }
    out
}

fn cluster(shared: &Shared, out: &mut String) {
    let enabled = shared.cluster.enabled();
    out.push_str("# Cluster\r\n");
    field(out, "cluster_enabled", u8::from(enabled));
    if enabled {
        // ringkv's own: where the ring's rebalancing stands (M13).
        let ring = shared.migrations.ring_status();
        field(out, "cluster_ring_rebalancing", u8::from(ring.requested));
        field(out, "cluster_ring_slots_differing", ring.differing);
        field(out, "cluster_ring_slots_moving", ring.moving);
        field(out, "cluster_ring_slots_moved", ring.moved);
    }
}

fn field(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "{name}:{value}\r\n");
}

fn server(shared: &Shared, out: &mut String) {
    let uptime = shared.started.elapsed().as_secs();
    out.push_str("# Server\r\n");
    field(out, "redis_version", crate::REDIS_VERSION);
    field(out, "ringkv_version", env!("CARGO_PKG_VERSION"));
    field(out, "redis_git_sha1", "00000000");
    field(out, "redis_git_dirty", 0);
    field(out, "redis_mode", "standalone");
    field(
        out,
        "os",
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    );
    field(out, "arch_bits", usize::BITS);
    field(out, "multiplexing_api", "epoll");
    field(out, "process_id", std::process::id());
    field(out, "process_supervised", "no");
    field(out, "run_id", &shared.run_id);
    field(out, "tcp_port", shared.config_port());
    field(out, "server_time_usec", shared.clock.now_us());
    field(out, "uptime_in_seconds", uptime);
    field(out, "uptime_in_days", uptime / 86_400);
    field(out, "hz", 10);
    field(out, "configured_hz", 10);
    field(out, "lru_clock", (shared.clock.now_ms() / 1000) & 0xff_ffff);
    field(out, "io_threads_active", 0);
    field(
        out,
        "executable",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
}

fn clients(shared: &Shared, out: &mut String) {
    out.push_str("# Clients\r\n");
    field(out, "connected_clients", shared.clients.len());
    field(out, "cluster_connections", 0);
    field(out, "maxclients", shared.config.maxclients());
    field(out, "client_recent_max_input_buffer", 0);
    field(out, "client_recent_max_output_buffer", 0);
    field(out, "blocked_clients", shared.data.blocked.len());
    field(out, "tracking_clients", 0);
    field(out, "clients_in_timeout_table", 0);
    field(out, "total_blocking_keys", shared.data.blocked.keys());
}

fn memory_section(shared: &Shared, out: &mut String) {
    let alloc = memory::allocator();
    // The counted figure, which eviction compares with maxmemory; jemalloc's own
    // where the counter is not installed.
    let used = match memory::used() {
        0 => alloc.allocated,
        counted => counted,
    };
    let rss = memory::rss();
    let peak = shared.note_memory(used);
    out.push_str("# Memory\r\n");
    field(out, "used_memory", used);
    field(out, "used_memory_human", memory::human(used));
    field(out, "used_memory_rss", rss);
    field(out, "used_memory_rss_human", memory::human(rss));
    field(out, "used_memory_peak", peak);
    field(out, "used_memory_peak_human", memory::human(peak));
    field(out, "total_system_memory", memory::total_system());
    field(
        out,
        "total_system_memory_human",
        memory::human(memory::total_system()),
    );
    let maxmemory = shared.config.maxmemory();
    field(out, "maxmemory", maxmemory);
    field(out, "maxmemory_human", memory::human(maxmemory));
    field(out, "maxmemory_policy", shared.config.policy().name());
    field(out, "allocator_allocated", alloc.allocated);
    field(out, "allocator_active", alloc.active);
    field(out, "allocator_resident", alloc.resident);
    let ratio = if used > 0 {
        rss as f64 / used as f64
    } else {
        0.0
    };
    field(out, "mem_fragmentation_ratio", format!("{ratio:.2}"));
    // Already part of used_memory (every allocation is counted), so maxmemory sees it.
    field(out, "mem_clients_normal", shared.clients.buffer_memory());
    let (scripts, script_bytes) = shared.scripts.size();
    field(out, "number_of_cached_scripts", scripts);
    field(out, "used_memory_scripts_eval", script_bytes);
    let (libraries, functions) = shared.functions.counts();
    field(out, "number_of_functions", functions);
    field(out, "number_of_libraries", libraries);
    field(out, "mem_allocator", "jemalloc-5.3.0");
    field(out, "lazyfree_pending_objects", 0);
}

fn persistence(shared: &Shared, out: &mut String) {
    out.push_str("# Persistence\r\n");
    field(out, "loading", 0);
    field(out, "async_loading", 0);
    field(out, "rdb_changes_since_last_save", shared.data.dirty());
    field(out, "rdb_bgsave_in_progress", 0);
    field(out, "rdb_last_save_time", shared.started_unix);
    field(out, "rdb_last_bgsave_status", "ok");
    field(out, "aof_enabled", 0);
    field(out, "aof_rewrite_in_progress", 0);
}

fn stats(shared: &Shared, out: &mut String) {
    let t = shared.stats.totals();
    let (ops, input, output) = shared.stats.instantaneous();
    let received = shared
        .stats
        .connections_received
        .load(std::sync::atomic::Ordering::Relaxed);
    let rejected = shared
        .stats
        .rejected_connections
        .load(std::sync::atomic::Ordering::Relaxed);
    out.push_str("# Stats\r\n");
    field(out, "total_connections_received", received);
    field(out, "total_commands_processed", t.commands);
    field(out, "instantaneous_ops_per_sec", ops);
    field(out, "total_net_input_bytes", t.net_in);
    field(out, "total_net_output_bytes", t.net_out);
    field(
        out,
        "instantaneous_input_kbps",
        format!("{:.2}", input as f64 / 1024.0),
    );
    field(
        out,
        "instantaneous_output_kbps",
        format!("{:.2}", output as f64 / 1024.0),
    );
    field(out, "rejected_connections", rejected);
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    field(
        out,
        "client_query_buffer_limit_disconnections",
        load(&shared.stats.query_limit_disconnections),
    );
    field(
        out,
        "client_output_buffer_limit_disconnections",
        load(&shared.stats.output_limit_disconnections),
    );
    field(out, "expired_keys", shared.data.keyspace.expired_keys());
    field(out, "evicted_keys", shared.data.evictor.evicted());
    field(out, "evicted_scripts", shared.scripts.evicted());
    let cache = &shared.stats.cache;
    field(out, "cache_null_hits", load(&cache.null_hits));
    field(out, "cache_lease_grants", load(&cache.lease_grants));
    field(out, "cache_stale_fills_rejected", load(&cache.stale_fills));
    field(out, "keyspace_hits", t.hits);
    field(out, "keyspace_misses", t.misses);
    field(out, "pubsub_channels", shared.data.pubsub.channel_count());
    field(out, "pubsub_patterns", shared.data.pubsub.numpat());
    field(
        out,
        "pubsubshard_channels",
        shared.data.pubsub.shard_channel_count(),
    );
    field(out, "total_error_replies", t.error_replies);
    let syncs = &shared.replication.stats;
    field(out, "sync_full", syncs.full.load(Relaxed));
    field(out, "sync_partial_ok", syncs.partial_ok.load(Relaxed));
    field(out, "sync_partial_err", syncs.partial_err.load(Relaxed));
}

fn replication(shared: &Shared, out: &mut String) {
    let replication = &shared.replication;
    let ids = replication.ids();
    let feed = &shared.data.feed;
    let offset = feed.offset();
    out.push_str("# Replication\r\n");
    match &ids.master {
        None => field(out, "role", "master"),
        Some(master) => {
            let now = shared.clock.now_ms();
            let link = replication.link();
            let settings = shared.config.replication();
            field(out, "role", "slave");
            field(out, "master_host", &master.host);
            field(out, "master_port", master.port);
            let up = replication.link_is_up();
            field(out, "master_link_status", if up { "up" } else { "down" });
            let io_ago = match link.last_io {
                0 => -1,
                at => (now.saturating_sub(at) / 1000) as i64,
            };
            field(out, "master_last_io_seconds_ago", io_ago);
            field(
                out,
                "master_sync_in_progress",
                u8::from(replication.loading()),
            );
            field(out, "slave_read_repl_offset", offset);
            field(out, "slave_repl_offset", offset);
            if let Some(since) = link.down_since.filter(|_| !up) {
                field(
                    out,
                    "master_link_down_since_seconds",
                    now.saturating_sub(since) / 1000,
                );
            }
            field(out, "slave_priority", settings.priority);
            field(out, "slave_read_only", u8::from(settings.read_only));
            field(out, "replica_announced", 1);
        }
    }
    let replicas = replication.replicas.list();
    field(out, "connected_slaves", replicas.len());
    for (i, replica) in replicas.iter().enumerate() {
        let line = format!(
            "ip={},port={},state={},offset={},lag={}",
            replica.ip,
            replica.port,
            replica.state().name(),
            replica.acked(),
            replication.replicas.lag_seconds(replica),
        );
        field(out, &format!("slave{i}"), line);
    }
    // The lock rules' state (docs/CLUSTER.md, L1 and L5).
    if !replication.is_replica() {
        let in_sync = replication.in_sync_len();
        field(out, "lock_in_sync_replicas", in_sync);
    }
    let delay = replication.lock_delay_left(&shared.config);
    field(out, "lock_delay_remaining_ms", delay);
    let (wanted, lag) = shared.config.min_replicas();
    if wanted > 0 {
        field(
            out,
            "min_slaves_good_slaves",
            replication.replicas.good(lag * 1000),
        );
    }
    field(out, "master_failover_state", "no-failover");
    field(out, "master_replid", &ids.replid);
    field(out, "master_replid2", &ids.replid2);
    field(out, "master_repl_offset", offset);
    let second = ids.second_offset.map_or(-1, |o| o as i64);
    field(out, "second_repl_offset", second);
    let backlog = feed.backlog();
    field(out, "repl_backlog_active", u8::from(backlog.is_some()));
    let size = backlog.map_or(shared.config.replication().backlog_size, |b| b.size);
    field(out, "repl_backlog_size", size);
    // As Redis counts it: the first byte's offset + 1.
    field(
        out,
        "repl_backlog_first_byte_offset",
        backlog.map_or(0, |b| b.first + 1),
    );
    field(out, "repl_backlog_histlen", backlog.map_or(0, |b| b.len));
}

fn cpu(out: &mut String) {
    let cpu = memory::cpu_of(None);
    out.push_str("# CPU\r\n");
    field(out, "used_cpu_sys", format!("{:.6}", cpu.system));
    field(out, "used_cpu_user", format!("{:.6}", cpu.user));
    field(out, "used_cpu_sys_children", "0.000000");
    field(out, "used_cpu_user_children", "0.000000");
}

fn errorstats(shared: &Shared, out: &mut String) {
    out.push_str("# Errorstats\r\n");
    for (code, count) in shared.stats.errors() {
        let _ = write!(out, "errorstat_{code}:count={count}\r\n");
    }
}

fn keyspace(shared: &Shared, out: &mut String) {
    out.push_str("# Keyspace\r\n");
    let keys = shared.data.keyspace.len();
    if keys > 0 {
        let expires = shared.data.keyspace.volatile_len();
        let _ = write!(out, "db0:keys={keys},expires={expires},avg_ttl=0\r\n");
    }
}

fn commandstats(shared: &Shared, out: &mut String) {
    out.push_str("# Commandstats\r\n");
    for cmd in registry().all() {
        let t = shared.stats.command(cmd.id);
        if t.calls == 0 && t.rejected == 0 {
            continue;
        }
        let per_call = if t.calls > 0 {
            t.usec as f64 / t.calls as f64
        } else {
            0.0
        };
        let _ = write!(
            out,
            "cmdstat_{}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
            cmd.full_name, t.calls, t.usec, t.rejected, t.failed
        );
    }
}
