//! A model of atomic slot migration for the simulator (docs/CLUSTER.md,
//! M7-M11, I9 and I10): masters hold keys; clients write new keys through
//! the table (one redirect); jobs move a few slots at a time, each driven by
//! the real [`Job`] state machine, with its stream, acknowledgements,
//! handoff and outcome questions as messages that the simulated network
//! delays or loses (a lost one breaks the stream), and the real claim
//! (`Cluster::claim_import`, `Cluster::handed_off`). Crashed masters come
//! back empty. I10 is checked by [`Sim::check_moves`] once the run settles.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngExt;

use super::{Event, Sim, Violation};
use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::migration::{Action, Event as JobEvent, Job, JobSettings};
use crate::cluster::slots::SlotSet;

/// How often a client writes a key.
pub(super) const WRITE_EVERY: Millis = 5;
/// How often a new job may start.
const JOB_EVERY: Millis = 700;
/// The slots the model moves and writes to.
const SLOTS_USED: u16 = 48;
/// The job settings (stream offsets count messages: `max_lag` 0 pauses once
/// the target acknowledged the last one).
const SETTINGS: JobSettings = JobSettings {
    max_lag: 0,
    pause_timeout: 2_000,
    progress_timeout: 5_000,
};

/// Keys per slot.
type Keys = BTreeMap<u16, BTreeSet<u64>>;

/// What source and target say to each other.
#[derive(Debug, Clone)]
pub(super) enum MoveMsg {
    /// `SYNCSLOTS BEGIN`.
    Begin {
        job: u64,
        source: Id,
        slots: SlotSet,
    },
    /// The target's `+OK`, or a refusal.
    Accepted { job: u64, ok: bool },
    /// Stream record number `seq`: the slots' keys as they are now.
    Sync { job: u64, seq: u64, keys: Keys },
    /// The target applied up to `seq`.
    Ack { job: u64, seq: u64 },
    /// The handoff, with the final keys (the stream's whole state: the
    /// model's messages may overtake each other, a stream's bytes cannot)
    /// and the source's current epoch.
    Handoff { job: u64, keys: Keys, epoch: u64 },
    /// `+HANDOFF epoch`, or (`None`) the import is over without a claim.
    Outcome { job: u64, epoch: Option<u64> },
    /// `SYNCSLOTS FINISH`.
    Finish { job: u64, slots: SlotSet },
}

/// A job on its source.
#[derive(Debug)]
struct SimJob {
    job: Job,
    target: usize,
    sent: u64,
    acked: u64,
    /// The handoff was sent and the source holds its epoch.
    held: bool,
}

/// An import on its target.
#[derive(Debug)]
struct SimImport {
    slots: SlotSet,
    hidden: Keys,
    /// When the stream last brought something (a silent one times out).
    heard: Millis,
}

/// One node's side.
#[derive(Debug, Default)]
pub(super) struct NodeMoves {
    keys: Keys,
    jobs: BTreeMap<u64, SimJob>,
    imports: BTreeMap<u64, SimImport>,
    /// Imports that claimed, with their epoch (forgotten by a restart).
    claimed: BTreeMap<u64, u64>,
    paused: SlotSet,
}

/// What the model counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveCounts {
    /// Writes acknowledged.
    pub writes: u64,
    /// Writes refused (no owner reached, or paused).
    pub refused: u64,
    /// Jobs that ended with the target owning the slots.
    pub done: u64,
    /// Jobs that ended with the source keeping them.
    pub failed: u64,
}

/// The model.
#[derive(Debug)]
pub(super) struct Moves {
    nodes: Vec<NodeMoves>,
    /// Every acknowledged key, with its slot.
    acked: BTreeMap<u64, u16>,
    /// Keys that were on a node when it crashed (a restarted master is
    /// empty, as any cache).
    lost: BTreeSet<u64>,
    next_key: u64,
    next_job: u64,
    pub(super) counts: MoveCounts,
}

