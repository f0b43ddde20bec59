//! Replication state: this node's role and replication ids, the replicas a
//! master streams to and what they acknowledged, the checks commands pass on a
//! replica, and full syncs' slot snapshots (docs/CLUSTER.md, R1-R8).
//!
//! ```text
//! master: unit commit ─▶ feed ─▶ backlog
//!                          └──▶ each replica's outbox ─▶ its socket (repl_io::primary)
//!           slot snapshots ─┘   (a full sync: slot by slot, each under its slot lock)
//! replica:  socket ─▶ repl_io::upstream ─▶ records applied as commands; the
//!           master's bytes appended to this node's feed; REPLCONF ACK ─▶ master
//!           ─▶ acknowledgements ─▶ WAIT, min-replicas-to-write
//! ```
//! Lock changes wait for the in-sync replicas (L1, L2): [`Replication::lock_gate`]
//! says what a unit may do with locks, [`Replication::hold`] waits for its
//! acknowledgements, [`Replication::refresh_in_sync`] keeps the set (in
//! cluster mode, as the cluster puts it in force); a node that may have lost
//! grants refuses new ones for `lock-delay` (L5).
//!
//! Below the commands, which check it and change it; the I/O tasks that move the
//! stream (`repl_io`) sit above them. Uses the keyspace, the feed, the blocked
//! clients' waiters, the write path's lock gate and the settings.

mod acks;
mod in_sync;
pub mod snapshot;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::watch;

pub use acks::{Replica, ReplicaState, Replicas, SetAuthority};

use crate::blocking::held::Phase;
use crate::blocking::Held;
use crate::clock::Millis;
use crate::cluster::id::Id;
use crate::cluster::ClusterHandle;
use crate::config::{LiveConfig, LockSettings};
use crate::feed::Feed;
use crate::keyspace::Keyspace;
use crate::protocol::encode_command;
use crate::write::{LockGate, LockRefusal};

/// How often a replica acknowledges its offset unasked (`repl_io::upstream`):
/// a live replica's last acknowledgement is never much older.
pub const ACK_PERIOD_MS: u64 = 1000;

/// The gate's bits: what commands must check (all clear on a plain master).
mod gate {
    /// This node is a replica.
    pub const REPLICA: u8 = 1;
    /// A full sync is being applied: the dataset is incomplete.
    pub const LOADING: u8 = 2;
    /// The link to the master is down.
    pub const LINK_DOWN: u8 = 4;
}

/// A master to replicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its host name or address.
    pub host: String,
    /// Its client port.
    pub port: u16,
}

/// Where a replica's link to its master stands (`ROLE`, `INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected; trying again soon.
    Connect,
    /// Connecting and handshaking.
    Connecting,
    /// Receiving a full sync.
    Sync,
    /// Following the stream.
    Connected,
}

