//! When a connection moves to another connection thread: the writers of a hot key gather on
//! one thread.
//!
//! Connections are placed on the least loaded thread when they are accepted ([`super::threads`]),
//! which spreads clients that write different keys. Clients that all write one key (50 clients
//! pipelining `SADD`s to one set) are then split across the threads, and their batches can only
//! run one at a time, under the key's shard lock: every batch waits for a batch of the other
//! thread, spins, and takes the set's cache lines over from the other core. Measured on the
//! 2-core test machine (`redis-benchmark -c 50 -P 16 -t sadd`), the server spent 1.6 µs of CPU
//! per `SADD` that way, against 1.2 µs with one connection thread. So a connection whose writes
//! keep waiting behind one other thread moves to that thread, where its batches take turns
//! with the others without a lock hand-over between cores.
//!
//! The rules, applied after every batch that wrote ([`Affinity::after_batch`]):
//! * **Gather:** when [`GATHER_WAITS`] of the last [`GATHER_WINDOW`] writing batches waited
//!   behind the same thread, move there, provided that thread runs at least as many
//!   connections as this one (the lower index breaks a tie). Without that condition, the
//!   clients of a hot key split between two threads would swap threads with each other; with it
//!   they all end up on the busiest one. Writers of different keys almost never wait behind one
//!   another (a batch holds one shard of thousands at a time), so they stay where they are.
//! * **Spread:** a connection that gathered remembers the shard it waited for. Once it has gone
//!   [`SPREAD_AFTER`] writing batches without writing that shard, the key is no longer hot for
//!   it; it moves to the least loaded thread if its own runs more than one connection more.
//!   A connection that still writes the hot key never spreads, so gathering and spreading do
//!   not alternate.
//!
//! This is a pure state machine: the connection feeds it what its batch's locks showed and the
//! threads' loads, and moves when it says so (between batches, with nothing held or pending).

/// Writing batches over which waits are counted.
pub const GATHER_WINDOW: u32 = 32;

/// Waits behind one thread, within [`GATHER_WINDOW`] writing batches, that make a connection
/// move to it.
pub const GATHER_WAITS: u32 = 8;

/// Writing batches without a write of the shard a connection gathered for after which it may
/// spread again.
pub const SPREAD_AFTER: u32 = 4096;

/// What one batch of a connection showed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchLocks {
    /// Whether the batch wrote anything.
    pub wrote: bool,
    /// The first shard lock the batch waited for: `(the thread whose writer kept it, the
    /// shard)`.
    pub waited: Option<(usize, usize)>,
    /// Whether the batch wrote the shard the connection gathered for ([`Affinity::watched`]).
    pub wrote_watched: bool,
}

/// The placement state of one connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Affinity {
    /// Writing batches counted in the current window.
    window: u32,
    /// The thread waited behind in this window, and how many batches waited behind it.
    behind: Option<(usize, u32)>,
    /// The shard the connection gathered for, once it has.
    gathered: Option<usize>,
    /// Writing batches since the connection last wrote the gathered shard.
    quiet: u32,
}

impl Affinity {
    /// A connection just placed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shard whose writes [`BatchLocks::wrote_watched`] should report.
    pub fn watched(&self) -> Option<usize> {
        self.gathered
    }

    /// Feeds what a batch of this connection, on thread `me`, showed; `load(i)` is the number of
    /// connections on thread `i` of `threads`. Returns the thread to move to, if any.
    pub fn after_batch(
        &mut self,
        me: usize,
        batch: BatchLocks,
        threads: usize,
        load: impl Fn(usize) -> usize,
    ) -> Option<usize> {
        if !batch.wrote {
            return None;
        }
        if let Some((thread, shard)) = batch.waited
            && thread != me
            && thread < threads
        {
            let waits = match self.behind {
                Some((t, n)) if t == thread => n + 1,
                _ => 1,
            };
            self.behind = Some((thread, waits));
            if waits >= GATHER_WAITS {
                self.restart_window();
                let (there, here) = (load(thread), load(me));
                if there > here || (there == here && thread < me) {
                    self.gathered = Some(shard);
                    self.quiet = 0;
                    return Some(thread);
                }
                return None;
            }
        }
        self.window += 1;
        if self.window >= GATHER_WINDOW {
            self.restart_window();
        }
        self.spread(me, batch.wrote_watched, threads, load)
    }

    fn restart_window(&mut self) {
        self.window = 0;
        self.behind = None;
    }

