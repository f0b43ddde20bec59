//! One atomic slot migration as its source runs it (docs/CLUSTER.md, M7-M11):
//! events and the time in, actions out. The I/O around it (the stream to the
//! target, the pause of writes, the claim) does what the actions say and
//! reports what happened; every decision is made here.

use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::slots::SlotSet;

/// How often a source in doubt asks the target again (M10).
pub const ASK_EVERY: Millis = 1_000;

/// The settings a job runs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// `cluster-slot-migration-handoff-max-lag-bytes`: how far behind the
    /// target may be when writes pause.
    pub max_lag: u64,
    /// `cluster-slot-migration-pause-timeout`: how long writes may wait
    /// before the handoff is sent.
    pub pause_timeout: Millis,
    /// `repl-timeout`: how long the stream may go without progress.
    pub progress_timeout: Millis,
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Connecting to the target and asking it to import (`SYNCSLOTS BEGIN`).
    Connecting,
    /// Sending the snapshots and the writes that arrive meanwhile.
    Streaming,
    /// Writes to the slots are paused; waiting for those already admitted to
    /// commit (since the time given).
    Pausing(Millis),
    /// `RINGKV.HANDOFF` was sent at the time given; waiting for the claim.
    HandingOff(Millis),
    /// The handoff went unanswered: the outcome is asked of the target until
    /// known (last asked at the time given). Writes stay paused.
    InDoubt(Millis),
    /// The target took the slots under this config epoch.
    Done(u64),
    /// The job ended with the source keeping the slots, for this reason.
    Failed(String),
    /// Cancelled before the handoff; the source keeps the slots.
    Cancelled,
}

impl Phase {
    /// The name `CLUSTER GETSLOTMIGRATIONS` shows.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Streaming => "streaming",
            Phase::Pausing(_) => "pausing",
            Phase::HandingOff(_) => "handoff",
            Phase::InDoubt(_) => "handoff-in-doubt",
            Phase::Done(_) => "success",
            Phase::Failed(_) => "failed",
            Phase::Cancelled => "cancelled",
        }
    }

    /// True once the job is over.
    pub fn is_over(&self) -> bool {
        matches!(self, Phase::Done(_) | Phase::Failed(_) | Phase::Cancelled)
    }

    /// True while writes to the job's slots must wait.
    pub fn pauses_writes(&self) -> bool {
        matches!(
            self,
            Phase::Pausing(_) | Phase::HandingOff(_) | Phase::InDoubt(_)
        )
    }
}

/// What happened, as the I/O reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The target accepted the import: the stream is open.
    Accepted,
    /// Stream progress: bytes sent, bytes the target acknowledged applying,
    /// and whether every slot's snapshot is in the stream.
    Progress {
        /// Stream bytes queued for the target.
        sent: u64,
        /// Stream bytes the target applied.
        acked: u64,
        /// Every snapshot was sent.
        snapshot_done: bool,
    },
    /// Every write admitted before the pause has committed (its records are
    /// in the stream).
    Settled,
    /// The target claimed the slots under this config epoch (its answer, or
    /// its claim seen on the bus).
    Claimed(u64),
    /// The target cancelled the import for good: it will never claim.
    NotClaimed,
    /// The stream (or the connection asking about the outcome) failed.
    LinkLost(String),
    /// The cluster marks the target `fail`.
    TargetFailed,
    /// `CLUSTER CANCELSLOTMIGRATIONS`.
    Cancel,
    /// Time passed.
    Tick,
}

/// What the I/O must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pause writes to the job's slots and report [`Event::Settled`] once
    /// every write admitted before has committed.
    Pause,
    /// Send `RINGKV.HANDOFF offset` on the stream.
    SendHandoff(u64),
    /// End the pause; the source keeps the slots.
    Resume,
    /// Apply the target's claim under this config epoch (the slots are
    /// given up, their keys deleted) and end the pause: the paused writes
    /// run again and are redirected.
    GiveUp(u64),
    /// Ask the target for the outcome of the handoff on a new connection.
    AskOutcome,
    /// Close the stream.
    Close,
}

/// A job's counters, for `CLUSTER GETSLOTMIGRATIONS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Stream bytes sent.
    pub sent: u64,
    /// Stream bytes the target applied.
    pub acked: u64,
    /// Every snapshot is in the stream.
    pub snapshot_done: bool,
}

/// One migration of `slots` from this node to `target`.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's id, shared with the target.
    pub id: u64,
    /// The master taking the slots.
    pub target: Id,
    /// The slots moving.
    pub slots: SlotSet,
    /// Where the job is.
    pub phase: Phase,
    /// Its counters.
    pub progress: Progress,
    /// When it started.
    pub started: Millis,
    /// When it ended, once over.
    pub ended: Option<Millis>,
    settings: JobSettings,
    /// When the stream last moved (or the job started).
    last_progress: Millis,
}

impl Job {
    /// A new job, connecting.
    pub fn new(id: u64, target: Id, slots: SlotSet, settings: JobSettings, now: Millis) -> Job {
        Job {
            id,
            target,
            slots,
            phase: Phase::Connecting,
            progress: Progress::default(),
            started: now,
            ended: None,
            settings,
            last_progress: now,
        }
    }

