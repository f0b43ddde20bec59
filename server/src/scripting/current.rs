//! The host of the script running on this thread. `redis.call` is created
//! once per interpreter (making it per run cost more than the rest of a
//! short script), so it cannot borrow the run's host: the run lends it here
//! for exactly as long as the script runs.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ptr::NonNull;

use super::engine::Host;

thread_local! {
    static CURRENT: Cell<Option<NonNull<dyn Host>>> = const { Cell::new(None) };
}

/// Runs `f` with `host` as this thread's current host.
pub fn with_host<R>(host: &mut dyn Host, f: impl FnOnce() -> R) -> R {
    // SAFETY: only the lifetime is erased. The pointer is dereferenced by
    // `call_host` alone, on this thread, while `f` runs; `Restore` puts the
    // previous value back on return and on unwind, so it never outlives
    // the borrow of `host`.
    let erased: NonNull<dyn Host> = unsafe {
        std::mem::transmute::<NonNull<dyn Host + '_>, NonNull<dyn Host + 'static>>(NonNull::from(
            host,
        ))
    };
    let _restore = Restore(CURRENT.replace(Some(erased)));
    f()
}

/// Runs `f` with the current host; `None` when no script runs here.
pub fn call_host<R>(f: impl FnOnce(&mut dyn Host) -> R) -> Option<R> {
    // Taken out while in use: a call made from inside finds no host, so
    // there is never a second `&mut` to it.
    let host = CURRENT.take()?;
    let _restore = Restore(Some(host));
    // SAFETY: set by `with_host`, whose borrow lasts while its closure runs
    // on this thread, which is the only way here; and unique (see above).
    Some(f(unsafe { &mut *host.as_ptr() }))
}

/// Puts a value back into [`CURRENT`] when dropped.
struct Restore(Option<NonNull<dyn Host>>);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.set(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Args, Reply};

    struct Counter(u32);

    impl Host for Counter {
        fn call(&mut self, _: Args<'_>, _: &mut Reply) -> Result<(), String> {
            self.0 += 1;
            Ok(())
        }
    }

    #[test]
    fn the_host_is_lent_for_the_run_only_and_never_twice() {
        let mut counter = Counter(0);
        assert!(call_host(|_| ()).is_none());
        with_host(&mut counter, || {
            let (src, spans) = (Vec::new(), Vec::new());
            let mut out = Reply::default();
            call_host(|host| {
                host.call(Args::new(&src, &spans), &mut out).unwrap();
                assert!(call_host(|_| ()).is_none(), "no second borrow inside");
            });
            call_host(|host| host.call(Args::new(&src, &spans), &mut out).unwrap());
        });
        assert!(call_host(|_| ()).is_none());
        assert_eq!(counter.0, 2);
    }
}
