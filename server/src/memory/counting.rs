//! A global allocator wrapper that counts the bytes the program holds, so the
//! memory limit can be checked before every write for the cost of one atomic load.
//!
//! jemalloc keeps the same figure (`stats.allocated`), but reading it means a
//! `mallctl` epoch refresh that merges every arena's statistics: fine ten times a
//! second, far too slow per command. Here each thread adds its allocations to a
//! thread-local delta and folds it into one shared atomic every [`FLUSH`] bytes,
//! so the shared counter is never off by more than that per thread and the hot
//! path never contends.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use super::size_class;

/// Bytes a thread may allocate or free before publishing them.
const FLUSH: i64 = 64 << 10;

static USED: AtomicI64 = AtomicI64::new(0);

thread_local! {
    // Const-initialised and without a destructor: touching it from inside the
    // allocator never allocates and works at any point of a thread's life.
    static PENDING: Cell<i64> = const { Cell::new(0) };
}

#[inline]
fn add(delta: i64) {
    PENDING.with(|pending| {
        let value = pending.get() + delta;
        if value.abs() >= FLUSH {
            USED.fetch_add(value, Relaxed);
            pending.set(0);
        } else {
            pending.set(value);
        }
    });
}

/// Bytes allocated through [`Counting`]: exact for the calling thread, within
/// 64 KiB per other thread. 0 when [`Counting`] is not the global allocator.
pub fn used() -> u64 {
    let pending = PENDING.with(Cell::get);
    (USED.load(Relaxed) + pending).max(0) as u64
}

/// Wraps an allocator and counts every allocation at the size the allocator
/// really hands out (jemalloc's size class), as `used_memory` must.
#[derive(Debug, Default)]
pub struct Counting<A>(pub A);

// SAFETY: every method forwards to the wrapped allocator with the caller's
// arguments unchanged and only updates a counter besides; the wrapped
// allocator's guarantees carry over.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's valid layout.
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            add(size_class(layout.size()) as i64);
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(size_class(layout.size()) as i64);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned, with its layout.
        unsafe { self.0.dealloc(ptr, layout) };
        add(-(size_class(layout.size()) as i64));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, forwarded unchanged.
        let moved = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            add(size_class(new_size) as i64 - size_class(layout.size()) as i64);
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The unit tests of this crate run with the counter installed, so it can be
    // checked against real allocations.
    #[global_allocator]
    static COUNTED: Counting<std::alloc::System> = Counting(std::alloc::System);

    #[test]
    fn allocations_and_frees_are_counted_at_once_on_their_thread() {
        let before = used();
        let block = vec![1u8; 64 << 20];
        let during = used();
        drop(block);
        let after = used();
        // Other test threads allocate too, but publish at most 64 KiB at a time.
        let slack = 8 << 20;
        assert!(
            during.abs_diff(before + (64 << 20)) < slack,
            "{before} {during}"
        );
        assert!(after.abs_diff(before) < slack, "{before} {after}");
    }

    #[test]
    fn growth_in_place_is_counted() {
        let before = used();
        let mut v: Vec<u8> = Vec::with_capacity(1 << 20);
        v.reserve_exact(32 << 20);
        assert!(used() >= before + (32 << 20) - (4 << 20));
    }
}