    /// Takes `event` at `now`; returns what to do, in order.
    pub fn step(&mut self, event: Event, now: Millis) -> Vec<Action> {
        use Phase::*;
        let mut actions = Vec::new();
        if self.phase.is_over() {
            return actions;
        }
        match (&self.phase, event) {
            (
                _,
                Event::Progress {
                    sent,
                    acked,
                    snapshot_done,
                },
            ) => {
                if sent != self.progress.sent || acked != self.progress.acked {
                    self.last_progress = now;
                }
                self.progress = Progress {
                    sent,
                    acked,
                    snapshot_done,
                };
                let caught_up =
                    snapshot_done && sent.saturating_sub(acked) <= self.settings.max_lag;
                if self.phase == Streaming && caught_up {
                    self.phase = Pausing(now);
                    actions.push(Action::Pause);
                }
            }
            (Connecting, Event::Accepted) => {
                self.phase = Streaming;
                self.last_progress = now;
            }
            (Pausing(_), Event::Settled) => {
                self.phase = HandingOff(now);
                actions.push(Action::SendHandoff(self.progress.sent));
            }
            (HandingOff(_) | InDoubt(_), Event::Claimed(epoch)) => {
                actions.extend([Action::GiveUp(epoch), Action::Close]);
                self.finish(Done(epoch), now);
            }
            // The target claimed before answering and the bus told first; the
            // claim stands whatever this job thought.
            (Connecting | Streaming | Pausing(_), Event::Claimed(epoch)) => {
                actions.extend([Action::GiveUp(epoch), Action::Close]);
                self.finish(Done(epoch), now);
            }
            (InDoubt(_), Event::NotClaimed) => {
                actions.push(Action::Resume);
                self.finish(Failed("the target did not take the slots".into()), now);
            }
            (InDoubt(_), Event::TargetFailed) => {
                actions.push(Action::Resume);
                self.finish(Failed("the target failed during the handoff".into()), now);
            }
            (HandingOff(_), Event::LinkLost(_)) => {
                self.phase = InDoubt(now);
                actions.push(Action::AskOutcome);
            }
            (InDoubt(_), Event::LinkLost(_)) => {}
            (Connecting | Streaming | Pausing(_), Event::LinkLost(reason)) => {
                self.fail(reason, now, &mut actions);
            }
            (Connecting | Streaming | Pausing(_), Event::Cancel) => {
                if matches!(self.phase, Pausing(_)) {
                    actions.push(Action::Resume);
                }
                actions.push(Action::Close);
                self.finish(Cancelled, now);
            }
            (_, Event::Tick) => self.tick(now, &mut actions),
            // Past the handoff nothing cancels: the target may have claimed.
            (HandingOff(_) | InDoubt(_), Event::Cancel) => {}
            // Events that do not apply in this phase (late or repeated); an
            // ended job (returned above) takes none.
            (_, Event::Accepted | Event::Settled | Event::NotClaimed | Event::TargetFailed)
            | (Done(_) | Failed(_) | Cancelled, _) => {}
        }
        actions
    }

    /// Timeouts: no progress, a pause too long, a handoff unanswered.
    fn tick(&mut self, now: Millis, actions: &mut Vec<Action>) {
        let settings = self.settings;
        match self.phase {
            Phase::Connecting | Phase::Streaming
                if now.saturating_sub(self.last_progress) > settings.progress_timeout =>
            {
                self.fail("no progress within repl-timeout".into(), now, actions);
            }
            Phase::Pausing(since) if now.saturating_sub(since) > settings.pause_timeout => {
                self.fail(
                    "writes could not settle within the pause timeout".into(),
                    now,
                    actions,
                );
            }
            Phase::HandingOff(since) if now.saturating_sub(since) > settings.pause_timeout => {
                self.phase = Phase::InDoubt(now);
                actions.push(Action::AskOutcome);
            }
            Phase::InDoubt(asked) if now.saturating_sub(asked) >= ASK_EVERY => {
                self.phase = Phase::InDoubt(now);
                actions.push(Action::AskOutcome);
            }
            _ => {}
        }
    }

