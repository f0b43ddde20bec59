//! The server cron: ten times a second, samples the rate counters and runs an
//! active expiry cycle. The cycle runs on the blocking pool with a time budget, so
//! it never stalls a runtime thread that serves clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keyspace::ActiveExpire;
use crate::server::Shared;

/// Cron period (Redis's default `hz 10`).
const PERIOD: Duration = Duration::from_millis(100);
/// Most time one active expiry cycle may take: a quarter of the period, as Redis.
const EXPIRE_BUDGET: Duration = Duration::from_millis(25);

/// Runs until shutdown.
pub async fn run(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut active = ActiveExpire::default();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        shared
            .stats
            .sample(shared.started.elapsed().as_millis() as u64);
        let task_shared = shared.clone();
        let cycle = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let now = task_shared.clock.now_ms();
            let report = active.run_cycle(&task_shared.keyspace, now, || {
                started.elapsed() < EXPIRE_BUDGET
            });
            (active, report)
        });
        match cycle.await {
            Ok((returned, report)) => {
                active = returned;
                crate::notify::publish_expired(&shared);
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
                active = ActiveExpire::default();
            }
        }
    }
}
