//! Failover (docs/CLUSTER.md, F1 to F7): a replica's election when its
//! master is `fail` or a manual failover asks for one, the masters' votes,
//! the promotion, and the manual failover's pause-and-catch-up handshake.
//! Redis Cluster's algorithm (`clusterHandleSlaveFailover`,
//! `clusterSendFailoverAuthIfNeeded`, `clusterHandleManualFailover`), with
//! ringkv's in-sync rule added to the votes (L2).

use std::collections::BTreeSet;
use std::net::IpAddr;

use rand::RngExt;

use super::{AdminError, Cluster, Link, LinkState};
use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::message::{Body, Flags, Header, Message};
use crate::cluster::slots::SlotSet;

/// How long a manual failover may take before it is given up (Redis's
/// `CLUSTER_MF_TIMEOUT`); the master's pause ends then at the latest.
pub const MANUAL_TIMEOUT: Millis = 5_000;
/// A master pauses writes this long before it calls its offset final: a
/// write that passed the pause check just before the pause began has this
/// long to reach the stream (see `ClusterHandle::writes_paused_until`).
pub const PAUSE_SETTLE: Millis = 50;
/// Redis's `repl-ping-replica-period` default, part of the data-age limit
/// (F1): a replica hears from its master at least this often.
const REPL_PING_PERIOD: Millis = 10_000;

/// What this node should be, for the replication data plane to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A master: serves its slots, streams to its replicas.
    Master,
    /// A replica of `master`, whose clients connect at `ip:port`.
    Replica {
        /// The master's node id.
        master: Id,
        /// Its IP.
        ip: IpAddr,
        /// Its client port (where `PSYNC` goes).
        port: u16,
    },
}

impl Role {
    /// True for [`Role::Master`].
    pub fn is_master(&self) -> bool {
        matches!(self, Role::Master)
    }
}

/// A replica's election (F2 to F5).
#[derive(Debug, Default)]
pub(super) struct Election {
    /// When it may ask for votes (`None`: no election scheduled yet).
    auth_time: Option<Millis>,
    /// Its rank among its master's replicas when scheduled.
    rank: usize,
    /// Whether the requests went out.
    sent: bool,
    /// The election's epoch, once the requests went out.
    epoch: u64,
    /// The masters that voted for it in this epoch.
    votes: BTreeSet<Id>,
}

/// A manual failover (F7). On the replica: `end`, `can_start` and
/// `master_offset`; on the master: `end`, `replica` and `started`.
#[derive(Debug, Default)]
pub(super) struct Manual {
    /// When it is given up (0: none under way).
    end: Millis,
    /// The replica may start its election (its offset caught up, or FORCE).
    can_start: bool,
    /// The master's final offset, from a paused header.
    master_offset: Option<u64>,
    /// On the master: the replica taking over.
    replica: Option<Id>,
    /// On the master: when writes were paused.
    started: Millis,
    /// On the master: the replica was sent a paused header (the final
    /// offset) since the pause settled.
    settled_sent: bool,
}

impl Cluster {
    /// What this node should be now (the data plane follows it).
    pub fn role(&self) -> Role {
        let me = self.me();
        match me.master.and_then(|m| self.nodes.get(&m)) {
            Some(master) if !me.is_master() => Role::Replica {
                master: master.id,
                ip: master.addr.ip,
                port: master.addr.port,
            },
            _ => Role::Master,
        }
    }

    /// Sets this node's replication offset: for a master its stream's, for a
    /// replica the offset it applied. The driver sets it before each step.
    pub fn set_repl_offset(&mut self, offset: u64) {
        self.repl_offset = offset;
    }

    /// This node's replication offset, as last set.
    pub fn repl_offset(&self) -> u64 {
        self.repl_offset
    }

    /// Until when client writes are paused for a manual failover (F7), 0 if
    /// they are not: the master's side, from its replica's `MfStart` until
    /// the new claim reaches it or the attempt times out.
    pub fn writes_paused_until(&self) -> Millis {
        match self.manual.replica {
            Some(_) if self.me().is_master() && self.manual.end != 0 => self.manual.end,
            _ => 0,
        }
    }

    /// Whether headers now say this master is paused and its offset final.
    pub(super) fn paused_now(&self) -> bool {
        self.writes_paused_until() != 0 && self.now >= self.manual.started + PAUSE_SETTLE
    }

    /// When this node wants a step before its next tick: a paused master,
    /// when its pause settles (F7), so that its replica hears the final
    /// offset then rather than up to a tick later.
    pub fn wake_at(&self) -> Option<Millis> {
        let waiting = self.writes_paused_until() != 0 && !self.manual.settled_sent;
        waiting.then_some(self.manual.started + PAUSE_SETTLE)
    }

