//! The calling thread's CPU time.
//!
//! On a shared machine the wall clock of a single-threaded loop counts whatever else ran
//! meanwhile; the thread's own CPU time does not. `/proc/thread-self/schedstat` only moves
//! at scheduler ticks (4 ms here), too coarse for 100 ms samples, so this asks the kernel.
#![allow(unsafe_code)] // One libc call with a pointer to a local.

use std::time::Duration;

/// The CPU time of the calling thread so far, or `None` if the clock is unavailable.
pub(crate) fn thread() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}
