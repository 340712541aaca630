//! Loading the keyspace from storage at start.
//!
//! Each stored key is its base state merged with its deltas, in any order (merge is
//! commutative and idempotent, so redundant deltas left behind by a newer base are harmless).
//! A record that does not decode stops the start with an error naming the key: serving a
//! keyspace with silently missing keys would lose acknowledged writes.

use crdt::encoding::{decode, decode_run};
use crdt::{Merge, Value};
use storage::{KeyRecord, StorageError, Store};
use thiserror::Error;

use super::{Entry, Key, Keyspace};

/// Why the keyspace could not be loaded; the node does not start.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Storage failed while scanning; nothing was loaded.
    #[error("cannot read the keyspace from storage: {0}")]
    Storage(#[from] StorageError),
    /// A stored record is not a valid CRDT state; the node refuses to start without it.
    #[error("stored {what} of key {key:?} does not decode: {reason}")]
    Corrupt {
        /// `base` or `delta N`.
        what: String,
        /// The key, lossily printed.
        key: String,
        /// The decoder's reason.
        reason: String,
    },
}

/// What was loaded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    /// Keys that exist.
    pub keys: u64,
    /// Deleted keys kept as tombstones.
    pub tombstones: u64,
    /// Delta records merged into their bases (a record may hold several deltas).
    pub deltas: u64,
    /// Bytes read.
    pub bytes: u64,
}

impl Keyspace {
    /// Loads every stored key into this (empty) keyspace.
    pub fn load(&self, store: &dyn Store) -> Result<LoadStats, LoadError> {
        let mut stats = LoadStats::default();
        let mut failure = None;
        let result = store.scan(
            &mut |record: KeyRecord| match self.load_one(record, &mut stats) {
                Ok(()) => Ok(()),
                Err(e) => {
                    failure = Some(e);
                    Err(StorageError::Closed)
                }
            },
        );
        if let Some(e) = failure {
            return Err(e);
        }
        result?;
        Ok(stats)
    }

    fn load_one(&self, record: KeyRecord, stats: &mut LoadStats) -> Result<(), LoadError> {
        let KeyRecord {
            key,
            state,
            state_version,
            deltas,
        } = record;
        let corrupt = |what: String, reason: String| LoadError::Corrupt {
            what,
            key: String::from_utf8_lossy(&key).into_owned(),
            reason,
        };
        let base_bytes = state.as_ref().map_or(0, Vec::len);
        let mut value = match &state {
            Some(bytes) => {
                decode::<Value>(bytes).map_err(|e| corrupt("base".into(), e.to_string()))?
            }
            None => Value::new(),
        };
        let mut delta_bytes = 0;
        let mut next_seq = state_version + 1;
        for (seq, bytes) in &deltas {
            // A record holds the deltas of one or more consecutive writes (see `WriteSet`).
            decode_run(bytes, |delta: Value| value.merge(delta))
                .map_err(|e| corrupt(format!("delta {seq}"), e.to_string()))?;
            delta_bytes += bytes.len();
            next_seq = next_seq.max(seq + 1);
        }
        stats.deltas += deltas.len() as u64;
        stats.bytes += (base_bytes + delta_bytes) as u64;
        if value.exists() {
            stats.keys += 1;
        } else {
            stats.tombstones += 1;
        }
        self.count_change(false, value.exists());
        // Resume above every record of the key, so later bases and deltas outrank them.
        let mut guard = self.write_shard(self.shard_index(&key));
        let shard = &mut *guard;
        let mut entry = Entry::loaded(Key::from(key), value, base_bytes, delta_bytes, next_seq);
        if self.digests {
            // Loaded keys enter the digests at the first refresh.
            let (key, _, digest) = entry.digest_parts_mut();
            shard.digest.mark_dirty(key, digest);
        }
        shard.entries.insert(entry);
        Ok(())
    }
}
