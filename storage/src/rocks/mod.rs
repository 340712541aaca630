//! [`RocksStore`]: the durable [`Store`] on RocksDB.
//!
//! ## On-disk layout (schema version [`SCHEMA_VERSION`])
//!
//! | column family | key | value |
//! |---|---|---|
//! | `state` | escaped user key (see `keys`) | base version (u64 big-endian) ++ the key's base state, written by merge (see `versioned`) |
//! | `deltas` | escaped user key ++ seq (u64 big-endian) | one delta |
//! | `meta` | the name's UTF-8 bytes | the record |
//! | `meta` | `0xFF "schema_version"` (not UTF-8, so no name can collide) | u32 big-endian |
//! | `raft_log`, `raft_state` | created empty, reserved for the Raft keyspace | |
//!
//! Both key encodings sort like the user keys, so a scan merge-joins `state` and `deltas` in
//! one pass, and the deltas of a key are one contiguous range that `PutState` deletes with a
//! single range tombstone.
//!
//! ## The delta index
//!
//! Most `PutState`s are of keys that have no deltas (small registers and counters are always
//! written whole). A range tombstone for each of them would be wasted work, and RocksDB pays
//! for every range tombstone in a memtable on later inserts and reads. So the store keeps in
//! memory the set of keys that may have deltas (built at open, one seek per key) and emits a
//! range deletion only for those. The set may over-approximate (a failed write leaves its
//! appended keys marked), never under-approximate. Writes are serialised by the lock that
//! guards it; concurrent writers should go through the [`GroupCommitter`](crate::GroupCommitter),
//! which turns them into one write anyway.

mod open;
mod scan;
pub(crate) mod versioned;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rocksdb::{Cache, ColumnFamily, DB, ReadOptions, WriteBatch, WriteOptions};

use crate::batch::{Batch, KeyRecord, Op};
use crate::error::{StorageError, display_key, read_error};
use crate::keys;
use crate::options::StoreOptions;
use crate::store::Store;

/// The version of the layout above. Bump it on any incompatible change; a store of another
/// version is refused with [`StorageError::IncompatibleSchema`].
pub const SCHEMA_VERSION: u32 = 1;

/// Column family of base states.
pub const CF_STATE: &str = "state";
/// Column family of deltas.
pub const CF_DELTAS: &str = "deltas";
/// Column family of node metadata.
pub const CF_META: &str = "meta";
/// Column family reserved for the Raft log (created empty).
pub const CF_RAFT_LOG: &str = "raft_log";
/// Column family reserved for the Raft state machine and vote (created empty).
pub const CF_RAFT_STATE: &str = "raft_state";
/// Every column family of a crdtkv store.
pub const ALL_CFS: [&str; 5] = [CF_STATE, CF_DELTAS, CF_META, CF_RAFT_LOG, CF_RAFT_STATE];

/// Where the schema version lives in `meta`. Starts with 0xFF, which no UTF-8 string does.
const SCHEMA_KEY: &[u8] = b"\xffschema_version";

/// The RocksDB store. `Send + Sync`; share it as `Arc<dyn Store>`.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    cache: Cache,
    /// User keys that may have deltas (see the module docs).
    delta_index: Mutex<HashSet<Vec<u8>>>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    // Every name in ALL_CFS is opened (or the open fails), so a missing handle is a bug here.
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is always opened"))
}

