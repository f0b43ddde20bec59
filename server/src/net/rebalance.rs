//! The ring rebalancing itself (docs/CLUSTER.md, M13): when an operator asked
//! (`CLUSTER RING REBALANCE`, `CLUSTER RING DRAIN`) or, with
//! `cluster-auto-rebalance`, every 10 s on the planner, the machine plans the
//! moves that bring the table to the ring and this task starts them as
//! atomic migrations on their sources (this node's own directly, others'
//! with `CLUSTER MIGRATESLOTS`), a bounded number of slots at a time, until
//! the plan is empty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::machine::RingMove;
use crate::cluster::migration::{Job, JobSettings};
use crate::shared::Shared;

/// How often the task looks for work.
const CHECK: Duration = Duration::from_secs(1);
/// Rounds in a row that may move nothing before a rebalance gives up.
const IDLE_ROUNDS: u32 = 3;
/// How often the planner rebalances on its own (`cluster-auto-rebalance`).
const AUTO_EVERY: Duration = Duration::from_secs(10);
/// How long a round of moves may go without a slot reaching its ring owner
/// before it is given up (the next round plans from the table as it is).
const STALLED: Duration = Duration::from_secs(10);
/// How often a round's progress is checked.
const POLL: Duration = Duration::from_millis(100);

/// Rebalances when asked, until shutdown.
pub async fn run_rebalancer(shared: Arc<Shared>) {
    if !shared.cluster.enabled() {
        return;
    }
    let mut checks = tokio::time::interval(CHECK);
    let mut last_auto = Instant::now();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = checks.tick() => {}
        }
        let settings = shared.config.slot_migration();
        let requested = shared.migrations.ring_status().requested;
        let auto = settings.auto_rebalance
            && last_auto.elapsed() >= AUTO_EVERY
            && shared.cluster.step(|c, _| c.is_planner()) == Some(true);
        if auto {
            last_auto = Instant::now();
            // Once started, rounds follow each other until the table is the
            // ring's, as an operator's request does.
            shared.migrations.request_rebalance();
        }
        if requested || auto {
            rebalance(&shared).await;
        }
    }
}

/// Runs rounds while the rebalance is requested. Rounds that move nothing
/// (a source refused, or a view not yet settled after a node joined) are
/// retried a second apart, a few times, before the request is dropped.
async fn rebalance(shared: &Shared) {
    let mut idle = 0;
    while shared.migrations.ring_status().requested && !shared.shutdown.is_cancelled() {
        let max_slots = shared.config.slot_migration().rebalance_max_slots;
        if round(shared, max_slots).await > 0 {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle >= IDLE_ROUNDS {
            shared.migrations.set_ring_status(|s| s.requested = false);
            return;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK) => {}
        }
    }
}

/// One round: plans, starts the moves, waits for those started to end.
/// Returns how many slots reached their ring owner.
async fn round(shared: &Shared, max_slots: usize) -> usize {
    let Some(plan) = shared.cluster.step(|c, _| c.ring_plan(max_slots)) else {
        return 0;
    };
    let planned: usize = plan.moves.iter().map(|m| m.slots.len()).sum();
    shared.migrations.set_ring_status(|s| {
        s.differing = plan.differing;
        s.moving = planned;
        if plan.moves.is_empty() {
            s.requested = false;
        }
    });
    if plan.moves.is_empty() {
        return 0;
    }
    tracing::info!(
        slots = planned,
        differing = plan.differing,
        "ring rebalance: moving slots to their ring owners"
    );
    let mut started = Vec::new();
    for m in plan.moves {
        match start(shared, &m).await {
            Ok(()) => started.push(m),
            Err(why) => {
                tracing::warn!(source = %m.source, target = %m.target, "ring rebalance: {why}");
            }
        }
    }
    let moving: usize = started.iter().map(|m| m.slots.len()).sum();
    // The round ends when every slot started has its ring owner, or they
    // failed to (the next round plans again from the table as it is then).
    let mut progressed = Instant::now();
    let done = |shared: &Shared| -> usize {
        let view = shared.cluster.view();
        let Some(view) = view.as_deref().and_then(Option::as_deref) else {
            return 0;
        };
        started
            .iter()
            .map(|m| {
                m.slots
                    .iter()
                    .filter(|&s| view.owner(s).is_some_and(|o| o.id == m.target))
                    .count()
            })
            .sum()
    };
    let mut last = 0;
    while last < moving && progressed.elapsed() < STALLED {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return last,
            _ = tokio::time::sleep(POLL) => {}
        }
        let now_done = done(shared);
        if now_done != last {
            progressed = Instant::now();
            last = now_done;
        }
        shared
            .migrations
            .set_ring_status(|s| s.moving = moving - now_done);
    }
    shared.migrations.set_ring_status(|s| {
        s.moved += last as u64;
        s.moving = 0;
    });
    if last < moving {
        tracing::warn!(
            moved = last,
            started = moving,
            "ring rebalance: round stalled"
        );
    }
    last
}

/// Starts move `m` on its source.
async fn start(shared: &Shared, m: &RingMove) -> Result<(), String> {
    if shared.cluster.myself() == Some(m.source) {
        let settings = shared.config.slot_migration();
        let settings = JobSettings {
            max_lag: settings.max_lag,
            pause_timeout: settings.pause_timeout_ms,
            progress_timeout: shared.config.replication().timeout_ms,
        };
        let now = shared.clock.now_ms();
        let check = shared
            .cluster
            .step(|c, _| c.check_export(&m.slots, m.target));
        if let Some(Err(err)) = check {
            return Err(err.to_string());
        }
        let job = Job::new(rand::random(), m.target, m.slots.clone(), settings, now);
        return shared
            .migrations
            .start(vec![job])
            .map_err(|e| e.to_string());
    }
    let mut args: Vec<String> = vec!["CLUSTER".into(), "MIGRATESLOTS".into(), "SLOTSRANGE".into()];
    for (a, b) in m.slots.ranges() {
        args.extend([a.to_string(), b.to_string()]);
    }
    args.extend(["NODE".into(), m.target.to_string()]);
    let args: Vec<&[u8]> = args.iter().map(String::as_bytes).collect();
    let (_, reply) = super::export::call(shared, m.source, &args).await?;
    match reply.as_str() {
        "+OK" => Ok(()),
        _ => Err(format!("the source refused: {reply}")),
    }
}
