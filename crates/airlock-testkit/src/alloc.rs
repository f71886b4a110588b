//! A global allocator that records, per thread, the peak of live heap bytes, so a property
//! test can bound what one parse of a hostile input allocates. Install it in a test binary:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: airlock_testkit::PeakAllocator = airlock_testkit::PeakAllocator;
//! ```
//!
//! Memory that C libraries take with `malloc` (zstd's window, for one) is not seen.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct PeakAllocator;

thread_local! {
    // Signed: a block freed on another thread than the one that allocated it lowers this one.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(delta: isize) {
    // `try_with`: allocations while the thread's locals are torn down are simply not counted.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for PeakAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            record(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// Runs `f` and returns its result with the most heap bytes that were live on this thread at
/// any moment of it, beyond what was live before. Meaningful only in a binary that installed
/// [`PeakAllocator`] (otherwise it is 0).
pub fn peak_heap_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - before).max(0) as usize)
}
