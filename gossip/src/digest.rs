//! Digests of a keyspace for anti-entropy: a hash tree over key buckets, kept up to date in
//! O(1) per changed key.
//!
//! ## The model
//! Keys are assigned to `2^leaf_bits` **buckets** by [`bucket_of`]: the top bits of xxh3-64 of
//! the key, the same on every node and every build. A key's **entry hash** ([`entry_hash`]) hashes
//! the key together with its value's [`crdt::Value::fingerprint`], so two replicas holding the
//! same state of a key have the same entry hash. A bucket's **digest** is the XOR of the entry
//! hashes of its keys:
//!
//! * XOR is order-independent, so replicas that hold the same keys with the same states have the
//!   same bucket digest however the keys were inserted;
//! * a change of one key updates the digest in O(1): XOR out the old entry hash, XOR in the new;
//! * the key is part of the entry hash, so equal values under different keys never cancel out.
//!
//! The upper levels of the tree (fanout 16, see [`Tree`]) are folded from the bucket digests on
//! demand: 4096 XORs, far cheaper than keeping them current on every write.
//!
//! ## Lazy refresh
//! A fingerprint costs an encoding of the value, so writes do not compute it: a write marks its
//! key **dirty** ([`BucketDigest::mark_dirty`]), and digests are brought up to date just before
//! anti-entropy reads them ([`BucketDigest::take_dirty`] then [`BucketDigest::refresh_entry`] for
//! each key) — once per anti-entropy round instead of once per write. Between refreshes a bucket
//! digest describes the bucket as of the last refresh, and [`EntryDigest::hash`] is the hash that
//! is counted in it, which is what anti-entropy compares key by key.
//!
//! ## Embedding
//! [`BucketDigest`] is meant to live next to the entries of one bucket (the node shards its
//! keyspace by exactly these buckets), and [`EntryDigest`] next to each key's value, under the
//! same lock. [`crate::replication::MemReplica`] is the reference embedding, used by the
//! simulation and the tests.
//!
//! Each refresh is stamped with an *epoch* (a counter the replicator owns); an entry remembers the
//! epoch at which its hash last changed. Tombstone garbage collection compares these epochs with
//! the epochs at which anti-entropy proved peers equal (see [`crate::replication`]).

use std::ops::Range;

use crdt::Value;

/// Default number of bucket bits: 4096 buckets.
pub const LEAF_BITS_DEFAULT: u32 = 12;

/// Largest supported number of bucket bits (65536 buckets).
pub const LEAF_BITS_MAX: u32 = 16;

/// Bits per tree level: every inner node has 16 children.
pub const FANOUT_BITS: u32 = 4;

/// The bucket of `key` among `2^leaf_bits`: the top bits of xxh3-64 of the key.
pub fn bucket_of(key: &[u8], leaf_bits: u32) -> u32 {
    if leaf_bits == 0 {
        return 0;
    }
    // At most 16 bits remain after the shift, so the cast is lossless.
    (xxhash_rust::xxh3::xxh3_64(key) >> (64 - leaf_bits)) as u32
}

/// The hash of one key holding a state with `fingerprint`. Never 0, so 0 can mean "not counted".
pub fn entry_hash(key: &[u8], fingerprint: u128) -> u64 {
    // Keyed by the key's own hash: no allocation to concatenate key and fingerprint.
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(
        &fingerprint.to_le_bytes(),
        xxhash_rust::xxh3::xxh3_64(key),
    );
    h.max(1)
}

/// The digest bookkeeping of one key, stored next to its value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryDigest {
    /// The entry hash counted in the bucket digest (0: not counted yet).
    hash: u64,
    /// The refresh epoch at which `hash` last changed.
    changed_epoch: u64,
    /// The value changed since the last refresh.
    dirty: bool,
    /// The value was a tombstone at the last refresh.
    tombstone: bool,
}

impl EntryDigest {
    /// The entry hash counted in the bucket digest, as of the last refresh (0 if never refreshed).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The refresh epoch at which the entry hash last changed.
    pub fn changed_epoch(&self) -> u64 {
        self.changed_epoch
    }

    /// Whether the value changed since the last refresh.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether the value was a tombstone at the last refresh.
    pub fn is_tombstone(&self) -> bool {
        self.tombstone
    }

    /// Whether tombstone GC may drop this entry given the highest epoch proved seen by every
    /// member: a tombstone, unchanged since it was refreshed at or before `safe_epoch`.
    pub fn is_collectable(&self, safe_epoch: u64) -> bool {
        self.tombstone && !self.dirty && self.hash != 0 && self.changed_epoch <= safe_epoch
    }
}

/// The digest of one bucket and the keys of it changed since the last refresh.
#[derive(Clone, Debug, Default)]
pub struct BucketDigest {
    digest: u64,
    dirty: Vec<Box<[u8]>>,
    tombstones: u32,
}