    fn spread(
        &mut self,
        me: usize,
        wrote_watched: bool,
        threads: usize,
        load: impl Fn(usize) -> usize,
    ) -> Option<usize> {
        self.gathered?;
        if wrote_watched {
            self.quiet = 0;
            return None;
        }
        self.quiet += 1;
        if self.quiet < SPREAD_AFTER {
            return None;
        }
        self.gathered = None;
        self.quiet = 0;
        let least = (0..threads).min_by_key(|&i| load(i))?;
        (load(me) > load(least) + 1).then_some(least)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WROTE: BatchLocks = BatchLocks {
        wrote: true,
        waited: None,
        wrote_watched: false,
    };

    fn waited_behind(thread: usize, shard: usize) -> BatchLocks {
        BatchLocks {
            waited: Some((thread, shard)),
            ..WROTE
        }
    }

    /// Feeds `batches` to a connection on thread `me` with the given loads; the first move.
    fn feed(
        a: &mut Affinity,
        me: usize,
        loads: &[usize],
        batches: impl IntoIterator<Item = BatchLocks>,
    ) -> Option<(usize, usize)> {
        for (i, batch) in batches.into_iter().enumerate() {
            if let Some(to) = a.after_batch(me, batch, loads.len(), |t| loads[t]) {
                return Some((i, to));
            }
        }
        None
    }

    #[test]
    fn a_writer_that_keeps_waiting_behind_a_thread_moves_to_it() {
        let mut a = Affinity::new();
        // Every other batch waits behind thread 0: the eighth wait moves it, at batch 15.
        let batches = (0..64).map(|i| {
            if i % 2 == 1 {
                waited_behind(0, 7)
            } else {
                WROTE
            }
        });
        assert_eq!(feed(&mut a, 1, &[25, 25], batches), Some((15, 0)));
        assert_eq!(a.watched(), Some(7));
    }

    #[test]
    fn rare_waits_and_waits_behind_changing_threads_move_nothing() {
        let mut a = Affinity::new();
        // Seven waits per window of 32, behind thread 0.
        let rare = (0..1000).map(|i| {
            if i % 32 < 7 {
                waited_behind(0, i)
            } else {
                WROTE
            }
        });
        assert_eq!(feed(&mut a, 1, &[10, 10], rare), None);
        // Waits alternating between two other threads never add up.
        let mut a = Affinity::new();
        let alternating = (0..1000).map(|i| waited_behind(i % 2, 3));
        assert_eq!(feed(&mut a, 2, &[5, 5, 5], alternating), None);
        // Batches that wrote nothing count for nothing, and neither does this thread itself.
        let mut a = Affinity::new();
        let idle = (0..1000).map(|_| BatchLocks {
            wrote: false,
            ..waited_behind(0, 3)
        });
        assert_eq!(feed(&mut a, 1, &[5, 5], idle), None);
        let own = (0..1000).map(|_| waited_behind(1, 3));
        assert_eq!(feed(&mut a, 1, &[5, 5], own), None);
    }

    #[test]
    fn only_the_lighter_thread_of_a_pair_moves_so_they_do_not_swap() {
        let always = || (0..1000).map(|_| waited_behind(0, 7));
        let always_1 = || (0..1000).map(|_| waited_behind(1, 7));
        // Thread 1 has fewer connections than thread 0: its connections move, thread 0's stay.
        assert_eq!(
            feed(&mut Affinity::new(), 1, &[26, 24], always()),
            Some((7, 0))
        );
        assert_eq!(feed(&mut Affinity::new(), 0, &[26, 24], always_1()), None);
        // A tie goes to the lower index.
        assert_eq!(
            feed(&mut Affinity::new(), 1, &[25, 25], always()),
            Some((7, 0))
        );
        assert_eq!(feed(&mut Affinity::new(), 0, &[25, 25], always_1()), None);
    }

    #[test]
    fn a_gathered_writer_spreads_only_once_the_key_has_cooled() {
        let mut a = Affinity::new();
        let gather = (0..8).map(|_| waited_behind(0, 7));
        assert_eq!(feed(&mut a, 1, &[25, 25], gather), Some((7, 0)));
        // Now on thread 0 with every connection: while it writes shard 7 it stays.
        let loads = [50, 0];
        let hot = BatchLocks {
            wrote_watched: true,
            ..WROTE
        };
        assert_eq!(feed(&mut a, 0, &loads, (0..100_000).map(|_| hot)), None);
        // Writing other shards only, it moves to the least loaded thread after SPREAD_AFTER.
        let cool = (0..100_000).map(|_| WROTE);
        assert_eq!(
            feed(&mut a, 0, &loads, cool),
            Some((SPREAD_AFTER as usize - 1, 1))
        );
        assert_eq!(a.watched(), None);
        // Once spread it stays, and a balanced thread does not spread at all.
        assert_eq!(
            feed(&mut a, 1, &[26, 24], (0..100_000).map(|_| WROTE)),
            None
        );
        let mut b = Affinity::new();
        let gather = (0..8).map(|_| waited_behind(0, 7));
        assert_eq!(feed(&mut b, 1, &[25, 25], gather), Some((7, 0)));
        assert_eq!(
            feed(&mut b, 0, &[26, 25], (0..100_000).map(|_| WROTE)),
            None
        );
        assert_eq!(b.watched(), None);
    }
}
