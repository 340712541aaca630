//! [`MemStore`]: the in-memory twin of [`RocksStore`](crate::RocksStore), for tests of the
//! node and of storage itself. Same semantics (one conformance suite runs against both), plus
//! what a disk cannot offer a test: a model of what survives a crash, and failpoints.
//!
//! Durability model: the store keeps the *live* data (what reads see) and the *durable* data
//! (what a restarted process would find). [`MemStore::reopen`] returns a new store holding the
//! durable data. Under [`Durability::Written`] (the default) every acknowledged write is durable,
//! as a RocksDB write survives `kill -9` in the page cache; under [`Durability::Synced`] only
//! synced writes are, which models power loss and lets tests check the fsync policy.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::batch::{Batch, KeyRecord, Op};
use crate::error::StorageError;
use crate::store::Store;

/// What [`MemStore::reopen`] finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledged write (a process crash: the OS still has the log).
    #[default]
    Written,
    /// Only writes made with `sync = true` or followed by `sync_wal` (power loss).
    Synced,
}

/// Counters of the calls a [`MemStore`] received, for tests of the group committer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Successful `write` calls.
    pub writes: u64,
    /// Successful `write` calls with `sync = true`.
    pub synced_writes: u64,
    /// Successful `sync_wal` calls.
    pub wal_syncs: u64,
    /// Writes refused by a failpoint.
    pub failed_writes: u64,
}

/// The in-memory store. Cheap to create; `Send + Sync`.
#[derive(Debug, Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    live: Data,
    durable: Data,
    /// Batches applied to `live` but not yet to `durable` (only under `Durability::Synced`).
    unsynced: Vec<Batch>,
    durability: Durability,
    fail_writes: usize,
    fail_syncs: usize,
    stats: MemStats,
}

#[derive(Debug, Clone, Default)]
struct Data {
    keys: BTreeMap<Vec<u8>, Entry>,
    meta: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    /// The base and its version.
    state: Option<(u64, Vec<u8>)>,
    deltas: BTreeMap<u64, Vec<u8>>,
}

impl Data {
    fn apply(&mut self, batch: &Batch) {
        for op in batch.ops() {
            match op {
                Op::PutState {
                    key,
                    state,
                    version,
                } => {
                    let entry = self.keys.entry(key.clone()).or_default();
                    // The highest version wins, the latest among equals (like RocksStore's merge
                    // operator).
                    if entry.state.as_ref().is_none_or(|(v, _)| *version >= *v) {
                        entry.state = Some((*version, state.clone()));
                    }
                    entry.deltas.retain(|&seq, _| seq >= *version);
                }
                Op::AppendDelta { key, seq, delta } => {
                    self.keys
                        .entry(key.clone())
                        .or_default()
                        .deltas
                        .insert(*seq, delta.clone());
                }
                Op::DeleteKey { key } => {
                    self.keys.remove(key);
                }
                Op::PutMeta { name, value } => {
                    self.meta.insert(name.clone(), value.clone());
                }
                Op::DeleteMeta { name } => {
                    self.meta.remove(name);
                }
            }
        }
    }

    fn record(key: &[u8], entry: &Entry) -> KeyRecord {
        KeyRecord {
            key: key.to_vec(),
            state: entry.state.as_ref().map(|(_, s)| s.clone()),
            state_version: entry.state.as_ref().map_or(0, |(v, _)| *v),
            deltas: entry.deltas.iter().map(|(&s, d)| (s, d.clone())).collect(),
        }
    }
}

impl Inner {
    fn make_durable(&mut self) {
        for batch in self.unsynced.drain(..) {
            self.durable.apply(&batch);
        }
    }
}

impl MemStore {
    /// An empty store with [`Durability::Written`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A new store holding what this one has made durable, as a restarted process would find
    /// it. This store is left as it is (a test may keep using it as the "crashed" process).
    pub fn reopen(&self) -> MemStore {
        let inner = self.inner.lock();
        let data = inner.durable.clone();
        MemStore {
            inner: Mutex::new(Inner {
                live: data.clone(),
                durable: data,
                durability: inner.durability,
                ..Inner::default()
            }),
        }
    }

