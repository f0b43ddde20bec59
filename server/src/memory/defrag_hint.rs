//! Which blocks are worth moving: Redis's defragmentation hint, built on
//! jemalloc's `experimental.utilization.query`.
//!
//! Moving every block blindly shuffles data between slabs as much as it packs
//! it. A block is worth moving only if its slab is fuller than nothing but
//! emptier than the average slab of its size class, and is not the slab new
//! blocks are carved from: then the move fills a hole in a fuller slab and
//! brings its own slab closer to empty, and so to being given back.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::OnceLock;

/// The query's output layout (see jemalloc's `ctl.c`).
#[repr(C)]
struct Utilization {
    /// The slab a new block of this size would come from (null: bin full).
    slabcur: *mut c_void,
    nfree: usize,
    nregs: usize,
    /// Bytes of the slab the queried block lives in.
    size: usize,
    bin_nfree: usize,
    bin_nregs: usize,
}

/// True if jemalloc serves the program's allocations: its count of bytes this
/// thread allocated grows with a fresh block. (Linked in but not the global
/// allocator, as in unit tests, it must not be asked about foreign pointers.)
fn jemalloc_is_global() -> bool {
    let Ok(counter) = tikv_jemalloc_ctl::thread::allocatedp::read() else {
        return false;
    };
    let before = counter.get();
    let block = std::hint::black_box(vec![0u8; 4096]);
    let grew = counter.get().wrapping_sub(before) >= 4096;
    drop(block);
    grew
}

fn query_mib() -> Option<&'static [usize; 3]> {
    static MIB: OnceLock<Option<[usize; 3]>> = OnceLock::new();
    MIB.get_or_init(|| {
        if !jemalloc_is_global() {
            return None;
        }
        let mut mib = [0usize; 3];
        tikv_jemalloc_ctl::raw::name_to_mib(b"experimental.utilization.query\0", &mut mib)
            .ok()
            .map(|()| mib)
    })
    .as_ref()
}

/// True if the heap block at `ptr` sits in a sparse slab and moving it to a
/// fresh allocation would help the allocator give memory back. Always false
/// when jemalloc is not the global allocator.
pub fn worth_moving(ptr: *const u8) -> bool {
    let Some(mib) = query_mib() else {
        return false;
    };
    let mut out = Utilization {
        slabcur: std::ptr::null_mut(),
        nfree: 0,
        nregs: 0,
        size: 0,
        bin_nfree: 0,
        bin_nregs: 0,
    };
    let mut out_len = std::mem::size_of::<Utilization>();
    let mut input = ptr as *mut c_void;
    // SAFETY: the output buffer and its length match the layout jemalloc
    // documents for this query; the input is one pointer, passed by address
    // with its size. jemalloc only reads metadata of the extent holding `ptr`,
    // a live block the caller owns.
    let status = unsafe {
        tikv_jemalloc_sys::mallctlbymib(
            mib.as_ptr(),
            mib.len(),
            (&mut out as *mut Utilization).cast(),
            &mut out_len,
            (&mut input as *mut *mut c_void).cast(),
            std::mem::size_of::<*mut c_void>(),
        )
    };
    if status != 0 || out.slabcur.is_null() || out.nregs <= 1 || out.nfree == 0 {
        // Failed, a full bin, a large allocation or a full slab.
        return false;
    }
    let slab_start = out.slabcur as usize;
    if (slab_start..slab_start + out.size).contains(&(ptr as usize)) {
        return false;
    }
    // Used share of this slab below the bin's average.
    let used = out.nregs - out.nfree;
    let bin_used = out.bin_nregs.saturating_sub(out.bin_nfree);
    used * out.bin_nregs < bin_used * out.nregs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_allocators_are_never_queried() {
        // Unit tests run on the system allocator (see `counting`).
        assert!(!jemalloc_is_global());
        let block = Box::new([0u8; 100]);
        assert!(!worth_moving(block.as_ptr()));
    }
}
