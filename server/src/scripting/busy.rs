//! Scripts running past `busy-reply-threshold`: while any is, other clients
//! get `-BUSY` (all but the commands flagged `allow-busy`), and `SCRIPT KILL`
//! or `FUNCTION KILL` may stop one that has not written.
//!
//! A script enters here only once it passed the threshold, from its count
//! hook; a short script never touches this registry, and the check every
//! command makes is one atomic load.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// One slow script.
#[derive(Debug)]
pub struct BusyScript {
    /// Run by `EVAL` (not `FCALL`).
    pub eval: bool,
    /// Its SHA1 or function name.
    pub name: String,
    /// The request that runs it (`FUNCTION STATS` shows it).
    pub command: Vec<Vec<u8>>,
    /// When it started.
    pub started: Instant,
    /// [`WROTE`] and [`KILLED`], set once each, never both: a kill and a
    /// first write race, and exactly one of them wins.
    state: AtomicU8,
}

const WROTE: u8 = 1;
const KILLED: u8 = 2;

impl BusyScript {
    /// A script run by `EVAL` (`eval`) or `FCALL` as `command`, since
    /// `started`; `wrote` if it ran a write already.
    pub fn new(
        eval: bool,
        name: &str,
        command: Vec<Vec<u8>>,
        started: Instant,
        wrote: bool,
    ) -> BusyScript {
        BusyScript {
            eval,
            name: name.to_owned(),
            command,
            started,
            state: AtomicU8::new(if wrote { WROTE } else { 0 }),
        }
    }

    /// Called before the script's write: false if it was killed (the write
    /// must not run); after it, the script can no longer be killed.
    pub fn may_write(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & KILLED == 0).then_some(state | WROTE)
            })
            .is_ok()
    }

    /// True once `SCRIPT KILL`/`FUNCTION KILL` stopped it.
    pub fn killed(&self) -> bool {
        self.state.load(Ordering::Acquire) & KILLED != 0
    }

    fn wrote(&self) -> bool {
        self.state.load(Ordering::Acquire) & WROTE != 0
    }

    /// Kills it unless it wrote; true if it is killed now.
    fn kill(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & WROTE == 0).then_some(state | KILLED)
            })
            .is_ok()
    }
}

/// Why a kill did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillRefusal {
    /// No script is busy.
    NotBusy,
    /// The busy script wrote already.
    Unkillable,
    /// The busy script is of the other kind (`EVAL` for `FUNCTION KILL`, a
    /// function for `SCRIPT KILL`): `eval` says which it is.
    OtherKind {
        /// The busy one was run by `EVAL`.
        eval: bool,
    },
}

/// The scripts past the threshold.
#[derive(Debug, Default)]
pub struct BusyScripts {
    count: AtomicUsize,
    scripts: Mutex<Vec<Arc<BusyScript>>>,
}

impl BusyScripts {
    /// Whether a script is busy, and if so whether the oldest was run by
    /// `EVAL` (its kind names the kill command in `-BUSY`).
    #[inline]
    pub fn busy(&self) -> Option<bool> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.scripts.lock().first().map(|script| script.eval)
    }

    /// The oldest busy script.
    pub fn oldest(&self) -> Option<Arc<BusyScript>> {
        self.scripts.lock().first().cloned()
    }

    /// Registers a script past the threshold, logging it as Redis does.
    pub fn enter(&self, script: BusyScript) -> Arc<BusyScript> {
        tracing::warn!(
            "Slow script detected: still in execution after {} milliseconds. You can try killing \
             the script using the {} command. Script name is: {}.",
            script.started.elapsed().as_millis(),
            if script.eval {
                "SCRIPT KILL"
            } else {
                "FUNCTION KILL"
            },
            script.name,
        );
        let script = Arc::new(script);
        let mut scripts = self.scripts.lock();
        scripts.push(script.clone());
        self.count.store(scripts.len(), Ordering::Release);
        script
    }

    /// Removes a script that ended.
    pub fn leave(&self, script: &Arc<BusyScript>) {
        let mut scripts = self.scripts.lock();
        scripts.retain(|s| !Arc::ptr_eq(s, script));
        self.count.store(scripts.len(), Ordering::Release);
    }

    /// `SCRIPT KILL` (`eval`) or `FUNCTION KILL`: asks every busy script of
    /// that kind that has not written to stop. When none can be, the refusal
    /// is the oldest script's, checked in Redis's order.
    pub fn kill(&self, eval: bool) -> Result<(), KillRefusal> {
        let scripts = self.scripts.lock();
        let mut killed = false;
        for script in scripts.iter().filter(|s| s.eval == eval) {
            killed |= script.kill();
        }
        match scripts.first() {
            _ if killed => Ok(()),
            None => Err(KillRefusal::NotBusy),
            Some(oldest) if oldest.wrote() => Err(KillRefusal::Unkillable),
            Some(oldest) => Err(KillRefusal::OtherKind { eval: oldest.eval }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn scripts_are_busy_between_enter_and_leave_and_killed_by_their_kind() {
        let busy = BusyScripts::default();
        assert_eq!(busy.busy(), None);
        assert_eq!(busy.kill(true), Err(KillRefusal::NotBusy));
        let started = Instant::now() - Duration::from_secs(5);
        let f = busy.enter(BusyScript::new(false, "f", Vec::new(), started, false));
        assert_eq!(busy.busy(), Some(false));
        assert_eq!(busy.kill(true), Err(KillRefusal::OtherKind { eval: false }));
        assert!(!f.killed());
        assert_eq!(busy.kill(false), Ok(()));
        assert!(f.killed());
        assert!(!f.may_write(), "a killed script writes nothing");
        assert!(f.killed());
        busy.leave(&f);
        assert_eq!(busy.busy(), None);

        let e = busy.enter(BusyScript::new(true, "sha", Vec::new(), started, false));
        assert!(e.may_write());
        assert_eq!(busy.kill(true), Err(KillRefusal::Unkillable));
        assert!(!e.killed());
        busy.leave(&e);
        assert_eq!(busy.kill(true), Err(KillRefusal::NotBusy));
    }
}
