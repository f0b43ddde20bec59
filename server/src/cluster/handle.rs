//! The node's handle on its cluster: the state machine behind a lock, and the
//! view of it that commands read lock-free.
//!
//! Whoever has an event for the machine (the bus thread: ticks, messages, link
//! changes; a command's thread: `CLUSTER MEET`, `PUBLISH`...) calls
//! [`ClusterHandle::step`]. A step saves the config file first when durable
//! state changed (docs/CLUSTER.md: saved before acted on), publishes the new
//! view, and hands the rest of its outputs to the bus thread, in order.
//!
//! # The replication data plane's interface
//!
//! The data plane (replication, the lock commands) and the cluster logic
//! meet here and nowhere else:
//!
//! - data plane to cluster: [`ClusterHandle::set_repl_offset`] (a master's
//!   stream offset, a replica's applied offset: headers carry it, replicas
//!   rank by it, a manual failover waits for it);
//!   [`ClusterHandle::propose_in_sync`] and
//!   [`ClusterHandle::in_sync_confirmed`] (L2: a shrunk set is in force once
//!   a majority of masters stored it).
//! - cluster to data plane: [`ClusterHandle::role`] (a `watch` of the
//!   [`Role`] this node should have: follow it as `REPLICAOF`; it changes on
//!   `CLUSTER REPLICATE`, a promotion and F6);
//!   [`ClusterHandle::writes_paused_until`] (F7: refuse or hold client
//!   writes until then); [`ClusterHandle::may_grant`] and
//!   [`ClusterHandle::majority_heard_at`] (L3, checked when the command
//!   runs).
//!
//! A node that becomes a replica keeps its keys: the machine does not ask
//! for the slots it lost to be emptied (no `Output::SlotsLost`), as the full
//! sync from its new master replaces the whole dataset; the data plane must
//! refuse writes from the moment the role says replica.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use parking_lot::Mutex;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use super::id::Id;
use super::machine::{Cluster, Output, Role, TICK};
use super::message::Body;
use super::nodes_conf;
use super::view::ClusterView;
use crate::clock::{Clock, Millis, SystemClock};

/// Which bus traffic `DEBUG CLUSTER-BUS-DROP` throws away for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusDrop {
    /// Messages from it.
    In,
    /// Messages to it.
    Out,
    /// Both ways.
    Both,
}

/// One bus link, as `CLUSTER LINKS` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Opened by this node (`to`) or by the peer (`from`).
    pub outbound: bool,
    /// The peer, once known.
    pub peer: Option<Id>,
    /// When the link was set up, Unix ms.
    pub created: Millis,
}

/// Message counts by kind ([`Body::KINDS`]).
#[derive(Debug, Default)]
pub struct MessageCounts([AtomicU64; Body::KINDS.len()]);

impl MessageCounts {
    /// Counts one message of `body`'s kind.
    pub fn count(&self, body: &Body) {
        self.0[body.kind()].fetch_add(1, Relaxed);
    }

    /// `(kind, count)` of each kind.
    pub fn by_kind(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Body::KINDS
            .iter()
            .zip(&self.0)
            .map(|(kind, n)| (*kind, n.load(Relaxed)))
    }
}

/// The state machine, and when its view was last built.
struct Stepped {
    cluster: Cluster,
    /// [`Cluster::view_digest`] of the last view built.
    digest: u64,
    /// When it was built.
    built: Millis,
}

/// The machine and what surrounds it, in cluster mode.
struct Machine {
    cluster: Mutex<Stepped>,
    conf_path: PathBuf,
    outputs: UnboundedSender<Output>,
    receiver: Mutex<Option<UnboundedReceiver<Output>>>,
    dropping: AtomicBool,
    drops: Mutex<Vec<(Option<Id>, BusDrop)>>,
    links: ArcSwap<Vec<LinkInfo>>,
    sent: MessageCounts,
    received: MessageCounts,
    /// What the data plane follows, and what it tells the machine.
    plane: Plane,
}

