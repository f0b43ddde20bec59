//! The atomic slot migrations this node takes part in (docs/CLUSTER.md,
//! M7-M10): as the source (exports, each a [`Job`] its task steps) and as the
//! target (imports). Commands start, list and cancel them here; the tasks
//! that move the data report here.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::migration::{Action, Event, Job, Phase};
use crate::cluster::slots::SlotSet;

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    /// Applying the source's stream; the slots are hidden.
    Streaming,
    /// Claimed under this config epoch.
    Claimed(u64),
    /// Ended without a claim: its keys were deleted.
    Dropped,
}

impl ImportPhase {
    /// The name `CLUSTER GETSLOTMIGRATIONS` shows.
    pub fn name(self) -> &'static str {
        match self {
            ImportPhase::Streaming => "importing",
            ImportPhase::Claimed(_) => "success",
            ImportPhase::Dropped => "failed",
        }
    }
}

/// A migration into this node.
#[derive(Debug, Clone)]
pub struct Import {
    /// The job's id (the source's).
    pub id: u64,
    /// The master sending the slots.
    pub source: Id,
    /// The slots coming.
    pub slots: SlotSet,
    /// Where it is.
    pub phase: ImportPhase,
    /// Stream bytes applied.
    pub applied: u64,
    /// Records applied (a key of the snapshots, or a write).
    pub records: u64,
    /// When it started.
    pub started: Millis,
    /// When it ended, once over.
    pub ended: Option<Millis>,
    /// Cancelled to end its stream (`SYNCSLOTS FINISH` before the handoff).
    pub stop: CancellationToken,
}

/// A migration out of this node: its job, and how to reach its task.
#[derive(Debug)]
struct Export {
    job: Job,
    events: mpsc::UnboundedSender<Event>,
    /// Keys its snapshots sent.
    keys: u64,
}

/// Why a migration could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A slot is moving already (in either direction).
    #[error("ERR Slot {0} is already being migrated")]
    Moving(u16),
}

#[derive(Debug, Default)]
struct Inner {
    exports: BTreeMap<u64, Export>,
    imports: BTreeMap<u64, Import>,
    /// Jobs started and not yet taken by the task that runs them.
    new: Vec<(u64, mpsc::UnboundedReceiver<Event>)>,
}

impl Inner {
    fn moving(&self, slots: &SlotSet) -> Result<(), StartError> {
        let busy = self
            .exports
            .values()
            .filter(|e| !e.job.phase.is_over())
            .map(|e| &e.job.slots)
            .chain(
                self.imports
                    .values()
                    .filter(|i| i.phase == ImportPhase::Streaming)
                    .map(|i| &i.slots),
            );
        for taken in busy {
            if let Some(slot) = slots.iter().find(|&s| taken.contains(s)) {
                return Err(StartError::Moving(slot));
            }
        }
        Ok(())
    }

    /// Forgets the oldest ended migrations beyond `keep`.
    fn trim(&mut self, keep: usize) {
        let ended: Vec<u64> = self
            .exports
            .iter()
            .filter(|(_, e)| e.job.phase.is_over())
            .map(|(id, _)| *id)
            .collect();
        for id in ended.iter().take(ended.len().saturating_sub(keep)) {
            self.exports.remove(id);
        }
        let ended: Vec<u64> = self
            .imports
            .iter()
            .filter(|(_, i)| i.phase != ImportPhase::Streaming)
            .map(|(id, _)| *id)
            .collect();
        for id in ended.iter().take(ended.len().saturating_sub(keep)) {
            self.imports.remove(id);
        }
    }
}

/// Every migration this node takes part in.
#[derive(Debug, Default)]
pub struct Migrations {
    inner: Mutex<Inner>,
    started: Notify,
    ring: Mutex<RingStatus>,
}