    /// The step [`Cluster::wake_at`] asked for: a paused master whose pause
    /// settled sends its replica the final offset.
    pub fn wake(&mut self, now: Millis) {
        self.now = now;
        if self.paused_now() && !self.manual.settled_sent {
            if let Some(replica) = self.manual.replica {
                self.manual.settled_sent = true;
                self.ping(replica, now);
            }
        }
    }

    /// `CLUSTER FAILOVER [FORCE|TAKEOVER]` (F7).
    pub fn failover(&mut self, force: bool, takeover: bool, now: Millis) -> Result<(), AdminError> {
        let me = self.me();
        if me.is_master() {
            return Err(AdminError::FailoverOnMaster);
        }
        let master = me
            .master
            .and_then(|m| self.nodes.get(&m))
            .ok_or(AdminError::MasterUnknown)?;
        let reachable = !master.flags.has(Flags::FAIL) && master.link == LinkState::Up;
        if !force && !takeover && !reachable {
            return Err(AdminError::MasterDown);
        }
        let master = master.id;
        self.reset_manual();
        self.manual.end = now + MANUAL_TIMEOUT;
        if takeover {
            // No votes: a new config epoch of its own, as BUMPEPOCH would.
            tracing::warn!("taking over the master (user request)");
            let epoch = self.bump_without_consensus();
            self.replace_master(epoch, now);
        } else if force {
            tracing::warn!("forced failover user request accepted");
            self.manual.can_start = true;
            self.failover_step(now);
        } else {
            tracing::info!("manual failover user request accepted");
            self.send(master, Body::MfStart, now);
        }
        Ok(())
    }