/// The values the data plane reads and writes without the machine's lock.
struct Plane {
    /// This node's replication offset, passed into every step.
    offset: AtomicU64,
    /// The role this node should have.
    role: watch::Sender<Role>,
    /// Unix ms until which client writes are paused (0: not paused).
    paused_until: AtomicU64,
    /// The newest in-sync set version in force.
    confirmed: AtomicU64,
    /// When a majority of masters was last heard, as nanoseconds since
    /// `base` (`u64::MAX`: never, or a replica).
    heard: AtomicU64,
    /// Half the node timeout, in ms (L3's window).
    half_timeout: AtomicU64,
    /// A replica in a manual failover: the paused master's offset it waits
    /// to reach (`u64::MAX`: none), so reaching it steps the machine at once.
    manual_target: AtomicU64,
    base: Instant,
}

impl Plane {
    fn new(cluster: &Cluster) -> Plane {
        Plane {
            offset: AtomicU64::new(0),
            role: watch::Sender::new(cluster.role()),
            paused_until: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            heard: AtomicU64::new(u64::MAX),
            half_timeout: AtomicU64::new(cluster.settings().node_timeout / 2),
            manual_target: AtomicU64::new(u64::MAX),
            base: Instant::now(),
        }
    }

    /// Publishes what a step changed: the role first, then the pause (a
    /// write held by the pause sees the new role when it is let go).
    fn publish(&self, cluster: &Cluster, now: Millis) {
        let role = cluster.role();
        self.role.send_if_modified(|old| {
            let changed = *old != role;
            *old = role;
            changed
        });
        self.paused_until
            .store(cluster.writes_paused_until(), Relaxed);
        self.confirmed.store(cluster.in_sync_in_force(), Relaxed);
        self.half_timeout
            .store(cluster.settings().node_timeout / 2, Relaxed);
        self.manual_target
            .store(cluster.manual_target().unwrap_or(u64::MAX), Relaxed);
        let heard = cluster.heard_majority().and_then(|heard| {
            let ago = Duration::from_millis(now.saturating_sub(heard));
            let at = Instant::now().checked_sub(ago)?;
            let nanos = at.checked_duration_since(self.base)?.as_nanos();
            u64::try_from(nanos).ok()
        });
        self.heard.store(heard.unwrap_or(u64::MAX), Relaxed);
    }
}

/// The cluster of a node: none in standalone mode.
pub struct ClusterHandle {
    view: ArcSwapOption<ClusterView>,
    machine: Option<Machine>,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

impl ClusterHandle {
    /// A standalone server's handle.
    pub fn standalone() -> Self {
        ClusterHandle {
            view: ArcSwapOption::empty(),
            machine: None,
        }
    }

    /// A cluster node's handle on `cluster`, whose durable state lives in
    /// `conf_path`.
    pub fn new(cluster: Cluster, conf_path: &Path) -> Self {
        let view = ClusterView::of(&cluster, None);
        let plane = Plane::new(&cluster);
        let (outputs, receiver) = unbounded_channel();
        ClusterHandle {
            view: ArcSwapOption::new(Some(Arc::new(view))),
            machine: Some(Machine {
                cluster: Mutex::new(Stepped {
                    digest: cluster.view_digest(),
                    cluster,
                    built: 0,
                }),
                conf_path: conf_path.to_path_buf(),
                outputs,
                receiver: Mutex::new(Some(receiver)),
                dropping: AtomicBool::new(false),
                drops: Mutex::new(Vec::new()),
                links: ArcSwap::default(),
                sent: MessageCounts::default(),
                received: MessageCounts::default(),
                plane,
            }),
        }
    }

    /// True in cluster mode (fixed at start, as Redis's `cluster-enabled`).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.machine.is_some()
    }

    /// This node's id (`None` in standalone mode).
    pub fn myself(&self) -> Option<Id> {
        self.inspect(|c, _| c.myself())
    }

    /// The view now (`None` in standalone mode). Cheap; hold it for the
    /// duration of one decision, not across awaits.
    #[inline]
    pub fn view(&self) -> Option<Guard<Option<Arc<ClusterView>>>> {
        self.machine.as_ref().map(|_| self.view.load())
    }