/// One row of `CLUSTER GETSLOTMIGRATIONS`.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The job's id.
    pub id: u64,
    /// True where this node sends the slots.
    pub source_side: bool,
    /// The other master.
    pub peer: Id,
    /// The slots.
    pub slots: SlotSet,
    /// The phase's name.
    pub state: &'static str,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Stream bytes sent (source) or applied (target).
    pub bytes: u64,
    /// Keys sent by the snapshots (source), or records applied (target).
    pub keys: u64,
    /// When it started and ended.
    pub started: Millis,
    /// When it ended, once over.
    pub ended: Option<Millis>,
}

impl Migrations {
    /// Starts `jobs` (M7), all or none: none if one of their slots is moving
    /// already. Their tasks are started by [`Migrations::take_new`].
    pub fn start(&self, jobs: Vec<Job>) -> Result<(), StartError> {
        let mut inner = self.inner.lock();
        for job in &jobs {
            inner.moving(&job.slots)?;
        }
        for job in jobs {
            let (events, receiver) = mpsc::unbounded_channel();
            let id = job.id;
            inner.exports.insert(
                id,
                Export {
                    job,
                    events,
                    keys: 0,
                },
            );
            inner.new.push((id, receiver));
        }
        drop(inner);
        self.started.notify_one();
        Ok(())
    }

    /// Waits until a job was started.
    pub async fn wait_started(&self) {
        self.started.notified().await;
    }

    /// The jobs started since the last call, each with the events its task
    /// must take ([`Event::Cancel`] from commands).
    pub fn take_new(&self) -> Vec<(u64, mpsc::UnboundedReceiver<Event>)> {
        std::mem::take(&mut self.inner.lock().new)
    }

    /// The job `id` (a copy), if known.
    pub fn job(&self, id: u64) -> Option<Job> {
        self.inner.lock().exports.get(&id).map(|e| e.job.clone())
    }

    /// Steps job `id` with `event`; returns the actions for its task, and
    /// the job's final phase if this event ended it. Once a job ended, the
    /// finished migrations beyond `keep` are forgotten.
    pub fn step(
        &self,
        id: u64,
        event: Event,
        now: Millis,
        keep: usize,
    ) -> (Vec<Action>, Option<Phase>) {
        let mut inner = self.inner.lock();
        let Some(export) = inner.exports.get_mut(&id) else {
            return (Vec::new(), None);
        };
        let was_over = export.job.phase.is_over();
        let actions = export.job.step(event, now);
        let ended = (!was_over && export.job.phase.is_over()).then(|| export.job.phase.clone());
        if ended.is_some() {
            inner.trim(keep);
        }
        (actions, ended)
    }

    /// `CLUSTER CANCELSLOTMIGRATIONS`: asks every running job to cancel
    /// (those past their handoff cannot). Returns how many were asked.
    pub fn cancel_all(&self) -> usize {
        let inner = self.inner.lock();
        inner
            .exports
            .values()
            .filter(|e| !e.job.phase.is_over())
            .filter(|e| e.events.send(Event::Cancel).is_ok())
            .count()
    }

    /// Starts importing `slots` from `source` under job `id` (M8), unless
    /// one of them is moving already. Returns the import's stop token.
    pub fn begin_import(
        &self,
        id: u64,
        source: Id,
        slots: SlotSet,
        now: Millis,
    ) -> Result<CancellationToken, StartError> {
        let mut inner = self.inner.lock();
        inner.moving(&slots)?;
        let stop = CancellationToken::new();
        let import = Import {
            id,
            source,
            slots,
            phase: ImportPhase::Streaming,
            applied: 0,
            records: 0,
            started: now,
            ended: None,
            stop: stop.clone(),
        };
        inner.imports.insert(id, import);
        Ok(stop)
    }

    /// The import `id` (a copy), if known.
    pub fn import(&self, id: u64) -> Option<Import> {
        self.inner.lock().imports.get(&id).cloned()
    }

    /// Notes that import `id` applied `applied` stream bytes, `records`
    /// records.
    pub fn imported(&self, id: u64, applied: u64, records: u64) {
        if let Some(import) = self.inner.lock().imports.get_mut(&id) {
            import.applied = applied;
            import.records = records;
        }
    }