    /// Chooses what later writes [`reopen`](Self::reopen) keeps. Switching to
    /// [`Durability::Written`] makes what was written so far durable.
    pub fn set_durability(&self, durability: Durability) {
        let mut inner = self.inner.lock();
        inner.durability = durability;
        if durability == Durability::Written {
            inner.make_durable();
        }
    }

    /// Failpoint: the next `n` writes fail with [`StorageError::Write`] and apply nothing.
    pub fn fail_next_writes(&self, n: usize) {
        self.inner.lock().fail_writes = n;
    }

    /// Failpoint: the next `n` calls of `sync_wal` fail with [`StorageError::Sync`] and make
    /// nothing durable.
    pub fn fail_next_syncs(&self, n: usize) {
        self.inner.lock().fail_syncs = n;
    }

    /// Counters of the calls received so far.
    pub fn stats(&self) -> MemStats {
        self.inner.lock().stats
    }
}

impl Store for MemStore {
    fn write(&self, batch: &Batch, sync: bool) -> Result<(), StorageError> {
        batch.validate()?;
        let mut inner = self.inner.lock();
        if inner.fail_writes > 0 {
            inner.fail_writes -= 1;
            inner.stats.failed_writes += 1;
            return Err(StorageError::Write {
                reason: "injected failure (MemStore failpoint)".into(),
            });
        }
        inner.live.apply(batch);
        if sync || inner.durability == Durability::Written {
            inner.make_durable();
            inner.durable.apply(batch);
        } else {
            inner.unsynced.push(batch.clone());
        }
        inner.stats.writes += 1;
        inner.stats.synced_writes += u64::from(sync);
        Ok(())
    }

    fn sync_wal(&self) -> Result<(), StorageError> {
        let mut inner = self.inner.lock();
        if inner.fail_syncs > 0 {
            inner.fail_syncs -= 1;
            return Err(StorageError::Sync {
                reason: "injected failure (MemStore failpoint)".into(),
            });
        }
        inner.make_durable();
        inner.stats.wal_syncs += 1;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyRecord>, StorageError> {
        Ok(self
            .inner
            .lock()
            .live
            .keys
            .get(key)
            .map(|e| Data::record(key, e)))
    }

    fn scan(
        &self,
        visit: &mut dyn FnMut(KeyRecord) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        // A snapshot, so that `visit` may call back into the store without deadlocking. This
        // copies the whole map, which is acceptable for a test twin that is all in memory.
        let keys = self.inner.lock().live.keys.clone();
        keys.iter().try_for_each(|(k, e)| visit(Data::record(k, e)))
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.inner.lock().live.meta.get(name).cloned())
    }

    fn key_count_estimate(&self) -> u64 {
        self.inner.lock().live.keys.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Batch {
        Batch::from(vec![Op::PutState {
            key: key.into(),
            state: b"s".to_vec(),
            version: 1,
        }])
    }

    #[test]
    fn synced_durability_keeps_only_synced_writes() {
        let store = MemStore::new();
        store.set_durability(Durability::Synced);
        store.write(&put("a"), true).unwrap();
        store.write(&put("b"), false).unwrap();
        let after_crash = store.reopen();
        assert!(after_crash.get(b"a").unwrap().is_some());
        assert!(after_crash.get(b"b").unwrap().is_none());
        store.sync_wal().unwrap();
        assert!(store.reopen().get(b"b").unwrap().is_some());
        assert_eq!(
            store.stats(),
            MemStats {
                writes: 2,
                synced_writes: 1,
                wal_syncs: 1,
                failed_writes: 0
            }
        );
    }

    #[test]
    fn failpoints_refuse_without_applying() {
        let store = MemStore::new();
        store.fail_next_writes(1);
        assert!(matches!(
            store.write(&put("a"), false),
            Err(StorageError::Write { .. })
        ));
        assert!(store.get(b"a").unwrap().is_none());
        store.write(&put("a"), false).unwrap();
        store.set_durability(Durability::Synced);
        store.write(&put("b"), false).unwrap();
        store.fail_next_syncs(1);
        assert!(matches!(store.sync_wal(), Err(StorageError::Sync { .. })));
        assert!(store.reopen().get(b"b").unwrap().is_none());
        assert!(store.reopen().get(b"a").unwrap().is_some());
    }
}
