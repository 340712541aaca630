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
//! In a large set, finding a member is one more wait, on the member's slot in the set's hash
//! table: under `SADD -P 16` to a set of 100,000 members, 16% of the connection thread's time.
//! So the set-member commands name their members too, and a last pass fetches those slots
//! (`Keyspace::prefetch_members`); the lookup then took 3%, the pass 5%.
//!
//! A prefetch is only a hint: it never waits for a lock (a shard kept locked by another thread
//! is skipped), reads nothing the command will not read again, and a wrong guess costs a wasted
//! fetch, not a wrong answer.

/// Asks the CPU to bring the value at `at` (every cache line of it) into its caches, without
/// waiting.
#[inline]
pub(super) fn prefetch_lines<T>(at: *const T) {
    prefetch_bytes(at.cast(), size_of::<T>());
}

/// Asks the CPU to bring the `len` bytes at `at` (every cache line they touch) into its caches,
/// without waiting.
#[inline]
pub(super) fn prefetch_bytes(at: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for offset in line_offsets(at as usize, len) {
            // `wrapping_offset`: the address is only a hint, never dereferenced.
            #[allow(unsafe_code)]
            // SAFETY: `_mm_prefetch` requires SSE, which every x86_64 CPU has (it is part of
            // the baseline target); it reads nothing into the program and cannot fault, even
            // on an address that is not mapped.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(at.cast::<i8>().wrapping_offset(offset));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // No stable prefetch hint elsewhere; touching the value here would wait for it.
        let _ = (at, len);
    }
}

/// The offsets from `at` of the starts of the cache lines that the `len` bytes at `at` touch:
/// the first line starts before `at` unless `at` is aligned.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn line_offsets(at: usize, len: usize) -> impl Iterator<Item = isize> {
    const LINE: usize = 64;
    let first = (at % LINE) as isize;
    let lines = (at % LINE + len).div_ceil(LINE);
    (0..lines).map(move |line| (line * LINE) as isize - first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_fetched_cover_exactly_the_bytes() {
        for at in [0usize, 1, 8, 63, 64, 100, 4095] {
            for len in [1usize, 8, 56, 63, 64, 65, 128, 200] {
                let starts: Vec<usize> = line_offsets(at, len)
                    .map(|o| at.wrapping_add_signed(o))
                    .collect();
                assert!(starts.iter().all(|s| s % 64 == 0), "{at} {len}");
                assert!(starts[0] <= at && at < starts[0] + 64, "{at} {len}");
                let last = *starts.last().unwrap();
                assert!(last < at + len && at + len <= last + 64, "{at} {len}");
                assert!(starts.windows(2).all(|w| w[1] == w[0] + 64), "{at} {len}");
            }
        }
        assert_eq!(line_offsets(64, 0).count(), 0);
    }
}