impl LinkState {
    /// The name `ROLE` prints.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// What a replica's link reports.
#[derive(Debug, Clone, Copy)]
pub struct LinkInfo {
    /// Where it stands.
    pub state: LinkState,
    /// When it last received a byte (ms on the node's clock).
    pub last_io: Millis,
    /// Since when it has been down (ms), if it is.
    pub down_since: Option<Millis>,
}

/// The node's replication identity: ids and the master it follows.
#[derive(Debug, Clone)]
pub struct Ids {
    /// The id of the history this node's feed continues (40 hex).
    pub replid: String,
    /// The id of the history before the last promotion (R2), valid up to
    /// `second_offset`.
    pub replid2: String,
    /// The first offset (as PSYNC counts: the feed's offset + 1) not part of
    /// `replid2`'s history; `None` without a second id.
    pub second_offset: Option<u64>,
    /// The master this node follows, if it is a replica.
    pub master: Option<Target>,
}

/// A new random replication id.
fn new_replid() -> String {
    (0..40)
        .map(|_| char::from_digit(rand::random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// The id Redis prints for "no second id".
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// How a master answers `PSYNC replid offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Psync {
    /// Continue from this feed offset (`+CONTINUE`).
    Continue(u64),
    /// Send everything (`+FULLRESYNC`).
    Full,
}

/// Why a command may not run on this node now (by replication state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A write on a read-only replica.
    ReadOnly,
    /// A full sync is being applied.
    Loading,
    /// The link to the master is down and stale data is not served.
    MasterDown,
    /// Too few replicas acknowledged lately (`min-replicas-to-write`).
    NoReplicas,
}

/// How `PSYNC`s were answered (`INFO stats`).
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Full syncs served.
    pub full: AtomicU64,
    /// Partial resyncs accepted.
    pub partial_ok: AtomicU64,
    /// Partial resyncs asked for and refused (a full sync instead).
    pub partial_err: AtomicU64,
}

/// Since when this node may have lost lock grants (L5).
#[derive(Debug, Clone, Copy)]
struct GrantsLost {
    since: Instant,
    /// It started, or was promoted from a stream it was not following: its
    /// grants may be lost even where lock changes wait for acknowledgements.
    /// Otherwise (promoted while following) only where they do not
    /// (`lock-replicas-to-ack 0`).
    even_if_acked: bool,
}

/// One node's replication state.
#[derive(Debug)]
pub struct Replication {
    /// How `PSYNC`s were answered.
    pub stats: SyncStats,
    ids: Mutex<Ids>,
    gate: AtomicU8,
    link: Mutex<LinkInfo>,
    /// The replicas this node streams to.
    pub replicas: Replicas,
    /// Full syncs under way.
    pub syncs: snapshot::Syncs,
    target: watch::Sender<Option<Target>>,
    grants_lost: Mutex<Option<GrantsLost>>,
    /// The feed offset after the last `REPLCONF GETACK` (0: none in this
    /// history).
    getack_end: AtomicU64,
}

impl Default for Replication {
    fn default() -> Self {
        Replication::new()
    }
}

impl Replication {
    /// A master with a new history.
    pub fn new() -> Self {
        Replication {
            ids: Mutex::new(Ids {
                replid: new_replid(),
                replid2: NO_REPLID.to_owned(),
                second_offset: None,
                master: None,
            }),
            gate: AtomicU8::new(0),
            link: Mutex::new(LinkInfo {
                state: LinkState::Connect,
                last_io: 0,
                down_since: None,
            }),
            stats: SyncStats::default(),
            replicas: Replicas::default(),
            syncs: snapshot::Syncs::default(),
            target: watch::Sender::new(None),
            grants_lost: Mutex::new(None),
            getack_end: AtomicU64::new(0),
        }
    }

    /// The ids and the master followed.
    pub fn ids(&self) -> Ids {
        self.ids.lock().clone()
    }

    /// True on a replica.
    pub fn is_replica(&self) -> bool {
        self.gate.load(Relaxed) & gate::REPLICA != 0
    }

    /// True while a full sync is being applied.
    pub fn loading(&self) -> bool {
        self.gate.load(Relaxed) & gate::LOADING != 0
    }

    /// True while the link to the master is up (on a replica).
    pub fn link_is_up(&self) -> bool {
        self.gate.load(Relaxed) & gate::LINK_DOWN == 0
    }

    /// The link to the master (meaningful on a replica).
    pub fn link(&self) -> LinkInfo {
        *self.link.lock()
    }

    /// Follows the master the node should replicate (for the link task).
    pub fn subscribe(&self) -> watch::Receiver<Option<Target>> {
        self.target.subscribe()
    }

    /// Why a command with `flags` (see `commands::table::flag`) may not run
    /// now, checked only where something could refuse it: one load on a
    /// plain master without `min-replicas-to-write`.
    #[inline]
    pub fn refusal(&self, config: &LiveConfig, write: bool, flags: Flags) -> Option<Refusal> {
        let gate = self.gate.load(Relaxed);
        if gate == 0 {
            return match write {
                true => self.too_few_replicas(config),
                false => None,
            };
        }
        self.refusal_slow(config, gate, write, flags)
    }