impl RocksStore {
    /// Opens the store at `path`, creating it if the directory holds no database. Refuses a
    /// database of another schema version ([`StorageError::IncompatibleSchema`]) or of another
    /// program ([`StorageError::NotAStore`]).
    pub fn open(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Self, StorageError> {
        options.validate()?;
        let path = path.as_ref();
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let db = open::open_db(path, options, &cache)?;
        let delta_index = open::load_delta_index(&db)?;
        tracing::info!(
            path = %path.display(),
            keys_with_deltas = delta_index.len(),
            "storage opened"
        );
        Ok(Self {
            db,
            path: path.to_owned(),
            cache,
            delta_index: Mutex::new(delta_index),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes every memtable to table files (before a backup, or to test on-disk records).
    pub fn flush(&self) -> Result<(), StorageError> {
        for name in ALL_CFS {
            self.db
                .flush_cf(cf(&self.db, name))
                .map_err(|e| StorageError::Write {
                    reason: e.into_string(),
                })?;
        }
        Ok(())
    }

    /// Approximate memory RocksDB holds: memtables plus block cache, in bytes (for `INFO`).
    pub fn memory_bytes(&self) -> u64 {
        let memtables = self
            .db
            .property_int_value(rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES)
            .ok()
            .flatten()
            .unwrap_or(0);
        memtables + self.cache.get_usage() as u64
    }

    /// Adds a deletion of the deltas of `key` (whose encoding is `enc`) in `[enc, end)` —
    /// those with a sequence number below `below`, `u64::MAX` meaning all — if it may have any.
    #[allow(clippy::too_many_arguments)]
    fn clear_deltas<'b>(
        &self,
        wb: &mut WriteBatch,
        index: &HashSet<Vec<u8>>,
        pending: &mut HashMap<&'b [u8], Option<u64>>,
        key: &'b [u8],
        enc: &[u8],
        end: impl FnOnce() -> Vec<u8>,
        below: u64,
    ) {
        let appended_here = pending.get(key).copied().flatten();
        if appended_here.is_some() || index.contains(key) {
            wb.delete_range_cf(cf(&self.db, CF_DELTAS), enc, end().as_slice());
            // Only a full clear proves the key has no delta left. After a partial one, deltas
            // at or above `below` may survive, so the key stays in the index (over-approximated,
            // which costs a spare range tombstone later, never a leftover delta).
            if below == u64::MAX {
                pending.insert(key, None);
            }
        }
    }
}

impl RocksStore {
    /// The write of [`Store::write`] and [`Store::try_write`], under the delta index lock.
    /// With `no_slowdown`, a write RocksDB would have to delay or stop returns `Ok(false)`
    /// unwritten.
    fn write_locked(
        &self,
        index: &mut HashSet<Vec<u8>>,
        batch: &Batch,
        sync: bool,
        no_slowdown: bool,
    ) -> Result<bool, StorageError> {
        batch.validate()?;
        let (state, deltas, meta) = (
            cf(&self.db, CF_STATE),
            cf(&self.db, CF_DELTAS),
            cf(&self.db, CF_META),
        );
        // Per key touched by a delta op in this batch: whether it has deltas after the batch.
        // Per key touched by a delta op in this batch: the highest sequence number it still has
        // a delta of after the batch's ops so far (`None`: none).
        let mut pending: HashMap<&[u8], Option<u64>> = HashMap::new();
        let mut wb = WriteBatch::with_capacity_bytes(batch.bytes() + 32 * batch.len());
        // Scratch buffers reused for every op (RocksDB copies keys and values into the batch).
        let (mut enc, mut versioned_state) = (Vec::new(), Vec::new());
        for op in batch.ops() {
            enc.clear();
            match op {
                Op::PutState {
                    key,
                    state: value,
                    version,
                } => {
                    keys::encode_into(key, &mut enc);
                    // A merge, not a put: the `state` merge operator keeps the highest version.
                    versioned_state.clear();
                    versioned::encode_into(*version, value, &mut versioned_state);
                    wb.merge_cf(state, &enc, &versioned_state);
                    let end = || {
                        let mut end = Vec::with_capacity(enc.len() + 8);
                        keys::delta_key_into(key, *version, &mut end);
                        end
                    };
                    self.clear_deltas(&mut wb, index, &mut pending, key, &enc, end, *version);
                }
                Op::AppendDelta { key, seq, delta } => {
                    keys::delta_key_into(key, *seq, &mut enc);
                    wb.put_cf(deltas, &enc, delta);
                    // Marked before the write: if the write fails half-known, the index must
                    // still cover this key.
                    if !index.contains(key.as_slice()) {
                        index.insert(key.clone());
                    }
                    let top = pending.entry(key.as_slice()).or_insert(None);
                    *top = Some(top.map_or(*seq, |t| t.max(*seq)));
                }
                Op::DeleteKey { key } => {
                    keys::encode_into(key, &mut enc);
                    wb.delete_cf(state, &enc);
                    let end = || keys::range_end(&enc);
                    self.clear_deltas(&mut wb, index, &mut pending, key, &enc, end, u64::MAX);
                }
                Op::PutMeta { name, value } => wb.put_cf(meta, name.as_bytes(), value),
                Op::DeleteMeta { name } => wb.delete_cf(meta, name.as_bytes()),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        opts.set_no_slowdown(no_slowdown);
        match self.db.write_opt(wb, &opts) {
            Ok(()) => {}
            // Nothing was written; the keys marked above stay in the index, which may
            // over-approximate.
            Err(e) if no_slowdown && e.kind() == rocksdb::ErrorKind::Incomplete => {
                return Ok(false);
            }
            Err(e) => {
                return Err(StorageError::Write {
                    reason: e.into_string(),
                });
            }
        }
        for (key, top) in pending {
            if top.is_none() {
                index.remove(key);
            }
        }
        Ok(true)
    }
}

/// How long [`Store::try_write`] waits for another thread's write to finish before giving up.
/// A write that does not stall takes microseconds; one that waits longer is stalled, and
/// waiting for it would block the caller's executor thread.
const TRY_WRITE_LOCK_WAIT: Duration = Duration::from_micros(500);

impl Store for RocksStore {
    fn write(&self, batch: &Batch, sync: bool) -> Result<(), StorageError> {
        let mut index = self.delta_index.lock();
        self.write_locked(&mut index, batch, sync, false)
            .map(|_| ())
    }

    fn try_write(&self, batch: &Batch) -> Result<bool, StorageError> {
        let Some(mut index) = self.delta_index.try_lock_for(TRY_WRITE_LOCK_WAIT) else {
            return Ok(false);
        };
        self.write_locked(&mut index, batch, false, true)
    }

    fn sync_wal(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(|e| StorageError::Sync {
            reason: e.into_string(),
        })
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyRecord>, StorageError> {
        let snapshot = self.db.snapshot();
        let enc = keys::state_key(key);
        let state = snapshot
            .get_cf(cf(&self.db, CF_STATE), &enc)
            .map_err(|e| read_error(CF_STATE, Some(key), e))?;
        let (state_version, state) = match state {
            Some(raw) => {
                let (v, s) = versioned::decode(&raw).map_err(|detail| StorageError::Corrupt {
                    cf: CF_STATE,
                    key: display_key(key),
                    detail,
                })?;
                (v, Some(s.to_vec()))
            }
            None => (0, None),
        };
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::range_end(&enc));
        let mut it = snapshot.raw_iterator_cf_opt(cf(&self.db, CF_DELTAS), opts);
        it.seek(&enc);
        let mut deltas = Vec::new();
        while let Some((raw, value)) = it.item() {
            let seq = match keys::decode_delta_key(raw) {
                Ok((prefix, seq)) if raw[..prefix] == enc[..] => seq,
                Ok(_) => return Err(corrupt_delta(raw, "outside its key's range".into())),
                Err(detail) => return Err(corrupt_delta(raw, detail)),
            };
            deltas.push((seq, value.to_vec()));
            it.next();
        }
        it.status()
            .map_err(|e| read_error(CF_DELTAS, Some(key), e))?;
        if state.is_none() && deltas.is_empty() {
            return Ok(None);
        }
        Ok(Some(KeyRecord {
            key: key.to_vec(),
            state,
            state_version,
            deltas,
        }))
    }

    fn scan(
        &self,
        visit: &mut dyn FnMut(KeyRecord) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        scan::merge_join(&self.db, visit)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get_cf(cf(&self.db, CF_META), name.as_bytes())
            .map_err(|e| read_error(CF_META, Some(name.as_bytes()), e))
    }

    fn key_count_estimate(&self) -> u64 {
        let with_state = self
            .db
            .property_int_value_cf(
                cf(&self.db, CF_STATE),
                rocksdb::properties::ESTIMATE_NUM_KEYS,
            )
            .ok()
            .flatten()
            .unwrap_or(0);
        // Keys with deltas mostly also have a base; the larger of the two is the better guess.
        with_state.max(self.delta_index.lock().len() as u64)
    }
}

fn corrupt_delta(raw: &[u8], detail: String) -> StorageError {
    StorageError::Corrupt {
        cf: CF_DELTAS,
        key: display_key(raw),
        detail,
    }
}
