//! The keyspace as the replication protocol sees it: [`gossip::replication::Replica`] over the
//! shards.
//!
//! Each shard is one anti-entropy bucket and keeps the bucket's [`BucketDigest`] next to its
//! entries, each entry its `EntryDigest`, changed under the shard's lock with the value (see
//! `gossip::digest` for the model). Local writes mark keys dirty ([`Keyspace::write`]); merges
//! from peers mark them here; [`Replica::refresh`] brings the digests up to date just before
//! anti-entropy reads them.
//!
//! ## Durability
//! The protocol tells a peer it holds what it merged, and the peer's tombstone GC relies on it,
//! so [`Replica::merge`] returns only once the merged states are in RocksDB, with the fsync
//! policy of acknowledged writes. Merges persist the *received* state as the key's next record
//! by the same policy as a local write's delta (a small key is rewritten whole, a large one gets
//! the received state appended), numbered from the key's own sequence, so merges and local
//! writes committed in either order leave the right state on disk.
//!
//! Dropped tombstones are deleted from RocksDB while their shard is still locked: a write that
//! re-creates the key afterwards commits after the delete, never before it.
//!
//! The protocol calls these methods from the replication task; the RocksDB writes happen in
//! `block_in_place`, so the runtime moves other tasks off this worker meanwhile.
//!
//! [`BucketDigest`]: gossip::digest::BucketDigest

use std::sync::Arc;

use crdt::{Merge, Timestamp, Value};
use gossip::replication::Replica;
use storage::{Batch, Op, Store};

use super::{Key, Keyspace};

/// [`Replica`] over a shared [`Keyspace`] and its store.
#[derive(Clone)]
pub struct KeyspaceReplica {
    keyspace: Arc<Keyspace>,
    store: Arc<dyn Store>,
    /// fsync each merge (the `always` policy).
    sync: bool,
}

impl std::fmt::Debug for KeyspaceReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyspaceReplica")
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl KeyspaceReplica {
    /// The replica of `keyspace` (built [`Keyspace::with_digests`]), persisting to `store`,
    /// fsyncing merges when `sync`.
    pub fn new(keyspace: Arc<Keyspace>, store: Arc<dyn Store>, sync: bool) -> Self {
        KeyspaceReplica {
            keyspace,
            store,
            sync,
        }
    }

    fn write_durably(&self, batch: &Batch) {
        if batch.is_empty() {
            return;
        }
        let write = || self.store.write(batch, self.sync);
        let result = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(write)
            }
            _ => write(),
        };
        if let Err(error) = result {
            // The merge is in memory but not on disk. Nothing was acknowledged to a client;
            // the peer will be told we hold it, which a crash before the next successful write
            // of this key would make untrue. Storage errors mean a failing disk: say so loudly.
            tracing::error!(%error, "cannot persist replicated states");
        }
    }
}

/// The latest HLC timestamp recorded in `value`: the node observes it so that its own later
/// writes order after what it has seen.
fn latest_timestamp(value: &Value) -> Option<Timestamp> {
    value
        .parts()
        .flat_map(|part| {
            let register = match part.data() {
                crdt::value::Data::Register(r) => r.entries().iter().map(|e| e.ts).max(),
                _ => None,
            };
            [Some(part.created()), register]
        })
        .flatten()
        .max()
}

impl Replica for KeyspaceReplica {
    fn leaf_bits(&self) -> u32 {
        self.keyspace.bits
    }

    fn refresh(&mut self, epoch: u64) {
        for index in 0..self.keyspace.shards.len() {
            if !self.keyspace.read_shard(index).digest.has_dirty() {
                continue;
            }
            let mut guard = self.keyspace.write_shard(index);
            let shard = &mut *guard;
            for key in shard.digest.take_dirty() {
                if let Some(entry) = shard.entries.get_mut(&key) {
                    let (_, value, digest) = entry.digest_parts_mut();
                    shard.digest.refresh_entry(&key, value, digest, epoch);
                }
            }
        }
    }