impl Moves {
    pub(super) fn new(nodes: usize) -> Moves {
        Moves {
            nodes: (0..nodes).map(|_| NodeMoves::default()).collect(),
            acked: BTreeMap::new(),
            lost: BTreeSet::new(),
            next_key: 1,
            next_job: 1,
            counts: MoveCounts::default(),
        }
    }
}

use super::serves;

impl Sim {
    /// Turns on the migration model: clients write keys to the first slots
    /// and jobs move them between masters. Checks I10 with
    /// [`Sim::check_moves`].
    pub fn set_moves(&mut self) {
        self.moves = Some(Moves::new(self.nodes.len()));
        let at = self.now + WRITE_EVERY;
        self.schedule(at, Event::MoveWrite);
        let at = self.now + JOB_EVERY;
        self.schedule(at, Event::MoveStart);
    }

    /// What the migration model counted.
    pub fn move_counts(&self) -> MoveCounts {
        self.moves.as_ref().map(|m| m.counts).unwrap_or_default()
    }

    /// Stops new writes and jobs (to let the run settle).
    pub fn stop_moves(&mut self) {
        if let Some(moves) = &mut self.moves {
            moves.next_job = u64::MAX;
        }
    }

    /// Node `i` crashed: its keys, jobs and imports are gone.
    pub(super) fn moves_crashed(&mut self, i: usize) {
        if let Some(moves) = &mut self.moves {
            let node = std::mem::take(&mut moves.nodes[i]);
            moves.lost.extend(node.keys.values().flatten());
        }
    }

    /// Node `i` gave up `slots` to another master (rule 16): their keys go.
    pub(super) fn moves_lost_slots(&mut self, i: usize, slots: &SlotSet) {
        if let Some(moves) = &mut self.moves {
            moves.nodes[i].keys.retain(|slot, _| !slots.contains(*slot));
        }
    }

    /// A client writes a new key to a random slot, through a random node and
    /// one redirect.
    pub(super) fn move_write(&mut self) {
        let Some(next_key) = self.moves.as_ref().map(|m| m.next_key) else {
            return;
        };
        let at = self.now + WRITE_EVERY;
        if self.moves.as_ref().is_some_and(|m| m.next_job != u64::MAX) {
            self.schedule(at, Event::MoveWrite);
        }
        let slot = self.rng.random_range(0..SLOTS_USED);
        let target = self.client_target(slot);
        let moves = self.moves.as_mut().expect("on");
        match target.filter(|&at| !moves.nodes[at].paused.contains(slot)) {
            Some(at) => {
                let keys = moves.nodes[at].keys.entry(slot).or_default();
                keys.insert(next_key);
                moves.acked.insert(next_key, slot);
                moves.next_key += 1;
                moves.counts.writes += 1;
            }
            None => moves.counts.refused += 1,
        }
    }

    /// Starts a job of a few slots between two random masters, if the
    /// source may (M7).
    pub(super) fn move_start(&mut self) {
        let Some(job_id) = self.moves.as_ref().map(|m| m.next_job) else {
            return;
        };
        if job_id == u64::MAX {
            return;
        }
        let at = self.now + JOB_EVERY;
        self.schedule(at, Event::MoveStart);
        let n = self.nodes.len();
        let (source, target) = (self.rng.random_range(0..n), self.rng.random_range(0..n));
        let (Some(c), Some(t)) = (
            self.nodes[source].cluster.as_ref(),
            self.nodes[target].cluster.as_ref(),
        ) else {
            return;
        };
        if source == target || self.nodes[source].paused {
            return;
        }
        let target_id = t.myself();
        let moves = self.moves.as_ref().expect("on");
        let busy = |s: u16| {
            moves.nodes[source]
                .jobs
                .values()
                .any(|j| j.job.slots.contains(s))
        };
        let mine: Vec<u16> = (0..SLOTS_USED)
            .filter(|&s| serves(c, s) && !busy(s))
            .collect();
        if mine.is_empty() {
            return;
        }
        let count = self.rng.random_range(1..=mine.len().min(6));
        let mut slots = SlotSet::default();
        for &s in mine.iter().take(count) {
            slots.insert(s);
        }
        if c.check_export(&slots, target_id).is_err() {
            return;
        }
        let job = Job::new(job_id, target_id, slots.clone(), SETTINGS, self.now);
        let moves = self.moves.as_mut().expect("on");
        moves.next_job += 1;
        moves.nodes[source].jobs.insert(
            job_id,
            SimJob {
                job,
                target,
                sent: 0,
                acked: 0,
                held: false,
            },
        );
        let source_id = self.id(source);
        self.move_send(
            source,
            target,
            MoveMsg::Begin {
                job: job_id,
                source: source_id,
                slots,
            },
        );
    }

