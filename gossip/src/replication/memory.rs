//! [`MemReplica`]: an in-memory keyspace of `crdt::Value`s implementing [`Replica`], and the
//! reference for how a keyspace embeds [`crate::digest`] (one [`BucketDigest`] per bucket, one
//! [`EntryDigest`] per key, both changed under the same borrow as the value).

use std::collections::BTreeMap;

use crdt::{Merge, Value};

use super::Replica;
use crate::digest::{BucketDigest, EntryDigest, bucket_of};

#[derive(Clone, Debug, Default)]
struct Bucket {
    /// Ordered, so that runs are reproducible (the node's shards may use hash maps).
    entries: BTreeMap<Box<[u8]>, (Value, EntryDigest)>,
    digest: BucketDigest,
}

/// An in-memory keyspace sharded by bucket, with lazily refreshed digests.
#[derive(Clone, Debug)]
pub struct MemReplica {
    leaf_bits: u32,
    buckets: Vec<Bucket>,
}

impl MemReplica {
    /// An empty keyspace of `2^leaf_bits` buckets.
    pub fn new(leaf_bits: u32) -> Self {
        MemReplica {
            leaf_bits,
            buckets: vec![Bucket::default(); 1 << leaf_bits],
        }
    }

    fn bucket(&mut self, key: &[u8]) -> &mut Bucket {
        &mut self.buckets[bucket_of(key, self.leaf_bits) as usize]
    }

    /// Runs a local write on `key` (created if missing); a returned delta marks the key dirty.
    /// Returns what `f` returns.
    pub fn write<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Value) -> R) -> R
    where
        R: WriteOutcome,
    {
        let bucket = self.bucket(key);
        let (value, entry) = bucket.entries.entry(key.into()).or_default();
        let out = f(value);
        if out.changed() {
            bucket.digest.mark_dirty(key, entry);
        }
        if value.parts().len() == 0 {
            let (_, entry) = bucket.entries.remove(key).expect("just inserted");
            bucket.digest.remove_entry(&entry);
        }
        out
    }

    /// The value of `key` (tombstones included).
    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        self.buckets[bucket_of(key, self.leaf_bits) as usize]
            .entries
            .get(key)
            .map(|(v, _)| v)
    }

    /// Every key and value, sorted by key (for comparisons in tests).
    pub fn snapshot(&self) -> BTreeMap<Vec<u8>, Value> {
        self.buckets
            .iter()
            .flat_map(|b| b.entries.iter().map(|(k, (v, _))| (k.to_vec(), v.clone())))
            .collect()
    }

    /// Replaces the whole keyspace with `entries` (a restore from an old data directory): every
    /// key is dirty, as after loading from disk.
    pub fn restore(leaf_bits: u32, entries: BTreeMap<Vec<u8>, Value>) -> Self {
        let mut replica = MemReplica::new(leaf_bits);
        for (key, value) in entries {
            replica.write(&key, |v| {
                v.merge(value);
                true
            });
        }
        replica
    }

    /// Number of keys held, tombstones included.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a write closure returns: whether it changed the value.
pub trait WriteOutcome {
    /// Whether the value changed (a delta was produced).
    fn changed(&self) -> bool;
}

impl WriteOutcome for bool {
    fn changed(&self) -> bool {
        *self
    }
}

impl WriteOutcome for Option<Value> {
    fn changed(&self) -> bool {
        self.is_some()
    }
}

impl Replica for MemReplica {
    fn leaf_bits(&self) -> u32 {
        self.leaf_bits
    }

    fn refresh(&mut self, epoch: u64) {
        for bucket in self.buckets.iter_mut().filter(|b| b.digest.has_dirty()) {
            for key in bucket.digest.take_dirty() {
                if let Some((value, entry)) = bucket.entries.get_mut(&key) {
                    bucket.digest.refresh_entry(&key, value, entry, epoch);
                }
            }
        }
    }

    fn leaf_digests(&mut self, out: &mut Vec<u64>) {
        out.extend(self.buckets.iter().map(|b| b.digest.digest()));
    }

    fn bucket_entries(&mut self, bucket: u32, out: &mut Vec<(Vec<u8>, u64)>) {
        if let Some(b) = self.buckets.get(bucket as usize) {
            out.extend(
                b.entries
                    .iter()
                    .filter(|(_, (_, e))| e.hash() != 0)
                    .map(|(k, (_, e))| (k.to_vec(), e.hash())),
            );
        }
    }

    fn state(&mut self, key: &[u8]) -> Option<Value> {
        self.get(key).cloned()
    }

    fn merge(&mut self, entries: Vec<(Vec<u8>, Value)>) -> usize {
        let mut changed = 0;
        for (key, value) in entries {
            let did = self.write(&key, |v| {
                let before = v.clone();
                v.merge(value);
                *v != before
            });
            changed += usize::from(did);
        }
        changed
    }

    fn drop_tombstones(&mut self, safe_epoch: u64, limit: usize) -> Vec<(Vec<u8>, Value)> {
        let mut dropped = Vec::new();
        for bucket in self
            .buckets
            .iter_mut()
            .filter(|b| b.digest.tombstones() > 0)
        {
            let keys: Vec<Box<[u8]>> = bucket
                .entries
                .iter()
                .filter(|(_, (_, e))| e.is_collectable(safe_epoch))
                .map(|(k, _)| k.clone())
                .take(limit - dropped.len())
                .collect();
            for key in keys {
                let (value, entry) = bucket.entries.remove(&key).expect("listed");
                bucket.digest.remove_entry(&entry);
                dropped.push((key.into_vec(), value));
            }
            if dropped.len() >= limit {
                break;
            }
        }
        dropped
    }
}
