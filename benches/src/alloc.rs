//! A global allocator that counts live heap bytes and allocations while switched on.
//!
//! Off, it costs one relaxed load of a flag per call, so timing runs are not disturbed. The
//! memory child process switches it on to measure heap per session; the in-process check
//! switches it on around a few requests to count allocations per request.
#![allow(unsafe_code)] // `GlobalAlloc` is an unsafe trait; this module only forwards to `System`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};

struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

#[global_allocator]
static GLOBAL: Counting = Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counters are side effects only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && ON.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && ON.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        if ON.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && ON.load(Relaxed) {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        p
    }
}

/// Heap bytes and allocation calls since [`start`] (net: frees subtract).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counts {
    pub(crate) live_bytes: isize,
    pub(crate) calls: usize,
}

/// Resets the counters and starts counting.
pub(crate) fn start() {
    LIVE.store(0, Relaxed);
    CALLS.store(0, Relaxed);
    ON.store(true, Relaxed);
}

/// Stops counting and returns what was counted.
pub(crate) fn stop() -> Counts {
    ON.store(false, Relaxed);
    Counts {
        live_bytes: LIVE.load(Relaxed),
        calls: CALLS.load(Relaxed),
    }
}

/// The process's resident set, in bytes, from `/proc/self/status`.
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
