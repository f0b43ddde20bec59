//! Waiting for a [`CancellationToken`] in a loop that polls the wait on
//! every turn, as a connection's `select!` does once per request. The
//! token's own future takes two locks per poll; this one polls it only when
//! the token woke the task or the task's waker changed, and otherwise costs
//! one atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Completes when its token is cancelled.
pub struct Cancelled {
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker the token's future holds, once it was polled.
    registered: Option<Arc<Registered>>,
}

/// Wakes the task, and records that the token did.
struct Registered {
    woken: AtomicBool,
    task: Waker,
}

impl Wake for Registered {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

impl Cancelled {
    /// Waits for `token`.
    pub fn new(token: &CancellationToken) -> Self {
        Cancelled {
            wait: Box::pin(token.clone().cancelled_owned()),
            registered: None,
        }
    }
}

impl Future for Cancelled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(registered) = &this.registered {
            if !registered.woken.load(Ordering::Acquire) && registered.task.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        let registered = Arc::new(Registered {
            woken: AtomicBool::new(false),
            task: cx.waker().clone(),
        });
        let waker = Waker::from(registered.clone());
        let poll = this.wait.as_mut().poll(&mut Context::from_waker(&waker));
        this.registered = Some(registered);
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn completes_when_cancelled_however_often_it_was_polled() {
        let token = CancellationToken::new();
        let mut cancelled = Cancelled::new(&token);
        for _ in 0..3 {
            tokio::select! {
                biased;
                _ = &mut cancelled => panic!("not cancelled yet"),
                _ = tokio::task::yield_now() => {}
            }
        }
        let canceller = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            canceller.cancel();
        });
        tokio::time::timeout(Duration::from_secs(5), &mut cancelled)
            .await
            .expect("woken by the cancel");
    }

    #[tokio::test]
    async fn a_token_cancelled_before_the_first_poll_completes_at_once() {
        let token = CancellationToken::new();
        token.cancel();
        Cancelled::new(&token).await;
    }

    #[tokio::test]
    async fn a_new_task_waker_is_registered() {
        let token = CancellationToken::new();
        let mut cancelled = Cancelled::new(&token);
        // Polled once from one task, then awaited from another.
        tokio::select! {
            biased;
            _ = &mut cancelled => panic!("not cancelled yet"),
            _ = std::future::ready(()) => {}
        }
        let waiter = tokio::spawn(cancelled);
        tokio::time::sleep(Duration::from_millis(10)).await;
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken in its new task")
            .unwrap();
    }
}
