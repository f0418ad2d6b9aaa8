//! Giving freed memory back to the system.
//!
//! When a burst has drained (a big room's paste, a thousand clients that
//! caught up), the event loops free the buffers it filled (see
//! [`crate::net::connection`]). glibc's allocator keeps most of what is
//! freed for the next allocation instead of returning it, so the daemon's
//! resident memory would stay at the burst's peak. After the event loop has
//! freed a lot, it asks the allocator to return what is free
//! ([`give_back`], glibc's `malloc_trim`), at most once per release
//! interval per I/O thread. Elsewhere (another C library) this does
//! nothing, and memory comes back as that allocator sees fit.

/// Returns to the system the memory the allocator holds free. It takes a
/// few milliseconds on a large heap; call it rarely.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn give_back() {
    // SAFETY: malloc_trim has no preconditions: it only walks glibc's own
    // arenas, under their locks, and releases free pages at their top or
    // with madvise(MADV_DONTNEED); no memory in use is touched. The
    // argument is the padding to keep at the top of the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Elsewhere, nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back() {}