    /// Runs one step of the machine at the wall clock's time: `event` changes
    /// it, then the config is saved if durable state changed, the view is
    /// republished and the other outputs go to the bus thread. `None` in
    /// standalone mode.
    pub fn step<R>(&self, event: impl FnOnce(&mut Cluster, Millis) -> R) -> Option<R> {
        let machine = self.machine.as_ref()?;
        let mut stepped = machine.cluster.lock();
        let now = SystemClock.now_ms();
        let plane = &machine.plane;
        stepped.cluster.set_repl_offset(plane.offset.load(Relaxed));
        let result = event(&mut stepped.cluster, now);
        for output in stepped.cluster.take_outputs() {
            match output {
                Output::Save => save_or_die(&machine.conf_path, &stepped.cluster),
                // The bus thread ends only with the server.
                output => drop(machine.outputs.send(output)),
            }
        }
        // A view shows ping and pong times up to a tick old: most messages
        // change nothing else, and building a view costs more than a step.
        let digest = stepped.cluster.view_digest();
        if digest != stepped.digest || now.saturating_sub(stepped.built) >= TICK {
            let previous = self.view.load_full();
            let view = ClusterView::of(&stepped.cluster, previous.as_deref());
            self.view.store(Some(Arc::new(view)));
            stepped.digest = digest;
            stepped.built = now;
        }
        plane.publish(&stepped.cluster, now);
        Some(result)
    }

    /// Sets this node's replication offset (the data plane, as it changes):
    /// a master's stream offset, a replica's applied offset. The machine
    /// reads it at its next step (at least every 100 ms); a replica that
    /// just reached its paused master's offset in a manual failover steps
    /// it now (F7), so its election does not wait for the next tick.
    pub fn set_repl_offset(&self, offset: u64) {
        if let Some(machine) = &self.machine {
            machine.plane.offset.store(offset, Relaxed);
            if machine.plane.manual_target.load(Relaxed) == offset {
                self.step(|c, now| c.manual_caught_up(now));
            }
        }
    }

    /// The role this node should have, as a `watch` that changes on
    /// `CLUSTER REPLICATE`, a promotion and F6 (`None` in standalone mode,
    /// where `REPLICAOF` alone decides).
    pub fn role(&self) -> Option<watch::Receiver<Role>> {
        self.machine.as_ref().map(|m| m.plane.role.subscribe())
    }

    /// Until when (Unix ms) client writes are paused for a manual failover
    /// (F7); 0 when they are not. A write checks it before it runs and,
    /// paused, waits (or fails) and is routed again afterwards. The machine
    /// calls its offset final only [`PAUSE_SETTLE`](super::machine::PAUSE_SETTLE)
    /// ms after the pause began: a write must not take longer than that
    /// between its check and its entry in the stream.
    pub fn writes_paused_until(&self) -> Millis {
        self.machine
            .as_ref()
            .map_or(0, |m| m.plane.paused_until.load(Relaxed))
    }

    /// L2: proposes this master's in-sync set of replicas; returns its
    /// version (0 on a replica or standalone). A set that only adds
    /// replicas is in force at once; one that drops any is in force once a
    /// majority of the slot-serving masters stored it.
    pub fn propose_in_sync(&self, members: Vec<Id>) -> u64 {
        self.step(|c, now| c.propose_in_sync(members, now))
            .unwrap_or(0)
    }

    /// L2: whether the in-sync set of `version` (or a newer one) is in
    /// force: only then may a lock change acknowledged by its members alone
    /// be answered. Always true in standalone mode.
    pub fn in_sync_confirmed(&self, version: u64) -> bool {
        self.machine
            .as_ref()
            .is_none_or(|m| m.plane.confirmed.load(Relaxed) >= version)
    }

    /// L3: when this master last heard a majority of the slot-serving
    /// masters (`None` on a replica, or never).
    pub fn majority_heard_at(&self) -> Option<Instant> {
        let machine = self.machine.as_ref()?;
        let nanos = machine.plane.heard.load(Relaxed);
        (nanos != u64::MAX).then(|| machine.plane.base + Duration::from_nanos(nanos))
    }

