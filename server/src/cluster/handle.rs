//! The node's handle on its cluster view: read lock-free by every command, and
//! replaced whole when membership or slot ownership changes, so a command sees
//! one consistent view from start to end.

use std::sync::Arc;

use arc_swap::{ArcSwapOption, Guard};

use super::ClusterState;

/// The cluster view of a node: none in standalone mode.
#[derive(Debug)]
pub struct ClusterHandle {
    /// Fixed at start, as Redis's `cluster-enabled`: standalone servers never
    /// touch the view.
    enabled: bool,
    view: ArcSwapOption<ClusterState>,
}

impl ClusterHandle {
    /// A standalone server's handle.
    pub fn standalone() -> Self {
        ClusterHandle {
            enabled: false,
            view: ArcSwapOption::empty(),
        }
    }

    /// A cluster node's handle, starting from `state`.
    pub fn new(state: ClusterState) -> Self {
        ClusterHandle {
            enabled: true,
            view: ArcSwapOption::new(Some(Arc::new(state))),
        }
    }

    /// True in cluster mode.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The view now (`None` in standalone mode). Cheap; hold it for the
    /// duration of one decision, not across awaits.
    #[inline]
    pub fn view(&self) -> Option<Guard<Option<Arc<ClusterState>>>> {
        self.enabled.then(|| self.view.load())
    }

    /// Replaces the view; commands already running keep the one they loaded.
    pub fn replace(&self, state: ClusterState) {
        self.view.store(Some(Arc::new(state)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::parse_members;

    fn state(epoch: u64) -> ClusterState {
        let members = parse_members(&[
            format!("{} 127.0.0.1:7000", "a".repeat(40)),
            format!("{} 127.0.0.1:7001", "b".repeat(40)),
        ])
        .expect("valid members");
        ClusterState::new(members, "127.0.0.1", 7000, 17000, epoch).expect("valid state")
    }

    #[test]
    fn a_loaded_view_survives_its_replacement() {
        let handle = ClusterHandle::new(state(1));
        let before = handle.view().expect("cluster mode");
        handle.replace(state(2));
        let after = handle.view().expect("cluster mode");
        assert_eq!(before.as_ref().map(|v| v.epoch()), Some(1));
        assert_eq!(after.as_ref().map(|v| v.epoch()), Some(2));
    }

    #[test]
    fn standalone_has_no_view() {
        assert!(ClusterHandle::standalone().view().is_none());
    }
}
