//! A hint to the CPU to start loading memory a command will need soon, so
//! the cache miss overlaps the work before it (a slot's lock and table are
//! rarely in cache when keys are spread over many slots).
#![allow(unsafe_code)]

/// Starts loading the cache line that holds the start of `value`. Only a
/// hint: does nothing on targets other than x86-64.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch neither faults nor changes memory, whatever the
    // address; SSE is part of the x86-64 baseline.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
