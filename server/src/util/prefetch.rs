//! A hint to the CPU to start loading memory a command will need soon, so
//! the cache miss overlaps the work before it (a slot's lock and table are
//! rarely in cache when keys are spread over many slots).
#![allow(unsafe_code)]

/// Starts loading the cache lines that hold `value`, all at once, so their
/// misses overlap one another too. Only a hint: does nothing on targets
/// other than x86-64.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64;
        let start = value as *const T as usize;
        let end = start + std::mem::size_of::<T>().max(1);
        let mut line = start & !(LINE - 1);
        while line < end {
            // SAFETY: a prefetch neither faults nor changes memory, whatever
            // the address; SSE is part of the x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
            line += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