    /// True on a replica whose link to its master is down (or still loading)
    /// with `replica-serve-stale-data no`: only `stale` commands run.
    #[inline]
    pub fn running_stale(&self, config: &LiveConfig) -> bool {
        let gate = self.gate.load(Relaxed);
        gate & (gate::LINK_DOWN | gate::LOADING) != 0 && !config.replica_serve_stale_data()
    }

    #[cold]
    fn refusal_slow(
        &self,
        config: &LiveConfig,
        gate: u8,
        write: bool,
        flags: Flags,
    ) -> Option<Refusal> {
        if gate & gate::LOADING != 0 && !flags.loading {
            return Some(Refusal::Loading);
        }
        let stale = gate & (gate::LINK_DOWN | gate::LOADING) != 0;
        if stale && !flags.stale && !config.replica_serve_stale_data() {
            return Some(Refusal::MasterDown);
        }
        if write && gate & gate::REPLICA != 0 && config.replica_read_only() {
            return Some(Refusal::ReadOnly);
        }
        None
    }

    #[inline]
    fn too_few_replicas(&self, config: &LiveConfig) -> Option<Refusal> {
        let (wanted, max_lag) = config.min_replicas();
        if wanted == 0 {
            return None;
        }
        let good = self.replicas.good(max_lag.saturating_mul(1000));
        (good < wanted as usize).then_some(Refusal::NoReplicas)
    }

    /// How to answer `PSYNC replid offset` (`offset` as PSYNC counts: the
    /// next byte wanted, the feed's offset + 1), per R3.
    pub fn psync(&self, feed: &Feed, replid: &[u8], offset: i64) -> Psync {
        let ids = self.ids.lock();
        let Ok(next) = u64::try_from(offset) else {
            return Psync::Full;
        };
        let ours = replid == ids.replid.as_bytes();
        let before =
            replid == ids.replid2.as_bytes() && ids.second_offset.is_some_and(|end| next <= end);
        if next == 0 || !(ours || before) {
            return Psync::Full;
        }
        let from = next - 1;
        let backlog = feed.backlog();
        let held = backlog.is_some_and(|b| from >= b.first) && from <= feed.offset();
        match held {
            true => Psync::Continue(from),
            false => Psync::Full,
        }
    }

    /// Makes this node a replica of `target` (`REPLICAOF host port`): client
    /// writes are refused at once, the feed becomes the master's stream, and
    /// the link task connects. False if it already follows `target`.
    pub fn follow(
        &self,
        feed: &Feed,
        keyspace: &Keyspace,
        config: &LiveConfig,
        target: Target,
    ) -> bool {
        let mut ids = self.ids.lock();
        if ids.master.as_ref() == Some(&target) {
            return false;
        }
        ids.master = Some(target.clone());
        feed.set_upstream(true);
        keyspace.hide_expired(config.replica_read_only());
        self.gate.fetch_or(gate::REPLICA | gate::LINK_DOWN, Relaxed);
        self.set_link(LinkState::Connect, 0);
        // Replicas of this node sync again, from the history it joins.
        self.replicas.disconnect_all();
        self.replicas.reset_in_sync();
        self.target.send_replace(Some(target));
        true
    }

    /// Makes this node a master (`REPLICAOF NO ONE`, a promotion): a new
    /// history whose second id is the one it followed, so its siblings can
    /// continue from it (R2). False if it was a master already.
    pub fn promote(&self, feed: &Feed, keyspace: &Keyspace) -> bool {
        let mut ids = self.ids.lock();
        if ids.master.take().is_none() {
            return false;
        }
        ids.replid2 = std::mem::replace(&mut ids.replid, new_replid());
        ids.second_offset = Some(feed.offset() + 1);
        // Followed to the end, the stream brought every acknowledged grant;
        // otherwise some may be missing (L5).
        let following = self.gate.load(Relaxed) & (gate::LINK_DOWN | gate::LOADING) == 0;
        *self.grants_lost.lock() = Some(GrantsLost {
            since: Instant::now(),
            even_if_acked: !following,
        });
        // Its tokens are above the old master's bounds; its own stream needs
        // a bound of its own (L4).
        keyspace.forget_reserved_tokens();
        self.replicas.reset_in_sync();
        self.getack_end.store(0, Relaxed);
        feed.set_upstream(false);
        keyspace.hide_expired(false);
        self.gate.store(0, Relaxed);
        self.target.send_replace(None);
        true
    }

