//! Yielding to the worker's other ready tasks without polling for I/O first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Lets every task already queued on this worker run once, then resumes.
///
/// Unlike `tokio::task::yield_now`, which defers the task until the runtime has
/// polled the driver (one more `epoll_wait` per round), this requeues the task
/// behind the ones already woken: a round's connections all run their requests
/// before any of them writes, and the round costs one wait for events, not two.
/// The worker's tick limit still hands control back to the driver under load.
pub fn turn() -> Turn {
    Turn { yielded: false }
}

/// The future of [`turn`].
pub struct Turn {
    yielded: bool,
}

impl Future for Turn {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[tokio::test]
    async fn a_turn_lets_the_queued_tasks_run_before_resuming() {
        let local = tokio::task::LocalSet::new();
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        local.spawn_local(async move {
            o.borrow_mut().push("a: before");
            turn().await;
            o.borrow_mut().push("a: after");
        });
        let o = order.clone();
        local.spawn_local(async move { o.borrow_mut().push("b") });
        local.await;
        assert_eq!(*order.borrow(), ["a: before", "b", "a: after"]);
    }
}
