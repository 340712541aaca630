//! Prefetching the entries a pipelined batch is about to use.
//!
//! With a hundred thousand keys or more, the entries of a keyspace do not fit in the CPU's
//! caches, and the command that finds its key waits for memory: on a pipelined `SET` benchmark
//! over 100,000 keys, a fifth of the connection threads' time was spent on that one load, and a
//! key space small enough to stay cached ran a quarter faster. A connection reads many requests
//! at once, so before executing them it looks ahead at their keys and asks the CPU to fetch
//! each key's entry; the fetches then proceed side by side, while the commands before them run,
//! instead of one after another. Redis 8 does the same for the same reason
//! (`prefetch-batch-max-size`).
//!
//! A value that keeps its data on the heap (a counter's tallies, a register's bytes) costs a
//! second wait, which only the entry can locate; so a third pass, once the entries are on
//! their way, fetches that data too. Under `INCR -P 16` the load of the tallies had been 7% of
//! the connection threads' time, and the extra pass costs 2%.
//!
//! A prefetch is only a hint: it never waits for a lock (a shard kept locked by another thread
//! is skipped), reads nothing the command will not read again, and a wrong guess costs a wasted
//! fetch, not a wrong answer.

/// Asks the CPU to bring the value at `at` (every cache line of it) into its caches, without
/// waiting.
#[inline]
pub(super) fn prefetch_lines<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = at.cast::<i8>();
        for line in 0..std::mem::size_of::<T>().div_ceil(64) {
            // `wrapping_add`: the address is only a hint, never dereferenced.
            #[allow(unsafe_code)]
            // SAFETY: `_mm_prefetch` requires SSE, which every x86_64 CPU has (it is part of
            // the baseline target); it reads nothing into the program and cannot fault, even
            // on an address that is not mapped.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line * 64));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // No stable prefetch hint elsewhere; touching the value here would wait for it.
        let _ = at;
    }
}