    /// This node just started with no data: lock grants it made before are
    /// lost, and new ones are refused for `lock-delay` (L5).
    pub fn started(&self) {
        *self.grants_lost.lock() = Some(GrantsLost {
            since: Instant::now(),
            even_if_acked: true,
        });
    }

    /// How many replicas the in-sync set in force has (L1, `INFO`).
    pub fn in_sync_len(&self) -> usize {
        self.replicas.in_sync().0
    }

    /// Decides the in-sync set again (L1, L2; the cron, ten times a second,
    /// and a lock change that finds it too small): a replica that did not
    /// acknowledge within `lock-ack-timeout` plus the acknowledgement period,
    /// or let a lock change time out, leaves it; one that acknowledged every
    /// lock change answered joins it. In cluster mode the cluster puts each
    /// set in force (a smaller one once a majority of masters stored it);
    /// standalone, it is in force at once, on this node's word alone (an
    /// operator promoting a replica by hand must pick one that was in it).
    pub fn refresh_in_sync(&self, config: &LiveConfig, cluster: &dyn SetAuthority) {
        if self.is_replica() {
            return;
        }
        let window = config.locks().ack_timeout_ms.saturating_add(ACK_PERIOD_MS);
        self.replicas
            .refresh_in_sync(window, cluster, cluster.may_answer());
    }

    /// What a unit of work may do with locks now (L1, L5), and the in-sync
    /// replicas its lock changes wait for.
    pub fn lock_gate(
        &self,
        config: &LiveConfig,
        cluster: &dyn SetAuthority,
    ) -> (LockGate, Vec<Arc<Replica>>) {
        self.lock_gate_at(config, cluster, Instant::now())
    }

    /// [`Replication::lock_gate`] for a unit that started `at` (a command
    /// knows when it started: no clock read).
    pub fn lock_gate_at(
        &self,
        config: &LiveConfig,
        cluster: &dyn SetAuthority,
        at: Instant,
    ) -> (LockGate, Vec<Arc<Replica>>) {
        let settings = config.locks();
        // A replica changes locks only as its master's stream says.
        if self.is_replica() {
            let open = LockGate::Open {
                acks: None,
                delay: 0,
            };
            return (open, Vec::new());
        }
        let delay = self.grant_delay(&settings, at);
        let wanted = match usize::try_from(settings.replicas_to_ack) {
            Ok(n) => n,
            Err(_) => usize::from(self.replicas.any_online()),
        };
        if wanted == 0 {
            return (LockGate::Open { acks: None, delay }, Vec::new());
        }
        let (mut in_force, mut members) = self.replicas.in_sync();
        if in_force < wanted {
            // A replica may have caught up since the cron last looked.
            self.refresh_in_sync(config, cluster);
            (in_force, members) = self.replicas.in_sync();
        }
        if in_force < wanted {
            let refusal = LockRefusal::NoReplicas {
                in_sync: in_force,
                wanted,
            };
            return (LockGate::Refused(refusal), Vec::new());
        }
        let acks = Some((members.len(), settings.ack_timeout_ms));
        (LockGate::Open { acks, delay }, members)
    }

    /// For how many ms still new lock grants are refused (L5, `INFO`).
    pub fn lock_delay_left(&self, config: &LiveConfig) -> Millis {
        self.grant_delay(&config.locks(), Instant::now())
    }

    /// For how many ms still new lock grants are refused (L5).
    fn grant_delay(&self, settings: &LockSettings, at: Instant) -> Millis {
        let mut lost = self.grants_lost.lock();
        let Some(since) = *lost else {
            return 0;
        };
        if !since.even_if_acked && settings.replicas_to_ack != 0 {
            return 0;
        }
        let elapsed = at.saturating_duration_since(since.since).as_millis() as u64;
        let left = settings.delay_ms.saturating_sub(elapsed);
        if left == 0 {
            *lost = None;
        }
        left
    }