    /// Ends the job before its handoff: the source keeps the slots.
    fn fail(&mut self, reason: String, now: Millis, actions: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Pausing(_)) {
            actions.push(Action::Resume);
        }
        actions.push(Action::Close);
        self.finish(Phase::Failed(reason), now);
    }

    fn finish(&mut self, phase: Phase, now: Millis) {
        self.phase = phase;
        self.ended = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: JobSettings = JobSettings {
        max_lag: 1000,
        pause_timeout: 2000,
        progress_timeout: 60_000,
    };

    fn job() -> Job {
        let mut slots = SlotSet::default();
        slots.insert(7);
        Job::new(1, Id::random(&mut rand::rng()), slots, SETTINGS, 0)
    }

    fn progress(sent: u64, acked: u64, snapshot_done: bool) -> Event {
        Event::Progress {
            sent,
            acked,
            snapshot_done,
        }
    }

    /// A job streaming, paused and handing off at offset 5000.
    fn handing_off() -> Job {
        let mut job = job();
        job.step(Event::Accepted, 1);
        job.step(progress(5000, 4500, true), 2);
        assert_eq!(job.step(Event::Settled, 3), [Action::SendHandoff(5000)]);
        job
    }

    #[test]
    fn writes_pause_only_once_every_snapshot_is_sent_and_the_target_caught_up() {
        let mut job = job();
        assert!(
            job.step(progress(10, 0, false), 1).is_empty(),
            "not accepted yet"
        );
        job.step(Event::Accepted, 1);
        assert!(
            job.step(progress(5000, 4500, false), 2).is_empty(),
            "snapshots left"
        );
        assert!(
            job.step(progress(9000, 4500, true), 3).is_empty(),
            "too far behind"
        );
        assert_eq!(job.step(progress(9000, 8000, true), 4), [Action::Pause]);
        assert_eq!(job.phase, Phase::Pausing(4));
        assert!(job.phase.pauses_writes());
        // The handoff carries the offset of everything committed before it.
        job.step(progress(9100, 8000, true), 5);
        assert_eq!(job.step(Event::Settled, 6), [Action::SendHandoff(9100)]);
        assert_eq!(
            job.step(Event::Claimed(12), 7),
            [Action::GiveUp(12), Action::Close]
        );
        assert_eq!(job.phase, Phase::Done(12));
        assert_eq!(job.ended, Some(7));
        assert!(job.step(Event::Tick, 100_000).is_empty(), "over is over");
    }

    #[test]
    fn before_the_handoff_any_failure_resumes_with_the_slots_kept() {
        let mut lost = job();
        lost.step(Event::Accepted, 1);
        assert_eq!(
            lost.step(Event::LinkLost("reset".into()), 2),
            [Action::Close]
        );
        assert_eq!(lost.phase, Phase::Failed("reset".into()));

        let mut paused = job();
        paused.step(Event::Accepted, 1);
        paused.step(progress(10, 10, true), 2);
        assert_eq!(
            paused.step(Event::LinkLost("reset".into()), 3),
            [Action::Resume, Action::Close]
        );

        let mut slow = job();
        slow.step(Event::Accepted, 1);
        slow.step(progress(10, 10, true), 2);
        assert!(
            slow.step(Event::Tick, 2002).is_empty(),
            "within the pause timeout"
        );
        assert_eq!(
            slow.step(Event::Tick, 2003),
            [Action::Resume, Action::Close]
        );
        assert!(matches!(slow.phase, Phase::Failed(_)));

        let mut cancelled = job();
        cancelled.step(Event::Accepted, 1);
        cancelled.step(progress(10, 10, true), 2);
        assert_eq!(
            cancelled.step(Event::Cancel, 3),
            [Action::Resume, Action::Close]
        );
        assert_eq!(cancelled.phase, Phase::Cancelled);

        let mut stalled = job();
        stalled.step(Event::Accepted, 1);
        stalled.step(progress(10, 0, false), 2);
        assert!(stalled.step(Event::Tick, 60_002).is_empty());
        assert_eq!(stalled.step(Event::Tick, 60_003), [Action::Close]);
    }

    #[test]
    fn after_the_handoff_writes_stay_paused_until_the_outcome_is_known() {
        // Unanswered: ask, and keep asking, writes paused; nothing cancels.
        let mut job = handing_off();
        assert!(job.step(Event::Cancel, 4).is_empty());
        assert!(job.step(Event::Tick, 2003).is_empty());
        assert_eq!(job.step(Event::Tick, 2004), [Action::AskOutcome]);
        assert!(job.phase.pauses_writes());
        assert!(job.step(Event::LinkLost("refused".into()), 2500).is_empty());
        assert!(job.step(Event::Tick, 3003).is_empty());
        assert_eq!(job.step(Event::Tick, 3004), [Action::AskOutcome]);
        // The target says it claimed: the slots go.
        assert_eq!(
            job.step(Event::Claimed(9), 3100),
            [Action::GiveUp(9), Action::Close]
        );

        // The target cancelled for good: the source keeps the slots.
        let mut job = handing_off();
        job.step(Event::LinkLost("reset".into()), 4);
        assert_eq!(job.phase, Phase::InDoubt(4));
        assert_eq!(job.step(Event::NotClaimed, 5), [Action::Resume]);
        assert!(matches!(job.phase, Phase::Failed(_)));

        // The cluster failed the target: its claim can only come back with a
        // restart that holds no keys.
        let mut job = handing_off();
        job.step(Event::LinkLost("reset".into()), 4);
        assert!(job.step(Event::TargetFailed, 5) == [Action::Resume]);
    }

    #[test]
    fn a_claim_seen_on_the_bus_ends_the_job_in_any_phase() {
        let mut job = job();
        job.step(Event::Accepted, 1);
        assert_eq!(
            job.step(Event::Claimed(4), 2),
            [Action::GiveUp(4), Action::Close]
        );
        assert_eq!(job.phase, Phase::Done(4));
    }
}
