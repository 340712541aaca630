//! [`Table`]: the keys of one shard, each in one allocation with its value.
//!
//! Why a table of boxes rather than a `HashMap<Key, Entry>`: a hash table runs between 7/16
//! and 7/8 full (it doubles when it reaches 7/8), so each slot costs up to twice its size per
//! key. An [`Entry`] with its key and its value's one part inline is 128 bytes; as slots, a
//! million keys would cost up to 256 MB. Boxed, a slot is one pointer (up to 16 bytes per key)
//! and the entry is allocated at its exact size class. A lookup reads the same number of cache
//! lines as before: the slot, then the entry, which holds the key and the value together.
//!
//! The hasher is randomly keyed per table (SipHash, as `std`'s `HashMap` uses): clients choose
//! the keys, and a fixed hash would let them flood one slot chain.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::entry::Entry;

/// The entries of one shard, by key.
#[derive(Debug, Default)]
pub struct Table {
    table: HashTable<Box<Entry>>,
    hasher: RandomState,
}

impl Table {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The entry of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        let hash = self.hash(key);
        self.table
            .find(hash, |e| e.key().as_bytes() == key)
            .map(|e| &**e)
    }

    /// The entry of `key`, to change.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let hash = self.hash(key);
        self.table
            .find_mut(hash, |e| e.key().as_bytes() == key)
            .map(|e| &mut **e)
    }

    /// Starts fetching the entry of `key` into the CPU's caches, if there is one, without
    /// waiting for it (see [`super::prefetch`]). The probe compares no key: every candidate
    /// whose hash matches is fetched, so that nothing here waits for an entry's memory.
    /// Returns the key's hash, for [`prefetch_data`](Self::prefetch_data).
    pub fn prefetch(&self, key: &[u8]) -> u64 {
        let hash = self.hash(key);
        let _ = self.table.find(hash, |e| {
            super::prefetch::prefetch_lines::<Entry>(&**e);
            false
        });
        hash
    }

    /// Starts fetching the heap data of the value of `key` (whose hash is `hash`), if it has
    /// any ([`crdt::Value::heap_hint`]): a counter's tallies, a register's bytes. Reads the
    /// entry, so call it some time after [`prefetch`](Self::prefetch) fetched that.
    pub fn prefetch_data(&self, hash: u64, key: &[u8]) {
        if let Some(entry) = self.table.find(hash, |e| e.key().as_bytes() == key)
            && let Some(data) = entry.value.heap_hint()
        {
            super::prefetch::prefetch_lines::<[u8; 64]>(data.cast());
        }
    }

    /// The entry of `key`, inserted empty (a value with no part) if there is none.
    pub fn get_or_insert(&mut self, key: &[u8]) -> &mut Entry {
        let hash = self.hash(key);
        let hasher = &self.hasher;
        self.table
            .entry(
                hash,
                |e| e.key().as_bytes() == key,
                |e| hasher.hash_one(e.key().as_bytes()),
            )
            .or_insert_with(|| Box::new(Entry::new(key.into())))
            .into_mut()
    }

    /// Inserts `entry`, replacing the entry of the same key if there is one.
    pub fn insert(&mut self, entry: Entry) {
        let hash = self.hash(entry.key().as_bytes());
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |e| e.key() == entry.key(),
            |e| hasher.hash_one(e.key().as_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => **slot.get_mut() = entry,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(Box::new(entry));
            }
        }
    }

    /// Removes the entry of `key`.
    pub fn remove(&mut self, key: &[u8]) -> Option<Box<Entry>> {
        let hash = self.hash(key);
        self.table
            .find_entry(hash, |e| e.key().as_bytes() == key)
            .ok()
            .map(|slot| slot.remove().0)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.table.iter().map(|e| &**e)
    }

    /// Number of entries (tombstones included).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_replaced_and_removed_by_key() {
        let mut t = Table::default();
        for i in 0..1000u32 {
            t.get_or_insert(format!("key:{i}").as_bytes());
        }
        assert_eq!(t.len(), 1000);
        assert!(t.get(b"key:999").is_some() && t.get(b"key:1000").is_none());
        // Present keys are not inserted twice.
        t.get_or_insert(b"key:7");
        assert_eq!(t.len(), 1000);
        t.get_mut(b"key:7").unwrap().value = {
            let mut v = crdt::Value::new();
            v.set_register(crdt::Timestamp::zero(crdt::NodeId(1)), b"x");
            v
        };
        assert!(t.get(b"key:7").unwrap().value.exists());
        t.insert(Entry::new(b"key:7".as_slice().into()));
        assert!(!t.get(b"key:7").unwrap().value.exists(), "replaced");
        assert_eq!(t.remove(b"key:7").unwrap().key().as_bytes(), b"key:7");
        assert!(t.remove(b"key:7").is_none());
        assert_eq!(t.iter().count(), 999);
        assert_eq!(std::mem::size_of::<Entry>(), 128);
    }
}
