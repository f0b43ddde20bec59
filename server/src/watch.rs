//! Keys watched by clients for `WATCH`/`EXEC` (optimistic locking).
//!
//! Every write to a watched key sets the watchers' flags while the writer still
//! holds the key's slot lock, so a transaction that holds that slot afterwards is
//! sure to see the flag. With nobody watching, writers pay one atomic load.
//! Uses nothing else of the crate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// A client's "a watched key was touched" flag.
pub type WatchFlag = Arc<AtomicBool>;

/// The registry of watched keys.
#[derive(Debug, Default)]
pub struct Watches {
    by_key: Mutex<HashMap<Vec<u8>, Vec<WatchFlag>>>,
    /// Number of (key, client) watches, for the fast path.
    count: AtomicUsize,
}

impl Watches {
    /// True when no key is watched.
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Watches `key` with `flag` (once per key and flag).
    pub fn watch(&self, key: &[u8], flag: &WatchFlag) {
        let mut by_key = self.by_key.lock();
        let flags = by_key.entry(key.to_vec()).or_default();
        if !flags.iter().any(|f| Arc::ptr_eq(f, flag)) {
            flags.push(flag.clone());
            self.count.fetch_add(1, Ordering::Release);
        }
    }

    /// Stops watching `keys` with `flag`.
    pub fn unwatch<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>, flag: &WatchFlag) {
        let mut by_key = self.by_key.lock();
        for key in keys {
            if let Some(flags) = by_key.get_mut(key) {
                let before = flags.len();
                flags.retain(|f| !Arc::ptr_eq(f, flag));
                self.count
                    .fetch_sub(before - flags.len(), Ordering::Release);
                if flags.is_empty() {
                    by_key.remove(key);
                }
            }
        }
    }

    /// Marks every watcher of `key` as touched.
    pub fn touch(&self, key: &[u8]) {
        if self.is_empty() {
            return;
        }
        if let Some(flags) = self.by_key.lock().get(key) {
            for f in flags {
                f.store(true, Ordering::Release);
            }
        }
    }

    /// The keys someone watches (for `FLUSHALL`, which touches those of them
    /// that exist).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        if self.is_empty() {
            return Vec::new();
        }
        self.by_key.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_a_key_flags_only_its_watchers() {
        let w = Watches::default();
        let (a, b) = (WatchFlag::default(), WatchFlag::default());
        w.watch(b"k", &a);
        w.watch(b"k", &a);
        w.watch(b"other", &b);
        w.touch(b"k");
        assert!(a.load(Ordering::Acquire));
        assert!(!b.load(Ordering::Acquire));
        w.unwatch([&b"k"[..], b"other"], &a);
        w.unwatch([&b"other"[..]], &b);
        assert!(w.is_empty());
    }

    #[test]
    fn watched_keys_are_listed_once() {
        let w = Watches::default();
        let (a, b) = (WatchFlag::default(), WatchFlag::default());
        w.watch(b"x", &a);
        w.watch(b"x", &b);
        assert_eq!(w.keys(), [b"x".to_vec()]);
    }
}