    /// Waits for `held`, a unit that ended at feed offset `offset`, to be
    /// acknowledged by every replica of `members` (its in-sync set), and asks
    /// them to acknowledge at once. It is answered only if `cluster` says a
    /// lock change may be (L3), checked again at each acknowledgement until
    /// its deadline.
    pub fn hold(
        &self,
        feed: &Feed,
        held: Arc<Held>,
        offset: u64,
        members: Vec<Arc<Replica>>,
        cluster: &dyn SetAuthority,
    ) {
        let may_answer = cluster.may_answer();
        self.replicas
            .hold(held.clone(), offset, members, may_answer);
        // One request after the unit's records is enough.
        if held.phase() == Phase::Pending && self.getack_end.load(Relaxed) <= offset {
            self.ask_acks(feed);
        }
    }

    /// Asks the replicas to acknowledge their offset now (`REPLCONF GETACK
    /// *` in the stream) rather than at their next period.
    pub fn ask_acks(&self, feed: &Feed) {
        let mut getack = Vec::new();
        encode_command(&mut getack, &[b"REPLCONF", b"GETACK", b"*"]);
        feed.append(&getack, 1, crate::feed::Scope::Link);
        self.getack_end.fetch_max(feed.offset(), Relaxed);
    }

    /// A full sync from the master started: a new history at `offset` named
    /// `replid`; the dataset is being replaced.
    pub fn sync_started(&self, replid: &str, offset: u64, feed: &Feed, now: Millis) {
        let mut ids = self.ids.lock();
        ids.replid = replid.to_owned();
        ids.replid2 = NO_REPLID.to_owned();
        ids.second_offset = None;
        feed.restart(offset, true);
        self.getack_end.store(0, Relaxed);
        self.gate.fetch_or(gate::LOADING, Relaxed);
        self.set_link(LinkState::Sync, now);
    }

    /// The master continues this node's history (`+CONTINUE`), under a new id
    /// if it was promoted since.
    pub fn continued(&self, replid: Option<&str>, feed: &Feed, now: Millis) {
        let mut ids = self.ids.lock();
        if let Some(replid) = replid.filter(|id| *id != ids.replid) {
            ids.replid2 = std::mem::replace(&mut ids.replid, replid.to_owned());
            ids.second_offset = Some(feed.offset() + 1);
        }
        self.link_up(now);
    }

    /// The last slot of a full sync was applied.
    pub fn sync_done(&self, now: Millis) {
        self.gate.fetch_and(!gate::LOADING, Relaxed);
        self.link_up(now);
    }

    fn link_up(&self, now: Millis) {
        self.gate.fetch_and(!gate::LINK_DOWN, Relaxed);
        let mut link = self.link.lock();
        link.state = if self.loading() {
            LinkState::Sync
        } else {
            LinkState::Connected
        };
        link.last_io = now;
        link.down_since = None;
    }

    /// The link task reports where it stands (connecting, down).
    pub fn set_link(&self, state: LinkState, now: Millis) {
        let mut link = self.link.lock();
        if matches!(state, LinkState::Connect | LinkState::Connecting) {
            self.gate.fetch_or(gate::LINK_DOWN, Relaxed);
            link.down_since.get_or_insert(now);
        }
        link.state = state;
    }

    /// The link received bytes at `now`.
    pub fn link_io(&self, now: Millis) {
        self.link.lock().last_io = now;
    }

    /// Puts changed settings in force: the backlog's size, and whether a
    /// replica hides or removes expired keys.
    pub fn settings_changed(&self, feed: &Feed, keyspace: &Keyspace, config: &LiveConfig) {
        if feed.backlog().is_some() {
            feed.keep_backlog(config.replication().backlog_size);
        }
        if self.is_replica() {
            keyspace.hide_expired(config.replica_read_only());
        }
    }
}

/// The command flags the replication checks read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// May run while a full sync loads (`loading`).
    pub loading: bool,
    /// May run on stale data (`stale`).
    pub stale: bool,
}

