//! The server cron: ten times a second, samples the rate counters, runs an
//! active expiry cycle, evicts if memory is over the limit and defragments while
//! the allocator reports fragmentation. The work runs on the blocking pool with
//! time budgets, so it never stalls a runtime thread that serves clients.
//! Uses the shared node state and the write path (expiry and eviction are
//! units of work).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keyspace::{ActiveDefrag, ActiveExpire};
use crate::shared::Shared;

/// Cron period (Redis's default `hz 10`).
const PERIOD: Duration = Duration::from_millis(100);
/// Most time one active expiry cycle may take: a quarter of the period, as Redis.
const EXPIRE_BUDGET: Duration = Duration::from_millis(25);
/// Most time one defragmentation step may take (Redis's `active-defrag-cycle-min`
/// is 1% of the CPU; a pass over a million keys then takes about a second).
const DEFRAG_BUDGET: Duration = Duration::from_millis(5);

/// Background work carried from one tick to the next.
#[derive(Default)]
struct Background {
    expire: ActiveExpire,
    defrag: ActiveDefrag,
}

/// Pings a master's replicas through the stream every
/// `repl-ping-replica-period`, so they can tell a quiet master from a dead
/// link (the ping is part of the stream, as in Redis).
fn ping_replicas(shared: &Shared, last: &mut Instant) {
    let period = Duration::from_millis(shared.config.replication().ping_period_ms);
    if last.elapsed() < period {
        return;
    }
    *last = Instant::now();
    let replication = &shared.replication;
    if replication.is_replica() || replication.replicas.is_empty() {
        return;
    }
    let mut ping = Vec::new();
    crate::protocol::encode_command(&mut ping, &[b"PING"]);
    shared.data.feed.append(&ping, 1, crate::feed::Scope::Link);
}

/// Runs until shutdown.
pub async fn run(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut background = Background::default();
    let mut last_ping = Instant::now();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        shared
            .stats
            .sample(shared.started.elapsed().as_millis() as u64);
        shared.data.keyspace.fit_sketch();
        shared.note_memory(crate::memory::used());
        ping_replicas(&shared, &mut last_ping);
        shared.migrate_links.close_idle();
        shared.cluster.set_repl_offset(shared.data.feed.offset());
        // A replica neither expires nor evicts: its master's stream says what
        // goes (R4).
        if shared.replication.is_replica() {
            continue;
        }
        shared
            .replication
            .refresh_in_sync(&shared.config, &shared.cluster);
        hand_on_expired_locks(&shared);
        let task_shared = shared.clone();
        let cycle = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let now = task_shared.clock.now_ms();
            let report = background.expire.run_cycle(
                &task_shared.data.keyspace,
                now,
                || started.elapsed() < EXPIRE_BUDGET,
                |key| crate::write::expired(&task_shared.data, key),
            );
            let alloc = crate::memory::allocator();
            if background.defrag.wanted(alloc.allocated, alloc.active) {
                let started = Instant::now();
                let finished = crate::memory::without_thread_cache(|| {
                    background.defrag.step(&task_shared.data.keyspace, || {
                        started.elapsed() < DEFRAG_BUDGET
                    })
                });
                if finished {
                    let alloc = crate::memory::allocator();
                    background.defrag.pass_done(alloc.allocated, alloc.active);
                }
            }
            // Memory over the limit with no writes coming (the limit was lowered
            // inside a transaction, or clients only read): evict here.
            let _ = crate::write::make_room(&task_shared.data, now);
            (background, report)
        });
        match cycle.await {
            Ok((returned, report)) => {
                background = returned;
                if report.swept.expired > 0 {
                    tracing::debug!(
                        expired = report.swept.expired,
                        slots = report.slots,
                        "active expiry"
                    );
                }
            }
            Err(err) => {
                tracing::error!(%err, "active expiry cycle failed");
                background = Background::default();
            }
        }
    }
}

/// Serves the first waiter of each lock or cache fill whose lease ran out (or
/// that a lock gate kept waiting: too few in-sync replicas, lock-delay): an
/// expiring key makes no write that would serve the queue. Each hand-over is
/// a unit of work of its own; a grant it makes waits for acknowledgements as
/// any lock change does.
fn hand_on_expired_locks(shared: &Shared) {
    let mut changes = crate::write::Changes::default();
    for key in shared.data.blocked.lease_keys() {
        let now = shared.clock.now_ms();
        let mut locks = crate::keyspace::Locked::new(&shared.data.keyspace);
        locks.acquire_key(&key);
        changes.begin(shared.data.feed.is_active());
        let at = std::time::Instant::now();
        let members = crate::commands::held::open(shared, &mut changes, at);
        // Looking the key up expires its lease; the commit then serves the queue.
        locks.table(&key).peek(&key, now);
        locks.take_expired(|key| changes.expired(key));
        changes.ready(&key);
        crate::write::commit(&shared.data, &mut locks, &mut changes, now);
        crate::commands::held::close(shared, &mut locks, &mut changes, members, now);
    }
}