    /// Notes that export `id`'s snapshots sent `keys` keys.
    pub fn exported(&self, id: u64, keys: u64) {
        if let Some(export) = self.inner.lock().exports.get_mut(&id) {
            export.keys = keys;
        }
    }

    /// Ends import `id` by claiming its slots with `claim` (which returns
    /// the config epoch), unless it was stopped first: the two are decided
    /// under one lock, so a source asking about the outcome
    /// ([`Migrations::finish_import`]) and the handoff never both win.
    /// Returns the epoch, or `None` if the import was stopped.
    pub fn claim_import(
        &self,
        id: u64,
        now: Millis,
        keep: usize,
        claim: impl FnOnce(&SlotSet) -> Option<u64>,
    ) -> Option<u64> {
        let mut inner = self.inner.lock();
        let import = inner.imports.get_mut(&id)?;
        if import.phase != ImportPhase::Streaming || import.stop.is_cancelled() {
            return None;
        }
        let epoch = claim(&import.slots)?;
        import.phase = ImportPhase::Claimed(epoch);
        import.ended = Some(now);
        inner.trim(keep);
        Some(epoch)
    }

    /// Ends import `id` without a claim (its keys are being deleted).
    pub fn drop_import(&self, id: u64, now: Millis, keep: usize) {
        let mut inner = self.inner.lock();
        if let Some(import) = inner.imports.get_mut(&id) {
            if import.phase == ImportPhase::Streaming {
                import.phase = ImportPhase::Dropped;
                import.ended = Some(now);
                import.stop.cancel();
            }
        }
        inner.trim(keep);
    }

    /// `CLUSTER SYNCSLOTS FINISH id` (M10): the epoch the import claimed
    /// under, or `None` once it is stopped for good (an import still
    /// streaming is stopped now, so it never claims).
    pub fn finish_import(&self, id: u64) -> Option<u64> {
        let inner = self.inner.lock();
        let import = inner.imports.get(&id)?;
        match import.phase {
            ImportPhase::Claimed(epoch) => Some(epoch),
            ImportPhase::Streaming | ImportPhase::Dropped => {
                import.stop.cancel();
                None
            }
        }
    }

    /// Every migration, exports first, oldest first.
    pub fn list(&self) -> Vec<Listed> {
        let inner = self.inner.lock();
        let exports = inner.exports.values().map(|e| Listed {
            id: e.job.id,
            source_side: true,
            peer: e.job.target,
            slots: e.job.slots.clone(),
            state: e.job.phase.name(),
            error: match &e.job.phase {
                crate::cluster::migration::Phase::Failed(why) => Some(why.clone()),
                _ => None,
            },
            bytes: e.job.progress.sent,
            keys: e.keys,
            started: e.job.started,
            ended: e.job.ended,
        });
        let imports = inner.imports.values().map(|i| Listed {
            id: i.id,
            source_side: false,
            peer: i.source,
            slots: i.slots.clone(),
            state: i.phase.name(),
            error: None,
            bytes: i.applied,
            keys: i.records,
            started: i.started,
            ended: i.ended,
        });
        exports.chain(imports).collect()
    }
}

/// Where the ring's rebalancing stands (`CLUSTER RING STATUS`, `INFO
/// cluster`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStatus {
    /// An operator asked for a rebalance that has not finished.
    pub requested: bool,
    /// Slots whose owner is not their ring owner, at the last plan.
    pub differing: usize,
    /// Slots of the moves under way.
    pub moving: usize,
    /// Slots moved by rebalancing since start.
    pub moved: u64,
}

impl Migrations {
    /// Where rebalancing stands.
    pub fn ring_status(&self) -> RingStatus {
        *self.ring.lock()
    }

    /// `CLUSTER RING REBALANCE`: rebalance until the table is the ring's.
    pub fn request_rebalance(&self) {
        self.ring.lock().requested = true;
    }

    /// Updates where rebalancing stands.
    pub fn set_ring_status(&self, update: impl FnOnce(&mut RingStatus)) {
        update(&mut self.ring.lock());
    }
}