impl BucketDigest {
    /// The digest as of the last refresh.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Tombstones in the bucket as of the last refresh (GC skips buckets without any).
    pub fn tombstones(&self) -> u32 {
        self.tombstones
    }

    /// Whether some key changed since the last refresh.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Records that `key`'s value changed (a local write or a merge). O(1); the key is queued
    /// once until the next refresh.
    pub fn mark_dirty(&mut self, key: &[u8], entry: &mut EntryDigest) {
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(key.into());
        }
    }

    /// The keys changed since the last refresh; call [`Self::refresh_entry`] for each one that
    /// still exists. A key may appear twice (removed and re-created); refreshing is idempotent.
    pub fn take_dirty(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.dirty)
    }

    /// Brings `key`'s entry hash up to date with `value`, at refresh `epoch`. Does nothing if the
    /// entry is not dirty.
    pub fn refresh_entry(
        &mut self,
        key: &[u8],
        value: &Value,
        entry: &mut EntryDigest,
        epoch: u64,
    ) {
        if !entry.dirty {
            return;
        }
        entry.dirty = false;
        let hash = entry_hash(key, value.fingerprint());
        if hash == entry.hash {
            // A merge that changed nothing keeps the entry's age for tombstone GC.
            return;
        }
        self.digest ^= entry.hash ^ hash;
        entry.hash = hash;
        entry.changed_epoch = epoch;
        let tombstone = value.is_tombstone();
        match (entry.tombstone, tombstone) {
            (false, true) => self.tombstones += 1,
            (true, false) => self.tombstones = self.tombstones.saturating_sub(1),
            _ => {}
        }
        entry.tombstone = tombstone;
    }

    /// Takes a removed key out of the digest (its key may still sit in the dirty list; the
    /// refresh skips keys that no longer exist).
    pub fn remove_entry(&mut self, entry: &EntryDigest) {
        self.digest ^= entry.hash;
        if entry.tombstone {
            self.tombstones = self.tombstones.saturating_sub(1);
        }
    }
}

/// The hash tree folded from bucket digests: level 0 is the root, the last level holds the
/// buckets, and each inner node is the XOR of its (up to) 16 children.
///
/// Level `l` has `2^min(4l, leaf_bits)` nodes; with the default 12 bits: 1, 16, 256, 4096.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    leaf_bits: u32,
    levels: Vec<Vec<u64>>,
}

impl Tree {
    /// Number of levels below the root (the level index of the buckets).
    pub fn depth_for(leaf_bits: u32) -> u8 {
        // At most 4 for the supported 16 bits.
        leaf_bits.div_ceil(FANOUT_BITS) as u8
    }

    /// `log2` of the number of nodes at `level`.
    pub fn level_bits(leaf_bits: u32, level: u8) -> u32 {
        (u32::from(level) * FANOUT_BITS).min(leaf_bits)
    }

    /// Number of nodes at `level`.
    pub fn level_len(leaf_bits: u32, level: u8) -> u32 {
        1 << Self::level_bits(leaf_bits, level)
    }

    /// The indices at `level + 1` of the children of node `index` at `level`.
    pub fn children(leaf_bits: u32, level: u8, index: u32) -> Range<u32> {
        let shift = Self::level_bits(leaf_bits, level.saturating_add(1))
            - Self::level_bits(leaf_bits, level);
        (index << shift)..((index + 1) << shift)
    }

    /// Folds the tree from the bucket digests (`leaves.len()` must be `2^leaf_bits`).
    pub fn from_leaves(leaf_bits: u32, leaves: Vec<u64>) -> Tree {
        assert_eq!(leaves.len(), 1usize << leaf_bits, "one digest per bucket");
        let depth = Self::depth_for(leaf_bits);
        let mut levels = vec![leaves];
        for level in (0..depth).rev() {
            let below = levels.last().expect("leaves pushed first");
            let shift = Self::level_bits(leaf_bits, level + 1) - Self::level_bits(leaf_bits, level);
            let len = Self::level_len(leaf_bits, level) as usize;
            let mut folded = vec![0u64; len];
            for (i, d) in below.iter().enumerate() {
                folded[i >> shift] ^= d;
            }
            levels.push(folded);
        }
        levels.reverse();
        Tree { leaf_bits, levels }
    }

    /// The number of bucket bits.
    pub fn leaf_bits(&self) -> u32 {
        self.leaf_bits
    }

    /// The level index of the buckets.
    pub fn depth(&self) -> u8 {
        Self::depth_for(self.leaf_bits)
    }

    /// The root digest.
    pub fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// The digest of node `index` at `level`, if both exist.
    pub fn node(&self, level: u8, index: u32) -> Option<u64> {
        self.levels
            .get(usize::from(level))?
            .get(usize::try_from(index).ok()?)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{NodeId, Timestamp};

    fn ts(ms: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical: 0,
            node: NodeId(1),
        }
    }

