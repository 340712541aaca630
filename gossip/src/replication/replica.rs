//! The replica interface: how the replication protocol reads and writes the local keyspace.

use crdt::Value;

/// The local keyspace as the replication protocol sees it. Implemented by the node over its
/// sharded keyspace and by [`super::MemReplica`] in memory (tests and the simulation).
///
/// The protocol calls these methods synchronously from its handlers (like foca's `Runtime`):
/// they must not wait on the network, and should be quick. Keys live in `2^leaf_bits` buckets
/// given by [`crate::digest::bucket_of`]; digests and entry hashes are those of
/// [`crate::digest`], as of the last [`Replica::refresh`].
pub trait Replica {
    /// `log2` of the number of buckets; fixed for the life of the keyspace and equal to
    /// [`super::ReplicationConfig::leaf_bits`].
    fn leaf_bits(&self) -> u32;

    /// Brings every bucket digest up to date: recomputes the entry hash of each key changed since
    /// the last refresh ([`crate::digest::BucketDigest::refresh_entry`]) and stamps entries whose
    /// hash changed with `epoch`. Epochs only grow.
    fn refresh(&mut self, epoch: u64);

    /// Appends the digest of every bucket, in bucket order, as of the last refresh.
    fn leaf_digests(&mut self, out: &mut Vec<u64>);

    /// Appends `(key, entry hash)` of every key of `bucket` as of the last refresh, in any
    /// order (tombstones included: they are state).
    fn bucket_entries(&mut self, bucket: u32, out: &mut Vec<(Vec<u8>, u64)>);

    /// The current state of `key` (tombstones included), `None` if absent.
    fn state(&mut self, key: &[u8]) -> Option<Value>;

    /// Merges states received from peers into their keys and marks changed keys dirty. These are
    /// not local writes: they are not handed back to replication.
    ///
    /// Must be durable before returning (as durable as an acknowledged write): the protocol then
    /// tells the peer it holds them, and the peer's tombstone GC relies on it. Returns how many
    /// keys changed.
    fn merge(&mut self, entries: Vec<(Vec<u8>, Value)>) -> usize;

    /// Removes (durably) up to `limit` tombstones that are collectable at `safe_epoch`
    /// ([`crate::digest::EntryDigest::is_collectable`]: a tombstone at its last refresh, stamped
    /// with an epoch ≤ `safe_epoch`, and not changed since), taking them out of their bucket
    /// digests; returns them.
    fn drop_tombstones(&mut self, safe_epoch: u64, limit: usize) -> Vec<(Vec<u8>, Value)>;
}