    fn leaf_digests(&mut self, out: &mut Vec<u64>) {
        let ks = &self.keyspace;
        out.extend((0..ks.shards.len()).map(|i| ks.read_shard(i).digest.digest()));
    }

    fn bucket_entries(&mut self, bucket: u32, out: &mut Vec<(Vec<u8>, u64)>) {
        if bucket as usize >= self.keyspace.shards.len() {
            return;
        }
        let shard = self.keyspace.read_shard(bucket as usize);
        out.extend(
            shard
                .entries
                .iter()
                .filter(|e| e.digest().hash() != 0)
                .map(|e| (e.key().to_vec(), e.digest().hash())),
        );
    }

    fn state(&mut self, key: &[u8]) -> Option<Value> {
        self.keyspace.read(key, |v| v.cloned())
    }

    fn merge(&mut self, entries: Vec<(Vec<u8>, Value)>) -> usize {
        let mut batch = Batch::new();
        let mut changed = 0;
        let mut latest: Option<Timestamp> = None;
        for (key, incoming) in entries {
            latest = latest.max(latest_timestamp(&incoming));
            let ks = &self.keyspace;
            let mut guard = ks.write_shard(ks.shard_index(&key));
            let shard = &mut *guard;
            let entry = shard.entries.get_or_insert(&key);
            let existed = entry.value.exists();
            // A small value is compared with its old self and rewritten whole (the policy of
            // `Entry::persist`); a large one is assumed changed, at the cost of at most a
            // redundant record and digest refresh, and gets the received state appended. Either
            // way one copy: of the small old value, or of the received state.
            let changed_here = if entry.is_small() {
                let before = entry.value.clone();
                entry.value.merge(incoming);
                (before != entry.value).then(|| entry.persist_full())
            } else {
                entry.value.merge(incoming.clone());
                Some(entry.persist(&incoming))
            };
            if let Some(op) = changed_here {
                changed += 1;
                batch.push(op);
                shard.digest.mark_dirty(&key, entry.digest_mut());
            }
            let exists = entry.value.exists();
            if entry.value.parts().len() == 0
                && let Some(gone) = shard.entries.remove(key.as_slice())
            {
                shard.digest.remove_entry(&gone.digest());
            }
            drop(guard);
            ks.count_change(existed, exists);
        }
        if let Some(ts) = latest
            && let Err(error) = self.keyspace.clock().observe(ts)
        {
            // The states are merged all the same (they are facts); only the clock refuses to
            // jump ahead. A peer with a clock this far off needs an operator.
            tracing::warn!(%error, "replicated state from a clock far ahead");
        }
        self.write_durably(&batch);
        changed
    }

