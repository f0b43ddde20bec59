//! A fixed array on transparent huge pages, for big arrays read at random.
//!
//! The slot cells (3 MiB) are read at a random slot by nearly every command.
//! On 4 KiB pages each such read also misses the TLB, and a page walk costs
//! as much as the miss itself (twice over in a virtual machine). On 2 MiB
//! pages the whole array needs two TLB entries. Linux gives huge pages to
//! memory marked with `madvise(MADV_HUGEPAGE)` unless THP is off; elsewhere
//! this is a plain array.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::ops::Deref;
use std::ptr::NonNull;

/// Size and alignment of a transparent huge page on x86-64 and arm64.
const HUGE_PAGE: usize = 2 << 20;

/// A fixed-length array, aligned to and padded to whole huge pages.
pub struct HugeArray<T> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: `HugeArray` owns its elements like a `Box<[T]>` does.
unsafe impl<T: Send> Send for HugeArray<T> {}
// SAFETY: as above; shared access only hands out `&[T]`.
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T> HugeArray<T> {
    /// `len` elements, element `i` made by `init(i)`.
    pub fn new(len: usize, mut init: impl FnMut(usize) -> T) -> Self {
        let bytes = len
            .checked_mul(size_of::<T>())
            .expect("array size overflows")
            .max(1)
            .next_multiple_of(HUGE_PAGE);
        let layout =
            Layout::from_size_align(bytes, HUGE_PAGE.max(align_of::<T>())).expect("array layout");
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(base) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout);
        };
        advise_huge(base.as_ptr(), bytes);
        let ptr = base.cast::<T>();
        for i in 0..len {
            // SAFETY: `i < len` and the allocation holds `len` elements of
            // `T`, aligned for `T`. A panicking `init` leaks the elements
            // written so far and the allocation, nothing worse.
            unsafe { ptr.add(i).write(init(i)) };
        }
        HugeArray { ptr, len, layout }
    }
}

impl<T> Deref for HugeArray<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `new` initialised `len` elements at `ptr`, alive until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeArray<T> {
    fn drop(&mut self) {
        // SAFETY: the `len` elements are initialised and dropped once here;
        // the memory was allocated with `layout`.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            alloc::dealloc(self.ptr.as_ptr().cast(), self.layout);
        }
    }
}

/// Asks for huge pages for `len` bytes at `at` (huge-page aligned), before
/// they are first touched so the first fault maps them huge. Only advice:
/// a kernel without THP refuses, and the memory stays on small pages.
fn advise_huge(at: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the range is one live allocation of ours; the advice
        // changes how it is paged, never its contents.
        let refused = unsafe { libc::madvise(at.cast(), len, libc::MADV_HUGEPAGE) } != 0;
        if refused {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "no transparent huge pages for the slot array"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (at, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn elements_are_made_in_order_aligned_and_dropped_once() {
        let drops = Rc::new(());
        let array = HugeArray::new(1000, |i| (i, drops.clone()));
        assert_eq!(array.len(), 1000);
        assert!(array.iter().enumerate().all(|(i, (n, _))| i == *n));
        assert_eq!(array.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(Rc::strong_count(&drops), 1001);
        drop(array);
        assert_eq!(Rc::strong_count(&drops), 1);
    }

    #[test]
    fn an_empty_array_is_fine() {
        let array = HugeArray::new(0, |_| 0u64);
        assert!(array.is_empty());
    }
}
