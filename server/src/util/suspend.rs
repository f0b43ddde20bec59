//! Synchronous work that can give its thread back and continue later.
//!
//! A worker thread runs many connections, and a command runs to its end
//! before the next one starts. A script may not end for a long time, so a
//! batch that runs one is started on a coroutine with a stack of its own
//! ([`Suspendable`]); past `busy-reply-threshold` the script calls
//! [`suspend`], which switches back to the connection's task, so the worker
//! serves its other clients (with `-BUSY`) and resumes the script later.
//! The work keeps every borrow and lock it holds while suspended: only what
//! it owns moves into the coroutine.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ptr;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};

/// Stack of each coroutine: as much as a worker thread has, since commands
/// and scripts run there as they would on the thread.
const STACK_SIZE: usize = 2 << 20;
/// Stacks kept per thread for the next batches.
const POOLED_STACKS: usize = 4;

/// How suspended work is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Go on.
    Continue,
    /// End as soon as possible (the server shuts down, or the coroutine is
    /// dropped): the work must unwind through its own error paths, since a
    /// stack that holds C frames (Lua's) cannot be unwound by a panic.
    Abort,
}

type Yield = Yielder<Resume, ()>;

thread_local! {
    /// The yielder of the coroutine running on this thread right now; null
    /// when none is (set on every switch in, cleared on every switch out).
    static RUNNING: Cell<*const Yield> = const { Cell::new(ptr::null()) };
    static STACKS: RefCell<Vec<DefaultStack>> = const { RefCell::new(Vec::new()) };
}

/// True while running on a [`Suspendable`]'s stack, where [`suspend`] works.
pub fn inside() -> bool {
    !RUNNING.get().is_null()
}

/// Switches back to whoever resumed the running [`Suspendable`], and returns
/// how it was resumed; `None` (at once) when not on one.
pub fn suspend() -> Option<Resume> {
    let yielder = RUNNING.replace(ptr::null());
    if yielder.is_null() {
        return None;
    }
    // SAFETY: `RUNNING` holds the yielder of the coroutine this code runs
    // on: set by its body on every switch in, cleared here and by the body's
    // guard on every switch out. The yielder lives as long as the
    // coroutine, which is running, so it is alive, and it is used on the
    // stack it belongs to.
    let how = unsafe { (*yielder).suspend(()) };
    RUNNING.set(yielder);
    Some(how)
}

/// Clears [`RUNNING`] when the body ends, panics included.
struct Leave;

impl Drop for Leave {
    fn drop(&mut self) {
        RUNNING.set(ptr::null());
    }
}

/// Work of type `FnOnce() -> T` on a coroutine.
pub struct Suspendable<T: 'static> {
    coroutine: Option<Coroutine<Resume, (), T, DefaultStack>>,
}

impl<T: 'static> Suspendable<T> {
    /// Prepares `work`; nothing runs before the first [`Suspendable::resume`].
    pub fn new(work: impl FnOnce() -> T + 'static) -> Self {
        let stack = STACKS
            .with_borrow_mut(Vec::pop)
            .unwrap_or_else(|| DefaultStack::new(STACK_SIZE).expect("coroutine stack"));
        let coroutine = Coroutine::with_stack(stack, move |yielder: &Yield, _: Resume| {
            RUNNING.set(yielder);
            let _leave = Leave;
            work()
        });
        Suspendable {
            coroutine: Some(coroutine),
        }
    }

    /// Runs the work until it suspends (`None`) or ends (its result).
    /// Panics if it already ended.
    pub fn resume(&mut self, how: Resume) -> Option<T> {
        let coroutine = self.coroutine.as_mut().expect("resumed after its end");
        match coroutine.resume(how) {
            CoroutineResult::Yield(()) => None,
            CoroutineResult::Return(value) => {
                let stack = self.coroutine.take().map(Coroutine::into_stack);
                STACKS.with_borrow_mut(|stacks| {
                    if stacks.len() < POOLED_STACKS {
                        stacks.extend(stack);
                    }
                });
                Some(value)
            }
        }
    }
}

impl<T: 'static> Drop for Suspendable<T> {
    /// Work dropped half done is resumed with [`Resume::Abort`] until it
    /// ends, rather than unwound by force.
    fn drop(&mut self) {
        while self
            .coroutine
            .as_ref()
            .is_some_and(|c| c.started() && !c.done())
        {
            self.resume(Resume::Abort);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn work_suspends_resumes_and_ends_with_its_result() {
        let seen = Rc::new(Cell::new(Vec::new()));
        let log = seen.clone();
        let mut work = Suspendable::new(move || {
            assert!(inside());
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(suspend().unwrap());
            }
            log.set(got);
            7
        });
        assert!(!inside());
        assert_eq!(work.resume(Resume::Continue), None);
        assert!(!inside(), "cleared while suspended");
        assert_eq!(work.resume(Resume::Continue), None);
        assert_eq!(work.resume(Resume::Abort), None);
        assert_eq!(work.resume(Resume::Continue), Some(7));
        assert_eq!(
            seen.take(),
            [Resume::Continue, Resume::Abort, Resume::Continue]
        );
        assert_eq!(suspend(), None, "outside any coroutine");
    }

    #[test]
    fn work_dropped_suspended_is_resumed_with_abort_to_its_end() {
        let ended = Rc::new(Cell::new(false));
        let flag = ended.clone();
        let mut work = Suspendable::new(move || {
            while suspend() == Some(Resume::Continue) {}
            flag.set(true);
        });
        assert_eq!(work.resume(Resume::Continue), None);
        assert_eq!(work.resume(Resume::Continue), None);
        drop(work);
        assert!(ended.get());
        // Never started: nothing to run.
        drop(Suspendable::new(|| unreachable!()));
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_resumer_and_leaves_no_coroutine_running() {
        let mut work = Suspendable::new(|| -> u8 { panic!("inside") });
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            work.resume(Resume::Continue)
        }));
        assert!(caught.is_err());
        assert!(!inside());
    }
}
