//! The node's handle on its cluster: the state machine behind a lock, and the
//! view of it that commands read lock-free.
//!
//! Whoever has an event for the machine (the bus thread: ticks, messages, link
//! changes; a command's thread: `CLUSTER MEET`, `PUBLISH`...) calls
//! [`ClusterHandle::step`]. A step saves the config file first when durable
//! state changed (docs/CLUSTER.md: saved before acted on), publishes the new
//! view, and hands the rest of its outputs to the bus thread, in order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use parking_lot::Mutex;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::id::Id;
use super::machine::{Cluster, Output, TICK};
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
            }),
        }
    }

    /// True in cluster mode (fixed at start, as Redis's `cluster-enabled`).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.machine.is_some()
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
        Some(result)
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
    pub fn set_drop(&self, node: Option<Id>, drop: Option<BusDrop>) {
        let Some(machine) = &self.machine else { return };
        let mut drops = machine.drops.lock();
        drops.retain(|(n, _)| *n != node);
        if let Some(drop) = drop {
            drops.push((node, drop));
        }
        machine.dropping.store(!drops.is_empty(), Relaxed);
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
    }
}