/// The cluster puts in-sync sets in force (L2) and says whether this master
/// may answer lock changes (L3); standalone, both at once.
impl SetAuthority for ClusterHandle {
    fn clustered(&self) -> bool {
        self.enabled()
    }

    fn propose(&self, members: Vec<Id>) -> u64 {
        self.propose_in_sync(members)
    }

    fn in_force(&self, version: u64) -> bool {
        self.in_sync_confirmed(version)
    }

    fn may_answer(&self) -> bool {
        self.may_grant()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::config::Config;

    fn config(pairs: &[(&[u8], &[u8])]) -> LiveConfig {
        let live = LiveConfig::new(&Config::default(), None);
        live.set(pairs).unwrap();
        live
    }

    fn acks(gate: LockGate) -> Option<(usize, Millis)> {
        match gate {
            LockGate::Open { acks, .. } => acks,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lock_changes_wait_for_the_in_sync_replicas_once_one_is_online() {
        let replication = Replication::new();
        let live = config(&[]);
        let (gate, members) = replication.lock_gate(&live, &ClusterHandle::standalone());
        assert_eq!(acks(gate), None, "no replica: answered at once");
        assert!(members.is_empty());
        let ip = IpAddr::from([127, 0, 0, 1]);
        let syncing = replication
            .replicas
            .add(1, ip, 7000, None, false, CancellationToken::new());
        assert_eq!(
            acks(replication.lock_gate(&live, &ClusterHandle::standalone()).0),
            None,
            "still syncing"
        );
        syncing.online();
        let (gate, members) = replication.lock_gate(&live, &ClusterHandle::standalone());
        assert_eq!(acks(gate), Some((1, 1000)));
        assert_eq!(members.len(), 1);
        // Asked for two: refused with one in sync.
        let two = config(&[(b"lock-replicas-to-ack", b"2")]);
        let refused = LockRefusal::NoReplicas {
            in_sync: 1,
            wanted: 2,
        };
        assert_eq!(
            replication.lock_gate(&two, &ClusterHandle::standalone()).0,
            LockGate::Refused(refused)
        );
        let none = config(&[(b"lock-replicas-to-ack", b"0")]);
        assert_eq!(
            acks(replication.lock_gate(&none, &ClusterHandle::standalone()).0),
            None
        );
    }

    #[test]
    fn grants_wait_for_lock_delay_after_a_start_or_an_unfollowed_promotion() {
        let (feed, keyspace) = (Feed::default(), Keyspace::new());
        let live = config(&[(b"lock-delay", b"60000")]);
        let delay = |replication: &Replication, live: &LiveConfig| match replication
            .lock_gate(live, &ClusterHandle::standalone())
            .0
        {
            LockGate::Open { delay, .. } => delay,
            other => panic!("{other:?}"),
        };
        let replication = Replication::new();
        assert_eq!(delay(&replication, &live), 0, "nothing lost yet");
        replication.started();
        assert!(delay(&replication, &live) > 59_000);
        let off = config(&[(b"lock-delay", b"0")]);
        assert_eq!(delay(&replication, &off), 0);
        // Promoted with its link down: it may miss grants.
        let target = Target {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let cut_off = Replication::new();
        cut_off.follow(&feed, &keyspace, &live, target.clone());
        assert!(cut_off.promote(&feed, &keyspace));
        assert!(delay(&cut_off, &live) > 59_000);
        // Promoted while following, after a start: every acknowledged grant
        // came with the stream, unless grants were not acknowledged.
        let following = Replication::new();
        following.started();
        following.follow(&feed, &keyspace, &live, target);
        following.sync_done(0);
        assert!(following.promote(&feed, &keyspace));
        assert_eq!(delay(&following, &live), 0);
        let unacked = config(&[(b"lock-delay", b"60000"), (b"lock-replicas-to-ack", b"0")]);
        assert!(delay(&following, &unacked) > 59_000);
    }
}