    /// L3: whether this node may grant or extend a lock (or take a write)
    /// now: it heard a majority of the slot-serving masters within half the
    /// node timeout. Always true in standalone mode.
    pub fn may_grant(&self) -> bool {
        let Some(machine) = &self.machine else {
            return true;
        };
        let window = Duration::from_millis(machine.plane.half_timeout.load(Relaxed));
        self.majority_heard_at()
            .is_some_and(|heard| heard.elapsed() <= window)
    }

    /// Reads the machine at the wall clock's time without stepping it.
    pub fn inspect<R>(&self, read: impl FnOnce(&Cluster, Millis) -> R) -> Option<R> {
        let machine = self.machine.as_ref()?;
        let stepped = machine.cluster.lock();
        Some(read(&stepped.cluster, SystemClock.now_ms()))
    }

    /// Saves the config file now (`CLUSTER SAVECONFIG`, and at start).
    pub fn save(&self) -> std::io::Result<()> {
        match &self.machine {
            Some(machine) => {
                let stepped = machine.cluster.lock();
                nodes_conf::save(&machine.conf_path, &stepped.cluster.durable())
            }
            None => Ok(()),
        }
    }

    /// The outputs for the bus thread to carry out; given once.
    pub fn take_receiver(&self) -> Option<UnboundedReceiver<Output>> {
        self.machine.as_ref()?.receiver.lock().take()
    }

    /// `DEBUG CLUSTER-BUS-DROP`: from now on drop the traffic `drop` names for
    /// `node` (`None`: every node), or stop dropping it (`drop` `None`).
    /// Stopping reopens the links to `node`, as a healed partition would
    /// ([`Cluster::reset_links`]).
    pub fn set_drop(&self, node: Option<Id>, drop: Option<BusDrop>) {
        let Some(machine) = &self.machine else { return };
        {
            let mut drops = machine.drops.lock();
            drops.retain(|(n, _)| *n != node);
            if let Some(drop) = drop {
                drops.push((node, drop));
            }
            machine.dropping.store(!drops.is_empty(), Relaxed);
        }
        if drop.is_none() {
            self.step(|cluster, now| cluster.reset_links(node, now));
        }
    }

    /// Whether traffic from (`inbound`) or to `peer` is to be dropped.
    pub fn drops(&self, peer: Option<Id>, inbound: bool) -> bool {
        let Some(machine) = &self.machine else {
            return false;
        };
        if !machine.dropping.load(Relaxed) {
            return false;
        }
        machine.drops.lock().iter().any(|&(node, drop)| {
            let applies = node.is_none() || node == peer;
            let way = match drop {
                BusDrop::Both => true,
                BusDrop::In => inbound,
                BusDrop::Out => !inbound,
            };
            applies && way
        })
    }

    /// The bus's links, as last published.
    pub fn links(&self) -> Arc<Vec<LinkInfo>> {
        self.machine
            .as_ref()
            .map(|m| m.links.load_full())
            .unwrap_or_default()
    }

    /// Publishes the bus's links (the bus thread, when they change).
    pub fn set_links(&self, links: Vec<LinkInfo>) {
        if let Some(machine) = &self.machine {
            machine.links.store(Arc::new(links));
        }
    }

    /// Messages sent and received, by kind; `None` in standalone mode.
    pub fn message_counts(&self) -> Option<(&MessageCounts, &MessageCounts)> {
        self.machine.as_ref().map(|m| (&m.sent, &m.received))
    }
}