    #[test]
    fn bucket_is_top_bits_and_stable() {
        // Pinned: every node must agree, so the mapping can never change silently.
        assert_eq!(
            bucket_of(b"", 12),
            (xxhash_rust::xxh3::xxh3_64(b"") >> 52) as u32
        );
        assert_eq!(bucket_of(b"anything", 0), 0);
        for key in [&b"a"[..], b"key:1", b"\xff\x00"] {
            assert!(bucket_of(key, 12) < 4096);
            assert_eq!(bucket_of(key, 4), bucket_of(key, 12) >> 8);
        }
    }

    #[test]
    fn digest_is_order_independent_and_incremental() {
        let mut v1 = Value::new();
        v1.set_register(ts(1), b"x");
        let mut v2 = Value::new();
        v2.incr_by(ts(2), 5).unwrap();
        let (mut a, mut b) = (BucketDigest::default(), BucketDigest::default());
        let (mut a1, mut a2, mut b1, mut b2) = Default::default();
        a.mark_dirty(b"k1", &mut a1);
        a.mark_dirty(b"k2", &mut a2);
        a.mark_dirty(b"k1", &mut a1);
        assert_eq!(a.take_dirty().len(), 2, "a key is queued once");
        a.refresh_entry(b"k1", &v1, &mut a1, 1);
        a.refresh_entry(b"k2", &v2, &mut a2, 1);
        b.mark_dirty(b"k2", &mut b2);
        b.refresh_entry(b"k2", &v2, &mut b2, 7);
        b.mark_dirty(b"k1", &mut b1);
        b.refresh_entry(b"k1", &v1, &mut b1, 7);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), 0);

        // A change moves the digest; changing back restores it; a no-op keeps the epoch.
        let before = a.digest();
        let mut v1b = v1.clone();
        v1b.set_register(ts(3), b"y");
        a.mark_dirty(b"k1", &mut a1);
        a.refresh_entry(b"k1", &v1b, &mut a1, 2);
        assert_ne!(a.digest(), before);
        assert_eq!(a1.changed_epoch(), 2);
        a.mark_dirty(b"k1", &mut a1);
        a.refresh_entry(b"k1", &v1b, &mut a1, 3);
        assert_eq!(a1.changed_epoch(), 2, "unchanged hash keeps its epoch");
        a.remove_entry(&a1);
        a.remove_entry(&a2);
        assert_eq!(a.digest(), 0);
    }

    #[test]
    fn same_value_under_two_keys_does_not_cancel() {
        let mut v = Value::new();
        v.set_register(ts(1), b"same");
        let mut d = BucketDigest::default();
        let (mut e1, mut e2) = (EntryDigest::default(), EntryDigest::default());
        d.mark_dirty(b"a", &mut e1);
        d.refresh_entry(b"a", &v, &mut e1, 1);
        d.mark_dirty(b"b", &mut e2);
        d.refresh_entry(b"b", &v, &mut e2, 1);
        assert_ne!(d.digest(), 0);
    }

    #[test]
    fn tombstones_are_counted_and_collectable_only_when_clean_and_old() {
        let mut v = Value::new();
        v.set_register(ts(1), b"x");
        let mut d = BucketDigest::default();
        let mut e = EntryDigest::default();
        d.mark_dirty(b"k", &mut e);
        d.refresh_entry(b"k", &v, &mut e, 1);
        assert_eq!(d.tombstones(), 0);
        v.delete().unwrap();
        d.mark_dirty(b"k", &mut e);
        d.refresh_entry(b"k", &v, &mut e, 5);
        assert_eq!(d.tombstones(), 1);
        assert!(!e.is_collectable(4));
        assert!(e.is_collectable(5));
        d.mark_dirty(b"k", &mut e);
        assert!(!e.is_collectable(9), "a dirty entry may have changed");
        d.remove_entry(&e);
        assert_eq!(d.tombstones(), 0);
    }

    #[test]
    fn tree_folds_levels_of_sixteen() {
        for bits in [0u32, 1, 4, 5, 8, 12] {
            let leaves: Vec<u64> = (0..1u64 << bits)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
                .collect();
            let tree = Tree::from_leaves(bits, leaves.clone());
            let all = leaves.iter().fold(0, |a, b| a ^ b);
            assert_eq!(tree.root(), all, "bits {bits}");
            let depth = tree.depth();
            for level in 0..depth {
                for i in 0..Tree::level_len(bits, level) {
                    let kids = Tree::children(bits, level, i);
                    assert!(kids.len() <= 16 && !kids.is_empty());
                    let x = kids
                        .map(|c| tree.node(level + 1, c).unwrap())
                        .fold(0, |a, b| a ^ b);
                    assert_eq!(tree.node(level, i), Some(x));
                }
            }
            assert_eq!(Tree::level_len(bits, depth), 1 << bits);
        }
        assert_eq!(Tree::depth_for(12), 3);
        assert_eq!(Tree::level_len(12, 2), 256);
    }
}