    fn drop_tombstones(&mut self, safe_epoch: u64, limit: usize) -> Vec<(Vec<u8>, Value)> {
        let mut dropped = Vec::new();
        for index in 0..self.keyspace.shards.len() {
            if dropped.len() >= limit {
                break;
            }
            if self.keyspace.read_shard(index).digest.tombstones() == 0 {
                continue;
            }
            let mut guard = self.keyspace.write_shard(index);
            let shard = &mut *guard;
            let keys: Vec<Key> = shard
                .entries
                .iter()
                .filter(|e| e.digest().is_collectable(safe_epoch))
                .map(|e| e.key().clone())
                .take(limit - dropped.len())
                .collect();
            if keys.is_empty() {
                continue;
            }
            let mut batch = Batch::new();
            for key in keys {
                if let Some(entry) = shard.entries.remove(&key) {
                    shard.digest.remove_entry(&entry.digest());
                    batch.push(Op::DeleteKey { key: key.to_vec() });
                    dropped.push((key.to_vec(), entry.value));
                }
            }
            // Under the shard lock: see the module doc.
            self.write_durably(&batch);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crdt::NodeId;
    use gossip::replication::MemReplica;
    use storage::MemStore;

    use super::*;
    use crate::write_set::WriteSet;

    fn replica() -> (Arc<Keyspace>, KeyspaceReplica, Arc<MemStore>) {
        let ks = Arc::new(Keyspace::for_tests(NodeId(1)));
        let store = Arc::new(MemStore::new());
        let r = KeyspaceReplica::new(ks.clone(), store.clone(), true);
        (ks, r, store)
    }

    fn set(ks: &Keyspace, key: &str, value: &str) -> Value {
        let mut ws = WriteSet::new();
        ks.write(key.as_bytes(), &mut ws, |v, ts| {
            Ok(((), Some(v.set_register(ts, value.as_bytes()))))
        })
        .unwrap();
        ws.deltas()[0].delta.clone()
    }

    fn leaves(r: &mut impl Replica) -> Vec<u64> {
        let mut out = Vec::new();
        r.leaf_digests(&mut out);
        out
    }

    /// The node's replica and the reference in-memory one agree on every digest for the same
    /// states, so nodes and the simulation compare equal.
    #[test]
    fn digests_match_the_reference_replica() {
        let (ks, mut r, _) = replica();
        let mut reference = MemReplica::new(ks.shard_bits());
        let mut states = BTreeMap::new();
        for i in 0..200 {
            let delta = set(&ks, &format!("k{i}"), &format!("v{i}"));
            states.insert(format!("k{i}").into_bytes(), delta);
        }
        reference.merge(states.into_iter().collect());
        r.refresh(1);
        reference.refresh(1);
        assert_eq!(leaves(&mut r), leaves(&mut reference));
        let mut a = Vec::new();
        let mut b = Vec::new();
        let bucket = gossip::digest::bucket_of(b"k7", ks.shard_bits());
        r.bucket_entries(bucket, &mut a);
        reference.bucket_entries(bucket, &mut b);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }

    #[test]
    fn merges_are_durable_and_counted() {
        let (ks, mut r, store) = replica();
        let other = Keyspace::for_tests(NodeId(2));
        let mut ws = WriteSet::new();
        other
            .write(b"k", &mut ws, |v, ts| {
                Ok(((), Some(v.set_register(ts, b"x"))))
            })
            .unwrap();
        let state = other.read(b"k", |v| v.cloned()).unwrap();
        assert_eq!(r.merge(vec![(b"k".to_vec(), state.clone())]), 1);
        assert_eq!(
            r.merge(vec![(b"k".to_vec(), state.clone())]),
            0,
            "idempotent"
        );
        assert_eq!(ks.key_count(), 1);
        // Reloading the store gives the merged state back.
        let reloaded = Keyspace::for_tests(NodeId(1));
        reloaded.load(&store.reopen()).unwrap();
        assert_eq!(reloaded.read(b"k", |v| v.cloned()), Some(state));
    }

    #[test]
    fn collectable_tombstones_are_dropped_from_memory_and_disk() {
        let (ks, mut r, store) = replica();
        set(&ks, "gone", "x");
        let mut ws = WriteSet::new();
        ks.write(b"gone", &mut ws, |v, _| Ok(((), v.delete())))
            .unwrap();
        // Persist what the commands wrote, as the connection's commit would.
        store.write(&Batch::from(ws.ops().to_vec()), true).unwrap();
        assert!(
            r.drop_tombstones(u64::MAX, 10).is_empty(),
            "not refreshed yet"
        );
        r.refresh(3);
        assert!(
            r.drop_tombstones(2, 10).is_empty(),
            "changed after the safe epoch"
        );
        let dropped = r.drop_tombstones(3, 10);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].0, b"gone");
        assert!(!ks.read(b"gone", |v| v.is_some()));
        assert!(leaves(&mut r).iter().all(|&d| d == 0));
        assert!(store.get(b"gone").unwrap().is_none());
    }
}