/// Saves the durable state or stops the process, as Redis does
/// (`clusterSaveConfigOrDie`): a node that cannot keep its epochs and votes
/// could break the cluster's rules after a restart.
fn save_or_die(path: &Path, cluster: &Cluster) {
    if let Err(e) = nodes_conf::save(path, &cluster.durable()) {
        tracing::error!(
            "Fatal: can't update cluster config file {}: {e}",
            path.display()
        );
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::machine::lone_node;
    use crate::cluster::slots::SlotSet;

    fn handle(dir: &Path) -> ClusterHandle {
        ClusterHandle::new(lone_node(1), &dir.join("nodes.conf"))
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringkv-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_step_saves_before_its_view_shows_the_change_and_old_views_stay_whole() {
        let dir = temp_dir("handle-step");
        let handle = handle(&dir);
        let before = handle.view().unwrap().clone().unwrap();
        let slots: SlotSet = (0..10).collect();
        handle.step(|c, _| c.add_slots(&slots)).unwrap().unwrap();
        let after = handle.view().unwrap().clone().unwrap();
        assert!(!before.is_mine(3) && after.is_mine(3));
        let saved = nodes_conf::load(&dir.join("nodes.conf")).unwrap().unwrap();
        assert_eq!(saved.nodes[0].slots, vec![(0, 9)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn drop_rules_name_a_node_or_all_and_a_direction() {
        let dir = temp_dir("handle-drop");
        let handle = handle(&dir);
        let (a, b) = (Id([1; 20]), Id([2; 20]));
        assert!(!handle.drops(Some(a), true));
        handle.set_drop(Some(a), Some(BusDrop::In));
        assert!(handle.drops(Some(a), true) && !handle.drops(Some(a), false));
        assert!(!handle.drops(Some(b), true));
        handle.set_drop(None, Some(BusDrop::Both));
        assert!(handle.drops(Some(b), false) && handle.drops(None, true));
        handle.set_drop(None, None);
        handle.set_drop(Some(a), None);
        assert!(!handle.drops(Some(a), true));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn standalone_has_no_view_and_no_steps() {
        let handle = ClusterHandle::standalone();
        assert!(handle.view().is_none());
        assert!(handle.step(|_, _| ()).is_none());
        // The data plane's side: nothing to follow, nothing to wait for.
        assert!(handle.role().is_none());
        assert!(handle.may_grant() && handle.majority_heard_at().is_none());
        assert_eq!(handle.propose_in_sync(vec![Id([1; 20])]), 0);
        assert!(handle.in_sync_confirmed(7));
        assert_eq!(handle.writes_paused_until(), 0);
    }

    #[test]
    fn the_data_plane_sets_the_offset_and_follows_the_role() {
        let dir = temp_dir("handle-plane");
        let handle = handle(&dir);
        let mut role = handle.role().unwrap();
        assert_eq!(*role.borrow_and_update(), Role::Master);
        handle.set_repl_offset(42);
        handle.step(|c, now| c.tick(now)).unwrap();
        assert_eq!(handle.inspect(|c, _| c.repl_offset()), Some(42));
        // A master no replica follows has no successor to fear (L3).
        assert!(handle.may_grant());
        let version = handle.propose_in_sync(Vec::new());
        assert!(version > 0 && handle.in_sync_confirmed(version));
        assert!(!handle.in_sync_confirmed(version + 1));
        // Restarted as a replica: the role says so from the start, and a
        // reset makes it a master again.
        let mut conf = handle.inspect(|c, _| c.durable()).unwrap();
        let master = Id([0xab; 20]).to_string();
        let mut line = conf.nodes[0].clone();
        line.id = master.clone();
        line.flags.myself = false;
        line.port = 7001;
        line.slots = vec![(0, 100)];
        conf.nodes[0].flags.master = false;
        conf.nodes[0].flags.replica = true;
        conf.nodes[0].master = Some(master.clone());
        conf.nodes.push(line);
        let settings = handle.inspect(|c, _| c.settings()).unwrap();
        let addr = handle
            .inspect(|c, _| c.node(c.myself()).unwrap().addr)
            .unwrap();
        let replica = Cluster::restore(settings, &conf, addr, 3, 1).unwrap();
        let handle = ClusterHandle::new(replica, &dir.join("nodes.conf"));
        let mut role = handle.role().unwrap();
        let expected = Role::Replica {
            master: Id([0xab; 20]),
            ip: addr.ip,
            port: 7001,
        };
        assert_eq!(*role.borrow_and_update(), expected);
        handle.step(|c, now| c.tick(now)).unwrap();
        assert!(!role.has_changed().unwrap());
        assert!(!handle.may_grant() && handle.majority_heard_at().is_none());
        handle.step(|c, now| c.reset(false, now)).unwrap();
        assert!(role.has_changed().unwrap());
        assert_eq!(*role.borrow_and_update(), Role::Master);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