    /// Sends `msg` from `from` to `to`: delivered after a delay if they can
    /// reach each other then; otherwise the stream breaks.
    fn move_send(&mut self, from: usize, to: usize, msg: MoveMsg) {
        let at = self.now + self.delay();
        self.schedule(
            at,
            Event::Move {
                from,
                to,
                msg: Box::new(msg),
            },
        );
    }

    /// Node `i`'s periodic work: each job's stream sends the slots' keys as
    /// they are, and learns the time.
    pub(super) fn moves_tick(&mut self, i: usize) {
        let now = self.now;
        let Some(moves) = &mut self.moves else {
            return;
        };
        // An import whose stream went silent ends without a claim (its
        // source is gone: M11).
        moves.nodes[i]
            .imports
            .retain(|_, import| now - import.heard <= SETTINGS.progress_timeout);
        let ids: Vec<u64> = moves.nodes[i].jobs.keys().copied().collect();
        for id in ids {
            let streaming = self.moves.as_ref().expect("on").nodes[i]
                .jobs
                .get(&id)
                .is_some_and(|j| j.job.phase == crate::cluster::migration::Phase::Streaming);
            if streaming {
                let (target, seq, keys) = {
                    let node = &mut self.moves.as_mut().expect("on").nodes[i];
                    let job = node.jobs.get_mut(&id).expect("present");
                    job.sent += 1;
                    let keys = slot_keys(&node.keys, &job.job.slots);
                    (job.target, job.sent, keys)
                };
                self.move_send(i, target, MoveMsg::Sync { job: id, seq, keys });
            }
            self.job_event(i, id, JobEvent::Tick);
        }
    }

