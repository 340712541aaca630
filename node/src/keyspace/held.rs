//! Keeping one shard locked across the consecutive writes of a connection's batch.
//!
//! A pipeline often writes one key again and again (`SADD` to one set, `INCR` of one counter).
//! Locking its shard for every command costs little alone, but when clients on two connection
//! threads write the same hot key, every command hands the lock, and the cache lines of the
//! key's value, from one core to the other, and the loser of each hand-over sleeps in the
//! kernel: with 50 clients pipelining `SADD`s to one set, a third of the CPU went to that.
//! So a connection's writes keep their shard's write lock after the command, in a
//! thread-local slot, and the next write or read of the same shard on this thread uses it;
//! the lock changes hands once per batch instead of once per command.
//!
//! The rules that keep this free of deadlocks:
//! * a thread holds at most one such lock, and releases it before it takes any other shard
//!   lock (a read or write of another shard, a scan, anti-entropy): it never waits for a lock
//!   while holding one;
//! * the connection releases it when the commands of its batch are done ([`release`]), before
//!   it awaits the commit, so no lock is held across an await;
//! * only connections ask for it ([`crate::write_set::WriteSet::for_connection`]); every other
//!   writer locks per call as before.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::RawRwLock;
use parking_lot::lock_api::ArcRwLockWriteGuard;

use super::Shard;

/// The write lock of one shard of one keyspace, held by this thread.
pub(super) struct Held {
    /// [`super::Keyspace`]'s unique id.
    pub(super) keyspace: u64,
    /// The shard's index.
    pub(super) index: usize,
    pub(super) guard: ArcRwLockWriteGuard<RawRwLock, Shard>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Takes the lock this thread holds, if it is shard `index` of `keyspace`; otherwise releases
/// whatever this thread holds and returns `None`.
pub(super) fn take(keyspace: u64, index: usize) -> Option<Held> {
    HELD.with(|cell| {
        let held = cell.borrow_mut().take()?;
        (held.keyspace == keyspace && held.index == index).then_some(held)
    })
}

/// Runs `f` on shard `index` of `keyspace` if this thread holds its lock; keeps holding it.
pub(super) fn peek<R>(keyspace: u64, index: usize, f: impl FnOnce(&Shard) -> R) -> Option<R> {
    HELD.with(|cell| {
        let held = cell.borrow();
        let held = held.as_ref()?;
        (held.keyspace == keyspace && held.index == index).then(|| f(&held.guard))
    })
}

/// Keeps `held` for the next command of the batch on this thread.
pub(super) fn keep(held: Held) {
    HELD.with(|cell| {
        // Any lock found here was taken out by `take` first; a second one is a bug, released.
        drop(cell.borrow_mut().replace(held));
    });
}

/// Releases the shard lock this thread holds for its batch, if any. Connections call it when
/// the commands of a batch are done; anything that locks several shards calls it first.
pub fn release() {
    HELD.with(|cell| drop(cell.borrow_mut().take()));
}

/// This thread's tag: unique in the process and never 0. Each writer that locks a shard
/// records its tag there ([`super::Shard`]), so the next writer, if it had to wait for the
/// lock, knows whose batch it waited behind (`server::affinity` acts on it).
pub fn thread_tag() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local! {
        static TAG: u32 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TAG.with(|tag| *tag)
}

/// Whether this thread holds a shard lock (for tests).
#[cfg(test)]
pub(super) fn holding() -> bool {
    HELD.with(|cell| cell.borrow().is_some())
}