    /// A config epoch above every other, without asking anyone (Redis's
    /// `clusterBumpConfigEpochWithoutConsensus`).
    fn bump_without_consensus(&mut self) -> u64 {
        let highest = self
            .nodes
            .values()
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0);
        let mine = self.me().config_epoch;
        if mine == 0 || mine != highest {
            self.current_epoch += 1;
            self.me_mut().config_epoch = self.current_epoch;
            self.save = true;
        }
        self.me().config_epoch
    }

    /// Ends a manual failover on either side (and the master's pause).
    pub(super) fn reset_manual(&mut self) {
        self.manual = Manual::default();
    }

    /// The periodic part of failover: manual failovers (either side) and
    /// a replica's election.
    pub(super) fn failover_tick(&mut self, now: Millis) {
        if self.manual.end != 0 && self.manual.end < now {
            tracing::warn!("manual failover timed out");
            self.reset_manual();
        }
        if self.me().is_master() {
            // Keep the replica hearing the paused offset (Redis pings it
            // every cron run).
            if let Some(replica) = self.manual.replica {
                self.manual.settled_sent |= self.paused_now();
                self.ping(replica, now);
            }
            return;
        }
        self.manual_caught_up(now);
    }

    /// A replica in a manual failover waits to apply its paused master's
    /// stream up to this offset (F7); `None` otherwise.
    pub fn manual_target(&self) -> Option<u64> {
        let waiting = !self.me().is_master() && self.manual.end != 0 && !self.manual.can_start;
        self.manual.master_offset.filter(|_| waiting)
    }

    /// A replica whose applied offset reached its paused master's may start
    /// the manual failover's election; the election goes as far as it can.
    pub fn manual_caught_up(&mut self, now: Millis) {
        if self.me().is_master() {
            return;
        }
        let caught_up = self.manual.master_offset == Some(self.repl_offset);
        if self.manual.end != 0 && !self.manual.can_start && caught_up {
            tracing::info!("all the master's stream applied: the manual failover can start");
            self.manual.can_start = true;
        }
        self.failover_step(now);
    }

    /// A replica's election, as far as it can go now (F1 to F5).
    pub(super) fn failover_step(&mut self, now: Millis) {
        let timeout = self.settings.node_timeout;
        let me = self.me();
        let manual = self.manual.end != 0 && self.manual.can_start;
        let Some(master) = me.master.and_then(|m| self.nodes.get(&m)) else {
            return;
        };
        if me.is_master()
            || (!master.flags.has(Flags::FAIL) && !manual)
            || (self.settings.replica_no_failover && !manual)
            || master.owned == 0
        {
            return;
        }
        // F1: data too old to stand (a manual failover ignores it). The
        // bus's last message from the master stands for the replication
        // link's: the cluster logic does not see the data plane's.
        let factor = self.settings.replica_validity_factor;
        let mut age = now.saturating_sub(master.data_recv);
        if age > timeout {
            age -= timeout;
        }
        if !manual && factor > 0 && age > REPL_PING_PERIOD + timeout.saturating_mul(factor) {
            return;
        }
        // F1: a replica that holds nothing of a master that wrote something
        // (restarted, not synced yet) would lose it all.
        if self.repl_offset == 0 && master.repl_offset > 0 && !manual {
            return;
        }
        // F1, L2: a replica outside the set the voters hold is refused.
        if master
            .in_sync
            .as_ref()
            .is_some_and(|set| !set.members.contains(&self.myself))
        {
            return;
        }
        let auth_timeout = (2 * timeout).max(2_000);
        let retry = 2 * auth_timeout;
        let age_of = |at: Option<Millis>| at.map_or(i64::MAX, |t| now as i64 - t as i64);
        if age_of(self.election.auth_time) > retry as i64 {
            let (delay, rank) = if self.manual.end != 0 {
                (0, 0)
            } else {
                let rank = self.rank();
                let jitter = self.rng.random_range(0..500);
                (500 + jitter + rank as Millis * 1_000, rank)
            };
            self.election = Election {
                auth_time: Some(now + delay),
                rank,
                ..Election::default()
            };
            tracing::info!(
                "start of election delayed for {delay} ms (rank #{rank}, offset {})",
                self.repl_offset
            );
            // The siblings learn this replica's offset, to rank themselves.
            for sibling in self.siblings() {
                self.send(sibling, Body::Pong(Vec::new()), now);
            }
            if delay > 0 {
                return;
            }
        }
        if !self.election.sent && self.manual.end == 0 {
            let rank = self.rank();
            if rank > self.election.rank {
                let added = (rank - self.election.rank) as Millis * 1_000;
                self.election.auth_time = self.election.auth_time.map(|t| t + added);
                self.election.rank = rank;
            }
        }
        let auth_time = self.election.auth_time.unwrap_or(now);
        if now < auth_time || age_of(Some(auth_time)) > auth_timeout as i64 {
            return;
        }
        if !self.election.sent {
            // F3: a new epoch, saved before anyone hears of it.
            self.current_epoch += 1;
            self.save = true;
            self.election.epoch = self.current_epoch;
            self.election.sent = true;
            tracing::info!(
                "starting a failover election for epoch {}",
                self.current_epoch
            );
            self.request_votes(now);
            return;
        }
        let quorum = self.size() / 2 + 1;
        if self.election.votes.len() >= quorum {
            tracing::warn!("failover election won: I'm the new master");
            self.replace_master(self.election.epoch, now);
        }
    }

    /// F2: the replicas of this node's master, others than this one, that
    /// may fail over and hold more of the stream, or as much with a smaller
    /// id. Redis counts only larger offsets; the tie-break gives replicas
    /// with equal offsets (an idle master's) different delays, so they do
    /// not split the votes and wait `4T` to try again.
    fn rank(&self) -> usize {
        let mine = (self.repl_offset, std::cmp::Reverse(self.myself));
        self.siblings()
            .into_iter()
            .filter(|id| {
                let n = &self.nodes[id];
                !n.flags.has(Flags::NOFAILOVER) && (n.repl_offset, std::cmp::Reverse(n.id)) > mine
            })
            .count()
    }

    /// The other replicas of this node's master.
    fn siblings(&self) -> Vec<Id> {
        let master = self.me().master;
        self.nodes
            .values()
            .filter(|n| n.id != self.myself && !n.is_master() && n.master == master)
            .map(|n| n.id)
            .collect()
    }

    /// F3: asks every master for its vote.
    fn request_votes(&mut self, now: Millis) {
        let Some(master) = self.me().master.and_then(|m| self.nodes.get(&m)) else {
            return;
        };
        let config_epoch = master.config_epoch;
        let slots = master.slots.clone();
        let manual = self.manual.end != 0;
        for peer in self.linked_peers() {
            if self.nodes[&peer].is_master() {
                let body = Body::FailoverAuthRequest {
                    config_epoch,
                    slots: slots.clone(),
                    manual,
                };
                self.send(peer, body, now);
            }
        }
    }

    /// F4: a master's vote on `candidate`'s request, answered on `link`.
    pub(super) fn vote_requested(
        &mut self,
        link: Link,
        candidate: Id,
        request_epoch: u64,
        (config_epoch, slots, manual): (u64, &SlotSet, bool),
        now: Millis,
    ) {
        let timeout = self.settings.node_timeout;
        if !self.me().serves() {
            return;
        }
        let deny = |why: &str| tracing::info!("failover auth denied to {candidate}: {why}");
        if request_epoch < self.current_epoch {
            return deny("its epoch is older than mine");
        }
        if self.last_vote_epoch == self.current_epoch {
            return deny("already voted in this epoch");
        }
        let Some(node) = self.nodes.get(&candidate) else {
            return;
        };
        let Some(master) = node.master.filter(|_| !node.is_master()) else {
            return deny("it is a master");
        };
        let Some(m) = self.nodes.get(&master) else {
            return deny("I don't know its master");
        };
        if !m.flags.has(Flags::FAIL) && !manual {
            return deny("its master is up");
        }
        if m.voted_time
            .is_some_and(|at| now.saturating_sub(at) < 2 * timeout)
        {
            return deny("voted for a replica of its master lately");
        }
        if m.in_sync
            .as_ref()
            .is_some_and(|set| !set.members.contains(&candidate))
        {
            return deny("it is not in its master's in-sync set");
        }
        let newer = slots.iter().find(|&slot| {
            self.owners[slot as usize]
                .is_some_and(|owner| self.nodes[&owner].config_epoch > config_epoch)
        });
        if let Some(slot) = newer {
            return deny(&format!("slot {slot} has a newer claim"));
        }
        // Saved before the vote goes out: the step's save comes first.
        self.last_vote_epoch = self.current_epoch;
        self.save = true;
        if let Some(m) = self.nodes.get_mut(&master) {
            m.voted_time = Some(now);
        }
        tracing::info!(
            "failover auth granted to {candidate} for epoch {}",
            self.current_epoch
        );
        let body = Body::FailoverAuthAck {
            epoch: self.current_epoch,
        };
        let digest = self.my_digest;
        let header = self.header_for(candidate, digest);
        self.outputs
            .push(super::Output::Send(link, Message { header, body }));
    }

    /// A vote arrived (F5): counted if it is for this election and from a
    /// master serving slots.
    pub(super) fn vote_received(&mut self, voter: Id, epoch: u64, now: Millis) {
        let counts = !self.me().is_master()
            && self.election.sent
            && self.election.epoch == epoch
            && self.nodes.get(&voter).is_some_and(|n| n.serves());
        if counts {
            self.election.votes.insert(voter);
            self.failover_step(now);
        }
    }

    /// F5: this replica becomes the master of its shard, taking its old
    /// master's slots under `epoch`, and tells everyone.
    pub(super) fn replace_master(&mut self, epoch: u64, now: Millis) {
        let Some(old) = self.me().master.filter(|_| !self.me().is_master()) else {
            return;
        };
        let slots = self
            .nodes
            .get(&old)
            .map(|n| n.slots.clone())
            .unwrap_or_default();
        let me = self.me_mut();
        me.flags.set(Flags::MASTER, true);
        me.flags.set(Flags::REPLICA, false);
        me.master = None;
        me.config_epoch = me.config_epoch.max(epoch);
        self.current_epoch = self.current_epoch.max(epoch);
        for slot in slots.iter() {
            self.assign(slot, self.myself);
        }
        self.election = Election::default();
        self.reset_manual();
        // This master's own set starts empty: its replicas join it as they
        // catch up (L2).
        self.proposal = super::in_sync::Proposal::default();
        self.claim_changed();
        self.state_dirty = true;
        self.broadcast_pong(now);
    }

    /// F7, the master's side: `replica` asks this master to pause writes and
    /// send its final offset.
    pub(super) fn manual_start_asked(&mut self, replica: Id, now: Millis) {
        let follows = self
            .nodes
            .get(&replica)
            .is_some_and(|n| !n.is_master() && n.master == Some(self.myself));
        if !self.me().is_master() || !follows {
            return;
        }
        tracing::info!("manual failover requested by replica {replica}: pausing writes");
        self.reset_manual();
        self.manual.end = now + MANUAL_TIMEOUT;
        self.manual.replica = Some(replica);
        self.manual.started = now;
        self.ping(replica, now);
    }

    /// F7, the replica's side: a header from its master; a paused one
    /// carries the final offset. Already applied: the election starts now,
    /// not at the next tick.
    pub(super) fn manual_header(&mut self, header: &Header, now: Millis) {
        let from_master = self.me().master == Some(header.sender) && !self.me().is_master();
        if from_master && header.paused && self.manual.end != 0 && !self.manual.can_start {
            if self.manual.master_offset != Some(header.offset) {
                tracing::info!(
                    "received the paused master's offset for the manual failover: {}",
                    header.offset
                );
            }
            self.manual.master_offset = Some(header.offset);
            if header.offset == self.repl_offset {
                self.manual.can_start = true;
                self.failover_step(now);
            }
        }
    }
}

#[cfg(test)]
mod tests;
