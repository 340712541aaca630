//! A counting global allocator, for the peak memory figures of the benchmarks.
//!
//! It wraps [`System`] and, while counting is switched on, keeps the bytes currently allocated
//! and their high-water mark. Timed runs switch counting off, so the measured code pays one
//! relaxed load per allocation and nothing else; memory is measured in a separate, untimed run.

// A `#[global_allocator]` must implement the `unsafe` trait `GlobalAlloc`; the workspace denies
// unsafe code, so it is allowed here only, for these few lines that forward to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

/// The allocator installed by `main.rs`.
pub struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
// Signed: memory allocated before counting started may be freed while it runs.
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grow(n: usize) {
    if ENABLED.load(Relaxed) {
        let n = n as isize;
        let now = CURRENT.fetch_add(n, Relaxed).wrapping_add(n);
        PEAK.fetch_max(now, Relaxed);
    }
}

fn shrink(n: usize) {
    if ENABLED.load(Relaxed) {
        CURRENT.fetch_sub(n as isize, Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; the counters do not touch the
// memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        p
    }
}

/// Runs `f` with counting on and returns its result, the peak bytes allocated above what was
/// live when it started, and the bytes still held when it returned (for example by its result).
/// Memory freed during `f` that was allocated before it may make the figures slightly low.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    CURRENT.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    ENABLED.store(true, Relaxed);
    let out = f();
    ENABLED.store(false, Relaxed);
    let held = CURRENT.load(Relaxed).max(0) as usize;
    (out, PEAK.load(Relaxed).max(0) as usize, held)
}