    /// A move message arrives (or, unreachable, breaks its stream).
    pub(super) fn move_deliver(&mut self, from: usize, to: usize, msg: MoveMsg) {
        if self.moves.is_none() {
            return;
        }
        if !self.reachable(from, to) {
            // The stream (or the question) broke: each side learns it.
            let job = msg_job(&msg);
            self.job_event(from, job, JobEvent::LinkLost("unreachable".into()));
            self.job_event(to, job, JobEvent::LinkLost("unreachable".into()));
            self.import_lost(from, job);
            self.import_lost(to, job);
            return;
        }
        match msg {
            MoveMsg::Begin { job, source, slots } => {
                let ok = self.nodes[to]
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.check_import(&slots, source).is_ok());
                let moves = self.moves.as_mut().expect("on");
                let busy = moves.nodes[to]
                    .imports
                    .values()
                    .any(|i| i.slots.iter().any(|s| slots.contains(s)));
                let ok = ok && !busy;
                if ok {
                    let node = &mut moves.nodes[to];
                    node.keys.retain(|s, _| !slots.contains(*s));
                    node.imports.insert(
                        job,
                        SimImport {
                            slots,
                            hidden: Keys::new(),
                            heard: self.now,
                        },
                    );
                }
                self.move_send(to, from, MoveMsg::Accepted { job, ok });
            }
            MoveMsg::Accepted { job, ok } => {
                let event = match ok {
                    true => JobEvent::Accepted,
                    false => JobEvent::LinkLost("refused".into()),
                };
                self.job_event(to, job, event);
            }
            MoveMsg::Sync { job, seq, keys } => {
                let moves = self.moves.as_mut().expect("on");
                if let Some(import) = moves.nodes[to].imports.get_mut(&job) {
                    import.hidden = keys;
                    import.heard = self.now;
                    self.move_send(to, from, MoveMsg::Ack { job, seq });
                }
            }
            MoveMsg::Ack { job, seq } => {
                let moves = self.moves.as_mut().expect("on");
                let Some(j) = moves.nodes[to].jobs.get_mut(&job) else {
                    return;
                };
                j.acked = j.acked.max(seq);
                let event = JobEvent::Progress {
                    sent: j.sent,
                    acked: j.acked,
                    snapshot_done: j.sent > 0,
                };
                self.job_event(to, job, event);
            }
            MoveMsg::Handoff {
                job,
                keys,
                epoch: source_epoch,
            } => {
                let Some(import) = self.moves.as_mut().expect("on").nodes[to]
                    .imports
                    .remove(&job)
                else {
                    return;
                };
                let mut epoch = None;
                self.with(to, |c, now| {
                    epoch = c.claim_import(&import.slots, source_epoch, now).ok()
                });
                let moves = self.moves.as_mut().expect("on");
                if let Some(epoch) = epoch {
                    let node = &mut moves.nodes[to];
                    node.keys.extend(keys);
                    node.claimed.insert(job, epoch);
                }
                self.move_send(to, from, MoveMsg::Outcome { job, epoch });
            }
            MoveMsg::Outcome { job, epoch } => {
                let event = match epoch {
                    Some(epoch) => JobEvent::Claimed(epoch),
                    None => JobEvent::NotClaimed,
                };
                self.job_event(to, job, event);
            }
            MoveMsg::Finish { job, slots } => {
                // As `CLUSTER SYNCSLOTS FINISH`: claimed, or (an import it
                // does not know: restarted) the slots are its own; otherwise
                // the import is over for good.
                let moves = self.moves.as_mut().expect("on");
                let node = &mut moves.nodes[to];
                let mut epoch = node.claimed.get(&job).copied();
                node.imports.remove(&job);
                if epoch.is_none() {
                    epoch = self.nodes[to].cluster.as_ref().and_then(|c| {
                        let me = c.myself();
                        let owns = slots.iter().any(|s| c.owner(s) == Some(me));
                        owns.then(|| c.node(me).map_or(0, |n| n.config_epoch))
                    });
                }
                self.move_send(to, from, MoveMsg::Outcome { job, epoch });
            }
        }
    }

    /// Node `i`'s import `job` lost its stream: its keys go.
    fn import_lost(&mut self, i: usize, job: u64) {
        if let Some(moves) = &mut self.moves {
            moves.nodes[i].imports.remove(&job);
        }
    }

    /// Steps job `id` of node `i` with `event` and does what it decides.
    fn job_event(&mut self, i: usize, id: u64, event: JobEvent) {
        let now = self.now;
        let Some(moves) = &mut self.moves else {
            return;
        };
        let Some(j) = moves.nodes[i].jobs.get_mut(&id) else {
            return;
        };
        let actions = j.job.step(event, now);
        let (target, slots) = (j.target, j.job.slots.clone());
        let target_id = j.job.target;
        for action in actions {
            match action {
                Action::Pause => {
                    let node = &mut self.moves.as_mut().expect("on").nodes[i];
                    for s in slots.iter() {
                        node.paused.insert(s);
                    }
                    // Every write here is atomic: nothing is half-committed.
                    self.job_event(i, id, JobEvent::Settled);
                }
                Action::SendHandoff(_) => {
                    let mut epoch = 0;
                    self.with(i, |c, _| {
                        c.hold_epoch(true);
                        epoch = c.current_epoch();
                    });
                    let node = &mut self.moves.as_mut().expect("on").nodes[i];
                    if let Some(job) = node.jobs.get_mut(&id) {
                        job.held = true;
                    }
                    let keys = slot_keys(&node.keys, &slots);
                    self.move_send(
                        i,
                        target,
                        MoveMsg::Handoff {
                            job: id,
                            keys,
                            epoch,
                        },
                    );
                }
                Action::Resume => {
                    self.release_hold(i, id);
                    let node = &mut self.moves.as_mut().expect("on").nodes[i];
                    for s in slots.iter() {
                        node.paused.remove(s);
                    }
                }
                Action::GiveUp(epoch) => {
                    self.with(i, |c, now| c.handed_off(target_id, epoch, &slots, now));
                    self.release_hold(i, id);
                    let node = &mut self.moves.as_mut().expect("on").nodes[i];
                    for s in slots.iter() {
                        node.paused.remove(s);
                    }
                }
                Action::AskOutcome => {
                    let slots = slots.clone();
                    self.move_send(i, target, MoveMsg::Finish { job: id, slots });
                }
                Action::Close => {}
            }
        }
        let moves = self.moves.as_mut().expect("on");
        let over = moves.nodes[i].jobs.get(&id).map(|j| j.job.phase.clone());
        match over {
            Some(crate::cluster::migration::Phase::Done(_)) => {
                moves.counts.done += 1;
                moves.nodes[i].jobs.remove(&id);
            }
            Some(phase) if phase.is_over() => {
                moves.counts.failed += 1;
                moves.nodes[i].jobs.remove(&id);
            }
            _ => {}
        }
    }

    /// The outcome of job `id`'s handoff is known: node `i` may take new
    /// epochs again.
    fn release_hold(&mut self, i: usize, id: u64) {
        let held = self
            .moves
            .as_mut()
            .and_then(|m| m.nodes[i].jobs.get_mut(&id));
        if let Some(job) = held.filter(|j| j.held) {
            job.held = false;
            self.with(i, |c, _| c.hold_epoch(false));
        }
    }

    /// I10, once the run settled (every node up, the network whole, no job
    /// left): each acknowledged key not lost with a crashed node is on
    /// exactly one master, the owner of its slot in that master's own table;
    /// no master keeps keys of a slot it does not own; no import is left.
    pub fn check_moves(&self) -> Result<(), Violation> {
        let Some(moves) = &self.moves else {
            return Ok(());
        };
        for (i, node) in moves.nodes.iter().enumerate() {
            if !node.jobs.is_empty() || !node.imports.is_empty() {
                return Err(Violation(format!(
                    "I10: node {i} still has jobs {:?} or imports {:?}",
                    node.jobs.keys().collect::<Vec<_>>(),
                    node.imports.keys().collect::<Vec<_>>()
                )));
            }
            let Some(c) = self.nodes[i]
                .cluster
                .as_ref()
                .filter(|c| c.role().is_master())
            else {
                continue;
            };
            for (&slot, keys) in &node.keys {
                if !keys.is_empty() && !serves(c, slot) {
                    return Err(Violation(format!(
                        "I10: node {i} keeps {} keys of slot {slot}, which it does not serve",
                        keys.len()
                    )));
                }
            }
        }
        for (&key, &slot) in &moves.acked {
            if moves.lost.contains(&key) {
                continue;
            }
            let master = |i: usize| {
                self.nodes[i]
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.role().is_master())
            };
            let holders: Vec<usize> = (0..moves.nodes.len())
                .filter(|&i| master(i))
                .filter(|&i| {
                    moves.nodes[i]
                        .keys
                        .get(&slot)
                        .is_some_and(|k| k.contains(&key))
                })
                .collect();
            if holders.len() != 1 {
                return Err(Violation(format!(
                    "I10: key {key} of slot {slot} is held by nodes {holders:?}\n{}",
                    self.describe()
                )));
            }
        }
        Ok(())
    }
}

/// The keys of `slots` in `keys`.
fn slot_keys(keys: &Keys, slots: &SlotSet) -> Keys {
    keys.iter()
        .filter(|(s, _)| slots.contains(**s))
        .map(|(s, k)| (*s, k.clone()))
        .collect()
}

fn msg_job(msg: &MoveMsg) -> u64 {
    match msg {
        MoveMsg::Begin { job, .. }
        | MoveMsg::Accepted { job, .. }
        | MoveMsg::Sync { job, .. }
        | MoveMsg::Ack { job, .. }
        | MoveMsg::Handoff { job, .. }
        | MoveMsg::Outcome { job, .. }
        | MoveMsg::Finish { job, .. } => *job,
    }
}
