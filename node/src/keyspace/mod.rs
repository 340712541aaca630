//! The keyspace: every key's CRDT [`Value`] in memory, sharded by anti-entropy bucket.
//!
//! RocksDB is the durable copy; memory is the working copy, loaded at start ([`load`]). Each
//! command runs synchronously against one shard under that shard's lock, changes the value, and
//! pushes into the batch's [`WriteSet`] the storage op that makes the change durable and the
//! delta that replication ships. Nothing is acknowledged before the batch is committed (see
//! [`crate::write_set`]).
//!
//! Why shards of our own rather than one `DashMap`: a key's shard is its anti-entropy bucket —
//! a deterministic hash of the key, the same on every node — so a shard can keep its bucket's
//! digest next to its entries, anti-entropy lists a bucket without scanning the keyspace, and a
//! `SCAN` cursor is simply a shard index that stays valid while keys come and go. DashMap picks
//! shards with the map's own hasher, which must stay randomly keyed against hash flooding by
//! clients; here only the choice of shard is deterministic, and each shard's [`Table`] keeps
//! its random hasher. A key's [`Entry`] is one allocation holding the key and its value (see
//! `table` on why).

mod clock;
mod entry;
mod held;
mod key;
mod load;
mod prefetch;
mod replica;
mod table;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crdt::{NodeId, Timestamp, Value};
use gossip::digest::BucketDigest;
use parking_lot::lock_api::ArcRwLockWriteGuard;
use parking_lot::{RawRwLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use clock::{CEILING_META, NodeClock, wall_ms};
pub use entry::{Entry, FULL_STATE_BELOW_BYTES};
use held::Held;
pub use held::{release as release_held, thread_tag};
pub use key::Key;
pub use load::{LoadError, LoadStats};
pub use replica::KeyspaceReplica;
pub use table::Table;

use crate::write_set::WriteSet;

/// Default number of shards (and anti-entropy buckets) as a power of two.
pub const SHARD_BITS_DEFAULT: u32 = gossip::digest::LEAF_BITS_DEFAULT;

/// One shard: the entries of one bucket, and the bucket's anti-entropy digest.
#[derive(Debug, Default)]
pub struct Shard {
    entries: Table,
    digest: BucketDigest,
    /// The [`thread_tag`] of the last writer that locked the shard through [`Keyspace::write`]
    /// (0: none yet).
    writer: u32,
}

/// Every key of the node.
#[derive(Debug)]
pub struct Keyspace {
    /// Unique among the keyspaces of the process (see [`held`]).
    id: u64,
    node: NodeId,
    clock: NodeClock,
    bits: u32,
    /// Each shard behind an `Arc` so that a connection thread can keep its lock between
    /// commands ([`held`]).
    shards: Box<[Arc<RwLock<Shard>>]>,
    /// Keys that exist (tombstones excluded).
    live: AtomicI64,
    /// Whether this keyspace replicates: writes keep the bucket digests current and hand their
    /// deltas to the write set. A standalone node skips both: nothing would ever read them,
    /// the dirty lists would only grow, and each delta costs a key copy and a value clone.
    digests: bool,
}

impl Keyspace {
    /// An empty keyspace of `1 << bits` shards.
    pub fn new(node: NodeId, clock: NodeClock, bits: u32) -> Self {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let shards = (0..1usize << bits)
            .map(|_| Arc::new(RwLock::new(Shard::default())))
            .collect();
        Keyspace {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            node,
            clock,
            bits,
            shards,
            live: AtomicI64::new(0),
            digests: false,
        }
    }

    /// Makes this keyspace replicated: writes and loads keep the anti-entropy digests current,
    /// and writes push their deltas for replication (call before loading).
    pub fn with_digests(mut self) -> Self {
        self.digests = true;
        self
    }

    /// `log2` of the number of shards (= anti-entropy buckets).
    pub fn shard_bits(&self) -> u32 {
        self.bits
    }

    /// An empty replicated keyspace with a fresh clock, for unit tests.
    pub fn for_tests(node: NodeId) -> Self {
        Keyspace::new(
            node,
            NodeClock::resume(node, crdt::hlc::DEFAULT_MAX_OFFSET_MS, 0),
            SHARD_BITS_DEFAULT,
        )
        .with_digests()
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The node's clock.
    pub fn clock(&self) -> &NodeClock {
        &self.clock
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The index of the shard holding `key`: its anti-entropy bucket
    /// ([`gossip::digest::bucket_of`]).
    fn shard_index(&self, key: &[u8]) -> usize {
        gossip::digest::bucket_of(key, self.bits) as usize
    }

    /// Read-locks shard `index`, after releasing any shard lock this thread holds ([`held`]).
    fn read_shard(&self, index: usize) -> RwLockReadGuard<'_, Shard> {
        held::release();
        self.shards[index].read()
    }

    /// Write-locks shard `index`, after releasing any shard lock this thread holds ([`held`]).
    fn write_shard(&self, index: usize) -> RwLockWriteGuard<'_, Shard> {
        held::release();
        self.shards[index].write()
    }

    /// Keys that exist.
    pub fn key_count(&self) -> u64 {
        self.live.load(Ordering::Relaxed).max(0) as u64
    }

    /// Starts fetching the entries of `keys` into the CPU's caches ([`prefetch`]): a hint for
    /// commands about to run. In three passes, so that the loads of each pass overlap: first the
    /// shards' locks and tables, then, under a read lock, the entries, then the heap data of
    /// their values (a counter's tallies, a register's bytes), which only the entry locates.
    /// Never waits for a lock: a shard locked by another thread (or kept by this one, [`held`])
    /// is skipped.
    pub fn prefetch(&self, keys: &[&[u8]]) {
        // Shard indices and hashes are computed once per key, for every pass, in slices of this
        // many.
        const SLICE: usize = 32;
        for keys in keys.chunks(SLICE) {
            let mut shards = [None; SLICE];
            let mut hashes = [None; SLICE];
            for (i, (shard, key)) in shards.iter_mut().zip(keys).enumerate() {
                // A key repeating the one before it (a pipeline of writes to one hot key) is
                // fetched already: skipping it spares its hashes and two lock round trips.
                if i > 0 && keys[i - 1] == *key {
                    continue;
                }
                let index = self.shard_index(key);
                prefetch::prefetch_lines(Arc::as_ptr(&self.shards[index]));
                *shard = Some(index);
            }
            for ((shard, hash), key) in shards.iter().zip(&mut hashes).zip(keys) {
                if let Some(shard) = shard.and_then(|index| self.shards[index].try_read()) {
                    *hash = Some(shard.entries.prefetch(key));
                }
            }
            for ((shard, hash), key) in shards.iter().zip(hashes).zip(keys) {
                if let (Some(index), Some(hash)) = (shard, hash)
                    && let Some(shard) = self.shards[*index].try_read()
                {
                    shard.entries.prefetch_data(hash, key);
                }
            }
        }
    }

    /// Starts fetching into the CPU's caches the slots of the set members that commands about
    /// to run look up, as `(key, member)` pairs: the second wait of a command on a large set,
    /// after its entry ([`prefetch`](Self::prefetch), which should run first: this reads the
    /// entries and their sets). Never waits for a lock; consecutive pairs of one key find its
    /// set once.
    pub fn prefetch_members(&self, members: &[(&[u8], &[u8])]) {
        for run in members.chunk_by(|a, b| a.0 == b.0) {
            let key = run[0].0;
            let index = self.shard_index(key);
            let hint = |shard: &Shard| {
                if let Some(set) = shard.entries.get(key).and_then(|e| e.value.set()) {
                    for &(_, member) in run {
                        set.member_hints(member, prefetch::prefetch_bytes);
                    }
                }
            };
            if held::peek(self.id, index, hint).is_none()
                && let Some(shard) = self.shards[index].try_read()
            {
                hint(&shard);
            }
        }
    }

    /// Runs `f` on the value of `key` (`None` if the key was never written or was dropped;
    /// tombstones are passed so introspection can show them — use [`Value::exists`]).
    pub fn read<R>(&self, key: &[u8], f: impl FnOnce(Option<&Value>) -> R) -> R {
        let index = self.shard_index(key);
        if let Some(held) = held::take(self.id, index) {
            let result = f(held.guard.entries.get(key).map(|e| &e.value));
            held::keep(held);
            return result;
        }
        let shard = self.shards[index].read();
        f(shard.entries.get(key).map(|e| &e.value))
    }

    /// Runs the mutation `f` on `key` with a fresh timestamp (from the batch's wall clock
    /// reading, [`WriteSet::wall_ms`]). When `f` returns a delta, the op
    /// that persists the change, and on a replicated keyspace the delta to ship, are pushed into
    /// `ws`. On error, `f` must have left the value unchanged (every `crdt` mutator guarantees
    /// it). A connection's write set keeps the shard locked for its next command ([`held`]).
    pub fn write<R>(
        &self,
        key: &[u8],
        ws: &mut WriteSet,
        f: impl FnOnce(&mut Value, Timestamp) -> Result<(R, Option<Value>), crdt::Error>,
    ) -> Result<R, crdt::Error> {
        let (ts, ceiling) = self.clock.now_at(ws.wall_ms());
        if let Some(op) = ceiling {
            // Persist the new ceiling even if the write fails: the clock has moved past the old
            // one in memory.
            ws.push_op(op);
        }
        let index = self.shard_index(key);
        let mut held = held::take(self.id, index).unwrap_or_else(|| {
            let (mut guard, waited) = lock_for_batch(&self.shards[index]);
            let tag = held::thread_tag();
            let behind = std::mem::replace(&mut guard.writer, tag);
            ws.locked(
                index,
                (waited && behind != 0 && behind != tag).then_some(behind),
            );
            Held {
                keyspace: self.id,
                index,
                guard,
            }
        });
        let shard = &mut *held.guard;
        let entry = shard.entries.get_or_insert(key);
        let existed = entry.value.exists();
        let outcome = f(&mut entry.value, ts);
        if let Ok((_, Some(delta))) = &outcome {
            entry.persist_into(delta, ws);
            if self.digests {
                ws.push_delta(key.to_vec(), delta.clone(), ts);
                shard.digest.mark_dirty(key, entry.digest_mut());
            }
        }
        let exists = entry.value.exists();
        if entry.value.parts().len() == 0 {
            // Reads and refused writes of absent keys leave nothing behind.
            if let Some(gone) = shard.entries.remove(key) {
                shard.digest.remove_entry(&gone.digest());
            }
        }
        self.count_change(existed, exists);
        if ws.holds_locks() {
            held::keep(held);
        }
        outcome.map(|(r, _)| r)
    }

    /// Up to about `count` keys from the shards at and after `cursor` that pass `filter`, and
    /// the cursor to continue from (0 when the scan is complete). Like Redis `SCAN`, a key that
    /// exists for the whole scan is returned at least once; whole shards are returned, so a call
    /// may return more than `count`.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        mut filter: impl FnMut(&[u8], &Value) -> bool,
    ) -> (u64, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        let mut index = usize::try_from(cursor).unwrap_or(usize::MAX);
        while index < self.shards.len() {
            let shard = self.read_shard(index);
            out.extend(
                shard
                    .entries
                    .iter()
                    .filter(|e| e.value.exists() && filter(e.key(), &e.value))
                    .map(|e| e.key().to_vec()),
            );
            drop(shard);
            index += 1;
            if out.len() >= count.max(1) {
                break;
            }
        }
        let next = if index >= self.shards.len() {
            0
        } else {
            index as u64
        };
        (next, out)
    }

    pub(crate) fn count_change(&self, existed: bool, exists: bool) {
        match (existed, exists) {
            (false, true) => self.live.fetch_add(1, Ordering::Relaxed),
            (true, false) => self.live.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

/// Attempts at a shard's write lock before a connection's write sleeps on it
/// ([`lock_for_batch`]): about 30 µs of spinning at most.
const LOCK_SPINS: u32 = 1000;

/// Write-locks `shard` for a connection's batch ([`held`]); true with it if the lock was not
/// free at once. Another connection thread keeps a hot shard for its whole batch, a few
/// microseconds; sleeping in the kernel until it lets go costs both threads more than that (a
/// futex call each, and a context switch to wake up): under `SADD -P 16` to one set from two
/// connection threads, 15,000 sleeps a second, and 600 once the lock is tried for a while
/// first.
fn lock_for_batch(shard: &Arc<RwLock<Shard>>) -> (ArcRwLockWriteGuard<RawRwLock, Shard>, bool) {
    if let Some(guard) = shard.try_write_arc() {
        return (guard, false);
    }
    for _ in 0..LOCK_SPINS {
        if let Some(guard) = shard.try_write_arc() {
            return (guard, true);
        }
        std::hint::spin_loop();
    }
    (shard.write_arc(), true)
}

#[cfg(test)]
mod tests;
